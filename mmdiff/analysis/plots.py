"""Diagnostics plots of the per-epoch dumps of ``DifficultyHook``.

Shapes: ``M`` objects (GT instances), ``N`` images, ``K`` classes, ``G``
frequency groups (LVIS r / c / f), ``E`` epochs.

``DifficultyHook(dump=True)`` writes ``<work_dir>/difficulty/epoch_<e>.npz``
after every epoch (see :data:`DUMP_KEYS`). From those files this module
draws, with matplotlib's object-oriented API (Agg canvas, no pyplot, so the
global backend is never switched):

1. :func:`plot_difficulty_histograms`: D of every object per frequency
   group, at one epoch.
2. :func:`plot_sampling_mass`: sampling mass per class against the class's
   training-image count and against LVIS repeat-factor sampling (RFS,
   Gupta et al., CVPR 2019).
3. :func:`plot_difficulty_over_epochs`: 10 / 50 / 90 % quantiles of D per
   group across epochs and the trajectories of the hardest objects.
4. :func:`plot_hardest_images`: the hardest training images with their
   boxes coloured by D; it needs the training annotation file and images,
   matched to dataset indices by :func:`match_dataset_images`.

:func:`plot_difficulty_dumps` runs all four and writes ``summary.json``
with the numbers plotted.
"""
import json
import os
import os.path as osp
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import (FuncFormatter, LogLocator, MaxNLocator,
                               NullFormatter)

from mmdiff.core import ImageClassIndex, lvis_repeat_factors

__all__ = [
    'DUMP_KEYS', 'PLOT_FILES', 'GalleryError', 'find_dumps', 'load_dump',
    'class_index_from_instances', 'class_sampling_mass', 'repeat_factor_probs',
    'group_mass', 'group_quantiles', 'hardest_objects', 'index_in_image',
    'difficulty_over_epochs', 'match_dataset_images',
    'plot_difficulty_histograms', 'plot_sampling_mass',
    'plot_difficulty_over_epochs', 'plot_hardest_images',
    'plot_difficulty_dumps'
]

#: Arrays of one ``epoch_<e>.npz`` dump of ``DifficultyHook``.
DUMP_KEYS = ('epoch', 'instance_difficulty', 'instance_image',
             'instance_label', 'image_difficulty', 'sampling_probs',
             'class_group', 'images_per_class', 'group_names')
#: Quantiles drawn and summarised (10 / 50 / 90 %).
QUANTILES = (0.1, 0.5, 0.9)
#: max / min ratio from which a positive axis is drawn in log scale.
WIDE_RANGE_RATIO = 10.0
#: mmdet's LVISV1Dataset strips this from ``coco_url`` to get the path.
COCO_URL_PREFIX = 'http://images.cocodataset.org/'
#: Colour of each frequency group, rarest first.
GROUP_COLOURS = ('tab:red', 'tab:orange', 'tab:blue')
#: Plot files written by :func:`plot_difficulty_dumps`.
PLOT_FILES = dict(
    histograms='difficulty_histograms.png',
    sampling_mass='sampling_mass.png',
    over_epochs='difficulty_over_epochs.png',
    gallery='hardest_images.png')

_DUMP_NAME = re.compile(r'^epoch_(\d+)\.npz$')


class GalleryError(RuntimeError):
    """The gallery cannot be drawn (missing or mismatching annotations)."""


# ---------------------------------------------------------------------------
# Dumps


def find_dumps(dump_dir: str) -> List[Tuple[int, str]]:
    """The ``epoch_<e>.npz`` files of a dump directory, by epoch.

    Args:
        dump_dir (str): ``<work_dir>/difficulty``.

    Returns:
        list[tuple[int, str]]: ``(epoch, path)`` in increasing epoch order.

    Raises:
        FileNotFoundError: If the directory holds no dump.
    """
    found = []
    if osp.isdir(dump_dir):
        for name in os.listdir(dump_dir):
            match = _DUMP_NAME.match(name)
            if match:
                found.append((int(match.group(1)), osp.join(dump_dir, name)))
    if not found:
        raise FileNotFoundError(
            f'no epoch_<e>.npz dumps in {dump_dir!r}; train with '
            'DifficultyHook(dump=True) to write them')
    return sorted(found)


def load_dump(path: str) -> Dict[str, np.ndarray]:
    """Load and check one dump of ``DifficultyHook``.

    Args:
        path (str): An ``epoch_<e>.npz`` file.

    Returns:
        dict[str, np.ndarray]: The arrays of :data:`DUMP_KEYS`;
        ``group_names`` as a ``list[str]``, ``epoch`` as an ``int``.

    Raises:
        ValueError: If a key is missing or the shapes disagree.
    """
    with np.load(path, allow_pickle=False) as npz:
        missing = [key for key in DUMP_KEYS if key not in npz.files]
        if missing:
            raise ValueError(f'{path} lacks the keys {missing}')
        dump = {key: npz[key] for key in DUMP_KEYS}
    dump['epoch'] = int(dump['epoch'])
    dump['group_names'] = [str(name) for name in dump['group_names']]
    num_objects = dump['instance_difficulty'].shape[0]
    num_images = dump['image_difficulty'].shape[0]
    num_classes = dump['class_group'].shape[0]
    shapes = dict(
        instance_image=(num_objects, ),
        instance_label=(num_objects, ),
        sampling_probs=(num_images, ),
        images_per_class=(num_classes, ))
    for key, shape in shapes.items():
        if dump[key].shape != shape:
            raise ValueError(f'{path}: {key} has shape {dump[key].shape}, '
                             f'expected {shape}')
    if num_objects and (dump['instance_image'].min() < 0
                        or dump['instance_image'].max() >= num_images):
        raise ValueError(f'{path}: instance_image outside [0, {num_images})')
    if num_objects and (dump['instance_label'].min() < 0
                        or dump['instance_label'].max() >= num_classes):
        raise ValueError(f'{path}: instance_label outside [0, {num_classes})')
    if num_classes and dump['class_group'].max() >= len(dump['group_names']):
        raise ValueError(f'{path}: class_group has ids beyond group_names '
                         f'{dump["group_names"]}')
    return dump


# ---------------------------------------------------------------------------
# Numbers behind the plots


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
    :func:`mmdiff.core.lvis_repeat_factors`.

    Args:
        index (ImageClassIndex): Classes of every image.
        images_per_class (np.ndarray): ``(K,)`` training images per class.
        thr (float): RFS threshold ``t`` (LVIS: 0.001).

    Returns:
        np.ndarray: ``(N,)`` float64 probabilities.
    """
    if not thr > 0:
        raise ValueError(f'thr must be > 0, got {thr!r}')
    ipc = np.asarray(images_per_class, dtype=np.float64)
    if np.array_equal(ipc, index.images_per_class()):
        factors = lvis_repeat_factors(index, thr)
    else:
        # Counted on another index than the dump's objects: trust the dump.
        with np.errstate(divide='ignore'):
            class_factor = np.maximum(1.0,
                                      np.sqrt(thr * index.num_images / ipc))
        class_factor[ipc <= 0] = 1.0  # no image: no repeat
        factors = index.reduce_per_image(class_factor, 'max', empty=1.0)
    return factors / factors.sum()


def group_mass(probs: np.ndarray, image_group: np.ndarray,
               num_groups: int) -> np.ndarray:
    """Sampling mass of each group of images.

    Args:
        probs (np.ndarray): ``(N,)`` image probabilities.
        image_group (np.ndarray): ``(N,)`` group id, -1 for none.
        num_groups (int): ``G``.

    Returns:
        np.ndarray: ``(G,)`` mass per group (images of group -1 left out).
    """
    keep = image_group >= 0
    return np.bincount(
        image_group[keep], weights=probs[keep], minlength=num_groups)


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


# ---------------------------------------------------------------------------
# Plot helpers


def _is_wide(values: np.ndarray, ratio: float = WIDE_RANGE_RATIO) -> bool:
    """Whether positive ``values`` span at least ``ratio`` (log axis)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() <= 0:
        return False
    return bool(values.max() / values.min() >= ratio)


def _log_axis(axis: Any, values: np.ndarray) -> None:
    """Log scale with plain tick labels (1, 2, 5 per decade when narrow)."""
    axis.axes.set(**{f'{axis.axis_name}scale': 'log'})
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    decades = (np.log10(values.max() / values.min()) if values.size else 0)
    subs = (1.0, 2.0, 5.0) if decades < 2.5 else (1.0, )
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}'))
    axis.set_minor_formatter(NullFormatter())


def _bins(values: np.ndarray, log: bool, num: int = 40) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        pad = 0.05 * abs(lo) if lo else 0.5
        lo, hi = lo - pad, hi + pad
        log = log and lo > 0
    if log:
        return np.geomspace(lo, hi, num + 1)
    return np.linspace(lo, hi, num + 1)


def _save(fig: Figure, path: str, dpi: int) -> str:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _to_json(value: Any) -> Any:
    """Plain JSON values; NaN / inf become None."""
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _to_json(value.tolist())
    if isinstance(value, (np.integer, )):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None
    return value


def _quantile_names(quantiles: Sequence[float]) -> List[str]:
    return [f'q{100 * q:g}' for q in quantiles]


# ---------------------------------------------------------------------------
# 1. Histograms of D per frequency group


def plot_difficulty_histograms(dump: Dict[str, Any],
                               path: str,
                               dpi: int = 100) -> Dict[str, Any]:
    """Histogram of the objects' D, one panel per frequency group.

    The x axis is logarithmic when D spans at least
    :data:`WIDE_RANGE_RATIO`; all panels share the bins.

    Args:
        dump (dict): A loaded dump (:func:`load_dump`).
        path (str): PNG file to write.
        dpi (int): Resolution. Defaults to 100.

    Returns:
        dict: ``log_x``, ``bin_edges``, ``counts`` per group name and
        ``quantiles`` (``n``, ``mean`` and the :data:`QUANTILES` of D per
        group and for ``'all'``).
    """
    d = dump['instance_difficulty']
    names = dump['group_names']
    groups = dump['class_group'][dump['instance_label']]
    qnames = _quantile_names(QUANTILES)
    stats: Dict[str, Any] = {}
    for name, vals in [(n, d[groups == g])
                       for g, n in enumerate(names)] + [('all', d)]:
        entry: Dict[str, Any] = dict(n=int(vals.size))
        qs = np.quantile(vals, QUANTILES) if vals.size else [np.nan] * 3
        entry['mean'] = float(vals.mean()) if vals.size else np.nan
        entry.update(zip(qnames, (float(q) for q in qs)))
        stats[name] = entry

    log_x = _is_wide(d)
    edges = _bins(d, log_x) if d.size else np.linspace(0, 1, 41)
    fig = Figure(figsize=(4.2 * len(names), 3.6), layout='constrained')
    axes = fig.subplots(1, len(names), sharex=True, squeeze=False)[0]
    counts = {}
    for g, (ax, name) in enumerate(zip(axes, names)):
        vals = d[groups == g]
        hist, _ = np.histogram(vals, bins=edges)
        counts[name] = hist
        colour = GROUP_COLOURS[g % len(GROUP_COLOURS)]
        ax.hist(vals, bins=edges, color=colour, alpha=0.8)
        if vals.size:
            ax.axvline(
                stats[name]['q50'],
                color='k',
                ls='--',
                lw=1,
                label=f'median {stats[name]["q50"]:.3g}')
            ax.legend(fontsize=8)
        else:
            ax.text(
                0.5,
                0.5,
                'no objects',
                transform=ax.transAxes,
                ha='center',
                va='center')
        ax.set_title(f'group {name}: {vals.size} objects')
        ax.set_xlabel('instance difficulty D')
        if log_x:
            _log_axis(ax.xaxis, d)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel('objects')
    fig.suptitle(f'Instance difficulty per frequency group, epoch '
                 f'{dump["epoch"]}')
    _save(fig, path, dpi)
    return dict(log_x=log_x, bin_edges=edges, counts=counts, quantiles=stats)


# ---------------------------------------------------------------------------
# 2. Sampling mass per class


def plot_sampling_mass(dump: Dict[str, Any],
                       path: str,
                       rfs_thr: float = 0.001,
                       dpi: int = 100) -> Dict[str, Any]:
    """Sampling mass per class against class frequency and against RFS.

    Left: class mass (:func:`class_sampling_mass`) of the dumped
    sampling probabilities, of RFS and of uniform sampling against the
    number of training images of the class (log-log). Right: class mass
    of the dumped probabilities against that of RFS, with the diagonal.

    Args:
        dump (dict): A loaded dump (:func:`load_dump`).
        path (str): PNG file to write.
        rfs_thr (float): RFS threshold ``t``. Defaults to 0.001 (LVIS).
        dpi (int): Resolution. Defaults to 100.

    Returns:
        dict: ``rfs_thr``, ``class_mass`` (``images_per_class`` and the
        ``difficulty`` / ``rfs`` / ``uniform`` mass per class),
        ``class_mass_per_group`` and ``image_mass_per_group`` (images in
        the rarest group among their classes; sums to 1 over groups and
        ``'none'``, the images without objects), each per scheme.
    """
    names = dump['group_names']
    class_group = dump['class_group']
    num_images = dump['image_difficulty'].size
    num_classes = class_group.size
    index = class_index_from_instances(dump['instance_image'],
                                       dump['instance_label'], num_images,
                                       num_classes)
    ipc = dump['images_per_class']
    probs = dict(
        difficulty=dump['sampling_probs'] / dump['sampling_probs'].sum(),
        rfs=repeat_factor_probs(index, ipc, rfs_thr),
        uniform=np.full(num_images, 1.0 / max(num_images, 1)))
    mass = {k: class_sampling_mass(index, p) for k, p in probs.items()}
    image_group = index.reduce_per_image(class_group, 'min', empty=-1)
    class_mass_per_group, image_mass_per_group = {}, {}
    for scheme, p in probs.items():
        per_group = np.bincount(
            class_group, weights=mass[scheme], minlength=len(names))
        class_mass_per_group[scheme] = dict(zip(names, per_group))
        img_mass = group_mass(p, image_group, len(names))
        image_mass_per_group[scheme] = dict(zip(names, img_mass))
        image_mass_per_group[scheme]['none'] = float(p[image_group < 0].sum())

    fig = Figure(figsize=(11, 4.4), layout='constrained')
    ax_freq, ax_rfs = fig.subplots(1, 2)
    has = ipc > 0
    for g, name in enumerate(names):
        sel = has & (class_group == g)
        if not sel.any():
            continue
        colour = GROUP_COLOURS[g % len(GROUP_COLOURS)]
        ax_freq.scatter(
            ipc[sel],
            mass['difficulty'][sel],
            s=14,
            color=colour,
            label=f'difficulty, {name}')
        ax_rfs.scatter(
            mass['rfs'][sel],
            mass['difficulty'][sel],
            s=14,
            color=colour,
            label=f'{name} ({int(sel.sum())} classes)')
    if has.any():
        ax_freq.scatter(
            ipc[has],
            mass['rfs'][has],
            s=14,
            marker='x',
            color='0.45',
            lw=0.8,
            label=f'RFS (t={rfs_thr:g})')
        order = np.argsort(ipc[has])
        ax_freq.plot(
            ipc[has][order],
            mass['uniform'][has][order],
            color='k',
            lw=1,
            ls='--',
            label='uniform')
        both = np.concatenate([mass['rfs'][has], mass['difficulty'][has]])
        both = both[both > 0]
        if both.size:
            lo, hi = both.min(), both.max()
            ax_rfs.plot([lo, hi], [lo, hi],
                        color='k',
                        lw=1,
                        ls='--',
                        label='equal mass')
    all_mass = np.concatenate([m[has] for m in mass.values()])
    _log_axis(ax_freq.xaxis, ipc[has])
    _log_axis(ax_rfs.xaxis, mass['rfs'][has])
    for ax in (ax_freq, ax_rfs):
        _log_axis(ax.yaxis, all_mass)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which='both', lw=0.5)
    ax_freq.set_xlabel('training images containing the class')
    ax_freq.set_ylabel('class sampling mass')
    ax_freq.set_title('Mass per class vs class frequency')
    ax_rfs.set_xlabel(f'class mass under RFS (t={rfs_thr:g})')
    ax_rfs.set_ylabel('class mass under difficulty sampling')
    ax_rfs.set_title('Difficulty sampling vs repeat-factor sampling')
    fig.suptitle(f'Sampling mass per class, probabilities after epoch '
                 f'{dump["epoch"]}')
    _save(fig, path, dpi)
    return dict(
        rfs_thr=rfs_thr,
        class_mass=dict(images_per_class=ipc, **mass),
        class_mass_per_group=class_mass_per_group,
        image_mass_per_group=image_mass_per_group)


# ---------------------------------------------------------------------------
# 3. D over epochs


def plot_difficulty_over_epochs(dumps: Sequence[Tuple[int, str]],
                                last: Dict[str, Any],
                                path: str,
                                num_trajectories: int = 5,
                                dpi: int = 100) -> Dict[str, Any]:
    """Quantile bands of D per group over epochs, and the hardest objects.

    Left: the median of D per group with a band from the 10 % to the 90 %
    quantile. Right: D over epochs of the ``num_trajectories`` hardest
    objects of the last epoch, over the overall median band.

    Args:
        dumps (Sequence[tuple[int, str]]): ``(epoch, path)`` up to and
            including the last epoch.
        last (dict): The loaded last dump (with its ``path``).
        path (str): PNG file to write.
        num_trajectories (int): Objects to follow. Defaults to 5.
        dpi (int): Resolution. Defaults to 100.

    Returns:
        dict: ``epochs``, ``quantiles`` (per group name, per quantile, a
        list over epochs) and ``trajectories`` (per object: ``object``,
        ``image``, ``index_in_image``, ``label``, ``group`` and the list of
        D over epochs).
    """
    names = last['group_names']
    d_last = last['instance_difficulty']
    objects = hardest_objects(d_last, num_trajectories)
    series = difficulty_over_epochs(dumps, last, objects)
    epochs, quants = series['epochs'], series['quantiles']
    trajs, overall = series['trajectories'], series['overall']

    fig = Figure(figsize=(11, 4.4), layout='constrained')
    ax_q, ax_t = fig.subplots(1, 2, sharey=True)
    for g, name in enumerate(names):
        if not series['counts'][:, g].any():
            continue
        colour = GROUP_COLOURS[g % len(GROUP_COLOURS)]
        lo, mid, hi = quants[:, g, 0], quants[:, g, 1], quants[:, g, 2]
        ax_q.fill_between(epochs, lo, hi, color=colour, alpha=0.2, lw=0)
        ax_q.plot(epochs, mid, 'o-', color=colour, ms=3, label=f'{name}')
    ax_q.set_title('D per frequency group: median, 10-90 % band')
    ax_t.fill_between(
        epochs,
        overall[:, 0],
        overall[:, 2],
        color='0.8',
        lw=0,
        label='all objects, 10-90 %')
    ax_t.plot(epochs, overall[:, 1], color='0.5', lw=1, label='median')
    pos = index_in_image(last['instance_image'])
    traj_info = []
    for t, obj in enumerate(objects):
        img = int(last['instance_image'][obj])
        label = int(last['instance_label'][obj])
        group = names[int(last['class_group'][label])]
        ax_t.plot(
            epochs,
            trajs[:, t],
            'o-',
            ms=3,
            lw=1.2,
            label=f'img {img} obj {pos[obj]} (cls {label}, {group})')
        traj_info.append(
            dict(
                object=int(obj),
                image=img,
                index_in_image=int(pos[obj]),
                label=label,
                group=group,
                difficulty=trajs[:, t]))
    ax_t.set_title(f'{len(objects)} hardest objects at epoch {epochs[-1]}')
    values = np.concatenate([quants.reshape(-1), trajs.reshape(-1)])
    for ax in (ax_q, ax_t):
        ax.set_xlabel('epoch')
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, lw=0.5)
        if epochs.size <= 20:
            ax.set_xticks(epochs)
    ax_q.set_ylabel('instance difficulty D')
    if _is_wide(values):
        _log_axis(ax_q.yaxis, values)
    fig.suptitle('Instance difficulty over epochs')
    _save(fig, path, dpi)
    qnames = _quantile_names(QUANTILES)
    per_group = {
        name: {
            q: quants[:, g, k]
            for k, q in enumerate(qnames)
        }
        for g, name in enumerate(names)
    }
    per_group['all'] = {q: overall[:, k] for k, q in enumerate(qnames)}
    return dict(
        epochs=epochs,
        objects_per_group={
            name: series['counts'][:, g]
            for g, name in enumerate(names)
        },
        quantiles=per_group,
        trajectories=traj_info)


# ---------------------------------------------------------------------------
# 4. Gallery of the hardest images


def _image_file(record: Dict[str, Any]) -> str:
    """Path of an image relative to the image root, as mmdet reads it."""
    if 'coco_url' in record:  # LVIS v1
        return record['coco_url'].replace(COCO_URL_PREFIX, '')
    return record['file_name']


def _parse_instances(
        record: Dict[str, Any], anns: List[Dict[str, Any]],
        cat2label: Dict[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Boxes (x1, y1, x2, y2) and labels of the objects the hook counts.

    Mirrors mmdet 3.x ``CocoDataset.parse_data_info``: annotations marked
    ``ignore``, outside the image, with ``area <= 0``, a side below 1
    pixel or an unknown category are dropped; crowd ones are kept there as
    ignored, and the hook leaves ignored objects out.
    """
    boxes, labels = [], []
    width, height = record['width'], record['height']
    for ann in anns:
        if ann.get('ignore', False) or ann.get('iscrowd', False):
            continue
        x1, y1, w, h = ann['bbox']
        inter_w = max(0, min(x1 + w, width) - max(x1, 0))
        inter_h = max(0, min(y1 + h, height) - max(y1, 0))
        if inter_w * inter_h == 0:
            continue
        if ann['area'] <= 0 or w < 1 or h < 1:
            continue
        if ann['category_id'] not in cat2label:
            continue
        boxes.append([x1, y1, x1 + w, y1 + h])
        labels.append(cat2label[ann['category_id']])
    return (np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
            np.asarray(labels, dtype=np.int64))


def match_dataset_images(
        ann: Dict[str, Any],
        instance_image: np.ndarray,
        instance_label: np.ndarray,
        num_images: int,
        min_size: int = 32) -> Tuple[List[Dict[str, Any]], List[np.ndarray]]:
    """Image record and boxes of every dataset index of the dumps.

    mmdet's ``LVISV1Dataset`` (and ``CocoDataset``) keeps the images in
    the order of the ``images`` list of the annotation file, drops those
    without annotations (``filter_empty_gt``) and those whose shorter side
    is below ``min_size``. Both with and without the ``min_size`` filter
    are tried; a candidate is accepted only if it has ``num_images``
    images and every image has the dumped number of objects, with the
    dumped labels (labels are positions in the file's ``categories``).

    Args:
        ann (dict): The training annotation file (LVIS v1 or COCO style).
        instance_image (np.ndarray): ``(M,)`` image of every object.
        instance_label (np.ndarray): ``(M,)`` class of every object.
        num_images (int): ``N``, images of the dumps.
        min_size (int): mmdet's ``filter_cfg.min_size``. Defaults to 32
            (mmdet's LVIS configs).

    Returns:
        tuple[list[dict], list[np.ndarray]]: The image record of every
        dataset index, and its ``(n_i, 4)`` boxes (x1, y1, x2, y2) in the
        order of the dumped objects.

    Raises:
        GalleryError: If no candidate matches the dumps.
    """
    cat2label = {
        cat['id']: i
        for i, cat in enumerate(ann.get('categories', []))
    }
    anns_of: Dict[Any, List[Dict[str, Any]]] = {}
    for a in ann.get('annotations', []):
        if a['category_id'] in cat2label:
            anns_of.setdefault(a['image_id'], []).append(a)
    with_anns = [r for r in ann.get('images', []) if r['id'] in anns_of]
    big = [r for r in with_anns if min(r['width'], r['height']) >= min_size]
    candidates = [('with annotations and shorter side >= '
                   f'{min_size}', big)]
    if len(big) != len(with_anns):
        candidates.append(('with annotations', with_anns))

    order = np.argsort(instance_image, kind='stable')
    counts = np.bincount(instance_image, minlength=num_images)
    starts = np.concatenate([[0], np.cumsum(counts)])
    labels_sorted = instance_label[order]
    problems = []
    for what, records in candidates:
        if len(records) != num_images:
            problems.append(f'{len(records)} images {what}')
            continue
        boxes, bad = [], None
        for i, record in enumerate(records):
            b, lab = _parse_instances(record, anns_of[record['id']], cat2label)
            if not np.array_equal(lab, labels_sorted[starts[i]:starts[i + 1]]):
                bad = (f'image {i} (id {record["id"]}) has labels '
                       f'{lab.tolist()} in the annotation file but '
                       f'{labels_sorted[starts[i]:starts[i + 1]].tolist()} '
                       'in the dumps')
                break
            boxes.append(b)
        if bad is None:
            return records, boxes
        problems.append(f'{len(records)} images {what}, but {bad}')
    raise GalleryError(
        f'cannot map the {num_images} dataset indices of the dumps to the '
        f'annotation file: it has {"; ".join(problems)}. Pass the '
        'annotation file of the training set the dumps come from.')


def _read_rgb(path: str) -> Optional[np.ndarray]:
    from PIL import Image
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert('RGB'))
    except OSError:
        return None


def plot_hardest_images(dump: Dict[str, Any],
                        ann_file: str,
                        img_root: str,
                        path: str,
                        topk: int = 12,
                        min_size: int = 32,
                        ncols: int = 4,
                        dpi: int = 100) -> Dict[str, Any]:
    """Gallery of the ``topk`` hardest images, boxes coloured by D.

    Images are ranked by ``image_difficulty`` (ties by index). Every
    object's box is drawn in the colour of its D (shared colour bar, log
    scale when D spans at least :data:`WIDE_RANGE_RATIO`); the title holds
    the dataset index and the image's D. An image file that cannot be
    read is drawn as a grey panel with its boxes.

    Args:
        dump (dict): A loaded dump (:func:`load_dump`).
        ann_file (str): Training annotation file (LVIS v1 / COCO JSON).
        img_root (str): Directory that image paths are relative to: the
            ``coco_url`` without ``http://images.cocodataset.org/`` for
            LVIS v1 (as mmdet's ``LVISV1Dataset``), else ``file_name``.
        path (str): PNG file to write.
        topk (int): Number of images. Defaults to 12.
        min_size (int): mmdet's ``filter_cfg.min_size``. Defaults to 32.
        ncols (int): Panels per row. Defaults to 4.
        dpi (int): Resolution. Defaults to 100.

    Returns:
        dict: ``images``: per drawn image its ``index``, ``image_id``,
        ``file``, ``difficulty``, ``object_difficulty`` and whether the
        file was ``found``.

    Raises:
        GalleryError: If the annotation file does not match the dumps or
            no image is to be drawn.
    """
    if not osp.isfile(ann_file):
        raise GalleryError(f'annotation file {ann_file!r} not found')
    with open(ann_file, encoding='utf-8') as f:
        ann = json.load(f)
    img_d = dump['image_difficulty']
    records, boxes = match_dataset_images(ann, dump['instance_image'],
                                          dump['instance_label'], img_d.size,
                                          min_size)
    del ann
    chosen = hardest_objects(img_d, topk)
    if chosen.size == 0:
        raise GalleryError('the dumps hold no image')
    inst_d = dump['instance_difficulty']
    order = np.argsort(dump['instance_image'], kind='stable')
    starts = np.concatenate(
        [[0],
         np.cumsum(np.bincount(dump['instance_image'], minlength=img_d.size))])
    obj_d = [inst_d[order[starts[i]:starts[i + 1]]] for i in chosen]
    shown = np.concatenate(obj_d) if obj_d else np.zeros(0)
    if shown.size == 0:
        shown = np.ones(1)
    if _is_wide(shown):
        norm: Normalize = LogNorm(shown.min(), shown.max())
    else:
        lo, hi = float(shown.min()), float(shown.max())
        if hi <= lo:  # one value: centre it in a readable range
            pad = 0.05 * abs(lo) if lo else 0.5
            lo, hi = lo - pad, hi + pad
        norm = Normalize(lo, hi)
    cmap = colormaps['plasma']

    ncols = max(1, min(ncols, chosen.size))
    nrows = -(-chosen.size // ncols)
    fig = Figure(
        figsize=(3.2 * ncols + 0.8, 3.0 * nrows), layout='constrained')
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    info = []
    for ax, i, ds in zip(axes, chosen, obj_d):
        record = records[i]
        rel = _image_file(record)
        pixels = _read_rgb(osp.join(img_root, rel))
        found = pixels is not None
        if not found:
            pixels = np.full((record['height'], record['width'], 3),
                             200,
                             dtype=np.uint8)
        ax.imshow(pixels)
        for (x1, y1, x2, y2), d in zip(boxes[i], ds):
            ax.add_patch(
                Rectangle((x1, y1),
                          x2 - x1,
                          y2 - y1,
                          fill=False,
                          lw=1.6,
                          edgecolor=cmap(norm(d))))
        missing = '' if found else ' (file missing)'
        ax.set_title(
            f'#{i}  D={img_d[i]:.3g}\n{osp.basename(rel)}{missing}',
            fontsize=8)
        ax.set_axis_off()
        info.append(
            dict(
                index=int(i),
                image_id=record['id'],
                file=rel,
                difficulty=float(img_d[i]),
                object_difficulty=ds,
                found=found))
    for ax in axes[chosen.size:]:
        ax.set_axis_off()
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=cmap),
        ax=axes.tolist(),
        shrink=0.8,
        label='instance difficulty D')
    fig.suptitle(f'{chosen.size} hardest training images, epoch '
                 f'{dump["epoch"]}')
    _save(fig, path, dpi)
    return dict(images=info)


# ---------------------------------------------------------------------------
# All of them


def plot_difficulty_dumps(dump_dir: str,
                          out_dir: str,
                          epoch: Optional[int] = None,
                          rfs_thr: float = 0.001,
                          num_trajectories: int = 5,
                          ann_file: Optional[str] = None,
                          img_root: Optional[str] = None,
                          topk_images: int = 12,
                          min_size: int = 32,
                          dpi: int = 100) -> Dict[str, Any]:
    """Draw every plot of the dumps and write ``summary.json``.

    Args:
        dump_dir (str): Directory of the ``epoch_<e>.npz`` dumps.
        out_dir (str): Where the PNG files and ``summary.json`` go.
        epoch (int, optional): Epoch whose dump the histograms, mass plot
            and gallery show, and up to which D is followed. Defaults to
            None (the last one).
        rfs_thr (float): RFS threshold ``t``. Defaults to 0.001 (LVIS).
        num_trajectories (int): Hardest objects followed over epochs.
            Defaults to 5.
        ann_file (str, optional): Training annotation file for the
            gallery; without it the gallery is skipped. Defaults to None.
        img_root (str, optional): Image directory of the gallery.
            Defaults to None (the parent of the annotation file's
            directory, the LVIS ``data_root`` layout).
        topk_images (int): Images in the gallery. Defaults to 12.
        min_size (int): mmdet's ``filter_cfg.min_size`` used to map
            dataset indices to images. Defaults to 32.
        dpi (int): Resolution. Defaults to 100.

    Returns:
        dict: The summary also written to ``out_dir/summary.json``; its
        ``plots`` maps each plot to its file and ``gallery`` says whether
        the gallery was written (``status``) and why not (``message``).
    """
    dumps = find_dumps(dump_dir)
    if epoch is not None:
        dumps = [(e, p) for e, p in dumps if e <= epoch]
        if not dumps or dumps[-1][0] != epoch:
            raise FileNotFoundError(f'no dump of epoch {epoch} in {dump_dir}')
    last = load_dump(dumps[-1][1])
    last['path'] = dumps[-1][1]
    os.makedirs(out_dir, exist_ok=True)
    files = {k: osp.join(out_dir, v) for k, v in PLOT_FILES.items()}
    summary: Dict[str, Any] = dict(
        dump_dir=osp.abspath(dump_dir),
        epochs=[e for e, _ in dumps],
        epoch=last['epoch'],
        num_objects=int(last['instance_difficulty'].size),
        num_images=int(last['image_difficulty'].size),
        num_classes=int(last['class_group'].size),
        group_names=last['group_names'])
    hist = plot_difficulty_histograms(last, files['histograms'], dpi)
    summary['difficulty_quantiles'] = hist.pop('quantiles')
    summary['histograms'] = hist
    summary['sampling_mass'] = plot_sampling_mass(last, files['sampling_mass'],
                                                  rfs_thr, dpi)
    summary['over_epochs'] = plot_difficulty_over_epochs(
        dumps, last, files['over_epochs'], num_trajectories, dpi)
    plots = {
        k: files[k]
        for k in ('histograms', 'sampling_mass', 'over_epochs')
    }
    if ann_file is None:
        gallery: Dict[str, Any] = dict(
            status='skipped', message='gallery skipped: no --ann-file given')
    else:
        if img_root is None:
            img_root = osp.dirname(osp.dirname(osp.abspath(ann_file)))
        try:
            gallery = plot_hardest_images(
                last,
                ann_file,
                img_root,
                files['gallery'],
                topk_images,
                min_size,
                dpi=dpi)
            gallery.update(status='written', img_root=img_root)
            plots['gallery'] = files['gallery']
            missing = sum(not img['found'] for img in gallery['images'])
            if missing:
                gallery['message'] = (
                    f'{missing} image files not found under {img_root!r}; '
                    'drawn as grey panels')
        except GalleryError as err:
            gallery = dict(status='skipped', message=f'gallery skipped: {err}')
    summary['gallery'] = gallery
    summary['plots'] = plots
    summary_file = osp.join(out_dir, 'summary.json')
    with open(summary_file, 'w', encoding='utf-8') as f:
        json.dump(_to_json(summary), f, indent=1)
    summary['summary_file'] = summary_file
    return summary
