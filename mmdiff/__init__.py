"""mmdiff: instance-difficulty re-balancing for MMDetection 3.x.

``import mmdiff`` (or ``custom_imports = dict(imports=['mmdiff'])`` in a
config) registers every mmdiff module in the mmengine / mmdet registries
and applies the stack work-arounds of :mod:`mmdiff.compat`.
"""
from .compat import apply_compat
from .version import __version__

apply_compat()

# Registration side effects: every module registers where it is defined.
# isort: off
from . import classification, datasets  # noqa: E402,F401
from . import evaluation, hooks, samplers  # noqa: E402,F401
# isort: on
from .hooks import DifficultyHook  # noqa: E402
from .samplers import DifficultyClassAwareSampler  # noqa: E402

__all__ = ['__version__', 'DifficultyHook', 'DifficultyClassAwareSampler']
