"""Figure 5: one epoch under each sampling scheme, before a run.

Numbers from :mod:`mmdiff.analysis.preview`; matplotlib's
object-oriented API on its Agg canvas, as in :mod:`.figures`.
"""
from typing import Any, Dict

import numpy as np
from matplotlib.figure import Figure

from .figures import _log_axis, _save

__all__ = ['PREVIEW_LABELS', 'draw_preview']

#: Label of every previewed scheme.
PREVIEW_LABELS = dict(
    uniform='uniform',
    rfs_repeat='RFS, ClassBalancedDataset',
    rfs='RFS, drawn',
    class_aware='class-aware',
    irfs='IRFS, drawn',
    config='this config',
    config_difficulty='this config, dump D')


def _preview_classes(ax: Any, preview: Dict[str, Dict[str, Any]],
                     images_per_class: np.ndarray) -> None:
    shown = images_per_class > 0
    x = images_per_class[shown].astype(np.float64)
    if not x.size:
        ax.text(0.5, 0.5, 'no labelled images', ha='center', va='center')
        return
    for i, (name, row) in enumerate(preview.items()):
        label = (f'{PREVIEW_LABELS.get(name, name)} '
                 f"({row['epoch_length']} / epoch)")
        ax.scatter(
            x,
            np.maximum(row['class_draws'][shown], 1e-3),
            s=14,
            alpha=0.7,
            marker='os^vDPX*'[i % 8],
            label=label)
    span = np.array([x.min(), x.max()])
    ax.plot(span, span, color='grey', lw=0.8, ls='--')
    _log_axis(ax.xaxis, x)
    _log_axis(
        ax.yaxis,
        np.concatenate([row['class_draws'][shown]
                        for row in preview.values()]))
    ax.set(
        xlabel='training images of the class',
        ylabel='expected drawn images showing it, per epoch',
        title='Draws per class (dashed: one per image)')
    ax.legend(fontsize=7)


def _preview_bars(ax: Any, preview: Dict[str, Dict[str, Any]],
                  values: Dict[str, list], ticks: list) -> None:
    """Grouped bars, one colour per scheme, values in %."""
    width = 0.8 / len(preview)
    for i, name in enumerate(preview):
        ax.bar(
            np.arange(len(ticks)) + i * width, [v * 100 for v in values[name]],
            width,
            label=PREVIEW_LABELS.get(name, name))
    ax.set_xticks(np.arange(len(ticks)) + 0.4 - width / 2, ticks)
    ax.tick_params(axis='x', labelsize=8)


def draw_preview(preview: Dict[str, Dict[str, Any]],
                 images_per_class: np.ndarray,
                 path: str,
                 dpi: int = 100) -> str:
    """Figure 5: what one epoch draws under each scheme.

    Left: expected drawn images showing each class against its training
    images (the diagonal is one draw per image). Middle: share of the
    draws per LVIS group. Right: effective sample size and images not
    drawn, as fractions of the images.
    """
    fig = Figure(figsize=(15, 4.6))
    ax_cls, ax_grp, ax_ess = fig.subplots(1, 3)
    _preview_classes(ax_cls, preview, np.asarray(images_per_class))
    groups = list(next(iter(preview.values()))['group_mass'])
    _preview_bars(ax_grp, preview, {
        n: [r['group_mass'][g] for g in groups]
        for n, r in preview.items()
    }, [f'rarest class: {g}' for g in groups])
    ax_grp.set(ylabel='% of the draws', title='Draws per frequency group')
    _preview_bars(
        ax_ess, preview, {
            n: [r['ess_fraction'], r['fraction_not_drawn']]
            for n, r in preview.items()
        }, ['effective sample size', 'images not drawn'])
    ax_ess.set(ylabel='% of the images', title='Coverage of one epoch')
    ax_ess.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path, dpi)
