"""The numbers behind the difficulty plots (no matplotlib).

Shapes: ``M`` objects, ``N`` images, ``K`` classes, ``G`` frequency
groups, ``E`` epochs, ``Q`` quantiles. Every function takes a loaded dump
(:func:`mmdiff.analysis.dump.load_dump`) or its arrays and returns plain
numbers; :mod:`mmdiff.analysis.figures` draws them.
"""
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from mmdiff.core import (ImageClassIndex, group_sums, image_groups,
                         repeat_factors_from_counts)
from .dump import load_dump

__all__ = [
    'QUANTILES', 'class_index_from_instances', 'class_sampling_mass',
    'repeat_factor_probs', 'group_quantiles', 'hardest_objects',
    'index_in_image', 'difficulty_over_epochs', 'histogram_stats',
    'sampling_mass_stats', 'over_epochs_stats', 'gallery_stats', 'is_wide',
    'quantile_names', 'object_groups'
]

#: Quantiles drawn and summarised (10 / 50 / 90 %).
QUANTILES = (0.1, 0.5, 0.9)
#: max / min ratio from which a positive axis is drawn in log scale.
WIDE_RANGE_RATIO = 10.0


def class_index_from_instances(instance_image: np.ndarray,
                               instance_label: np.ndarray, num_images: int,
                               num_classes: int) -> ImageClassIndex:
    """The image -> classes relation of the objects of a dump.

    Args:
        instance_image (np.ndarray): ``(M,)`` image of every object.
        instance_label (np.ndarray): ``(M,)`` 0-based class of every object.
        num_images (int): ``N``; images without objects get no class.
        num_classes (int): ``K``.

    Returns:
        ImageClassIndex: Classes of every image.
    """
    order = np.argsort(instance_image, kind='stable')
    lengths = np.bincount(instance_image, minlength=num_images)
    return ImageClassIndex.from_flat(instance_label[order], lengths,
                                     num_classes)


def class_sampling_mass(index: ImageClassIndex,
                        probs: np.ndarray) -> np.ndarray:
    """Probability that a draw shows class ``c``, for every class.

    ``mass_c = sum_{i ∋ c} p_i``: an image counts once for every class it
    contains, so the masses sum to the expected number of distinct classes
    per drawn image, not to 1.

    Args:
        index (ImageClassIndex): Classes of every image.
        probs (np.ndarray): ``(N,)`` image sampling probabilities.

    Returns:
        np.ndarray: ``(K,)`` float64 class masses.
    """
    probs = np.asarray(probs, dtype=np.float64)
    return np.bincount(
        index.indices,
        weights=probs[index.entry_images()],
        minlength=index.num_classes).astype(np.float64)


def repeat_factor_probs(index: ImageClassIndex, images_per_class: np.ndarray,
                        thr: float) -> np.ndarray:
    """Image probabilities of LVIS repeat-factor sampling.

    ``r_i = max_{c ∈ i} max(1, sqrt(thr / f_c))`` with ``f_c`` the
    fraction of the ``N`` images that contain ``c`` (1 for images without
    classes), normalised to sum to 1: the expectation of RFS with
    stochastic rounding. ``f_c`` comes from ``images_per_class`` (the
    dump's, i.e. the sampler's); the math is
    :func:`mmdiff.core.repeat_factors_from_counts`.

    Args:
        index (ImageClassIndex): Classes of every image.
        images_per_class (np.ndarray): ``(K,)`` training images per class.
        thr (float): RFS threshold ``t`` (LVIS: 0.001).

    Returns:
        np.ndarray: ``(N,)`` float64 probabilities.
    """
    factors = repeat_factors_from_counts(index, images_per_class, thr)
    return factors / factors.sum()


def group_quantiles(values: np.ndarray,
                    groups: np.ndarray,
                    num_groups: int,
                    quantiles: Sequence[float] = QUANTILES) -> np.ndarray:
    """Quantiles of ``values`` within each group.

    Args:
        values (np.ndarray): ``(M,)`` values.
        groups (np.ndarray): ``(M,)`` group id of each value.
        num_groups (int): ``G``.
        quantiles (Sequence[float]): ``Q`` levels in [0, 1].
            Defaults to (0.1, 0.5, 0.9).

    Returns:
        np.ndarray: ``(G, Q)`` float64, NaN for empty groups.
    """
    out = np.full((num_groups, len(quantiles)), np.nan)
    for g in range(num_groups):
        vals = values[groups == g]
        if vals.size:
            out[g] = np.quantile(vals, quantiles)
    return out


def hardest_objects(difficulty: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, largest first (ties by index).

    Args:
        difficulty (np.ndarray): ``(M,)`` values.
        k (int): How many.

    Returns:
        np.ndarray: ``(min(k, M),)`` int64 indices.
    """
    order = np.lexsort((np.arange(difficulty.size), -difficulty))
    return order[:k].astype(np.int64)


def index_in_image(instance_image: np.ndarray) -> np.ndarray:
    """Position of every object among its image's objects.

    Args:
        instance_image (np.ndarray): ``(M,)`` image of every object.

    Returns:
        np.ndarray: ``(M,)`` int64; the GT index of the object in its
        image, as the hook counts it.
    """
    order = np.argsort(instance_image, kind='stable')
    sorted_images = instance_image[order]
    starts = np.searchsorted(sorted_images, sorted_images, side='left')
    out = np.empty(instance_image.size, dtype=np.int64)
    out[order] = np.arange(instance_image.size) - starts
    return out


def difficulty_over_epochs(
        dumps: Sequence[Tuple[int, str]],
        last: Dict[str, Any],
        objects: np.ndarray,
        quantiles: Sequence[float] = QUANTILES) -> Dict[str, np.ndarray]:
    """Per-group quantiles of D and D of chosen objects, epoch by epoch.

    Dumps are read one at a time, so memory stays at one epoch. An object
    is followed only through the epochs whose object list (images and
    labels) equals that of ``last``; elsewhere its value is NaN.

    Args:
        dumps (Sequence[tuple[int, str]]): ``(epoch, path)`` of
            :func:`find_dumps`, the last one being ``last``.
        last (dict): The loaded last dump.
        objects (np.ndarray): ``(T,)`` objects to follow (indices into
            ``last``).
        quantiles (Sequence[float]): ``Q`` levels. Defaults to
            (0.1, 0.5, 0.9).

    Returns:
        dict: ``epochs`` ``(E,)``, ``quantiles`` ``(E, G, Q)``,
        ``counts`` ``(E, G)`` objects per group, ``overall`` ``(E, Q)``
        quantiles over all objects and ``trajectories`` ``(E, T)``.
    """
    num_groups = len(last['group_names'])
    epochs, quants, counts, overall, trajs = [], [], [], [], []
    for epoch, path in dumps:
        dump = last if path == last.get('path') else load_dump(path)
        d = dump['instance_difficulty']
        groups = dump['class_group'][dump['instance_label']]
        epochs.append(epoch)
        quants.append(group_quantiles(d, groups, num_groups, quantiles))
        counts.append(np.bincount(groups, minlength=num_groups))
        nan = np.full(len(quantiles), np.nan)
        overall.append(np.quantile(d, quantiles) if d.size else nan)
        same = (
            np.array_equal(dump['instance_image'], last['instance_image'])
            and np.array_equal(dump['instance_label'], last['instance_label']))
        trajs.append(d[objects] if same else np.full(objects.size, np.nan))
    return dict(
        epochs=np.asarray(epochs, dtype=np.int64),
        quantiles=np.stack(quants),
        counts=np.stack(counts),
        overall=np.stack(overall),
        trajectories=np.stack(trajs).astype(np.float64))


def is_wide(values: np.ndarray, ratio: float = WIDE_RANGE_RATIO) -> bool:
    """Whether positive ``values`` span at least ``ratio`` (log axis)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() <= 0:
        return False
    return bool(values.max() / values.min() >= ratio)


def _bins(values: np.ndarray, log: bool, num: int = 40) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        pad = 0.05 * abs(lo) if lo else 0.5
        lo, hi = lo - pad, hi + pad
        log = log and lo > 0
    if log:
        return np.geomspace(lo, hi, num + 1)
    return np.linspace(lo, hi, num + 1)


def quantile_names(quantiles: Sequence[float] = QUANTILES) -> List[str]:
    """``['q10', 'q50', 'q90']`` for the default quantiles."""
    return [f'q{100 * q:g}' for q in quantiles]


def object_groups(dump: Dict[str, Any]) -> np.ndarray:
    """``(M,)`` frequency group of every object (its class's)."""
    return dump['class_group'][dump['instance_label']]


def histogram_stats(dump: Dict[str, Any]) -> Dict[str, Any]:
    """D of every object per frequency group: summary and shared bins.

    Returns:
        dict: ``log_x`` (D spans at least :data:`WIDE_RANGE_RATIO`),
        ``bin_edges``, ``counts`` per group name, ``values`` per group name
        and ``quantiles`` (``n``, ``mean`` and :data:`QUANTILES` per group
        and for ``'all'``).
    """
    d = dump['instance_difficulty']
    groups = object_groups(dump)
    values = {n: d[groups == g] for g, n in enumerate(dump['group_names'])}
    stats: Dict[str, Any] = {}
    for name, vals in list(values.items()) + [('all', d)]:
        qs = np.quantile(vals, QUANTILES) if vals.size else [np.nan] * 3
        stats[name] = dict(
            n=int(vals.size),
            mean=float(vals.mean()) if vals.size else np.nan,
            **dict(zip(quantile_names(), (float(q) for q in qs))))
    log_x = is_wide(d)
    edges = _bins(d, log_x) if d.size else np.linspace(0, 1, 41)
    counts = {n: np.histogram(v, bins=edges)[0] for n, v in values.items()}
    return dict(
        log_x=log_x,
        bin_edges=edges,
        counts=counts,
        values=values,
        quantiles=stats)


def sampling_mass_stats(dump: Dict[str, Any],
                        rfs_thr: float = 0.001) -> Dict[str, Any]:
    """Sampling mass per class and per group: the dump, RFS and uniform.

    Args:
        dump (dict): A loaded dump.
        rfs_thr (float): RFS threshold ``t``. Defaults to 0.001 (LVIS).

    Returns:
        dict: ``rfs_thr``, ``class_mass`` (``images_per_class`` and the
        ``difficulty`` / ``rfs`` / ``uniform`` mass per class),
        ``class_mass_per_group`` and ``image_mass_per_group`` (images in
        the rarest group among their classes; sums to 1 over groups and
        ``'none'``, the images without objects), each per scheme.
    """
    names, class_group = dump['group_names'], dump['class_group']
    num_images = dump['image_difficulty'].size
    index = class_index_from_instances(dump['instance_image'],
                                       dump['instance_label'], num_images,
                                       class_group.size)
    ipc = dump['images_per_class']
    probs = dict(
        difficulty=dump['sampling_probs'] / dump['sampling_probs'].sum(),
        rfs=repeat_factor_probs(index, ipc, rfs_thr),
        uniform=np.full(num_images, 1.0 / max(num_images, 1)))
    mass = {k: class_sampling_mass(index, p) for k, p in probs.items()}
    image_group = image_groups(class_group, index)
    per_class, per_image = {}, {}
    for scheme, p in probs.items():
        per_class[scheme] = dict(
            zip(
                names,
                np.bincount(
                    class_group, weights=mass[scheme], minlength=len(names))))
        per_image[scheme] = dict(
            zip(names, group_sums(p, image_group, len(names))))
        per_image[scheme]['none'] = float(p[image_group < 0].sum())
    return dict(
        rfs_thr=rfs_thr,
        class_mass=dict(images_per_class=ipc, **mass),
        class_mass_per_group=per_class,
        image_mass_per_group=per_image)


def over_epochs_stats(dumps: Sequence[Tuple[int, str]], last: Dict[str, Any],
                      num_trajectories: int) -> Dict[str, Any]:
    """D per group over epochs, and the hardest objects' trajectories.

    Returns:
        dict: :func:`difficulty_over_epochs`'s arrays, plus ``objects``
        and ``trajectory_info`` (per followed object: ``object``,
        ``image``, ``index_in_image``, ``label``, ``class_name``, ``group``
        and its D over epochs).
    """
    names = last['group_names']
    objects = hardest_objects(last['instance_difficulty'], num_trajectories)
    series = difficulty_over_epochs(dumps, last, objects)
    pos = index_in_image(last['instance_image'])
    info = []
    for t, obj in enumerate(objects):
        label = int(last['instance_label'][obj])
        info.append(
            dict(
                object=int(obj),
                image=int(last['instance_image'][obj]),
                index_in_image=int(pos[obj]),
                label=label,
                class_name=last['class_name'][label],
                group=names[int(last['class_group'][label])],
                difficulty=series['trajectories'][:, t]))
    return dict(series, objects=objects, trajectory_info=info)


def gallery_stats(dump: Dict[str, Any], topk: int) -> Dict[str, Any]:
    """The ``topk`` hardest images, with their objects' boxes and D.

    Images are ranked by ``image_difficulty`` (ties by index).

    Returns:
        dict: ``images``: per chosen image its ``index``, ``image_id``,
        ``file``, ``difficulty`` and, per object, ``boxes``, ``labels``,
        ``class_names`` and ``object_difficulty``; ``d_range`` (min, max
        of the shown objects' D) and ``log`` (D spans a wide range).
    """
    img_d = dump['image_difficulty']
    chosen = hardest_objects(img_d, topk)
    order = np.argsort(dump['instance_image'], kind='stable')
    starts = np.concatenate(
        [[0],
         np.cumsum(np.bincount(dump['instance_image'], minlength=img_d.size))])
    images, shown = [], []
    for i in chosen:
        objs = order[starts[i]:starts[i + 1]]
        labels = dump['instance_label'][objs]
        d = dump['instance_difficulty'][objs]
        shown.append(d)
        images.append(
            dict(
                index=int(i),
                image_id=int(dump['img_id'][i]),
                file=dump['img_path'][i],
                difficulty=float(img_d[i]),
                boxes=dump['instance_box'][objs],
                labels=labels,
                class_names=[dump['class_name'][c] for c in labels],
                object_difficulty=d))
    values = np.concatenate(shown) if shown else np.zeros(0)
    values = values if values.size else np.ones(1)
    return dict(
        images=images,
        d_range=(float(values.min()), float(values.max())),
        log=is_wide(values))
