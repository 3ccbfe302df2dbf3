"""Which objects go into which image of the synthetic LVIS set (labels only).

Class counts decay exponentially from the head (class 0) to the tail;
frequency groups follow LVIS's definition with thresholds scaled to the
size of the training split; a minority of each frequent class's objects
are marked as hard variants. Drawing is :mod:`.synthetic_render`.
"""
import math
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from mmdiff.core.frequency import LVIS_FREQUENCY_GROUPS, frequency_of_counts

__all__ = ['make_layout']


def _apportion(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Split ``total`` into integer parts proportional to ``weights``.

    Every part gets at least ``minimum``; the rest is shared by the
    largest-remainder method (ties broken by index, so it is deterministic).
    """
    k = len(weights)
    rest = total - minimum * k
    if rest < 0:
        raise ValueError(f'{total} objects cannot give {k} classes at least '
                         f'{minimum} each')
    quota = rest * weights / weights.sum()
    counts = np.floor(quota).astype(np.int64)
    remainder = quota - counts
    order = np.lexsort((np.arange(k), -remainder))
    counts[order[:rest - counts.sum()]] += 1
    return counts + minimum


def _long_tail_weights(num_classes: int, ratio: float) -> np.ndarray:
    """Exponentially decaying weights, head / tail = ``ratio``."""
    if num_classes == 1:
        return np.ones(1)
    return ratio**(-np.arange(num_classes) / (num_classes - 1))


def _layout_split(rng: np.random.Generator, num_images: int, num_classes: int,
                  objects_per_image: Tuple[int, int], ratio: float,
                  minimum: int) -> List[List[int]]:
    """Labels (0-based) of the objects of every image of one split."""
    lo, hi = objects_per_image
    sizes = rng.integers(lo, hi + 1, size=num_images)
    total = int(sizes.sum())
    counts = _apportion(total, _long_tail_weights(num_classes, ratio), minimum)
    pool = np.repeat(np.arange(num_classes), counts)
    rng.shuffle(pool)
    labels = []
    start = 0
    for size in sizes:
        labels.append([int(x) for x in pool[start:start + size]])
        start += size
    return labels


def _pick_hard(rng: np.random.Generator, labels: List[List[int]],
               hard_classes: Sequence[int],
               fraction: float) -> List[List[bool]]:
    """Mark about ``fraction`` of each hard class's objects as hard."""
    flags = [[False] * len(objs) for objs in labels]
    if fraction <= 0:
        return flags
    where: Dict[int, List[Tuple[int, int]]] = {c: [] for c in hard_classes}
    for i, objs in enumerate(labels):
        for j, c in enumerate(objs):
            if c in where:
                where[c].append((i, j))
    for c in hard_classes:
        slots = where[c]
        if len(slots) < 2:
            continue
        # At least one, and always a minority of the class.
        n = min(
            max(1, int(round(fraction * len(slots)))), (len(slots) - 1) // 2)
        for k in rng.choice(len(slots), size=n, replace=False):
            i, j = slots[k]
            flags[i][j] = True
    return flags


def make_layout(params: Dict[str, Any]) -> Dict[str, Any]:
    """Labels, hard-variant flags and frequencies of both splits.

    Args:
        params (dict): Complete parameters (see :func:`_normalise_params`).

    Returns:
        dict: ``labels`` and ``hard_flags`` (per split, per image, per
        object), training ``image_count`` / ``instance_count`` (arrays per
        class), ``frequency`` (letters), ``rare_max`` / ``common_max``
        (thresholds in images) and ``hard_classes`` (0-based).
    """
    num_classes = params['num_classes']
    num_train = params['num_train']
    objects_per_image = tuple(params['objects_per_image'])
    rng = np.random.default_rng([params['seed'], 0])
    labels = {
        'train':
        _layout_split(rng, num_train, num_classes, objects_per_image,
                      params['imbalance_ratio'], 1),
        'val':
        _layout_split(rng, params['num_val'], num_classes, objects_per_image,
                      params['val_imbalance_ratio'], 2),
    }
    image_count = np.zeros(num_classes, dtype=np.int64)
    instance_count = np.zeros(num_classes, dtype=np.int64)
    for objs in labels['train']:
        np.add.at(instance_count, objs, 1)
        image_count[sorted(set(objs))] += 1
    rare, common = params['frequency_thresholds']
    rare_max = int(math.floor(rare * num_train))
    common_max = int(math.floor(common * num_train))
    freq = [
        LVIS_FREQUENCY_GROUPS[g]
        for g in frequency_of_counts(image_count, (rare_max, common_max))
    ]
    hard_classes = [c for c in range(num_classes) if freq[c] == 'f']
    fractions = dict(
        train=params['hard_variant_fraction'],
        val=params['val_hard_variant_fraction'])
    if fractions['val'] is None:
        fractions['val'] = fractions['train']
    hard_flags = {
        split: _pick_hard(rng, labels[split], hard_classes, fractions[split])
        for split in ('train', 'val')
    }
    return dict(
        labels=labels,
        hard_flags=hard_flags,
        image_count=image_count,
        instance_count=instance_count,
        frequency=freq,
        rare_max=rare_max,
        common_max=common_max,
        hard_classes=hard_classes)
