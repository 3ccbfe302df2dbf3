"""Read plain-data pickle files (the CIFAR archives) without running code.

The CIFAR "python version" archives are pickles of dicts, lists, bytes and
numpy arrays. :func:`load_pickle_data` reads them with a
``pickle.Unpickler`` whose ``find_class`` resolves only the stand-ins of
:mod:`mmdiff.safe_load.stand_ins` (the same ones checkpoints get, plus
``_codecs.encode``, which torch allows for checkpoints on its own), so a
file can build data and nothing else; every other global is refused with
:class:`~mmdiff.safe_load.UnsafeCheckpointError`.
"""
import pickle
from typing import Any, Dict

from .stand_ins import (DamagedCheckpointError, UnsafeCheckpointError,
                        codecs_encode, finished, stand_ins)

__all__ = ['load_pickle_data']

# Python 2 wrote these modules under their old names.
_OLD_NAMES = {'__builtin__': 'builtins', 'copy_reg': 'copyreg'}


class _DataUnpickler(pickle.Unpickler):
    """Resolves the stand-ins only; no persistent ids."""

    table: Dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        full = f'{_OLD_NAMES.get(module, module)}.{name}'
        if full not in self.table:
            raise UnsafeCheckpointError(
                f'the file names the global {full}, which a plain-data '
                'pickle never holds; mmdiff reads such files as data only')
        return self.table[full]

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError('the file refers to persistent objects')


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
        DamagedCheckpointError: The file is not a readable pickle.
    """
    if not _DataUnpickler.table:
        table = {name: obj for obj, name in stand_ins()}
        table['_codecs.encode'] = codecs_encode
        _DataUnpickler.table = table
    with open(path, 'rb') as f:
        try:
            return finished(_DataUnpickler(f, encoding=encoding).load())
        except UnsafeCheckpointError as err:
            raise UnsafeCheckpointError(f'Refusing to load {path!r}: {err}') \
                from None
        except Exception as err:  # noqa: B902  damaged files fail anywhere
            raise DamagedCheckpointError(
                f'Cannot read {path!r} as a data pickle '
                f'({type(err).__name__}: {str(err)[:300]})') from None
