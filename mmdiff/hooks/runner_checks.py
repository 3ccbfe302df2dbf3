"""What DifficultyHook needs of the runner, checked before training.

The hook re-samples through :class:`DifficultyClassAwareSampler`, found as
mmengine's ``DistSamplerSeedHook`` finds a sampler, and updates once per
epoch, so it needs a train loop by epoch.
"""
from typing import Any

from mmengine.runner import EpochBasedTrainLoop

from mmdiff.samplers import DifficultyClassAwareSampler

__all__ = ['find_sampler', 'check_epoch_based']


def find_sampler(runner: Any) -> Any:
    """The train sampler, as mmengine's DistSamplerSeedHook finds it."""
    loader = runner.train_dataloader
    sampler = getattr(loader, 'sampler', None)
    if not isinstance(sampler, DifficultyClassAwareSampler):
        batch_sampler = getattr(loader, 'batch_sampler', None)
        sampler = getattr(batch_sampler, 'sampler', sampler)
    if not isinstance(sampler, DifficultyClassAwareSampler):
        raise TypeError(
            'DifficultyHook re-samples through DifficultyClassAwareSampler, '
            f'but the train dataloader uses {type(sampler).__name__}. Set '
            "train_dataloader.sampler = dict(type='DifficultyClassAware"
            "Sampler') (with batch_sampler=dict(type='AspectRatioBatch"
            "Sampler') for mmdet), or remove the hook.")
    return sampler


def check_epoch_based(loop: Any) -> None:
    """Refuse a train loop that is not by epoch.

    The difficulty is one term per object per epoch, and mmengine's
    ``IterBasedTrainLoop`` calls ``after_train_epoch`` once, at the very end:
    the weights would never change while the records pile up.
    """
    if not isinstance(loop, EpochBasedTrainLoop):
        raise TypeError(
            'DifficultyHook updates the difficulty after every epoch, but '
            f'the train loop is {type(loop).__name__}. Train by epoch: '
            "train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=...) "
            '(or by_epoch=True), or remove the hook.')
