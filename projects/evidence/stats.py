"""Numbers of the evidence tables: per-seed summaries and paired differences.

One home for the three sections (digits, tabular, detection): an arm is
compared with another on the seeds both ran (same seed: same initial
weights and, until the first difficulty update, the same draws), with a
95 % t interval of the mean difference.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from scipy import stats as scipy_stats

__all__ = [
    'group_by_method', 'record_values', 'mean_std', 'format_mean_std',
    'median_range', 'paired_difference', 'format_paired'
]


def group_by_method(records: Sequence[dict]) -> Dict[str, List[dict]]:
    """Result records grouped by their ``'method'``, in first-seen order."""
    out: Dict[str, List[dict]] = {}
    for rec in records:
        out.setdefault(rec['method'], []).append(rec)
    return out


def record_values(recs: Sequence[dict], key: str) -> np.ndarray:
    """``key`` of every record as float64 (NaN where a record lacks it)."""
    return np.array([r.get(key, np.nan) for r in recs], dtype=np.float64)


def mean_std(values: Sequence[float]) -> tuple:
    """Mean and sample standard deviation (ddof 1; 0 for one value)."""
    values = np.asarray(values, dtype=np.float64)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return float(values.mean()), std


def format_mean_std(values: Sequence[float], digits: int = 2) -> str:
    """``'mean ± std'`` of per-seed values; 'n/a' if any is undefined."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.isnan(values).any():
        return 'n/a'
    if values.size == 1:
        return f'{values[0]:.{digits}f}'
    mean, std = mean_std(values)
    return f'{mean:.{digits}f} ± {std:.{digits}f}'


def median_range(values: Sequence[float], digits: int = 1) -> str:
    """``'median (min-max)'`` of per-seed values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.isnan(values).any():
        return 'n/a'
    return (f'{np.median(values):.{digits}f} ({values.min():.{digits}f}-'
            f'{values.max():.{digits}f})')


def paired_difference(
    records: Sequence[dict],
    key: str,
    method: str,
    reference: str,
    where: Optional[Callable[[dict],
                             bool]] = None) -> Optional[Dict[str, Any]]:
    """``method - reference`` of ``key`` over the seeds both have.

    Args:
        records (Sequence[dict]): Run records with ``method``, ``seed`` and
            ``key``.
        key (str): The metric.
        method (str): The arm.
        reference (str): The arm it is compared with.
        where (callable, optional): Keeps only the records it accepts
            (e.g. one data set). Defaults to None (all).

    Returns:
        dict or None: ``mean``, ``std``, ``ci95`` (t interval of the mean,
        ``(nan, nan)`` for one seed), ``wins`` / ``ties`` / ``losses`` and
        ``n``; None when no seed is shared.
    """
    chosen = [r for r in records if where is None or where(r)]
    ref = {r['seed']: r[key] for r in chosen if r['method'] == reference}
    diff = np.array([
        r[key] - ref[r['seed']]
        for r in chosen if r['method'] == method and r['seed'] in ref
    ],
                    dtype=np.float64)
    if diff.size == 0:
        return None
    mean, std = mean_std(diff)
    if diff.size > 1:
        half = float(
            scipy_stats.t.ppf(0.975, diff.size - 1) * std / np.sqrt(diff.size))
        ci = (mean - half, mean + half)
    else:
        ci = (float('nan'), float('nan'))
    return dict(
        mean=mean,
        std=std,
        ci95=ci,
        wins=int((diff > 0).sum()),
        ties=int((diff == 0).sum()),
        losses=int((diff < 0).sum()),
        n=int(diff.size))


def format_paired(p: Optional[Dict[str, Any]], digits: int = 2) -> str:
    """``'+1.23 [-0.40, +2.86] (4/0/1)'``: mean, 95 % interval, W/T/L."""
    if p is None:
        return 'n/a'
    lo, hi = p['ci95']
    interval = '' if np.isnan(lo) else f' [{lo:+.{digits}f}, {hi:+.{digits}f}]'
    return (f"{p['mean']:+.{digits}f}{interval} "
            f"({p['wins']}/{p['ties']}/{p['losses']})")
