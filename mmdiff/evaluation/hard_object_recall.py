"""Recall on the hard variants of the synthetic LVIS set.

The synthetic data (:mod:`mmdiff.datasets.synthetic.make`) marks a rare,
confusable sub-class of every frequent class as *hard variants*
(annotation key ``"mmdiff_hard_variant": true``). :class:`HardVariantRecall`
reports recall on them against the normal objects of the same classes: the
hard-object metric of the detection evidence, usable from any config.
"""
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.fileio import load

from mmdiff.datasets.synthetic.write import HARD_KEY

__all__ = ['HardVariantRecall', 'objects_found', 'load_hard_variant_gts']


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(N, 4)`` and ``(M, 4)`` x1y1x2y2 boxes (mmdet: no +1)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, np.finfo(np.float64).eps)


def objects_found(gt_boxes: np.ndarray,
                  gt_labels: np.ndarray,
                  det_boxes: np.ndarray,
                  det_scores: np.ndarray,
                  det_labels: np.ndarray,
                  iou_thr: float,
                  score_thr: float,
                  top1: bool = False) -> np.ndarray:
    """Which GT objects a detection of their class covers.

    A GT object counts as found when a detection with score ``>=
    score_thr`` and the GT's label overlaps it with IoU ``>= iou_thr``;
    with ``top1``, the best-scoring of all detections that overlap it so
    must have the GT's label (a look-alike detected as the class it looks
    like is not found, even with a lower-scored guess of the right class).
    There is no one-to-one matching: on the synthetic data objects barely
    overlap, so one detection rarely covers two GTs.

    Args:
        gt_boxes (np.ndarray): ``(G, 4)`` x1y1x2y2.
        gt_labels (np.ndarray): ``(G,)`` 0-based labels.
        det_boxes (np.ndarray): ``(N, 4)`` x1y1x2y2.
        det_scores (np.ndarray): ``(N,)`` scores.
        det_labels (np.ndarray): ``(N,)`` 0-based labels.
        iou_thr (float): Minimum IoU.
        score_thr (float): Minimum score.
        top1 (bool): Require the best overlapping detection to be right.
            Defaults to False.

    Returns:
        np.ndarray: ``(G,)`` bool.
    """
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    keep = np.asarray(det_scores) >= score_thr
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)[keep]
    det_labels = np.asarray(det_labels)[keep]
    if gt_boxes.shape[0] == 0 or det_boxes.shape[0] == 0:
        return np.zeros(gt_boxes.shape[0], dtype=bool)
    same = np.asarray(gt_labels)[:, None] == det_labels[None, :]
    overlap = _box_iou(gt_boxes, det_boxes) >= iou_thr
    if not top1:
        return (overlap & same).any(1)
    scores = np.where(overlap, np.asarray(det_scores)[keep][None, :], -1.0)
    best = scores.argmax(1)
    return overlap.any(1) & same[np.arange(same.shape[0]), best]


def load_hard_variant_gts(ann_file: str,
                          hard_key: str = HARD_KEY) -> Dict[int, dict]:
    """GT objects of the classes that have hard variants, per image.

    Labels follow mmdet's LVIS convention: label ``i`` is the ``i``-th
    category of the file.

    Args:
        ann_file (str): LVIS-format annotation file.
        hard_key (str): Boolean annotation key of a hard variant.
            Defaults to :data:`HARD_KEY`.

    Returns:
        dict[int, dict]: Image id -> ``boxes`` ``(G, 4)`` x1y1x2y2,
        ``labels`` ``(G,)`` and ``hard`` ``(G,)`` bool, for the objects
        of every class with at least one hard-variant annotation.
    """
    data = load(ann_file)
    cat2label = {cat['id']: i for i, cat in enumerate(data['categories'])}
    anns = data['annotations']
    hard_cats = {a['category_id'] for a in anns if a.get(hard_key, False)}
    per_image: Dict[int, list] = defaultdict(list)
    for ann in anns:
        if ann['category_id'] in hard_cats:
            per_image[ann['image_id']].append(ann)
    out = {}
    for img_id, items in per_image.items():
        boxes = np.array([a['bbox'] for a in items], dtype=np.float64)
        boxes[:, 2:] += boxes[:, :2]
        out[int(img_id)] = dict(
            boxes=boxes,
            labels=np.array([cat2label[a['category_id']] for a in items]),
            hard=np.array([bool(a.get(hard_key, False)) for a in items]))
    return out


@METRICS.register_module()
class HardVariantRecall(BaseMetric):
    """Recall on planted hard variants vs normal objects of their classes.

    Over the images evaluated, every GT object of a class that has at least
    one hard-variant annotation (``"mmdiff_hard_variant": true``, the
    frequent classes of the synthetic data) is found or not by
    :func:`objects_found`: ``recall_*`` with ``top1`` (the best-scoring
    detection at IoU ``>= iou_thr`` has the object's class, score ``>=
    score_thr``: a look-alike taken for the class it looks like is
    missed), ``recall_*_any`` without (any such detection of its class).
    Recall is reported separately for the hard variants and for the normal
    objects of the same classes.

    Args:
        ann_file (str): The LVIS-format annotation file of the evaluated
            split (with the hard-variant key).
        iou_thr (float): Minimum IoU. Defaults to 0.5.
        score_thr (float): Minimum detection score. Defaults to 0.05.
        hard_key (str): Annotation key of a hard variant.
            Defaults to :data:`HARD_KEY`.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to None
            (``'hard_variant'``).
    """

    default_prefix: Optional[str] = 'hard_variant'

    def __init__(self,
                 ann_file: str,
                 iou_thr: float = 0.5,
                 score_thr: float = 0.05,
                 hard_key: str = HARD_KEY,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0 < iou_thr <= 1:
            raise ValueError(f'iou_thr must be in (0, 1], got {iou_thr}')
        if not 0 <= score_thr <= 1:
            raise ValueError(f'score_thr must be in [0, 1], got {score_thr}')
        self.ann_file = ann_file
        self.iou_thr = float(iou_thr)
        self.score_thr = float(score_thr)
        self.hard_key = hard_key

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep each image's id and detections (numpy)."""
        for sample in data_samples:
            pred = sample['pred_instances']
            self.results.append(
                dict(
                    img_id=int(sample['img_id']),
                    bboxes=pred['bboxes'].cpu().numpy(),
                    scores=pred['scores'].cpu().numpy(),
                    labels=pred['labels'].cpu().numpy()))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Recall (fraction, NaN without objects) and object counts.

        Returns:
            dict[str, float]: ``recall_hard``, ``recall_normal`` (top-1),
            ``recall_hard_any``, ``recall_normal_any``, ``num_hard``,
            ``num_normal``.
        """
        gts = load_hard_variant_gts(self.ann_file, self.hard_key)
        found: Dict[str, List[np.ndarray]] = {
            f'{kind}{suffix}': []
            for kind in ('hard', 'normal')
            for suffix in ('', '_any')
        }
        seen = set()
        for res in results:
            gt = gts.get(res['img_id'])
            if gt is None or res['img_id'] in seen:
                continue
            seen.add(res['img_id'])
            for suffix, top1 in (('', True), ('_any', False)):
                hit = objects_found(gt['boxes'], gt['labels'], res['bboxes'],
                                    res['scores'], res['labels'], self.iou_thr,
                                    self.score_thr, top1)
                found['hard' + suffix].append(hit[gt['hard']])
                found['normal' + suffix].append(hit[~gt['hard']])
        out: Dict[str, float] = {}
        for key, parts in found.items():
            flat = np.concatenate(parts) if parts else np.zeros(0, bool)
            out[f'recall_{key}'] = (
                float(flat.mean()) if flat.size else float('nan'))
            if not key.endswith('_any'):
                out[f'num_{key}'] = int(flat.size)
        return out
