"""Shared fixtures: a tiny synthetic LVIS set and the demo config on it."""
import os
import os.path as osp
import socket
import uuid
from typing import Any

import pytest

if os.environ.get('PYTEST_XDIST_WORKER'):
    # setup.cfg runs the suite on every core (pytest-xdist, one worker per
    # core): one thread per worker, and per process a worker starts (the
    # tools' subprocesses inherit it), or the workers fight for the cores.
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo',
                       'mask-rcnn_r18_synthetic-lvis_difficulty.py')
# Small enough for a few CPU iterations, large enough for every LVIS group.
TINY_SYNTHETIC = dict(seed=0, num_train=32, num_val=20)


def pytest_xdist_auto_num_workers(config: Any) -> int:
    """``-n auto`` (setup.cfg): one worker per usable core, at most 4 (each
    loads torch and mmdet and makes its own data); the environment variable
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` overrides it."""
    env = os.environ.get('PYTEST_XDIST_AUTO_NUM_WORKERS')
    if env:
        return int(env)
    return max(1, min(4, len(os.sched_getaffinity(0))))


def pytest_runtest_setup(item: Any) -> None:
    """Tests marked ``cuda`` are skipped where torch sees no CUDA device;
    with ``MMDIFF_REQUIRE_CUDA=1`` (tools/gpu_check.sh) they fail instead,
    so that a GPU check never passes by skipping its tests."""
    if item.get_closest_marker('cuda') is None:
        return
    import torch
    if torch.cuda.is_available():
        return
    why = (f'torch {torch.__version__} (CUDA build: {torch.version.cuda}) '
           'sees no CUDA device')
    if os.environ.get('MMDIFF_REQUIRE_CUDA') == '1':
        pytest.fail(f'MMDIFF_REQUIRE_CUDA=1, but {why}', pytrace=False)
    pytest.skip(f'needs CUDA: {why}')


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for gloo)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='session')
def synthetic_lvis_root(tmp_path_factory: Any) -> str:
    from mmdiff.datasets import ensure_synthetic_lvis
    root = str(tmp_path_factory.mktemp('synthetic_lvis')) + '/'
    ensure_synthetic_lvis(root, **TINY_SYNTHETIC)
    return root


def tiny_demo_cfg(data_root: str,
                  work_dir: str,
                  max_epochs: int = 2,
                  **options: Any) -> Any:
    """The demo config on the tiny synthetic set, CPU-test sized.

    ``options`` are ``--cfg-options``-style dotted keys.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO_CONFIG)
    ann = data_root + 'annotations/lvis_v1_val.json'
    overrides = {
        'work_dir': work_dir,
        'experiment_name': f'test_{uuid.uuid4().hex[:8]}',
        'train_cfg.max_epochs': max_epochs,
        'train_cfg.val_interval': max_epochs,
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.data_root': data_root,
        'train_dataloader.dataset.synthetic': TINY_SYNTHETIC,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'val_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.synthetic': TINY_SYNTHETIC,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
        'test_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.synthetic': TINY_SYNTHETIC,
        'val_evaluator.ann_file': ann,
        'test_evaluator.ann_file': ann,
        'default_hooks.logger.interval': 5,
        'log_level': 'WARNING',
    }
    overrides.update(options)
    cfg.merge_from_dict(overrides)
    return cfg
