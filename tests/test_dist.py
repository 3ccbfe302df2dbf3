"""Multi-process launches without CUDA: mmdiff.dist and tools/dist_train.sh.

The two-rank agreement of the difficulty state is checked in
tests/hooks/test_difficulty_hook_dist.py; here, the launch itself: the
config rewrite, the errors, and ``bash tools/dist_train.sh`` with two CPU
processes.
"""
import os
import os.path as osp
import subprocess
from typing import Any

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.config import Config

from mmdiff.dist import prepare_cpu_launch
from .conftest import DEMO_CONFIG, REPO, free_port
from .test_tools import _tiny_options

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(),
    reason='the CPU (gloo) path; with CUDA mmengine opens nccl itself')

TORCHRUN_ENV = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR',
                'MASTER_PORT')


@pytest.fixture
def no_torchrun_env(monkeypatch: Any) -> None:
    for key in TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def one_rank_env(monkeypatch: Any) -> None:
    """What torchrun sets for a world of one process, on a free port."""
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(free_port()))


def _cfg(**kwargs: Any) -> Config:
    return Config(
        dict(
            env_cfg=dict(
                cudnn_benchmark=False,
                dist_cfg=dict(backend='nccl', timeout=60)),
            **kwargs))


def test_launcher_none_is_left_alone(no_torchrun_env: None) -> None:
    cfg = _cfg(launcher='none')
    assert not prepare_cpu_launch(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg


@pytest.mark.parametrize('launcher', ['slurm', 'mpi'])
def test_gpu_only_launchers_say_what_to_use(launcher: str,
                                            no_torchrun_env: None) -> None:
    with pytest.raises(
            RuntimeError,
            match=f'--launcher {launcher} needs '
            'CUDA GPUs.*dist_train.sh'):
        prepare_cpu_launch(_cfg(launcher=launcher))


def test_pytorch_launcher_outside_torchrun(no_torchrun_env: None) -> None:
    with pytest.raises(
            RuntimeError,
            match='needs RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.*'
            'torchrun'):
        prepare_cpu_launch(_cfg(launcher='pytorch'))


def test_one_process_group_and_a_cpu_wrapper(one_rank_env: None) -> None:
    """In this process, world size 1: the group opens, the config follows."""
    cfg = _cfg(launcher='pytorch', find_unused_parameters=True)
    assert not torch_dist.is_initialized()
    try:
        assert prepare_cpu_launch(cfg)
        assert torch_dist.is_initialized()
        assert torch_dist.get_backend() == 'gloo'
        assert torch_dist.get_world_size() == 1
    finally:
        torch_dist.destroy_process_group()
    assert cfg.env_cfg.dist_cfg == dict(backend='gloo', timeout=60)
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=True,
        device_ids=None)


def test_a_configured_ddp_wrapper_keeps_its_options(
        one_rank_env: None) -> None:
    cfg = _cfg(
        launcher='pytorch',
        model_wrapper_cfg=dict(
            type='MMDistributedDataParallel',
            device_ids=[0],
            broadcast_buffers=True))
    try:
        assert prepare_cpu_launch(cfg)
    finally:
        torch_dist.destroy_process_group()
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=True)


@pytest.mark.slow
def test_dist_train_sh_two_cpu_processes(synthetic_lvis_root: str,
                                         tmp_path: Any) -> None:
    """``bash tools/dist_train.sh CONFIG 2`` trains on a CPU-only machine."""
    work_dir = str(tmp_path / 'work')
    options = _tiny_options(
        synthetic_lvis_root, **{
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 10,
            'train_dataloader.sampler.images_per_epoch': 8,
        })
    env = dict(
        os.environ,
        PYTHONWARNINGS='ignore',
        PORT=str(free_port()),
        OMP_NUM_THREADS='1')
    result = subprocess.run([
        'bash',
        osp.join(REPO, 'tools', 'dist_train.sh'), DEMO_CONFIG, '2',
        '--work-dir', work_dir, *options
    ],
                            cwd=str(tmp_path),
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert 'no CUDA: the processes talk through gloo, not nccl' in log
    # 8 images per epoch over 2 ranks, batch 2: 2 iterations each.
    assert 'Epoch(train) [1][2/2]' in log
    assert 'DifficultyHook epoch 1' in log
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))
