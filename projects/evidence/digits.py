"""Long-tailed digits: the paper's long-tailed MNIST run on sklearn's digits.

Yu et al., CVPR 2022 (docs/method.md) train an MLP on a binary MNIST task, even
digits (majority class) vs odd digits (minority class), class ratio 100,
with a sub-class imbalance inside each class, and report the accuracy on the
odd class's minority sub-classes. MNIST cannot be downloaded here, so the
task is built from the 1797 8x8 images that scikit-learn ships
(``sklearn.datasets.load_digits``, about 180 per digit).

Construction (mmdiff; :func:`subclass_counts`, :func:`build_long_tailed`):

- Per digit, ``test_per_digit`` images are held out: a test set balanced in
  classes and in sub-classes. The rest (about 130 per digit) is the pool.
- Training counts follow ``n_max``, the class ratio ``r_c`` and the
  sub-class ratio ``r_s``: digit 0 gets ``n_max``, the other even digits
  ``n_max / r_s``; digit 1 gets ``n_max / r_c``, the other odd digits
  ``n_max / (r_c r_s)``. So ``#even / #odd = r_c`` and, in each class,
  dominant / each rare sub-class ``= r_s``.
- A digit whose count exceeds its pool re-uses pool images in turn (every
  image ``floor`` or ``ceil`` times); otherwise it takes distinct images.
  Every training instance gets its own Gaussian pixel noise
  (``noise_std`` on the 0..16 scale, clipped), so re-used images are near
  duplicates, not copies. With ``n_max = 2000``, ``r_c = r_s = 20`` only
  digit 0 re-uses images (about 15 copies each); each rare odd digit has 5
  distinct images. The pool caps what distinct data can give: a class
  ratio of 100 *and* a sub-class ratio of 100 as in the paper would leave
  the rare odd digits with a fraction of an image.
"""
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from .stats import (format_mean_std, format_paired, group_by_method, mean_std,
                    paired_difference, record_values)
from .training import (METHOD_LABELS, METHODS, TrainConfig, grouped_bars,
                       predict, train_classifier)

__all__ = [
    'EVEN', 'ODD', 'GROUPS', 'PAPER_DIGITS', 'LongTailedDigitsConfig',
    'LongTailedDigits', 'subclass_counts', 'build_long_tailed',
    'load_sklearn_digits', 'make_mlp', 'digit_metrics', 'run_digits',
    'DigitsPreset', 'digits_presets', 'run_digits_sensitivity', 'plot_digits',
    'render_digits'
]

EVEN = (0, 2, 4, 6, 8)
ODD = (1, 3, 5, 7, 9)
#: Sub-class groups: the dominant digit of each class and its rare digits.
GROUPS = {
    'even_major': (0, ),
    'even_minor': (2, 4, 6, 8),
    'odd_major': (1, ),
    'odd_minor': (3, 5, 7, 9),
}
#: Long-tailed MNIST, MLP, from the paper (docs/method.md; accuracy %;
#: ratios are the paper's "sub-class ratio after re-balancing", 100
#: before).
PAPER_DIGITS = {
    'base': {
        'overall': 86.04,
        'odd_minor': 70.09
    },
    'class_balanced': {
        'overall': 86.19,
        'odd_minor': 72.44,
        'subclass_ratio': 69.6
    },
    'difficulty': {
        'overall': 87.99,
        'odd_minor': 77.43,
        'subclass_ratio': 37.3
    },
}
PIXEL_MAX = 16.0


@dataclass
class LongTailedDigitsConfig:
    """How the long-tailed binary digits task is built.

    Args:
        n_max (int, optional): Training instances of digit 0, the dominant
            sub-class of the majority class. Defaults to 2000.
        class_ratio (float, optional): ``#even / #odd`` instances.
            Defaults to 20.
        subclass_ratio (float, optional): Dominant / each rare sub-class,
            in both classes. Defaults to 20.
        test_per_digit (int, optional): Held-out test images per digit.
            Defaults to 50.
        noise_std (float, optional): Std of the per-instance Gaussian pixel
            noise, on the 0..16 pixel scale. Defaults to 1.0.
    """
    n_max: int = 2000
    class_ratio: float = 20.0
    subclass_ratio: float = 20.0
    test_per_digit: int = 50
    noise_std: float = 1.0


@dataclass
class LongTailedDigits:
    """One draw of the long-tailed binary digits task.

    Attributes:
        x_train (np.ndarray): ``(N, 64)`` float32 inputs in ``[0, 1]``.
        y_train (np.ndarray): ``(N,)`` class, 0 = even, 1 = odd.
        digit_train (np.ndarray): ``(N,)`` digit (sub-class) 0..9.
        source_train (np.ndarray): ``(N,)`` index of the sklearn image each
            instance was made from.
        x_test (np.ndarray): ``(M, 64)`` float32 clean test inputs.
        y_test (np.ndarray): ``(M,)`` test classes.
        digit_test (np.ndarray): ``(M,)`` test digits.
    """
    x_train: np.ndarray
    y_train: np.ndarray
    digit_train: np.ndarray
    source_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    digit_test: np.ndarray


def subclass_counts(cfg: LongTailedDigitsConfig) -> Dict[int, int]:
    """Training instances per digit (see the module docstring).

    Args:
        cfg (LongTailedDigitsConfig): The construction.

    Returns:
        dict[int, int]: Digit -> count, every count >= 1.
    """
    if cfg.class_ratio < 1 or cfg.subclass_ratio < 1:
        raise ValueError('class_ratio and subclass_ratio must be >= 1, got '
                         f'{cfg.class_ratio} and {cfg.subclass_ratio}')
    n, r_c, r_s = cfg.n_max, cfg.class_ratio, cfg.subclass_ratio
    counts = {}
    for digit in range(10):
        share = 1.0 if digit in GROUPS['even_major'] else 1.0 / r_s
        if digit in ODD:
            share = 1.0 / r_c if digit in GROUPS['odd_major'] else 1.0 / (
                r_c * r_s)
        counts[digit] = int(round(n * share))
    if min(counts.values()) < 1:
        raise ValueError(
            f'n_max = {n} is too small for class ratio {r_c} and sub-class '
            f'ratio {r_s}: some digit would get no instance ({counts})')
    return counts


def load_sklearn_digits() -> tuple:
    """The 1797 bundled 8x8 digits of scikit-learn (no download).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(1797, 64)`` float64 pixels in
        0..16 and ``(1797,)`` int64 digits.
    """
    from sklearn.datasets import load_digits
    data = load_digits()
    return data.data, data.target.astype(np.int64)


def build_long_tailed(
        cfg: LongTailedDigitsConfig,
        seed: int,
        images: Optional[np.ndarray] = None,
        targets: Optional[np.ndarray] = None) -> LongTailedDigits:
    """Draw the train / test split and the long-tailed training set.

    Args:
        cfg (LongTailedDigitsConfig): The construction.
        seed (int): Seeds the split, the choice of images and the noise.
        images (np.ndarray, optional): ``(n, 64)`` pixels in 0..16.
            Defaults to sklearn's digits.
        targets (np.ndarray, optional): ``(n,)`` digits. Defaults to
            sklearn's.

    Returns:
        LongTailedDigits: The task.
    """
    if images is None or targets is None:
        images, targets = load_sklearn_digits()
    counts = subclass_counts(cfg)
    rng = np.random.default_rng(seed)
    train_src: List[np.ndarray] = []
    test_src: List[np.ndarray] = []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(targets == digit))
        pool = idx[cfg.test_per_digit:]
        if cfg.test_per_digit < 1 or pool.size < 1:
            raise ValueError(
                f'digit {digit} has {idx.size} images: cannot hold out '
                f'test_per_digit = {cfg.test_per_digit} and keep a pool')
        test_src.append(idx[:cfg.test_per_digit])
        # Cyclic re-use: every pool image floor or ceil(count / pool) times.
        train_src.append(pool[np.arange(counts[digit]) % pool.size])
    src = np.concatenate(train_src)
    noisy = images[src] + rng.normal(0.0, cfg.noise_std, images[src].shape)
    x_train = np.clip(noisy, 0.0, PIXEL_MAX) / PIXEL_MAX
    test = np.concatenate(test_src)
    digit_train, digit_test = targets[src], targets[test]
    return LongTailedDigits(
        x_train=x_train.astype(np.float32),
        y_train=digit_train % 2,
        digit_train=digit_train,
        source_train=src,
        x_test=(images[test] / PIXEL_MAX).astype(np.float32),
        y_test=digit_test % 2,
        digit_test=digit_test)


def make_mlp(in_features: int = 64,
             hidden: Sequence[int] = (64, ),
             num_classes: int = 2) -> nn.Module:
    """A ReLU MLP, e.g. 64-64-2.

    Args:
        in_features (int, optional): Input size. Defaults to 64.
        hidden (Sequence[int], optional): Hidden layer sizes.
            Defaults to (64,).
        num_classes (int, optional): Output size. Defaults to 2.

    Returns:
        nn.Module: The MLP (torch's default initialisation).
    """
    layers: List[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _group_mass(mass: np.ndarray, digits: np.ndarray) -> Dict[str, float]:
    per_digit = np.bincount(digits, weights=mass, minlength=10)
    out = {f'mass_digit{d}': float(per_digit[d]) for d in range(10)}
    even, odd = per_digit[list(EVEN)].sum(), per_digit[list(ODD)].sum()
    major = {k: per_digit[list(v)].mean() for k, v in GROUPS.items()}
    out.update(
        class_ratio=float(even / odd),
        subclass_ratio_even=float(major['even_major'] / major['even_minor']),
        subclass_ratio_odd=float(major['odd_major'] / major['odd_minor']),
        extreme_ratio=float(major['even_major'] / major['odd_minor']),
        odd_minor_share=float(per_digit[list(GROUPS['odd_minor'])].sum()))
    return out


def digit_metrics(pred: np.ndarray,
                  labels: np.ndarray,
                  digits: np.ndarray,
                  prefix: str = '') -> Dict[str, float]:
    """Accuracy (%) overall, per class, per sub-class group and per digit.

    Args:
        pred (np.ndarray): ``(M,)`` predicted classes.
        labels (np.ndarray): ``(M,)`` true classes (0 even, 1 odd).
        digits (np.ndarray): ``(M,)`` digits.
        prefix (str, optional): Prepended to every key. Defaults to ''.

    Returns:
        dict[str, float]: ``overall``, ``even``, ``odd``, the
        :data:`GROUPS` (mean over the group's images) and ``digit0`` ..
        ``digit9``.
    """
    correct = (pred == labels).astype(np.float64)
    out = {'overall': correct.mean() * 100}
    out['even'] = correct[labels == 0].mean() * 100
    out['odd'] = correct[labels == 1].mean() * 100
    for name, group in GROUPS.items():
        out[name] = correct[np.isin(digits, group)].mean() * 100
    for d in range(10):
        out[f'digit{d}'] = correct[digits == d].mean() * 100
    return {prefix + k: float(v) for k, v in out.items()}


def run_digits(
    data_cfg: LongTailedDigitsConfig,
    train_cfg: TrainConfig,
    seeds: Sequence[int],
    methods: Sequence[str] = METHODS,
    hidden: Sequence[int] = (64, )
) -> Dict[str, object]:
    """Train every method on every seed's draw of the task.

    All methods of one seed share the task draw and the initial weights, so
    their differences are paired.

    Args:
        data_cfg (LongTailedDigitsConfig): The task construction.
        train_cfg (TrainConfig): Training hyper-parameters.
        seeds (Sequence[int]): One run per seed and method.
        methods (Sequence[str], optional): Subset of :data:`METHODS`.
            Defaults to all.
        hidden (Sequence[int], optional): MLP hidden sizes.
            Defaults to (64,).

    Returns:
        dict: ``records`` (one dict per seed and method: test metrics,
        ``train_*`` training-set metrics, the instance-mass composition
        ``mass_*`` / ratios, for the difficulty method ``d_*`` mean final
        difficulty per group and ``history_odd_minor_share`` per epoch),
        ``counts`` (training instances per digit), the configurations,
        seeds and the wall time in seconds.
    """
    start = time.perf_counter()
    images, targets = load_sklearn_digits()
    records: List[Dict[str, object]] = []
    counts = subclass_counts(data_cfg)
    for seed in seeds:
        task = build_long_tailed(data_cfg, seed, images, targets)
        for method in methods:
            torch.manual_seed(seed)
            model = make_mlp(task.x_train.shape[1], hidden, 2)
            result = train_classifier(model, task.x_train, task.y_train, 2,
                                      method, train_cfg, seed)
            rec: Dict[str, object] = {'seed': seed, 'method': method}
            test_pred = predict(model, torch.as_tensor(task.x_test))
            rec.update(
                digit_metrics(
                    test_pred.argmax(1).numpy(), task.y_test, task.digit_test))
            train_pred = predict(model, torch.as_tensor(task.x_train))
            rec.update(
                digit_metrics(
                    train_pred.argmax(1).numpy(), task.y_train,
                    task.digit_train, 'train_'))
            rec.update(_group_mass(result.instance_mass, task.digit_train))
            if result.difficulty is not None:
                for name, group in GROUPS.items():
                    rec[f'd_{name}'] = float(result.difficulty[np.isin(
                        task.digit_train, group)].mean())
                rec['history_odd_minor_share'] = [
                    _group_mass(m, task.digit_train)['odd_minor_share']
                    for m in result.mass_history
                ]
            records.append(rec)
    return {
        'records': records,
        'counts': counts,
        'pool_sizes': {
            d: int((targets == d).sum()) - data_cfg.test_per_digit
            for d in range(10)
        },
        'data_cfg': asdict(data_cfg),
        'train_cfg': asdict(train_cfg),
        'hidden': list(hidden),
        'seeds': list(seeds),
        'methods': list(methods),
        'seconds': time.perf_counter() - start,
    }


@dataclass
class DigitsPreset:
    """A named digits run: task, training, seeds and sensitivity grid.

    Attributes:
        data_cfg (LongTailedDigitsConfig): The main task.
        train_cfg (TrainConfig): Training.
        seeds (list[int]): Seeds.
        hidden (tuple[int]): MLP hidden sizes.
        c_values (tuple[float]): Difficulty priors ``c`` of the sensitivity
            runs (difficulty method only).
        class_ratios (tuple[float]): Class ratios of the sensitivity runs
            (all methods, ``n_max`` and sub-class ratio kept).
    """
    data_cfg: LongTailedDigitsConfig
    train_cfg: TrainConfig
    seeds: List[int] = field(default_factory=list)
    hidden: tuple = (64, )
    c_values: tuple = (0.1, 1.0, 10.0)
    class_ratios: tuple = (10.0, 20.0, 50.0)


def digits_presets(quick: bool,
                   num_seeds: Optional[int] = None) -> DigitsPreset:
    """The settings ``tools/reproduce_evidence.py`` runs.

    Fixed before looking at test results: Adam, lr 1e-3, batch 64, no weight
    decay, class-balanced ``beta = 0.9999``, difficulty prior ``c = 1``.

    Args:
        quick (bool): Fewer seeds and epochs.
        num_seeds (int, optional): Overrides the number of seeds (seeds are
            ``0 .. num_seeds - 1``). Defaults to 5 (quick) / 20 (full).

    Returns:
        DigitsPreset: The setting.
    """
    num = num_seeds if num_seeds is not None else (5 if quick else 20)
    train_cfg = TrainConfig(
        epochs=20 if quick else 40,
        batch_size=64,
        lr=1e-3,
        optimizer='adam',
        cb_beta=0.9999,
        difficulty_c=1.0)
    return DigitsPreset(LongTailedDigitsConfig(), train_cfg, list(range(num)))


def run_digits_sensitivity(preset: DigitsPreset,
                           main: dict) -> Dict[str, list]:
    """Vary the prior ``c`` and the class ratio around the main run.

    Args:
        preset (DigitsPreset): The setting (grids included).
        main (dict): :func:`run_digits` output of the main setting, re-used
            where a grid point equals it.

    Returns:
        dict: ``'c'``: ``[(c, result)]`` (difficulty method only, plus
        the main run's records for ``c`` of the main run); ``'class_ratio'``:
        ``[(ratio, result)]`` (all methods).
    """
    out: Dict[str, list] = {'c': [], 'class_ratio': []}
    for c in preset.c_values:
        if c == preset.train_cfg.difficulty_c:
            out['c'].append((c, main))
            continue
        train_cfg = replace(preset.train_cfg, difficulty_c=c)
        out['c'].append((c,
                         run_digits(preset.data_cfg, train_cfg, preset.seeds,
                                    ('difficulty', ), preset.hidden)))
    for ratio in preset.class_ratios:
        if ratio == preset.data_cfg.class_ratio:
            out['class_ratio'].append((ratio, main))
            continue
        data_cfg = replace(preset.data_cfg, class_ratio=ratio)
        out['class_ratio'].append((ratio,
                                   run_digits(
                                       data_cfg,
                                       preset.train_cfg,
                                       preset.seeds,
                                       hidden=preset.hidden)))
    return out


# ----------------------------------------------------------------------
# report


def _paired(result: dict,
            key: str,
            method: str,
            reference: str = 'base') -> Optional[dict]:
    """Paired difference ``method - reference`` over the shared seeds."""
    return paired_difference(result['records'], key, method, reference)


def plot_digits(result: dict,
                fig_dir: str,
                stem: str = 'digits',
                sensitivity: Optional[Dict[str, list]] = None) -> list:
    """Write the digits figures (PNG, Agg backend).

    Args:
        result (dict): Output of :func:`run_digits`.
        fig_dir (str): Folder for the PNG files (created).
        stem (str, optional): File name prefix. Defaults to 'digits'.
        sensitivity (dict, optional): Output of
            :func:`run_digits_sensitivity`; its ``c`` runs are added to the
            sampled-share plot. Defaults to None.

    Returns:
        list[tuple[str, str]]: ``(file name, caption)`` of each figure.
    """
    import os

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    os.makedirs(fig_dir, exist_ok=True)
    by = group_by_method(result['records'])
    methods = [m for m in result['methods'] if m in by]
    figures = []

    keys = ['overall', 'even', 'odd', *GROUPS]
    fig, ax = plt.subplots(figsize=(9, 4))
    grouped_bars(
        ax, {
            METHOD_LABELS[m]:
            [mean_std(record_values(by[m], k)) for k in keys]
            for m in methods
        }, [k.replace('_', '\n') for k in keys])
    ax.set_ylabel('test accuracy (%)')
    ax.set_ylim(0, 105)
    ax.legend(loc='lower left', fontsize=8)
    ax.set_title(f'Long-tailed digits, mean ± std over {len(by[methods[0]])}'
                 ' seeds')
    fig.tight_layout()
    name = f'{stem}_accuracy.png'
    fig.savefig(os.path.join(fig_dir, name), dpi=120)
    plt.close(fig)
    figures.append((name, 'Test accuracy per group (error bars: std over '
                    'seeds).'))

    fig, ax = plt.subplots(figsize=(9, 4))
    digits = np.arange(10)
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        mass = np.array([[r[f'mass_digit{d}'] for d in digits]
                         for r in by[method]]).mean(0)
        ax.bar(
            digits + (i - (len(methods) - 1) / 2) * width,
            mass * 100,
            width,
            label=METHOD_LABELS[method])
    ax.set_yscale('log')
    ax.set_xticks(digits)
    ax.set_xlabel('digit (even = majority class, 0 and 1 dominant '
                  'sub-classes)')
    ax.set_ylabel('share of the last epoch (%)')
    ax.legend(fontsize=8)
    ax.set_title('Training composition after re-balancing (base = '
                 'data as built)')
    fig.tight_layout()
    name = f'{stem}_composition.png'
    fig.savefig(os.path.join(fig_dir, name), dpi=120)
    plt.close(fig)
    figures.append((name, 'Expected share of each digit in the last epoch: '
                    'sampling probabilities (difficulty), normalised loss '
                    'weights (class-balanced), uniform (base); mean over '
                    'seeds, log scale.'))

    if 'difficulty' in by:
        runs = [(result['train_cfg']['difficulty_c'], result)]
        if sensitivity and sensitivity.get('c'):
            runs = sensitivity['c']
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for c, res in runs:
            hist = np.array([
                r['history_odd_minor_share']
                for r in res['records'] if r['method'] == 'difficulty'
            ]) * 100
            mean = hist.mean(0)
            std = hist.std(0, ddof=1) if len(hist) > 1 else 0 * mean
            epochs = np.arange(1, hist.shape[1] + 1)
            ax.plot(epochs, mean, label=f'difficulty re-sampling, c = {c:g}')
            ax.fill_between(epochs, mean - std, mean + std, alpha=0.3)
        ax.axhline(
            hist[0, 0], color='k', ls='--', label='data as built (uniform)')
        ax.set_yscale('log')
        ax.set_xlabel('epoch')
        ax.set_ylabel('odd minority digits (%)')
        ax.set_title('Sampled share of the odd minority sub-classes')
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f'{stem}_odd_minor_share.png'
        fig.savefig(os.path.join(fig_dir, name), dpi=120)
        plt.close(fig)
        figures.append((name, 'Share of the odd minority digits (3, 5, 7, 9)'
                        ' in the distribution each epoch is drawn from '
                        '(epoch 1 is uniform), mean ± std over seeds, log '
                        'scale.'))
    return figures


def _reuse_text(result: dict) -> str:
    """Which digits re-use their pool images, and how often."""
    counts, pools = result['counts'], result['pool_sizes']
    reused = [d for d in range(10) if counts[d] > pools[d]]
    text = (f'Pools (images left after the test hold-out): '
            f'{min(pools.values())} to {max(pools.values())} per digit. ')
    if not reused:
        return text + 'Every digit uses distinct images.'
    return text + ', '.join(
        f'Digit {d} cycles through its pool (up to '
        f'{-(-counts[d] // pools[d])} noisy copies per image)'
        for d in reused) + '; the other digits use distinct images.'


def render_digits(result: dict,
                  figures: Sequence[tuple],
                  fig_rel: str,
                  sensitivity: Optional[Dict[str, list]] = None) -> str:
    """Markdown of the digits section: setting, tables, figures, reading.

    Args:
        result (dict): Output of :func:`run_digits`.
        figures (Sequence[tuple]): ``(file name, caption)`` pairs from
            :func:`plot_digits`.
        fig_rel (str): Path of the figure folder relative to the markdown
            file.
        sensitivity (dict, optional): Output of
            :func:`run_digits_sensitivity`. Defaults to None.

    Returns:
        str: The section body (no top-level title).
    """
    by = group_by_method(result['records'])
    methods = [m for m in result['methods'] if m in by]
    dc, tc, counts = result['data_cfg'], result['train_cfg'], result['counts']
    n_train = sum(counts.values())
    seeds = result['seeds']
    lines = [
        '### Setting', '',
        'The paper\'s long-tailed MNIST task (even = majority class, odd = '
        'minority class, sub-class imbalance inside each class), built from '
        'the 1797 8x8 digits bundled with scikit-learn because MNIST cannot '
        'be downloaded here. The bundled set has about 180 images per '
        'digit, too few for the paper\'s class ratio 100 together with a '
        'sub-class ratio 100, so this run uses **class ratio '
        f"{dc['class_ratio']:g} and sub-class ratio "
        f"{dc['subclass_ratio']:g}** (mmdiff choice).", '',
        f"- Test: {dc['test_per_digit']} held-out clean images per digit "
        '(balanced classes and sub-classes).',
        '- Train: ' + ', '.join(f'digit {d}: {counts[d]}' for d in range(10)) +
        f' ({n_train} instances). ' + _reuse_text(result) +
        ' Every training instance carries its own Gaussian pixel noise '
        f"(std {dc['noise_std']:g} on the 0..16 scale).",
        f"- Model: MLP 64-{'-'.join(str(h) for h in result['hidden'])}-2, "
        f"{tc['optimizer']} lr {tc['lr']:g}, batch {tc['batch_size']}, "
        f"{tc['epochs']} epochs, weight decay {tc['weight_decay']:g}; "
        f"class-balanced beta {tc['cb_beta']:g}; difficulty prior c "
        f"{tc['difficulty_c']:g}, D updated after every epoch from the "
        'softmax on all training instances, each epoch draws N instances '
        'with replacement from w ∝ D (first epoch uniform).',
        f'- Seeds: {seeds[0]}..{seeds[-1]} ({len(seeds)} seeds; a seed '
        'fixes the split, the image choice, the noise, the initial weights '
        'and the epoch order / draws; all methods of a seed share them). '
        f"Wall time of this main run: {result['seconds']:.0f} s.", ''
    ]

    def row(label: str, cells: Sequence[str]) -> str:
        return '| ' + ' | '.join([label, *cells]) + ' |'

    keys = [('overall', 'overall'), ('even', 'even class'),
            ('odd', 'odd class'), ('even_major', 'even major (0)'),
            ('even_minor', 'even minor (2,4,6,8)'),
            ('odd_major', 'odd major (1)'),
            ('odd_minor', 'odd minor (3,5,7,9)')]
    lines += [
        '### Test accuracy (%), mean ± std over seeds', '',
        row('method', [k[1] for k in keys]), '|' + '---|' * (len(keys) + 1)
    ]
    for method in methods:
        lines.append(
            row(METHOD_LABELS[method], [
                format_mean_std(record_values(by[method], k)) for k, _ in keys
            ]))
    for method in methods:
        paper = PAPER_DIGITS.get(method, {})
        cells = [f'{paper[k]:.2f}' if k in paper else '' for k, _ in keys]
        lines.append(
            row(f'*paper (MNIST, MLP): {METHOD_LABELS[method]}*', cells))
    lines += [
        '', 'The paper rows are the published figures for the MNIST task '
        '(class ratio 100, sub-class ratio 100); they are a reference for '
        'the direction of the effects, not a like-for-like comparison.', ''
    ]

    if 'base' in by:
        lines += [
            '### Paired difference to base (percentage points)', '',
            'mean over seeds of (method − base) on the same seed, its 95 % '
            't interval, and wins / ties / losses.', '',
            row('method', [k[1] for k in keys]), '|' + '---|' * (len(keys) + 1)
        ]
        for method in methods:
            if method == 'base':
                continue
            lines.append(
                row(METHOD_LABELS[method], [
                    format_paired(_paired(result, k, method)) for k, _ in keys
                ]))
        lines.append('')

    rkeys = [('class_ratio', 'class ratio even/odd'),
             ('subclass_ratio_even', 'sub-class ratio in even'),
             ('subclass_ratio_odd', 'sub-class ratio in odd'),
             ('extreme_ratio', 'digit 0 / each odd minor digit'),
             ('odd_minor_share', 'odd minor share (%)')]
    lines += [
        '### Training composition after re-balancing', '',
        'Expected composition of the last epoch: the sampling probabilities '
        'it was drawn from (difficulty), the loss weights normalised to a '
        'distribution (class-balanced, i.e. the composition that re-sampling '
        'with those weights would give), the data as built (base). A ratio '
        'is the mass of the first group per instance-count sub-class over '
        'that of the second (e.g. sub-class ratio = mass of the dominant '
        'digit / mean mass of one rare digit). The paper reports "the '
        'sub-class ratio drops from 100 to 37.3 (class-balanced: 69.6)" '
        'without saying which ratio; since a class-level weight cannot '
        'change a ratio inside a class, the paper\'s figure is probably '
        'not our within-class ratio.', '',
        row('method', [k[1] for k in rkeys]), '|' + '---|' * (len(rkeys) + 1)
    ]
    for method in methods:
        cells = []
        for key, _ in rkeys:
            vals = record_values(by[method], key)
            if key == 'odd_minor_share':
                vals = vals * 100
            cells.append(format_mean_std(vals, 2))
        lines.append(row(METHOD_LABELS[method], cells))
    paper = ', '.join(
        f"{METHOD_LABELS[m]} {PAPER_DIGITS[m]['subclass_ratio']:g}"
        for m in methods if 'subclass_ratio' in PAPER_DIGITS.get(m, {}))
    lines += [
        '', f'*paper (MNIST, MLP)*: sub-class ratio 100 before re-balancing; '
        f'after: {paper} (ratio not defined in our copy).', ''
    ]

    if 'difficulty' in by:
        recs = by['difficulty']
        lines += [
            '### Final difficulty D per sub-class group (difficulty method)',
            '',
            row('', [k for k in GROUPS]), '|' + '---|' * (len(GROUPS) + 1),
            row('mean D (mean ± std over seeds)', [
                format_mean_std(record_values(recs, f'd_{k}'), 3)
                for k in GROUPS
            ]), ''
        ]
    lines += [
        '### Training-set accuracy (%)', '',
        row('method', [k[1] for k in keys]), '|' + '---|' * (len(keys) + 1)
    ]
    for method in methods:
        lines.append(
            row(METHOD_LABELS[method], [
                format_mean_std(record_values(by[method], 'train_' + k))
                for k, _ in keys
            ]))
    lines.append('')

    for name, caption in figures:
        lines += [f'![{caption}]({fig_rel}/{name})', '', f'*{caption}*', '']

    if sensitivity:
        lines += _render_sensitivity(result, sensitivity)
    return '\n'.join(lines)


def _combined(base: dict, other: dict) -> dict:
    """Base records of one result with the other methods of another."""
    records = [r for r in base['records'] if r['method'] == 'base']
    records += [r for r in other['records'] if r['method'] != 'base']
    return {'records': records}


def _render_sensitivity(main: dict, sensitivity: Dict[str, list]) -> list:
    """Markdown lines of the sensitivity tables."""
    lines = []
    keys = ('overall', 'odd', 'odd_minor')
    if sensitivity.get('c'):
        lines += [
            '### Sensitivity: difficulty prior c (main task)', '',
            'Difficulty method only; "odd minor − base" is paired with the '
            'main run\'s base on the same seeds. Ratios are those of the '
            'last epoch\'s sampling distribution.', '',
            '| c | overall | odd class | odd minor | odd minor − base | '
            'class ratio after | sub-class ratio in odd after |',
            '|---|---|---|---|---|---|---|'
        ]
        for c, res in sensitivity['c']:
            recs = group_by_method(res['records'])['difficulty']
            cells = [format_mean_std(record_values(recs, k)) for k in keys]
            cells.append(
                format_paired(
                    _paired(_combined(main, res), 'odd_minor', 'difficulty')))
            cells += [
                format_mean_std(record_values(recs, k))
                for k in ('class_ratio', 'subclass_ratio_odd')
            ]
            lines.append(f'| {c:g} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    if sensitivity.get('class_ratio'):
        dc = main['data_cfg']
        lines += [
            '### Sensitivity: class ratio', '',
            f"n_max {dc['n_max']} and sub-class ratio "
            f"{dc['subclass_ratio']:g} kept, so a larger class ratio leaves "
            'fewer images per odd digit.', '',
            '| class ratio | images of digit 1 / each rare odd digit | '
            'method | overall | odd class | odd minor | odd minor − base |',
            '|---|---|---|---|---|---|---|'
        ]
        for ratio, res in sensitivity['class_ratio']:
            by = group_by_method(res['records'])
            counts = res['counts']
            for method in res['methods']:
                cells = [
                    format_mean_std(record_values(by[method], k)) for k in keys
                ]
                cells.append('' if method == 'base' else format_paired(
                    _paired(res, 'odd_minor', method)))
                lines.append(f'| {ratio:g} | {counts[1]} / {counts[3]} | '
                             f'{METHOD_LABELS[method]} | ' +
                             ' | '.join(cells) + ' |')
        lines.append('')
    return lines
