"""Detection evidence: five re-samplers on the synthetic long-tailed LVIS.

The demo Mask R-CNN (``configs/demo/mask-rcnn_r18_synthetic-lvis_difficulty
.py``: ResNet-18, narrow heads, from scratch) is trained in-process with
mmengine's ``Runner`` on the synthetic LVIS-format data of
:mod:`mmdiff.datasets.synthetic_lvis`, once per method and seed, all at the
same number of iterations, and evaluated on its validation split with
mmdet's ``LVISMetric`` (bbox AP, APr, APc, APf) and
:class:`HardVariantRecall` (recall on the planted hard variants of the
frequent classes against the normal objects of the same classes).

Methods (:data:`METHODS`); every arm draws ``images_per_epoch`` images per
epoch, so every run has ``epochs * ceil(images_per_epoch / batch_size)``
iterations (the full preset's epochs are the 300 training images, as in
the demo; shorter epochs, as in the quick preset, let ``DifficultyHook``
update the difficulty as often within a smaller budget):

- ``'uniform'``: ``DifficultyClassAwareSampler`` scheme ``'uniform'``
  without the hook (uniform, with replacement).
- ``'rfs'``: scheme ``'repeat_factor'`` without the hook ("prior only"):
  probabilities proportional to the LVIS repeat factors (threshold
  ``rfs_thr``), i.e. repeat-factor sampling in expectation. mmengine's
  ``ClassBalancedDataset`` wrapper is not used because it lengthens the
  epoch (``ceil(r_i)`` copies of image ``i``).
- ``'class_aware'``: mmdet's ``ClassAwareSampler`` (``num_sample_class=1``)
  through :class:`FixedLengthClassAwareSampler`, which only sets its epoch
  length.
- ``'difficulty'``: scheme ``'paper'`` + ``DifficultyHook``: ``w ∝ D``
  (Yu et al., CVPR 2022), the first epoch uniform.
- ``'difficulty_rfs'``: scheme ``'repeat_factor'`` + ``DifficultyHook``:
  ``w ∝ r_i D_i``, the first epoch the RFS prior.

The method's arms and their priors share the seed, hence the initial
weights and, until the first difficulty update, the drawn images:
``'difficulty'`` vs ``'uniform'`` and ``'difficulty_rfs'`` vs ``'rfs'``
are paired comparisons.
"""
import gc
import json
import math
import multiprocessing
import os
import os.path as osp
import time
import uuid
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import (Any, Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import numpy as np
import torch
from mmdet.datasets.samplers import ClassAwareSampler
from mmdet.registry import DATA_SAMPLERS, METRICS
from mmengine.evaluator import BaseMetric
from mmengine.fileio import load

from mmdiff.datasets import ensure_synthetic_lvis, index_dataset
from mmdiff.hooks import DifficultyHook
from .training import format_mean_std, group_by_method, mean_std, record_values

__all__ = [
    'METHODS', 'METHOD_LABELS', 'HARD_KEY', 'DEMO_CONFIG', 'HardVariantRecall',
    'FixedLengthClassAwareSampler', 'objects_found', 'load_hard_variant_gts',
    'DetectionPreset', 'detection_presets', 'build_detection_cfg',
    'run_detection', 'plot_detection', 'render_detection'
]

METHODS = ('uniform', 'rfs', 'class_aware', 'difficulty', 'difficulty_rfs')
#: Names used in tables and figures.
METHOD_LABELS = {
    'uniform': 'Uniform',
    'rfs': 'RFS (repeat factors)',
    'class_aware': 'Class-aware (mmdet)',
    'difficulty': 'Difficulty, flat (w ∝ D)',
    'difficulty_rfs': 'Difficulty × RFS prior',
}
#: Method -> (scheme of DifficultyClassAwareSampler, with DifficultyHook).
_SCHEMES = {
    'uniform': ('uniform', False),
    'rfs': ('repeat_factor', False),
    'difficulty': ('paper', True),
    'difficulty_rfs': ('repeat_factor', True),
}
#: The annotation key that marks a planted hard variant.
HARD_KEY = 'mmdiff_hard_variant'
DEMO_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'demo', 'mask-rcnn_r18_synthetic-lvis_difficulty.py')
#: The demo's data (its ``synthetic``) with more hard variants in the
#: validation split, to measure their recall. The training split does not
#: depend on ``val_hard_variant_fraction``: it is the demo's.
SYNTHETIC = dict(
    seed=0, num_train=300, num_val=80, val_hard_variant_fraction=0.4)
#: (metric key, column name, factor) of the report, in table order.
METRIC_KEYS = (
    ('lvis/bbox_AP', 'AP', 100.0),
    ('lvis/bbox_AP50', 'AP50', 100.0),
    ('lvis/bbox_APr', 'APr', 100.0),
    ('lvis/bbox_APc', 'APc', 100.0),
    ('lvis/bbox_APf', 'APf', 100.0),
    ('hard_variant/recall_hard', 'recall_hard', 100.0),
    ('hard_variant/recall_normal', 'recall_normal', 100.0),
)

# ----------------------------------------------------------------------
# hard-variant recall


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(N, 4)`` and ``(M, 4)`` x1y1x2y2 boxes (mmdet: no +1)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, np.finfo(np.float64).eps)


def objects_found(gt_boxes: np.ndarray, gt_labels: np.ndarray,
                  det_boxes: np.ndarray, det_scores: np.ndarray,
                  det_labels: np.ndarray, iou_thr: float,
                  score_thr: float) -> np.ndarray:
    """Which GT objects a detection of their class covers.

    A GT object counts as found when at least one detection with score
    ``>= score_thr`` and the GT's label overlaps it with IoU ``>=
    iou_thr``. There is no one-to-one matching: on the synthetic data
    objects barely overlap, so one detection rarely covers two GTs.

    Args:
        gt_boxes (np.ndarray): ``(G, 4)`` x1y1x2y2.
        gt_labels (np.ndarray): ``(G,)`` 0-based labels.
        det_boxes (np.ndarray): ``(N, 4)`` x1y1x2y2.
        det_scores (np.ndarray): ``(N,)`` scores.
        det_labels (np.ndarray): ``(N,)`` 0-based labels.
        iou_thr (float): Minimum IoU.
        score_thr (float): Minimum score.

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
    return ((_box_iou(gt_boxes, det_boxes) >= iou_thr) & same).any(1)


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
    :func:`objects_found` (a detection of its class with score ``>=
    score_thr`` at IoU ``>= iou_thr``). Recall is reported separately for
    the hard variants and for the normal objects of the same classes.

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
            dict[str, float]: ``recall_hard``, ``recall_normal``,
            ``num_hard``, ``num_normal``.
        """
        gts = load_hard_variant_gts(self.ann_file, self.hard_key)
        hard: List[np.ndarray] = []
        normal: List[np.ndarray] = []
        seen = set()
        for res in results:
            gt = gts.get(res['img_id'])
            if gt is None or res['img_id'] in seen:
                continue
            seen.add(res['img_id'])
            found = objects_found(gt['boxes'], gt['labels'], res['bboxes'],
                                  res['scores'], res['labels'], self.iou_thr,
                                  self.score_thr)
            hard.append(found[gt['hard']])
            normal.append(found[~gt['hard']])

        def recall(parts: List[np.ndarray]) -> Tuple[float, int]:
            flat = np.concatenate(parts) if parts else np.zeros(0, bool)
            return (float(flat.mean()) if flat.size else float('nan'),
                    int(flat.size))

        recall_hard, num_hard = recall(hard)
        recall_normal, num_normal = recall(normal)
        return dict(
            recall_hard=recall_hard,
            recall_normal=recall_normal,
            num_hard=num_hard,
            num_normal=num_normal)


# ----------------------------------------------------------------------
# mmdet's class-aware sampler at a set epoch length


@DATA_SAMPLERS.register_module()
class FixedLengthClassAwareSampler(ClassAwareSampler):
    """mmdet's ``ClassAwareSampler`` with a set number of images per epoch.

    The drawing is mmdet's (classes cycled in a shuffled order, an image
    of each class in turn, seeded by ``seed + epoch``); only the epoch
    length, ``len(dataset)`` in mmdet, becomes ``num_samples``, so the
    baseline runs as many iterations as the other evidence arms.

    Args:
        dataset (Sized): The dataset (``metainfo['classes']`` and
            ``get_cat_ids``).
        seed (int, optional): Seed shared by all ranks. Defaults to None.
        num_sample_class (int): Images taken per class in turn.
            Defaults to 1.
        num_samples (int, optional): Images per epoch over all ranks,
            rounded up to a multiple of the world size. Defaults to None
            (``len(dataset)``, mmdet's behaviour).
    """

    def __init__(self,
                 dataset: Any,
                 seed: Optional[int] = None,
                 num_sample_class: int = 1,
                 num_samples: Optional[int] = None) -> None:
        super().__init__(dataset, seed=seed, num_sample_class=num_sample_class)
        if num_samples is not None:
            if isinstance(num_samples, bool) or not isinstance(
                    num_samples, int) or num_samples < 1:
                raise ValueError(
                    f'num_samples must be a positive int, got {num_samples!r}')
            self.num_samples = int(math.ceil(num_samples / self.world_size))
            self.total_size = self.num_samples * self.world_size


# ----------------------------------------------------------------------
# experiment


@dataclass
class DetectionPreset:
    """One detection evidence run: data, schedule, methods, seeds.

    Attributes:
        seeds (list[int]): One run per seed and method. A seed fixes the
            initial weights and the sampler's draws; the data are fixed.
        epochs (int): Epochs; ``DifficultyHook`` updates after each.
        images_per_epoch (int): Images each sampler draws per epoch.
        batch_size (int): Training batch size. Defaults to 4 (the demo's).
        lr (float): SGD learning rate. Defaults to 0.04 (the demo's).
        warmup_iters (int): Linear warm-up from ``lr / 100``.
            Defaults to 50 (the demo's).
        decay_at (float): Fraction of the iterations after which the
            learning rate drops 10x (the demo: before its last of 4
            epochs). Defaults to 0.75.
        methods (tuple[str]): Subset of :data:`METHODS`.
        synthetic (dict): Arguments of
            :func:`~mmdiff.datasets.make_synthetic_lvis`.
        rfs_thr (float): Repeat-factor threshold (the demo's 0.1).
        difficulty_c (float): Prior ``c`` of the difficulty. Defaults to 1.
        iou_thr (float): IoU of the hard-variant recall. Defaults to 0.5.
        score_thr (float): Score threshold of the hard-variant recall.
            Defaults to 0.05.
        threads (int): torch CPU threads of each run. Defaults to 1: on
            the 2-core machines, 2 threads ran ten times slower than 1 as
            soon as another process used a core.
        jobs (int): Runs trained at the same time, each in its own
            (spawned) process with ``threads`` threads. Defaults to 1
            (in this process). The records do not depend on it: a run is
            fixed by its method and seed.
        num_workers (int): Data loader workers. Defaults to 0 (in the
            main process: on 2 cores, workers compete with the model).
        work_dir (str): Run folders, the data and ``results.json``
            (not committed: ``work_dirs/`` is git-ignored).
        data_root (str, optional): Where the synthetic data is made.
            Defaults to None (``{work_dir}/data/synthetic_lvis/``).
        config (str): The model / pipeline config. Defaults to the demo.
    """
    seeds: List[int]
    epochs: int
    images_per_epoch: int
    batch_size: int = 4
    lr: float = 0.04
    warmup_iters: int = 50
    decay_at: float = 0.75
    methods: Tuple[str, ...] = METHODS
    synthetic: Dict[str, Any] = field(default_factory=lambda: dict(SYNTHETIC))
    rfs_thr: float = 0.1
    difficulty_c: float = 1.0
    iou_thr: float = 0.5
    score_thr: float = 0.05
    threads: int = 1
    jobs: int = 1
    num_workers: int = 0
    work_dir: str = osp.join('work_dirs', 'evidence', 'detection')
    data_root: Optional[str] = None
    config: str = DEMO_CONFIG

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise ValueError(f'methods must be a non-empty subset of '
                             f'{METHODS}, got {self.methods}')
        if not self.seeds:
            raise ValueError('seeds must not be empty')
        for name in ('epochs', 'images_per_epoch', 'batch_size', 'threads',
                     'jobs'):
            if getattr(self, name) < 1:
                raise ValueError(
                    f'{name} must be >= 1, got {getattr(self, name)}')
        if not 0 < self.decay_at <= 1:
            raise ValueError(f'decay_at must be in (0, 1], got '
                             f'{self.decay_at}')

    @property
    def iters_per_epoch(self) -> int:
        """Iterations of one epoch (the last batch may be smaller)."""
        return int(math.ceil(self.images_per_epoch / self.batch_size))

    @property
    def iterations(self) -> int:
        """Training iterations of every run."""
        return self.epochs * self.iters_per_epoch

    @property
    def data_dir(self) -> str:
        """The synthetic data folder, with a trailing slash."""
        root = self.data_root or osp.join(self.work_dir, 'data',
                                          'synthetic_lvis')
        return osp.join(root, '')


def detection_presets(quick: bool,
                      num_seeds: Optional[int] = None,
                      work_dir: Optional[str] = None,
                      jobs: int = 1) -> DetectionPreset:
    """The settings ``tools/reproduce_evidence.py`` runs.

    Full is 5 epochs of the 300 training images (batch 4: 375
    iterations, warm-up 50, lr x0.1 after 75 %; the demo trains 8) for
    every method, 3 seeds; quick is 4 epochs of 120 images (120
    iterations), 1 seed. Measured on the quiet 2-core machine with 1
    torch thread per run: 0.77-0.86 s per iteration whether one run or
    two ran at once (``jobs`` 2), 4 s per evaluation (80 images), about
    1.5 GB of memory per run; with 2 jobs full took 2623 s (15 runs of
    ~330 s) and quick 297 s (one job: 493 s). With 2 threads per run the
    same iterations took 4-7 s (ten times slower) whenever any other
    process ran, hence :attr:`DetectionPreset.threads` = 1.

    Args:
        quick (bool): One seed and a shorter schedule.
        num_seeds (int, optional): Overrides the number of seeds (seeds
            ``0 .. num_seeds - 1``). Defaults to 1 (quick) / 3 (full).
        work_dir (str, optional): Overrides :attr:`DetectionPreset.
            work_dir`. Defaults to None.
        jobs (int): :attr:`DetectionPreset.jobs`, runs trained at once.
            Defaults to 1.

    Returns:
        DetectionPreset: The setting.
    """
    num = num_seeds if num_seeds is not None else (1 if quick else 3)
    extra: Dict[str, Any] = dict(jobs=jobs)
    if work_dir is not None:
        extra['work_dir'] = work_dir
    if quick:
        return DetectionPreset(
            seeds=list(range(num)),
            epochs=4,
            images_per_epoch=120,
            warmup_iters=30,
            **extra)
    return DetectionPreset(
        seeds=list(range(num)), epochs=5, images_per_epoch=300, **extra)


def _sampler_cfg(method: str, preset: DetectionPreset) -> Tuple[dict, bool]:
    """The train sampler of ``method`` and whether it uses the hook."""
    if method == 'class_aware':
        return dict(
            type='FixedLengthClassAwareSampler',
            num_sample_class=1,
            num_samples=preset.images_per_epoch), False
    scheme, with_hook = _SCHEMES[method]
    return dict(
        type='DifficultyClassAwareSampler',
        scheme=scheme,
        thr=preset.rfs_thr,
        num_samples=preset.images_per_epoch), with_hook


def build_detection_cfg(preset: DetectionPreset, method: str, seed: int,
                        work_dir: str) -> Any:
    """The mmengine config of one run.

    Args:
        preset (DetectionPreset): The setting.
        method (str): One of :data:`METHODS`.
        seed (int): ``randomness.seed`` (initial weights, sampler draws).
        work_dir (str): The run's folder.

    Returns:
        mmengine.Config: The demo config with the run's sampler, hook,
        schedule, data and evaluators.
    """
    from mmengine.config import Config
    if method not in METHODS:
        raise ValueError(f'method must be one of {METHODS}, got {method!r}')
    cfg = Config.fromfile(preset.config)
    root = preset.data_dir
    val_ann = root + 'annotations/lvis_v1_val.json'
    workers = dict(
        num_workers=preset.num_workers,
        persistent_workers=preset.num_workers > 0)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.update(workers)
        loader.dataset.data_root = root
        loader.dataset.synthetic = dict(preset.synthetic)
    cfg.train_dataloader.batch_size = preset.batch_size
    sampler, with_hook = _sampler_cfg(method, preset)
    cfg.train_dataloader.sampler = sampler
    hooks = [h for h in cfg.custom_hooks if h['type'] == 'DifficultyHook']
    if with_hook:
        if len(hooks) != 1:
            raise ValueError(f'{preset.config} must have one DifficultyHook '
                             f'in custom_hooks, found {len(hooks)}')
        hooks[0].update(c=preset.difficulty_c, dump=False)
    cfg.custom_hooks = hooks if with_hook else []
    evaluators = [
        dict(type='LVISMetric', ann_file=val_ann, metric=['bbox']),
        dict(
            type='HardVariantRecall',
            ann_file=val_ann,
            iou_thr=preset.iou_thr,
            score_thr=preset.score_thr)
    ]
    cfg.val_evaluator = evaluators
    cfg.test_evaluator = evaluators
    total = preset.iterations
    # No validation inside train(): run_detection calls runner.val().
    cfg.train_cfg = dict(
        type='EpochBasedTrainLoop',
        max_epochs=preset.epochs,
        val_begin=preset.epochs + 1,
        val_interval=1)
    cfg.param_scheduler = [
        dict(
            type='LinearLR',
            start_factor=0.01,
            by_epoch=False,
            begin=0,
            end=min(preset.warmup_iters, total)),
        dict(
            type='MultiStepLR',
            by_epoch=False,
            begin=0,
            end=total,
            milestones=[max(1, int(preset.decay_at * total))],
            gamma=0.1)
    ]
    cfg.optim_wrapper.optimizer.lr = preset.lr
    cfg.default_hooks.checkpoint = None  # nothing to resume or keep
    cfg.default_hooks.logger.interval = max(1, preset.iters_per_epoch)
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'evidence_{method}_seed{seed}_' \
        f'{uuid.uuid4().hex[:8]}'
    # One visualizer per run: the demo's fixed name would hand the first
    # run's instance (and its log folder) to every later run.
    cfg.visualizer.name = cfg.experiment_name
    cfg.log_level = 'WARNING'
    return cfg


def _train_hard_flags(dataset: Any, ann_file: str) -> Optional[np.ndarray]:
    """Hard-variant flag of every training object, in DifficultyHook order.

    The hook numbers objects image by image (dataset order), then by their
    position among the image's non-ignored instances; mmdet's LVIS loader
    drops the hard-variant key, so the flags are matched back by box.
    None when an object cannot be matched.
    """
    data = load(ann_file)
    anns: Dict[int, list] = defaultdict(list)
    for ann in data['annotations']:
        x, y, w, h = ann['bbox']
        anns[ann['image_id']].append(
            (np.array([x, y, x + w, y + h]), bool(ann.get(HARD_KEY, False))))
    flags: List[bool] = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        candidates = list(anns.get(info['img_id'], []))
        for inst in info.get('instances', []):
            if inst.get('ignore_flag', 0):
                continue
            match = [
                    k for k, (box, _) in enumerate(candidates)
                    if np.allclose(box, inst['bbox'], atol=1e-3)
            ]
            if not match:
                return None
            flags.append(candidates.pop(match[0])[1])
    return np.array(flags, dtype=bool)


def _train_sampler(runner: Any) -> Any:
    loader = runner.train_dataloader
    batch_sampler = getattr(loader, 'batch_sampler', None)
    return getattr(batch_sampler, 'sampler', getattr(loader, 'sampler', None))


def _sampling_diagnostics(runner: Any, train_ann: str) -> Dict[str, float]:
    """Difficulty of the hard variants and the images' sampling mass.

    ``d_*``: mean final instance difficulty of the hard-variant training
    objects and of the normal objects of the same classes (hook arms).
    ``mass_hard_images``: % of the sampler's probability after the last
    epoch on images with a hard variant (mmdiff sampler arms);
    ``share_hard_images``: their % of the training images.
    """
    dataset = runner.train_dataloader.dataset
    flags = _train_hard_flags(dataset, train_ann)
    if flags is None:
        return {}
    hooks = [h for h in runner.hooks if isinstance(h, DifficultyHook)]
    out: Dict[str, float] = {}
    counts = index_dataset(dataset).kept_counts()
    image_of = np.repeat(np.arange(len(dataset)), counts)
    has_hard = np.zeros(len(dataset), dtype=bool)
    has_hard[image_of[flags]] = True
    out['share_hard_images'] = float(has_hard.mean() * 100)
    sampler = _train_sampler(runner)
    probs = getattr(sampler, 'probabilities', None)
    if probs is not None:
        out['mass_hard_images'] = float(
            np.asarray(probs)[has_hard].sum() * 100)
    if hooks and hooks[0].state is not None:
        hook = hooks[0]
        labels = np.asarray(hook.instance_labels)
        d = np.asarray(hook.state.difficulty(), dtype=np.float64)
        d = d[:labels.size]
        if d.size == flags.size:
            same_class = np.isin(labels, labels[flags]) & ~flags
            out['d_hard'] = float(d[flags].mean())
            out['d_normal'] = float(d[same_class].mean())
            out['d_all'] = float(d.mean())
            # D stays exactly (c + 0) / (c + 0) = 1 until first observed.
            out['never_seen'] = float((d == 1.0).mean() * 100)
    return out


def _drop_mask_head(model: Any) -> None:
    """Evaluate boxes only: remove a trained model's mask branch.

    Mask R-CNN's boxes do not depend on its mask branch; on the CPU,
    pasting up to 50 masks per image is about half the evaluation time.
    """
    from mmengine.model import is_model_wrapper
    model = model.module if is_model_wrapper(model) else model
    roi_head = getattr(model, 'roi_head', None)
    if getattr(roi_head, 'mask_head', None) is not None:
        roi_head.mask_head = None


def _run_one(preset: DetectionPreset, method: str, seed: int,
             work_dir: str) -> Dict[str, Any]:
    """Train and evaluate one (method, seed); the record of the run."""
    from mmengine.runner import Runner
    cfg = build_detection_cfg(preset, method, seed, work_dir)
    tic = time.perf_counter()
    runner = Runner.from_cfg(cfg)
    build_s = time.perf_counter() - tic
    tic, cpu = time.perf_counter(), time.process_time()
    runner.train()
    train_s = time.perf_counter() - tic
    train_cpu = time.process_time() - cpu
    iterations = int(runner.iter)
    _drop_mask_head(runner.model)
    tic, cpu = time.perf_counter(), time.process_time()
    metrics = runner.val()
    eval_s = time.perf_counter() - tic
    eval_cpu = time.process_time() - cpu
    rec: Dict[str, Any] = dict(
        method=method,
        seed=seed,
        iterations=iterations,
        epochs=int(runner.epoch),
        build_seconds=build_s,
        train_seconds=train_s,
        train_cpu_seconds=train_cpu,
        eval_seconds=eval_s,
        eval_cpu_seconds=eval_cpu,
        num_hard=int(metrics.get('hard_variant/num_hard', 0)),
        num_normal=int(metrics.get('hard_variant/num_normal', 0)))
    for key, name, factor in METRIC_KEYS:
        value = float(metrics[key])
        # LVISMetric reports -1 for a group without GT objects.
        rec[name] = value * factor if value >= 0 else float('nan')
    train_ann = preset.data_dir + 'annotations/lvis_v1_train.json'
    rec.update(_sampling_diagnostics(runner, train_ann))
    del runner
    gc.collect()
    return rec


def _versions() -> Dict[str, str]:
    import mmcv
    import mmdet
    import mmengine
    return dict(
        mmdet=mmdet.__version__,
        mmengine=mmengine.__version__,
        mmcv=mmcv.__version__)


#: One run: (method, seed, work_dir).
Run = Tuple[str, int, str]


def _run_in_worker(preset: DetectionPreset, method: str, seed: int,
                   work_dir: str) -> Dict[str, Any]:
    """:func:`_run_one` in a spawned worker process, ``preset.threads``
    torch threads."""
    torch.set_num_threads(preset.threads)
    return _run_one(preset, method, seed, work_dir)


def _train_all(preset: DetectionPreset,
               runs: List[Run]) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """Yield ``(index in runs, record)`` as the runs finish.

    ``preset.jobs`` > 1 trains that many runs at once in spawned
    processes (not forked: the parent's OpenMP / autograd threads do not
    survive a fork); a failed run stops the others and raises its error.
    """
    if preset.jobs == 1 or len(runs) == 1:
        for index, (method, seed, work_dir) in enumerate(runs):
            yield index, _run_one(preset, method, seed, work_dir)
        return
    context = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(
            max_workers=min(preset.jobs, len(runs)),
            mp_context=context) as pool:
        futures = {
            pool.submit(_run_in_worker, preset, *run): index
            for index, run in enumerate(runs)
        }
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def run_detection(
        preset: DetectionPreset,
        progress: Optional[Callable[[str], None]] = print) -> Dict[str, Any]:
    """Train every method on every seed; evaluate each run.

    Seeds run in the outer loop, ``preset.jobs`` runs at a time. The
    result so far is written to ``{work_dir}/results.json`` after every
    run, its records in (seed, method) order (re-render it with
    :func:`render_detection` without training again).

    Args:
        preset (DetectionPreset): The setting.
        progress (Callable[[str], None], optional): Called with one line
            per finished run. Defaults to print.

    Returns:
        dict: ``records`` (one per run: the metrics in %, ``iterations``,
        timings, sampling diagnostics), ``preset`` (as a dict),
        ``iterations``, ``data`` (the synthetic data summary, counts
        only), ``device`` and ``seconds`` (wall time).
    """
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(preset.threads)
    os.makedirs(preset.work_dir, exist_ok=True)
    try:
        summary = ensure_synthetic_lvis(preset.data_dir, **preset.synthetic)
        result = dict(
            records=[],
            preset=asdict(preset),
            iterations=preset.iterations,
            data=dict(
                num_images=summary['num_images'],
                num_instances=summary['num_instances'],
                frequency=summary['frequency'],
                image_count=summary['image_count'],
                hard_variant_classes=summary['hard_variant_classes'],
                num_hard_variants={
                    k: len(v)
                    for k, v in summary['hard_variant_ann_ids'].items()
                }),
            device='cuda' if torch.cuda.is_available() else 'cpu',
            threads=preset.threads,
            versions=_versions(),
            seconds=0.0)
        runs = [(method, seed,
                 osp.join(preset.work_dir, 'runs', f'{method}_seed{seed}'))
                for seed in preset.seeds for method in preset.methods]
        done: Dict[int, Dict[str, Any]] = {}
        for index, rec in _train_all(preset, runs):
            done[index] = rec
            # The records in (seed, method) order, whatever the finishing
            # order; written after every run: a stopped run keeps them.
            result['records'] = [done[i] for i in sorted(done)]
            result['seconds'] = time.perf_counter() - start
            with open(osp.join(preset.work_dir, 'results.json'), 'w') as f:
                json.dump(result, f, indent=1)
            if progress is not None:
                progress(f"[detection] {rec['method']} seed {rec['seed']}: "
                         f"AP {rec['AP']:.2f}, APr {rec['APr']:.2f}, "
                         f"hard recall {rec['recall_hard']:.1f} %, "
                         f"{rec['iterations']} iters, train "
                         f"{rec['train_seconds']:.0f} s, eval "
                         f"{rec['eval_seconds']:.0f} s "
                         f"({len(done)}/{len(runs)})")
    finally:
        torch.set_num_threads(threads)
    return result


# ----------------------------------------------------------------------
# report


def _paired(by: Dict[str, List[dict]], key: str, method: str,
            reference: str) -> Optional[dict]:
    """``method - reference`` over the seeds both have."""
    if method not in by or reference not in by:
        return None
    ref = {r['seed']: r[key] for r in by[reference]}
    diff = np.array(
        [r[key] - ref[r['seed']] for r in by[method] if r['seed'] in ref])
    if diff.size == 0:
        return None
    mean, std = mean_std(diff)
    return dict(
        mean=mean,
        std=std,
        wins=int((diff > 0).sum()),
        ties=int((diff == 0).sum()),
        losses=int((diff < 0).sum()),
        n=int(diff.size))


def _fmt(values: np.ndarray, digits: int = 2) -> str:
    """``mean ± std`` of per-seed values; 'n/a' if any is undefined."""
    if values.size == 0 or np.isnan(values).any():
        return 'n/a'
    if values.size == 1:
        return f'{values[0]:.{digits}f}'
    return format_mean_std(values, digits)


def _fmt_paired(p: Optional[dict]) -> str:
    if p is None:
        return 'n/a'
    return (f"{p['mean']:+.2f} ± {p['std']:.2f} "
            f"({p['wins']}/{p['ties']}/{p['losses']})")


#: Paired comparisons of the method with its own prior.
PAIRS = (('difficulty', 'uniform'), ('difficulty_rfs', 'rfs'))
#: Columns of the main table: (record key, header).
COLUMNS = (('AP', 'AP'), ('AP50', 'AP50'), ('APr', 'APr'), ('APc', 'APc'),
           ('APf', 'APf'), ('recall_hard', 'hard-variant recall'),
           ('recall_normal', 'normal recall (same classes)'))


def plot_detection(result: dict,
                   fig_dir: str,
                   stem: str = 'detection') -> List[Tuple[str, str]]:
    """Bar chart of AP, APr and hard-variant recall per method (PNG).

    Args:
        result (dict): Output of :func:`run_detection`.
        fig_dir (str): Folder for the PNG file (created).
        stem (str): File name prefix. Defaults to 'detection'.

    Returns:
        list[tuple[str, str]]: ``(file name, caption)`` of the figure.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    os.makedirs(fig_dir, exist_ok=True)
    by = group_by_method(result['records'])
    methods = [m for m in METHODS if m in by]
    panels = (('AP', 'bbox AP'), ('APr', 'bbox APr (rare classes)'),
              ('recall_hard', 'hard-variant recall (%)'))
    fig, axes = plt.subplots(1, len(panels), figsize=(11, 3.6))
    x = np.arange(len(methods))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, (key, title) in zip(axes, panels):
        stats = [mean_std(record_values(by[m], key)) for m in methods]
        ax.bar(
            x, [s[0] for s in stats],
            yerr=[s[1] for s in stats],
            capsize=3,
            color=[colours[i % len(colours)] for i in range(len(methods))])
        for i, m in enumerate(methods):
            vals = record_values(by[m], key)
            ax.plot(
                np.full(vals.size, i), vals, 'k.', ms=4, zorder=3, alpha=0.7)
        ax.set_xticks(x)
        ax.set_xticklabels([METHOD_LABELS[m] for m in methods],
                           rotation=35,
                           ha='right',
                           fontsize=8)
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=10)
    seeds = len(result['preset']['seeds'])
    fig.suptitle(
        f"Synthetic long-tailed LVIS, {result['iterations']} iterations per "
        f'run, mean ± std over {seeds} seed(s) (dots: seeds)',
        fontsize=10)
    fig.tight_layout()
    name = f'{stem}_ap.png'
    fig.savefig(osp.join(fig_dir, name), dpi=120)
    plt.close(fig)
    return [(name, 'bbox AP, APr and hard-variant recall per method (error '
             'bars: std over seeds; dots: single seeds).')]


def _timing(result: dict) -> Dict[str, float]:
    recs = result['records']
    iters = record_values(recs, 'iterations')
    return dict(
        s_per_iter=float((record_values(recs, 'train_seconds') /
                          np.maximum(iters, 1)).mean()),
        cpu_per_iter=float((record_values(recs, 'train_cpu_seconds') /
                            np.maximum(iters, 1)).mean()),
        eval_s=float(record_values(recs, 'eval_seconds').mean()),
        run_s=float((record_values(recs, 'build_seconds') +
                     record_values(recs, 'train_seconds') +
                     record_values(recs, 'eval_seconds')).mean()))


def _setting(result: dict) -> List[str]:
    p, data = result['preset'], result['data']
    freq = data['frequency']
    groups = ', '.join(f'{freq.count(g)} {name}'
                       for g, name in (('f', 'frequent'), ('c', 'common'),
                                       ('r', 'rare')))
    recs = result['records']
    num_hard = recs[0].get('num_hard', 0) if recs else 0
    num_normal = recs[0].get('num_normal', 0) if recs else 0
    iters = sorted({int(r['iterations']) for r in recs})
    t = _timing(result)
    seeds = p['seeds']
    syn = p['synthetic']
    ipe = int(math.ceil(p['images_per_epoch'] / p['batch_size']))
    return [
        '### Setting', '', '- Data: the synthetic long-tailed LVIS-format set '
        '(`mmdiff.datasets.make_synthetic_lvis`, ' +
        ', '.join(f'{k}={v}' for k, v in syn.items()) +
        f"): {data['num_images']['train']} training images with "
        f"{data['num_instances']['train']} objects, {len(freq)} classes "
        f'({groups}; '
        'LVIS groups by training-image count), '
        f"{data['num_images']['val']} validation images (balanced classes) "
        f"with {data['num_instances']['val']} objects. The training split "
        "is the demo's; the validation split carries more hard variants "
        f"(`val_hard_variant_fraction`) to measure them: {num_hard} hard "
        f'variants and {num_normal} normal objects of the '
        f"{len(data['hard_variant_classes'])} frequent classes.",
        "- Model: the demo's Mask R-CNN (ResNet-18 from scratch, 64-channel "
        'FPN / heads, 160x128 images; `configs/demo/'
        'mask-rcnn_r18_synthetic-lvis_difficulty.py`), SGD lr '
        f"{p['lr']:g}, momentum 0.9, batch {p['batch_size']}, linear "
        f"warm-up {p['warmup_iters']} iterations, lr x0.1 after "
        f"{p['decay_at']:.0%} of the iterations.",
        f"- Schedule: {p['epochs']} epochs of {p['images_per_epoch']} "
        f"images ({ipe} iterations) = **{result['iterations']} iterations "
        'per run for every method** (measured: '
        f"{', '.join(str(i) for i in iters)}); every sampler draws the "
        'same number of images per epoch (with replacement, except '
        'class-aware), and the difficulty is updated after each of the '
        f"first {p['epochs'] - 1} epochs.",
        '- Methods: *Uniform*: `DifficultyClassAwareSampler` scheme '
        "'uniform', no hook (uniform with replacement). *RFS*: scheme "
        "'repeat_factor' without the hook (prior only): probabilities ∝ "
        f"LVIS repeat factors, threshold {p['rfs_thr']:g} (RFS in "
        'expectation, at equal iterations; mmengine\'s '
        '`ClassBalancedDataset` would lengthen the epochs). *Class-aware*: '
        "mmdet's `ClassAwareSampler` (num_sample_class=1) with the epoch "
        'length set (`FixedLengthClassAwareSampler`). *Difficulty, flat*: '
        "scheme 'paper' + `DifficultyHook` (w ∝ D, first epoch uniform). "
        "*Difficulty × RFS prior*: scheme 'repeat_factor' + "
        '`DifficultyHook` (w ∝ r·D, first epoch RFS). Difficulty prior c '
        f"{p['difficulty_c']:g}, instance D averaged per image.",
        '- Metrics: bbox AP / AP50 / APr / APc / APf of mmdet\'s '
        '`LVISMetric` on the validation split (AP points; LVISMetric rounds '
        'to 0.1 point; the mask branch is dropped for this bbox-only '
        'evaluation, which does not change the boxes). Hard-variant '
        'recall (`HardVariantRecall`): % of the hard-variant objects for '
        'which some detection of the right class with score >= '
        f"{p['score_thr']:g} has IoU >= {p['iou_thr']:g} (no one-to-one "
        'matching, at most 50 detections per image); "normal recall" is '
        'the same for the other objects of those classes.',
        f"- Seeds: {', '.join(str(s) for s in seeds)} ({len(seeds)}; a seed "
        'fixes the initial weights and the sampler draws, the data are '
        'fixed; a method and its prior draw the same first epoch). '
        f"Device: {result['device']}, torch threads {result['threads']} "
        f"per run, {p.get('jobs', 1)} run(s) at a time, " +
        ', '.join(f'{k} {v}'
                  for k, v in result.get('versions', {}).items()) + '. '
        f"Timing: {t['s_per_iter']:.2f} s / iteration "
        f"({t['cpu_per_iter']:.2f} s CPU time), evaluation "
        f"{t['eval_s']:.0f} s, {t['run_s']:.0f} s per run; "
        f"{result['seconds']:.0f} s in all.", ''
    ]


def _mean(values: np.ndarray) -> float:
    """Mean over the defined values; NaN (no warning) if there are none."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float('nan')


def _compare(a: float, b: float) -> str:
    return 'higher' if a > b else 'lower' if a < b else 'equal'


def _reading(result: dict) -> str:
    """Template paragraph: what the numbers show, computed from them."""
    by = group_by_method(result['records'])
    n = len(result['preset']['seeds'])
    mean = {
        m: {
            k: _mean(record_values(r, k))
            for k, _ in COLUMNS
        }
        for m, r in by.items()
    }
    std = {
        m: {
            k: mean_std(record_values(r, k))[1]
            for k, _ in COLUMNS
        }
        for m, r in by.items()
    }
    text = []
    for key, what in (('AP', 'AP'), ('APr', 'APr'), ('recall_hard',
                                                     'hard-variant recall')):
        values = [mean[m][key] for m in mean]
        if np.isnan(values).all():
            continue
        if len(mean) > 1 and np.nanmax(values) == np.nanmin(values):
            text.append(f'All methods tie on mean {what} '
                        f'({values[0]:.2f}).')
            continue
        best = max(mean, key=lambda m: np.nan_to_num(mean[m][key], nan=-1))
        others = [m for m in mean if m != best]
        overlaps = [
            m for m in others
            if mean[best][key] - std[best][key] <= mean[m][key] + std[m][key]
        ]
        tail = ''
        if n > 1 and overlaps:
            tail = (' (within one std of ' +
                    ', '.join(METHOD_LABELS[m] for m in overlaps) + ')')
        text.append(f'Best mean {what}: {METHOD_LABELS[best]} '
                    f'({mean[best][key]:.2f}){tail}.')
    for method, ref in PAIRS:
        for key, what in (('AP', 'AP'), ('recall_hard',
                                         'hard-variant recall')):
            p = _paired(by, key, method, ref)
            if p is None:
                continue
            if n == 1:
                size = 'one seed: no estimate of the noise'
            elif abs(p['mean']) > p['std']:
                size = 'the mean exceeds one std of the paired differences'
            else:
                size = ('within one std of the paired differences: not '
                        'distinguishable from seed noise')
            text.append(f"{METHOD_LABELS[method]} − {METHOD_LABELS[ref]} "
                        f"on {what}: {p['mean']:+.2f} ± {p['std']:.2f} "
                        f"(wins / ties / losses {p['wins']} / {p['ties']} / "
                        f"{p['losses']}; {size}).")
    diag = []
    for m in ('difficulty', 'difficulty_rfs'):
        if m in by and not np.isnan(record_values(by[m], 'd_hard')).all():
            dh = _mean(record_values(by[m], 'd_hard'))
            dn = _mean(record_values(by[m], 'd_normal'))
            mass = _mean(record_values(by[m], 'mass_hard_images'))
            share = _mean(record_values(by[m], 'share_hard_images'))
            unseen = _mean(record_values(by[m], 'never_seen'))
            diag.append(
                f'{METHOD_LABELS[m]}: mean D of the hard-variant training '
                f'objects {dh:.3f} vs {dn:.3f} for the normal objects of '
                f'their classes ({_compare(dh, dn)}); '
                f'after the last epoch the sampler puts {mass:.1f} % of its '
                f'mass on the images with a hard variant ({share:.1f} % of '
                'the images)' +
                ('' if np.isnan(unseen) else
                 f'; {unseen:.1f} % of the objects were never drawn and '
                 'keep D = 1') +
                (', above the mean D of the hard variants, so w ∝ D favours '
                 'images not yet drawn over the known hard ones.'
                 if dh < 1 and unseen > 0 else '.'))
    recall_hard = np.concatenate(
        [record_values(r, 'recall_hard') for r in by.values()])
    if np.nan_to_num(recall_hard).max() == 0:
        normal = _mean(
            np.concatenate(
                [record_values(r, 'recall_normal') for r in by.values()]))
        diag.append('No run found a single hard variant (recall 0 for '
                    f'every method and seed, against {normal:.1f} % of the '
                    'normal objects of the same classes): at this budget '
                    'the hard-variant recall cannot separate the methods; '
                    'the difficulty and sampling-mass figures above show '
                    'whether the samplers at least draw them more often.')
    low = max(v['AP'] for v in mean.values()) < 5
    caveat = (
        f"Caveat: every run trains {result['iterations']} iterations "
        'from scratch on a CPU budget' +
        (', and all APs are below 5 points: the detector is far from '
         'converged, so these numbers say whether the pipeline works and '
         'which way the samplers push, not how the methods rank at '
         'convergence' if low else '; the ranking at convergence may differ') +
        '.')
    if n < 3:
        caveat += (f' With {n} seed(s) the spread over seeds is not '
                   'estimated well; differences of this size can be noise.')
    return '\n\n'.join([' '.join(text), ' '.join(diag), caveat]
                       if diag else [' '.join(text), caveat])


def render_detection(result: dict, figures: Sequence[tuple],
                     fig_rel: str) -> str:
    """Markdown of the detection section: setting, tables, figure, reading.

    Args:
        result (dict): Output of :func:`run_detection`.
        figures (Sequence[tuple]): ``(file name, caption)`` pairs from
            :func:`plot_detection`.
        fig_rel (str): Path of the figure folder relative to the markdown
            file.

    Returns:
        str: The section body (no top-level title).
    """
    by = group_by_method(result['records'])
    methods = [m for m in METHODS if m in by]

    def row(label: str, cells: Sequence[str]) -> str:
        return '| ' + ' | '.join([label, *cells]) + ' |'

    header = [
        row('method', [c[1] for c in COLUMNS]),
        '|' + '---|' * (len(COLUMNS) + 1)
    ]
    lines = _setting(result)
    lines += [
        '### Validation results (AP points, recall %), mean ± std over '
        'seeds', '', *header
    ]
    for m in methods:
        lines.append(
            row(METHOD_LABELS[m],
                [_fmt(record_values(by[m], k)) for k, _ in COLUMNS]))
    lines.append('')
    pairs = [(m, r) for m, r in PAIRS if m in by and r in by]
    if pairs:
        keys = (('AP', 'AP'), ('APr', 'APr'), ('APf', 'APf'),
                ('recall_hard', 'hard-variant recall'), ('recall_normal',
                                                         'normal recall'))
        lines += [
            '### Paired difference to the prior (same seed)', '',
            'mean ± std over seeds of (method − its prior), and wins / ties '
            '/ losses.', '',
            row('comparison',
                [k[1] for k in keys]), '|' + '---|' * (len(keys) + 1)
        ]
        for m, r in pairs:
            lines.append(
                row(f'{METHOD_LABELS[m]} − {METHOD_LABELS[r]}',
                    [_fmt_paired(_paired(by, k, m, r)) for k, _ in keys]))
        lines.append('')
    diag_methods = [
        m for m in methods
        if not np.isnan(record_values(by[m], 'mass_hard_images')).all()
    ]
    if diag_methods:
        lines += [
            '### What the samplers do with the hard variants', '',
            'Mean final instance difficulty D of the hard-variant training '
            'objects and of the normal objects of the same classes (hook '
            'arms; objects never drawn keep D = 1, the prior), and the % of '
            'sampling probability on the training images that hold a hard '
            'variant after the last epoch (for the hook arms: what the next '
            'epoch would draw).', '',
            row('method', [
                'D hard variants', 'D normal (same classes)',
                'objects never drawn (%)', 'mass on hard-variant images (%)',
                'share of images (%)'
            ]), '|---|---|---|---|---|---|'
        ]
        for m in diag_methods:
            cells = [
                _fmt(record_values(by[m], k), 3)
                for k in ('d_hard', 'd_normal')
            ]
            cells += [
                _fmt(record_values(by[m], k), 1)
                for k in ('never_seen', 'mass_hard_images',
                          'share_hard_images')
            ]
            lines.append(row(METHOD_LABELS[m], cells))
        lines.append('')
    lines += [
        '<details><summary>Per-seed values</summary>', '',
        row('method', [
            'seed', *[c[1] for c in COLUMNS], 'iterations', 'train s', 'eval s'
        ]), '|' + '---|' * (len(COLUMNS) + 5)
    ]
    for m in methods:
        for r in by[m]:
            cells = [str(r['seed'])]
            cells += [f'{r[k]:.2f}' for k, _ in COLUMNS]
            cells += [
                str(r['iterations']), f"{r['train_seconds']:.0f}",
                f"{r['eval_seconds']:.0f}"
            ]
            lines.append(row(METHOD_LABELS[m], cells))
    lines += ['', '</details>', '']
    for name, caption in figures:
        lines += [f'![{caption}]({fig_rel}/{name})', '', f'*{caption}*', '']
    lines += ['### Reading', '', _reading(result), '']
    return '\n'.join(lines)
