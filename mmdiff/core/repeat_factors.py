"""Repeat factors of every image: LVIS's RFS and instance-aware IRFS.

Shapes: ``N`` images, ``K`` classes. Both give each class a factor
``r(c) = max(1, sqrt(thr / f(c)))`` from a class frequency ``f(c)`` and
each image the largest factor over its classes (1.0 for images without
labels); they differ only in ``f``. :mod:`mmdiff.core.weights` turns the
factors into sampling probabilities.
"""
from typing import Sequence

import numpy as np

from .class_index import ImageClassIndex
from .validation import check_positive

__all__ = [
    'lvis_repeat_factors', 'repeat_factors_from_counts',
    'instance_repeat_factors'
]


def lvis_repeat_factors(index: ImageClassIndex,
                        thr: float = 0.001) -> np.ndarray:
    """LVIS repeat factors of every image (Gupta et al., CVPR 2019).

    ``f(c)`` is the fraction of images that contain class ``c``,
    ``r(c) = max(1, sqrt(thr / f(c)))`` and an image's factor is the largest
    ``r(c)`` over its classes, 1.0 for images without labels: the math of
    ``ClassBalancedDataset._get_repeat_factors`` in mmengine, whose wrapper
    mmdet 3.x uses. ``ClassBalancedDataset`` then repeats each image
    ``ceil(r_i)`` times; used as sampling probabilities (``∝ r_i``) the
    factors give the expectation of the stochastic rounding of detectron2's
    ``RepeatFactorTrainingSampler`` instead.

    Args:
        index (ImageClassIndex): Classes of every image.
        thr (float): Frequency threshold below which classes are
            over-sampled. Defaults to 0.001.

    Returns:
        np.ndarray: ``(N,)`` float64 factors, each >= 1.
    """
    return repeat_factors_from_counts(index, index.images_per_class(), thr)


def repeat_factors_from_counts(index: ImageClassIndex,
                               images_per_class: Sequence[int],
                               thr: float = 0.001) -> np.ndarray:
    """:func:`lvis_repeat_factors` with ``f(c)`` from given image counts.

    For callers whose counts come from elsewhere (a hook dump, counted by
    the sampler over the same images); a class without images gets factor
    1.

    Args:
        index (ImageClassIndex): Classes of every image.
        images_per_class (Sequence[int]): ``(K,)`` images of each class.
        thr (float): Frequency threshold. Defaults to 0.001.

    Returns:
        np.ndarray: ``(N,)`` float64 factors, each >= 1.
    """
    check_positive(thr, 'thr')
    counts = np.asarray(images_per_class, dtype=np.float64)
    with np.errstate(divide='ignore'):
        freq = counts / max(index.num_images, 1)
    return _image_factors(index, freq, thr)


def instance_repeat_factors(index: ImageClassIndex,
                            instances_per_class: Sequence[int],
                            thr: float = 0.001) -> np.ndarray:
    """Instance-aware repeat factors of every image (IRFS).

    ``f_i(c)`` is the fraction of images that contain class ``c`` (as in
    RFS) and ``f_b(c)`` the fraction of all objects that are of class
    ``c``; ``r(c) = max(1, sqrt(thr / sqrt(f_i(c) f_b(c))))`` and an
    image's factor is the largest ``r(c)`` over its classes (1.0 without
    labels), as in :func:`lvis_repeat_factors`. Yaman et al. (arXiv
    2305.08069) give the idea (RFS on image and instance counts together);
    E-IRFS (arXiv 2503.21893) describes it as the geometric mean of the two
    frequencies. ``f_b``'s normalisation by the number of objects is our
    reading: the paper's method section could not be checked here (see
    docs/method.md).

    Args:
        index (ImageClassIndex): Classes of every image.
        instances_per_class (Sequence[int]): ``(K,)`` objects of each class
            over the same images.
        thr (float): Frequency threshold. Defaults to 0.001.

    Returns:
        np.ndarray: ``(N,)`` float64 factors, each >= 1.
    """
    check_positive(thr, 'thr')
    counts = np.asarray(instances_per_class, dtype=np.float64)
    images = index.images_per_class()
    if counts.shape != images.shape:
        raise ValueError(f'instances_per_class needs one count per class '
                         f'({images.size}), got shape {counts.shape}')
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError('instances_per_class must be finite counts >= 0, '
                         f'got {counts.tolist()}')
    wrong = (counts < images) | ((images == 0) & (counts > 0))
    if np.any(wrong):
        bad = int(np.flatnonzero(wrong)[0])
        raise ValueError(
            f'class {bad} has {int(counts[bad])} objects but appears in '
            f'{int(images[bad])} images; count the objects of the same '
            'images (DatasetIndex.instances_per_class)')
    image_freq = images / max(index.num_images, 1)
    box_freq = counts / max(counts.sum(), 1.0)
    return _image_factors(index, np.sqrt(image_freq * box_freq), thr)


def _image_factors(index: ImageClassIndex, freq: np.ndarray,
                   thr: float) -> np.ndarray:
    """``max(1, sqrt(thr / f(c)))``, the largest over each image's classes."""
    if index.num_images == 0:
        return np.ones(0, dtype=np.float64)
    with np.errstate(divide='ignore'):
        class_factor = np.maximum(1.0, np.sqrt(thr / freq))
    return index.reduce_per_image(class_factor, 'max', empty=1.0)
