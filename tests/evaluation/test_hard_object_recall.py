"""HardVariantRecall and objects_found on hand-made predictions."""
import json
import math

import numpy as np
import pytest
import torch

from mmdiff.evaluation import HardVariantRecall, objects_found

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
    # Top-1 and any-detection recall agree here (see the next test).
    assert out == {
        'hard_variant/recall_hard': 1.0,
        'hard_variant/recall_normal': pytest.approx(1 / 3),
        'hard_variant/recall_hard_any': 1.0,
        'hard_variant/recall_normal_any': pytest.approx(1 / 3),
        'hard_variant/num_hard': 2,
        'hard_variant/num_normal': 3,
    }


def test_top1_recall_misses_a_look_alike(tiny_ann_file):
    # Ann 1 (a hard variant of label 0) is taken for label 1 at 0.9, with
    # a lower-scored right guess: found by any detection, missed by top-1.
    metric = HardVariantRecall(ann_file=tiny_ann_file)
    metric.process({}, [
        _sample(1, [([0, 0, 10, 10], 1, 0.9), ([0, 0, 10, 10], 0, 0.3),
                    ([20, 0, 30, 10], 0, 0.8)])
    ])
    out = metric.compute_metrics(metric.results)
    assert out['recall_hard_any'] == 1.0 and out['recall_hard'] == 0.0
    assert out['recall_normal'] == out['recall_normal_any'] == 1.0
    gt = np.array([[0, 0, 10, 10]], dtype=float)
    dets = np.array([[0, 0, 10, 10], [1, 1, 10, 10]], dtype=float)
    for scores, expected in (([0.9, 0.3], False), ([0.3, 0.9], True)):
        found = objects_found(
            gt,
            np.array([0]),
            dets,
            np.array(scores),
            np.array([1, 0]),
            0.5,
            0.05,
            top1=True)
        assert found.tolist() == [expected]


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
        recall_hard=0.0,
        recall_normal=0.0,
        recall_hard_any=0.0,
        recall_normal_any=0.0,
        num_hard=1,
        num_normal=1)
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
