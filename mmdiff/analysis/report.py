"""Every difficulty plot of a run, and ``summary.json`` with their numbers.

``tools/analysis/plot_difficulty.py`` is the command line of
:func:`plot_difficulty_dumps`.
"""
import json
import os
import os.path as osp
from typing import Any, Dict, Optional

import numpy as np

from .dump import find_dumps, load_dump
from .figures import (draw_gallery, draw_histograms, draw_over_epochs,
                      draw_sampling_mass)
from .stats import (gallery_stats, histogram_stats, over_epochs_stats,
                    quantile_names, sampling_mass_stats)

__all__ = ['PLOT_FILES', 'plot_difficulty_dumps']

#: Plot files written by :func:`plot_difficulty_dumps`.
PLOT_FILES = dict(
    histograms='difficulty_histograms.png',
    sampling_mass='sampling_mass.png',
    over_epochs='difficulty_over_epochs.png',
    gallery='hardest_images.png')


def to_json(value: Any) -> Any:
    """Plain JSON values; NaN / inf become None."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, (np.integer, )):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None
    return value


def _over_epochs_summary(stats: Dict[str, Any], names: list) -> dict:
    qnames = quantile_names()
    per_group = {
        name: {
            q: stats['quantiles'][:, g, k]
            for k, q in enumerate(qnames)
        }
        for g, name in enumerate(names)
    }
    per_group['all'] = {
        q: stats['overall'][:, k]
        for k, q in enumerate(qnames)
    }
    return dict(
        epochs=stats['epochs'],
        objects_per_group={
            name: stats['counts'][:, g]
            for g, name in enumerate(names)
        },
        quantiles=per_group,
        trajectories=stats['trajectory_info'])


def _gallery(last: Dict[str, Any], path: str, topk: int,
             dpi: int) -> Dict[str, Any]:
    stats = gallery_stats(last, topk)
    if not stats['images']:
        return dict(status='skipped', message='gallery skipped: no image')
    draw_gallery(stats, last['epoch'], path, dpi=dpi)
    images = [{
        k: v
        for k, v in image.items() if k not in ('boxes', 'labels')
    } for image in stats['images']]
    out = dict(status='written', images=images)
    missing = sum(not image['found'] for image in images)
    if missing:
        out['message'] = (f'{missing} image files not found (the paths of '
                          'the dump); drawn as grey panels')
    return out


def plot_difficulty_dumps(dump_dir: str,
                          out_dir: str,
                          epoch: Optional[int] = None,
                          rfs_thr: float = 0.001,
                          num_trajectories: int = 5,
                          topk_images: int = 12,
                          dpi: int = 100) -> Dict[str, Any]:
    """Draw every plot of the dumps and write ``summary.json``.

    Args:
        dump_dir (str): ``<work_dir>/difficulty``.
        out_dir (str): Where the PNG files and ``summary.json`` go.
        epoch (int, optional): Epoch whose dump the histograms, mass plot
            and gallery show, and up to which D is followed. Defaults to
            None (the last one).
        rfs_thr (float): RFS threshold ``t``. Defaults to 0.001 (LVIS).
        num_trajectories (int): Hardest objects followed over epochs.
            Defaults to 5.
        topk_images (int): Images in the gallery. Defaults to 12.
        dpi (int): Resolution. Defaults to 100.

    Returns:
        dict: The summary also written to ``out_dir/summary.json``; its
        ``plots`` maps each plot to its file.
    """
    dumps = find_dumps(dump_dir)
    if epoch is not None:
        dumps = [(e, p) for e, p in dumps if e <= epoch]
        if not dumps or dumps[-1][0] != epoch:
            raise FileNotFoundError(f'no dump of epoch {epoch} in {dump_dir}')
    last = load_dump(dumps[-1][1])
    names = last['group_names']
    os.makedirs(out_dir, exist_ok=True)
    files = {k: osp.join(out_dir, v) for k, v in PLOT_FILES.items()}
    hist = histogram_stats(last)
    draw_histograms(hist, last['epoch'], files['histograms'], dpi)
    mass = sampling_mass_stats(last, rfs_thr)
    draw_sampling_mass(mass, last['class_group'], names, last['epoch'],
                       files['sampling_mass'], dpi)
    over = over_epochs_stats(dumps, last, num_trajectories)
    draw_over_epochs(over, names, files['over_epochs'], dpi)
    gallery = _gallery(last, files['gallery'], topk_images, dpi)
    summary: Dict[str, Any] = dict(
        dump_dir=osp.abspath(dump_dir),
        epochs=[e for e, _ in dumps],
        epoch=last['epoch'],
        num_objects=int(last['instance_difficulty'].size),
        num_images=int(last['image_difficulty'].size),
        num_classes=int(last['class_group'].size),
        group_names=names,
        difficulty_quantiles=hist['quantiles'],
        histograms=dict(
            log_x=hist['log_x'],
            bin_edges=hist['bin_edges'],
            counts=hist['counts']),
        sampling_mass=mass,
        over_epochs=_over_epochs_summary(over, names),
        gallery=gallery,
        plots={
            k: f
            for k, f in files.items()
            if k != 'gallery' or gallery['status'] == 'written'
        })
    summary_file = osp.join(out_dir, 'summary.json')
    with open(summary_file, 'w', encoding='utf-8') as f:
        json.dump(to_json(summary), f, indent=1)
    summary['summary_file'] = summary_file
    return summary
