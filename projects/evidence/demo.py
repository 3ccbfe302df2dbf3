"""The README's demo, run as a user runs it, on several seeds.

Every seed is the unchanged demo config through ``tools/train.py`` in its
own process, exactly the README's command plus
``--cfg-options randomness.seed=S`` and a work folder of its own. The
figures are read back from the run's own log (mmengine's
``vis_data/scalars.json``), so the block and the README quote what the
command printed.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .stats import median_range

__all__ = [
    'DEMO_METRICS', 'demo_command', 'read_final_metrics', 'run_demo',
    'render_demo', 'render_demo_readme'
]

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/demo/mask-rcnn_r18_synthetic-lvis_difficulty.py'
#: (log key, column), values in % (the log has fractions).
DEMO_METRICS = (
    ('lvis/bbox_AP', 'bbox AP'),
    ('lvis/bbox_APr', 'bbox APr'),
    ('lvis/bbox_APc', 'bbox APc'),
    ('lvis/bbox_APf', 'bbox APf'),
    ('lvis/segm_AP', 'segm AP'),
)


def demo_command(seed: int, work_dir: str) -> List[str]:
    """The README's demo command for one seed."""
    return [
        sys.executable, 'tools/train.py', CONFIG, '--work-dir', work_dir,
        '--cfg-options', f'randomness.seed={seed}'
    ]


def read_final_metrics(work_dir: str) -> Dict[str, float]:
    """The last validation metrics a run logged, in %.

    Raises:
        FileNotFoundError: The run logged no validation metrics.
    """
    logs = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    last: Optional[dict] = None
    for path in logs:
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if DEMO_METRICS[0][0] in row:
                    last = row
    if last is None:
        raise FileNotFoundError(
            f'no validation metrics ({DEMO_METRICS[0][0]}) in the logs of '
            f'{work_dir}; did the run finish?')
    return {name: float(last[key]) * 100 for key, name in DEMO_METRICS}


def run_demo(seeds: Sequence[int],
             work_dir: str,
             progress: Any = print) -> Dict[str, Any]:
    """Run the demo once per seed, one after the other.

    One at a time, so each run's wall time is that of a user's run on this
    machine. A failed run raises with the end of its output.

    Returns:
        dict: ``records`` (seed, metrics, ``seconds``) and ``commands``.
    """
    records, commands = [], []
    for seed in seeds:
        run_dir = osp.join(work_dir, f'seed{seed}')
        cmd = demo_command(seed, osp.relpath(run_dir, REPO))
        commands.append(' '.join(['python'] + cmd[1:]))
        tic = time.perf_counter()
        proc = subprocess.run(
            cmd,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED='1'))
        seconds = time.perf_counter() - tic
        if proc.returncode:
            raise RuntimeError(f'the demo with seed {seed} failed '
                               f'(rc {proc.returncode}):\n'
                               f'{proc.stdout[-3000:]}')
        rec = dict(seed=seed, seconds=seconds, **read_final_metrics(run_dir))
        records.append(rec)
        if progress is not None:
            progress(f"[demo] seed {seed}: bbox AP {rec['bbox AP']:.1f}, "
                     f"segm AP {rec['segm AP']:.1f}, {seconds / 60:.1f} min")
    return dict(records=records, commands=commands)


def render_demo(result: Dict[str, Any]) -> str:
    """The block of docs/results.md: per-seed table, median and range."""
    recs = result['records']
    names = [name for _, name in DEMO_METRICS]
    lines = [
        'The unchanged demo config, one run per seed, one after the other, '
        "each in its own process with torch's default threads:", '',
        *[f'    {c}' for c in result['commands']], '',
        '| seed | ' + ' | '.join(names) + ' | minutes |',
        '|---:|' + '---:|' * (len(names) + 1)
    ]
    for rec in recs:
        cells = [f'{rec[n]:.1f}' for n in names]
        lines.append(f"| {rec['seed']} | " + ' | '.join(cells) +
                     f" | {rec['seconds'] / 60:.1f} |")
    lines.append('| median (range) | ' +
                 ' | '.join(median_range([r[n] for r in recs])
                            for n in names) + ' | ' +
                 median_range([r['seconds'] / 60 for r in recs]) + ' |')
    return '\n'.join(lines) + '\n'


def render_demo_readme(result: Dict[str, Any]) -> str:
    """The README's one line: median and range over the seeds."""
    recs = result['records']

    def quote(name: str) -> str:
        values = np.array([r[name] for r in recs])
        return (f'{name} {np.median(values):.1f} '
                f'({values.min():.1f}-{values.max():.1f})')

    minutes = max(r['seconds'] for r in recs) / 60
    return (f"Over seeds {', '.join(str(r['seed']) for r in recs)}: "
            f"{quote('bbox AP')}, {quote('bbox APr')}, {quote('segm AP')}; "
            f'median (range); each run took at most {minutes:.1f} min on the '
            'machine that [docs/results.md](docs/results.md) names.\n')
