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
    assert env['torch'] == torch.__version__
    assert (env['card'] is None) == (not torch.cuda.is_available())
    # The installs are shown, not run; mmcv's build names its variables.
    build = steps['mmcv']['commands'][-1]
    for part in ('MMCV_WITH_OPS=1', 'FORCE_CUDA=1', 'TORCH_CUDA_ARCH_LIST=',
                 '--no-build-isolation', '--no-cache-dir', '--no-binary mmcv',
                 'mmcv==2.1.0'):
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
    assert ev['load_ms_per_image'] > 0  # the pass's pipeline was timed
    md = open(osp.join(out, 'gpu_check.md')).read()
    assert 'CPU rehearsal (no GPU figure)' in md
    for row in (f'| torch | {torch.__version__} |',
                'hook overhead: step time on / off', 'state dense_fp16',
                'eval pass every epoch', '| eval_pass | ok |'):
        assert row in md, row
    assert '| FAIL |' not in md and '| pass |' not in md  # no GPU verdict
    assert md in proc.stdout  # the table is printed too

    # A second command with some steps adds to the same report.
    again = _run('--cpu-rehearsal', '--out-dir', out, '--steps', 'mmdiff')
    assert again.returncode == 0, again.stdout[-3000:]
    merged = json.load(open(osp.join(out, 'gpu_check.json')))['steps']
    assert list(merged) == list(_tool().STEPS)
    assert merged['hook_overhead']['earlier'] is True
    assert 'earlier' not in merged['mmdiff']
    assert merged['hook_overhead']['result'] == hook


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs no CUDA')
def test_without_a_card_it_says_what_to_do(tmp_path: Any) -> None:
    out = str(tmp_path / 'report')
    # --dry-run too: the probes still run (they change nothing).
    proc = _run('--steps', 'env', 'tests', '--out-dir', out, '--dry-run')
    assert proc.returncode == 1
    report = json.load(open(osp.join(out, 'gpu_check.json')))
    assert report['steps']['env']['status'] == 'failed'
    assert '--cpu-rehearsal' in report['steps']['env']['result']['error']
    assert 'tests' not in report['steps']  # nothing runs without a device
    assert 'env failed' in open(osp.join(out, 'gpu_check.md')).read()


def test_offline_files(tmp_path: Any) -> None:
    tool = _tool()
    proc = _run('--prepare-wheels', str(tmp_path / 'w'), '--dry-run',
                '--python-version', '3.12', '--exclude', 'opencv-python',
                'SciPy')
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    source = next(x for x in lines if '--no-binary :all:' in x)
    assert 'mmcv==2.1.0' in source and '--no-build-isolation' in source
    wheels = next(x for x in lines if '--only-binary' in x).split()
    assert wheels[wheels.index('--python-version') + 1] == '3.12'
    assert 'setuptools==69.5.1' in wheels and 'markdown-it-py' in wheels
    assert 'opencv-python' not in wheels and 'scipy' not in wheels
    assert not osp.exists(tmp_path / 'w')  # a dry run downloads nothing

    folder = tmp_path / 'wheels'
    folder.mkdir()
    for name in ('mmcv-2.1.0.tar.gz', 'mmengine-0.10.7-py3-none-any.whl',
                 'PyYAML-6.0.2-cp312-cp312-manylinux_2_17_x86_64.whl',
                 'markdown_it_py-3.0.0-py3-none-any.whl',
                 'mmdet-3.2.0-py3-none-any.whl',
                 'opencv_python_headless-4.10.0.84-cp37-abi3-'
                 'manylinux_2_17_x86_64.whl'):
        (folder / name).write_text('')
    found = tool.check_wheels(
        str(folder), [
            'mmcv==2.1.0', 'mmengine==0.10.7', 'pyyaml', 'markdown-it-py',
            'mmdet==3.3.0', 'opencv-python'
        ])
    # Names match as pip normalises them; versions where pinned.
    assert found['missing'] == ['mmdet==3.3.0', 'opencv-python']
    with pytest.raises(tool.StepError, match='--prepare-wheels'):
        tool.check_wheels(str(tmp_path / 'none'), [])

    # With --wheels every pip call reads only that folder, and a step
    # first names what the folder lacks of what it would install.
    check = tool.Check(
        tool.parse_args(['--cpu-rehearsal', '--wheels',
                         str(folder)]))
    assert check.pip('install',
                     'x')[-3:] == ['--no-index', '--find-links',
                                   str(folder)]
    check.results['mmdiff'] = {}
    needs = (('json', 'no-such-json'), ('mmdiff_no_such_module', 'nosuch'),
             ('mmdiff_no_such_either', 'markdown-it-py'))
    assert check.install_missing('mmdiff',
                                 needs) == ['nosuch', 'markdown-it-py']
    assert check.results['mmdiff']['wheels_lacking'] == ['nosuch']
    shown = check.results['mmdiff']['commands'][-1]
    assert shown.endswith('install --no-deps nosuch markdown-it-py '
                          f'--no-index --find-links {folder}')
    # Outside the rehearsal the same lack stops the step before pip runs.
    check.rehearsal = False
    with pytest.raises(tool.StepError, match=r"lacks \['nosuch'\]"):
        check.install_missing('mmdiff', needs)
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


def test_a_killed_step_is_reported_as_interrupted(tmp_path: Any) -> None:
    """A command killed in a step leaves it 'running' in the report; the
    next command on the same machine keeps it as 'interrupted' and exits
    1, so a split check never reads as complete."""
    out = tmp_path / 'report'
    out.mkdir()
    earlier = dict(
        cpu_rehearsal=True,
        env=dict(
            card=torch.cuda.get_device_name(0)
            if torch.cuda.is_available() else None,
            torch=torch.__version__,
            python=sys.executable),
        steps=dict(
            eval_pass=dict(status='running'),
            hook_overhead=dict(status='ok', result=dict(ratio=1.0))))
    (out / 'gpu_check.json').write_text(json.dumps(earlier))
    proc = _run('--cpu-rehearsal', '--out-dir', str(out), '--steps', 'env')
    assert proc.returncode == 1, proc.stdout[-2000:]
    steps = json.load(open(out / 'gpu_check.json'))['steps']
    assert steps['eval_pass']['status'] == 'interrupted'
    assert steps['hook_overhead'] == dict(
        status='ok', result=dict(ratio=1.0), earlier=True)
    assert list(steps) == ['env', 'hook_overhead', 'eval_pass', 'report']


def test_the_install_tables_hold_every_dependency() -> None:
    """Every install is --no-deps: each requirement that a package of the
    tables declares for Python 3.12 (the GPU machine's) must itself be in
    the tables or be one that is never installed. Read from the metadata
    of the packages installed here."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement
    tool = _tool()
    names = {tool.distribution(req)[0] for _, req in tool.ALL_NEEDS}
    names |= {tool.distribution(x)[0] for x in tool.NOT_INSTALLED}
    marker_env = dict(
        python_version='3.12', python_full_version='3.12.3', extra='')
    checked, missing = 0, []
    for _, req in tool.ALL_NEEDS:
        try:
            declared = metadata.requires(tool.distribution(req)[0]) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here: nothing to read
        checked += 1
        for line in declared:
            need = Requirement(line)
            if need.marker and not need.marker.evaluate(marker_env):
                continue  # an extra, or another Python's
            if tool.distribution(need.name)[0] not in names:
                missing.append(f'{req} needs {need}')
    assert checked > 20  # the stack is installed where the suite runs
    assert not missing, missing
