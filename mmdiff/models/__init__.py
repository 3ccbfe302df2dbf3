from mmdiff.datasets.sample_idx import SampleIdxMissingError
from .probability_capture import (ClsHeadCapture, ProbabilityCapture,
                                  RoIHeadCapture, UnsupportedModelError,
                                  build_capture, register_capture,
                                  supported_heads)

__all__ = [
    'ProbabilityCapture', 'RoIHeadCapture', 'ClsHeadCapture', 'build_capture',
    'register_capture', 'supported_heads', 'SampleIdxMissingError',
    'UnsupportedModelError'
]
