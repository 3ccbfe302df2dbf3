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

from mmdiff.analysis.dump import load_dump
from mmdiff.core import DifficultyState, fill_unseen
from mmdiff.core.records import EpochRecords
from mmdiff.hooks import CHECKPOINT_KEY, DifficultyHook
from mmdiff.hooks import checkpoint as checkpoint_module
from mmdiff.hooks import difficulty_hook as hook_module
from mmdiff.models import SampleIdxMissingError, UnsupportedModelError
from mmdiff.samplers import DifficultyClassAwareSampler
from ..conftest import REPO, tiny_demo_cfg
from ..core.test_state_reference import ReferenceState

pytestmark = pytest.mark.slow


def _hook(runner: Runner) -> DifficultyHook:
    return next(h for h in runner.hooks if isinstance(h, DifficultyHook))


@HOOKS.register_module(force=True)
class FlipLabelsHook(Hook):
    """Gives the objects of some images another label every other epoch.

    A prediction attributed to the wrong object, or checked against the
    wrong epoch's label, then disagrees with the dataset. Needs
    ``serialize_data=False`` and ``num_workers=0``.
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
        self.indices[runner.epoch] = sampler.last_indices.tolist()


def _spy_on_records(monkeypatch: Any, runner: Runner) -> tuple:
    """What the hook keeps of every training step (EpochRecords.add), and
    the objects it resets (DifficultyState.reset), as numpy."""
    steps: List[dict] = []
    resets: List[np.ndarray] = []
    add, reset = EpochRecords.add, DifficultyState.reset

    def spy_add(self: EpochRecords,
                ids: torch.Tensor,
                labels: torch.Tensor,
                probs: torch.Tensor,
                valid: Any = None,
                step: int = 0,
                observed: Any = None) -> None:
        # Rows with observed=False are the capture's padding: no
        # observation at all, so the reference never sees them.
        keep = slice(None) if observed is None else observed.cpu().numpy()
        steps.append(
            dict(
                epoch=runner.epoch,
                ids=ids.cpu().numpy()[keep].copy(),
                labels=labels.cpu().numpy()[keep].copy(),
                probs=probs.cpu().numpy()[keep].copy(),
                valid=None
                if valid is None else valid.cpu().numpy()[keep].copy()))
        add(self, ids, labels, probs, valid, step, observed)

    def spy_reset(self: DifficultyState, ids: Any) -> None:
        resets.append(np.asarray(ids).copy())
        reset(self, ids)

    monkeypatch.setattr(EpochRecords, 'add', spy_add)
    monkeypatch.setattr(DifficultyState, 'reset', spy_reset)
    return steps, resets


@pytest.mark.parametrize('storage', ['dense', 'topk'])
def test_real_run_difficulty_is_the_reference_of_its_predictions(
        synthetic_lvis_root: str, tmp_path: Any, monkeypatch: Any,
        storage: str) -> None:
    """A real Mask R-CNN run, end to end: capture, identity, state.

    Some images get other labels every other epoch, so a prediction that
    landed on the wrong object (or the wrong epoch's label) would not match
    the dataset. The difficulty is then recomputed from the predictions the
    hook kept by the brute-force reference of ``tests/core``. Whether D
    finds hard objects is measured by the detection evidence
    (docs/results.md), not by three 8-step epochs of 16 of the 32 images.
    """
    flipped = list(range(0, 32, 4))
    cfg = tiny_demo_cfg(
        synthetic_lvis_root,
        str(tmp_path),
        max_epochs=3,
        **{
            'train_dataloader.sampler.images_per_epoch': 16,
            'train_dataloader.dataset.serialize_data': False,
            'custom_hooks.0.storage': storage,
            'custom_hooks.0.topk': 3,
        })
    cfg.custom_hooks.append(
        dict(type='FlipLabelsHook', images=flipped, num_classes=20))
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    hook = _hook(runner)
    steps, resets = _spy_on_records(monkeypatch, runner)
    prior = runner.train_dataloader.batch_sampler.sampler.prior.copy()
    data_list = runner.train_dataloader.dataset.data_list
    runner.train()
    assert hook.state.epoch == 3 and hook.state.storage == storage

    # Objects counted from the dataset itself, image by image.
    kept = [[inst for inst in info['instances'] if not inst['ignore_flag']]
            for info in data_list]
    first = [sum(len(k) for k in kept[:i]) for i in range(len(kept))]
    original = {i: [inst['bbox_label'] for inst in kept[i]] for i in flipped}
    ref = ReferenceState(
        sum(len(k) for k in kept), hook.state.num_classes, hook.c,
        hook.state.storage, hook.state.topk)
    seen_flipped = 0
    for epoch in range(3):
        rows = []
        for step in (s for s in steps if s['epoch'] == epoch):
            valid = step['valid']
            if valid is None:
                valid = np.ones(step['ids'].size, dtype=bool)
            for i, label, probs, ok in zip(step['ids'], step['labels'],
                                           step['probs'], valid):
                img = int(np.searchsorted(first, i, side='right') - 1)
                gt = int(i) - first[img]
                # The label is the one this epoch gave this very object.
                want = kept[img][gt]['bbox_label'] if img not in original \
                    else (original[img][gt] + (epoch % 2) * 10) % 20
                assert int(label) == want
                seen_flipped += img in original and epoch % 2 == 1
                if ok and np.isfinite(probs).all():
                    rows.append((int(i), probs, int(label)))
        ref.observe([r[0] for r in rows],
                    [r[1].astype(np.float64).tolist() for r in rows],
                    [r[2] for r in rows])
        ref.end_epoch()
    # This pipeline keeps every object, so no image was reset.
    assert resets == []
    assert seen_flipped > 0
    n = len(hook.instance_labels)
    assert n == ref.n
    np.testing.assert_allclose(
        hook.state.difficulty()[:n], ref.difficulty(), rtol=2e-3, atol=1e-6)
    assert hook.state.observed[:n].tolist() == [
        i in ref.prev for i in range(n)
    ]
    dump1 = load_dump(osp.join(str(tmp_path), 'difficulty', 'epoch_1.npz'))
    # The sampler's weights changed after the first measured epoch.
    assert not np.allclose(dump1['sampling_probs'], prior)

    # tools/analysis/plot_difficulty.py on these real dumps.
    spec = importlib.util.spec_from_file_location(
        'plot_difficulty',
        osp.join(REPO, 'tools', 'analysis', 'plot_difficulty.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out_dir = osp.join(str(tmp_path), 'plots')
    summary = tool.main(
        [str(tmp_path), '--out-dir', out_dir, '--rfs-thr', '0.1'])
    # The gallery reads the image files the dump names.
    assert all(img['found'] for img in summary['gallery']['images'])
    for name in ('difficulty_histograms.png', 'sampling_mass.png',
                 'difficulty_over_epochs.png', 'hardest_images.png'):
        assert osp.getsize(osp.join(out_dir, name)) > 10_000, name


def test_resume_draws_the_uninterrupted_indices(synthetic_lvis_root: str,
                                                tmp_path: Any) -> None:

    def run(work_dir: str, max_epochs: int, **kw: Any) -> Runner:
        # Half the images per epoch: which are drawn is what is compared.
        kw['train_dataloader.sampler.images_per_epoch'] = 16
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
        cfg = tiny_demo_cfg(
            synthetic_lvis_root, osp.join(str(tmp_path), name), 2, **{
                'train_dataloader.sampler.scheme': 'uniform',
                'train_dataloader.sampler.images_per_epoch': 16
            })
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
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path), 1,
                        **{'train_dataloader.sampler.images_per_epoch': 8})
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
    hook.record_batch(
        dict(
            sample_idx=torch.tensor([0, 0, 1]),
            gt_index=torch.tensor([0, 0, 0]),
            labels=torch.tensor([1, 1, 2]),
            probs=probs,
            num_gts=[(0, int(hook.counts[0])), (1, int(hook.counts[1]))]))
    hook.after_train_epoch(runner)
    assert hook.invalid_rows == 1
    d = hook.instance_difficulty()
    assert np.all(np.isfinite(d))
    # The two finite rows reached the state, the NaN one did not.
    assert hook.state.epoch == 1
    assert np.isfinite(hook.state.difficulty()).all()


def test_iteration_based_training_is_refused(synthetic_lvis_root: str,
                                             tmp_path: Any) -> None:
    # IterBasedTrainLoop calls after_train_epoch once, at the very end:
    # the difficulty would never reach the sampler.
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=4)
    cfg.param_scheduler = None
    runner = _build(cfg)
    with pytest.raises(TypeError) as err:
        _hook(runner).before_train(runner)
    assert 'IterBasedTrainLoop' in str(err.value)
    assert "type='EpochBasedTrainLoop'" in str(err.value)


def test_resume_with_another_topk_uses_the_checkpoints(
        synthetic_lvis_root: str, tmp_path: Any, monkeypatch: Any) -> None:
    """The checkpoint's storage and k win, for the records too."""
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path))
    cfg.custom_hooks[0].update(storage='topk', topk=4)
    runner = _build(cfg)
    hook = _hook(runner)
    saved = DifficultyState(
        int(hook_objects(runner)), 21, storage='topk', topk=3)
    saved.epoch = 1
    hook._loaded = dict(
        state=saved.state_dict(),
        sampler=runner.train_dataloader.batch_sampler.sampler.state_dict())
    runner.call_hook('before_run')
    runner.train_loop._iter = 16  # as --resume leaves it
    logged: List[str] = []
    monkeypatch.setattr(checkpoint_module, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    hook.before_train(runner)
    assert any("storage='topk', topk=3" in msg for msg in logged)
    assert hook.state.topk == 3 and hook.state.records.topk == 3
    k = hook.state.num_classes
    hook.record_batch(
        dict(
            sample_idx=torch.tensor([0]),
            gt_index=torch.tensor([0]),
            labels=torch.from_numpy(hook.instance_labels[:1]),
            probs=torch.softmax(torch.arange(k, dtype=torch.float32), 0)[None],
            num_gts=[(0, int(hook.counts[0]))]))
    hook.after_train_epoch(runner)
    assert hook.state.epoch == 2 and hook.state.difficulty()[0] != 1.0


def hook_objects(runner: Runner) -> int:
    """Objects of the training set, as the sampler's index counts them."""
    index = runner.train_dataloader.batch_sampler.sampler.dataset_index
    return int(index.kept_counts().sum())


def test_instance_difficulty_before_training_says_what_it_needs() -> None:
    with pytest.raises(RuntimeError, match='before_train'):
        DifficultyHook().instance_difficulty()


def _one_epoch_of_records(runner: Runner) -> DifficultyHook:
    """before_train, one recorded batch, the epoch's end."""
    hook = _hook(runner)
    runner.call_hook('before_run')
    hook.before_train(runner)
    k = hook.state.num_classes
    probs = torch.softmax(torch.arange(2 * k, dtype=torch.float32), 0)
    hook.record_batch(
        dict(
            sample_idx=torch.tensor([0, 1]),
            gt_index=torch.tensor([0, 0]),
            labels=torch.from_numpy(hook.instance_labels[[0, 1]]),
            probs=probs.reshape(2, k) / probs.reshape(2, k).sum(1, True),
            num_gts=[(0, int(hook.counts[0])), (1, int(hook.counts[1]))]))
    hook.after_train_epoch(runner)
    return hook


@pytest.mark.parametrize('warmup', [0, 1, 2])
def test_the_dump_records_what_the_next_epoch_draws(synthetic_lvis_root: str,
                                                    tmp_path: Any,
                                                    warmup: int) -> None:
    """At the warm-up boundary the next epoch draws by difficulty, and its
    dump says so (it once recorded the prior there)."""
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path))
    cfg.train_dataloader.sampler.update(scheme='paper', warmup_epochs=warmup)
    cfg.custom_hooks[0].update(dump=True)
    runner = _build(cfg)
    hook = _one_epoch_of_records(runner)  # epoch 0 ends; epoch 1 is next
    sampler = hook.sampler
    dumped = load_dump(osp.join(runner.work_dir, 'difficulty',
                                'epoch_1.npz'))['sampling_probs']
    drawn = np.bincount(
        hook.index.image_of_index,
        weights=sampler.probabilities_for(1),
        minlength=hook.index.num_images)
    np.testing.assert_allclose(dumped, drawn)
    by_difficulty = not np.allclose(
        drawn,
        np.bincount(
            hook.index.image_of_index,
            weights=sampler.prior,
            minlength=hook.index.num_images))
    assert by_difficulty == (warmup <= 1)


def _saved_payload(root: str, work_dir: str) -> Dict[str, Any]:
    """The hook's checkpoint payload after one epoch of records."""
    runner = _build(tiny_demo_cfg(root, work_dir))
    hook = _one_epoch_of_records(runner)
    checkpoint: Dict[str, Any] = {}
    hook.before_save_checkpoint(runner, checkpoint)
    return checkpoint[CHECKPOINT_KEY]


def _resuming(root: str, work_dir: str, payload: Any) -> Runner:
    """A fresh runner as --resume leaves it, the payload loaded."""
    runner = _build(tiny_demo_cfg(root, work_dir))
    runner.call_hook('before_run')
    runner.train_loop._iter = 2
    _hook(runner).after_load_checkpoint(runner, {CHECKPOINT_KEY: payload})
    return runner


def test_a_newer_checkpoint_format_is_refused(synthetic_lvis_root: str,
                                              tmp_path: Any) -> None:
    payload = _saved_payload(synthetic_lvis_root, str(tmp_path))
    assert payload['format_version'] == hook_module.FORMAT_VERSION == 1
    assert payload['state']['format_version'] == 2
    newer = dict(payload, format_version=2)
    fresh = _resuming(synthetic_lvis_root, str(tmp_path / 'b'), newer)
    with pytest.raises(ValueError, match='format version 2.*up to version 1'):
        _hook(fresh).before_train(fresh)
    # the same payload, at its own version, resumes
    again = _resuming(synthetic_lvis_root, str(tmp_path / 'c'), payload)
    _hook(again).before_train(again)
    assert _hook(again).state.epoch == 1


def test_a_malformed_state_is_not_called_another_dataset(
        synthetic_lvis_root: str, tmp_path: Any) -> None:
    payload = _saved_payload(synthetic_lvis_root, str(tmp_path))
    broken = dict(payload, state=dict(payload['state']))
    broken['state']['sum_dl'] = torch.zeros(3)  # wrong shape
    other = dict(payload, state=dict(payload['state'], num_instances=1))
    cases = ((broken, 'malformed'), (other, 'another dataset'))
    for i, (loaded, match) in enumerate(cases):
        fresh = _resuming(synthetic_lvis_root, str(tmp_path / f'r{i}'), loaded)
        with pytest.raises(ValueError, match=match) as err:
            _hook(fresh).before_train(fresh)
        if match == 'malformed':
            assert 'another dataset' not in str(err.value)


def test_class_normalised_difficulty_reaches_the_sampler(
        synthetic_lvis_root: str, tmp_path: Any) -> None:
    """normalize='class': the sampler draws by D over its class's mean D,
    computed here in loops from the hook's raw D."""
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path))
    cfg.train_dataloader.sampler.update(scheme='paper')
    cfg.custom_hooks[0].update(normalize='class', reduce='sum')
    runner = _build(cfg)
    hook = _one_epoch_of_records(runner)
    raw = fill_unseen(hook.state.difficulty()[:len(hook.instance_labels)],
                      hook.state.observed[:len(hook.instance_labels)],
                      hook.instance_labels, hook.unseen)
    labels = hook.instance_labels.tolist()
    want = []
    for i, label in enumerate(labels):
        same = [raw[j] for j, m in enumerate(labels) if m == label]
        want.append(raw[i] / (sum(same) / len(same)))
    got = hook.instance_difficulty()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert not np.allclose(got, raw)  # the first batch moved two objects
    image_d = np.zeros(hook.index.num_images)
    np.add.at(image_d, hook.instance_image, want)  # reduce='sum'
    image_d[np.asarray(hook.counts) == 0] = hook.empty_difficulty
    probs = hook.index.per_index(image_d)
    np.testing.assert_allclose(
        hook.sampler.probabilities_for(1), probs / probs.sum())
    with pytest.raises(ValueError, match='normalize must be one of'):
        DifficultyHook(normalize='image')
