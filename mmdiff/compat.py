"""Work-arounds for two faults of the tested stack.

See docs/design.md, "The stack".

1. ``lvis`` 0.5.3 uses ``np.float``, which numpy 1.24 removed: LVIS
   evaluation crashes in ``LVISEval.accumulate()`` without the alias.
2. torch >= 2.6 loads checkpoints with ``weights_only=True``, and mmengine
   0.10.7 checkpoints hold a ``HistoryBuffer`` and numpy objects, so
   ``--resume`` fails. mmdiff replaces mmengine's local-file loader with
   :func:`mmdiff.safe_load.load_checkpoint_file`, whose stand-ins
   load exactly what those checkpoints hold, as data; it never falls back
   to ``weights_only=False`` (which would let a checkpoint file run code).

:func:`apply_compat` is called on ``import mmdiff``; it is idempotent.
"""
from typing import Any

import numpy as np

from .safe_load import (DamagedCheckpointError, UnsafeCheckpointError,
                        allow_checkpoint_types, checkpoint_allow_list,
                        load_checkpoint_file)

__all__ = [
    'apply_compat', 'allow_checkpoint_types', 'checkpoint_allow_list',
    'load_checkpoint_file', 'UnsafeCheckpointError', 'DamagedCheckpointError'
]


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
