"""The method as plain array code (numpy / torch only).

Nothing in this package may import mmengine, mmcv or mmdet.
"""
from .aggregate import (NORMALIZATIONS, REDUCTIONS, UNSEEN_POLICIES,
                        fill_unseen, image_difficulty, instance_offsets,
                        instance_to_image, normalize_difficulty, object_ids)
from .class_index import ImageClassIndex
from .dataset_index import DatasetIndex
from .diagnostics import group_sums, sampling_diagnostics
from .frequency import (LVIS_FREQUENCY_GROUPS, LVIS_FREQUENCY_THRESHOLDS,
                        frequency_groups, frequency_of_counts, image_groups)
from .psi import psi_split, psi_split_compressed, psi_split_from_prior
from .records import EpochRecords, last_rows, merge_parts, select_rows
from .repeat_factors import (instance_repeat_factors, lvis_repeat_factors,
                             repeat_factors_from_counts)
from .state import FIRST_TERMS, STORAGES, DifficultyState
from .topk_codec import TopkRecord, compress, decompress
from .validation import SnapshotMismatch, check_choice
from .weights import (SCHEMES, check_image_difficulty, check_scheme_args,
                      dataset_sampling_weights, sampling_weights)

__all__ = [
    'SnapshotMismatch', 'check_choice', 'group_sums', 'psi_split',
    'psi_split_compressed', 'psi_split_from_prior', 'DifficultyState',
    'compress', 'decompress', 'TopkRecord', 'EpochRecords', 'merge_parts',
    'select_rows', 'last_rows', 'image_difficulty', 'instance_offsets',
    'instance_to_image', 'object_ids', 'ImageClassIndex', 'DatasetIndex',
    'SCHEMES', 'LVIS_FREQUENCY_GROUPS', 'check_image_difficulty',
    'check_scheme_args', 'lvis_repeat_factors', 'repeat_factors_from_counts',
    'instance_repeat_factors', 'sampling_weights', 'dataset_sampling_weights',
    'frequency_groups', 'image_groups', 'sampling_diagnostics', 'fill_unseen',
    'UNSEEN_POLICIES', 'LVIS_FREQUENCY_THRESHOLDS', 'frequency_of_counts',
    'REDUCTIONS', 'STORAGES', 'FIRST_TERMS', 'NORMALIZATIONS',
    'normalize_difficulty'
]
