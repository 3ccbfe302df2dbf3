"""``torch.load(weights_only=True)`` with mmdiff's stand-ins.

:func:`load_checkpoint_file` is mmengine's local checkpoint loader once
``import mmdiff`` has run (:mod:`mmdiff.compat`): ``--resume``,
``load_from`` and ``tools/test.py`` go through it. What the stand-ins
accept and why is in :mod:`mmdiff.safe_load.stand_ins`.
"""
import os.path as osp
import pickle
import threading
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, List, Optional

import torch

from .finish import finished
from .stand_ins import DamagedCheckpointError, UnsafeCheckpointError, stand_ins

__all__ = [
    'allow_checkpoint_types', 'checkpoint_allow_list', 'load_checkpoint_file'
]

_EXTRA_ALLOWED: List[Any] = []
# torch keeps one process-wide list of user-allowed globals; a load swaps
# it for mmdiff's exact list under this lock (see _only_these_globals).
_LOAD_LOCK = threading.Lock()


def _pickle_name(obj: Any) -> str:
    return f'{getattr(obj, "__module__", "")}.' \
        f'{getattr(obj, "__qualname__", "")}'


def allow_checkpoint_types(types: Iterable[Any]) -> None:
    """Add types that checkpoints may hold (for your own trusted classes).

    A type added here is unpickled by torch's rules: its REDUCE, NEWOBJ
    and BUILD run with the checkpoint's arguments, so add only classes
    whose construction from any arguments is harmless.

    Args:
        types (Iterable): classes or functions to allow when unpickling.

    Raises:
        ValueError: A type pickles under a name mmdiff resolves to a
            stand-in (``getattr``, ``HistoryBuffer``, numpy's dtype /
            array names): allowing the real object would reopen what the
            stand-in closes.
    """
    taken = {name for _, name in stand_ins()}
    for t in types:
        if _pickle_name(t) in taken:
            raise ValueError(
                f'{_pickle_name(t)} is resolved by an mmdiff stand-in that '
                'accepts exactly what mmengine / numpy write; allowing the '
                'real object would let a checkpoint reach more than that '
                '(see mmdiff.safe_load.stand_ins).')
        if t not in _EXTRA_ALLOWED:
            _EXTRA_ALLOWED.append(t)


def checkpoint_allow_list() -> List[Any]:
    """The globals mmdiff lets ``torch.load`` build, stand-ins included.

    Returns:
        list: ``(object, pickle name)`` pairs and the user-allowed types.
    """
    return stand_ins() + list(_EXTRA_ALLOWED)


def _unsafe_globals(filename: str) -> List[str]:
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # best effort: only used to word the error
        return []
    allowed = {name for _, name in stand_ins()}
    allowed |= {_pickle_name(t) for t in _EXTRA_ALLOWED}
    return [g for g in found if g not in allowed]


def _entry_name(entry: Any) -> str:
    """The pickle name torch gives an entry of its safe-globals list."""
    return entry[1] if isinstance(entry, tuple) else _pickle_name(entry)


@contextmanager
def _only_these_globals(entries: List[Any]) -> Iterator[None]:
    """torch's user-allowed globals, with ``entries`` winning every name.

    ``torch.serialization.safe_globals`` adds to a process-wide set, and
    when two entries share a pickle name the one torch meets last wins: an
    earlier ``add_safe_globals([getattr])`` anywhere in the process would
    then stand in for mmdiff's ``getattr``. So, under a lock, the entries
    whose names mmdiff's list uses leave the set for the load, and the set
    is restored afterwards.
    """
    serialization = torch.serialization
    ours = {_entry_name(e) for e in entries}
    with _LOAD_LOCK:
        saved = serialization.get_safe_globals()
        serialization.clear_safe_globals()
        try:
            serialization.add_safe_globals(
                [e for e in saved if _entry_name(e) not in ours] + entries)
            yield
        finally:
            serialization.clear_safe_globals()
            serialization.add_safe_globals(saved)


def load_checkpoint_file(filename: str,
                         map_location: Optional[Any] = None) -> Any:
    """``torch.load(weights_only=True)`` with mmdiff's stand-ins.

    Args:
        filename (str): path of a local checkpoint file.
        map_location (optional): as in :func:`torch.load`.

    Returns:
        The checkpoint, with real numpy arrays, dtypes and scalars and
        mmengine ``HistoryBuffer`` objects.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: the file holds a global outside the
            allow-list, or a stand-in refused what it was given; the
            message names it and how to allow a trusted type.
        DamagedCheckpointError: the file cannot be read as a checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        with _only_these_globals(checkpoint_allow_list()):
            loaded = torch.load(
                filename, map_location=map_location, weights_only=True)
        return finished(loaded)
    except pickle.UnpicklingError as err:
        raise _unsafe_error(filename, err) from None
    except RecursionError:
        raise DamagedCheckpointError(
            f'{filename!r} nests objects too deeply to be a checkpoint'
        ) from None
    except Exception as err:  # noqa: B902  a damaged file fails anywhere
        raise DamagedCheckpointError(
            f'Cannot read {filename!r} as a checkpoint ({type(err).__name__}'
            f': {str(err)[:300]}); the file is damaged, truncated or not a '
            'PyTorch checkpoint.') from None


def _unsafe_error(filename: str,
                  err: pickle.UnpicklingError) -> UnsafeCheckpointError:
    unsafe = _unsafe_globals(filename)
    lines = [line for line in str(err).splitlines() if line.strip()]
    reason = next((line for line in lines if 'mmdiff' in line),
                  lines[0] if lines else type(err).__name__)
    return UnsafeCheckpointError(
        f'Refusing to load checkpoint {filename!r}: it holds '
        f'{", ".join(unsafe) or "an object"} outside mmdiff\'s allow-list '
        'of checkpoint types. mmdiff loads checkpoints with '
        'weights_only=True so that a checkpoint file cannot run code. If '
        'you made this file and trust it, allow the exact type before '
        'loading: mmdiff.compat.allow_checkpoint_types([YourType]). '
        f'(reason: {reason.strip()[:400]})')
