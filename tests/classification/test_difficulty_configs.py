"""The CIFAR-LT difficulty configs: the baseline recipe plus re-sampling."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DATA_SAMPLERS, HOOKS, DefaultScope

from mmdiff.hooks import DifficultyHook
from mmdiff.samplers import DifficultyClassAwareSampler

CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'cifar')
CONFIGS = sorted(glob.glob(osp.join(CONFIG_DIR, 'cifar*_lt_r*_difficulty.py')))
# What a difficulty config adds to its baseline.
ADDED = {'custom_imports', 'custom_hooks', 'difficulty_sampler'}


def test_there_is_a_difficulty_config_per_baseline():
    names = {osp.basename(p) for p in CONFIGS}
    assert names == {
        f'cifar{ds}_lt_r{ratio}_difficulty.py'
        for ds in (10, 100)
        for ratio in (20, 50, 100)
    }


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_difficulty_config_is_its_baseline_plus_resampling(path):
    cfg = Config.fromfile(path)
    baseline = Config.fromfile(path.replace('_difficulty', '_baseline'))

    # The paper's flat scheme w ~ D, re-sampled every epoch by the hook.
    assert cfg.train_dataloader.sampler == dict(
        type='DifficultyClassAwareSampler', scheme='paper')
    assert cfg.custom_hooks == [dict(type='DifficultyHook', c=1.0)]
    assert 'mmdiff' in cfg.custom_imports.imports
    assert not cfg.custom_imports.allow_failed_imports

    # Everything else is the baseline's recipe.
    ours, theirs = cfg.to_dict(), baseline.to_dict()
    ours['train_dataloader'].pop('sampler')
    theirs['train_dataloader'].pop('sampler')
    assert {k: v for k, v in ours.items() if k not in ADDED} == \
        {k: v for k, v in theirs.items() if k != 'custom_imports'}


def test_sampler_and_hook_are_found_in_the_configs_scope():
    cfg = Config.fromfile(CONFIGS[0])
    assert cfg.default_scope == 'mmengine'
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        assert DATA_SAMPLERS.get(
            cfg.train_dataloader.sampler.type) is DifficultyClassAwareSampler
        assert HOOKS.get(cfg.custom_hooks[0].type) is DifficultyHook
