"""Metrics mmdiff adds to mmdet's."""
from .hard_object_recall import (HardVariantRecall, load_hard_variant_gts,
                                 objects_found)

__all__ = ['HardVariantRecall', 'objects_found', 'load_hard_variant_gts']
