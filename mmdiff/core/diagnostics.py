"""How concentrated a sampling distribution is, and what a draw did."""
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ['sampling_diagnostics', 'group_sums']


def sampling_diagnostics(probs: Sequence[float],
                         drawn_indices: Optional[Sequence[int]] = None,
                         groups: Optional[Sequence[int]] = None,
                         group_names: Optional[Sequence[str]] = None,
                         num_draws: Optional[int] = None) -> Dict[str, object]:
    """How concentrated a sampling distribution is, and what a draw did.

    The effective sample size is Kish's, ``ESS = (sum p)^2 / sum p^2 =
    1 / sum p^2`` for normalised ``p``: the number of equally likely images
    with the same collision probability (``N`` for uniform, 1 for a point
    mass). Expected values are for ``n`` independent draws with
    replacement.

    Args:
        probs (Sequence[float]): ``(N,)`` non-negative weights (normalised
            here).
        drawn_indices (Sequence[int], optional): Image indices actually
            drawn, e.g. one epoch's global list. Defaults to None.
        groups (Sequence[int], optional): ``(N,)`` group id per image
            (e.g. :func:`frequency_groups`), -1 for no group. Defaults to
            None.
        group_names (Sequence[str], optional): Name of each group id.
            Defaults to the ids as strings.
        num_draws (int, optional): ``n`` for the expected values when
            ``drawn_indices`` is None. Defaults to ``N``.

    Returns:
        dict: Plain python values: ``num_images``, ``num_draws``,
        ``support`` (images with p > 0), ``ess``, ``ess_fraction``
        (``ess / N``), ``max_prob_ratio`` (``N * max p``),
        ``expected_max_repeats`` (``n * max p``, draws of the likeliest
        image), ``expected_fraction_not_drawn`` (``mean (1 - p)^n``); with
        ``drawn_indices`` also ``max_repeats`` and ``fraction_not_drawn``;
        with ``groups`` also ``group_mass`` (probability per group) and,
        with draws, ``group_draw_fraction``.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or np.any(
            p < 0) or not p.sum() > 0:
        raise ValueError('probs must be a non-empty 1-D array of finite, '
                         'non-negative weights with a positive sum')
    p = p / p.sum()
    num_images = p.size
    counts = None
    if drawn_indices is not None:
        drawn = np.asarray(drawn_indices, dtype=np.int64).reshape(-1)
        if drawn.size and (drawn.min() < 0 or drawn.max() >= num_images):
            raise ValueError(
                f'drawn_indices must lie in [0, {num_images}), got '
                f'{drawn.min()} .. {drawn.max()}')
        counts = np.bincount(drawn, minlength=num_images)
        n = int(drawn.size)
    else:
        n = num_images if num_draws is None else int(num_draws)
    ess = 1.0 / float(np.square(p).sum())
    out: Dict[str, object] = {
        'num_images': num_images,
        'num_draws': n,
        'support': int(np.count_nonzero(p)),
        'ess': ess,
        'ess_fraction': ess / num_images,
        'max_prob_ratio': float(p.max() * num_images),
        'expected_max_repeats': float(p.max() * n),
        'expected_fraction_not_drawn': 1.0,
    }
    if n:
        # (1 - p)^n through log1p: accurate for tiny p, 0 for p = 1.
        with np.errstate(divide='ignore'):
            out['expected_fraction_not_drawn'] = float(
                np.mean(np.exp(n * np.log1p(-p))))
    if counts is not None:
        out['max_repeats'] = int(counts.max()) if n else 0
        out['fraction_not_drawn'] = float(np.mean(counts == 0))
    if groups is not None:
        out.update(_group_diagnostics(p, counts, n, groups, group_names))
    return out


def group_sums(values: np.ndarray, groups: np.ndarray,
               num_groups: int) -> np.ndarray:
    """The sum of ``values`` over the images of each group.

    Args:
        values (np.ndarray): ``(N,)`` per image (e.g. its probability).
        groups (np.ndarray): ``(N,)`` group id, -1 for none.
        num_groups (int): ``G``.

    Returns:
        np.ndarray: ``(G,)`` float64 (images of group -1 left out).
    """
    keep = groups >= 0
    return np.bincount(
        groups[keep], weights=values[keep],
        minlength=num_groups).astype(np.float64)


def _group_diagnostics(p: np.ndarray, counts: Optional[np.ndarray], n: int,
                       groups: Sequence[int],
                       group_names: Optional[Sequence[str]]) -> dict:
    """``group_mass`` (and ``group_draw_fraction`` with draws)."""
    num_images = p.size
    groups = np.asarray(groups, dtype=np.int64)
    if groups.shape != (num_images, ):
        raise ValueError(f'groups must have shape ({num_images},), got '
                         f'{groups.shape}')
    num_groups = max(
        int(groups.max()) + 1,
        len(group_names) if group_names else 0)
    names = (
        list(group_names)
        if group_names is not None else [str(g) for g in range(num_groups)])
    if len(names) < num_groups:
        raise ValueError(f'group_names has {len(names)} names but groups has '
                         f'ids up to {num_groups - 1}')
    mass = group_sums(p, groups, num_groups)
    out = dict(group_mass={name: float(m) for name, m in zip(names, mass)})
    if counts is not None:
        drawn = group_sums(counts, groups, num_groups)
        out['group_draw_fraction'] = {
            name: float(c / n) if n else 0.0
            for name, c in zip(names, drawn)
        }
    return out
