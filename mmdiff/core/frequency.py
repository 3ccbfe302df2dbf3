"""LVIS frequency groups: rare, common, frequent.

LVIS (Gupta et al., CVPR 2019) groups its categories by the number of
training images that contain them: rare 1-10, common 11-100, frequent
more than 100. APr / APc / APf average over these groups, and mmdiff's
logs, dumps and plots report difficulty and sampling mass per group. This
module is the one home of that grouping.
"""
from typing import Optional, Sequence, Tuple

import numpy as np

from .class_index import ImageClassIndex

__all__ = [
    'LVIS_FREQUENCY_GROUPS', 'LVIS_FREQUENCY_THRESHOLDS',
    'frequency_of_counts', 'frequency_groups', 'image_groups'
]

#: Group names, rarest first; a group's id is its position.
LVIS_FREQUENCY_GROUPS = ('r', 'c', 'f')
#: Largest training-image counts of a rare and of a common class.
LVIS_FREQUENCY_THRESHOLDS = (10, 100)


def frequency_of_counts(
        images_per_class: Sequence[int],
        thresholds: Tuple[int, int] = LVIS_FREQUENCY_THRESHOLDS) -> np.ndarray:
    """Group id of every class from its number of training images.

    Args:
        images_per_class (Sequence[int]): ``(K,)`` training images that
            contain each class.
        thresholds (tuple[int, int]): Largest counts of a rare and of a
            common class. Defaults to LVIS's ``(10, 100)``.

    Returns:
        np.ndarray: ``(K,)`` int64 ids into :data:`LVIS_FREQUENCY_GROUPS`.
    """
    low, high = thresholds
    if not 0 <= low <= high:
        raise ValueError('frequency thresholds must be two increasing '
                         f'counts >= 0, got {thresholds}')
    counts = np.asarray(images_per_class)
    return np.where(counts <= low, 0, np.where(counts <= high, 1,
                                               2)).astype(np.int64)


def frequency_groups(
        class_frequency: Sequence[str],
        index: Optional[ImageClassIndex] = None,
        names: Sequence[str] = LVIS_FREQUENCY_GROUPS) -> np.ndarray:
    """Group id of every class, or of every image, from group names.

    Args:
        class_frequency (Sequence[str]): ``(K,)`` group name of each class,
            e.g. LVIS ``'r'`` / ``'c'`` / ``'f'``.
        index (ImageClassIndex, optional): If given, return one group per
            image instead: the rarest group (lowest id) among its classes,
            -1 for images without labels. Defaults to None.
        names (Sequence[str]): Group names, rarest first.
            Defaults to ``('r', 'c', 'f')``.

    Returns:
        np.ndarray: ``(K,)`` or ``(N,)`` int64 group ids.
    """
    lookup = {name: i for i, name in enumerate(names)}
    try:
        class_groups = np.array([lookup[f] for f in class_frequency],
                                dtype=np.int64)
    except KeyError as err:
        raise ValueError(
            f'unknown class frequency {err.args[0]!r}; expected one of '
            f'{tuple(names)}') from err
    if index is None:
        return class_groups
    return image_groups(class_groups, index)


def image_groups(class_groups: np.ndarray,
                 index: ImageClassIndex) -> np.ndarray:
    """Group id of every image: that of its rarest class (-1 without one).

    Args:
        class_groups (np.ndarray): ``(K,)`` group ids, rarest first.
        index (ImageClassIndex): Classes of every image.

    Returns:
        np.ndarray: ``(N,)`` int64 group ids.
    """
    return index.reduce_per_image(
        np.asarray(class_groups, dtype=np.int64), 'min', empty=-1)
