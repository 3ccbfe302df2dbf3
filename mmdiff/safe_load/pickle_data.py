"""Read plain-data pickle files (the CIFAR archives) without running code.

The CIFAR "python version" archives are pickles of dicts, lists, bytes and
numpy arrays. :func:`load_pickle_data` runs them on the same data-only
machine as checkpoints (:mod:`mmdiff.safe_load.unpickler`), with fewer
names: numpy's stand-ins and how protocol 2 writes bytes; no
``HistoryBuffer``, ``getattr``, tensors or persistent ids. The same budgets
apply (:mod:`mmdiff.safe_load.budget`), counted against the file's size.
"""
import os
from typing import Any

from .budget import PICKLE_FACTOR, Meter, current_budget
from .errors import DamagedCheckpointError, UnsafeCheckpointError
from .stand_ins import numpy_names
from .unpickler import DataUnpickler, Rules

__all__ = ['load_pickle_data']


def load_pickle_data(path: str, encoding: str = 'bytes') -> Any:
    """Load a pickle file that holds plain data only.

    Args:
        path (str): The file.
        encoding (str): How Python 2 ``str`` objects are read. Defaults to
            ``'bytes'`` (what the CIFAR archives need).

    Returns:
        The data, with real numpy arrays.

    Raises:
        UnsafeCheckpointError: The file names a global outside the
            stand-ins, or a stand-in refused its arguments.
        DamagedCheckpointError: The file is not a readable pickle, or asks
            for more than a load budget allows.
    """
    size = os.path.getsize(path)
    meter = Meter(current_budget(), size)
    try:
        meter.check('max_pickle_bytes', size, f'the pickle has {size} bytes')
        meter.charge_bytes(PICKLE_FACTOR * size, f'a pickle of {size} bytes')
        with open(path, 'rb') as f:
            data = f.read()
        names = numpy_names(meter)
        rules = Rules(names, [v for v in names.values() if callable(v)])
        return DataUnpickler(data, rules, meter, encoding=encoding).load()
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(f'Refusing to load {path!r}: {err}') \
            from None
    except Exception as err:  # noqa: B902  damaged files fail anywhere
        raise DamagedCheckpointError(
            f'Cannot read {path!r} as a data pickle '
            f'({type(err).__name__}: {str(err)[:300]})') from None
