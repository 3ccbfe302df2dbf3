"""The GPU check: one command that installs, tests and measures mmdiff on a
CUDA machine, and writes what it found (``bash tools/gpu_check.sh``).

Steps, in order (``--steps`` picks some; ``env`` and ``report`` always
run):

  env               Python, torch and its CUDA, the card and its compute
                    capability (-> TORCH_CUDA_ARCH_LIST), the driver
                    (nvidia-smi), nvcc, and the installed OpenMMLab stack.
  mmcv              mmcv 2.1.0 with CUDA ops for this card: kept when its
                    ops already run on CUDA. Otherwise what building it
                    needs is installed where missing (setuptools 69.5.1,
                    which still has pkg_resources; wheel; ninja, without
                    which torch compiles one file at a time), then mmcv's
                    own needs (mmengine 0.10.7, ...), then mmcv compiles
                    from source: MMCV_WITH_OPS=1 FORCE_CUDA=1
                    TORCH_CUDA_ARCH_LIST=<card> MAX_JOBS=<cores>,
                    --no-build-isolation, --no-binary mmcv, --no-cache-dir
                    (a CPU-only wheel in pip's cache would be reused).
                    About 4 min on 16 cores.
  mmdiff            what mmdet 3.3.0, lvis 0.5.3, mmdiff and its tests need,
                    where missing, then ``pip install --no-build-isolation
                    --no-deps -e .``; ``import mmdiff`` must then find this
                    checkout (checked from outside it).
  tests             ``pytest tests -m cuda -n 0`` with MMDIFF_REQUIRE_CUDA=1:
                    a CUDA test that would be skipped for want of CUDA fails.
  hook_overhead     benchmarks/bench_hook_overhead.py: Mask R-CNN R50-FPN,
                    1,203 classes, 1333x800, batch 2, capture on / off in
                    alternating blocks (goal: ratio <= 1.005), peak memory
                    of each mode.
  difficulty_state  benchmarks/bench_difficulty_state.py --only-device: the
                    state on the card at LVIS scale, topk, dense_fp16 and
                    dense (goal: end_epoch <= 10 ms).
  eval_pass         benchmarks/bench_eval_pass.py: the eval pass as a
                    fraction of a training epoch on LVIS-sized images, its
                    loading included (goals: <= 0.15 every epoch, <= 0.04
                    every 4th).
  report            OUT_DIR/gpu_check.json (every step's status, seconds,
                    commands and figures) and OUT_DIR/gpu_check.md (the card,
                    driver, torch and CUDA versions; a table of the figures
                    against their goals). Written after every step, so a
                    killed command leaves what it did (the step it was in
                    reads 'running').

Every install uses --no-deps and only what does not import: the machine's
own torch, numpy, opencv ... are kept. A step that fails is recorded and
the check goes on with the next (a device session gets every figure it
can); the exit status is 1 when a step failed. Each step has a time limit
(``--timeout STEP=SECONDS``).

Split over several commands (e.g. where one command may run 10 minutes):
``--steps mmcv mmdiff tests``, then ``--steps hook_overhead
difficulty_state eval_pass``; steps of an earlier report in --out-dir made
on the same card are kept (``--fresh`` starts over).

Offline (no package registry on the GPU machine): on a machine that has
one, ``--prepare-wheels DIR`` downloads the mmcv 2.1.0 source and a wheel
of every other requirement for the GPU machine's Python
(``--python-version``, default 3.12; ``--exclude`` what it already has,
e.g. ``opencv-python scipy matplotlib pytest``; torch is never among them:
the machine's own CUDA build is used). Copy DIR there and pass ``--wheels
DIR``: every pip call then reads only DIR (--no-index --find-links DIR),
and a step first checks that DIR holds what it is about to install.

``--cpu-rehearsal`` runs every step that needs no GPU on the CPU at small
scale (the benchmarks' harnesses, the JSON / markdown writing; for the
installs and the tests, what can be checked without a card: the commands,
the files in --wheels, which mmdiff is imported, which CUDA tests are
collected), so the script is known to work before a GPU is at hand
(tests/test_gpu_check.py runs it in CI). ``--dry-run`` prints the commands
of the install steps instead of running them.

Examples::

    bash tools/gpu_check.sh                         # on the GPU machine
    bash tools/gpu_check.sh --wheels ../wheels      # ... with no registry
    bash tools/gpu_check.sh --steps tests           # some steps only
    bash tools/gpu_check.sh --cpu-rehearsal --out-dir /tmp/rehearsal
    bash tools/gpu_check.sh --prepare-wheels ../wheels --python-version 3.12
"""
import argparse
import json
import os
import os.path as osp
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
STEPS = ('env', 'mmcv', 'mmdiff', 'tests', 'hook_overhead', 'difficulty_state',
         'eval_pass', 'report')
#: Seconds each step may take on the GPU machine (``--timeout`` overrides).
TIMEOUTS = dict(
    env=60,
    mmcv=900,
    mmdiff=300,
    tests=300,
    hook_overhead=450,
    difficulty_state=450,
    eval_pass=450,
    report=60)
#: The benchmark steps: (script in benchmarks/, its arguments on the GPU
#: machine, its arguments in the CPU rehearsal: small, a few seconds each).
BENCHMARKS = dict(
    hook_overhead=('bench_hook_overhead.py', [
        '--model', 'r50-lvis', '--image-size', '1333', '800', '--batch', '2'
    ], [
        '--device', 'cpu', '--warmup', '1', '--blocks', '2', '--block-steps',
        '1', '--num-batches', '2'
    ]),
    difficulty_state=('bench_difficulty_state.py', [
        '--only-device', '--device', 'cuda', '--threads',
        str(min(8, len(os.sched_getaffinity(0))))
    ], [
        '--only-device', '--quick', '--num-instances', '5000', '--device',
        'cpu', '--device-epochs', '2', '--threads', '1'
    ]),
    eval_pass=('bench_eval_pass.py', [
        '--model', 'r50-lvis', '--image-size', '1333', '800', '--batch', '2'
    ], [
        '--device', 'cpu', '--warmup', '1', '--train-steps', '2',
        '--eval-passes', '1', '--num-batches', '2', '--load-images', '2'
    ]))
MMCV = 'mmcv==2.1.0'
#: What the installs need, as (module that imports, pip requirement), in
#: install order. Each is installed, with --no-deps, only where its module
#: does not import: the GPU machine's own torch, numpy, opencv ... stay.
#: Building mmcv and mmdiff (pkg_resources: setuptools < 81; no ninja, and
#: torch compiles mmcv one file at a time).
BUILD_NEEDS = (('pkg_resources', 'setuptools==69.5.1'), ('wheel', 'wheel'),
               ('ninja', 'ninja'))
#: mmcv 2.1.0 and mmengine 0.10.7 (with rich's and yapf's own needs).
MMCV_NEEDS = (('yaml', 'pyyaml'), ('addict', 'addict'),
              ('termcolor', 'termcolor'), ('platformdirs', 'platformdirs'),
              ('tomli', 'tomli'), ('zipp', 'zipp'), ('lazy_importer',
                                                     'lazy-importer'),
              ('importlib_metadata', 'importlib-metadata'), ('yapf',
                                                             'yapf==0.40.1'),
              ('mdurl', 'mdurl'), ('markdown_it',
                                   'markdown-it-py'), ('pygments', 'pygments'),
              ('rich', 'rich'), ('packaging', 'packaging'), ('PIL', 'Pillow'),
              ('cv2', 'opencv-python'), ('mmengine', 'mmengine==0.10.7'))
#: mmdet 3.3.0, lvis 0.5.3, mmdiff and its tests (matplotlib's and pytest's
#: own needs first).
MMDIFF_NEEDS = (('six', 'six'), ('tqdm', 'tqdm'), ('terminaltables',
                                                   'terminaltables'),
                ('shapely', 'shapely'), ('pycocotools', 'pycocotools'),
                ('scipy', 'scipy'), ('contourpy', 'contourpy'), ('cycler',
                                                                 'cycler'),
                ('fontTools', 'fonttools'), ('kiwisolver', 'kiwisolver'),
                ('pyparsing', 'pyparsing'), ('dateutil', 'python-dateutil'),
                ('matplotlib', 'matplotlib'), ('mmdet', 'mmdet==3.3.0'),
                ('lvis', 'lvis==0.5.3'), ('iniconfig',
                                          'iniconfig'), ('pluggy', 'pluggy'),
                ('pytest', 'pytest'), ('execnet', 'execnet'), ('xdist',
                                                               'pytest-xdist'),
                ('sortedcontainers', 'sortedcontainers'), ('hypothesis',
                                                           'hypothesis'))
#: Requirements of those packages that are never installed: numpy comes
#: with the machine's torch; lvis declares Cython but runs without it.
NOT_INSTALLED = ('numpy', 'cython')
ALL_NEEDS = BUILD_NEEDS + MMCV_NEEDS + MMDIFF_NEEDS
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64',
             'manylinux_2_17_x86_64', 'manylinux2014_x86_64',
             'manylinux1_x86_64')


class Check:
    """The state of one run of the check: options, results, the report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rehearsal = args.cpu_rehearsal
        self.python = args.python or sys.executable
        self.results: Dict[str, Dict[str, Any]] = {}
        self.env: Dict[str, Any] = {}
        # Probes run in an empty folder: from the checkout (or a folder
        # holding, say, yaml/), an import would find what is not installed.
        self.probe_dir = tempfile.mkdtemp(prefix='gpu_check_probe_')

    # -- helpers -------------------------------------------------------
    def pip(self, *args: str) -> List[str]:
        """A pip command; with --wheels it reads only that folder."""
        cmd = [self.python, '-m', 'pip', *args]
        if self.args.wheels and args and args[0] in ('install', 'download'):
            cmd += [
                '--no-index', '--find-links',
                osp.abspath(self.args.wheels)
            ]
        return cmd

    def run(self,
            cmd: Sequence[str],
            step: str,
            env: Optional[Dict[str, str]] = None,
            execute: bool = True,
            cwd: str = REPO,
            probe: bool = False) -> Tuple[int, str]:
        """Run ``cmd`` in the repo within the step's time limit; returns
        (exit status, output). The command is recorded in the step's
        result; with --dry-run (or ``execute=False``) it is only shown."""
        # A probe's code is shown by name, not printed whole.
        shown = ' '.join([f'{k}={v}' for k, v in (env or {}).items()] +
                         ['<probe>' if '\n' in part else part for part in cmd])
        self.results[step].setdefault('commands', []).append(shown)
        if (self.args.dry_run and not probe) or not execute:
            print(f'[{step}] would run: {shown}', flush=True)
            return 0, ''
        print(f'[{step}] {shown}', flush=True)
        full_env = dict(os.environ, **(env or {}))
        # Its own process group: at the time limit every process it started
        # (nvcc, ninja, pytest's workers) stops with it.
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=self.timeout(step))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            raise StepError(f'timed out after {self.timeout(step)} s '
                            f'(raise it with --timeout {step}=SECONDS); '
                            f'last output: {(out or "")[-2000:]}')
        return proc.returncode, out

    def timeout(self, step: str) -> int:
        return int(self.args.timeouts.get(step, TIMEOUTS[step]))

    def python_json(self, code: str, step: str) -> Dict[str, Any]:
        """Run a snippet of Python that prints one JSON line, outside the
        checkout (from it, ``import mmdiff`` would always find it)."""
        # A probe changes nothing: it runs under --dry-run too.
        rc, out = self.run([self.python, '-c', code],
                           step,
                           cwd=self.probe_dir,
                           probe=True)
        if rc:
            raise StepError(f'exit status {rc}: {out[-2000:]}')
        return last_json(out)

    # -- steps ---------------------------------------------------------
    def step_env(self) -> Dict[str, Any]:
        info = self.python_json(ENV_PROBE, 'env')
        info['python'] = self.python
        info['python_version'] = info.pop('python_version')
        info['machine'] = platform.machine()
        info['cores'] = len(os.sched_getaffinity(0))
        info['driver'] = nvidia_smi_driver()
        info['nvcc'] = nvcc_version()
        capability = info.get('capability')
        if self.args.arch:
            info['arch_list'] = self.args.arch
        elif capability:
            info['arch_list'] = arch_list(tuple(capability))
        else:
            info['arch_list'] = None
        if not self.rehearsal and not info['cuda_available']:
            raise StepError(
                f"torch {info['torch']} at {self.python} sees no CUDA device "
                f"(built with CUDA {info['torch_cuda']}): install a CUDA "
                'build of torch, or run with --cpu-rehearsal to rehearse '
                'the check on the CPU')
        self.env = info
        return info

    def install_missing(self, step: str,
                        needs: Sequence[Tuple[str, str]]) -> List[str]:
        """Install, with --no-deps, the requirements of ``needs`` whose
        module does not import; returns them. With --wheels the folder
        must hold each (checked first, so nothing half-installs)."""
        found = self.python_json(
            MODULES_PROBE % (tuple(m for m, _ in needs), ), step)['modules']
        missing = [req for module, req in needs if not found[module]]
        if not missing:
            return []
        if self.args.wheels:
            lacking = check_wheels(self.args.wheels, missing)['missing']
            self.results[step]['wheels_lacking'] = lacking
            if lacking and not self.rehearsal:
                raise StepError(
                    f'--wheels {self.args.wheels} lacks {lacking}: prepare '
                    'it with --prepare-wheels on a machine with a registry')
        self.checked(
            self.run(
                self.pip('install', '--no-deps', *missing),
                step,
                execute=not self.rehearsal), ', '.join(missing))
        return missing

    def step_mmcv(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        probe = self.python_json(MMCV_PROBE, 'mmcv')
        out['before'] = probe
        if probe.get('cuda_ops'):
            out['action'] = 'kept: its ops already run on CUDA'
            return out
        arch = self.env.get('arch_list') or self.args.arch
        if not arch and not self.rehearsal:
            raise StepError('no TORCH_CUDA_ARCH_LIST: the env step found no '
                            'card; pass --arch (e.g. 9.0)')
        env = dict(
            MMCV_WITH_OPS='1',
            FORCE_CUDA='1',
            TORCH_CUDA_ARCH_LIST=arch or '<from the card>',
            MAX_JOBS=str(len(os.sched_getaffinity(0))))
        out['installed'] = self.install_missing('mmcv',
                                                BUILD_NEEDS + MMCV_NEEDS)
        if self.args.wheels:
            lacking = check_wheels(self.args.wheels, [MMCV])['missing']
            if lacking and not self.rehearsal:
                raise StepError(f'--wheels {self.args.wheels} lacks the '
                                'mmcv 2.1.0 source (mmcv-2.1.0.tar.gz): '
                                'prepare it with --prepare-wheels')
        # From source (never a wheel: a CPU-only build in pip's cache or in
        # --wheels would do), for this card.
        self.checked(
            self.run(
                self.pip('install', '--no-build-isolation', '--no-deps',
                         '--no-cache-dir', '--no-binary', 'mmcv',
                         '--force-reinstall', MMCV),
                'mmcv',
                env=env,
                execute=not self.rehearsal), 'the mmcv build')
        out['action'] = ('would compile' if self.rehearsal else 'compiled')
        if not self.rehearsal and not self.args.dry_run:
            after = self.python_json(MMCV_PROBE, 'mmcv')
            out['after'] = after
            if not after.get('cuda_ops'):
                raise StepError(f'mmcv was built but its ops do not run on '
                                f"CUDA: {after.get('error')}")
        return out

    def step_mmdiff(self) -> Dict[str, Any]:
        out: Dict[str, Any] = dict(
            installed=self.install_missing('mmdiff', MMDIFF_NEEDS))
        self.checked(
            self.run(
                self.pip('install', '--no-build-isolation', '--no-deps', '-e',
                         '.'),
                'mmdiff',
                execute=not self.rehearsal), 'mmdiff')
        # Probes run outside the checkout, so this is what `import mmdiff`
        # finds anywhere, not the folder it was started in.
        where = self.python_json(MODULES_PROBE % (('mmdiff', ), ),
                                 'mmdiff')['origins']['mmdiff']
        out['imported_from'] = where
        if not (where or '').startswith(osp.join(REPO, 'mmdiff')):
            if self.rehearsal and where is None:
                return out  # not installed yet: the GPU run installs it
            raise StepError(
                f'import mmdiff gives {where}, not this checkout ({REPO}): '
                'another mmdiff is installed (pip uninstall mmdiff), or '
                'the install failed')
        return out

    def step_tests(self) -> Dict[str, Any]:
        cmd = [
            self.python, '-m', 'pytest', 'tests', '-m', 'cuda', '-n', '0',
            '-p', 'no:cacheprovider', '-q', '-rs'
        ]
        if self.rehearsal:
            # No card: which tests would run is what can be checked.
            rc, out = self.run(cmd + ['--collect-only'], 'tests')
            collected = re.findall(r'^tests/\S+::\S+', out, re.M)
            if rc or not collected:
                raise StepError(f'collecting the CUDA tests failed (exit '
                                f'{rc}): {out[-2000:]}')
            return dict(collected=len(collected), tests=collected)
        rc, out = self.run(cmd, 'tests', env=dict(MMDIFF_REQUIRE_CUDA='1'))
        summary = pytest_summary(out)
        if rc:
            raise StepError(f'the CUDA tests failed (exit {rc}): {summary}; '
                            f'{out[-3000:]}')
        return dict(summary=summary, output_tail=out[-1500:])

    def benchmark(self, step: str) -> Dict[str, Any]:
        """Run one of BENCHMARKS; its JSON line is the step's result."""
        script, gpu_args, cpu_args = BENCHMARKS[step]
        args = cpu_args if self.rehearsal else gpu_args
        rc, out = self.run([self.python, f'benchmarks/{script}', *args], step)
        if rc:
            raise StepError(f'exit status {rc}: {out[-3000:]}')
        return last_json(out)

    def report_paths(self) -> Dict[str, str]:
        """Where the report goes: gpu_check.json and .md in --out-dir."""
        return {
            kind: osp.join(self.args.out_dir, f'gpu_check.{ext}')
            for kind, ext in (('json', 'json'), ('markdown', 'md'))
        }

    def step_report(self) -> Dict[str, str]:
        """Write the report (whole files or none: a command killed while
        writing leaves the last complete one); returns its paths."""
        paths = self.report_paths()
        os.makedirs(self.args.out_dir, exist_ok=True)
        report = dict(
            check='mmdiff gpu_check',
            cpu_rehearsal=self.rehearsal,
            date=time.strftime('%Y-%m-%d %H:%M:%S %Z'),
            env=self.env,
            steps=self.results)
        for path, text in ((paths['json'],
                            json.dumps(report, indent=1,
                                       default=str)), (paths['markdown'],
                                                       markdown(report))):
            with open(path + '.tmp', 'w') as f:
                f.write(text)
            os.replace(path + '.tmp', path)
        return paths

    # -- driver --------------------------------------------------------
    @staticmethod
    def checked(result: Tuple[int, str], what: str) -> None:
        rc, out = result
        if rc:
            raise StepError(f'installing {what} failed (exit {rc}): '
                            f'{out[-3000:]}')

    def read_earlier(self) -> Optional[Dict[str, Any]]:
        """The report already in --out-dir (None with --fresh)."""
        path = osp.join(self.args.out_dir, 'gpu_check.json')
        if self.args.fresh or not osp.exists(path):
            return None
        try:
            with open(path) as f:
                return json.load(f)
        except ValueError:
            return None

    def keep_earlier(self, earlier: Optional[Dict[str, Any]]) -> bool:
        """Steps of an earlier run in --out-dir on the same card and torch
        are kept, so a check split over several commands (--steps) ends in
        one report; --fresh starts over. A step that an earlier command
        left 'running' (it was killed) is kept as 'interrupted'; returns
        whether there is one."""
        if earlier is None:
            return False
        same = all(
            earlier.get('env', {}).get(k) == self.env.get(k)
            for k in ('card', 'torch', 'python'))
        if not same or earlier.get('cpu_rehearsal') != self.rehearsal:
            print(
                '[report] the earlier report in --out-dir is of another '
                'machine or mode: replaced',
                flush=True)
            return False
        interrupted = False
        for step, res in earlier.get('steps', {}).items():
            if step in self.results or step not in STEPS or step == 'report':
                continue
            self.results[step] = dict(res, earlier=True)
            if res.get('status') == 'running':
                self.results[step]['status'] = 'interrupted'
                interrupted = True
        return interrupted

    def main(self, steps: Sequence[str]) -> int:
        # env always runs: every report names the machine it was made on.
        wanted = set(steps) | {'env'}
        earlier = self.read_earlier()  # before this run's first write
        failed = False
        for step in STEPS[:-1]:
            if step not in wanted:
                continue
            self.results[step] = dict(
                status='running', date=time.strftime('%Y-%m-%d %H:%M:%S'))
            if step != 'env':  # env decides whether an earlier report stays
                self.step_report()  # if the command is killed, this is left
            fn: Callable[[], Dict[str, Any]] = (
                partial(self.benchmark, step)
                if step in BENCHMARKS else getattr(self, f'step_{step}'))
            t0 = time.perf_counter()
            try:
                result = fn()
                status = 'rehearsed' if self.rehearsal and step in (
                    'mmcv', 'mmdiff', 'tests') else 'ok'
            except StepError as error:
                result, status, failed = dict(error=str(error)), 'failed', True
            except Exception as error:  # a defect of the check itself
                result, status, failed = dict(
                    error=f'{type(error).__name__}: {error} (a defect of '
                    'tools/gpu_check.py: please report it)'), 'failed', True
            self.results[step].update(
                status=status,
                seconds=round(time.perf_counter() - t0, 1),
                result=result)
            print(
                f'[{step}] {status} in {self.results[step]["seconds"]} s',
                flush=True)
            if step == 'env':
                if status == 'failed':
                    break  # nothing else can run without a device
                failed |= self.keep_earlier(earlier)
            self.step_report()
        # Steps in their order, the report last.
        self.results = {
            step: self.results[step]
            for step in STEPS if step in self.results
        }
        self.results['report'] = dict(status='ok', result=self.report_paths())
        self.step_report()
        with open(self.report_paths()['markdown']) as f:
            print(f.read())
        return 1 if failed else 0


class StepError(Exception):
    """A step failed; the message says why and what to do."""


ENV_PROBE = r'''
import json, sys, torch
info = dict(python_version=sys.version.split()[0], torch=torch.__version__,
            torch_cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            cuda_available=torch.cuda.is_available())
if info['cuda_available']:
    props = torch.cuda.get_device_properties(0)
    info.update(card=props.name, capability=list(
        torch.cuda.get_device_capability(0)),
        card_memory_gib=round(props.total_memory / 2**30, 1),
        multiprocessors=props.multi_processor_count)
else:
    info.update(card=None, capability=None)
for name in ('mmengine', 'mmcv', 'mmdet', 'lvis', 'numpy'):
    try:
        info[name] = __import__(name).__version__
    except Exception as error:
        info[name] = None
print(json.dumps(info))
'''

MMCV_PROBE = r'''
import json
out = {}
try:
    import mmcv, torch
    out['version'] = mmcv.__version__
    from mmcv.ops import nms
    out['ops'] = True
    if torch.cuda.is_available():
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]).cuda()
        nms(boxes, torch.tensor([0.9, 0.8]).cuda(), 0.5)
        out['cuda_ops'] = True
    else:
        out['cuda_ops'] = False
except Exception as error:
    out.setdefault('ops', False)
    out['cuda_ops'] = False
    out['error'] = f'{type(error).__name__}: {error}'[:500]
print(json.dumps(out))
'''

MODULES_PROBE = r'''
import importlib, json
mods = %r
ok, origins = {}, {}
for m in mods:
    try:  # imported, not only found: a broken install counts as missing
        origins[m] = getattr(importlib.import_module(m), '__file__', None)
        ok[m] = True
    except Exception:
        ok[m], origins[m] = False, None
print(json.dumps(dict(modules=ok, origins=origins)))
'''


def last_json(out: str) -> Dict[str, Any]:
    """The last JSON line of a command's output (progress bars and log
    lines may come before it)."""
    for line in reversed(out.strip().splitlines()):
        # A progress bar ends without a newline: the JSON follows it.
        start = line.find('{')
        if start >= 0:
            try:
                return json.loads(line[start:])
            except ValueError:
                break
    raise StepError(f'no JSON line in the output: {out[-2000:]}')


def arch_list(capability: Tuple[int, int]) -> str:
    """TORCH_CUDA_ARCH_LIST for a compute capability: (9, 0) -> '9.0'."""
    major, minor = (int(x) for x in capability)
    return f'{major}.{minor}'


def nvidia_smi_driver() -> Optional[str]:
    """The driver version nvidia-smi reports, or None without one."""
    if not shutil.which('nvidia-smi'):
        return None
    try:
        out = subprocess.run([
            'nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'
        ],
                             capture_output=True,
                             text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def nvcc_version() -> Optional[str]:
    """'13.0' from ``nvcc --version``, or None without nvcc."""
    nvcc = shutil.which('nvcc') or (osp.join(os.environ['CUDA_HOME'], 'bin',
                                             'nvcc')
                                    if os.environ.get('CUDA_HOME') else None)
    if not nvcc or not osp.exists(nvcc):
        return None
    try:
        out = subprocess.run([nvcc, '--version'],
                             capture_output=True,
                             text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'release (\d+\.\d+)', out)
    return found.group(1) if found else out.strip()[-80:]


def distribution(spec_or_file: str) -> Tuple[str, str]:
    """(normalised name, version or '') of a requirement ('mmdet==3.3.0')
    or of a wheel / sdist file name ('mmdet-3.3.0-py3-none-any.whl',
    'markdown-it-py-3.0.0.tar.gz')."""
    sdist = re.match(r'(.+?)-(\d[^-]*)\.(tar\.gz|zip)$', spec_or_file)
    if sdist:
        name, version = sdist.group(1), sdist.group(2)
    elif spec_or_file.endswith('.whl'):  # name-version-...: no '-' inside
        name, version = spec_or_file.split('-')[:2]
    else:
        name, _, version = spec_or_file.partition('==')
    return re.sub(r'[-_.]+', '_', name.lower()), version


def check_wheels(folder: str, requirements: Sequence[str]) -> Dict[str, Any]:
    """Which of ``requirements`` a --wheels folder has no file for."""
    if not osp.isdir(folder):
        raise StepError(f'--wheels {folder} is not a folder: prepare it '
                        'with --prepare-wheels on a machine with a registry')
    files = sorted(os.listdir(folder))
    have = {distribution(f) for f in files}
    names = {name for name, _ in have}
    missing = []
    for spec in requirements:
        name, version = distribution(spec)
        if (name, version) not in have and not (not version and name in names):
            missing.append(spec)
    return dict(folder=osp.abspath(folder), files=files, missing=missing)


def prepare_wheels(args: argparse.Namespace) -> int:
    """Download what an offline GPU machine needs into a folder: the mmcv
    source and a wheel of every requirement of ALL_NEEDS (--exclude what
    the machine has)."""
    folder = args.prepare_wheels
    py = args.python or sys.executable
    if not args.dry_run and subprocess.run([py, '-c', 'import pkg_resources'],
                                           capture_output=True).returncode:
        print(f"{py} has a setuptools without pkg_resources, which mmcv's "
              "setup.py needs to make its source download: pip install "
              "'setuptools<81' (e.g. 69.5.1) first")
        return 1
    platforms = [x for p in PLATFORMS for x in ('--platform', p)]
    excluded = {distribution(x)[0] for x in args.exclude}
    wanted = [
        req for _, req in ALL_NEEDS if distribution(req)[0] not in excluded
    ] + list(args.extra_wheel)
    cmds = [
        # --no-build-isolation: mmcv's setup.py needs pkg_resources (and
        # torch), which pip's newest build setuptools does not have.
        [
            py, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
            '--no-build-isolation', '-d', folder, MMCV
        ],
        [
            py, '-m', 'pip', 'download', '--no-deps', '--only-binary', ':all:',
            '--python-version', args.python_version, '--implementation', 'cp',
            *platforms, '-d', folder, *wanted
        ],
    ]
    for cmd in cmds:
        print(
            ('would run: ' if args.dry_run else '') + ' '.join(cmd),
            flush=True)
        if not args.dry_run:
            os.makedirs(folder, exist_ok=True)
            if subprocess.run(cmd).returncode:
                return 1
    if not args.dry_run:
        print(json.dumps(check_wheels(folder, [MMCV] + wanted)))
    return 0


def pytest_summary(out: str) -> str:
    """pytest's last line: '12 passed, 1 failed in 30.1s'."""
    lines = [
        x for x in out.strip().splitlines() if ' in ' in x and (
            'passed' in x or 'failed' in x or 'error' in x or 'skipped' in x)
    ]
    return lines[-1].strip('= ') if lines else out.strip()[-200:]


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return 'n/a'
    if isinstance(value, float):
        return f'{value:.{digits}g}'
    return str(value)


def verdict(ok: Any) -> str:
    return 'n/a' if ok is None else ('pass' if ok else 'FAIL')


def figures(steps: Dict[str, Any]) -> List[Tuple[str, str, str, str]]:
    """(figure, value, goal, verdict) rows of the benchmarks' results."""
    rows = []
    hook = steps.get('hook_overhead', {}).get('result', {})
    if 'ratio' in hook:
        rows += [
            ('hook overhead: step time on / off (median)', fmt(hook['ratio']),
             f"<= {hook['limit']}", verdict(hook['pass'])),
            ('hook overhead: paired ratio over blocks',
             fmt(hook['block_paired_ratio']), '', ''),
            ('training step, capture off (ms)', fmt(hook['median_ms_off']), '',
             ''),
            ('capture per step (ms, host)', fmt(hook['capture_ms_median']), '',
             ''),
            ('peak GPU memory on / off (MiB)',
             f"{fmt(hook['peak_gpu_mb_on'])} / "
             f"{fmt(hook['peak_gpu_mb_off'])}", '', ''),
        ]
    state = steps.get('difficulty_state', {}).get('result', {})
    for storage, row in state.get('on_device', {}).items():
        if 'out_of_memory' in row:
            rows.append((f'state {storage}: end_epoch', 'out of memory',
                         '<= 0.010 s', 'FAIL'))
            continue
        rows.append((f"state {storage} ({row['state_mb']} MB): end_epoch (s)",
                     fmt(row['end_epoch_s']), '<= 0.010 s',
                     verdict(state.get('pass', {}).get(storage))))
        rows.append((f'state {storage}: peak memory (MB)', fmt(row['peak_mb']),
                     '', ''))
    ev = steps.get('eval_pass', {}).get('result', {})
    if 'fraction_every_epoch' in ev:
        rows += [
            ('eval pass every epoch: fraction of an epoch',
             fmt(ev['fraction_every_epoch']),
             f"<= {ev['goals']['fraction_every_epoch']}",
             verdict(ev['pass']['fraction_every_epoch'])),
            (f"eval pass every {ev['interval']}th epoch: fraction",
             fmt(ev['fraction_every_interval']),
             f"<= {fmt(ev['goals']['fraction_every_interval'])}",
             verdict(ev['pass']['fraction_every_interval'])),
            ('eval pass / training step, per image (model only)',
             fmt(ev['eval_over_train_per_image']), '', ''),
            ('eval pass per image: model / with loading (ms)',
             f"{fmt(ev['eval_ms_per_image'])} / "
             f"{fmt(ev['eval_ms_per_image_loaded'])}", '', ''),
            (f"loading per image, one worker of {ev['workers']} (ms)",
             fmt(ev['load_ms_per_image']), '', ''),
        ]
    return rows


def markdown(report: Dict[str, Any]) -> str:
    """The report as markdown: the machine, the steps, the figures."""
    env = report['env'] or {}
    title = ('mmdiff GPU check: CPU rehearsal (no GPU figure)'
             if report['cpu_rehearsal'] else 'mmdiff GPU check')
    lines = [f'# {title}', '', f"{report['date']}", '']
    lines += ['| | |', '|---|---|']
    for key, name in (('card', 'card'), ('card_memory_gib', 'memory (GiB)'),
                      ('capability',
                       'compute capability'), ('arch_list',
                                               'TORCH_CUDA_ARCH_LIST'),
                      ('driver', 'driver'), ('torch', 'torch'), ('torch_cuda',
                                                                 'torch CUDA'),
                      ('nvcc', 'nvcc'), ('python_version', 'Python'),
                      ('mmcv', 'mmcv'), ('mmdet', 'mmdet'),
                      ('mmengine', 'mmengine'), ('cores', 'CPU cores')):
        lines.append(f'| {name} | {fmt(env.get(key))} |')
    lines += ['', '| step | status | seconds |', '|---|---|---|']
    for step, res in report['steps'].items():
        lines.append(
            f"| {step} | {res['status']} | {res.get('seconds', '')} |")
    try:
        rows = figures(report['steps'])
    except (KeyError, TypeError) as error:
        # A benchmark whose output lacks a figure (another version of it):
        # the report is still written, and says so.
        rows = [(f'the figures could not be read ({type(error).__name__}: '
                 f'{error}); see gpu_check.json', '', '', '')]
    if report['cpu_rehearsal']:
        # The goals are the card's: a CPU figure neither meets nor misses one.
        rows = [(a, b, c, 'rehearsal' if d else d) for a, b, c, d in rows]
    if rows:
        lines += ['', '| figure | value | goal | |', '|---|---|---|---|']
        lines += [f'| {a} | {b} | {c} | {d} |' for a, b, c, d in rows]
    errors = [(s, r['result']['error']) for s, r in report['steps'].items()
              if r['status'] == 'failed']
    for step, error in errors:
        lines += ['', f'**{step} failed**: {error[:600]}']
    return '\n'.join(lines) + '\n'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/gpu_check.sh',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--steps',
        nargs='+',
        choices=STEPS,
        default=list(STEPS),
        help='the steps to run, in the order above (default: all)')
    parser.add_argument(
        '--cpu-rehearsal',
        action='store_true',
        help='no GPU: every step at small scale on the CPU')
    parser.add_argument(
        '--out-dir',
        default=osp.join(REPO, 'work_dirs', 'gpu_check'),
        help='where gpu_check.json and gpu_check.md go '
        '(default: work_dirs/gpu_check)')
    parser.add_argument(
        '--wheels',
        default=None,
        help='a folder from --prepare-wheels: pip reads only it')
    parser.add_argument(
        '--arch',
        default=None,
        help='TORCH_CUDA_ARCH_LIST for mmcv (default: from the card)')
    parser.add_argument(
        '--python',
        default=None,
        help='the Python to install into and test (default: this one)')
    parser.add_argument(
        '--timeout',
        action='append',
        default=[],
        metavar='STEP=SECONDS',
        help='a step\'s time limit (default: ' +
        ', '.join(f'{k} {v}' for k, v in TIMEOUTS.items()) + ')')
    parser.add_argument(
        '--fresh',
        action='store_true',
        help='start a new report (default: steps of an earlier report in '
        '--out-dir made on the same card are kept)')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='print the install commands instead of running them')
    parser.add_argument(
        '--prepare-wheels',
        default=None,
        metavar='DIR',
        help='download the offline files into DIR and stop')
    parser.add_argument(
        '--python-version',
        default='3.12',
        help='the GPU machine\'s Python, for --prepare-wheels')
    parser.add_argument(
        '--exclude',
        nargs='+',
        default=[],
        metavar='NAME',
        help='with --prepare-wheels: leave these out (what the GPU machine '
        'already has, e.g. opencv-python scipy matplotlib pytest)')
    parser.add_argument(
        '--extra-wheel',
        action='append',
        default=[],
        help='one more requirement for --prepare-wheels')
    args = parser.parse_args(argv)
    args.timeouts = {}
    for item in args.timeout:
        step, _, seconds = item.partition('=')
        if step not in TIMEOUTS or not seconds.isdigit():
            parser.error(f'--timeout takes STEP=SECONDS with STEP one of '
                         f'{", ".join(TIMEOUTS)}, got {item!r}')
        args.timeouts[step] = int(seconds)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.prepare_wheels:
        return prepare_wheels(args)
    return Check(args).main(args.steps)


if __name__ == '__main__':
    sys.exit(main())
