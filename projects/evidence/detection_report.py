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
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

from .detection import (ABLATION_OF, ARM_LABELS, ARMS, BUDGET_EPOCHS,
                        DEFAULT_ARM, PRIORS, SETTING_LABELS)
from .stats import (format_paired, group_by_method, median_range,
                    paired_difference, record_values)

__all__ = [
    'render_detection', 'plot_detection', 'render_curve', 'plot_curve',
    'plateau_iteration', 'render_across', 'render_which_sampler',
    'default_rule', 'DEFAULT_RULE'
]

SUMMARY = (('AP', 'AP'), ('AP50', 'AP50'), ('APr', 'APr'), ('APc', 'APc'),
           ('APf', 'APf'), ('recall_hard', 'hard recall'), ('recall_normal',
                                                            'normal recall'))
PAIRED = (('AP', 'AP'), ('APr', 'APr'), ('recall_hard', 'hard recall'),
          ('recall_normal', 'normal recall'))


def _row(cells: Sequence[str]) -> str:
    return '| ' + ' | '.join(cells) + ' |'


def _figure_lines(figures: Sequence[Tuple[str, str]],
                  fig_rel: str) -> List[str]:
    """Markdown of ``(file name, caption)`` figures in ``fig_rel``."""
    lines: List[str] = []
    for name, caption in figures:
        lines += [f'![{caption}]({fig_rel}/{name})', '', f'*{caption}*', '']
    return lines


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
        '#### Setting', '',
        f"- Data: `make_synthetic_lvis({p['synthetic']})`: "
        f"{data['num_images']['train']} training images, "
        f"{data['num_instances']['train']} objects, {len(freq)} classes "
        f"({freq.count('f')} frequent, {freq.count('c')} common, "
        f"{freq.count('r')} rare); {data['num_images']['val']} validation "
        f"images with {result['num_hard_val']} hard variants "
        f"and {result['num_normal_val']} normal objects of the "
        f"{len(data['hard_variant_classes'])} frequent classes.",
        "- Recipe: the demo's (`configs/demo/`), "
        f"{'with' if p['with_mask'] else 'without'} its mask branch; SGD lr "
        f"{p['lr']:g}, batch "
        f"{p['batch_size']}, warm-up {p['warmup_iters']} iterations, lr x0.1 "
        f"for the last {p['decay_epochs']} epochs.",
        f"- Budget: {p['epochs']} epochs of {p['images_per_epoch']} images "
        f"= **{result['iterations']} iterations for every run**.",
        f"- Seeds recorded: {sorted({r['seed'] for r in recs})} (planned: "
        f"{p['seeds']}); collapsed runs (AP < 1): {collapsed} of "
        f'{len(recs)}. Training time per run: median '
        f'{np.median(train_s):.0f} s, {p["threads"]} torch thread(s), '
        f"whole setting {result['seconds'] / 60:.0f} min of wall time "
        f"(recorded over its sessions). Versions: {result['versions']}.", ''
    ]


def _summary(result: dict) -> List[str]:
    by = group_by_method(result['records'])
    lines = [
        '#### Validation results, median (range) over seeds', '',
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
        f'#### {title}', '', f'Mean of (arm − {what}) over seeds, its 95 % t '
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
        '#### What the difficulty signal did with the hard variants', '',
        'Final mean D of the hard-variant training objects and of the '
        'normal objects of the same classes (as the sampler used them), '
        'their ratio, the objects observed at least once, the sampler\'s '
        'mass on images holding a hard variant against their share of the '
        'images, and the **lift**: that mass under D x prior over the mass '
        'the prior alone puts on the same images (same seed and epoch; '
        '> 1: D adds to the prior), for the hard-variant images and for '
        'images holding a rare / common / frequent class; median (range) '
        'over seeds.', '',
        _row([
            'arm', 'D hard', 'D normal', 'ratio', 'observed %',
            'mass on hard images %', 'share of images %', 'mass / share',
            'lift hard', 'lift r', 'lift c', 'lift f'
        ]), '|' + '---|' * 12
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
                median_range(lift, 2), *[
                    median_range(record_values(recs, f'lift_{g}'), 2)
                    for g in ('hard', 'r', 'c', 'f')
                ]
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


def render_detection(result: dict,
                     figures: Sequence[Tuple[str, str]],
                     fig_rel: str,
                     title: Optional[str] = None) -> str:
    """Markdown of one setting (tables and figures only).

    Args:
        result (dict): Output of :func:`.detection.run_detection` (a group
            of the results file with its records).
        figures (Sequence[tuple]): ``(file name, caption)`` pairs.
        fig_rel (str): The figure folder relative to the markdown file.
        title (str, optional): A ``###`` heading above the tables.
    """
    lines = ([f'### {title}', ''] if title else []) + (
        _setting(result) + _summary(result) + _paired(result) + _paired(
            result, ABLATION_OF, 'Ablations: one option changed (same seed)',
            'the arm it changes') + _signal(result) + _per_seed(result))
    return '\n'.join(lines + _figure_lines(figures, fig_rel))


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


# ----------------------------------------------------------------------
# the convergence curve

#: A curve plateaus at the first evaluation B where the last quarter of
#: training, B * 3 / 4 to B, adds less than this relative AP.
PLATEAU_GAIN = 0.10


def _interpolate(points: List[dict], iteration: float, key: str) -> float:
    its = [p['iteration'] for p in points]
    return float(np.interp(iteration, its, [p[key] for p in points]))


def plateau_iteration(points: List[dict],
                      constant_until: int,
                      key: str = 'AP') -> Tuple[Optional[int], List[float]]:
    """Where a curve stops rising, at a constant learning rate.

    Args:
        points (list[dict]): ``iteration`` and ``key`` of every evaluation,
            in order.
        constant_until (int): The last iteration before the lr decay;
            later points are not used (the decay lifts any curve).
        key (str): The metric. Defaults to 'AP'.

    Returns:
        tuple: The first iteration B whose last quarter gained less than
        :data:`PLATEAU_GAIN` relative (None if none did), and the relative
        gain ``key(B) / key(3B/4) - 1`` at every point used (AP at 3B/4
        interpolated linearly; NaN before the second point).
    """
    used = [p for p in points if p['iteration'] <= constant_until]
    gains: List[float] = []
    found = None
    for p in used:
        b = p['iteration']
        if b * 0.75 < used[0]['iteration']:
            gains.append(float('nan'))
            continue
        before = _interpolate(used, b * 0.75, key)
        gain = p[key] / before - 1 if before > 0 else float('inf')
        gains.append(gain)
        if found is None and gain < PLATEAU_GAIN:
            found = int(b)
    return found, gains


def _constant_until(result: dict) -> int:
    p = result['preset']
    per_epoch = result['iterations'] // p['epochs']
    return (p['epochs'] - p['decay_epochs']) * per_epoch


def render_curve(result: dict, figures: Sequence[Tuple[str, str]],
                 fig_rel: str) -> str:
    """Markdown of the convergence curve: the points and the plateau."""
    p = result['preset']
    by = group_by_method(result['records'])
    arms = [a for a in ARMS if a in by]
    until = _constant_until(result)
    per_epoch = result['iterations'] // p['epochs']
    lines = [
        '### Setting', '', f"- Data: `make_synthetic_lvis({p['synthetic']})`"
        f" ({result['num_hard_val']} hard variants in the validation split).",
        f"- One run per arm (seed {p['seeds'][0]}), {p['epochs']} epochs of "
        f"{p['images_per_epoch']} images = {result['iterations']} "
        f"iterations, lr constant after a {p['warmup_iters']}-iteration "
        f"warm-up up to iteration {until}, x0.1 after; evaluated every "
        f"{p['eval_every']} epochs ({p['eval_every'] * per_epoch} "
        'iterations).', ''
    ]
    lines += [
        '### AP and hard-variant recall against iterations', '',
        _row(['iteration'] + [
            f'{ARM_LABELS[a]} {what}' for a in arms
            for what in ('AP', 'last-quarter gain', 'hard recall')
        ]), '|' + '---|' * (1 + 3 * len(arms))
    ]
    curves = {a: by[a][0]['curve'] for a in arms}
    gains = {a: plateau_iteration(curves[a], until) for a in arms}
    for i, point in enumerate(curves[arms[0]]):
        cells = [str(point['iteration'])]
        for a in arms:
            q = curves[a][i]
            g = gains[a][1]
            gain = (f'{g[i] * 100:+.0f} %'
                    if i < len(g) and np.isfinite(g[i]) else '')
            cells += [f"{q['AP']:.1f}", gain, f"{q['recall_hard']:.1f}"]
        lines.append(_row(cells))
    lines.append('')
    for a in arms:
        found = gains[a][0]
        lines.append(f'- {ARM_LABELS[a]}: ' + (
            f'the last quarter adds < {PLATEAU_GAIN:.0%} AP from iteration '
            f'{found} on' if found is not None else
            f'still gaining >= {PLATEAU_GAIN:.0%} per last quarter at '
            f'iteration {until} (no plateau within the curve)') + '.')
    lines += [
        f'- The evidence budget: {BUDGET_EPOCHS} epochs = '
        f'{BUDGET_EPOCHS * per_epoch} iterations per run '
        '(`BUDGET_EPOCHS` in projects/evidence/detection.py).', ''
    ]
    return '\n'.join(lines + _figure_lines(figures, fig_rel))


def plot_curve(result: dict,
               fig_dir: str,
               stem: str = 'detection_curve') -> List[Tuple[str, str]]:
    """AP and hard recall against iterations (PNG)."""
    os.makedirs(fig_dir, exist_ok=True)
    by = group_by_method(result['records'])
    arms = [a for a in ARMS if a in by]
    per_epoch = result['iterations'] // result['preset']['epochs']
    fig = Figure(figsize=(10, 3.6), layout='constrained')
    axes = fig.subplots(1, 2)
    for ax, (key, title) in zip(axes,
                                (('AP', 'bbox AP'),
                                 ('recall_hard', 'hard-variant recall (%)'))):
        for arm in arms:
            curve = by[arm][0]['curve']
            ax.plot([q['iteration'] for q in curve], [q[key] for q in curve],
                    'o-',
                    ms=3,
                    label=ARM_LABELS[arm])
        ax.axvline(
            _constant_until(result), color='0.5', ls=':', label='lr x0.1')
        ax.axvline(
            BUDGET_EPOCHS * per_epoch, color='k', ls='--', label='budget')
        ax.set_xlabel('iteration')
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3, lw=0.5)
    axes[0].legend(fontsize=7)
    name = f'{stem}.png'
    fig.savefig(osp.join(fig_dir, name), dpi=110)
    return [(name, 'AP and hard-variant recall against iterations, one seed '
             '(dotted: the lr decay; dashed: the evidence budget).')]


# ----------------------------------------------------------------------
# across settings: difficulty against its prior, the default rule

#: Written before the runs; :func:`default_rule` applies it.
DEFAULT_RULE = (
    'A variant replaces the default (difficulty × RFS: repeat factors x D, '
    'online, mean over objects, c = 1) only if, across the settings, it '
    'beats the default on APr or hard recall with a 95 % interval above '
    'zero in at least 2 settings, and loses AP with an interval below zero '
    'in none. Settings where it ran on fewer than 2 seeds do not count.')
#: The one-option variants of the default arm, the rule's candidates.
DEFAULT_VARIANTS = tuple(a for a, of in ABLATION_OF.items()
                         if of == DEFAULT_ARM)
#: (arm, its reference) compared in every setting, in table order.
ACROSS = (('difficulty_rfs', 'rfs'), ('difficulty_class_aware', 'class_aware'))


def _name(result: dict) -> str:
    return result['preset']['name']


def _pair(result: dict, key: str, arm: str, reference: str) -> Optional[dict]:
    p = paired_difference(result['records'], key, arm, reference)
    return p if p is not None and p['n'] >= 2 else None


def default_rule(results: Sequence[dict]) -> Dict[str, dict]:
    """:data:`DEFAULT_RULE` for every variant of the default arm.

    Returns:
        dict: Variant -> ``measured`` / ``wins`` / ``losses`` (setting
        names) and ``replaces`` (bool).
    """
    out = {}
    for arm in DEFAULT_VARIANTS:
        measured, wins, losses = [], [], []
        for result in results:
            ap = _pair(result, 'AP', arm, DEFAULT_ARM)
            if ap is None:
                continue
            measured.append(_name(result))
            if any(
                    _pair(result, k, arm, DEFAULT_ARM)['ci95'][0] > 0
                    for k in ('APr', 'recall_hard')):
                wins.append(_name(result))
            if ap['ci95'][1] < 0:
                losses.append(_name(result))
        if measured:
            out[arm] = dict(
                measured=measured,
                wins=wins,
                losses=losses,
                replaces=len(wins) >= 2 and not losses)
    return out


def _outcome(rule: dict) -> str:
    if rule['replaces']:
        return 'replaces the default'
    if len(rule['measured']) < 2:
        return ('cannot meet the rule yet: measured in '
                f"{len(rule['measured'])} setting")
    return 'the default stays'


def render_across(results: Sequence[dict]) -> str:
    """Markdown: difficulty against its prior in every setting, and the
    default rule's outcome."""
    lines = [
        '### Difficulty against its prior, every setting', '',
        'Mean of (arm − reference) over the seeds both ran, its 95 % t '
        'interval, and wins / ties / losses.', '',
        _row(['setting', 'arm − reference', 'seeds',
              *[c[1] for c in PAIRED]]), '|' + '---|' * (3 + len(PAIRED))
    ]
    pairs = list(ACROSS) + [(a, DEFAULT_ARM) for a in DEFAULT_VARIANTS]
    for result in results:
        for arm, ref in pairs:
            cells = [_pair(result, k, arm, ref) for k, _ in PAIRED]
            if cells[0] is None:
                continue
            lines.append(
                _row([
                    f'{_name(result)} ({SETTING_LABELS[_name(result)]})',
                    f'{ARM_LABELS[arm]} − {ARM_LABELS[ref]}',
                    str(cells[0]['n']), *[format_paired(c) for c in cells]
                ]))
    lines += ['', '### The default rule', '', DEFAULT_RULE, '']
    rule = default_rule(results)
    if not rule:
        return '\n'.join(lines + ['No variant has run yet.', ''])
    lines += [
        _row([
            'variant', 'settings measured', 'wins (APr or hard recall > 0)',
            'AP losses (< 0)', 'outcome'
        ]), '|---|---|---|---|---|'
    ]
    for arm, r in rule.items():
        lines.append(
            _row([
                ARM_LABELS[arm], ', '.join(r['measured']), ', '.join(r['wins'])
                or 'none', ', '.join(r['losses']) or 'none',
                _outcome(r)
            ]))
    return '\n'.join(lines + [''])


def _verdict(result: dict, arm: str, ref: str) -> str:
    ap, apr, hard = (
        _pair(result, k, arm, ref) for k in ('AP', 'APr', 'recall_hard'))
    if ap is None:
        p = paired_difference(result['records'], 'AP', arm, ref)
        return ('not run' if p is None else
                f"{p['n']} seed recorded so far (an interval needs 2)")

    def show(p: dict) -> str:
        return f"{p['mean']:+.1f} [{p['ci95'][0]:+.1f}, {p['ci95'][1]:+.1f}]"

    gain = [
        name for name, p in (('AP', ap), ('APr', apr), ('hard recall', hard))
        if p['ci95'][0] > 0
    ]
    if ap['ci95'][1] < 0:
        word = 'AP loss shown'
    elif gain:
        word = 'gain shown (' + ', '.join(gain) + ')'
    else:
        word = 'no gain shown'
    return (f'{word}: AP {show(ap)}, APr {show(apr)}, hard recall '
            f'{show(hard)} ({ap["n"]} seeds)')


def render_which_sampler(results: Sequence[dict]) -> str:
    """The README's "Which sampler when" table (difficulty against its
    prior, per setting)."""
    lines = [
        _row([
            'data setting',
            *[f'{ARM_LABELS[a]} vs {ARM_LABELS[r]}' for a, r in ACROSS]
        ]), '|---|' + '---|' * len(ACROSS)
    ]
    for result in results:
        lines.append(
            _row([
                f'{_name(result)}: {SETTING_LABELS[_name(result)]}',
                *[_verdict(result, a, r) for a, r in ACROSS]
            ]))
    replaced = [a for a, r in default_rule(results).items() if r['replaces']]
    lines += [
        '', 'Paired differences (same seed), mean [95 % interval], boxes, '
        f'{results[0]["iterations"]} iterations per run on synthetic '
        'long-tailed LVIS ([docs/results.md](docs/results.md)). Default '
        'rule: ' +
        ('; '.join(ARM_LABELS[a]
                   for a in replaced) + ' replaced the default' if replaced
         else 'no variant met it; the default stays difficulty × RFS') + '.'
    ]
    return '\n'.join(lines)
