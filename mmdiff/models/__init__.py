"""Reading a head's class probabilities during training (captures)."""
from mmdiff.datasets.sample_idx import SampleIdxMissingError
from . import probability_capture
from .probability_capture import *  # noqa: F401,F403

__all__ = [*probability_capture.__all__, 'SampleIdxMissingError']
