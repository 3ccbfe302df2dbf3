"""Per-image sampling probabilities from instance difficulty.

Shapes: ``N`` images, ``K`` classes; ``D`` ``(N,)`` the per-image difficulty
(Yu et al., CVPR 2022, eq. 6, aggregated over an image's objects).

Schemes (docs/design.md, decision 6), each a probability vector over the ``N``
images (the sampler draws ``N`` images with replacement from it):

- ``'uniform'``: ``p_i = 1 / N``, difficulty ignored (baseline / warm-up).
- ``'paper'``: ``p_i ∝ D_i``, the paper's re-sampling (docs/method.md).
- ``'class_aware'``: two levels, a class drawn uniformly among the classes
  that have images, then an image of that class with probability ``∝ D``::

      p_i = sum_{c ∋ i} (1 / C) D_i / sum_{j ∋ c} D_j

  Images without any class label get no mass. With equal ``D`` this is the
  image distribution of mmdet's ``ClassAwareSampler``
  (``num_sample_class=1``) in expectation.
- ``'repeat_factor'``: ``p_i ∝ r_i D_i ** beta`` with ``r_i`` the LVIS
  repeat factor (Gupta et al., CVPR 2019). With equal ``D`` the expected
  number of draws of image ``i`` is ``∝ r_i``, the expectation of repeat
  factor sampling with stochastic rounding (detectron2).
- ``'instance_repeat_factor'``: ``p_i ∝ r_i D_i ** beta`` with ``r_i`` the
  instance-aware repeat factor (IRFS, Yaman et al., arXiv 2305.08069),
  where a class's image frequency is replaced by the geometric mean of its
  image and instance frequencies (:func:`instance_repeat_factors`).

Modifiers, all off by default: ``temperature`` T replaces ``D`` by
``D ** (1 / T)``; ``floor`` and ``clip`` bound every probability to
``[floor, clip] / M``, ``M`` being the number of images the scheme can draw
(so ``1 / M`` is the mean probability over them); the bounded vector is
``clip(s * p, floor / M, clip / M)`` with ``s`` solved exactly so that it
sums to 1.
"""
import math
import warnings
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .class_index import ImageClassIndex
from .dataset_index import DatasetIndex
from .repeat_factors import instance_repeat_factors, lvis_repeat_factors
from .validation import check_choice, check_positive

__all__ = [
    'SCHEMES', 'SCHEME_PRIORS', 'check_image_difficulty', 'check_scheme_args',
    'sampling_weights', 'dataset_sampling_weights'
]

#: Schemes whose weights scale with ``D ** beta``.
REPEAT_FACTOR_SCHEMES = ('repeat_factor', 'instance_repeat_factor')


def check_image_difficulty(image_difficulty: Sequence[float],
                           num_images: int,
                           name: str = 'image_difficulty') -> np.ndarray:
    """Validate one difficulty (or weight) per image.

    Args:
        image_difficulty (Sequence[float]): ``(N,)`` values.
        num_images (int): Expected length ``N``.
        name (str): How the values are named in error messages (e.g.
            ``'image_difficulty of epoch 3'``). Defaults to
            ``'image_difficulty'``.

    Returns:
        np.ndarray: The values as a new ``(N,)`` float64 array.

    Raises:
        ValueError: If the values are not 1-D of length ``N``, not finite,
            negative, or all zero.
    """
    try:
        values = np.array(image_difficulty, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f'{name} must be numbers, one per image: {err}') from err
    if values.ndim != 1 or values.size != num_images:
        raise ValueError(
            f'{name} has shape {values.shape} but the dataset has '
            f'{num_images} images; pass one value per dataset index, '
            f'shape ({num_images},)')
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f'{name} has {bad.size} non-finite values (first: image '
            f'{bad[0]} = {values[bad[0]]}); pass finite values, e.g. fix '
            'the NaN / inf at its source or replace it by the mean')
    bad = np.flatnonzero(values < 0)
    if bad.size:
        raise ValueError(
            f'{name} has {bad.size} negative values (first: image {bad[0]} '
            f'= {values[bad[0]]}); difficulties and weights must be >= 0')
    if not values.any():
        raise ValueError(
            f'{name} is all zero, so no image could be drawn; give at least '
            'one image a positive value, or pass None to sample by the '
            "scheme's prior")
    return values


def _check_number(name: str, value: float, low: float) -> None:
    number = isinstance(value, (int, float, np.integer, np.floating))
    if (isinstance(value, bool) or not number or not math.isfinite(value)
            or value < low):
        raise ValueError(
            f'{name} must be a finite number >= {low}, got {value!r}')


def check_scheme_args(scheme: str,
                      beta: float = 1.0,
                      thr: float = 0.001,
                      temperature: float = 1.0,
                      floor: Optional[float] = None,
                      clip: Optional[float] = None) -> None:
    """Validate the arguments of :func:`sampling_weights`.

    Args:
        scheme (str): One of :data:`SCHEMES`.
        beta (float): Exponent of ``D`` in the repeat-factor schemes, >= 0.
            Defaults to 1.0.
        thr (float): LVIS repeat-factor threshold, > 0. Defaults to 0.001.
        temperature (float): ``T`` in ``D ** (1 / T)``, > 0. Defaults to 1.0.
        floor (float, optional): Minimum probability as a fraction of the
            mean, in ``[0, 1]``. Defaults to None (no floor).
        clip (float, optional): Maximum probability as a multiple of the
            mean, >= 1. Defaults to None (no clip).

    Raises:
        ValueError: Naming the first bad argument and its value.
    """
    check_choice(scheme, 'scheme', SCHEMES)
    _check_number('beta', beta, 0)
    check_positive(thr, 'thr')
    check_positive(temperature, 'temperature')
    if floor is not None:
        _check_number('floor', floor, 0)
        if floor > 1:
            raise ValueError(
                'floor is a fraction of the mean probability and must be '
                f'<= 1 (otherwise the probabilities exceed 1), got {floor!r}')
    if clip is not None:
        _check_number('clip', clip, 1)


def _class_aware(index: ImageClassIndex,
                 difficulty: Optional[np.ndarray]) -> np.ndarray:
    """Marginal image probability of the two-level class-aware draw."""
    images = index.entry_images()
    classes = index.indices
    if difficulty is None:
        entry_d = np.ones(images.size, dtype=np.float64)
    else:
        entry_d = difficulty[images]
    class_total = np.bincount(
        classes, weights=entry_d, minlength=index.num_classes)
    # Classes whose images all have zero difficulty are not drawn.
    drawable = class_total > 0
    num_drawable = int(drawable.sum())
    if num_drawable == 0:
        raise ValueError(
            "the 'class_aware' scheme needs at least one image with a class "
            'label and a positive difficulty, but no class has one; check '
            'that the dataset has labels (get_cat_ids) and image_difficulty '
            'is positive for labelled images')
    share = np.zeros(images.size, dtype=np.float64)
    entry_drawable = drawable[classes]
    share[entry_drawable] = (
        entry_d[entry_drawable] / class_total[classes[entry_drawable]])
    return np.bincount(
        images, weights=share, minlength=index.num_images) / num_drawable


def _bound(probs: np.ndarray, support: np.ndarray, floor: Optional[float],
           clip: Optional[float]) -> np.ndarray:
    """Bound probabilities on ``support`` to ``[floor, clip] / M``.

    Solves ``sum clip(s * p, lo, hi) = 1`` for the scale ``s`` exactly: the
    sum is piecewise linear in ``s``, so a binary search over its breakpoints
    finds the segment, where ``s`` follows in closed form.
    """
    m = int(support.sum())
    lo = 0.0 if floor is None else floor / m
    hi = math.inf if clip is None else clip / m
    w = probs[support]
    pos = w > 0
    n_pos = int(pos.sum())
    out = np.zeros_like(probs)
    capacity = (m - n_pos) * lo + n_pos * hi
    if capacity < 1:
        warnings.warn(
            f'clip={clip} cannot hold the probability mass: only {n_pos} of '
            f'{m} images have a positive weight (and floor={floor}); the '
            'positive ones are made equal, as if clip were '
            f'{m * (1 - (m - n_pos) * lo) / n_pos:.4g}')
        bounded = np.where(pos, (1 - (m - n_pos) * lo) / n_pos, lo)
        out[support] = bounded
        return out

    def mass(s: float) -> float:
        return float(np.clip(s * w, lo, hi).sum())

    with np.errstate(over='ignore'):
        breaks = np.concatenate([lo / w[pos], hi / w[pos], [0.0]])
    breaks = np.unique(breaks[np.isfinite(breaks)])
    # Largest breakpoint whose mass is <= 1 (breaks[0] = 0 always is).
    left, right = 0, breaks.size - 1
    while left < right:
        mid = (left + right + 1) // 2
        if mass(breaks[mid]) <= 1:
            left = mid
        else:
            right = mid - 1
    s = breaks[left]
    if mass(s) < 1:
        probe = breaks[left + 1] if left + 1 < breaks.size else 2 * s + 1
        probe = (s + probe) / 2
        scaled = probe * w
        free = (scaled > lo) & (scaled < hi)
        if free.any():  # else the mass is 1 up to rounding already
            fixed = float(np.clip(scaled[~free], lo, hi).sum())
            s = (1 - fixed) / float(w[free].sum())
    bounded = np.clip(s * w, lo, hi)
    out[support] = bounded / bounded.sum()
    return out


def sampling_weights(
        scheme: str,
        index: ImageClassIndex,
        image_difficulty: Optional[Sequence[float]] = None,
        *,
        beta: float = 1.0,
        thr: float = 0.001,
        temperature: float = 1.0,
        floor: Optional[float] = None,
        clip: Optional[float] = None,
        instances_per_class: Optional[Sequence[int]] = None) -> np.ndarray:
    """Per-image sampling probabilities of a scheme (see module docstring).

    Args:
        scheme (str): One of :data:`SCHEMES`.
        index (ImageClassIndex): Classes of every image.
        image_difficulty (Sequence[float], optional): ``(N,)`` difficulty
            ``D`` of every image, finite, >= 0, not all zero. None, or all
            values equal, gives the scheme's prior exactly. Ignored (but
            validated) by ``'uniform'``. Defaults to None.
        beta (float): Exponent of ``D`` in the repeat-factor schemes.
            Defaults to 1.0.
        thr (float): Threshold t of the repeat-factor schemes.
            Defaults to 0.001.
        temperature (float): ``D`` is replaced by ``D ** (1 / T)``; larger
            flattens. Defaults to 1.0.
        floor (float, optional): Minimum probability as a fraction of the
            mean probability over the images the scheme can draw.
            Defaults to None.
        clip (float, optional): Maximum probability as a multiple of that
            mean. Defaults to None.
        instances_per_class (Sequence[int], optional): ``(K,)`` objects
            of each class, needed by ``'instance_repeat_factor'``.
            Defaults to None.

    Returns:
        np.ndarray: ``(N,)`` float64 probabilities summing to 1.
    """
    check_scheme_args(scheme, beta, thr, temperature, floor, clip)
    num_images = index.num_images
    if num_images == 0:
        raise ValueError('the dataset has no images to sample from')
    difficulty = None
    if image_difficulty is not None:
        difficulty = check_image_difficulty(image_difficulty, num_images)
        # Equal difficulties are exactly the prior, bit for bit.
        if np.all(difficulty == difficulty[0]):
            difficulty = None
        elif temperature != 1.0:
            difficulty = difficulty**(1.0 / temperature)

    weights, support = SCHEME_PRIORS[scheme](
        index, difficulty, thr=thr, instances_per_class=instances_per_class)
    if scheme in REPEAT_FACTOR_SCHEMES and difficulty is not None:
        weights = weights * difficulty**beta
    total = weights.sum()
    if not total > 0:
        raise ValueError(
            f'the {scheme!r} scheme gives every image zero weight; give '
            'some image that the scheme can draw a positive difficulty')
    probs = weights / total
    if floor is not None or clip is not None:
        probs = _bound(probs, support, floor, clip)
    return probs


# ---------------------------------------------------------------------------
# the schemes: (index, difficulty or None, thr, instances_per_class) ->
# (weights before D ** beta, the images the scheme can draw)
Prior = Tuple[np.ndarray, np.ndarray]


def _uniform(index: ImageClassIndex, difficulty: Optional[np.ndarray],
             **_: object) -> Prior:
    n = index.num_images
    return np.ones(n, dtype=np.float64), np.ones(n, dtype=bool)


def _paper(index: ImageClassIndex, difficulty: Optional[np.ndarray],
           **_: object) -> Prior:
    weights, support = _uniform(index, None)
    return (weights if difficulty is None else difficulty), support


def _class_aware_scheme(index: ImageClassIndex,
                        difficulty: Optional[np.ndarray],
                        **_: object) -> Prior:
    return _class_aware(index, difficulty), index.classes_per_image() > 0


def _repeat_factor(index: ImageClassIndex, difficulty: Optional[np.ndarray],
                   thr: float, **_: object) -> Prior:
    return lvis_repeat_factors(index, thr), np.ones(
        index.num_images, dtype=bool)


def _instance_repeat_factor(index: ImageClassIndex,
                            difficulty: Optional[np.ndarray], thr: float,
                            instances_per_class: Optional[Sequence[int]],
                            **_: object) -> Prior:
    if instances_per_class is None:
        raise ValueError("the 'instance_repeat_factor' scheme needs "
                         'instances_per_class (objects of each class)')
    return (instance_repeat_factors(index, instances_per_class, thr),
            np.ones(index.num_images, dtype=bool))


#: Scheme name -> its prior (the module docstring says what each draws).
#: A new scheme is one function and one entry here; the repeat-factor
#: schemes also join REPEAT_FACTOR_SCHEMES (D ** beta).
SCHEME_PRIORS: Dict[str, Callable[..., Prior]] = {
    'uniform': _uniform,
    'paper': _paper,
    'class_aware': _class_aware_scheme,
    'repeat_factor': _repeat_factor,
    'instance_repeat_factor': _instance_repeat_factor,
}
#: The scheme names.
SCHEMES = tuple(SCHEME_PRIORS)


def dataset_sampling_weights(scheme: str,
                             index: DatasetIndex,
                             image_difficulty: Optional[
                                 Sequence[float]] = None,
                             **options: object) -> np.ndarray:
    """:func:`sampling_weights` over a dataset's sampler indices.

    The one place that gives a scheme what it needs from the dataset: the
    classes of every index and, for ``'instance_repeat_factor'``, the
    objects of every class.

    Args:
        scheme (str): One of :data:`SCHEMES`.
        index (DatasetIndex): The dataset's index.
        image_difficulty (Sequence[float], optional): ``(S,)`` difficulty
            of every sampler index. Defaults to None (the prior).
        **options: ``beta``, ``thr``, ``temperature``, ``floor``, ``clip``.

    Returns:
        np.ndarray: ``(S,)`` float64 probabilities summing to 1.
    """
    counts = (
        index.instances_per_class()
        if scheme == 'instance_repeat_factor' else None)
    return sampling_weights(
        scheme,
        index.class_index(),
        image_difficulty,
        instances_per_class=counts,
        **options)
