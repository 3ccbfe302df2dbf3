import math

import pytest
import torch
from mmengine.evaluator import Evaluator

from mmdiff.classification import (ClsDataSample, LongTailAccuracy,
                                   cifar_lt_counts)


def _sample(gt, pred, score=None):
    s = ClsDataSample().set_gt_label(gt).set_pred_label(pred)
    if score is not None:
        s.set_pred_score(torch.tensor(score))
    return s


def test_groups_and_accuracies_by_hand():
    # Classes: 0 many (500), 1 medium (100: not > 100), 2 medium (20),
    # 3 few (19).
    metric = LongTailAccuracy(train_class_counts=[500, 100, 20, 19])
    groups = {k: v.tolist() for k, v in metric.groups.items()}
    assert groups == dict(many=[0], medium=[1, 2], few=[3])
    # Class 0: 2/2 right; class 1: 1/2; class 2: 0/1; class 3: 1/4.
    pairs = [(0, 0), (0, 0), (1, 1), (1, 0), (2, 3), (3, 3), (3, 0), (3, 1),
             (3, 2)]
    evaluator = Evaluator(metric)
    evaluator.process([_sample(g, p) for g, p in pairs])
    out = evaluator.evaluate(len(pairs))
    assert out['accuracy/top1'] == pytest.approx(100 * 4 / 9)
    assert out['accuracy/many'] == pytest.approx(100.)
    # Mean of class accuracies (1/2 and 0), not of images (1/3).
    assert out['accuracy/medium'] == pytest.approx(25.)
    assert out['accuracy/few'] == pytest.approx(25.)


def test_empty_group_is_nan():
    metric = LongTailAccuracy(num_classes=10, imbalance_ratio=100)
    # CIFAR-10 at ratio 100: 5000 ... 139 many, 83 and 50 medium, no few.
    assert metric.train_class_counts.tolist() == \
        cifar_lt_counts(10, 5000, 100)
    metric.process(None, [_sample(9, 9).to_dict(), _sample(0, 1).to_dict()])
    out = metric.compute_metrics(metric.results)
    assert out['top1'] == 50.
    assert out['many'] == 0. and out['medium'] == 100.
    assert math.isnan(out['few'])


def test_cifar100_profile_and_n_max():
    metric = LongTailAccuracy(num_classes=100, imbalance_ratio=100)
    assert metric.train_class_counts.tolist() == \
        cifar_lt_counts(100, 500, 100)
    sizes = {k: len(v) for k, v in metric.groups.items()}
    assert sum(sizes.values()) == 100 and all(sizes.values())
    metric = LongTailAccuracy(num_classes=4, imbalance_ratio=10, n_max=200)
    assert metric.train_class_counts.tolist() == cifar_lt_counts(4, 200, 10)


def test_topk_uses_scores():
    metric = LongTailAccuracy(train_class_counts=[200, 50, 5], topk=(1, 2))
    samples = [
        _sample(0, 1, [.3, .6, .1]),
        _sample(2, 0, [.5, .1, .4]),
        _sample(1, 1, [.1, .8, .1]),
        _sample(2, 0, [.5, .3, .2]),
    ]
    metric.process(None, samples)
    out = metric.compute_metrics(metric.results)
    assert out['top1'] == 25. and out['top2'] == 75.
    with pytest.raises(KeyError):
        LongTailAccuracy(
            train_class_counts=[1, 1],
            topk=(2, )).process(None, [_sample(0, 0)])


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(num_classes=10),
    dict(train_class_counts=[1, 2], num_classes=2, imbalance_ratio=2),
    dict(train_class_counts=[]),
    dict(train_class_counts=[5], few_shot_thr=200),
    dict(train_class_counts=[5], topk=(0, )),
])
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        LongTailAccuracy(**kwargs)


def test_label_outside_counts_fails():
    metric = LongTailAccuracy(train_class_counts=[10, 10])
    metric.process(None, [_sample(2, 2)])
    with pytest.raises(ValueError, match='2 classes'):
        metric.compute_metrics(metric.results)
