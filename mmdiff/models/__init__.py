from .probability_capture import (ClsHeadCapture, RoIHeadCapture,
                                  SampleIdxMissingError, UnsupportedModelError,
                                  build_capture)

__all__ = [
    'RoIHeadCapture', 'ClsHeadCapture', 'build_capture',
    'SampleIdxMissingError', 'UnsupportedModelError'
]
