"""No host synchronisation in the capture's part of a training step.

Every torch call the capture makes in a real training step of the tiny
Mask R-CNN (and the hook's record_batch, the records' encoding, which it
calls) runs under :class:`mmdiff.analysis.host_syncs.HostSyncCounter`; a
call that would make the host wait for a GPU fails the test, with where it
was made. mmdet's own calls (the RoI sampler's ``nonzero``, the losses)
happen outside the counted block.
"""
from typing import Any, List

import pytest
import torch
from mmengine.runner import Runner

from mmdiff.analysis.host_syncs import HostSyncCounter
from mmdiff.core.topk_codec import _compress
from mmdiff.models import probability_capture
from ..conftest import tiny_demo_cfg


def test_counter_sees_what_syncs() -> None:
    """The counter itself can fail: each kind of sync is seen."""
    x = torch.arange(6.)
    with HostSyncCounter() as syncs:
        x[x > 2].sum()
        x[(x > 2).to(torch.uint8)]
        torch.nonzero(x)
        float(x[0])
        bool((x > 1).any())
        x.cpu()
        x.tolist()
        y = x.clone()
        y[x > 4] = 0
        torch.where(x > 1)
        torch.nn.functional.one_hot(x.long())
        x.to('cpu')  # a blocking copy that names a device
        y.copy_(x)
        torch.tensor([1.], device=x.device)
        repr(x)
        x.to('cpu', non_blocking=True)  # none of these sync
        x.to(torch.float64)
        x.gather(0, torch.tensor([1, 0]))
        torch.where(x > 1, x, 0)
        torch.nn.functional.one_hot(x.long(), 6)
    assert syncs.names() == [
        'Tensor.__getitem__ (mask)', 'Tensor.__getitem__ (mask)', 'nonzero',
        'Tensor.__float__', 'Tensor.__bool__', 'Tensor.cpu', 'Tensor.tolist',
        'Tensor.__setitem__ (mask)', 'where (one argument: nonzero)',
        'one_hot (num_classes from the data)', 'Tensor.to (blocking copy)',
        'Tensor.copy_ (blocking copy)', 'tensor (blocking copy to a device)',
        'Tensor.__repr__'
    ], syncs.report()


@pytest.mark.slow
@pytest.mark.parametrize('storage', ['topk', 'dense', 'dense_fp16'])
def test_captured_training_steps_make_no_host_sync(synthetic_lvis_root: str,
                                                   tmp_path: Any,
                                                   monkeypatch: Any,
                                                   storage: str) -> None:
    counters: List[HostSyncCounter] = []
    capture = probability_capture.RoIHeadCapture._capture

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        with HostSyncCounter() as syncs:
            capture(self, *args, **kwargs)
        counters.append(syncs)

    monkeypatch.setattr(probability_capture.RoIHeadCapture, '_capture',
                        counted)
    cfg = tiny_demo_cfg(
        synthetic_lvis_root,
        str(tmp_path),
        max_epochs=1,
        **{
            'train_dataloader.sampler.images_per_epoch': 4,
            'custom_hooks.0.storage': storage,
        })
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert len(counters) == 2  # 4 images, batch 2
    state = next(h for h in runner.hooks if hasattr(h, 'state')).state
    assert state.observed.sum() > 0  # the counted block did the capture
    found = [c.report() for c in counters if c.names()]
    assert not found, '\n'.join(found)


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.parametrize('storage', ['topk', 'dense_fp16'])
def test_captured_steps_on_cuda_make_no_host_sync(synthetic_lvis_root: str,
                                                  tmp_path: Any,
                                                  monkeypatch: Any,
                                                  storage: str) -> None:
    """On a card, CUDA itself is the judge: with sync debug mode 'error', a
    synchronising call inside the capture raises (the state on the card
    too, so the records never leave it)."""
    counters: List[HostSyncCounter] = []
    capture = probability_capture.RoIHeadCapture._capture

    def strict(self: Any, *args: Any, **kwargs: Any) -> None:
        torch.cuda.set_sync_debug_mode('error')
        try:
            with HostSyncCounter() as syncs:
                capture(self, *args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode('default')
        counters.append(syncs)

    monkeypatch.setattr(probability_capture.RoIHeadCapture, '_capture', strict)
    cfg = tiny_demo_cfg(
        synthetic_lvis_root,
        str(tmp_path),
        max_epochs=2,
        **{
            'train_dataloader.sampler.images_per_epoch': 4,
            'custom_hooks.0.storage': storage,
            'custom_hooks.0.state_device': 'cuda',
        })
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert next(runner.model.parameters()).is_cuda
    assert len(counters) == 4  # 2 epochs of 4 images, batch 2
    state = next(h for h in runner.hooks if hasattr(h, 'state')).state
    assert state.device.type == 'cuda' and state.observed.sum() > 0
    found = [c.report() for c in counters if c.names()]
    assert not found, '\n'.join(found)


def test_topk_encoding_is_sync_free_and_unchanged() -> None:
    """The gathered top-k columns are the masked ones of before, true class
    among the top k + 1 or not."""
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(50, 12) * 3, dim=1)
    labels = torch.randint(0, 12, (50, ))
    labels[:10] = probs[:10].argmax(1)  # the true class is the top one
    with HostSyncCounter() as syncs:
        record = _compress(probs, labels, 4)
    assert not syncs.names(), syncs.report()
    for row in range(50):
        others = [j for j in range(12) if j != int(labels[row])]
        others.sort(key=lambda j: -float(probs[row, j]))
        assert record.top_idx[row].tolist() == others[:4]


def test_sync_free_selection_keeps_exactly_the_gt_rois() -> None:
    """The RoI sampler may drop GT RoIs (more positives than it keeps) and
    shuffle the positives. The rows marked valid must be exactly the
    GT-flagged positives, found here in loops; padding rows are invalid."""
    from types import SimpleNamespace

    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    images = [  # (sample_idx, GTs, pos_is_gt, pos_assigned_gt_inds, negs)
        (7, 3, [0, 1, 0, 1], [2, 1, 0, 0], 2),  # GT 2's RoI dropped
        (2, 2, [1], [1], 3),  # one positive: only 1 row fits
        (5, 1, [], [], 2),  # no positive at all
        (9, 2, [1, 0, 1, 0, 0], [1, 0, 0, 1, 1], 0),  # every GT kept
    ]
    samples, results, offset, expected = [], [], 0, []
    for idx, num_gt, is_gt, assigned, negs in images:
        sample = DetDataSample(metainfo=dict(sample_idx=idx))
        sample.gt_instances = InstanceData(labels=torch.arange(num_gt) + 10)
        samples.append(sample)
        num_pos = len(is_gt)
        results.append(
            SimpleNamespace(
                pos_is_gt=torch.tensor(is_gt, dtype=torch.uint8),
                pos_priors=torch.zeros(num_pos, 4),
                priors=torch.zeros(num_pos + negs, 4),
                pos_assigned_gt_inds=torch.tensor(assigned, dtype=torch.long),
                pos_gt_labels=torch.tensor(assigned, dtype=torch.long) + 10))
        for row in range(num_pos):
            if is_gt[row]:
                expected.append(
                    (idx, assigned[row], assigned[row] + 10, offset + row))
        offset += num_pos + negs
    cls_score = torch.randn(offset, 21)
    batches: List[dict] = []
    capture = probability_capture.RoIHeadCapture.__new__(
        probability_capture.RoIHeadCapture)
    capture.sink, capture._samples = batches.append, samples
    capture.bbox_head = capture.roi_head = torch.nn.Module()
    with HostSyncCounter() as syncs:
        capture._capture(cls_score, results)
    assert not syncs.names(), syncs.report()
    batch = batches[0]
    # rows per image: min(GTs, positives)
    assert batch['valid'].numel() == 3 + 1 + 0 + 2
    softmax = torch.softmax(cls_score, dim=1)
    got = []
    for r in range(batch['valid'].numel()):
        if batch['valid'][r]:
            row = next(
                i for i in range(offset)
                if torch.equal(batch['probs'][r], softmax[i]))
            got.append((int(batch['sample_idx'][r]), int(batch['gt_index'][r]),
                        int(batch['labels'][r]), row))
    assert sorted(got) == sorted(expected)
    assert batch['num_gts'] == [(7, 3), (2, 2), (5, 1), (9, 2)]
