"""Every detection config builds: model, datasets, sampler, hooks, metric.

LVIS paths are replaced by the tiny synthetic LVIS-format set (the
configs themselves are not changed otherwise).
"""
import copy
import glob
import os.path as osp
from typing import Any

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from .conftest import REPO

DETECTION_CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', '*.py')) +
    glob.glob(osp.join(REPO, 'configs', 'lvis', '*.py')) +
    glob.glob(osp.join(REPO, 'configs', 'demo', '*.py')))


def _substitute_data(cfg: Config, root: str) -> None:
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[split].dataset
        while 'dataset' in ds:  # wrappers such as ClassBalancedDataset
            ds = ds.dataset
        ds.data_root = root
    for split in ('val_evaluator', 'test_evaluator'):
        cfg[split].ann_file = root + 'annotations/lvis_v1_val.json'


def _innermost(ds: Any) -> Any:
    while hasattr(ds, 'dataset'):
        ds = ds.dataset
    return ds


def test_every_detection_config_is_covered() -> None:
    names = {osp.basename(p) for p in DETECTION_CONFIGS}
    assert 'lvis_difficulty.py' in names
    assert len(names) >= 9


@pytest.mark.parametrize(
    'path', DETECTION_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_detection_config_builds(path: str, synthetic_lvis_root: str) -> None:
    cfg = Config.fromfile(path)
    assert 'mmdiff' in cfg.custom_imports['imports']
    assert cfg.default_scope == 'mmdet'
    _substitute_data(cfg, synthetic_lvis_root)
    with DefaultScope.overwrite_default_scope('mmdet'):
        _build_and_check(cfg)


def _build_and_check(cfg: Config) -> None:
    from mmdet.registry import DATA_SAMPLERS, DATASETS, HOOKS, METRICS, MODELS

    from mmdiff import DifficultyClassAwareSampler, DifficultyHook

    model = MODELS.build(copy.deepcopy(cfg.model))
    assert hasattr(model, 'roi_head')
    train_set = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
    val_set = DATASETS.build(copy.deepcopy(cfg.val_dataloader.dataset))
    assert len(train_set) > 0 and len(val_set) > 0
    sampler = DATA_SAMPLERS.build(
        copy.deepcopy(cfg.train_dataloader.sampler),
        default_args=dict(dataset=train_set, seed=0))
    assert len(list(iter(sampler))) == len(sampler)
    hooks = [
        HOOKS.build(copy.deepcopy(h)) for h in cfg.get('custom_hooks', [])
    ]
    metric = METRICS.build(copy.deepcopy(cfg.val_evaluator))
    assert type(metric).__name__ == 'LVISMetric'

    uses_difficulty = any(isinstance(h, DifficultyHook) for h in hooks)
    assert uses_difficulty == isinstance(sampler, DifficultyClassAwareSampler)
    if uses_difficulty:
        # The difficulty configs drop mmdet's static RFS wrapper and keep
        # sample_idx for the hook.
        assert _innermost(train_set) is train_set
        pack = cfg.train_dataloader.dataset.pipeline[-1]
        assert 'sample_idx' in pack.meta_keys
