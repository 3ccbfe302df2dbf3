from mmdiff.datasets.sample_idx import SampleIdxMissingError
from .probability_capture import (ClsHeadCapture, RoIHeadCapture,
                                  UnsupportedModelError, build_capture)

__all__ = [
    'RoIHeadCapture', 'ClsHeadCapture', 'build_capture',
    'SampleIdxMissingError', 'UnsupportedModelError'
]
