"""The documented way to change a knob in a child config works.

mmengine 0.10.7 expands a base config's variables inside the base, so the
configs write every value at its key and a child overrides the key.
"""
import os.path as osp
import re
from typing import Any

import pytest
from mmengine.config import Config

from .conftest import REPO

LVIS = osp.join(REPO, 'configs', 'lvis_difficulty.py')
CIFAR = osp.join(REPO, 'configs', 'cifar', 'cifar10_lt_r20_difficulty.py')


def _child(tmp_path: Any, base: str, body: str) -> Config:
    path = osp.join(str(tmp_path), 'child.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n{body}')
    return Config.fromfile(path)


def test_lvis_child_config_changes_sampler_and_hook(tmp_path: Any) -> None:
    cfg = _child(
        tmp_path, LVIS, 'train_dataloader = dict(sampler=dict(beta=2.0))\n'
        "custom_hooks = [dict(type='DifficultyHook', c=3.0, topk=4)]\n")
    sampler = cfg.train_dataloader.sampler
    assert sampler.beta == 2.0
    assert sampler.type == 'DifficultyClassAwareSampler'
    assert sampler.scheme == 'repeat_factor'  # the rest stays
    assert cfg.custom_hooks[0].c == 3.0 and cfg.custom_hooks[0].topk == 4


def test_cfg_options_change_the_same_keys() -> None:
    cfg = Config.fromfile(LVIS)
    cfg.merge_from_dict({
        'train_dataloader.sampler.beta': 2.0,
        'custom_hooks.0.c': 3.0
    })
    assert cfg.train_dataloader.sampler.beta == 2.0
    assert cfg.custom_hooks[0].c == 3.0
    assert cfg.custom_hooks[0].topk == 8


@pytest.mark.parametrize('path', [LVIS, CIFAR], ids=osp.basename)
def test_no_knob_variables_that_do_nothing(path: str) -> None:
    # A top-level variable a child could set without effect (a plain
    # number or string that is not one of mmengine's own keys).
    cfg = Config.fromfile(path)
    own = {
        'default_scope', 'launcher', 'log_level', 'load_from', 'resume',
        'work_dir', 'data_root', 'dataset_type', 'backend_args',
        'auto_scale_lr', 'difficulty_sampler'
    }
    loose = [
        k for k, v in cfg.items()
        if isinstance(v, (int, float, str)) and k not in own
    ]
    assert not loose, loose


def test_documented_knob_keys_exist() -> None:
    cfg = Config.fromfile(LVIS)
    with open(LVIS) as f:
        keys = re.findall(r'^#   ((?:train_dataloader|custom_hooks)[\w.]+)',
                          f.read(), re.M)
    assert len(keys) >= 10
    for key in keys:
        node: Any = cfg
        for part in key.split('.'):
            node = node[int(part)] if part.isdigit() else node[part]
        assert node is not None, key


def test_cifar_child_config_changes_the_scheme(tmp_path: Any) -> None:
    cfg = _child(tmp_path, CIFAR,
                 "train_dataloader = dict(sampler=dict(scheme='uniform'))\n")
    assert cfg.train_dataloader.sampler == dict(
        type='DifficultyClassAwareSampler', scheme='uniform')
