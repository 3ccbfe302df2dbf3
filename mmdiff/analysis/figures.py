"""The difficulty figures, drawn from :mod:`mmdiff.analysis.stats` numbers.

matplotlib's object-oriented API on its Agg canvas (``Figure``, no
pyplot), so the global backend is never switched.

1. :func:`draw_histograms`: D of every object per frequency group.
2. :func:`draw_sampling_mass`: sampling mass per class against the
   class's training-image count and against LVIS repeat-factor sampling
   (RFS, Gupta et al., CVPR 2019).
3. :func:`draw_over_epochs`: 10 / 50 / 90 % quantiles of D per group
   across epochs and the trajectories of the hardest objects.
4. :func:`draw_gallery`: the hardest training images, every box coloured
   by D and labelled with its class name and D.
5. :func:`~mmdiff.analysis.preview_figure.draw_preview` (its own module):
   one epoch under each sampling scheme, before a run.
"""
import os
import os.path as osp
from typing import Any, Dict, Optional

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import (FuncFormatter, LogLocator, MaxNLocator,
                               NullFormatter)

from .stats import is_wide

__all__ = [
    'draw_histograms', 'draw_sampling_mass', 'draw_over_epochs', 'draw_gallery'
]

#: Colour of each frequency group, rarest first.
GROUP_COLOURS = ('tab:red', 'tab:orange', 'tab:blue')


def _colour(g: int) -> str:
    return GROUP_COLOURS[g % len(GROUP_COLOURS)]


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


def _save(fig: Figure, path: str, dpi: int) -> str:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def draw_histograms(stats: Dict[str, Any],
                    epoch: int,
                    path: str,
                    dpi: int = 100) -> str:
    """Histogram of D, one panel per group (:func:`~.histogram_stats`)."""
    values, edges = stats['values'], stats['bin_edges']
    every = np.concatenate(list(values.values()) or [np.zeros(0)])
    fig = Figure(figsize=(4.2 * len(values), 3.6), layout='constrained')
    axes = fig.subplots(1, len(values), sharex=True, squeeze=False)[0]
    for g, (ax, (name, vals)) in enumerate(zip(axes, values.items())):
        ax.hist(vals, bins=edges, color=_colour(g), alpha=0.8)
        if vals.size:
            median = stats['quantiles'][name]['q50']
            ax.axvline(
                median, color='k', ls='--', lw=1, label=f'median {median:.3g}')
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
        if stats['log_x']:
            _log_axis(ax.xaxis, every)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel('objects')
    fig.suptitle(f'Instance difficulty per frequency group, epoch {epoch}')
    return _save(fig, path, dpi)


def _mass_scatter(ax_freq: Any, ax_rfs: Any, stats: Dict[str, Any],
                  class_group: np.ndarray, names: list) -> np.ndarray:
    mass = stats['class_mass']
    ipc = mass['images_per_class']
    has = ipc > 0
    for g, name in enumerate(names):
        sel = has & (class_group == g)
        if sel.any():
            ax_freq.scatter(
                ipc[sel],
                mass['difficulty'][sel],
                s=14,
                color=_colour(g),
                label=f'difficulty, {name}')
            ax_rfs.scatter(
                mass['rfs'][sel],
                mass['difficulty'][sel],
                s=14,
                color=_colour(g),
                label=f'{name} ({int(sel.sum())} classes)')
    return has


def draw_sampling_mass(stats: Dict[str, Any],
                       class_group: np.ndarray,
                       names: list,
                       epoch: int,
                       path: str,
                       dpi: int = 100) -> str:
    """Class mass vs frequency and vs RFS (:func:`~.sampling_mass_stats`)."""
    mass, thr = stats['class_mass'], stats['rfs_thr']
    ipc = mass['images_per_class']
    fig = Figure(figsize=(11, 4.4), layout='constrained')
    ax_freq, ax_rfs = fig.subplots(1, 2)
    has = _mass_scatter(ax_freq, ax_rfs, stats, class_group, names)
    if has.any():
        ax_freq.scatter(
            ipc[has],
            mass['rfs'][has],
            s=14,
            marker='x',
            color='0.45',
            lw=0.8,
            label=f'RFS (t={thr:g})')
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
    _log_axis(ax_freq.xaxis, ipc[has])
    _log_axis(ax_rfs.xaxis, mass['rfs'][has])
    all_mass = np.concatenate([mass[k][has] for k in ('difficulty', 'rfs')])
    for ax in (ax_freq, ax_rfs):
        _log_axis(ax.yaxis, all_mass)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which='both', lw=0.5)
    ax_freq.set(
        xlabel='training images containing the class',
        ylabel='class sampling mass',
        title='Mass per class vs class frequency')
    ax_rfs.set(
        xlabel=f'class mass under RFS (t={thr:g})',
        ylabel='class mass under difficulty sampling',
        title='Difficulty sampling vs repeat-factor sampling')
    fig.suptitle(f'Sampling mass per class, probabilities after epoch {epoch}')
    return _save(fig, path, dpi)


def draw_over_epochs(stats: Dict[str, Any],
                     names: list,
                     path: str,
                     dpi: int = 100) -> str:
    """Quantile bands and trajectories (:func:`~.over_epochs_stats`)."""
    epochs, quants = stats['epochs'], stats['quantiles']
    trajs, overall = stats['trajectories'], stats['overall']
    fig = Figure(figsize=(11, 4.4), layout='constrained')
    ax_q, ax_t = fig.subplots(1, 2, sharey=True)
    for g, name in enumerate(names):
        if stats['counts'][:, g].any():
            ax_q.fill_between(
                epochs,
                quants[:, g, 0],
                quants[:, g, 2],
                color=_colour(g),
                alpha=0.2,
                lw=0)
            ax_q.plot(
                epochs,
                quants[:, g, 1],
                'o-',
                color=_colour(g),
                ms=3,
                label=name)
    ax_q.set_title('D per frequency group: median, 10-90 % band')
    ax_t.fill_between(
        epochs,
        overall[:, 0],
        overall[:, 2],
        color='0.8',
        lw=0,
        label='all objects, 10-90 %')
    ax_t.plot(epochs, overall[:, 1], color='0.5', lw=1, label='median')
    for t, obj in enumerate(stats['trajectory_info']):
        ax_t.plot(
            epochs,
            trajs[:, t],
            'o-',
            ms=3,
            lw=1.2,
            label=(f"img {obj['image']} obj {obj['index_in_image']} "
                   f"({obj['class_name']}, {obj['group']})"))
    ax_t.set_title(f'{trajs.shape[1]} hardest objects at epoch {epochs[-1]}')
    for ax in (ax_q, ax_t):
        ax.set_xlabel('epoch')
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, lw=0.5)
        if epochs.size <= 20:
            ax.set_xticks(epochs)
    ax_q.set_ylabel('instance difficulty D')
    values = np.concatenate([quants.reshape(-1), trajs.reshape(-1)])
    if is_wide(values):
        _log_axis(ax_q.yaxis, values)
    fig.suptitle('Instance difficulty over epochs')
    return _save(fig, path, dpi)


def _read_rgb(path: str) -> Optional[np.ndarray]:
    from PIL import Image
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert('RGB'))
    except OSError:
        return None


def _norm(stats: Dict[str, Any]) -> Normalize:
    lo, hi = stats['d_range']
    if stats['log']:
        return LogNorm(lo, hi)
    if hi <= lo:  # one value: centre it in a readable range
        pad = 0.05 * abs(lo) if lo else 0.5
        lo, hi = lo - pad, hi + pad
    return Normalize(lo, hi)


def _gallery_panel(ax: Any, image: Dict[str, Any], norm: Normalize,
                   cmap: Any) -> bool:
    pixels = _read_rgb(image['file'])
    found = pixels is not None
    if not found:
        boxes = image['boxes']
        extent = boxes[:, 2:].max(0) if len(boxes) else (64, 64)
        pixels = np.full((int(extent[1]) + 8, int(extent[0]) + 8, 3), 200,
                         np.uint8)
    ax.imshow(pixels)
    for (x1, y1, x2, y2), d, name in zip(image['boxes'],
                                         image['object_difficulty'],
                                         image['class_names']):
        colour = cmap(norm(d))
        ax.add_patch(
            Rectangle((x1, y1),
                      x2 - x1,
                      y2 - y1,
                      fill=False,
                      lw=1.6,
                      edgecolor=colour))
        ax.text(
            x1,
            y1,
            f'{name} {d:.2g}',
            fontsize=6,
            color='white',
            va='bottom',
            bbox=dict(facecolor=colour, alpha=0.8, lw=0, pad=0.5))
    missing = '' if found else ' (file missing)'
    ax.set_title(
        f"#{image['index']}  D={image['difficulty']:.3g}\n"
        f"{osp.basename(image['file'])}{missing}",
        fontsize=8)
    ax.set_axis_off()
    return found


def draw_gallery(stats: Dict[str, Any],
                 epoch: int,
                 path: str,
                 ncols: int = 4,
                 dpi: int = 100) -> str:
    """The hardest images (:func:`~.gallery_stats`); sets ``found``."""
    images = stats['images']
    norm, cmap = _norm(stats), colormaps['plasma']
    ncols = max(1, min(ncols, len(images)))
    nrows = -(-len(images) // ncols)
    fig = Figure(
        figsize=(3.2 * ncols + 0.8, 3.0 * nrows), layout='constrained')
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax, image in zip(axes, images):
        image['found'] = _gallery_panel(ax, image, norm, cmap)
    for ax in axes[len(images):]:
        ax.set_axis_off()
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=cmap),
        ax=axes.tolist(),
        shrink=0.8,
        label='instance difficulty D')
    fig.suptitle(f'{len(images)} hardest training images, epoch {epoch}')
    return _save(fig, path, dpi)
