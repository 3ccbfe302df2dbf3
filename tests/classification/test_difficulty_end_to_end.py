"""The CIFAR-LT difficulty config end to end on fake CIFAR-10 (Runner, CPU).

Loads the real ``configs/cifar/cifar10_lt_r100_difficulty.py``, shrinks
it (ResNet-8, 5 epochs, no workers, fake data) and checks the paper's
re-sampling: a uniform first epoch, ``w_i = D_i / sum_j D_j`` afterwards,
every training image in the difficulty state, the long-tail metrics, and
that images whose label flips every epoch end up harder than the rest.
"""
import math
import os.path as osp
from typing import Any, Dict, List

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DATASETS, HOOKS
from mmengine.runner import Runner

from mmdiff.hooks import DifficultyHook
from mmdiff.samplers import DifficultyClassAwareSampler
from ..cifar_fake import write_fake_cifar

pytestmark = pytest.mark.slow

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'cifar', 'cifar10_lt_r100_difficulty.py')
# 100 images per fake class is the least n_max for which ratio 100 keeps
# every class: 100, 59, 35, 21, 12, 7, 4, 2, 1, 1 images (242).
PER_CLASS = 100
NUM_TRAIN = 242
# Five epochs of len(train set) draws with replacement: an image missed in
# epoch 1 (e^-1 of them) keeps D = 1 while the others fall below, so it is
# drawn more often later (every seed tried saw all 242 by epoch 5).
EPOCHS = 5
# The fake classes are plain colours plus noise: the model learns a colour,
# not single images, so the planted images are a whole class (their own
# colour) relabelled as class 3 in even (0-based) epochs.
FLIPPED_CLASS = 2
OTHER_LABEL = 3


@HOOKS.register_module(force=True)
class FlipCifarLabelsHook(Hook):
    """Gives some images another label in even (0-based) epochs.

    Those images are trained towards a label they must unlearn one epoch
    later: planted hard instances. Edits the dataset's ``data_list``,
    so it needs ``serialize_data=False`` and ``num_workers=0``. Labels
    reach the model and DifficultyHook through the pipeline every epoch;
    the sampler and the hook's logs read them once, before epoch 0.

    Args:
        images (list[int]): Dataset indices to flip.
        other_label (int): The label given in even epochs.
    """

    priority = 'VERY_HIGH'

    def __init__(self, images: List[int], other_label: int) -> None:
        self.images = images
        self.other_label = other_label
        self.original: Dict[int, int] = {}

    def before_train_epoch(self, runner: Runner) -> None:
        data_list = runner.train_dataloader.dataset.data_list
        for i in self.images:
            self.original.setdefault(i, data_list[i]['gt_label'])
            flip = runner.epoch % 2 == 0
            data_list[i]['gt_label'] = self.other_label if flip \
                else self.original[i]


@HOOKS.register_module(force=True)
class RecordSamplingHook(Hook):
    """Keeps the sampler's probabilities before and after every epoch.

    ``after_train_epoch`` runs after DifficultyHook's (NORMAL) has set the
    next epoch's probabilities.
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self.drawn_with: Dict[int, np.ndarray] = {}
        self.next_probs: Dict[int, np.ndarray] = {}

    def before_train_epoch(self, runner: Runner) -> None:
        sampler = runner.train_dataloader.sampler
        self.drawn_with[runner.epoch] = sampler.probabilities.copy()

    def after_train_epoch(self, runner: Runner) -> None:
        sampler = runner.train_dataloader.sampler
        self.next_probs[runner.epoch] = sampler.probabilities.copy()


def _hook(runner: Runner, kind: type) -> Any:
    return next(h for h in runner.hooks if isinstance(h, kind))


def _small_cfg(data_root: str, work_dir: str, flipped: List[int]) -> Config:
    cfg = Config.fromfile(CONFIG)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    # FlipCifarLabelsHook edits the data list.
    cfg.train_dataloader.dataset.serialize_data = False
    # The recipe's batch of 128 stays: two steps per epoch on 242 images,
    # so most images are predicted before the epoch's first update and,
    # with momentum 0.9, still lag behind a label that just flipped.
    cfg.model.backbone.depth = 8
    cfg.train_cfg.max_epochs = EPOCHS
    cfg.log_level = 'WARNING'
    cfg.work_dir = work_dir
    cfg.custom_hooks.extend([
        dict(
            type='FlipCifarLabelsHook',
            images=flipped,
            other_label=OTHER_LABEL),
        dict(type='RecordSamplingHook'),
    ])
    return cfg


def test_difficulty_config_resamples_and_finds_flipped_images(tmp_path):
    data_root = write_fake_cifar(
        str(tmp_path / 'data'), 10, per_class=PER_CLASS, test_per_class=5)
    work_dir = str(tmp_path / 'work')
    cfg = _small_cfg(data_root, work_dir, [])
    # The config under test: the paper's flat scheme, difficulty hook.
    assert cfg.train_dataloader.sampler.type == 'DifficultyClassAwareSampler'
    assert cfg.train_dataloader.sampler.scheme == 'paper'
    assert cfg.custom_hooks[0].type == 'DifficultyHook'

    labels = DATASETS.build(cfg.train_dataloader.dataset).get_gt_labels()
    flipped = np.flatnonzero(labels == FLIPPED_CLASS).tolist()
    runner = Runner.from_cfg(_small_cfg(data_root, work_dir, flipped))
    runner.train()

    sampler = runner.train_dataloader.sampler
    hook = _hook(runner, DifficultyHook)
    record = _hook(runner, RecordSamplingHook)
    assert isinstance(sampler, DifficultyClassAwareSampler)
    assert len(runner.train_dataloader.dataset) == labels.size == NUM_TRAIN
    assert sorted(record.drawn_with) == list(range(EPOCHS))

    # The paper starts from uniform sampling ...
    uniform = np.full(NUM_TRAIN, 1.0 / NUM_TRAIN)
    np.testing.assert_allclose(record.drawn_with[0], uniform)
    # ... re-samples after every epoch, from epoch 1's difficulty on ...
    assert not np.allclose(record.next_probs[0], uniform)
    for epoch in range(1, EPOCHS):
        np.testing.assert_allclose(record.drawn_with[epoch],
                                   record.next_probs[epoch - 1])
    # ... with w_i = D_i / sum_j D_j (one instance per image).
    d = hook.state.difficulty()
    np.testing.assert_allclose(sampler.probabilities, d / d.sum())

    # Every training image is in the state and has been observed.
    assert hook.state.num_instances == NUM_TRAIN
    assert hook.state.epoch == EPOCHS
    assert (hook.state.state_dict()['prev_label'] >= 0).all()

    # The planted hard images: trained towards a label every epoch that
    # they must unlearn the next. Runner seeds 0-7 and fake-data seeds 0-4
    # gave mean ratios of 2.4 to 5.7.
    is_flipped = np.isin(np.arange(NUM_TRAIN), flipped)
    assert d[is_flipped].mean() > 1.5 * d[~is_flipped].mean()
    assert np.median(d[is_flipped]) > np.median(d[~is_flipped])

    metrics = runner.val()
    assert set(metrics) == {
        'accuracy/top1', 'accuracy/many', 'accuracy/medium', 'accuracy/few'
    }
    for key in ('top1', 'many', 'medium'):
        assert 0 <= metrics[f'accuracy/{key}'] <= 100
    # The real CIFAR-10 profile at ratio 100 (5000 ... 50 images) has no
    # class under 20 images: few-shot is empty, nan by design.
    assert math.isnan(metrics['accuracy/few'])
