"""DifficultyHook on a real (tiny) Mask R-CNN and on fakes for the errors."""
import importlib.util
import os.path as osp
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from mmdiff.hooks import CHECKPOINT_KEY, DifficultyHook
from mmdiff.models import SampleIdxMissingError, UnsupportedModelError
from mmdiff.samplers import DifficultyClassAwareSampler
from ..conftest import REPO, tiny_demo_cfg

pytestmark = pytest.mark.slow


def _hook(runner: Runner) -> DifficultyHook:
    return next(h for h in runner.hooks if isinstance(h, DifficultyHook))


@HOOKS.register_module(force=True)
class FlipLabelsHook(Hook):
    """Gives the objects of some images another label every other epoch.

    The model is trained towards a label it must unlearn an epoch later,
    so those objects are forgotten again and again: they are the planted
    hard objects. Needs ``serialize_data=False`` and ``num_workers=0``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, images: List[int], num_classes: int) -> None:
        self.images = images
        self.num_classes = num_classes
        self.original: Dict[int, List[int]] = {}

    def before_train_epoch(self, runner: Runner) -> None:
        data_list = runner.train_dataloader.dataset.data_list
        for i in self.images:
            instances = data_list[i]['instances']
            if i not in self.original:
                self.original[i] = [inst['bbox_label'] for inst in instances]
            shift = (runner.epoch % 2) * (self.num_classes // 2)
            for inst, label in zip(instances, self.original[i]):
                inst['bbox_label'] = (label + shift) % self.num_classes


@HOOKS.register_module(force=True)
class RecordIndicesHook(Hook):
    """Keeps each epoch's global list of sampled indices."""

    def __init__(self) -> None:
        self.indices: Dict[int, List[int]] = {}

    def after_train_epoch(self, runner: Runner) -> None:
        sampler = runner.train_dataloader.batch_sampler.sampler
        self.indices[runner.epoch] = sampler._last_indices.tolist()


def test_difficulty_finds_flipped_objects(synthetic_lvis_root: str,
                                          tmp_path: Any) -> None:
    flipped = list(range(0, 32, 4))
    # mmdet's default ResNet (frozen stem, BatchNorm in eval mode) learns
    # the colour shapes within these three 16-step epochs, so the flipped
    # labels are learned, then forgotten; the demo's from-scratch GroupNorm
    # backbone needs longer than a unit test should take.
    cfg = tiny_demo_cfg(
        synthetic_lvis_root,
        str(tmp_path),
        max_epochs=3,
        **{
            'train_dataloader.dataset.serialize_data':
            False,
            'model.backbone.norm_cfg':
            dict(_delete_=True, type='BN', requires_grad=True),
            'model.backbone.norm_eval':
            True,
            'model.backbone.frozen_stages':
            1,
        })
    cfg.custom_hooks.append(
        dict(type='FlipLabelsHook', images=flipped, num_classes=20))
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    prior = runner.train_dataloader.batch_sampler.sampler.prior.copy()
    runner.train()
    hook = _hook(runner)

    dump1 = np.load(osp.join(str(tmp_path), 'difficulty', 'epoch_1.npz'))
    # Weights change after epoch 1 ...
    assert not np.allclose(dump1['sampling_probs'], prior)
    # ... and the objects forgotten every epoch are the hardest.
    d = hook._instance_difficulty()
    is_flipped = np.isin(hook.instance_image, flipped)
    assert d[is_flipped].mean() > 1.0 > d[~is_flipped].mean()
    assert np.median(d[is_flipped]) > np.quantile(d[~is_flipped], 0.75)
    assert hook.state.epoch == 3

    # tools/analysis/plot_difficulty.py on these real dumps.
    spec = importlib.util.spec_from_file_location(
        'plot_difficulty',
        osp.join(REPO, 'tools', 'analysis', 'plot_difficulty.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out_dir = osp.join(str(tmp_path), 'plots')
    tool.main([
        str(tmp_path), '--out-dir', out_dir, '--ann-file',
        synthetic_lvis_root + 'annotations/lvis_v1_train.json', '--img-root',
        synthetic_lvis_root, '--rfs-thr', '0.1'
    ])
    for name in ('difficulty_histograms.png', 'sampling_mass.png',
                 'difficulty_over_epochs.png', 'hardest_images.png'):
        assert osp.getsize(osp.join(out_dir, name)) > 10_000, name


def test_resume_draws_the_uninterrupted_indices(synthetic_lvis_root: str,
                                                tmp_path: Any) -> None:

    def run(work_dir: str, max_epochs: int, **kw: Any) -> Runner:
        cfg = tiny_demo_cfg(synthetic_lvis_root, work_dir, max_epochs, **kw)
        cfg.custom_hooks.append(dict(type='RecordIndicesHook'))
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
        runner = Runner.from_cfg(cfg)
        runner.train()
        return runner

    full = run(osp.join(str(tmp_path), 'full'), 2)
    part_dir = osp.join(str(tmp_path), 'part')
    run(part_dir, 1)
    resumed = run(
        part_dir, 2, resume=True, load_from=osp.join(part_dir, 'epoch_1.pth'))

    def recorded(runner: Runner) -> Dict[int, List[int]]:
        return next(
            h for h in runner.hooks
            if isinstance(h, RecordIndicesHook)).indices

    # The resumed run trained epoch 1 only, on the uninterrupted indices,
    # which depend on the difficulty measured in epoch 0.
    assert list(recorded(resumed)) == [1]
    assert recorded(resumed)[1] == recorded(full)[1]
    assert recorded(full)[1] != recorded(full)[0]
    # The state went on from the checkpoint's (one epoch) to two epochs.
    assert _hook(resumed).state.epoch == 2
    ckpt = torch.load(
        osp.join(part_dir, 'epoch_2.pth'),
        map_location='cpu',
        weights_only=False)
    assert ckpt[CHECKPOINT_KEY]['state']['epoch'] == 2


def test_the_hook_only_observes_training(synthetic_lvis_root: str,
                                         tmp_path: Any) -> None:
    """With a sampler that ignores the difficulty, training is unchanged.

    The capture wraps the RoI head's loss methods; it must not change the
    losses, the gradients or the random draws: the weights after two
    epochs with the hook equal those without it, bit for bit.
    """

    def train(name: str, hook: bool) -> Dict[str, torch.Tensor]:
        cfg = tiny_demo_cfg(synthetic_lvis_root, osp.join(str(tmp_path),
                                                          name), 2,
                            **{'train_dataloader.sampler.scheme': 'uniform'})
        if not hook:
            cfg.custom_hooks = []
        runner = _build(cfg)
        runner.train()
        assert any(isinstance(h, DifficultyHook) for h in runner.hooks) == hook
        if hook:
            assert _hook(runner).state.epoch == 2
        return {
            k: v.detach().clone()
            for k, v in runner.model.state_dict().items()
        }

    with_hook, without = train('with', True), train('without', False)
    assert with_hook.keys() == without.keys()
    for name, value in with_hook.items():
        assert torch.equal(value, without[name]), name


def test_load_from_starts_fresh(synthetic_lvis_root: str,
                                tmp_path: Any) -> None:
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path), 1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    Runner.from_cfg(cfg).train()
    cfg2 = tiny_demo_cfg(
        synthetic_lvis_root,
        osp.join(str(tmp_path), 'ft'),
        1,
        load_from=osp.join(str(tmp_path), 'epoch_1.pth'))
    cfg2.val_cfg = cfg2.val_dataloader = cfg2.val_evaluator = None
    runner = Runner.from_cfg(cfg2)
    sampler = runner.train_dataloader.batch_sampler.sampler
    prior = sampler.prior.copy()
    runner.call_hook('before_run')
    runner.load_or_resume()
    _hook(runner).before_train(runner)
    assert _hook(runner).state.epoch == 0
    np.testing.assert_array_equal(sampler.probabilities, prior)


def _build(cfg: Any) -> Runner:
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return Runner.from_cfg(cfg)


def test_error_when_sampler_is_not_difficulty_sampler(synthetic_lvis_root: str,
                                                      tmp_path: Any) -> None:
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path))
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    runner = _build(cfg)
    with pytest.raises(TypeError, match='DifficultyClassAwareSampler'):
        _hook(runner).before_train(runner)


def test_error_when_pipeline_drops_sample_idx(synthetic_lvis_root: str,
                                              tmp_path: Any) -> None:
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path))
    cfg.train_dataloader.dataset.pipeline[-1] = dict(type='PackDetInputs')
    runner = _build(cfg)
    with pytest.raises(SampleIdxMissingError) as err:
        _hook(runner).before_train(runner)
    assert "'sample_idx'" in str(err.value)
    assert "dict(type='PackDetInputs', meta_keys=" in str(err.value)


def test_error_for_model_without_roi_head(synthetic_lvis_root: str,
                                          tmp_path: Any) -> None:
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path))
    runner = _build(cfg)
    model = runner.model
    del model.roi_head
    with pytest.raises(UnsupportedModelError, match='StandardRoIHead'):
        _hook(runner).before_train(runner)


def test_nan_probabilities_are_skipped_and_counted(synthetic_lvis_root: str,
                                                   tmp_path: Any) -> None:
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path))
    runner = _build(cfg)
    hook = _hook(runner)
    runner.call_hook('before_run')
    hook.before_train(runner)
    sampler = runner.train_dataloader.batch_sampler.sampler
    assert isinstance(sampler, DifficultyClassAwareSampler)
    k = hook.state.num_classes
    probs = torch.full((3, k), 1.0 / k)
    probs[1, 0] = float('nan')
    hook._sink(
        dict(
            sample_idx=torch.tensor([0, 0, 1]),
            gt_index=torch.tensor([0, 0, 0]),
            labels=torch.tensor([1, 1, 2]),
            probs=probs,
            num_gts=[(0, int(hook.counts[0])), (1, int(hook.counts[1]))]))
    hook.after_train_epoch(runner)
    assert hook.nan_rows == 1
    d = hook._instance_difficulty()
    assert np.all(np.isfinite(d))
    # The two finite rows reached the state, the NaN one did not.
    assert hook.state.epoch == 1
    assert np.isfinite(hook.state.difficulty()).all()
