"""Samplers that draw training images by instance difficulty."""
from .difficulty_class_aware_sampler import (DifficultyClassAwareSampler,
                                             dataset_class_index)

__all__ = ['DifficultyClassAwareSampler', 'dataset_class_index']
