"""DifficultyHook in topk storage matches the state fed dense predictions."""
from typing import Any

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmdiff.core import DifficultyState
from mmdiff.hooks import DifficultyHook
from ..conftest import tiny_demo_cfg

pytestmark = pytest.mark.slow


def test_topk_hook_uses_exact_first_terms(synthetic_lvis_root: str,
                                          tmp_path: Any) -> None:
    # The hook compresses each step's predictions and gathers them with
    # their exact first terms (from p_0 = 1/K); the state must receive
    # both, or the first epoch's D of a topk run drifts from the dense one.
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path))
    cfg.custom_hooks[0].update(storage='topk', topk=2)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, DifficultyHook))
    runner.call_hook('before_run')
    hook.before_train(runner)
    assert hook.state.storage == 'topk'

    k = hook.state.num_classes
    images = torch.tensor([0, 1])
    num = [int(hook.counts[i]) for i in images]
    sample_idx = torch.repeat_interleave(images, torch.tensor(num))
    gt_index = torch.cat([torch.arange(n) for n in num])
    generator = torch.Generator().manual_seed(0)
    probs = torch.softmax(
        3 * torch.randn(len(gt_index), k, generator=generator), dim=1)
    ids = torch.from_numpy(hook.offsets)[sample_idx] + gt_index
    labels = torch.from_numpy(hook.instance_labels)[ids]
    hook.record_batch(
        dict(
            sample_idx=sample_idx,
            gt_index=gt_index,
            labels=labels,
            probs=probs,
            num_gts=[(int(i), n) for i, n in zip(images, num)]))
    hook.after_train_epoch(runner)

    expected = DifficultyState(
        hook.state.num_instances, k, c=hook.c, storage='topk', topk=2)
    expected.observe(ids, probs, labels)
    expected.end_epoch()
    np.testing.assert_allclose(
        hook.state.difficulty(), expected.difficulty(), rtol=1e-6)
