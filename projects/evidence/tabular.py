"""Logistic regression on small tabular sets, as the paper's UCI table.

Yu et al., CVPR 2022 (docs/method.md) compare Base / class-balanced loss /
their re-sampling with logistic regression on ten UCI sets used as they are. Of
those, scikit-learn bundles Iris and Wine; Breast Cancer (Wisconsin
diagnostic) is bundled too and added here (not in the paper: n/a). The sets
are used as they are, with a stratified train / test split per seed and the
features standardised with the training statistics (mmdiff choice; the
paper's Wine figure, 41.7 % for every method, suggests unscaled features).
"""
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from .stats import format_mean_std, format_paired, mean_std, paired_difference
from .training import (METHOD_LABELS, METHODS, TrainConfig, grouped_bars,
                       predict, train_classifier)

__all__ = [
    'DATASETS', 'PAPER_TABULAR', 'load_dataset', 'split_standardise',
    'run_tabular', 'TabularPreset', 'tabular_presets', 'plot_tabular',
    'render_tabular'
]

#: Name -> sklearn loader name (all bundled with the package, no download).
DATASETS = {
    'iris': 'load_iris',
    'wine': 'load_wine',
    'breast_cancer': 'load_breast_cancer',
}
#: Logistic regression accuracy % from the paper (docs/method.md; Base /
#: CB / Ours).
PAPER_TABULAR = {
    'iris': {
        'base': 93.3,
        'class_balanced': 93.3,
        'difficulty': 96.7
    },
    'wine': {
        'base': 41.7,
        'class_balanced': 41.7,
        'difficulty': 41.7
    },
}


def load_dataset(name: str) -> tuple:
    """Features and labels of a bundled scikit-learn data set.

    Args:
        name (str): A key of :data:`DATASETS`.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(n, d)`` float64 features and
        ``(n,)`` int64 labels in ``[0, K)``.
    """
    if name not in DATASETS:
        raise ValueError(
            f'dataset must be one of {tuple(DATASETS)}, got {name!r}')
    from sklearn import datasets
    loader: Callable = getattr(datasets, DATASETS[name])
    data = loader()
    return data.data.astype(np.float64), data.target.astype(np.int64)


def split_standardise(x: np.ndarray, y: np.ndarray, test_size: float,
                      seed: int) -> tuple:
    """Stratified split, then standardise with the training statistics.

    Args:
        x (np.ndarray): ``(n, d)`` features.
        y (np.ndarray): ``(n,)`` labels.
        test_size (float): Test fraction.
        seed (int): Seeds the split.

    Returns:
        tuple: ``(x_train, y_train, x_test, y_test)``, inputs float32.
    """
    from sklearn.model_selection import train_test_split
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed)
    mean, std = x_tr.mean(0), x_tr.std(0)
    std[std == 0] = 1.0
    return ((x_tr - mean) / std).astype(np.float32), y_tr, \
        ((x_te - mean) / std).astype(np.float32), y_te


def run_tabular(datasets: Sequence[str],
                train_cfg: TrainConfig,
                seeds: Sequence[int],
                methods: Sequence[str] = METHODS,
                test_size: float = 0.2) -> Dict[str, object]:
    """Logistic regression with every method, data set and seed.

    Methods of one data set and seed share the split and initial weights.

    Args:
        datasets (Sequence[str]): Keys of :data:`DATASETS`.
        train_cfg (TrainConfig): Training hyper-parameters.
        seeds (Sequence[int]): One split and run per seed.
        methods (Sequence[str], optional): Subset of :data:`METHODS`.
            Defaults to all.
        test_size (float, optional): Test fraction. Defaults to 0.2.

    Returns:
        dict: ``records`` (dataset, seed, method, ``accuracy`` and
        ``balanced_accuracy`` in %, ``train_accuracy``), ``info`` per data
        set (size, features, class counts), configurations, seeds and wall
        time.
    """
    start = time.perf_counter()
    records: List[Dict[str, object]] = []
    info: Dict[str, dict] = {}
    for name in datasets:
        x, y = load_dataset(name)
        num_classes = int(y.max()) + 1
        counts = np.bincount(y, minlength=num_classes)
        info[name] = {
            'samples': int(y.size),
            'features': int(x.shape[1]),
            'class_counts': counts.tolist(),
            'imbalance_ratio': float(counts.max() / counts.min()),
        }
        for seed in seeds:
            x_tr, y_tr, x_te, y_te = split_standardise(x, y, test_size, seed)
            info[name]['test_samples'] = int(y_te.size)
            for method in methods:
                torch.manual_seed(seed)
                model = nn.Linear(x.shape[1], num_classes)
                train_classifier(model, x_tr, y_tr, num_classes, method,
                                 train_cfg, seed)
                pred = predict(model, torch.as_tensor(x_te)).argmax(1).numpy()
                correct = pred == y_te
                recall = [
                    correct[y_te == c].mean() for c in range(num_classes)
                ]
                train_pred = predict(model, torch.as_tensor(x_tr)).argmax(1)
                records.append({
                    'dataset':
                    name,
                    'seed':
                    seed,
                    'method':
                    method,
                    'accuracy':
                    float(correct.mean() * 100),
                    'balanced_accuracy':
                    float(np.mean(recall) * 100),
                    'train_accuracy':
                    float((train_pred.numpy() == y_tr).mean() * 100),
                })
    return {
        'records': records,
        'info': info,
        'datasets': list(datasets),
        'train_cfg': asdict(train_cfg),
        'test_size': test_size,
        'seeds': list(seeds),
        'methods': list(methods),
        'seconds': time.perf_counter() - start,
    }


@dataclass
class TabularPreset:
    """A named tabular run.

    Attributes:
        train_cfg (TrainConfig): Training.
        seeds (list[int]): Seeds.
        datasets (tuple[str]): Data sets.
        test_size (float): Test fraction.
    """
    train_cfg: TrainConfig
    seeds: List[int] = field(default_factory=list)
    datasets: tuple = tuple(DATASETS)
    test_size: float = 0.2


def tabular_presets(quick: bool,
                    num_seeds: Optional[int] = None) -> TabularPreset:
    """The settings ``tools/reproduce_evidence.py`` runs.

    Fixed before looking at test results: Adam, lr 0.01, batch 16, weight
    decay 1e-4, class-balanced ``beta = 0.9999``, difficulty prior
    ``c = 1``, 80 / 20 stratified split (the paper's Iris figures are
    multiples of 1 / 30, i.e. a 30-image test set).

    Args:
        quick (bool): Fewer seeds and epochs.
        num_seeds (int, optional): Overrides the number of seeds.
            Defaults to 5 (quick) / 20 (full).

    Returns:
        TabularPreset: The setting.
    """
    num = num_seeds if num_seeds is not None else (5 if quick else 20)
    train_cfg = TrainConfig(
        epochs=30 if quick else 100,
        batch_size=16,
        lr=0.01,
        weight_decay=1e-4,
        optimizer='adam',
        cb_beta=0.9999,
        difficulty_c=1.0)
    return TabularPreset(train_cfg, list(range(num)))


def _values(result: dict, name: str, method: str, key: str) -> np.ndarray:
    return np.array([
        r[key] for r in result['records']
        if r['dataset'] == name and r['method'] == method
    ])


def _paired(result: dict, name: str, key: str, method: str) -> dict:
    return paired_difference(result['records'], key, method, 'base',
                             lambda r: r['dataset'] == name)


def plot_tabular(result: dict, fig_dir: str, stem: str = 'tabular') -> list:
    """Write the tabular figure (PNG, Agg backend).

    Args:
        result (dict): Output of :func:`run_tabular`.
        fig_dir (str): Folder for the PNG file (created).
        stem (str, optional): File name prefix. Defaults to 'tabular'.

    Returns:
        list[tuple[str, str]]: ``(file name, caption)`` of each figure.
    """
    import os

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    os.makedirs(fig_dir, exist_ok=True)
    names, methods = result['datasets'], result['methods']
    fig, ax = plt.subplots(figsize=(7, 3.5))
    grouped_bars(
        ax, {
            METHOD_LABELS[m]:
            [mean_std(_values(result, n, m, 'accuracy')) for n in names]
            for m in methods
        }, names)
    ax.set_ylabel('test accuracy (%)')
    ax.set_ylim(80, 101)
    ax.legend(loc='lower left', fontsize=8)
    ax.set_title('Logistic regression, mean ± std over '
                 f"{len(result['seeds'])} splits")
    fig.tight_layout()
    name = f'{stem}_accuracy.png'
    fig.savefig(os.path.join(fig_dir, name), dpi=120)
    plt.close(fig)
    return [(name, 'Test accuracy per data set (error bars: std over '
             'splits; the y axis starts at 80 %).')]


def render_tabular(result: dict, figures: Sequence[tuple],
                   fig_rel: str) -> str:
    """Markdown of the tabular section.

    Args:
        result (dict): Output of :func:`run_tabular`.
        figures (Sequence[tuple]): ``(file name, caption)`` pairs.
        fig_rel (str): Figure folder relative to the markdown file.

    Returns:
        str: The section body (no top-level title).
    """
    tc, seeds = result['train_cfg'], result['seeds']
    names, methods = result['datasets'], result['methods']
    lines = [
        '### Setting', '',
        'Logistic regression (one linear layer, softmax cross entropy) on '
        'the data sets as they are, as in the paper\'s UCI table. '
        f"Stratified {100 * (1 - result['test_size']):.0f} / "
        f"{100 * result['test_size']:.0f} split per seed; features "
        'standardised with the training mean / std. '
        f"{tc['optimizer']} lr {tc['lr']:g}, batch {tc['batch_size']}, "
        f"{tc['epochs']} epochs, weight decay {tc['weight_decay']:g}; "
        f"class-balanced beta {tc['cb_beta']:g}; difficulty prior c "
        f"{tc['difficulty_c']:g}. Seeds {seeds[0]}..{seeds[-1]} "
        f'({len(seeds)}; a seed fixes the split, the initial weights and '
        'the epoch order / draws, shared by all methods). Wall time: '
        f"{result['seconds']:.0f} s.", '',
        '| data set | samples | features | class counts | max / min | '
        'test samples |', '|---|---|---|---|---|---|'
    ]
    for name in names:
        i = result['info'][name]
        lines.append(f"| {name} | {i['samples']} | {i['features']} | "
                     f"{'/'.join(str(c) for c in i['class_counts'])} | "
                     f"{i['imbalance_ratio']:.2f} | {i['test_samples']} |")
    head = [METHOD_LABELS[m] for m in methods]
    paper_head = [f'paper (UCI, LR): {METHOD_LABELS[m]}' for m in methods]
    lines += [
        '', '### Test accuracy (%), mean ± std over splits', '',
        '| data set | ' + ' | '.join(head + paper_head) + ' |',
        '|---' * (1 + 2 * len(methods)) + '|'
    ]
    for name in names:
        cells = [
            format_mean_std(_values(result, name, m, 'accuracy'))
            for m in methods
        ]
        paper = PAPER_TABULAR.get(name)
        cells += [
            f'{paper[m]:.1f}' if paper and m in paper else 'n/a'
            for m in methods
        ]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines += [
        '', 'The paper columns are the published single figures (their '
        'split and preprocessing are unknown); Breast Cancer is not in the '
        'paper\'s list.', '', '### Balanced accuracy (%) and paired '
        'difference to base (accuracy, points; wins / ties / losses)', '',
        '| data set | ' + ' | '.join(f'{h}, balanced' for h in head) + ' | ' +
        ' | '.join(f'{METHOD_LABELS[m]} − base'
                   for m in methods if m != 'base') + ' |',
        '|---' * (1 + len(methods) + len(methods) - 1) + '|'
    ]
    for name in names:
        cells = [
            format_mean_std(_values(result, name, m, 'balanced_accuracy'))
            for m in methods
        ]
        for m in methods:
            if m == 'base':
                continue
            cells.append(format_paired(_paired(result, name, 'accuracy', m)))
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines.append('')
    for name, caption in figures:
        lines += [f'![{caption}]({fig_rel}/{name})', '', f'*{caption}*', '']
    return '\n'.join(lines)
