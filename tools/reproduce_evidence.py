"""Run the evidence experiments and write docs/results.md.

Usage::

    python tools/reproduce_evidence.py             # all sections, full
    python tools/reproduce_evidence.py --quick     # a few minutes, 2 cores
    python tools/reproduce_evidence.py --sections digits,tabular
    python tools/reproduce_evidence.py --sections detection
    python tools/reproduce_evidence.py --sections demo   # README's figure

Every section renders one block of ``docs/results.md`` between
``<!-- section: NAME begin -->`` and ``<!-- section: NAME end -->``
markers, headed by the command, machine, date, versions and time of the run
that produced it. Re-running some sections replaces only their blocks; the
others are kept as they are, so every block stays reproducible from its own
header.

Adding a section (e.g. detection): write ``run(ctx: SectionContext) ->
str`` returning the markdown body (figures go to ``ctx.fig_dir`` and are
linked through ``ctx.fig_rel``) and append ``Section(name, title, run)`` to
:data:`SECTIONS`. The experiment code itself lives in ``projects/evidence``
(beside the package: users do not import it); the blocks hold tables and
figures only, and the conclusions in docs/results.md are written by people
outside the blocks.
"""
import argparse
import os
import os.path as osp
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The harness lives beside the package, in projects/evidence.
sys.path.insert(0, REPO_ROOT)

BEGIN = '<!-- section: {} begin -->'
END = '<!-- section: {} end -->'
BLOCK_RE = re.compile(
    r'<!-- section: (\S+) begin -->\n(.*?)'
    r'<!-- section: \1 end -->\n?', re.S)
TITLE = '# mmdiff evidence results'


@dataclass
class SectionContext:
    """What a section's ``run`` gets.

    Attributes:
        quick (bool): ``--quick``: fewer seeds / epochs.
        num_seeds (int, optional): ``--seeds``, overriding the preset.
        fig_dir (str): Folder to write the section's PNG files into.
        fig_rel (str): The same folder relative to the markdown file.
        jobs (int): ``--jobs``: runs a section may train at once, each
            in its own process. Defaults to 1.
        readme (dict[str, str]): A section may put a short text under its
            name here; it replaces the README's
            ``<!-- results: NAME begin/end -->`` block.
        from_results (bool): ``--from-results``: render the tables and
            figures from the results a section saved, without running.
        arms (tuple[str], optional): ``--arms``: the arms a detection
            section trains instead of its own (the runs recorded of the
            others stay in its tables). Defaults to None (its own).
        provenance (tuple, optional): Set by a section whose runs are
            recorded (and may have run over several sessions): (its first
            start, its seconds in all, its command).
    """
    quick: bool
    num_seeds: Optional[int]
    fig_dir: str
    fig_rel: str
    jobs: int = 1
    readme: Dict[str, str] = field(default_factory=dict)
    from_results: bool = False
    arms: Optional[Tuple[str, ...]] = None
    provenance: Optional[Tuple[datetime, float, str]] = None


@dataclass
class Section:
    """One block of docs/results.md.

    Attributes:
        name (str): Name for ``--sections`` and the block markers.
        title (str): The block's heading.
        run (Callable[[SectionContext], str]): Runs the experiment and
            returns the markdown body.
    """
    name: str
    title: str
    run: Callable[[SectionContext], str]


def run_digits_section(ctx: SectionContext) -> str:
    from projects.evidence.digits import (digits_presets, plot_digits,
                                          render_digits, run_digits,
                                          run_digits_sensitivity)
    preset = digits_presets(ctx.quick, ctx.num_seeds)
    result = run_digits(
        preset.data_cfg, preset.train_cfg, preset.seeds, hidden=preset.hidden)
    sensitivity = run_digits_sensitivity(preset, result)
    figures = plot_digits(result, ctx.fig_dir, sensitivity=sensitivity)
    return render_digits(result, figures, ctx.fig_rel, sensitivity)


def run_tabular_section(ctx: SectionContext) -> str:
    from projects.evidence.tabular import (plot_tabular, render_tabular,
                                           run_tabular, tabular_presets)
    preset = tabular_presets(ctx.quick, ctx.num_seeds)
    result = run_tabular(
        preset.datasets,
        preset.train_cfg,
        preset.seeds,
        test_size=preset.test_size)
    return render_tabular(result, plot_tabular(result, ctx.fig_dir),
                          ctx.fig_rel)


#: The committed numbers behind the detection tables (full runs); quick
#: runs keep theirs in the work dir.
DETECTION_RESULTS = osp.join(REPO_ROOT, 'docs', 'results', 'detection.json')
DETECTION_WORK = osp.join(REPO_ROOT, 'work_dirs', 'evidence', 'detection')


def quick_results() -> str:
    """The results file of ``--quick`` (in the work dir, not committed)."""
    return osp.join(DETECTION_WORK, 'quick.json')


def detection_store(quick: bool) -> Any:
    """The results file of the detection sections (full or quick)."""
    from projects.evidence.detection_store import ResultStore
    return ResultStore(quick_results() if quick else DETECTION_RESULTS)


def detection_groups(ctx: SectionContext, presets: list) -> List[dict]:
    """Run (or, with ``--from-results``, read) detection presets.

    Runs already recorded in the results file are not trained again, so a
    stopped section resumes; ``ctx.provenance`` becomes that of the first
    preset's group (its first start, total time and command).
    """
    # Imported here: mmdet is needed by these sections only.
    from projects.evidence.detection import run_detection
    store = detection_store(ctx.quick)
    command = ' '.join(sys.argv[1:])
    results = []
    for preset in presets:
        if ctx.arms is not None:  # any arm of ARMS, into this group
            preset.arms = ctx.arms
        if not ctx.from_results and preset.arms:
            results.append(
                run_detection(preset, meta=dict(command=command), store=store))
        elif preset.name in store.groups:  # render what was recorded
            results.append(store.result(preset.name))
    if results:
        first = results[0]
        ctx.provenance = (datetime.fromtimestamp(
            first['started'], tz=timezone.utc),
                          sum(r['seconds'] for r in results), first['command'])
    return results


def _recorded(ctx: SectionContext, presets: list) -> list:
    """:func:`detection_groups` for a section that needs its runs."""
    results = detection_groups(ctx, presets)
    if not results:
        names = [p.name for p in presets]
        raise SystemExit(
            f'no recorded runs of {names} in {detection_store(ctx.quick).path}'
            ' to render; run the section without --from-results (or with '
            'other --arms) first')
    return results


def run_detection_curve_section(ctx: SectionContext) -> str:
    from projects.evidence.detection import curve_preset
    from projects.evidence.detection_report import plot_curve, render_curve
    preset = curve_preset(ctx.quick, work_dir=DETECTION_WORK, jobs=ctx.jobs)
    result, = _recorded(ctx, [preset])
    return render_curve(result, plot_curve(result, ctx.fig_dir), ctx.fig_rel)


def _main_part(ctx: SectionContext, part: Tuple[str, ...],
               ablations: bool) -> dict:
    """Train ``part`` of the main setting's arms. Returns the group with
    the records of its samplers (``ablations`` False: every arm that is
    not a one-option change of another) or of its ablations and the arms
    they are compared with (True)."""
    from projects.evidence.detection import (ABLATION_OF, PRIORS, QUICK_ARMS,
                                             detection_presets)
    if ctx.quick:
        part = tuple(a for a in part if a in QUICK_ARMS)
    preset = detection_presets(
        ctx.quick,
        ctx.num_seeds,
        work_dir=DETECTION_WORK,
        jobs=ctx.jobs,
        arms=part)
    result, = _recorded(ctx, [preset])
    recorded = {r['method'] for r in result['records']}
    if ablations:
        shown = recorded & set(ABLATION_OF)
        shown |= {PRIORS[a] for a in shown} | {ABLATION_OF[a] for a in shown}
    else:
        shown = recorded - set(ABLATION_OF)
    return dict(
        result, records=[r for r in result['records'] if r['method'] in shown])


def run_detection_section(ctx: SectionContext) -> str:
    from projects.evidence.detection import MAIN_ARMS
    from projects.evidence.detection_report import (plot_detection,
                                                    render_detection)
    result = _main_part(ctx, MAIN_ARMS, ablations=False)
    return render_detection(result, plot_detection(result, ctx.fig_dir),
                            ctx.fig_rel)


def run_detection_variants_section(ctx: SectionContext) -> str:
    from projects.evidence.detection import ABLATION_OF, VARIANT_ARMS
    from projects.evidence.detection_report import (plot_detection,
                                                    render_detection)
    result = _main_part(ctx, VARIANT_ARMS, ablations=True)
    if not any(r['method'] in ABLATION_OF for r in result['records']):
        return ('Not run yet: `python tools/reproduce_evidence.py '
                '--sections detection_variants` trains them.\n')
    return render_detection(
        result, plot_detection(result, ctx.fig_dir, 'detection_variants'),
        ctx.fig_rel)


def setting_section(name: str) -> Callable[[SectionContext], str]:
    """The section of another data setting (:data:`SETTINGS`)."""

    def run(ctx: SectionContext) -> str:
        from projects.evidence.detection import SETTING_LABELS, setting_preset
        from projects.evidence.detection_report import render_detection
        preset = setting_preset(
            ctx.quick,
            name,
            ctx.num_seeds,
            work_dir=DETECTION_WORK,
            jobs=ctx.jobs)
        if ctx.from_results and name not in detection_store(ctx.quick).groups:
            return (f'Not run yet: `python tools/reproduce_evidence.py '
                    f'--sections detection_{name}` trains its '
                    f'{len(preset.arms) * len(preset.seeds)} runs (recorded '
                    'as they finish).\n')
        result, = _recorded(ctx, [preset])
        return render_detection(
            result, [],
            ctx.fig_rel,
            title=f'Setting {name}: {SETTING_LABELS[name]}')

    return run


def run_detection_summary_section(ctx: SectionContext) -> str:
    """Across the settings: difficulty against its prior, the default rule,
    the README's table. Renders recorded runs only (trains nothing)."""
    from projects.evidence.detection import SETTINGS
    from projects.evidence.detection_report import (render_across,
                                                    render_which_sampler)
    store = detection_store(ctx.quick)
    results = [store.result(n) for n in SETTINGS if n in store.groups]
    if not results:
        raise SystemExit(f'no recorded detection runs in {store.path}; run '
                         'the detection sections first')
    starts = [r['started'] for r in results]
    ctx.provenance = (datetime.fromtimestamp(min(starts), tz=timezone.utc),
                      sum(r['seconds'] for r in results),
                      results[starts.index(min(starts))]['command'])
    waiting = [n for n in SETTINGS if n not in store.groups]
    body = render_across(results)
    if waiting:
        body += (f'\nNot run yet: {", ".join(waiting)} (`python '
                 'tools/reproduce_evidence.py --sections ' +
                 ','.join(f'detection_{n}' for n in waiting) + '`).\n')
    if not ctx.quick:
        ctx.readme['detection'] = render_which_sampler(results)
    return body


def run_demo_section(ctx: SectionContext) -> str:
    from projects.evidence.demo import (render_demo, render_demo_readme,
                                        run_demo)
    seeds = list(range(ctx.num_seeds or (1 if ctx.quick else 3)))
    result = run_demo(seeds,
                      osp.join(REPO_ROOT, 'work_dirs', 'evidence', 'demo'))
    if not ctx.quick:  # the README quotes the full run only
        ctx.readme['demo'] = render_demo_readme(result)
    return render_demo(result)


#: The sections, in document order. Extension point: append here.
SECTIONS: List[Section] = [
    Section('digits', 'Long-tailed digits (the paper\'s long-tailed MNIST)',
            run_digits_section),
    Section('tabular', 'Tabular sets, logistic regression (the paper\'s '
            'UCI table)', run_tabular_section),
    Section('detection_curve', 'Detection: how long to train (convergence '
            'curve)', run_detection_curve_section),
    Section(
        'detection', 'Detection re-samplers on synthetic long-tailed '
        'LVIS, main setting', run_detection_section),
    Section('detection_variants', 'Detection, main setting: variants of '
            'difficulty × RFS', run_detection_variants_section),
    Section('detection_harder', 'Detection: the harder setting',
            setting_section('harder')),
    Section('detection_steeper', 'Detection: the steeper setting',
            setting_section('steeper')),
    Section('detection_summary', 'Detection across the settings, and the '
            'default rule', run_detection_summary_section),
    Section('demo', 'The README demo over seeds', run_demo_section),
]


def parse_args() -> argparse.Namespace:
    names = [s.name for s in SECTIONS]
    parser = argparse.ArgumentParser(
        description='Run the evidence experiments, write docs/results.md')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='fewer seeds and epochs (a few minutes on 2 cores)')
    parser.add_argument(
        '--sections',
        default=','.join(names),
        help=f'comma-separated subset of {names} (default: all)')
    parser.add_argument(
        '--seeds',
        type=int,
        default=None,
        help='number of seeds (0..N-1), overriding each preset')
    parser.add_argument(
        '--out',
        default=osp.join(REPO_ROOT, 'docs', 'results.md'),
        help='markdown file to write (default: docs/results.md)')
    parser.add_argument(
        '--fig-dir',
        default=None,
        help='figure folder (default: figures/ next to --out)')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch CPU threads (default: 1, for shared machines)')
    parser.add_argument(
        '--from-results',
        action='store_true',
        help='detection: render the blocks from the recorded runs '
        '(docs/results/detection.json; --quick: the work dir\'s) without '
        'training')
    parser.add_argument(
        '--arms',
        default=None,
        help='detection: comma-separated arms to train instead of each '
        'section\'s own (any arm of projects/evidence/detection.ARMS, '
        'e.g. irfs,difficulty_irfs into the main setting; the recorded '
        'runs of the others stay in the tables)')
    parser.add_argument(
        '--jobs',
        type=int,
        default=None,
        help='detection runs trained at once, each in its own process '
        'with 1 torch thread (default: the usable cores)')
    args = parser.parse_args()
    if args.jobs is None:
        args.jobs = usable_cores()
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    chosen = [s.strip() for s in args.sections.split(',') if s.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown or not chosen:
        parser.error(f'--sections: unknown {unknown}, choose from {names}')
    args.sections = chosen
    if args.arms is not None:
        from projects.evidence.detection import ARMS
        args.arms = tuple(a.strip() for a in args.arms.split(',') if a.strip())
        bad = sorted(set(args.arms) - set(ARMS))
        if bad or not args.arms:
            parser.error(f'--arms: unknown {bad}, choose from {list(ARMS)}')
    return args


def usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform's as fallback)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> Dict[str, str]:
    """Versions of the packages the experiments use."""
    import matplotlib
    import sklearn

    from mmdiff.version import __version__
    return {
        'python': platform.python_version(),
        'torch': torch.__version__,
        'numpy': np.__version__,
        'scikit-learn': sklearn.__version__,
        'matplotlib': matplotlib.__version__,
        'mmdiff': __version__,
    }


def run_header(command: str, seconds: float, started: datetime) -> str:
    """The provenance lines at the top of a section block."""
    cores = usable_cores()
    vers = ', '.join(f'{k} {v}' for k, v in versions().items())
    return '\n'.join([
        f'- Command: `{command}`',
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}; took "
        f'{seconds:.0f} s',
        f'- Machine: {cpu_model()}, {cores} usable cores '
        f'({os.cpu_count()} logical), torch threads of the harness '
        f'{torch.get_num_threads()}, {platform.platform()}',
        f'- Versions: {vers}',
    ])


INTRO = (
    'The blocks between `<!-- section: NAME begin/end -->` markers are '
    'written by `tools/reproduce_evidence.py`: each says the command, '
    'machine, date, versions and wall time of the run that produced it, '
    'and every number in it comes from that run. Re-running a section '
    'replaces its block only. The text outside the blocks (the '
    'conclusions) is written by people from the tables. Accuracies are in '
    '%; "mean ± std" is over seeds (sample std).')


def merge(existing: str, blocks: Dict[str, str]) -> str:
    """Replace section blocks in place; keep all text outside them.

    Blocks the file does not have yet are appended in :data:`SECTIONS`
    order; a new file starts with the title and :data:`INTRO`.

    Args:
        existing (str): The current markdown ('' if none).
        blocks (dict[str, str]): Name -> new block content.

    Returns:
        str: The new markdown.
    """

    def block(name: str) -> str:
        return '\n'.join([
            BEGIN.format(name), blocks[name].rstrip('\n'),
            END.format(name), ''
        ])

    present = {m.group(1) for m in BLOCK_RE.finditer(existing)}
    out = BLOCK_RE.sub(
        lambda m: block(m.group(1))
        if m.group(1) in blocks else m.group(0), existing)
    if not out.strip():
        out = '\n'.join([TITLE, '', INTRO, ''])
    order = [s.name for s in SECTIONS]
    new = [n for n in order if n in blocks and n not in present]
    new += sorted(n for n in blocks if n not in present and n not in order)
    for name in new:
        out = out.rstrip('\n') + '\n\n' + block(name)
    return out


def update_readme(path: str, blocks: Dict[str, str]) -> List[str]:
    """Replace ``<!-- results: NAME begin/end -->`` blocks of the README.

    Returns:
        list[str]: Names whose markers the README lacks (nothing written
        for them).
    """
    with open(path) as f:
        text = f.read()
    missing = []
    for name, body in blocks.items():
        pattern = re.compile(
            f'(<!-- results: {re.escape(name)} begin -->\n).*?'
            f'(<!-- results: {re.escape(name)} end -->)', re.S)
        if not pattern.search(text):
            missing.append(name)
            continue
        text = pattern.sub(
            lambda m: m.group(1) + body.rstrip('\n') + '\n' + m.group(2), text)
    with open(path, 'w') as f:
        f.write(text)
    return missing


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.quick and not args.from_results and osp.exists(quick_results()):
        os.remove(quick_results())  # --quick measures from scratch every time
    out = osp.abspath(args.out)
    fig_dir = osp.abspath(
        args.fig_dir or osp.join(osp.dirname(out), 'figures'))
    fig_rel = osp.relpath(fig_dir, osp.dirname(out))
    os.makedirs(fig_dir, exist_ok=True)
    command = 'python ' + ' '.join(
        [osp.relpath(osp.abspath(sys.argv[0]), REPO_ROOT), *sys.argv[1:]])
    blocks = {}
    readme: Dict[str, str] = {}
    total = time.perf_counter()
    for section in SECTIONS:
        if section.name not in args.sections:
            continue
        started = datetime.now(timezone.utc)
        tic = time.perf_counter()
        print(f'[{section.name}] running ...', flush=True)
        ctx = SectionContext(
            args.quick,
            args.seeds,
            fig_dir,
            fig_rel,
            args.jobs,
            from_results=args.from_results,
            arms=args.arms)
        body = section.run(ctx)
        readme.update(ctx.readme)
        seconds = time.perf_counter() - tic
        print(f'[{section.name}] done in {seconds:.0f} s', flush=True)
        mode = 'quick' if args.quick else 'full'
        header = run_header(command, seconds, started)
        if ctx.provenance is not None:  # runs recorded over sessions
            run_started, run_seconds, run_args = ctx.provenance
            header = run_header(
                f'python tools/reproduce_evidence.py {run_args}', run_seconds,
                run_started)
            if args.from_results:
                header += (f'\n- Rendered from the recorded runs by '
                           f'`{command}`')
        blocks[section.name] = '\n'.join(
            [f'## {section.title}: {mode} run', '', header, '', body])
    existing = ''
    if osp.exists(out):
        with open(out) as f:
            existing = f.read()
    with open(out, 'w') as f:
        f.write(merge(existing, blocks))
    print(f'wrote {out} in {time.perf_counter() - total:.0f} s')
    if readme:
        missing = update_readme(osp.join(REPO_ROOT, 'README.md'), readme)
        for name in missing:
            print(f'README.md has no <!-- results: {name} begin/end --> '
                  'markers; its figure was not written there')


if __name__ == '__main__':
    main()
