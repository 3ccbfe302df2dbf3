"""Checkpoint files loaded as data, within a budget.

:func:`load_checkpoint_file` is mmengine's local checkpoint loader once
``import mmdiff`` has run (:mod:`mmdiff.compat`): ``--resume``,
``load_from`` and ``tools/test.py`` go through it. It reads torch's zip
format itself (:mod:`.torch_zip`) and runs the pickle on mmdiff's own
machine (:mod:`.unpickler`) with the stand-ins of :mod:`.stand_ins`; it
never calls ``torch.load``, so torch's process-wide allow-list does not
apply to it and cannot widen it.
"""
import os
import os.path as osp
import pickle
from typing import Any, Iterable, List, Optional

from .budget import Meter, current_budget
from .errors import DamagedCheckpointError, UnsafeCheckpointError
from .stand_ins import stand_in_names
from .torch_zip import TorchZip, torch_names
from .unpickler import DataUnpickler, Pending, Rules

__all__ = [
    'allow_checkpoint_types', 'checkpoint_allow_list', 'load_checkpoint_file'
]

_EXTRA_ALLOWED: List[Any] = []


def _pickle_name(obj: Any) -> str:
    return f'{getattr(obj, "__module__", "")}.' \
        f'{getattr(obj, "__qualname__", "")}'


def _checkpoint_names(meter: Meter) -> dict:
    names = torch_names(meter)
    names.update(stand_in_names(meter))
    return names


def allow_checkpoint_types(types: Iterable[Any]) -> None:
    """Add types that checkpoints may hold (for your own trusted classes).

    A type added here is unpickled by pickle's rules: REDUCE calls it, NEWOBJ
    calls its ``__new__`` and BUILD its ``__setstate__`` (or fills its
    ``__dict__``) with the checkpoint's arguments, so add only classes
    whose construction from any arguments is harmless.

    Args:
        types (Iterable): classes or functions to allow when unpickling.

    Raises:
        ValueError: A type pickles under a name mmdiff resolves to a
            stand-in (``getattr``, ``HistoryBuffer``, numpy's dtype /
            array names, torch's tensor rebuilders): allowing the real
            object would reopen what the stand-in closes.
    """
    taken = set(_checkpoint_names(Meter(current_budget(), 0)))
    for t in types:
        if _pickle_name(t) in taken:
            raise ValueError(
                f'{_pickle_name(t)} is resolved by an mmdiff stand-in that '
                'accepts exactly what torch / mmengine / numpy write; '
                'allowing the real object would let a checkpoint reach more '
                'than that (see mmdiff.safe_load.stand_ins).')
        if t not in _EXTRA_ALLOWED:
            _EXTRA_ALLOWED.append(t)


def checkpoint_allow_list() -> List[str]:
    """The pickle names a checkpoint may use, user-allowed types included."""
    names = set(_checkpoint_names(Meter(current_budget(), 0)))
    return sorted(names | {_pickle_name(t) for t in _EXTRA_ALLOWED})


def _rules(meter: Meter) -> Rules:
    names = _checkpoint_names(meter)
    for t in _EXTRA_ALLOWED:
        names[_pickle_name(t)] = t
    classes = [
        v for v in names.values()
        if isinstance(v, type) and issubclass(v, Pending)
    ]
    callables = [v for v in names.values() if callable(v) and v not in classes]
    return Rules(names, callables, classes, _EXTRA_ALLOWED)


def load_checkpoint_file(filename: str,
                         map_location: Optional[Any] = None) -> Any:
    """Load a ``torch.save`` checkpoint as data.

    Args:
        filename (str): path of a local checkpoint file.
        map_location (optional): as in :func:`torch.load`.

    Returns:
        The checkpoint, with real tensors, numpy arrays, dtypes and scalars
        and mmengine ``HistoryBuffer`` objects.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: the file names a global outside the
            allow-list, or a stand-in refused what it was given; the
            message names it and how to allow a trusted type.
        DamagedCheckpointError: the file cannot be read as a checkpoint, or
            asks for more than a budget of :mod:`.budget` allows.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    meter = Meter(current_budget(), os.path.getsize(filename))
    try:
        with TorchZip(filename, meter, map_location) as archive:
            machine = DataUnpickler(
                archive.pickle_bytes(),
                _rules(meter),
                meter,
                encoding='utf-8',
                persistent_load=archive.persistent_load)
            return machine.load()
    except UnsafeCheckpointError as err:
        raise _unsafe_error(filename, err) from None
    except DamagedCheckpointError as err:
        raise DamagedCheckpointError(
            f'Cannot read {filename!r} as a checkpoint: {err}') from None
    except (RecursionError, MemoryError) as err:
        raise DamagedCheckpointError(
            f'Cannot read {filename!r} as a checkpoint ({type(err).__name__})'
        ) from None
    except Exception as err:  # noqa: B902  a damaged file fails anywhere
        raise DamagedCheckpointError(
            f'Cannot read {filename!r} as a checkpoint ({type(err).__name__}'
            f': {str(err)[:300]}); the file is damaged, truncated or not a '
            'PyTorch checkpoint.') from None


def _unsafe_error(filename: str,
                  err: pickle.UnpicklingError) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f'Refusing to load checkpoint {filename!r}: {str(err)[:600]}. '
        'mmdiff loads checkpoints as data so that a checkpoint file cannot '
        'run code. If you made this file and trust it, allow the exact type '
        'before loading: mmdiff.compat.allow_checkpoint_types([YourType]).')
