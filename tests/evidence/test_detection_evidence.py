"""Tests of projects/evidence/detection (the detection evidence section).

The fixed-length class-aware sampler, the per-arm configs, the report on a
made-up result, and micro end-to-end runs of the section through
``tools/reproduce_evidence.py`` (slow). The hard-variant recall is tested
in tests/evaluation.
"""
import importlib.util
import json
import os.path as osp
from collections import Counter

import numpy as np
import pytest

from projects.evidence import detection
from projects.evidence.detection import (ARM_LABELS, ARMS, FULL_ARMS, PRIORS,
                                         DetectionPreset,
                                         FixedLengthClassAwareSampler,
                                         build_detection_cfg,
                                         detection_presets, run_detection)
from projects.evidence.detection_report import plot_detection, render_detection
from tests.conftest import TINY_SYNTHETIC

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# ----------------------------------------------------------------------
# sampler and configs


class FakeDetDataset:
    """24 images of class 0, 5 of class 1, 1 of class 2."""
    metainfo = dict(classes=('a', 'b', 'c'))
    labels = [0] * 24 + [1] * 5 + [2]

    def __len__(self) -> int:
        return len(self.labels)

    def get_cat_ids(self, idx: int) -> list:
        return [self.labels[idx]]


def test_fixed_length_class_aware_sampler():
    dataset = FakeDetDataset()
    sampler = FixedLengthClassAwareSampler(
        dataset, seed=3, images_per_epoch=12)
    indices = list(sampler)
    assert len(sampler) == len(indices) == 12
    # mmdet cycles the classes: 12 draws of 3 classes = 4 of each.
    assert Counter(dataset.labels[i] for i in indices) == {0: 4, 1: 4, 2: 4}
    assert list(sampler) == indices
    sampler.set_epoch(1)
    assert len(list(sampler)) == 12
    assert len(FixedLengthClassAwareSampler(dataset, seed=3)) == 30
    with pytest.raises(ValueError, match='images_per_epoch'):
        FixedLengthClassAwareSampler(dataset, images_per_epoch=0)


def test_build_detection_cfg_per_arm(tmp_path):
    preset = DetectionPreset(
        seeds=[0], epochs=3, images_per_epoch=10, work_dir=str(tmp_path))
    assert preset.iterations == 3 * 3
    expected = {
        'uniform': ('DifficultyClassAwareSampler', 'uniform', None),
        'rfs': ('DifficultyClassAwareSampler', 'repeat_factor', None),
        'irfs': ('DifficultyClassAwareSampler', 'instance_repeat_factor',
                 None),
        'difficulty_irfs': ('DifficultyClassAwareSampler',
                            'instance_repeat_factor', {}),
        'class_aware': ('FixedLengthClassAwareSampler', None, None),
        'difficulty': ('DifficultyClassAwareSampler', 'paper', {}),
        'difficulty_rfs': ('DifficultyClassAwareSampler', 'repeat_factor', {}),
        'difficulty_class_aware': ('DifficultyClassAwareSampler',
                                   'class_aware', {}),
        'difficulty_rfs_class_mean':
        ('DifficultyClassAwareSampler', 'repeat_factor',
         dict(unseen='class_mean')),
        'difficulty_rfs_skip_first':
        ('DifficultyClassAwareSampler', 'repeat_factor',
         dict(first_term='skip')),
        'difficulty_rfs_eval_pass':
        ('DifficultyClassAwareSampler', 'repeat_factor',
         dict(mode='eval_pass', eval_pass=dict(interval=2, num_workers=0))),
        'difficulty_rfs_c4': ('DifficultyClassAwareSampler', 'repeat_factor',
                              dict(c=4.0)),
        'difficulty_rfs_max_beta3': ('DifficultyClassAwareSampler',
                                     'repeat_factor', dict(reduce='max')),
        'difficulty_max_t3': ('DifficultyClassAwareSampler', 'paper',
                              dict(reduce='max')),
        'difficulty_rfs_class_norm':
        ('DifficultyClassAwareSampler', 'repeat_factor',
         dict(normalize='class')),
        'difficulty_rfs_eval_pass1':
        ('DifficultyClassAwareSampler', 'repeat_factor',
         dict(mode='eval_pass', eval_pass=dict(interval=1, num_workers=0))),
        'difficulty_rfs_c025': ('DifficultyClassAwareSampler', 'repeat_factor',
                                dict(c=0.25)),
    }
    assert set(expected) == set(ARMS) == set(ARM_LABELS)
    # Every hook arm is compared with a hook-free arm of the same sampler.
    for arm, prior in PRIORS.items():
        assert ARMS[prior][1] is None and ARMS[arm][1] is not None
    for arm, (kind, scheme, hook) in expected.items():
        cfg = build_detection_cfg(preset, arm, 7, str(tmp_path / arm))
        sampler = cfg.train_dataloader.sampler
        assert sampler.type == kind and sampler.images_per_epoch == 10
        assert sampler.get('scheme') == scheme
        assert sampler.get('beta',
                           1.0) == (3.0 if arm.endswith('beta3') else 1.0)
        assert sampler.get('temperature',
                           1.0) == (1 / 3 if arm.endswith('t3') else 1.0)
        hooks = cfg.custom_hooks
        assert [h.type
                for h in hooks] == ([] if hook is None else ['DifficultyHook'])
        for key, value in (hook or {}).items():
            assert hooks[0][key] == value
        assert cfg.train_cfg.max_epochs == 3
        assert cfg.train_cfg.val_begin > 3  # evaluated once, after training
        assert cfg.param_scheduler[1].milestones == [1]  # the last 2 epochs
        assert cfg.randomness.seed == 7
        assert cfg.default_hooks.checkpoint is None
        assert cfg.model.roi_head.mask_head is None  # boxes only
        assert [e.type for e in cfg.val_evaluator
                ] == ['LVISMetric', 'HardVariantRecall']
    with pytest.raises(ValueError, match='arm'):
        build_detection_cfg(preset, 'focal', 0, str(tmp_path))


def test_presets():
    quick, full = detection_presets(True), detection_presets(False)
    assert len(quick.seeds) == 1 and len(full.seeds) == 5
    assert set(full.arms) == set(FULL_ARMS) and set(FULL_ARMS) <= set(ARMS)
    for arms in (full.arms,
                 detection.SETTING_ARMS):  # every arm meets its prior
        assert {PRIORS[a] for a in arms if a in PRIORS} <= set(arms)
    assert quick.iterations < full.iterations == detection.BUDGET_EPOCHS * 75
    assert full.synthetic == detection.SETTINGS[
        'main'] and full.eval_every is None
    assert detection_presets(False, num_seeds=3).seeds == [0, 1, 2]
    assert quick.jobs == 1 and detection_presets(True, jobs=3).jobs == 3
    curve = detection.curve_preset(False)
    assert curve.name == 'curve' and curve.synthetic == detection.SETTINGS[
        'main']
    assert curve.iterations > full.iterations and curve.eval_every >= 1
    others = [
        detection.setting_preset(False, n) for n in detection.SETTINGS
        if n != 'main'
    ]
    assert [p.name for p in others] == ['harder', 'steeper']
    for preset in others:  # the same budget, another data setting
        assert preset.iterations == full.iterations
        assert preset.arms == detection.SETTING_ARMS
        assert preset.seeds == [0, 1, 2]
        assert preset.data_dir != full.data_dir
    with pytest.raises(ValueError, match='other settings'):
        detection.setting_preset(False, 'main')
    names = {s.name for s in load_tool().SECTIONS}
    assert {f'detection_{n}'
            for n in detection.SETTINGS if n != 'main'} <= names
    with pytest.raises(ValueError, match='arms'):
        DetectionPreset(seeds=[0], epochs=1, images_per_epoch=1, arms=())
    with pytest.raises(ValueError, match='jobs must be >= 1'):
        DetectionPreset(seeds=[0], epochs=1, images_per_epoch=1, jobs=0)


# ----------------------------------------------------------------------
# report


def fake_result() -> dict:
    preset = DetectionPreset(seeds=[0, 1], epochs=2, images_per_epoch=8)
    records = []
    rng = np.random.default_rng(0)
    for seed in (0, 1):
        for arm in ARMS:
            rec = dict(
                method=arm,
                seed=seed,
                iterations=4,
                train_seconds=8.0,
                eval_seconds=5.0,
                num_hard=28,
                num_normal=45,
                collapsed=False)
            for key in ('AP', 'AP50', 'APr', 'APc', 'APf', 'recall_hard',
                        'recall_normal'):
                rec[key] = float(rng.uniform(0, 10))
            if arm != 'class_aware':
                rec.update(share_hard_images=15.0, mass_hard_images=20.0)
            if ARMS[arm][1] is not None:
                rec.update(lift_hard=1.3, lift_r=0.9, lift_c=1.0, lift_f=1.1)
            if ARMS[arm][1] is not None:
                rec.update(
                    d_hard=1.2,
                    d_normal=0.9,
                    observed=95.0,
                    d_hard_by_epoch=[1.0, 1.2],
                    d_normal_by_epoch=[0.8, 0.9],
                    d_other_by_epoch=[0.5, 0.6])
            records.append(rec)
    from dataclasses import asdict
    return dict(
        records=records,
        preset=asdict(preset),
        iterations=4,
        data=dict(
            num_images=dict(train=300, val=80),
            num_instances=dict(train=785, val=209),
            frequency=['f'] * 7 + ['c'] * 7 + ['r'] * 6,
            hard_variant_classes=['x'] * 7),
        versions=dict(mmdet='3.3.0'),
        num_hard_val=201,
        num_normal_val=300,
        seconds=100.0)


def test_render_and_plot(tmp_path):
    result = fake_result()
    figures = plot_detection(result, str(tmp_path))
    assert len(figures) == 2
    for name, _ in figures:
        assert (tmp_path / name).stat().st_size > 10_000
    text = render_detection(result, figures, 'figures')
    header = ('| arm | AP | AP50 | APr | APc | APf | hard recall '
              '| normal recall |')
    assert header in text
    for heading in ('#### Setting', '#### Paired difference to the prior',
                    '#### What the difficulty signal did', '<details>'):
        assert heading in text
    # Tables and figures only: the conclusions are written by people.
    assert 'Reading' not in text
    assert f'![{figures[0][1]}](figures/{figures[0][0]})' in text
    assert '**4 iterations for every run**' in text
    assert 'collapsed runs (AP < 1): 0 of' in text
    # 95 % intervals of the paired differences (two seeds: finite).
    assert text.count(' [') >= len(PRIORS)
    # One row per arm in the main table, two per arm in the per-seed one.
    for arm in ARMS:
        hook = ARMS[arm][1] is not None
        assert text.count(f'| {ARM_LABELS[arm]} | ') == 1 + 2 + hook
    assert '| lift hard | lift r | lift c | lift f |' in text
    assert '200 validation images with 201 hard variants' not in text
    assert 'with 201 hard variants and 300 normal objects' in text


def test_plateau_iteration():
    from projects.evidence.detection_report import plateau_iteration

    def points(aps):
        return [dict(iteration=100 * (i + 1), AP=a) for i, a in enumerate(aps)]

    # 400: AP(400) / AP(300) = 1.25; 800: 40 / AP(600) = 40 / 38 < 1.1.
    curve = points([5, 20, 24, 30, 34, 38, 39, 40, 55])
    found, gains = plateau_iteration(curve, constant_until=800)
    assert found == 800
    assert len(gains) == 8 and np.isnan(gains[0])  # 75 < the first point
    assert gains[3] == pytest.approx(30 / 24 - 1)
    # AP at 3/4 of 500 = 375: interpolated between 300 and 400.
    assert gains[4] == pytest.approx(34 / (24 + 0.75 * 6) - 1)
    # The decay's jump (iteration 900) is not used; no plateau before it.
    assert plateau_iteration(points([5, 10, 20, 40]), 400)[0] is None


def across_results(diff_aprs, diff_ap=0.0):
    """Settings where a variant beats the default on APr by diff_aprs (and
    on AP by diff_ap), with seed-to-seed noise in the differences."""
    results = []
    noise = (0.3, -0.2, 0.1)
    for name, diff in zip(detection.SETTINGS, diff_aprs):
        records = []
        for seed in range(3):
            for arm, apr, ap in (('rfs', 10.0, 30.0), ('difficulty_rfs', 11.0,
                                                       30.0),
                                 ('difficulty_rfs_class_norm', 11.0 + diff,
                                  30.0 + diff_ap)):
                jitter = noise[seed] * (arm != 'rfs')
                records.append(
                    dict(
                        method=arm,
                        seed=seed,
                        AP=ap + seed + jitter * (arm != 'difficulty_rfs'),
                        APr=apr + jitter,
                        recall_hard=50.0,
                        recall_normal=80.0))
        results.append(
            dict(preset=dict(name=name), iterations=1200, records=records))
    return results


def test_default_rule():
    from projects.evidence.detection_report import (default_rule,
                                                    render_across,
                                                    render_which_sampler)
    rule = default_rule(across_results([2.0, 2.0, 0.0]))
    assert rule['difficulty_rfs_class_norm'] == dict(
        measured=list(detection.SETTINGS),
        wins=['main', 'harder'],
        losses=[],
        replaces=True)
    assert not default_rule(across_results([
        2.0, 0.0, 0.0
    ]))['difficulty_rfs_class_norm']['replaces']  # one setting is not enough
    # A loss of AP with an interval below zero in one setting vetoes it.
    vetoed = default_rule(across_results([2.0, 2.0, 0.0], diff_ap=-1.0))
    assert vetoed['difficulty_rfs_class_norm']['losses'] == list(
        detection.SETTINGS)
    assert not vetoed['difficulty_rfs_class_norm']['replaces']
    # One setting only: the rule cannot be met, and the table says so.
    text = render_across(across_results([2.0]))
    assert 'cannot meet the rule yet: measured in 1 setting' in text
    text = render_across(across_results([2.0, 2.0, 0.0]))
    assert 'replaces the default' in text
    table = render_which_sampler(across_results([0.0, 0.0, 0.0]))
    assert table.count('| main: ') == 1
    assert 'gain shown (APr)' in table  # difficulty x RFS: APr +1 every seed
    assert 'the default stays difficulty × RFS' in table


def test_run_keys_and_store(tmp_path):
    from projects.evidence.detection_store import ResultStore, run_key
    preset = DetectionPreset(seeds=[0], epochs=3, images_per_epoch=10)
    key = run_key(preset, 'difficulty_rfs', 0)
    assert key == run_key(
        DetectionPreset(
            seeds=[0, 1, 2],
            epochs=3,
            images_per_epoch=10,
            jobs=4,
            work_dir=str(tmp_path)), 'difficulty_rfs', 0)
    others = {
        run_key(preset, 'rfs', 0),
        run_key(preset, 'difficulty_rfs', 1),
        run_key(
            DetectionPreset(seeds=[0], epochs=4, images_per_epoch=10),
            'difficulty_rfs', 0),
        run_key(
            DetectionPreset(
                seeds=[0],
                epochs=3,
                images_per_epoch=10,
                synthetic=dict(detection.SETTINGS['harder'])),
            'difficulty_rfs', 0)
    }
    assert key not in others and len(others) == 4
    store = ResultStore(str(tmp_path / 'r.json'))
    store.groups['main'] = dict(runs=[key, 'missing'], seconds=1.0)
    store.add(key, dict(method='difficulty_rfs', seed=0, AP=float('nan')))
    store.save()
    again = ResultStore(str(tmp_path / 'r.json'))
    assert again.get(key)['key'] == key and again.get('missing') is None
    assert [r['method']
            for r in again.result('main')['records']] == ['difficulty_rfs']
    with pytest.raises(KeyError, match='run its section first'):
        again.result('harder')
    # A record made with another recipe file is not reused.
    assert again.get(key, recipe='0' * 16) is None
    # Two records of one (arm, seed) in a group are refused, not paired.
    again.add('stale', dict(method='difficulty_rfs', seed=0))
    again.groups['main']['runs'].append('stale')
    with pytest.raises(ValueError, match='two records of difficulty_rfs'):
        again.records('main')
    (tmp_path / 'bad.json').write_text('{"format": 0}')
    with pytest.raises(ValueError, match='results format'):
        ResultStore(str(tmp_path / 'bad.json'))


# ----------------------------------------------------------------------
# the section end to end, micro setting


def load_tool():
    path = osp.join(REPO_ROOT, 'tools', 'reproduce_evidence.py')
    spec = importlib.util.spec_from_file_location('reproduce_evidence', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def micro_preset(data_root: str, work_dir: str, **kwargs) -> DetectionPreset:
    """Two epochs of 2-image batches, uniform and difficulty x RFS, tiny
    data."""
    kwargs = dict(
        dict(
            seeds=[0],
            epochs=2,
            images_per_epoch=2,
            batch_size=2,
            arms=('uniform', 'difficulty_rfs')), **kwargs)
    return DetectionPreset(
        warmup_iters=1,
        decay_epochs=1,
        synthetic=dict(TINY_SYNTHETIC),
        data_root=data_root,
        work_dir=work_dir,
        **kwargs)


@pytest.mark.slow
def test_detection_section_micro(tmp_path, monkeypatch, synthetic_lvis_root):
    import projects.evidence.detection as detection
    tool = load_tool()
    section = {s.name: s for s in tool.SECTIONS}['detection']
    micro = micro_preset(synthetic_lvis_root, str(tmp_path / 'work'))
    monkeypatch.setattr(detection, 'detection_presets',
                        lambda *args, **kwargs: micro)
    monkeypatch.setattr(tool, 'DETECTION_WORK', str(tmp_path / 'work'))
    fig_dir = tmp_path / 'figures'
    ctx = tool.SectionContext(
        quick=True, num_seeds=1, fig_dir=str(fig_dir), fig_rel='figures')
    text = section.run(ctx)
    assert '| arm | AP | AP50 | APr |' in text
    assert '| Uniform | ' in text and '| Difficulty × RFS | ' in text
    assert (fig_dir / 'detection_ap.png').stat().st_size > 0
    saved = json.loads((tmp_path / 'work' / 'quick.json').read_text())
    runs = [saved['runs'][k] for k in saved['groups']['main']['runs']]
    assert [r['iterations'] for r in runs] == [2, 2]
    dif = runs[1]
    assert dif['method'] == 'difficulty_rfs' and dif['d_hard'] > 0
    assert len(dif['d_hard_by_epoch']) == 2
    assert 0 <= dif['mass_hard_images'] <= 100
    # The lift compares D x RFS with RFS alone; 'uniform' has no D.
    assert dif['lift_hard'] > 0 and 'lift_hard' not in runs[0]
    assert ctx.provenance[2] == ' '.join(__import__('sys').argv[1:])
    # Started again, the section trains nothing: both runs are recorded.
    monkeypatch.setattr(
        detection, '_train_all',
        lambda preset, runs: pytest.fail(f'trained {runs} again'))
    assert section.run(ctx) == text


#: What a record may differ in between two runs of the same (method, seed).
TIMING_KEYS = ('train_seconds', 'eval_seconds')


@pytest.mark.slow
def test_parallel_runs_match_in_process_runs(tmp_path, synthetic_lvis_root):
    """``jobs`` 2 (spawned processes) gives the records of ``jobs`` 1."""

    def micro(jobs: int) -> DetectionPreset:
        return micro_preset(
            synthetic_lvis_root,
            str(tmp_path / f'jobs{jobs}'),
            seeds=[0, 1],
            images_per_epoch=4,
            arms=('difficulty', ),
            jobs=jobs)

    lines = []
    parallel = run_detection(micro(2), progress=lines.append)
    serial = run_detection(micro(1), progress=None)
    assert len(lines) == 2 and '(2/2; ' in lines[-1] and 'ETA' in lines[-1]
    order = [(r['method'], r['seed']) for r in parallel['records']]
    assert order == [('difficulty', 0), ('difficulty', 1)]

    def strip(rec: dict) -> str:
        # As JSON, so that NaN (APr without rare objects) equals NaN.
        kept = {k: v for k, v in rec.items() if k not in TIMING_KEYS}
        return json.dumps(kept, sort_keys=True)

    assert [strip(r) for r in parallel['records']
            ] == [strip(r) for r in serial['records']]
    # The seeds differ, so the records are not trivially equal.
    assert strip(serial['records'][0]) != strip(serial['records'][1])
    saved = json.loads((tmp_path / 'jobs2' / 'results.json').read_text())
    assert [(saved['runs'][k]['method'], saved['runs'][k]['seed'])
            for k in saved['groups']['main']['runs']] == order


# ----------------------------------------------------------------------
# the README demo over seeds
def test_demo_reads_the_runs_own_log(tmp_path):
    from projects.evidence.demo import (demo_command, read_final_metrics,
                                        render_demo, render_demo_readme)
    cmd = demo_command(2, 'work_dirs/x')
    assert cmd[1:4] == [
        'tools/train.py',
        'configs/demo/mask-rcnn_r18_synthetic-lvis_difficulty.py', '--work-dir'
    ]
    assert cmd[-2:] == ['--cfg-options', 'randomness.seed=2']
    with pytest.raises(FileNotFoundError, match='did the run finish'):
        read_final_metrics(str(tmp_path))
    log = tmp_path / '20261202_000000' / 'vis_data'
    log.mkdir(parents=True)
    metrics = {
        'lvis/bbox_AP': 0.5,
        'lvis/bbox_APr': 0.25,
        'lvis/bbox_APc': 0.4,
        'lvis/bbox_APf': 0.6,
        'lvis/segm_AP': 0.45
    }
    rows = [{
        'loss': 1.0,
        'step': 1
    },
            dict(metrics, step=12), {
                'lvis/bbox_AP': 0.55,
                **{
                    k: v
                    for k, v in metrics.items() if k != 'lvis/bbox_AP'
                }
            }]
    (log / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in rows))
    got = read_final_metrics(str(tmp_path))
    assert got['bbox AP'] == pytest.approx(55.0)  # the last one logged
    assert got['bbox APr'] == pytest.approx(25.0)
    result = dict(
        records=[
            dict(
                seed=s, seconds=60.0 * (s + 5), **dict(got, **{'bbox AP': a}))
            for s, a in zip([0, 1, 2], [40.0, 36.0, 44.0])
        ],
        commands=['python tools/train.py ...'] * 3)
    text = render_demo(result)
    assert '| median (range) | 40.0 (36.0-44.0) |' in text
    line = render_demo_readme(result)
    assert 'bbox AP 40.0 (36.0-44.0)' in line and '7.0 min' in line


DETECTION_SECTIONS = ('detection_curve', 'detection', 'detection_variants',
                      'detection_harder', 'detection_steeper',
                      'detection_summary')


def test_committed_detection_blocks_come_from_their_json(tmp_path):
    """Every detection block of docs/results.md, and the README's "Which
    sampler when" table, is exactly what the committed
    docs/results/detection.json renders (so the json can be rechecked
    without rerunning, and the tables cannot drift from it)."""
    tool = load_tool()
    sections = {s.name: s for s in tool.SECTIONS}
    with open(osp.join(REPO_ROOT, 'docs', 'results.md')) as f:
        blocks = dict(tool.BLOCK_RE.findall(f.read()))
    with open(osp.join(REPO_ROOT, 'README.md')) as f:
        readme = f.read()
    for name in DETECTION_SECTIONS:
        ctx = tool.SectionContext(
            quick=False,
            num_seeds=None,
            fig_dir=str(tmp_path),
            fig_rel='figures',
            from_results=True)
        body = sections[name].run(ctx)
        assert body.rstrip('\n') in blocks[name], name
        if name == 'detection_summary':
            table = ctx.readme['detection']
            assert (f'<!-- results: detection begin -->\n{table}\n'
                    '<!-- results: detection end -->') in readme
    store = tool.detection_store(False)
    assert store.records('main'), 'docs/results/detection.json has no runs'
