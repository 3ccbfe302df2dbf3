"""Validation of the synthetic LVIS set's parameters, before anything is
written: each error names the parameter and the range it must be in."""
from typing import Any, Dict

from .spec import check_num_classes

__all__ = ['check_params']


def _check_counts(p: Dict[str, Any]) -> None:
    seed = p['seed']
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f'seed must be a non-negative int, got {seed!r}')
    for name in ('num_train', 'num_val'):
        value = p[name]
        if not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive int, got {value!r}')
    lo, hi = p['objects_per_image']
    if not 1 <= lo <= hi:
        raise ValueError('objects_per_image must be (min, max) with '
                         f"1 <= min <= max, got {p['objects_per_image']!r}")


def _check_geometry(p: Dict[str, Any]) -> None:
    image_size = p['image_size']
    if len(image_size) != 2 or min(image_size) < 32:
        raise ValueError('image_size must be (width, height), each >= 32, '
                         f'got {image_size!r}')
    smin, smax = p['object_size']
    if not 4 <= smin <= smax or smax > min(image_size) - 6:
        raise ValueError('object_size must be (min, max) with 4 <= min <= '
                         'max <= min(image_size) - 6, got '
                         f"{p['object_size']!r}")


def _check_distribution(p: Dict[str, Any]) -> None:
    ratios = (p['imbalance_ratio'], p['val_imbalance_ratio'])
    if min(ratios) < 1:
        raise ValueError('imbalance ratios must be >= 1, got '
                         f'{ratios[0]!r}, {ratios[1]!r}')
    r, c = p['frequency_thresholds']
    if not 0 <= r <= c <= 1:
        raise ValueError('frequency_thresholds must be fractions '
                         '0 <= rare <= common <= 1, got '
                         f"{p['frequency_thresholds']!r}")
    for name in ('hard_variant_fraction', 'val_hard_variant_fraction'):
        value = p[name]
        if value is not None and not 0 <= value < 0.5:
            raise ValueError(f'{name} must be in [0, 0.5), got {value!r}')
    mix = p['hard_variant_colour_mix']
    number = isinstance(mix, (int, float)) and not isinstance(mix, bool)
    if not (number and 0 <= mix <= 1):
        raise ValueError('hard_variant_colour_mix must be in [0, 1], got '
                         f'{mix!r}')


def check_params(params: Dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first parameter out of range.

    Args:
        params (dict): Every parameter of
            :func:`~mmdiff.datasets.make_synthetic_lvis` but ``root``.
    """
    check_num_classes(params['num_classes'])
    _check_counts(params)
    _check_geometry(params)
    _check_distribution(params)
    quality = params['jpeg_quality']
    if not 1 <= quality <= 100:
        raise ValueError(f'jpeg_quality must be in [1, 100], got {quality!r}')
