"""Tables and figures of the detection evidence (no conclusions).

:func:`render_detection` turns :func:`.detection.run_detection`'s result
into markdown: the setting, per-arm summaries over seeds (median and
range), paired differences of every hook arm to its prior with 95 %
intervals, what the difficulty signal did with the hard variants, and the
per-seed values. :func:`plot_detection` draws the figures with
matplotlib's object-oriented API (the global backend is never switched).
"""
import os
import os.path as osp
import textwrap
from typing import Dict, List, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

from .detection import ABLATION_OF, ARM_LABELS, ARMS, PRIORS
from .stats import (format_paired, group_by_method, median_range,
                    paired_difference, record_values)

__all__ = ['render_detection', 'plot_detection']

SUMMARY = (('AP', 'AP'), ('AP50', 'AP50'), ('APr', 'APr'), ('APc', 'APc'),
           ('APf', 'APf'), ('recall_hard', 'hard recall'), ('recall_normal',
                                                            'normal recall'))
PAIRED = (('AP', 'AP'), ('APr', 'APr'), ('recall_hard', 'hard recall'),
          ('recall_normal', 'normal recall'))


def _row(cells: Sequence[str]) -> str:
    return '| ' + ' | '.join(cells) + ' |'


def _arms(result: dict) -> List[str]:
    by = group_by_method(result['records'])
    return [a for a in ARMS if a in by]


def _setting(result: dict) -> List[str]:
    p, data = result['preset'], result['data']
    freq = data['frequency']
    recs = result['records']
    collapsed = sum(bool(r.get('collapsed')) for r in recs)
    train_s = record_values(recs, 'train_seconds')
    return [
        '### Setting', '', f"- Data: `make_synthetic_lvis({p['synthetic']})`: "
        f"{data['num_images']['train']} training images, "
        f"{data['num_instances']['train']} objects, {len(freq)} classes "
        f"({freq.count('f')} frequent, {freq.count('c')} common, "
        f"{freq.count('r')} rare); {data['num_images']['val']} validation "
        f"images with {recs[0]['num_hard'] if recs else 0} hard variants "
        f"and {recs[0]['num_normal'] if recs else 0} normal objects of the "
        f"{len(data['hard_variant_classes'])} frequent classes.",
        "- Recipe: the demo's (`configs/demo/`), "
        f"{'with' if p['with_mask'] else 'without'} its mask branch; SGD lr "
        f"{p['lr']:g}, batch "
        f"{p['batch_size']}, warm-up {p['warmup_iters']} iterations, lr x0.1 "
        f"for the last {p['decay_epochs']} epochs.",
        f"- Budget: {p['epochs']} epochs of {p['images_per_epoch']} images "
        f"= **{result['iterations']} iterations for every run**.",
        f"- Seeds: {p['seeds']}; collapsed runs (AP < 1): {collapsed} of "
        f'{len(recs)}. Training time per run: median '
        f'{np.median(train_s):.0f} s, {p["threads"]} torch thread(s), '
        f"{p['jobs']} run(s) at a time; whole section "
        f"{result['seconds'] / 60:.0f} min. Versions: {result['versions']}.",
        ''
    ]


def _summary(result: dict) -> List[str]:
    by = group_by_method(result['records'])
    lines = [
        '### Validation results, median (range) over seeds', '',
        _row(['arm', *[c[1] for c in SUMMARY]]),
        '|' + '---|' * (len(SUMMARY) + 1)
    ]
    for arm in _arms(result):
        lines.append(
            _row([ARM_LABELS[arm]] +
                 [median_range(record_values(by[arm], k))
                  for k, _ in SUMMARY]))
    return lines + ['']


def _paired(result: dict,
            reference: Dict[str, str] = PRIORS,
            title: str = 'Paired difference to the prior (same seed)',
            what: str = 'its prior') -> List[str]:
    recs, arms = result['records'], _arms(result)
    pairs = [(a, reference[a]) for a in arms
             if a in reference and reference[a] in arms]
    if not pairs:
        return []
    lines = [
        f'### {title}', '', f'Mean of (arm − {what}) over seeds, its 95 % t '
        'interval, and wins / ties / losses.', '',
        _row([f'arm − {what}', *[c[1] for c in PAIRED]]),
        '|' + '---|' * (len(PAIRED) + 1)
    ]
    for arm, prior in pairs:
        lines.append(
            _row([f'{ARM_LABELS[arm]} − {ARM_LABELS[prior]}'] + [
                format_paired(paired_difference(recs, k, arm, prior))
                for k, _ in PAIRED
            ]))
    return lines + ['']


def _signal(result: dict) -> List[str]:
    by = group_by_method(result['records'])
    arms = [a for a in _arms(result) if 'd_hard' in by[a][0]]
    if not arms:
        return []
    lines = [
        '### What the difficulty signal did with the hard variants', '',
        'Final mean D of the hard-variant training objects and of the '
        'normal objects of the same classes (as the sampler used them), '
        'their ratio, the objects observed at least once, and the sampler\'s '
        'mass on images holding a hard variant against their share of the '
        'images; median (range) over seeds.', '',
        _row([
            'arm', 'D hard', 'D normal', 'ratio', 'observed %',
            'mass on hard images %', 'share of images %', 'mass / share'
        ]), '|---|---|---|---|---|---|---|---|'
    ]
    for arm in arms:
        recs = by[arm]
        ratio = record_values(recs, 'd_hard') / record_values(recs, 'd_normal')
        lift = record_values(recs, 'mass_hard_images') / record_values(
            recs, 'share_hard_images')
        lines.append(
            _row([
                ARM_LABELS[arm],
                median_range(record_values(recs, 'd_hard'), 3),
                median_range(record_values(recs, 'd_normal'), 3),
                median_range(ratio, 2),
                median_range(record_values(recs, 'observed'), 1),
                median_range(record_values(recs, 'mass_hard_images'), 1),
                median_range(record_values(recs, 'share_hard_images'), 1),
                median_range(lift, 2)
            ]))
    return lines + ['']


def _per_seed(result: dict) -> List[str]:
    keys = [k for k, _ in SUMMARY]
    lines = [
        '<details><summary>Per-seed values</summary>', '',
        _row(['arm', 'seed', *keys, 'iterations', 'train s']),
        '|' + '---|' * (len(keys) + 4)
    ]
    by = group_by_method(result['records'])
    for arm in _arms(result):
        for r in by[arm]:
            lines.append(
                _row([ARM_LABELS[arm], str(r['seed'])] +
                     [f'{r[k]:.1f}' for k in keys] +
                     [str(r['iterations']), f"{r['train_seconds']:.0f}"]))
    return lines + ['', '</details>', '']


def render_detection(result: dict, figures: Sequence[Tuple[str, str]],
                     fig_rel: str) -> str:
    """Markdown of the detection section (tables and figures only).

    Args:
        result (dict): Output of :func:`.detection.run_detection`.
        figures (Sequence[tuple]): ``(file name, caption)`` pairs.
        fig_rel (str): The figure folder relative to the markdown file.
    """
    lines = (
        _setting(result) + _summary(result) + _paired(result) + _paired(
            result, ABLATION_OF, 'Ablations: one option changed (same seed)',
            'the arm it changes') + _signal(result) + _per_seed(result))
    for name, caption in figures:
        lines += [f'![{caption}]({fig_rel}/{name})', '', f'*{caption}*', '']
    return '\n'.join(lines)


def _bars(fig: Figure, result: dict) -> None:
    by = group_by_method(result['records'])
    arms = _arms(result)
    panels = (('AP', 'bbox AP'), ('APr', 'bbox APr'),
              ('recall_hard', 'hard-variant recall (%)'))
    axes = fig.subplots(1, len(panels))
    x = np.arange(len(arms))
    for ax, (key, title) in zip(axes, panels):
        values = [record_values(by[a], key) for a in arms]
        ax.bar(x, [np.median(v) for v in values], color='0.75')
        for i, v in enumerate(values):
            ax.plot(np.full(v.size, i), v, 'k.', ms=4, alpha=0.7)
        ax.set_xticks(x)
        ax.set_xticklabels([ARM_LABELS[a] for a in arms],
                           rotation=40,
                           ha='right',
                           fontsize=7)
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=10)


def _over_epochs(fig: Figure, result: dict) -> bool:
    by = group_by_method(result['records'])
    arms = [a for a in _arms(result) if 'd_hard_by_epoch' in by[a][0]]
    if not arms:
        return False
    axes = fig.subplots(1, len(arms), sharey=True, squeeze=False)[0]
    for ax, arm in zip(axes, arms):
        for key, label, colour in (('d_hard_by_epoch', 'hard variants',
                                    'tab:red'),
                                   ('d_normal_by_epoch',
                                    'normal, same classes', 'tab:blue'),
                                   ('d_other_by_epoch', 'other objects',
                                    '0.5')):
            series = np.array([r[key] for r in by[arm]])
            # One value per hook update: every epoch, or every
            # ``interval`` epochs with the eval pass.
            step = max(1, result['preset']['epochs'] // series.shape[1])
            epochs = step * np.arange(1, series.shape[1] + 1)
            ax.plot(
                epochs,
                np.median(series, 0),
                'o-',
                ms=3,
                color=colour,
                label=label)
            ax.fill_between(
                epochs,
                series.min(0),
                series.max(0),
                color=colour,
                alpha=0.15,
                lw=0)
        ax.set_title(textwrap.fill(ARM_LABELS[arm], 24), fontsize=8)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3, lw=0.5)
    axes[0].set_ylabel('mean D (median over seeds, band: range)')
    axes[0].legend(fontsize=7)
    return True


def plot_detection(result: dict,
                   fig_dir: str,
                   stem: str = 'detection') -> List[Tuple[str, str]]:
    """The section's figures (PNG); ``(file name, caption)`` each."""
    os.makedirs(fig_dir, exist_ok=True)
    out = []
    fig = Figure(figsize=(12, 4.2), layout='constrained')
    _bars(fig, result)
    name = f'{stem}_ap.png'
    fig.savefig(osp.join(fig_dir, name), dpi=110)
    out.append((name, 'bbox AP, APr and hard-variant recall per arm (bars: '
                'median over seeds; dots: seeds).'))
    fig = Figure(figsize=(14, 3.8), layout='constrained')
    if _over_epochs(fig, result):
        name = f'{stem}_difficulty_over_epochs.png'
        fig.savefig(osp.join(fig_dir, name), dpi=110)
        out.append((name, 'Mean D over epochs of the hard variants, the '
                    'normal objects of their classes and the other objects, '
                    'per hook arm (line: median over seeds; band: range).'))
    return out
