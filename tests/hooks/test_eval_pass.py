"""The eval-pass mode of DifficultyHook (the paper's protocol)."""
from typing import Any

import numpy as np
import pytest
from mmengine.runner import Runner

from mmdiff.hooks import DifficultyHook
from mmdiff.hooks.eval_pass import eval_pass_pipeline
from ..conftest import tiny_demo_cfg


def test_eval_pass_pipeline_loads_annotations_before_resize() -> None:
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(160, 128), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='PackDetInputs', meta_keys=('img_id', 'scale_factor')),
    ]
    pipeline = eval_pass_pipeline(test_pipeline)
    assert [t['type'] for t in pipeline] == [
        'LoadImageFromFile', 'LoadAnnotations', 'Resize', 'PackDetInputs'
    ]
    assert pipeline[-1]['meta_keys'] == ('img_id', 'scale_factor',
                                         'sample_idx')
    # Boxes and labels only: the pass reads no mask.
    assert pipeline[1] == dict(
        type='LoadAnnotations',
        with_bbox=True,
        with_mask=False,
        with_seg=False)
    # The config's own list is left alone.
    assert test_pipeline[1]['type'] == 'Resize'
    # Classification: nothing to move, PackClsInputs keeps sample_idx.
    assert eval_pass_pipeline([dict(type='PackClsInputs')
                               ]) == [dict(type='PackClsInputs')]


def test_bad_unseen_and_first_term_are_refused() -> None:
    with pytest.raises(ValueError, match='unseen must be one of'):
        DifficultyHook(unseen='median')
    with pytest.raises(
            ValueError,
            match=r"first_term must be one of \('prior', 'skip'\)"):
        DifficultyHook(first_term='none')


def test_bad_mode_is_refused() -> None:
    with pytest.raises(
            ValueError,
            match=r"mode must be one of \('online', 'eval_pass'\)"):
        DifficultyHook(mode='offline')
    with pytest.raises(ValueError, match='eval_pass interval'):
        DifficultyHook(mode='eval_pass', eval_pass=dict(interval=0))
    with pytest.raises(ValueError, match="unknown options.*'every'"):
        DifficultyHook(mode='eval_pass', eval_pass=dict(every=2))


@pytest.mark.slow
def test_eval_pass_mode_sees_every_object(synthetic_lvis_root: str,
                                          tmp_path: Any) -> None:
    cfg = tiny_demo_cfg(synthetic_lvis_root, str(tmp_path), max_epochs=1)
    cfg.custom_hooks[0].update(
        mode='eval_pass', eval_pass=dict(num_workers=0, interval=1))
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    prior = runner.train_dataloader.batch_sampler.sampler.prior.copy()
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, DifficultyHook))
    assert hook.state.epoch == 1
    sampler = runner.train_dataloader.batch_sampler.sampler
    assert not np.allclose(sampler.probabilities, prior)
    # The pass covers every training object, drawn or not.
    dump = np.load(str(tmp_path / 'difficulty' / 'epoch_1.npz'))
    assert np.all(dump['instance_difficulty'] != 1.0)
