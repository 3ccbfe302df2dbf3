"""tools/gpu_check.sh: its rehearsal on the CPU, so that the script is known
to work before a GPU is at hand (the GPU run itself is not possible here)."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Any

import pytest
import torch

from .conftest import REPO

SCRIPT = osp.join(REPO, 'tools', 'gpu_check.sh')


def _tool() -> Any:
    spec = importlib.util.spec_from_file_location(
        'gpu_check', osp.join(REPO, 'tools', 'gpu_check.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', SCRIPT, *args],
                          cwd=REPO,
                          env=dict(os.environ, PYTHON=sys.executable, **env),
                          capture_output=True,
                          text=True,
                          timeout=600)


def test_help_documents_every_step() -> None:
    proc = _run('--help')
    assert proc.returncode == 0, proc.stderr
    tool = _tool()
    for step in tool.STEPS:
        # Each step has its own paragraph: its name opens a line.
        assert f'\n  {step} ' in proc.stdout, step
    for option in ('--cpu-rehearsal', '--wheels', '--prepare-wheels',
                   '--steps', '--timeout', '--out-dir', '--dry-run'):
        assert option in proc.stdout, option


@pytest.mark.slow
def test_cpu_rehearsal_runs_every_step_and_writes_the_report(
        tmp_path: Any) -> None:
    out = str(tmp_path / 'report')
    proc = _run('--cpu-rehearsal', '--out-dir', out)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.load(open(osp.join(out, 'gpu_check.json')))
    steps = report['steps']
    assert list(steps) == list(_tool().STEPS)
    failed = {
        k: v['result']
        for k, v in steps.items() if v['status'] not in ('ok', 'rehearsed')
    }
    assert not failed, failed
    env = report['env']
    assert env['torch'] == torch.__version__ and env['card'] is None
    # The installs are shown, not run; mmcv's build names its variables.
    build = ' '.join(steps['mmcv']['commands'])
    for part in ('MMCV_WITH_OPS=1', 'FORCE_CUDA=1', 'TORCH_CUDA_ARCH_LIST=',
                 '--no-build-isolation', '--no-cache-dir', 'mmcv==2.1.0'):
        assert part in build, part
    assert steps['mmdiff']['result']['imported_from'].startswith(
        osp.join(REPO, 'mmdiff'))
    # Every CUDA test of the suite is among those the GPU run would run.
    collected = steps['tests']['result']['tests']
    assert any('test_captured_steps_on_cuda' in t for t in collected)
    assert any('test_state.py::test_cuda_matches_cpu' in t for t in collected)
    # The benchmarks ran their harnesses on the CPU.
    hook = steps['hook_overhead']['result']
    assert hook['benchmark'] == 'bench_hook_overhead' and hook['ratio'] > 0
    assert hook['gt_predictions_captured'] > 0
    state = steps['difficulty_state']['result']
    assert set(state['on_device']) == {'topk', 'dense_fp16', 'dense'}
    assert all(r['end_epoch_s'] > 0 for r in state['on_device'].values())
    ev = steps['eval_pass']['result']
    assert 0 < ev['fraction_every_epoch'] and ev['gt_predictions_captured']
    assert ev['fraction_every_interval'] == pytest.approx(
        ev['fraction_every_epoch'] / 4, abs=1e-4)
    md = open(osp.join(out, 'gpu_check.md')).read()
    assert 'CPU rehearsal (no GPU figure)' in md
    for row in ('| card | n/a |', f'| torch | {torch.__version__} |',
                'hook overhead: step time on / off', 'state dense_fp16',
                'eval pass every epoch', '| eval_pass | ok |'):
        assert row in md, row
    assert md in proc.stdout  # the table is printed too


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs no CUDA')
def test_without_a_card_it_says_what_to_do(tmp_path: Any) -> None:
    out = str(tmp_path / 'report')
    proc = _run('--steps', 'env', 'tests', '--out-dir', out)
    assert proc.returncode == 1
    report = json.load(open(osp.join(out, 'gpu_check.json')))
    assert report['steps']['env']['status'] == 'failed'
    assert '--cpu-rehearsal' in report['steps']['env']['result']['error']
    assert 'tests' not in report['steps']  # nothing runs without a device
    assert 'env failed' in open(osp.join(out, 'gpu_check.md')).read()


def test_offline_files(tmp_path: Any) -> None:
    tool = _tool()
    proc = _run('--prepare-wheels', str(tmp_path / 'w'), '--dry-run',
                '--python-version', '3.12')
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any('--no-binary :all:' in x and 'mmcv==2.1.0' in x for x in lines)
    wheels = next(x for x in lines if '--only-binary' in x)
    assert '--python-version 3.12' in wheels
    assert all(spec in wheels for spec in tool.OFFLINE_WHEELS)
    assert not osp.exists(tmp_path / 'w')  # a dry run downloads nothing
    folder = tmp_path / 'wheels'
    folder.mkdir()
    (folder / 'mmcv-2.1.0.tar.gz').write_text('')
    (folder / 'mmengine-0.10.7-py3-none-any.whl').write_text('')
    found = tool.check_wheels(str(folder))
    assert 'mmcv==2.1.0' not in found['missing']
    assert 'mmengine==0.10.7' not in found['missing']
    assert 'mmdet==3.3.0' in found['missing']
    with pytest.raises(tool.StepError, match='--prepare-wheels'):
        tool.check_wheels(str(tmp_path / 'none'))
    # With --wheels every pip call reads only that folder.
    check = tool.Check(tool.parse_args(['--wheels', str(folder)]))
    assert check.pip('install',
                     'x')[-3:] == ['--no-index', '--find-links',
                                   str(folder)]
    assert tool.arch_list((9, 0)) == '9.0'
    assert tool.arch_list((8, 6)) == '8.6'
    with pytest.raises(SystemExit):
        tool.parse_args(['--timeout', 'mmcv=soon'])
    assert tool.parse_args(['--timeout', 'mmcv=900']).timeouts == {'mmcv': 900}


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs no CUDA')
def test_require_cuda_fails_instead_of_skipping() -> None:
    """The GPU run sets MMDIFF_REQUIRE_CUDA=1: a CUDA test on a machine
    whose torch sees no card fails there, it is not skipped."""
    cmd = [
        sys.executable, '-m', 'pytest', 'tests/core/test_psi.py', '-m', 'cuda',
        '-n', '0', '-p', 'no:cacheprovider', '-q'
    ]
    env = {k: v for k, v in os.environ.items() if k != 'MMDIFF_REQUIRE_CUDA'}
    skipped = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert skipped.returncode == 0 and '1 skipped' in skipped.stdout
    failed = subprocess.run(
        cmd,
        cwd=REPO,
        env=dict(env, MMDIFF_REQUIRE_CUDA='1'),
        capture_output=True,
        text=True,
        timeout=300)
    assert failed.returncode == 1, failed.stdout
    assert 'MMDIFF_REQUIRE_CUDA=1' in failed.stdout
