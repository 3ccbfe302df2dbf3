"""The stack work-arounds of mmdiff.compat."""
import collections
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

import mmdiff  # noqa: F401  (applies compat)
from mmdiff.compat import (UnsafeCheckpointError, allow_checkpoint_types,
                           load_checkpoint_file)


def test_numpy_float_alias_for_lvis() -> None:
    assert np.float is float
    # lvis 0.5.3's accumulate() builds arrays with dtype=np.float.
    assert np.zeros(2, dtype=np.float).dtype == np.float64


def _mmengine_like_checkpoint(path: str) -> None:
    buffer = HistoryBuffer()
    buffer.update(1.5)
    torch.save(
        dict(
            meta=dict(epoch=1, seed=np.int64(3), hook_msgs=dict()),
            state_dict=collections.OrderedDict(w=torch.ones(2)),
            message_hub=dict(
                log_scalars={'train/loss': buffer},
                runtime_info=dict(arr=np.arange(3), f=np.float64(2.0)))), path)


def test_mmengine_checkpoint_loads_weights_only(tmp_path) -> None:
    path = osp.join(tmp_path, 'ok.pth')
    _mmengine_like_checkpoint(path)
    ckpt = _load_checkpoint(path, map_location='cpu')
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)
    assert ckpt['message_hub']['log_scalars']['train/loss'].mean() == 1.5
    np.testing.assert_array_equal(ckpt['message_hub']['runtime_info']['arr'],
                                  np.arange(3))


class NotAllowed:
    """A type that is on no allow-list."""

    def __init__(self) -> None:
        self.x = 1


def test_checkpoint_with_unknown_type_is_refused(tmp_path) -> None:
    path = osp.join(tmp_path, 'evil.pth')
    torch.save(dict(state_dict={}, extra=NotAllowed()), path)
    with pytest.raises(UnsafeCheckpointError) as err:
        _load_checkpoint(path, map_location='cpu')
    message = str(err.value)
    assert 'NotAllowed' in message
    assert 'allow-list' in message
    assert 'allow_checkpoint_types' in message


class Trusted:
    """A type its user trusts and allows explicitly."""

    def __init__(self, a: int) -> None:
        self.a = a


def test_allow_checkpoint_types_admits_a_trusted_type(tmp_path) -> None:
    path = osp.join(tmp_path, 'trusted.pth')
    torch.save(dict(extra=Trusted(a=1)), path)
    with pytest.raises(UnsafeCheckpointError, match='Trusted'):
        load_checkpoint_file(path)
    allow_checkpoint_types([Trusted])
    assert load_checkpoint_file(path)['extra'].a == 1


def test_missing_checkpoint_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match='can not be found'):
        load_checkpoint_file(osp.join(tmp_path, 'none.pth'))


SHOW = '''
import json
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader
import mmdiff
from mmdiff.compat import applied_patches
loader = CheckpointLoader._schemes['']
print(json.dumps(dict(
    applied=applied_patches(), loader=loader.__module__,
    guarded=bool(getattr(Runner.resume, '_mmdiff_guarded', False)))))
'''


def _import_mmdiff(skip: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MMDIFF_COMPAT_SKIP=skip)
    return subprocess.run([sys.executable, '-c', SHOW],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=300)


def test_patches_are_those_the_installed_versions_need() -> None:
    run = _import_mmdiff('')
    assert run.returncode == 0, run.stderr[-2000:]
    shown = json.loads(run.stdout.splitlines()[-1])
    # numpy 2 has no np.float; mmengine 0.10.7 has the loader and the
    # resume that runs meta['config']
    assert shown == dict(
        applied=['numpy_float_alias', 'checkpoint_loader', 'resume_guard'],
        loader='mmdiff.compat',
        guarded=True)
    said = run.stdout + run.stderr
    assert said.count('mmdiff.compat applied') == 1  # once, at INFO


def test_each_patch_can_be_skipped() -> None:
    run = _import_mmdiff('resume_guard, checkpoint_loader')
    shown = json.loads(run.stdout.splitlines()[-1])
    assert shown == dict(
        applied=['numpy_float_alias'],
        loader='mmengine.runner.checkpoint',
        guarded=False)
    run = _import_mmdiff('all')
    assert json.loads(run.stdout.splitlines()[-1])['applied'] == []
    run = _import_mmdiff('no_such_patch')
    assert run.returncode != 0
    assert 'unknown patches' in run.stderr and 'resume_guard' in run.stderr
