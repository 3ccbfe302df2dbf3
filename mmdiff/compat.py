"""Work-arounds for faults of the tested stack, each applied only if needed.

See docs/design.md, "The stack". :data:`PATCHES` lists them; each has a
test of whether the installed versions need it:

- ``numpy_float_alias``: ``lvis`` 0.5.3 uses ``np.float``, which numpy
  1.24 removed (LVIS evaluation crashes in ``accumulate()``). Needed when
  numpy lacks the name.
- ``checkpoint_loader``: mmengine's local-file loader calls ``torch.load``,
  which on torch >= 2.6 refuses mmengine's own checkpoints and on older
  torch runs whatever code a file holds. mmdiff's loader
  (:func:`mmdiff.safe_load.load_checkpoint_file`) reads them as data.
  Needed with every mmengine that has ``CheckpointLoader``.
- ``resume_guard``: mmengine's ``Runner.resume`` (and ``FlexibleRunner``'s)
  executes ``meta['config']`` from the checkpoint
  (:mod:`mmdiff.safe_load.resume`). Needed where ``resume`` calls
  ``Config.fromstring``.

:func:`apply_compat` runs on ``import mmdiff``, is idempotent and logs
once, at INFO, what it applied. Set ``MMDIFF_COMPAT_SKIP`` to a comma-
separated list of names (or ``all``) to leave those alone: skipping
``checkpoint_loader`` or ``resume_guard`` reopens what they close.
"""
import os
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

from .safe_load import (DamagedCheckpointError, UnsafeCheckpointError,
                        allow_checkpoint_types, checkpoint_allow_list,
                        load_checkpoint_file)
from .safe_load.resume import guard_resume, resume_runs_config

__all__ = [
    'apply_compat', 'applied_patches', 'PATCHES', 'allow_checkpoint_types',
    'checkpoint_allow_list', 'load_checkpoint_file', 'UnsafeCheckpointError',
    'DamagedCheckpointError'
]

SKIP_VARIABLE = 'MMDIFF_COMPAT_SKIP'
_APPLIED: List[str] = []


def _numpy_lacks_float() -> bool:
    return 'float' not in np.__dict__


def _add_numpy_float_alias() -> None:
    np.float = float  # type: ignore[attr-defined]


def _mmengine_has_checkpoint_loader() -> bool:
    try:
        from mmengine.runner.checkpoint import CheckpointLoader  # noqa: F401
    except ImportError:
        return False
    return True


def _register_checkpoint_loader() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader

    # mmengine logs the loader's name after 'load_from_', hence the name.
    def load_from_local(filename: str, map_location: Any = None) -> Any:
        return load_checkpoint_file(filename, map_location)

    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)


def _runners() -> List[Tuple[type, str]]:
    """mmengine's runner classes and where each gets its checkpoint."""
    from mmengine.runner import Runner
    found = [(Runner, 'load_checkpoint')]
    try:
        from mmengine.runner import FlexibleRunner
        found.append((FlexibleRunner, 'strategy.resume'))
    except ImportError:
        pass
    return found


def _resume_runs_config() -> bool:
    return any(resume_runs_config(cls.resume) for cls, _ in _runners())


def _guard_resume() -> None:
    for cls, loader in _runners():
        if resume_runs_config(cls.resume):
            guard_resume(cls, loader)


# name -> (is it needed by the installed versions?, apply it)
PATCHES: Dict[str, Tuple[Callable[[], bool], Callable[[], None]]] = {
    'numpy_float_alias': (_numpy_lacks_float, _add_numpy_float_alias),
    'checkpoint_loader':
    (_mmengine_has_checkpoint_loader, _register_checkpoint_loader),
    'resume_guard': (_resume_runs_config, _guard_resume),
}


def _skipped() -> List[str]:
    value = os.environ.get(SKIP_VARIABLE, '')
    names = [n.strip() for n in value.split(',') if n.strip()]
    if names == ['all']:
        return list(PATCHES)
    unknown = sorted(set(names) - set(PATCHES))
    if unknown:
        raise ValueError(f'{SKIP_VARIABLE} names unknown patches {unknown}; '
                         f'known: {sorted(PATCHES)} or "all"')
    return names


def applied_patches() -> List[str]:
    """The patches :func:`apply_compat` applied in this process."""
    return list(_APPLIED)


def apply_compat() -> None:
    """Apply the needed patches not skipped (idempotent; logs once)."""
    skipped = _skipped()
    new = []
    for name, (needed, apply) in PATCHES.items():
        if name in skipped or name in _APPLIED or not needed():
            continue
        apply()
        _APPLIED.append(name)
        new.append(name)
    if new:
        from mmengine.logging import print_log
        print_log(
            f'mmdiff.compat applied {", ".join(new)} for the installed '
            f'versions (skip with {SKIP_VARIABLE}=name,...; see '
            'mmdiff.compat)',
            logger='current',
            level=20)
