"""Reading a head's class probabilities during training (captures)."""
from mmdiff.datasets.sample_idx import SampleIdxMissingError
from . import capture_registry, probability_capture
from .capture_registry import *  # noqa: F401,F403
from .probability_capture import *  # noqa: F401,F403

__all__ = [
    *probability_capture.__all__, *capture_registry.__all__,
    'SampleIdxMissingError'
]

capture_registry.register_defaults()
