"""Work-arounds for two faults of the tested stack (see DESIGN.md).

1. ``lvis`` 0.5.3 uses ``np.float``, which numpy 1.24 removed: LVIS
   evaluation crashes in ``LVISEval.accumulate()`` without the alias.
2. torch >= 2.6 loads checkpoints with ``weights_only=True``, and mmengine
   0.10.7 checkpoints hold a ``HistoryBuffer`` and numpy objects, so
   ``--resume`` fails. mmdiff allow-lists exactly the types those
   checkpoints hold and never falls back to ``weights_only=False`` (which
   would let a checkpoint file run code).

:func:`apply_compat` is called on ``import mmdiff``; it is idempotent.
"""
import importlib
import os.path as osp
import pickle
from typing import Any, Iterable, List, Optional

import numpy as np
import torch

__all__ = [
    'apply_compat', 'allow_checkpoint_types', 'checkpoint_allow_list',
    'load_checkpoint_file', 'UnsafeCheckpointError'
]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a type outside mmdiff's allow-list."""


def _numpy_global(name: str) -> Any:
    # numpy 2 moved ``numpy.core`` to ``numpy._core``; pickles name the
    # module of the running numpy, so allow whichever exists.
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f'numpy has no multiarray.{name}')


def _default_allow_list() -> List[Any]:
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed: List[Any] = [
        # The message hub's log buffers (resume restores them) ...
        HistoryBuffer,
        # ... whose ``statistics_methods`` dict pickles its bound methods as
        # ``getattr(HistoryBuffer, 'mean')``. Safe here: the weights-only
        # unpickler only calls allow-listed callables, so getattr can read
        # attributes of allowed types but never call what it finds.
        getattr,
        # numpy arrays and scalars in the message hub / runtime info.
        np.ndarray,
        np.dtype,
        _numpy_global('_reconstruct'),
        _numpy_global('scalar'),
    ]
    # numpy >= 1.25 pickles dtypes through their classes (np.dtypes.*).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return allowed


_EXTRA_ALLOWED: List[Any] = []


def allow_checkpoint_types(types: Iterable[Any]) -> None:
    """Add types that checkpoints may hold (for your own trusted classes).

    Args:
        types (Iterable): classes or functions to allow when unpickling.
    """
    for t in types:
        if t not in _EXTRA_ALLOWED:
            _EXTRA_ALLOWED.append(t)


def checkpoint_allow_list() -> List[Any]:
    """The exact globals mmdiff lets ``torch.load`` build."""
    return _default_allow_list() + list(_EXTRA_ALLOWED)


def load_checkpoint_file(filename: str,
                         map_location: Optional[Any] = None) -> Any:
    """``torch.load(weights_only=True)`` with mmdiff's allow-list.

    Args:
        filename (str): path of a local checkpoint file.
        map_location (optional): as in :func:`torch.load`.

    Returns:
        The unpickled checkpoint.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: the file holds a type outside the
            allow-list; the message names it and how to allow it.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        with torch.serialization.safe_globals(checkpoint_allow_list()):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_globals(filename)
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: it holds '
            f'{", ".join(unsafe) or "an object"} outside mmdiff\'s '
            'allow-list of checkpoint types. mmdiff loads checkpoints with '
            'weights_only=True so that a checkpoint file cannot run code. '
            'If you made this file and trust it, allow the exact type '
            'before loading: mmdiff.compat.allow_checkpoint_types([YourType'
            f']). (torch said: {str(e).splitlines()[0]})') from None


def _unsafe_globals(filename: str) -> List[str]:
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # best effort: only used to word the error
        return []
    allowed = {
        f'{getattr(t, "__module__", "")}.{getattr(t, "__qualname__", "")}'
        for t in checkpoint_allow_list()
    }
    allowed.add('builtins.getattr')
    return [g for g in found if g not in allowed]


def _register_checkpoint_loader() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename: str, map_location: Any = None) -> Any:
        return load_checkpoint_file(filename, map_location)

    # Replace mmengine's local-file scheme, which calls torch.load without
    # weights_only and therefore fails on torch >= 2.6 for its own files.
    # (mmengine logs the loader's name after 'load_from_', hence the name.)
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)


def _add_numpy_float_alias() -> None:
    # ``np.float`` was the builtin float; lvis 0.5.3 still spells it so.
    if 'float' not in np.__dict__:
        np.float = float  # type: ignore[attr-defined]


def apply_compat() -> None:
    """Apply both work-arounds (idempotent)."""
    _add_numpy_float_alias()
    _register_checkpoint_loader()
