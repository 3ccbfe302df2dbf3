"""Load time of mmdiff's data-only checkpoint loader against torch's.

Builds an mmengine-shaped checkpoint of a real detector (model state dict,
SGD momentum for every parameter, a message hub of ``HistoryBuffer``
objects with one value per iteration, parameter-scheduler states and
``meta`` with the dataset's class names and the config text), then loads
it alternately with

- ``mmdiff``: :func:`mmdiff.safe_load.load_checkpoint_file` (its own zip
  reader and pickle machine, budgets on), and
- ``torch``: ``torch.load(weights_only=True)`` with a plain allow-list of
  the same types: the engine mmdiff's loader ran on before it had its own.

Reported: the median of each over ``--repeats`` alternating loads, their
``ratio`` (mmdiff / torch; the goal is <= 1.2), the file size and the peak
resident memory each load adds (in a new process, one per loader).

Usage (after ``pip install -e .``)::

    python benchmarks/bench_checkpoint_load.py                # demo model
    python benchmarks/bench_checkpoint_load.py --model r50-lvis
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hook_overhead import build_model  # noqa: E402

from mmdiff.safe_load import load_checkpoint_file  # noqa: E402

SCALARS = ('loss', 'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'acc',
           'loss_bbox', 'loss_mask', 'lr', 'time', 'data_time', 'grad_norm',
           'memory')


def make_checkpoint(model_name: str, iterations: int, path: str) -> None:
    """An mmengine 0.10.7-shaped checkpoint of ``model_name``."""
    from mmengine.logging import MessageHub
    model, num_classes = build_model(model_name)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.02, momentum=0.9)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    hub = MessageHub.get_instance('bench_checkpoint_load')
    rng = np.random.default_rng(0)
    for i in range(iterations):
        for name in SCALARS:
            hub.update_scalar(f'train/{name}', float(rng.random()))
    hub.update_info('iter', iterations)
    meta = dict(
        epoch=10,
        iter=iterations,
        cfg='model = dict(type="MaskRCNN")\n' * 200,
        seed=np.int64(0),
        experiment_name='bench',
        time='20261207_120000',
        mmengine_version='0.10.7',
        dataset_meta=dict(
            classes=tuple(f'class_{i}' for i in range(num_classes))))
    scheduler = dict(
        begin=0, end=8, by_epoch=True, last_step=9, _last_lr=[0.002])
    torch.save(
        dict(
            meta=meta,
            state_dict=model.state_dict(),
            message_hub=hub.state_dict(),
            optimizer=optimizer.state_dict(),
            param_schedulers=[scheduler, dict(scheduler)]), path)


def torch_loader() -> Callable[[str], Any]:
    from mmengine.logging import HistoryBuffer
    allowed = [
        HistoryBuffer, getattr, np.dtype, np.ndarray,
        np._core.multiarray._reconstruct, np._core.multiarray.scalar,
        type(np.dtype('float64')),
        type(np.dtype('int64')),
        type(np.dtype('float32'))
    ]

    def load(path: str) -> Any:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location='cpu', weights_only=True)

    return load


PEAK = '''
import sys
sys.path.insert(0, sys.argv[1])
import bench_checkpoint_load as bench
import mmdiff.safe_load  # noqa: F401  (imports before the baseline)
load = bench.loaders()[sys.argv[2]]
before = bench.reset_peak()
load(sys.argv[3])
print(bench.status('VmHWM') - before)
'''


def status(field: str) -> int:
    """A size from ``/proc/self/status``, in bytes."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> int:
    """Linux: the peak resident size (VmHWM) restarts from the current
    one; returns the current one."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    return status('VmRSS')


def loaders() -> Dict[str, Callable[[str], Any]]:
    return {
        'mmdiff': lambda p: load_checkpoint_file(p, map_location='cpu'),
        'torch': torch_loader(),
    }


def peak_rise(name: str, path: str) -> int:
    """Bytes of peak resident memory one load adds, in a new process."""
    run = subprocess.run(
        [sys.executable, '-c', PEAK,
         str(Path(__file__).parent), name, path],
        capture_output=True,
        text=True,
        check=True)
    return int(run.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--model', choices=['demo', 'r50-lvis'], default='demo')
    parser.add_argument(
        '--iterations',
        type=int,
        default=750,
        help='iterations of history in the message hub')
    parser.add_argument('--repeats', type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = loaders()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'checkpoint.pth')
        make_checkpoint(args.model, args.iterations, path)
        mine, theirs = table['mmdiff'](path), table['torch'](path)
        assert all(
            torch.equal(mine['state_dict'][k], v)
            for k, v in theirs['state_dict'].items())
        times: Dict[str, list] = {name: [] for name in table}
        for r in range(args.repeats + 1):  # the first pair warms up
            order = list(table) if r % 2 else list(table)[::-1]
            for name in order:
                start = time.perf_counter()
                table[name](path)
                if r:
                    times[name].append(time.perf_counter() - start)
        rises = {name: peak_rise(name, path) for name in table}
        size = os.path.getsize(path)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(
        json.dumps(
            dict(
                model=args.model,
                file_mb=round(size / 2**20, 1),
                median_s=dict((k, round(v, 4)) for k, v in medians.items()),
                ratio=round(medians['mmdiff'] / medians['torch'], 3),
                peak_rise_mb=dict(
                    (k, round(v / 2**20, 1)) for k, v in rises.items()),
                repeats=args.repeats,
                torch=torch.__version__,
                machine=f'{platform.machine()}, {os.cpu_count()} cores')))


if __name__ == '__main__':
    main()
