"""--resume executes nothing from the checkpoint (mmengine 0.10.7's
Runner.resume runs ``meta['config']`` through ``Config.fromstring``)."""
import os
import os.path as osp
from typing import Any, List

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import FlexibleRunner, Runner
from torch import nn

import mmdiff  # noqa: F401  (applies the guard)
from mmdiff.safe_load.resume import resume_runs_config


class ToyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self,
                inputs: Any,
                data_samples: Any = None,
                mode: str = 'tensor') -> Any:
        out = self.linear(inputs)
        return dict(loss=out.sum()) if mode == 'loss' else out


def _runner(work_dir: str, **kwargs: Any) -> Runner:
    dataset = [dict(inputs=torch.ones(2)) for _ in range(4)]
    return Runner(
        model=ToyModel(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=dataset,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(logger=None),
        **kwargs)


def _crafted_checkpoint(tmp_path: Any, marker: str) -> str:
    """A real checkpoint plus a ``meta['config']`` that touches ``marker``:
    plain data, loaded by mmdiff's loader without complaint."""
    runner = _runner(str(tmp_path / 'first'))
    runner._train_loop = runner.build_train_loop(
        dict(by_epoch=True, max_epochs=1))
    runner.train()
    path = osp.join(str(tmp_path / 'first'), 'epoch_1.pth')
    checkpoint = torch.load(path, weights_only=False)  # our own file
    checkpoint['meta']['config'] = (
        f'import pathlib\npathlib.Path({marker!r}).touch()\ngpu_ids = [0]\n')
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope='module')
def crafted(tmp_path_factory: Any) -> Any:
    tmp_path = tmp_path_factory.mktemp('resume')
    marker = str(tmp_path / 'marker')
    return _crafted_checkpoint(tmp_path, marker), marker, tmp_path


def test_the_config_in_a_checkpoint_is_a_real_attack(crafted: Any) -> None:
    """mmengine's own resume (unguarded) runs the file's code."""
    path, marker, tmp_path = crafted
    runner = _runner(str(tmp_path / 'unguarded'))
    try:
        Runner.resume.__wrapped__(runner, path)
        assert osp.exists(marker)
    finally:
        if osp.exists(marker):
            os.remove(marker)


def _warnings(runner: Runner, monkeypatch: Any) -> List[str]:
    said: List[str] = []
    monkeypatch.setattr(runner.logger, 'warning', said.append)
    return said


def test_resume_executes_nothing_from_the_checkpoint(crafted: Any,
                                                     monkeypatch: Any) -> None:
    path, marker, tmp_path = crafted
    runner = _runner(str(tmp_path / 'second'), load_from=path, resume=True)
    said = _warnings(runner, monkeypatch)
    runner.train()
    assert not osp.exists(marker)
    assert runner.epoch == 2  # resumed at epoch 1, trained one more
    assert any('does not execute it' in line for line in said), said
    assert 'load_checkpoint' not in vars(runner)  # the shadow is removed


def test_a_differing_config_is_reported_as_text(crafted: Any,
                                                monkeypatch: Any) -> None:
    path, marker, tmp_path = crafted
    runner = _runner(str(tmp_path / 'third'))
    runner.cfg.extra_setting = 1  # this run's config differs
    said = _warnings(runner, monkeypatch)
    runner.resume(path)
    assert not osp.exists(marker)
    assert any('compared as text, not executed' in line for line in said)


def test_both_runners_are_guarded_where_they_run_the_config() -> None:
    for cls in (Runner, FlexibleRunner):
        assert resume_runs_config(cls.resume.__wrapped__), cls
        assert cls.resume._mmdiff_guarded
