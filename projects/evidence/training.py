"""One training loop for the three re-balancing methods of the evidence runs.

Shapes: ``N`` training instances, ``d`` features, ``K`` classes.

Methods (:data:`METHODS`):

- ``'base'``: cross entropy, every epoch a random permutation of the
  training set.
- ``'class_balanced'``: the class-balanced loss of Cui et al., CVPR 2019,
  "Class-Balanced Loss Based on Effective Number of Samples": cross entropy
  with class weights :func:`class_balanced_weights`, same order as base.
- ``'difficulty'``: the re-sampling of Yu et al., CVPR 2022 (docs/method.md,
  algorithm). Every epoch draws ``N`` instances with replacement from
  ``w``; ``w`` is uniform for the first epoch and afterwards ``w ∝ D``, with
  ``D`` the instance difficulty of :class:`mmdiff.core.DifficultyState`
  updated after every epoch from the model's softmax on *all* training
  instances. The weights come from
  :func:`mmdiff.core.sampling_weights` (``'paper'`` scheme); nothing of the
  method is re-implemented here.

Randomness: the model initialisation uses ``torch.manual_seed(seed)``; the
order / draw of epoch ``t`` uses its own generator seeded by
``(seed, t)``, never the global numpy RNG.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdiff.core import DifficultyState, ImageClassIndex, sampling_weights

__all__ = [
    'METHODS', 'METHOD_LABELS', 'TrainConfig', 'TrainResult',
    'class_balanced_weights', 'train_classifier', 'predict'
]

METHODS = ('base', 'class_balanced', 'difficulty')
#: Names used in tables and figures.
METHOD_LABELS = {
    'base': 'Base (CE)',
    'class_balanced': 'Class-balanced loss',
    'difficulty': 'Difficulty re-sampling (ours)',
}
OPTIMIZERS = ('adam', 'sgd')


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run.

    Args:
        epochs (int): Number of epochs T.
        batch_size (int): Minibatch size.
        lr (float): Learning rate.
        weight_decay (float, optional): L2 penalty. Defaults to 0.
        optimizer (str, optional): ``'adam'`` or ``'sgd'`` (momentum 0.9).
            Defaults to 'adam'.
        cb_beta (float, optional): ``beta`` of the class-balanced loss.
            Defaults to 0.9999.
        difficulty_c (float, optional): Prior ``c`` of the difficulty.
            Defaults to 1.0.
    """
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    optimizer: str = 'adam'
    cb_beta: float = 0.9999
    difficulty_c: float = 1.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError('epochs and batch_size must be >= 1, got '
                             f'{self.epochs} and {self.batch_size}')
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError('lr must be > 0 and weight_decay >= 0, got '
                             f'{self.lr} and {self.weight_decay}')
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f'optimizer must be one of {OPTIMIZERS}, got '
                             f'{self.optimizer!r}')
        if not 0 <= self.cb_beta < 1:
            raise ValueError(f'cb_beta must lie in [0, 1), got {self.cb_beta}')
        if not self.difficulty_c > 0:
            raise ValueError(
                f'difficulty_c must be > 0, got {self.difficulty_c}')


@dataclass
class TrainResult:
    """What one training run leaves behind.

    Attributes:
        model (nn.Module): The trained model (eval mode).
        instance_mass (np.ndarray): ``(N,)`` share of the training signal
            each instance received in the last epoch, summing to 1: the
            sampling probabilities the last epoch was drawn from
            (``'difficulty'``), the normalised loss weights
            (``'class_balanced'``), or ``1 / N`` (``'base'``).
        difficulty (np.ndarray, optional): ``(N,)`` final difficulty D
            (``'difficulty'`` only).
        mass_history (list[np.ndarray]): The ``instance_mass`` of every
            epoch, first epoch first (``'difficulty'`` only, else empty).
    """
    model: nn.Module
    instance_mass: np.ndarray
    difficulty: Optional[np.ndarray] = None
    mass_history: List[np.ndarray] = field(default_factory=list)


def class_balanced_weights(counts: Sequence[int], beta: float) -> np.ndarray:
    """Class weights of the class-balanced loss (Cui et al., CVPR 2019).

    The effective number of ``n`` samples is ``E_n = (1 - beta ** n) /
    (1 - beta)``; class ``c`` gets a weight ``∝ 1 / E_{n_c}``, normalised so
    that the weights sum to the number of classes ``K`` (as in the
    authors' code). ``beta = 0`` gives equal weights; ``beta -> 1`` inverse
    class frequency. Classes with no sample get weight 0 before the
    normalisation.

    Args:
        counts (Sequence[int]): ``(K,)`` training samples per class.
        beta (float): Hyper-parameter in ``[0, 1)``.

    Returns:
        np.ndarray: ``(K,)`` float64 class weights summing to ``K``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0):
        raise ValueError('counts must be a non-empty 1-D array of '
                         f'non-negative counts, got {counts}')
    if not counts.sum() > 0:
        raise ValueError('counts must not all be zero')
    if not 0 <= beta < 1:
        raise ValueError(f'beta must lie in [0, 1), got {beta}')
    present = counts > 0
    effective = np.ones_like(counts)
    # -expm1(n log beta) = 1 - beta ** n without cancellation near beta = 1.
    effective[present] = (-np.expm1(counts[present] * np.log(beta))
                          if beta > 0 else 1.0) / (1.0 - beta)
    weights = np.where(present, 1.0 / effective, 0.0)
    return weights * counts.size / weights.sum()


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == 'adam':
        return torch.optim.Adam(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=0.9,
        weight_decay=cfg.weight_decay)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities of a model in eval mode.

    Args:
        model (nn.Module): Maps ``(n, d)`` inputs to ``(n, K)`` logits.
        x (torch.Tensor): ``(n, d)`` inputs.

    Returns:
        torch.Tensor: ``(n, K)`` probabilities.
    """
    model.eval()
    return F.softmax(model(x), dim=1)


def train_classifier(model: nn.Module, x: np.ndarray, y: np.ndarray,
                     num_classes: int, method: str, cfg: TrainConfig,
                     seed: int) -> TrainResult:
    """Train ``model`` in place with one of :data:`METHODS`.

    Args:
        model (nn.Module): Maps ``(n, d)`` float32 inputs to ``(n, K)``
            logits; initialised by the caller (after seeding).
        x (np.ndarray): ``(N, d)`` training inputs.
        y (np.ndarray): ``(N,)`` labels in ``[0, K)``.
        num_classes (int): Number of classes ``K``.
        method (str): One of :data:`METHODS`.
        cfg (TrainConfig): Hyper-parameters.
        seed (int): Seeds the per-epoch order / draw generators.

    Returns:
        TrainResult: The trained model and the last epoch's instance mass.
    """
    if method not in METHODS:
        raise ValueError(f'method must be one of {METHODS}, got {method!r}')
    y = np.asarray(y, dtype=np.int64)
    num = y.size
    if x.shape[0] != num:
        raise ValueError(f'x has {x.shape[0]} rows but y has {num} labels')
    x_t = torch.as_tensor(x, dtype=torch.float32)
    y_t = torch.as_tensor(y)
    class_weight = torch.ones(num_classes)
    if method == 'class_balanced':
        class_weight = torch.as_tensor(
            class_balanced_weights(
                np.bincount(y, minlength=num_classes), cfg.cb_beta),
            dtype=torch.float32)
    sample_weight = class_weight[y_t]
    optimizer = _optimizer(model, cfg)

    state, index = None, None
    mass = np.full(num, 1.0 / num)
    history: List[np.ndarray] = []
    if method == 'difficulty':
        state = DifficultyState(num, num_classes, c=cfg.difficulty_c)
        index = ImageClassIndex.from_lists([[int(c)] for c in y], num_classes)
    for epoch in range(cfg.epochs):
        rng = np.random.default_rng([seed, epoch])
        if state is None:
            order = rng.permutation(num)
        else:
            history.append(mass)
            order = rng.choice(num, size=num, replace=True, p=mass)
        model.train()
        for start in range(0, num, cfg.batch_size):
            batch = torch.as_tensor(order[start:start + cfg.batch_size])
            loss = F.cross_entropy(
                model(x_t[batch]), y_t[batch], reduction='none')
            loss = (loss * sample_weight[batch]).sum() / batch.numel()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if state is not None:
            # p_{i,t} of every instance after the epoch, then w ∝ D for
            # the next draw (the one after the last epoch only reports D).
            state.observe(np.arange(num), predict(model, x_t), y_t)
            state.end_epoch()
            mass = sampling_weights('paper', index, state.difficulty())
    model.eval()
    difficulty = None
    if state is not None:
        difficulty = state.difficulty()
        mass = history[-1]
    elif method == 'class_balanced':
        weights = sample_weight.double().numpy()
        mass = weights / weights.sum()
    return TrainResult(model, mass, difficulty, history)


def grouped_bars(ax: object, stats: Dict[str, Sequence[tuple]],
                 tick_labels: Sequence[str]) -> None:
    """One group of bars per tick, one bar per series, std error bars.

    Args:
        ax (matplotlib.axes.Axes): where to draw.
        stats (dict): series label -> ``(mean, std)`` per tick.
        tick_labels (Sequence[str]): the label of every group.
    """
    x = np.arange(len(tick_labels))
    width = 0.8 / len(stats)
    for i, (label, series) in enumerate(stats.items()):
        ax.bar(
            x + (i - (len(stats) - 1) / 2) * width, [s[0] for s in series],
            width,
            yerr=[s[1] for s in series],
            capsize=2,
            label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(tick_labels)
