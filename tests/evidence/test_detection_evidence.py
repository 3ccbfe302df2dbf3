"""Tests of mmdiff.evidence.detection (the detection evidence section).

Hand-computed recalls of :class:`HardVariantRecall` on a tiny annotation
file, the fixed-length class-aware sampler, the per-method configs, the
report on a made-up result, and one micro end-to-end run of the section
through ``tools/reproduce_evidence.py`` (slow).
"""
import importlib.util
import json
import math
import os.path as osp
from collections import Counter

import numpy as np
import pytest
import torch

from mmdiff.evidence.detection import (METHOD_LABELS, METHODS, DetectionPreset,
                                       FixedLengthClassAwareSampler,
                                       HardVariantRecall, build_detection_cfg,
                                       detection_presets, objects_found,
                                       plot_detection, render_detection,
                                       run_detection)
from tests.conftest import TINY_SYNTHETIC

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# ----------------------------------------------------------------------
# hard-variant recall on hand-made predictions


def _ann(ann_id: int, img: int, cat: int, box: list, hard: bool) -> dict:
    return dict(
        id=ann_id,
        image_id=img,
        category_id=cat,
        bbox=box,
        area=box[2] * box[3],
        mmdiff_hard_variant=hard)


@pytest.fixture
def tiny_ann_file(tmp_path) -> str:
    # Category ids 5, 7, 9 are labels 0, 1, 2 (file order, as mmdet).
    # Classes 5 and 7 have hard variants; class 9 has none, so its object
    # is not counted. Image 3 is never evaluated.
    anns = [
        _ann(1, 1, 5, [0, 0, 10, 10], True),  # found
        _ann(2, 1, 5, [20, 0, 10, 10], False),  # only a wrong-class det
        _ann(3, 2, 5, [0, 0, 10, 10], False),  # only a det at score 0.04
        _ann(4, 2, 7, [20, 20, 10, 10], True),  # IoU exactly 0.5: found
        _ann(5, 2, 7, [40, 0, 10, 10], False),  # score exactly 0.05: found
        _ann(6, 2, 9, [0, 30, 10, 10], False),  # class without hard ones
        _ann(7, 3, 7, [0, 0, 10, 10], True),  # image not evaluated
    ]
    data = dict(
        images=[dict(id=i, width=64, height=64) for i in (1, 2, 3)],
        annotations=anns,
        categories=[dict(id=c, name=f'c{c}') for c in (5, 7, 9)])
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(data))
    return str(path)


def _sample(img_id: int, dets: list) -> dict:
    """A data sample with ``(box x1y1x2y2, label, score)`` detections."""
    boxes = torch.tensor([d[0] for d in dets], dtype=torch.float32)
    return dict(
        img_id=img_id,
        pred_instances=dict(
            bboxes=boxes.reshape(-1, 4),
            labels=torch.tensor([d[1] for d in dets], dtype=torch.long),
            scores=torch.tensor([d[2] for d in dets])))


PREDICTIONS = [
    _sample(1, [([0, 0, 10, 10], 0, 0.9), ([20, 0, 30, 10], 1, 0.9)]),
    _sample(
        2,
        [
            ([0, 0, 10, 10], 0, 0.04),
            ([20, 20, 30, 25], 1, 0.5),  # inter 50 / union 100 with ann 4
            ([40, 0, 50, 4], 1, 0.9),  # IoU 0.4 with ann 5
            ([40, 0, 50, 10], 1, 0.05),
            ([0, 30, 10, 40], 2, 0.9),
        ]),
]


def test_hard_variant_recall_hand_made(tiny_ann_file):
    metric = HardVariantRecall(ann_file=tiny_ann_file)
    metric.process({}, PREDICTIONS)
    out = metric.evaluate(size=2)
    # Hard: anns 1 and 4 found (2 / 2). Normal: ann 5 of 2, 3, 5 (1 / 3).
    assert out == {
        'hard_variant/recall_hard': 1.0,
        'hard_variant/recall_normal': pytest.approx(1 / 3),
        'hard_variant/num_hard': 2,
        'hard_variant/num_normal': 3,
    }


@pytest.mark.parametrize(
    'kwargs, hard, normal',
    [
        (dict(score_thr=0.01), 1.0, 2 / 3),
        (dict(iou_thr=0.6), 0.5, 1 / 3),
        # Ann 4's detection drops out; ann 5's IoU-0.4 detection counts.
        (dict(iou_thr=0.4, score_thr=0.6), 0.5, 1 / 3),
    ])
def test_hard_variant_recall_thresholds(tiny_ann_file, kwargs, hard, normal):
    metric = HardVariantRecall(ann_file=tiny_ann_file, **kwargs)
    metric.process({}, PREDICTIONS)
    out = metric.compute_metrics(metric.results)
    assert out['recall_hard'] == pytest.approx(hard)
    assert out['recall_normal'] == pytest.approx(normal)


def test_hard_variant_recall_no_detections(tiny_ann_file):
    metric = HardVariantRecall(ann_file=tiny_ann_file)
    metric.process({}, [_sample(1, []), _sample(4, [])])
    out = metric.compute_metrics(metric.results)
    assert out == dict(
        recall_hard=0.0, recall_normal=0.0, num_hard=1, num_normal=1)
    metric.results = [metric.results[1]]  # image 4 has no objects
    assert math.isnan(metric.compute_metrics(metric.results)['recall_hard'])
    with pytest.raises(ValueError, match='iou_thr'):
        HardVariantRecall(ann_file=tiny_ann_file, iou_thr=0)


def test_objects_found_needs_class_and_overlap():
    gt = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], dtype=float)
    found = objects_found(gt, np.array([1, 1]), np.array([[0, 0, 10, 10]]),
                          np.array([0.9]), np.array([1]), 0.5, 0.05)
    np.testing.assert_array_equal(found, [True, False])
    found = objects_found(gt, np.array([0, 1]), np.array([[0, 0, 10, 10]]),
                          np.array([0.9]), np.array([1]), 0.5, 0.05)
    np.testing.assert_array_equal(found, [False, False])
    assert objects_found(gt, np.array([1, 1]), np.zeros((0, 4)), np.zeros(0),
                         np.zeros(0), 0.5, 0.05).tolist() == [False, False]


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
    sampler = FixedLengthClassAwareSampler(dataset, seed=3, num_samples=12)
    indices = list(sampler)
    assert len(sampler) == len(indices) == 12
    # mmdet cycles the classes: 12 draws of 3 classes = 4 of each.
    assert Counter(dataset.labels[i] for i in indices) == {0: 4, 1: 4, 2: 4}
    assert list(sampler) == indices
    sampler.set_epoch(1)
    assert len(list(sampler)) == 12
    assert len(FixedLengthClassAwareSampler(dataset, seed=3)) == 30
    with pytest.raises(ValueError, match='num_samples'):
        FixedLengthClassAwareSampler(dataset, num_samples=0)


def test_build_detection_cfg_per_method(tmp_path):
    preset = DetectionPreset(
        seeds=[0], epochs=3, images_per_epoch=10, work_dir=str(tmp_path))
    assert preset.iterations == 3 * 3
    expected = {
        'uniform': ('DifficultyClassAwareSampler', 'uniform', False),
        'rfs': ('DifficultyClassAwareSampler', 'repeat_factor', False),
        'class_aware': ('FixedLengthClassAwareSampler', None, False),
        'difficulty': ('DifficultyClassAwareSampler', 'paper', True),
        'difficulty_rfs':
        ('DifficultyClassAwareSampler', 'repeat_factor', True),
    }
    assert set(expected) == set(METHODS) == set(METHOD_LABELS)
    for method, (kind, scheme, hook) in expected.items():
        cfg = build_detection_cfg(preset, method, 7, str(tmp_path / method))
        sampler = cfg.train_dataloader.sampler
        assert sampler.type == kind and sampler.num_samples == 10
        assert sampler.get('scheme') == scheme
        assert [h.type for h in cfg.custom_hooks
                ] == (['DifficultyHook'] if hook else [])
        assert cfg.train_cfg.max_epochs == 3
        assert cfg.train_cfg.val_begin > 3  # evaluated once, after training
        assert cfg.param_scheduler[1].milestones == [int(0.75 * 9)]
        assert cfg.randomness.seed == 7
        assert cfg.default_hooks.checkpoint is None
        assert [e.type for e in cfg.val_evaluator
                ] == ['LVISMetric', 'HardVariantRecall']
    with pytest.raises(ValueError, match='method'):
        build_detection_cfg(preset, 'focal', 0, str(tmp_path))


def test_presets():
    quick, full = detection_presets(True), detection_presets(False)
    assert len(quick.seeds) == 1 and len(full.seeds) == 3
    assert quick.iterations < full.iterations
    assert detection_presets(False, num_seeds=5).seeds == [0, 1, 2, 3, 4]
    assert quick.jobs == 1 and detection_presets(True, jobs=3).jobs == 3
    with pytest.raises(ValueError, match='methods'):
        DetectionPreset(seeds=[0], epochs=1, images_per_epoch=1, methods=())
    with pytest.raises(ValueError, match='jobs must be >= 1'):
        DetectionPreset(seeds=[0], epochs=1, images_per_epoch=1, jobs=0)


# ----------------------------------------------------------------------
# report


def fake_result() -> dict:
    preset = DetectionPreset(seeds=[0, 1], epochs=2, images_per_epoch=8)
    records = []
    rng = np.random.default_rng(0)
    for seed in (0, 1):
        for method in METHODS:
            rec = dict(
                method=method,
                seed=seed,
                iterations=4,
                epochs=2,
                build_seconds=1.0,
                train_seconds=8.0,
                train_cpu_seconds=12.0,
                eval_seconds=5.0,
                eval_cpu_seconds=6.0,
                num_hard=28,
                num_normal=45,
                share_hard_images=15.0)
            for key in ('AP', 'AP50', 'APr', 'APc', 'APf', 'recall_hard',
                        'recall_normal'):
                rec[key] = float(rng.uniform(0, 10))
            if method != 'class_aware':
                rec['mass_hard_images'] = 20.0
            if method.startswith('difficulty'):
                rec.update(d_hard=1.2, d_normal=0.9, d_all=1.0)
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
            image_count=[1] * 20,
            hard_variant_classes=['x'] * 7,
            num_hard_variants=dict(train=49, val=28)),
        device='cpu',
        threads=2,
        versions=dict(mmdet='3.3.0'),
        seconds=100.0)


def test_render_and_plot(tmp_path):
    result = fake_result()
    figures = plot_detection(result, str(tmp_path))
    assert len(figures) == 1
    assert (tmp_path / figures[0][0]).stat().st_size > 0
    text = render_detection(result, figures, 'figures')
    header = ('| method | AP | AP50 | APr | APc | APf | hard-variant recall '
              '| normal recall (same classes) |')
    assert header in text
    for heading in ('### Setting', '### Paired difference to the prior',
                    '### What the samplers do', '<details>', '### Reading'):
        assert heading in text
    assert f'![{figures[0][1]}](figures/{figures[0][0]})' in text
    assert '**4 iterations per run for every method**' in text
    # One row per method in the main table, two per method per seed below.
    for method in METHODS:
        assert text.count(f'| {METHOD_LABELS[method]} | ') == 1 + 2 + (
            0 if method == 'class_aware' else 1)


# ----------------------------------------------------------------------
# the section end to end, micro setting


def load_tool():
    path = osp.join(REPO_ROOT, 'tools', 'reproduce_evidence.py')
    spec = importlib.util.spec_from_file_location('reproduce_evidence', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def micro_preset(data_root: str, work_dir: str, **kwargs) -> DetectionPreset:
    """Two epochs of 2-image batches, uniform and difficulty, tiny data."""
    kwargs = dict(
        dict(seeds=[0], epochs=2, images_per_epoch=2, batch_size=2), **kwargs)
    return DetectionPreset(
        warmup_iters=1,
        methods=('uniform', 'difficulty'),
        synthetic=dict(TINY_SYNTHETIC),
        data_root=data_root,
        work_dir=work_dir,
        **kwargs)


@pytest.mark.slow
def test_detection_section_micro(tmp_path, monkeypatch, synthetic_lvis_root):
    import mmdiff.evidence.detection as detection
    tool = load_tool()
    section = {s.name: s for s in tool.SECTIONS}['detection']
    micro = micro_preset(synthetic_lvis_root, str(tmp_path / 'work'))
    monkeypatch.setattr(detection, 'detection_presets',
                        lambda quick, num_seeds, work_dir, jobs: micro)
    fig_dir = tmp_path / 'figures'
    text = section.run(
        tool.SectionContext(
            quick=True, num_seeds=1, fig_dir=str(fig_dir), fig_rel='figures'))
    assert '| method | AP | AP50 | APr |' in text
    assert '| Uniform | ' in text and '| Difficulty, flat (w ∝ D) | ' in text
    assert (fig_dir / 'detection_ap.png').stat().st_size > 0
    result = json.loads((tmp_path / 'work' / 'results.json').read_text())
    assert [r['iterations'] for r in result['records']] == [2, 2]
    dif = result['records'][1]
    assert dif['method'] == 'difficulty' and dif['d_hard'] > 0
    assert 0 <= dif['mass_hard_images'] <= 100


#: What a record may differ in between two runs of the same (method, seed).
TIMING_KEYS = ('build_seconds', 'train_seconds', 'train_cpu_seconds',
               'eval_seconds', 'eval_cpu_seconds')


@pytest.mark.slow
def test_parallel_runs_match_in_process_runs(tmp_path, synthetic_lvis_root):
    """``jobs`` 2 (spawned processes) gives the records of ``jobs`` 1."""

    def micro(jobs: int) -> DetectionPreset:
        return micro_preset(
            synthetic_lvis_root,
            str(tmp_path / f'jobs{jobs}'),
            seeds=[0, 1],
            images_per_epoch=4,
            jobs=jobs)

    lines = []
    parallel = run_detection(micro(2), progress=lines.append)
    serial = run_detection(micro(1), progress=None)
    assert len(lines) == 4 and lines[-1].endswith('(4/4)')
    order = [(r['method'], r['seed']) for r in parallel['records']]
    assert order == [('uniform', 0), ('difficulty', 0), ('uniform', 1),
                     ('difficulty', 1)]

    def strip(rec: dict) -> str:
        # As JSON, so that NaN (APr without rare objects) equals NaN.
        kept = {k: v for k, v in rec.items() if k not in TIMING_KEYS}
        return json.dumps(kept, sort_keys=True)

    assert [strip(r) for r in parallel['records']
            ] == [strip(r) for r in serial['records']]
    # The seeds differ, so the records are not trivially equal.
    assert strip(serial['records'][1]) != strip(serial['records'][3])
    saved = json.loads((tmp_path / 'jobs2' / 'results.json').read_text())
    assert [(r['method'], r['seed']) for r in saved['records']] == order
