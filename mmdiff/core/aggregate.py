"""Image-level difficulty from instance (GT object) difficulties.

Yu et al., CVPR 2022, "A Re-Balancing Strategy for Class-Imbalanced
Classification Based on Instance Difficulty", re-sample *instances* by their
difficulty. In detection an image holds several instances, so mmdiff
(docs/method.md, "What mmdiff adds for detection") samples images by an
aggregate (mean, max or sum) of their objects' difficulties.

Instance ids are laid out image after image: the objects of image ``i`` are
``indptr[i]:indptr[i + 1]`` with ``indptr = instance_offsets(counts)``.
"""
from typing import Any, Tuple

import numpy as np
import torch

from .validation import check_choice

__all__ = [
    'image_difficulty', 'instance_offsets', 'instance_to_image', 'object_ids',
    'fill_unseen', 'normalize_difficulty', 'UNSEEN_POLICIES', 'REDUCTIONS',
    'NORMALIZATIONS'
]

UNSEEN_POLICIES = ('one', 'mean', 'class_mean')
#: What instance difficulty is relative to (:func:`normalize_difficulty`).
NORMALIZATIONS = ('none', 'class')


def _as_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'{name} must be an array, got {type(value)}') \
            from exc


def _counts(num_objects_per_image: Any) -> np.ndarray:
    counts = _as_numpy(num_objects_per_image, 'num_objects_per_image')
    if counts.ndim != 1 or (counts.size and counts.dtype.kind not in 'iu'):
        raise ValueError(
            'num_objects_per_image must be a 1-D integer array, got dtype '
            f'{counts.dtype} and shape {counts.shape}')
    if counts.size and counts.min() < 0:
        raise ValueError('num_objects_per_image must be >= 0')
    return counts.astype(np.int64)


def instance_offsets(num_objects_per_image: Any) -> np.ndarray:
    """CSR offsets of the instances of each image.

    Args:
        num_objects_per_image (array-like): (num_images,) non-negative
            object counts.

    Returns:
        np.ndarray: (num_images + 1,) int64 ``indptr``; the instances of
        image ``i`` are ``indptr[i]:indptr[i + 1]``.
    """
    counts = _counts(num_objects_per_image)
    indptr = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr


def instance_to_image(num_objects_per_image: Any) -> np.ndarray:
    """Image index of every instance, in the :func:`instance_offsets` layout.

    Args:
        num_objects_per_image (array-like): (num_images,) non-negative
            object counts.

    Returns:
        np.ndarray: (sum of counts,) int64 image index of each instance.
    """
    counts = _counts(num_objects_per_image)
    return np.repeat(np.arange(counts.size, dtype=np.int64), counts)


def object_ids(offsets: torch.Tensor, image: torch.Tensor,
               gt_index: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Instance ids of (image, GT index) pairs, on their device.

    Args:
        offsets (torch.Tensor): (num_images + 1,) :func:`instance_offsets`,
            on the device of the pairs.
        image (torch.Tensor): (n,) image indices.
        gt_index (torch.Tensor): (n,) GT indices within those images.

    Returns:
        tuple: (n,) ids, and (n,) bool, False where the GT index is past the
        image's objects (the pipeline changed them; the id is then not
        that object's). No host synchronisation.
    """
    start = offsets[image]
    return start + gt_index, gt_index < offsets[image + 1] - start


def image_difficulty(instance_difficulty: Any,
                     instance_image: Any,
                     num_images: int,
                     reduce: str = 'mean',
                     empty_value: float = 1.0) -> np.ndarray:
    """Aggregate instance difficulties per image.

    Args:
        instance_difficulty (np.ndarray | torch.Tensor): (N,) finite
            difficulty of each instance.
        instance_image (np.ndarray | torch.Tensor): (N,) integer image index
            in [0, num_images) of each instance; any order.
        num_images (int): Number of images.
        reduce (str, optional): 'mean', 'max' or 'sum' over an image's
            instances. Defaults to 'mean'.
        empty_value (float, optional): Value of images without instances.
            1.0 is neutral: it is the starting difficulty of every instance
            (``D = c / c``), so such images keep the weight of an untouched
            image. Defaults to 1.0.

    Returns:
        np.ndarray: (num_images,) float64 image difficulties.

    Raises:
        ValueError: On invalid inputs, naming the argument.
    """
    if isinstance(num_images,
                  bool) or not isinstance(num_images,
                                          (int, np.integer)) or num_images < 0:
        raise ValueError(
            f'num_images must be an integer >= 0, got {num_images!r}')
    check_choice(reduce, 'reduce', REDUCTIONS)
    if not np.isfinite(float(empty_value)):
        raise ValueError(f'empty_value must be finite, got {empty_value!r}')
    diff = _as_numpy(instance_difficulty, 'instance_difficulty')
    image = _as_numpy(instance_image, 'instance_image')
    if diff.ndim != 1 or diff.dtype.kind not in 'iuf':
        raise ValueError(
            'instance_difficulty must be a 1-D real array, got dtype '
            f'{diff.dtype} and shape {diff.shape}')
    diff = diff.astype(np.float64)
    if not np.isfinite(diff).all():
        raise ValueError('instance_difficulty contains NaN or inf')
    if image.shape != diff.shape or (image.size
                                     and image.dtype.kind not in 'iu'):
        raise ValueError(
            f'instance_image must be integers of shape {diff.shape}, got '
            f'dtype {image.dtype} and shape {image.shape}')
    image = image.astype(np.int64)
    if image.size and (image.min() < 0 or image.max() >= num_images):
        raise ValueError(
            f'instance_image must lie in [0, {num_images}), got values in '
            f'[{image.min()}, {image.max()}]')

    counts = np.bincount(image, minlength=num_images)
    out = _REDUCERS[reduce](diff, image, counts)
    out[counts == 0] = float(empty_value)
    return out


def _sum(diff: np.ndarray, image: np.ndarray,
         counts: np.ndarray) -> np.ndarray:
    # astype: bincount of an empty input returns int64 despite weights.
    return np.bincount(
        image, weights=diff, minlength=counts.size).astype(np.float64)


def _mean(diff: np.ndarray, image: np.ndarray,
          counts: np.ndarray) -> np.ndarray:
    out = _sum(diff, image, counts)
    return np.divide(out, counts, out=out, where=counts > 0)


def _max(diff: np.ndarray, image: np.ndarray,
         counts: np.ndarray) -> np.ndarray:
    out = np.full(counts.size, -np.inf)
    np.maximum.at(out, image, diff)
    return out


#: reduce -> how an image's instance difficulties become its difficulty
#: (images without instances are set afterwards). A new aggregation is one
#: function and one entry here.
_REDUCERS = {'mean': _mean, 'max': _max, 'sum': _sum}
REDUCTIONS = tuple(_REDUCERS)


def fill_unseen(instance_difficulty: Any,
                observed: Any,
                labels: Any,
                policy: str = 'one') -> np.ndarray:
    """The difficulty used for instances without a stored prediction.

    In online mode an object enters the state only when its image is drawn,
    and its first term (from ``p_0 = 1 / K``) is large, so D = 1 for "never
    seen" and D ~ 0.1 for "seen once and learned" are not comparable
    (docs/method.md). The policy says what unobserved instances (never
    seen, or reset) weigh:

    - ``'one'``: their D = 1, the starting difficulty (as stored);
    - ``'mean'``: the mean D of the observed instances;
    - ``'class_mean'``: the mean D of the observed instances of their
      class, or ``'mean'`` where a class has none observed.

    Args:
        instance_difficulty (np.ndarray): (N,) D of every instance.
        observed (np.ndarray): (N,) bool, instances with a stored
            prediction.
        labels (np.ndarray): (N,) class of every instance.
        policy (str): One of :data:`UNSEEN_POLICIES`. Defaults to 'one'.

    Returns:
        np.ndarray: (N,) float64, observed instances unchanged.
    """
    check_choice(policy, 'policy', UNSEEN_POLICIES)
    d = _as_numpy(instance_difficulty, 'instance_difficulty').astype(
        np.float64, copy=True)
    seen = _as_numpy(observed, 'observed').astype(bool)
    labels = _as_numpy(labels, 'labels').astype(np.int64)
    if seen.shape != d.shape or labels.shape != d.shape:
        raise ValueError('instance_difficulty, observed and labels must have '
                         f'one entry per instance, got {d.shape}, '
                         f'{seen.shape}, {labels.shape}')
    if policy == 'one' or seen.all() or not seen.any():
        return d
    fill = np.full(d.shape, d[seen].mean())
    if policy == 'class_mean':
        num = int(labels.max()) + 1
        total = np.bincount(labels[seen], weights=d[seen], minlength=num)
        count = np.bincount(labels[seen], minlength=num)
        has = count[labels] > 0
        fill[has] = total[labels[has]] / count[labels[has]]
    d[~seen] = fill[~seen]
    return d


def normalize_difficulty(instance_difficulty: Any,
                         labels: Any,
                         normalize: str = 'none') -> np.ndarray:
    """Instance difficulty relative to what it is measured against.

    - ``'none'``: D as it is.
    - ``'class'``: ``D_i / mean D of the instances of its class``, so that
      an object weighs by how much harder it is than its own class. Under
      a class prior (RFS, class-aware) D then stops repeating what the
      prior already does (rare classes are hard on average, and the prior
      already lifts them): the sampler's ``prior x D`` becomes ``prior x
      (D / class mean D)``. A class whose mean is 0 keeps D = 1.

    Args:
        instance_difficulty (np.ndarray): (N,) D of every instance (after
            :func:`fill_unseen`).
        labels (np.ndarray): (N,) class of every instance.
        normalize (str): One of :data:`NORMALIZATIONS`. Defaults to 'none'.

    Returns:
        np.ndarray: (N,) float64, a new array.
    """
    check_choice(normalize, 'normalize', NORMALIZATIONS)
    d = _as_numpy(instance_difficulty, 'instance_difficulty').astype(
        np.float64, copy=True)
    labels = _as_numpy(labels, 'labels').astype(np.int64)
    if labels.shape != d.shape:
        raise ValueError('instance_difficulty and labels must have one entry '
                         f'per instance, got {d.shape} and {labels.shape}')
    if normalize == 'none' or not d.size:
        return d
    num = int(labels.max()) + 1
    mean = (np.bincount(labels, weights=d, minlength=num) /
            np.maximum(np.bincount(labels, minlength=num), 1))[labels]
    return np.divide(d, mean, out=np.ones_like(d), where=mean > 0)
