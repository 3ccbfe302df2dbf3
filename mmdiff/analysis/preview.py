"""What an epoch will look like under each sampling scheme, before a run.

From the sampler's :class:`~mmdiff.core.DatasetIndex` alone (no model):
for every scheme the expected draws of every image and class in one
epoch, the mass per LVIS frequency group, Kish's effective sample size,
the most draws of one image and the fraction of images not drawn.

Schemes (:data:`PREVIEW_SCHEMES`), each at the config's epoch length
unless said:

- ``'uniform'``: draws with replacement, ``p_i = 1 / S``.
- ``'rfs_repeat'``: mmengine's ``ClassBalancedDataset`` (what mmdet's LVIS
  configs use): every image ``ceil(r_i)`` times, no draw, so the epoch is
  ``sum ceil(r_i)`` long and every image is seen.
- ``'rfs'``: draws ``∝ r_i`` (the expectation of detectron2's stochastic
  rounding), the difficulty sampler's prior.
- ``'class_aware'``: mmdet's ``ClassAwareSampler`` in expectation.
- ``'irfs'``: draws ``∝`` instance-aware repeat factors.

plus the config's own sampler (its prior, and with a hook dump its weights
for that epoch's difficulty). Shapes: ``S`` sampler indices, ``M`` unique
images, ``K`` classes.
"""
from typing import Any, Dict, Optional, Sequence

import numpy as np

from mmdiff.core.class_index import ImageClassIndex
from mmdiff.core.dataset_index import DatasetIndex
from mmdiff.core.diagnostics import sampling_diagnostics
from mmdiff.core.frequency import LVIS_FREQUENCY_GROUPS, frequency_groups
from mmdiff.core.repeat_factors import lvis_repeat_factors
from mmdiff.core.weights import dataset_sampling_weights
from .stats import class_sampling_mass

__all__ = [
    'PREVIEW_SCHEMES', 'expected_max_draws', 'preview_epoch', 'preview_schemes'
]

PREVIEW_SCHEMES = ('uniform', 'rfs_repeat', 'rfs', 'class_aware', 'irfs')
#: The sampler scheme behind each preview scheme (None: not a draw).
_SAMPLER_SCHEME = dict(
    uniform='uniform',
    rfs_repeat=None,
    rfs='repeat_factor',
    class_aware='class_aware',
    irfs='instance_repeat_factor')


def expected_max_draws(p: np.ndarray, n: int, tol: float = 1e-9) -> float:
    """Expected most draws of one image in ``n`` draws ``∝ p``.

    Poisson approximation of the multinomial (independent counts
    ``Poisson(n p_i)``): ``E max = sum_{k >= 0} (1 - prod_i F_i(k))``.

    Args:
        p (np.ndarray): ``(M,)`` image probabilities summing to 1.
        n (int): Draws.
        tol (float): Stop when ``prod_i F_i(k) > 1 - tol``.
    """
    lam = n * p[p > 0]
    if lam.size == 0:
        return 0.0
    pmf = np.exp(-lam)  # P(X_i = k), from k = 0
    cdf = pmf.copy()
    total, k = 0.0, 0
    while True:
        all_below = float(np.exp(np.log(np.minimum(cdf, 1.0)).sum()))
        total += 1.0 - all_below
        if all_below > 1.0 - tol or k > 10 * n + 100:
            return total
        k += 1
        pmf = pmf * lam / k
        cdf = cdf + pmf


def preview_epoch(index: DatasetIndex,
                  draws: np.ndarray,
                  image_group: np.ndarray,
                  exact: bool = False) -> Dict[str, Any]:
    """The numbers of one epoch from the (expected) draws of every index.

    Args:
        index (DatasetIndex): The sampler's index.
        draws (np.ndarray): ``(S,)`` expected draws per index, or with
            ``exact`` the fixed number of times each index is shown (a
            repeat wrapper, a sampler without replacement).
        image_group (np.ndarray): ``(M,)`` LVIS group of every unique image
            (its rarest class), -1 without classes.
        exact (bool): ``draws`` are fixed counts. Defaults to False
            (``sum(draws)`` independent draws ``∝ draws``).

    Returns:
        dict: ``epoch_length``, ``class_draws`` ``(K,)`` (drawn images
        that show each class, expected), ``group_mass`` (share of the
        draws per group), ``ess_fraction`` (Kish, of the ``M`` images),
        ``max_draws`` (most draws of one image; expected, Poisson
        approximation, for draws) and ``fraction_not_drawn`` (of the ``M``
        images; ``mean (1 - p_m)^n`` for draws).
    """
    n = int(round(float(draws.sum())))
    per_image = np.bincount(
        index.image_of_index, weights=draws, minlength=index.num_images)
    p = per_image / per_image.sum()
    drawn = None
    if exact:
        drawn = np.repeat(
            np.arange(index.num_images),
            per_image.round().astype(np.int64))
    diag = sampling_diagnostics(
        p,
        drawn_indices=drawn,
        groups=image_group,
        group_names=LVIS_FREQUENCY_GROUPS,
        num_draws=n)
    classes = ImageClassIndex.from_flat(index.object_labels,
                                        np.diff(index.object_offsets),
                                        index.num_classes)
    # fixed counts sum exactly; expected draws are n times the mass
    class_draws = class_sampling_mass(
        classes, per_image) if exact else n * class_sampling_mass(classes, p)
    return dict(
        epoch_length=n,
        class_draws=class_draws,
        group_mass=diag['group_mass'],
        ess_fraction=diag['ess_fraction'],
        max_draws=float(diag['max_repeats']) if exact else expected_max_draws(
            p, n),
        fraction_not_drawn=diag['fraction_not_drawn']
        if exact else diag['expected_fraction_not_drawn'])


def preview_schemes(
        index: DatasetIndex,
        class_frequency: Sequence[str],
        thr: float,
        images_per_epoch: Optional[int] = None,
        configured: Optional[Dict[str, Any]] = None,
        difficulty: Optional[np.ndarray] = None,
        config_row: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """Every scheme's epoch side by side.

    Args:
        index (DatasetIndex): The sampler's index of the training set.
        class_frequency (Sequence[str]): ``(K,)`` LVIS group of every class
            (``'r'`` / ``'c'`` / ``'f'``).
        thr (float): Repeat-factor threshold t.
        images_per_epoch (int, optional): Draws per epoch. Defaults to None
            (``S``).
        configured (dict, optional): A DifficultyClassAwareSampler:
            ``scheme`` and the options of
            :func:`~mmdiff.core.dataset_sampling_weights`; previewed as
            ``'config'`` (its prior) and, with ``difficulty``, as
            ``'config_difficulty'``. Defaults to None.
        difficulty (np.ndarray, optional): ``(S,)`` per-index difficulty
            (e.g. from a hook dump). Defaults to None.
        config_row (str, optional): For another sampler: ``'each_once'``
            (every index once, as mmengine's DefaultSampler) or the name of
            the row that is exactly what it draws; shown as ``'config'``.
            Defaults to None.

    Returns:
        dict: Scheme name -> :func:`preview_epoch`'s numbers.
    """
    n = index.num_indices if images_per_epoch is None else int(
        images_per_epoch)
    per_image = ImageClassIndex.from_flat(index.object_labels,
                                          np.diff(index.object_offsets),
                                          index.num_classes)
    image_group = frequency_groups(class_frequency, per_image)
    out: Dict[str, Dict[str, Any]] = {}
    for name in PREVIEW_SCHEMES:
        if name == 'rfs_repeat':
            # ClassBalancedDataset: ceil(r_i) copies of every index
            copies = np.ceil(lvis_repeat_factors(index.class_index(), thr))
            out[name] = preview_epoch(index, copies, image_group, exact=True)
            continue
        probs = dataset_sampling_weights(_SAMPLER_SCHEME[name], index, thr=thr)
        out[name] = preview_epoch(index, n * probs, image_group)
    if config_row == 'each_once':
        out['config'] = preview_epoch(
            index, np.ones(index.num_indices), image_group, exact=True)
    elif config_row is not None:
        out['config'] = out[config_row]
    if configured is not None:
        options = {k: v for k, v in configured.items() if k != 'scheme'}
        scheme = configured['scheme']
        out['config'] = preview_epoch(
            index, n * dataset_sampling_weights(scheme, index, **options),
            image_group)
        if difficulty is not None:
            out['config_difficulty'] = preview_epoch(
                index,
                n *
                dataset_sampling_weights(scheme, index, difficulty, **options),
                image_group)
    return out
