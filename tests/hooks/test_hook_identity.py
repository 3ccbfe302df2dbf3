"""Every prediction on its own image: wrapped datasets, and set-ups the hook
refuses before training instead of silently learning nothing."""
import copy
from typing import Any, Set

import numpy as np
import pytest
from mmengine.runner import Runner

from mmdiff.datasets import UnsupportedDatasetError
from mmdiff.hooks import DifficultyHook
from ..conftest import TINY_SYNTHETIC, tiny_demo_cfg

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def other_root(tmp_path_factory: Any) -> str:
    """A second tiny synthetic set (another seed: other objects)."""
    from mmdiff.datasets import ensure_synthetic_lvis
    root = str(tmp_path_factory.mktemp('synthetic_lvis_b')) + '/'
    ensure_synthetic_lvis(root, **dict(TINY_SYNTHETIC, seed=1))
    return root


def _train_one_epoch(cfg: Any) -> Runner:
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_dataloader.sampler['images_per_epoch'] = 24
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _observed_and_drawn(runner: Runner) -> tuple:
    hook = next(h for h in runner.hooks if isinstance(h, DifficultyHook))
    sampler = runner.train_dataloader.batch_sampler.sampler
    observed: Set[int] = set(
        hook.instance_image[hook.state.difficulty() != 1.0].tolist())
    drawn = set(
        sampler.dataset_index.image_of_index[sampler.last_indices].tolist())
    return hook, sampler, observed, drawn


def test_concat_dataset_images_keep_their_own_difficulty(
        synthetic_lvis_root: str, other_root: str, tmp_path: Any) -> None:
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path), max_epochs=1)
    part = cfg.train_dataloader.dataset
    second = copy.deepcopy(part)
    second.update(data_root=other_root, synthetic=dict(TINY_SYNTHETIC, seed=1))
    cfg.train_dataloader.dataset = dict(
        type='ConcatDataset', datasets=[part, second])
    runner = _train_one_epoch(cfg)
    hook, sampler, observed, drawn = _observed_and_drawn(runner)
    first_size = 32
    assert sampler.dataset_index.num_images == 2 * first_size
    # Objects of the second part are recorded under its own images: every
    # observed image was drawn, both parts were observed, and no image had
    # another image's number of objects (which would reset it).
    assert observed and observed <= drawn
    assert min(observed) < first_size <= max(observed)
    assert runner.message_hub.get_info('difficulty/images_reset') == 0
    assert len(observed) >= 0.8 * len(drawn)


def test_repeat_dataset_copies_share_one_difficulty(synthetic_lvis_root: str,
                                                    tmp_path: Any) -> None:
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path), max_epochs=1)
    cfg.train_dataloader.dataset = dict(
        type='RepeatDataset', times=2, dataset=cfg.train_dataloader.dataset)
    runner = _train_one_epoch(cfg)
    hook, sampler, observed, drawn = _observed_and_drawn(runner)
    assert sampler.dataset_index.num_indices == 64
    assert len(hook.counts) == 32
    assert observed and observed <= drawn
    probs = sampler.probabilities
    np.testing.assert_array_equal(probs[:32], probs[32:])
    assert runner.message_hub.get_info('difficulty/images_reset') == 0


def test_class_balanced_dataset_is_refused(synthetic_lvis_root: str,
                                           tmp_path: Any) -> None:
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path))
    cfg.train_dataloader.dataset = dict(
        type='ClassBalancedDataset',
        oversample_thr=0.1,
        dataset=cfg.train_dataloader.dataset)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    with pytest.raises(UnsupportedDatasetError, match='replaces'):
        runner.train_dataloader  # the sampler is built with the loader


def test_no_gt_proposals_is_refused(synthetic_lvis_root: str,
                                    tmp_path: Any) -> None:
    cfg = tiny_demo_cfg(
        synthetic_lvis_root, str(tmp_path),
        **{'model.train_cfg.rcnn.sampler.add_gt_as_proposals': False})
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, DifficultyHook))
    with pytest.raises(ValueError) as err:
        hook.before_train(runner)
    assert 'model.train_cfg.rcnn.sampler.add_gt_as_proposals=True' in str(
        err.value)


def test_eval_pass_needs_no_sample_idx_in_the_train_pipeline(
        synthetic_lvis_root: str, tmp_path: Any) -> None:
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path), max_epochs=1)
    cfg.train_dataloader.dataset.pipeline[-1] = dict(type='PackDetInputs')
    cfg.custom_hooks[0].update(mode='eval_pass', eval_pass=dict(num_workers=0))
    runner = _train_one_epoch(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, DifficultyHook))
    assert hook.state.epoch == 1
    assert np.all(hook.state.difficulty() != 1.0)


def test_eval_pass_pipeline_of_the_user_keeps_sample_idx(
        synthetic_lvis_root: str, tmp_path: Any) -> None:
    # A pipeline given in eval_pass=dict(pipeline=...) whose pack drops
    # sample_idx gets it added, as the default pipeline does.
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path), max_epochs=1)
    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    pipeline[-1] = dict(type='PackDetInputs', meta_keys=('img_id', ))
    cfg.custom_hooks[0].update(
        mode='eval_pass', eval_pass=dict(num_workers=0, pipeline=pipeline))
    runner = _train_one_epoch(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, DifficultyHook))
    assert hook.state.epoch == 1
    assert np.all(hook.state.difficulty() != 1.0)
