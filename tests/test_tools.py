"""tools/train.py and tools/test.py as a user runs them."""
import os
import os.path as osp
import subprocess
import sys
from typing import Any, Dict, List

import pytest

from .conftest import DEMO_CONFIG, REPO, TINY_SYNTHETIC

TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')


def _tiny_options(root: str, **extra: Any) -> List[str]:
    options: Dict[str, Any] = {
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
        'val_evaluator.ann_file': root + 'annotations/lvis_v1_val.json',
        'test_evaluator.ann_file': root + 'annotations/lvis_v1_val.json',
    }
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options[f'{split}.dataset.data_root'] = root
        for key, value in TINY_SYNTHETIC.items():
            options[f'{split}.dataset.synthetic.{key}'] = value
    options.update(extra)
    return ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]


def _run(args: List[str], cwd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    return subprocess.run(
        [sys.executable] + args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900)


@pytest.mark.slow
def test_train_resume_and_test(synthetic_lvis_root: str,
                               tmp_path: Any) -> None:
    work_dir = str(tmp_path / 'work')
    first = _run([
        TRAIN, DEMO_CONFIG, '--work-dir', work_dir, *_tiny_options(
            synthetic_lvis_root, **{
                'train_cfg.max_epochs': 1,
                'train_cfg.val_interval': 10,
                'train_dataloader.sampler.images_per_epoch': 8
            })
    ], str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))

    # --resume loads the latest checkpoint with weights_only=True
    # (mmdiff.compat) and trains the second epoch.
    second = _run([
        TRAIN, DEMO_CONFIG, '--work-dir', work_dir, '--resume', *_tiny_options(
            synthetic_lvis_root, **{
                'train_cfg.max_epochs': 2,
                'train_cfg.val_interval': 10,
                'train_dataloader.sampler.images_per_epoch': 8
            })
    ], str(tmp_path))
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    assert 'resumed epoch: 1' in log
    assert 'DifficultyHook: resumed the difficulty state of epoch 1' in log
    assert 'DifficultyHook epoch 2' in log
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))

    test = _run([
        TEST, DEMO_CONFIG,
        osp.join(work_dir, 'epoch_2.pth'), '--work-dir', work_dir,
        *_tiny_options(synthetic_lvis_root)
    ], str(tmp_path))
    log = test.stdout + test.stderr
    assert test.returncode == 0, log[-3000:]
    for key in ('lvis/bbox_AP:', 'lvis/bbox_APr:', 'lvis/bbox_APc:',
                'lvis/bbox_APf:', 'lvis/segm_AP:', 'lvis/segm_APr:'):
        assert key in log


def test_missing_lvis_files_stop_with_the_expected_tree(tmp_path: Any) -> None:
    result = _run([
        TRAIN,
        osp.join(REPO, 'configs', 'lvis_difficulty.py'), '--work-dir',
        str(tmp_path / 'work')
    ], str(tmp_path))
    assert result.returncode == 1
    # The message and no traceback (tools/train.py catches the error).
    assert 'Traceback' not in result.stderr
    message = result.stdout + result.stderr
    assert 'data/lvis_v1/annotations/lvis_v1_train.json' in message
    assert 'train2017/' in message and 'val2017/' in message
    assert 'https://www.lvisdataset.org/dataset' in message
    # Stopped before any dataset was built.
    assert 'load_data_list' not in message


def test_missing_cifar_files_stop_with_the_expected_layout(
        tmp_path: Any) -> None:
    # cwd has no data/: the config's relative data root is missing.
    result = _run([
        TRAIN,
        osp.join(REPO, 'configs', 'cifar', 'cifar10_lt_r100_difficulty.py'),
        '--work-dir',
        str(tmp_path / 'work')
    ], str(tmp_path))
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert result.stderr.startswith(
        'error: Data files the config needs are missing:')
    # The layout and the source close the output, where a user looks.
    tail = '\n'.join(result.stderr.splitlines()[-12:])
    for text in ('data/cifar-10-batches-py/', 'batches.meta', 'data_batch_1',
                 'data_batch_5', 'test_batch', 'cifar-10-python.tar.gz',
                 'https://www.cs.toronto.edu/~kriz/cifar.html'):
        assert text in tail
    assert not (tmp_path / 'work').exists()  # stopped before the Runner
