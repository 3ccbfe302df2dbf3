"""Detection evidence: re-samplers on the synthetic long-tailed LVIS set.

The demo's recipe (``configs/demo/mask-rcnn_r18_synthetic-lvis_difficulty
.py``) is trained in-process with mmengine's ``Runner`` on the synthetic
LVIS-format data (:mod:`mmdiff.datasets.synthetic.make`), once per arm and
seed, all at the same number of iterations, and evaluated on the
validation split with mmdet's ``LVISMetric`` (bbox AP, APr, APc, APf) and
:class:`mmdiff.evaluation.HardVariantRecall` (recall on the planted hard
variants: look-alikes of another class inside the frequent classes, the
rare sub-class instance difficulty is meant to find).

Every arm draws ``images_per_epoch`` images per epoch (:data:`ARMS`). An
arm with the difficulty hook and its prior (:data:`PRIORS`) share the
seed, hence the initial weights and the first epoch's draws: they are
paired comparisons. Besides the samplers' AP, every hook arm reports what
its signal did: the mean final D of the hard variants against the normal
objects of the same classes, and the sampler's mass on images holding a
hard variant against their share of the images. The report
(:mod:`.detection_report`) is tables and figures only; the conclusions in
docs/results.md are written by people.
"""
import gc
import hashlib
import json
import math
import multiprocessing
import os
import os.path as osp
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import (Any, Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import numpy as np
import torch
from mmdet.datasets.samplers import ClassAwareSampler
from mmdet.registry import DATA_SAMPLERS
from mmengine.fileio import load
from mmengine.hooks import Hook

from mmdiff.analysis.dump import find_dumps, load_dump
from mmdiff.datasets import ensure_synthetic_lvis
from mmdiff.datasets.synthetic.write import HARD_KEY
from mmdiff.hooks import DifficultyHook
from .detection_store import ResultStore, recipe_sha, run_key, schedule_of

__all__ = [
    'ARMS', 'FULL_ARMS', 'SETTING_ARMS', 'DEFAULT_ARM', 'PRIORS',
    'ABLATION_OF', 'ARM_LABELS', 'DEMO_CONFIG', 'SETTINGS', 'SETTING_LABELS',
    'DetectionPreset', 'FixedLengthClassAwareSampler', 'MetricCurve',
    'detection_presets', 'curve_preset', 'setting_preset', 'MAIN_ARMS',
    'VARIANT_ARMS', 'QUICK_ARMS', 'build_detection_cfg', 'run_detection'
]

#: Arm -> (sampler: a DifficultyClassAwareSampler scheme, or
#: 'mmdet_class_aware'; DifficultyHook options, or None for no hook).
ARMS: Dict[str, Tuple[str, Optional[dict]]] = {
    'uniform': ('uniform', None),
    'rfs': ('repeat_factor', None),
    'irfs': ('instance_repeat_factor', None),
    'class_aware': ('mmdet_class_aware', None),
    'difficulty': ('paper', {}),
    'difficulty_rfs': ('repeat_factor', {}),
    'difficulty_irfs': ('instance_repeat_factor', {}),
    'difficulty_class_aware': ('class_aware', {}),
    # ablations of the difficulty x RFS arm: unseen objects, first term,
    # the paper's eval pass
    'difficulty_rfs_class_mean': ('repeat_factor', dict(unseen='class_mean')),
    'difficulty_rfs_skip_first': ('repeat_factor', dict(first_term='skip')),
    'difficulty_rfs_eval_pass':
    ('repeat_factor', dict(mode='eval_pass', eval_pass=dict(interval=2))),
    'difficulty_rfs_c4': ('repeat_factor', dict(c=4.0)),
    # the sampler side: an image as hard as its hardest object, D cubed
    'difficulty_rfs_max_beta3': ('repeat_factor', dict(reduce='max')),
    'difficulty_max_t3': ('paper', dict(reduce='max')),
    # aimed at detection's few epochs (docs/results.md says why each)
    'difficulty_rfs_class_norm': ('repeat_factor', dict(normalize='class')),
    'difficulty_rfs_eval_pass1':
    ('repeat_factor', dict(mode='eval_pass', eval_pass=dict(interval=1))),
    'difficulty_rfs_c025': ('repeat_factor', dict(c=0.25)),
}
#: Sampler options of an arm beyond its scheme.
SAMPLER_OPTIONS = {
    'difficulty_rfs_max_beta3': dict(beta=3.0),
    'difficulty_max_t3': dict(temperature=1 / 3),
}
#: The main setting's arms, in two sections of <= 100 min on 2 cores
#: each: the priors with and without difficulty (``detection``), and the
#: variants aimed at detection's few epochs (``detection_variants``). IRFS,
#: difficulty x IRFS and the other arms of ARMS run on request (--arms).
MAIN_ARMS = ('uniform', 'rfs', 'class_aware', 'difficulty_rfs',
             'difficulty_class_aware')
VARIANT_ARMS = ('difficulty_rfs_class_norm', 'difficulty_rfs_max_beta3',
                'difficulty_rfs_c025', 'difficulty_rfs_eval_pass1')
FULL_ARMS = MAIN_ARMS + VARIANT_ARMS
#: The main setting of ``--quick``.
QUICK_ARMS = ('uniform', 'rfs', 'difficulty_rfs', 'difficulty_rfs_class_norm')
#: The arms of the other settings: two priors with and without
#: difficulty, and the variant chosen before they ran (docs/results.md).
SETTING_ARMS = ('rfs', 'difficulty_rfs', 'class_aware',
                'difficulty_class_aware', 'difficulty_rfs_class_norm')
#: The arm the configs' defaults correspond to (configs/lvis_difficulty.py:
#: repeat factors x D, online, mean over objects, c = 1).
DEFAULT_ARM = 'difficulty_rfs'
#: The prior of every hook arm: the same sampler with flat difficulty,
#: except for difficulty x class-aware, compared with mmdet's
#: ClassAwareSampler (the baseline users run; its round-robin over classes
#: draws the same images in expectation as flat D, not the same draws).
PRIORS = {
    'difficulty': 'uniform',
    'difficulty_rfs': 'rfs',
    'difficulty_irfs': 'irfs',
    'difficulty_class_aware': 'class_aware',
    'difficulty_rfs_class_mean': 'rfs',
    'difficulty_rfs_skip_first': 'rfs',
    'difficulty_rfs_eval_pass': 'rfs',
    'difficulty_rfs_c4': 'rfs',
    'difficulty_rfs_max_beta3': 'rfs',
    'difficulty_max_t3': 'uniform',
    'difficulty_rfs_class_norm': 'rfs',
    'difficulty_rfs_eval_pass1': 'rfs',
    'difficulty_rfs_c025': 'rfs',
}
#: Every ablation arm and the arm it changes one option of.
ABLATION_OF = {
    'difficulty_rfs_class_mean': 'difficulty_rfs',
    'difficulty_rfs_skip_first': 'difficulty_rfs',
    'difficulty_rfs_eval_pass': 'difficulty_rfs',
    'difficulty_rfs_c4': 'difficulty_rfs',
    'difficulty_rfs_max_beta3': 'difficulty_rfs',
    'difficulty_max_t3': 'difficulty',
    'difficulty_rfs_class_norm': 'difficulty_rfs',
    'difficulty_rfs_eval_pass1': 'difficulty_rfs',
    'difficulty_rfs_c025': 'difficulty_rfs',
}
ARM_LABELS = {
    'uniform': 'Uniform',
    'rfs': 'RFS (repeat factors)',
    'irfs': 'IRFS (instance-aware repeat factors)',
    'class_aware': 'Class-aware (mmdet)',
    'difficulty': 'Difficulty, flat (w ∝ D)',
    'difficulty_rfs': 'Difficulty × RFS',
    'difficulty_irfs': 'Difficulty × IRFS',
    'difficulty_class_aware': 'Difficulty × class-aware',
    'difficulty_rfs_class_mean': 'Difficulty × RFS, unseen = class mean',
    'difficulty_rfs_skip_first': 'Difficulty × RFS, first term skipped',
    'difficulty_rfs_eval_pass': 'Difficulty × RFS, eval pass every 2',
    'difficulty_rfs_c4': 'Difficulty × RFS, c = 4',
    'difficulty_rfs_max_beta3': 'Difficulty × RFS, image max, beta 3',
    'difficulty_max_t3': 'Difficulty, flat, image max, D^3',
    'difficulty_rfs_class_norm': 'Difficulty × RFS, D / class mean',
    'difficulty_rfs_eval_pass1': 'Difficulty × RFS, eval pass every epoch',
    'difficulty_rfs_c025': 'Difficulty × RFS, c = 0.25',
}
DEMO_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'demo', 'mask-rcnn_r18_synthetic-lvis_difficulty.py')
#: The generator settings (arguments of ``make_synthetic_lvis``). Every
#: one has the demo's 300 training images; they differ in layout seed,
#: hardness (how much of the look-alike's colour a hard variant wears: 1 is
#: all of it, the demo), imbalance ratio and objects per image. The
#: validation splits are balanced and large enough for >= 200 hard
#: variants each (one object <= 0.5 points of hard recall).
SETTINGS: Dict[str, Dict[str, Any]] = {
    'main':
    dict(
        seed=0,
        num_train=300,
        num_val=600,
        val_hard_variant_fraction=0.45,
        hard_variant_colour_mix=0.35),
    'harder':
    dict(
        seed=1,
        num_train=300,
        num_val=400,
        val_hard_variant_fraction=0.45,
        hard_variant_colour_mix=0.5,
        imbalance_ratio=50.0,
        objects_per_image=(2, 5)),
    'steeper':
    dict(
        seed=2,
        num_train=300,
        num_val=800,
        val_hard_variant_fraction=0.45,
        hard_variant_colour_mix=0.25,
        imbalance_ratio=200.0,
        objects_per_image=(1, 3)),
}
SETTING_LABELS = {
    'main': 'layout 0, colour mix 0.35, imbalance 100, 1-4 objects',
    'harder': 'layout 1, colour mix 0.5, imbalance 50, 2-5 objects',
    'steeper': 'layout 2, colour mix 0.25, imbalance 200, 1-3 objects',
}
SYNTHETIC = SETTINGS['main']
#: (metric key, record key, factor) of a run, in table order.
METRIC_KEYS = (
    ('lvis/bbox_AP', 'AP', 100.0),
    ('lvis/bbox_AP50', 'AP50', 100.0),
    ('lvis/bbox_APr', 'APr', 100.0),
    ('lvis/bbox_APc', 'APc', 100.0),
    ('lvis/bbox_APf', 'APf', 100.0),
    ('hard_variant/recall_hard', 'recall_hard', 100.0),
    ('hard_variant/recall_normal', 'recall_normal', 100.0),
)
#: A run whose AP ends below this collapsed (the recipe is not done).
COLLAPSED_AP = 1.0


@DATA_SAMPLERS.register_module()
class FixedLengthClassAwareSampler(ClassAwareSampler):
    """mmdet's ``ClassAwareSampler`` with a set number of images per epoch.

    The drawing is mmdet's; only the epoch length, ``len(dataset)`` in
    mmdet, becomes ``images_per_epoch``, so the baseline runs as many
    iterations as the other arms.

    Args:
        dataset (Sized): The dataset.
        seed (int, optional): Seed shared by all ranks. Defaults to None.
        num_sample_class (int): Images taken per class in turn.
            Defaults to 1.
        images_per_epoch (int, optional): Images per epoch over all ranks.
            Defaults to None (``len(dataset)``).
    """

    def __init__(self,
                 dataset: Any,
                 seed: Optional[int] = None,
                 num_sample_class: int = 1,
                 images_per_epoch: Optional[int] = None) -> None:
        super().__init__(dataset, seed=seed, num_sample_class=num_sample_class)
        if images_per_epoch is not None:
            if isinstance(images_per_epoch, bool) or not isinstance(
                    images_per_epoch, int) or images_per_epoch < 1:
                raise ValueError('images_per_epoch must be a positive int, '
                                 f'got {images_per_epoch!r}')
            self.num_samples = int(
                math.ceil(images_per_epoch / self.world_size))
            self.total_size = self.num_samples * self.world_size


@dataclass
class DetectionPreset:
    """One detection evidence run: arms, seeds, schedule, data.

    The schedule defaults are the demo's recipe; ``epochs`` and
    ``images_per_epoch`` set the budget, equal for every arm.

    Attributes:
        seeds (list[int]): One run per seed and arm.
        epochs (int): Epochs; the hook updates after each.
        images_per_epoch (int): Images every sampler draws per epoch.
        arms (tuple[str]): Subset of :data:`ARMS`.
        batch_size (int): Training batch size. Defaults to 4.
        lr (float): SGD learning rate. Defaults to 0.02.
        warmup_iters (int): Linear warm-up from ``lr / 1000``.
            Defaults to 200.
        decay_epochs (int): Last epochs at lr x0.1. Defaults to 2.
        synthetic (dict): Arguments of ``make_synthetic_lvis``.
        rfs_thr (float): Repeat-factor threshold (the demo's 0.1).
        with_mask (bool): Train the mask branch (the demo's Mask R-CNN);
            False trains its boxes only (Faster R-CNN), about twice as
            fast. Defaults to False.
        threads (int): torch CPU threads of each run. Defaults to 1.
        jobs (int): Runs trained at once, each in a spawned process.
            Defaults to 1. The records do not depend on it.
        work_dir (str): Runs, data and ``results.json`` (git-ignored).
        data_root (str, optional): Where the synthetic data is made.
            Defaults to None (``{work_dir}/data/synthetic_lvis_{hash}/``,
            one folder per generator setting).
        config (str): The recipe. Defaults to the demo.
        eval_every (int, optional): Epochs between evaluations during
            training, each recorded in the run's ``curve`` (AP against
            iterations). Defaults to None (evaluated once, at the end).
        name (str): The group of runs in the results file (a setting of
            :data:`SETTINGS`, or ``'curve'``). Defaults to 'main'.
    """
    seeds: List[int]
    epochs: int
    images_per_epoch: int
    arms: Tuple[str, ...] = tuple(ARMS)
    batch_size: int = 4
    lr: float = 0.02
    warmup_iters: int = 200
    decay_epochs: int = 2
    synthetic: Dict[str, Any] = field(default_factory=lambda: dict(SYNTHETIC))
    rfs_thr: float = 0.1
    with_mask: bool = False
    threads: int = 1
    jobs: int = 1
    work_dir: str = osp.join('work_dirs', 'evidence', 'detection')
    data_root: Optional[str] = None
    config: str = DEMO_CONFIG
    eval_every: Optional[int] = None
    name: str = 'main'

    def __post_init__(self) -> None:
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown or not self.arms:
            raise ValueError(f'arms must be a non-empty subset of '
                             f'{tuple(ARMS)}, got {self.arms}')
        if not self.seeds:
            raise ValueError('seeds must not be empty')
        for name in ('epochs', 'images_per_epoch', 'batch_size', 'threads',
                     'jobs'):
            if getattr(self, name) < 1:
                raise ValueError(
                    f'{name} must be >= 1, got {getattr(self, name)}')

    @property
    def iterations(self) -> int:
        """Training iterations of every run."""
        return self.epochs * int(
            math.ceil(self.images_per_epoch / self.batch_size))

    @property
    def data_dir(self) -> str:
        """The synthetic data folder, with a trailing slash."""
        return osp.join(
            self.data_root or osp.join(
                self.work_dir, 'data', 'synthetic_lvis_' + hashlib.sha256(
                    json.dumps(self.synthetic,
                               sort_keys=True).encode()).hexdigest()[:8]), '')


#: Epochs of the 300 training images (75 iterations each at batch 4) of
#: every evidence run, chosen from the convergence curve (docs/results.md:
#: at least where uniform's AP stops rising); lr x0.1 for the last
#: BUDGET_DECAY of them, as the demo's recipe (2 of 10).
BUDGET_EPOCHS = 32
BUDGET_DECAY = 4
#: The convergence curve: uniform and difficulty x RFS on one seed of the
#: main setting, evaluated every CURVE_EVAL_EVERY epochs.
CURVE_EPOCHS = 40
CURVE_EVAL_EVERY = 4
CURVE_DECAY = 4
CURVE_ARMS = ('uniform', 'difficulty_rfs')


def _preset(quick: bool,
            name: str,
            arms: Sequence[str],
            seeds: List[int],
            work_dir: Optional[str],
            jobs: int,
            curve: bool = False) -> DetectionPreset:
    """A setting of :data:`SETTINGS` at the evidence budget (or the
    curve's), or its quick version."""
    extra: Dict[str, Any] = dict(
        jobs=jobs, seeds=seeds, arms=tuple(arms), name=name)
    if work_dir is not None:
        extra['work_dir'] = work_dir
    if quick:  # a few minutes on 2 cores
        return DetectionPreset(
            epochs=3,
            images_per_epoch=120,
            warmup_iters=30,
            decay_epochs=1,
            eval_every=1 if curve else None,
            synthetic=dict(SETTINGS[name], num_val=200),
            **extra)
    return DetectionPreset(
        epochs=CURVE_EPOCHS if curve else BUDGET_EPOCHS,
        images_per_epoch=300,
        warmup_iters=200,
        decay_epochs=CURVE_DECAY if curve else BUDGET_DECAY,
        eval_every=CURVE_EVAL_EVERY if curve else None,
        synthetic=dict(SETTINGS[name]),
        **extra)


def detection_presets(quick: bool,
                      num_seeds: Optional[int] = None,
                      work_dir: Optional[str] = None,
                      jobs: int = 1,
                      arms: Optional[Sequence[str]] = None) -> DetectionPreset:
    """The main setting as ``tools/reproduce_evidence.py`` runs it.

    Full: 5 seeds, :data:`BUDGET_EPOCHS` epochs of the 300 training images.
    Quick: 1 seed, 3 epochs of 120 images, 200 validation images.

    Args:
        quick (bool): The short setting.
        num_seeds (int, optional): Seeds ``0 .. num_seeds - 1``.
            Defaults to 1 (quick) / 5 (full).
        work_dir (str, optional): Overrides the work dir.
        jobs (int): Runs trained at once. Defaults to 1.
        arms (Sequence[str], optional): Defaults to :data:`FULL_ARMS`
            (quick: uniform, RFS, difficulty x RFS and D / class mean).
    """
    num = num_seeds if num_seeds is not None else (1 if quick else 5)
    if arms is None:
        arms = QUICK_ARMS if quick else FULL_ARMS
    return _preset(quick, 'main', arms, list(range(num)), work_dir, jobs)


def curve_preset(quick: bool,
                 work_dir: Optional[str] = None,
                 jobs: int = 1) -> DetectionPreset:
    """The convergence curve: :data:`CURVE_ARMS` on seed 0 of the main
    setting, :data:`CURVE_EPOCHS` epochs, evaluated every
    :data:`CURVE_EVAL_EVERY` (quick: 3 epochs of 120 images, every one)."""
    preset = _preset(quick, 'main', CURVE_ARMS, [0], work_dir, jobs, True)
    preset.name = 'curve'
    return preset


def setting_preset(quick: bool,
                   name: str,
                   num_seeds: Optional[int] = None,
                   work_dir: Optional[str] = None,
                   jobs: int = 1) -> DetectionPreset:
    """Another setting of :data:`SETTINGS`: :data:`SETTING_ARMS` x 3 seeds
    at the main budget (quick: 1 seed, RFS and difficulty x RFS, small)."""
    if name not in SETTINGS or name == 'main':
        others = [n for n in SETTINGS if n != 'main']
        raise ValueError(
            f'name must be one of the other settings {others}, got {name!r}')
    num = num_seeds if num_seeds is not None else (1 if quick else 3)
    arms = ('rfs', 'difficulty_rfs') if quick else SETTING_ARMS
    return _preset(quick, name, arms, list(range(num)), work_dir, jobs)


def _sampler_cfg(arm: str, preset: DetectionPreset) -> dict:
    sampler, _ = ARMS[arm]
    if sampler == 'mmdet_class_aware':
        return dict(
            type='FixedLengthClassAwareSampler',
            num_sample_class=1,
            images_per_epoch=preset.images_per_epoch)
    return dict(
        type='DifficultyClassAwareSampler',
        scheme=sampler,
        thr=preset.rfs_thr,
        images_per_epoch=preset.images_per_epoch,
        **SAMPLER_OPTIONS.get(arm, {}))


def _schedule(cfg: Any, preset: DetectionPreset) -> None:
    epochs = preset.epochs
    every = preset.eval_every
    cfg.train_cfg = dict(
        type='EpochBasedTrainLoop',
        max_epochs=epochs,
        # Without a curve run_detection calls runner.val() once, at the end.
        val_begin=every or epochs + 1,
        val_interval=every or 1)
    cfg.param_scheduler = [
        dict(
            type='LinearLR',
            start_factor=0.001,
            by_epoch=False,
            begin=0,
            end=min(preset.warmup_iters, preset.iterations)),
        dict(
            type='MultiStepLR',
            begin=0,
            end=epochs,
            by_epoch=True,
            milestones=[max(1, epochs - preset.decay_epochs)],
            gamma=0.1)
    ]
    cfg.optim_wrapper.optimizer.lr = preset.lr
    cfg.train_dataloader.batch_size = preset.batch_size


def _boxes_only(cfg: Any) -> None:
    """Faster R-CNN from the Mask R-CNN recipe (boxes are unchanged)."""
    cfg.model.roi_head.mask_head = None
    cfg.model.roi_head.mask_roi_extractor = None
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for transform in cfg[name].dataset.pipeline:
            if transform['type'] == 'LoadAnnotations':
                transform['with_mask'] = False


def build_detection_cfg(preset: DetectionPreset, arm: str, seed: int,
                        work_dir: str) -> Any:
    """The mmengine config of one run: the recipe with the arm's sampler.

    Args:
        preset (DetectionPreset): The setting.
        arm (str): One of :data:`ARMS`.
        seed (int): ``randomness.seed`` (initial weights, sampler draws).
        work_dir (str): The run's folder.
    """
    from mmengine.config import Config
    if arm not in ARMS:
        raise ValueError(f'arm must be one of {tuple(ARMS)}, got {arm!r}')
    cfg = Config.fromfile(preset.config)
    root = preset.data_dir
    val_ann = root + 'annotations/lvis_v1_val.json'
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].update(num_workers=0, persistent_workers=False)
        cfg[name].dataset.update(
            data_root=root, synthetic=dict(preset.synthetic))
    cfg.train_dataloader.sampler = _sampler_cfg(arm, preset)
    hook_options = ARMS[arm][1]
    hooks = [h for h in cfg.custom_hooks if h['type'] == 'DifficultyHook']
    if hook_options is not None:
        hooks[0].update(dump=True, **hook_options)
        if hook_options.get('mode') == 'eval_pass':
            hooks[0]['eval_pass'] = dict(
                hook_options.get('eval_pass', {}), num_workers=0)
    cfg.custom_hooks = hooks if hook_options is not None else []
    cfg.val_evaluator = cfg.test_evaluator = [
        dict(type='LVISMetric', ann_file=val_ann, metric=['bbox']),
        dict(type='HardVariantRecall', ann_file=val_ann)
    ]
    _schedule(cfg, preset)
    if not preset.with_mask:
        _boxes_only(cfg)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 50
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'evidence_{arm}_seed{seed}_{uuid.uuid4().hex[:8]}'
    # One visualizer per run (a fixed name would reuse the first run's).
    cfg.visualizer.name = cfg.experiment_name
    cfg.log_level = 'WARNING'
    return cfg


def train_hard_flags(index: Any, ann_file: str) -> np.ndarray:
    """Hard-variant flag of every training object, in the hook's order.

    mmdet's LVIS loader drops the annotation key, so objects are matched
    back to the annotation file by image id and box.

    Args:
        index (DatasetIndex): The sampler's index of the training set.
        ann_file (str): Its annotation file.

    Returns:
        np.ndarray: ``(num_objects,)`` bool.
    """
    flags_of: Dict[Tuple[int, Tuple[float, ...]], bool] = {}
    for ann in load(ann_file)['annotations']:
        x, y, w, h = ann['bbox']
        key = (ann['image_id'], tuple(np.round([x, y, x + w, y + h], 2)))
        flags_of[key] = bool(ann.get(HARD_KEY, False))
    kept = ~index.ignored
    image = np.repeat(
        np.arange(index.num_images), np.diff(index.object_offsets))[kept]
    boxes = np.round(index.object_boxes[kept].astype(np.float64), 2)
    return np.array([
        flags_of[(int(index.img_ids[i]), tuple(box))]
        for i, box in zip(image, boxes)
    ])


def _signal(runner: Any, train_ann: str) -> Dict[str, float]:
    """What the sampler and the hook did with the hard variants."""
    loader = runner.train_dataloader
    sampler = getattr(loader.batch_sampler, 'sampler', loader.sampler)
    index = getattr(sampler, 'dataset_index', None)
    if index is None:  # mmdet's class-aware sampler
        return {}
    flags = train_hard_flags(index, train_ann)
    counts = index.kept_counts()
    image_of = np.repeat(np.arange(index.num_images), counts)

    def images_holding(objects: np.ndarray) -> np.ndarray:
        """Images holding at least one of the (kept) objects flagged."""
        held = np.zeros(index.num_images, dtype=bool)
        held[image_of[objects]] = True
        return held

    def per_image(probs: np.ndarray) -> np.ndarray:
        return np.bincount(
            index.image_of_index, weights=probs, minlength=index.num_images)

    has_hard = images_holding(flags)
    probs, prior = per_image(sampler.probabilities), per_image(sampler.prior)
    out = dict(
        share_hard_images=float(has_hard.mean() * 100),
        mass_hard_images=float(probs[has_hard].sum() * 100),
        prior_mass_hard_images=float(prior[has_hard].sum() * 100))
    hooks = [h for h in runner.hooks if isinstance(h, DifficultyHook)]
    if hooks:
        # What D adds to the prior: the mass under D x prior over the mass
        # the prior alone puts on the same images (same seed and epoch).
        frequency = [
            c['frequency'] for c in sorted(
                load(train_ann)['categories'], key=lambda c: c['id'])
        ]
        kept_labels = index.kept_labels()
        held = dict(hard=has_hard)
        for group in 'rcf':
            held[group] = images_holding(
                np.isin(kept_labels,
                        [k for k, f in enumerate(frequency) if f == group]))
        for name, images in held.items():
            if prior[images].sum() > 0:
                out[f'lift_{name}'] = float(probs[images].sum() /
                                            prior[images].sum())
    if hooks and hooks[0].state is not None:
        hook = hooks[0]
        labels = hook.instance_labels
        normal = np.isin(labels, labels[flags]) & ~flags
        by_epoch = [
            load_dump(path)
            for _, path in find_dumps(osp.join(runner.work_dir, 'difficulty'))
        ]
        # D as the sampler used it (the unseen policy applied)
        d = [dump['instance_difficulty'] for dump in by_epoch]
        out.update(
            d_hard=float(d[-1][flags].mean()),
            d_normal=float(d[-1][normal].mean()),
            d_hard_by_epoch=[float(x[flags].mean()) for x in d],
            d_normal_by_epoch=[float(x[normal].mean()) for x in d],
            d_other_by_epoch=[float(x[~flags & ~normal].mean()) for x in d],
            observed=float(hook.state.observed[:labels.size].mean() * 100))
    return out


def _table_metrics(metrics: Dict[str, float]) -> Dict[str, float]:
    """The :data:`METRIC_KEYS` of an evaluation, scaled to their table
    units (NaN where LVISMetric reports -1: a group without GT objects)."""
    out = {}
    for key, name, factor in METRIC_KEYS:
        value = float(metrics[key])
        out[name] = value * factor if value >= 0 else float('nan')
    return out


class MetricCurve(Hook):
    """Records the metrics of every evaluation during training (AP
    against iterations), and the time the evaluations took."""
    priority = 'LOW'

    def __init__(self) -> None:
        self.points: List[Dict[str, float]] = []
        self.seconds = 0.0
        self.metrics: Dict[str, float] = {}
        self._tic = 0.0

    def before_val_epoch(self, runner: Any) -> None:
        self._tic = time.perf_counter()

    def after_val_epoch(self, runner: Any, metrics: Dict[str, float]) -> None:
        self.seconds += time.perf_counter() - self._tic
        self.points.append(
            dict(iteration=int(runner.iter), **_table_metrics(metrics)))
        self.metrics = dict(metrics)


def _run_one(preset: DetectionPreset, arm: str, seed: int,
             work_dir: str) -> Dict[str, Any]:
    """Train and evaluate one (arm, seed); the record of the run."""
    from mmengine.runner import Runner
    tic = time.perf_counter()
    runner = Runner.from_cfg(build_detection_cfg(preset, arm, seed, work_dir))
    curve = MetricCurve()
    runner.register_hook(curve, priority='LOW')
    runner.train()
    train_s = time.perf_counter() - tic - curve.seconds
    tic = time.perf_counter()
    if curve.points and curve.points[-1]['iteration'] == runner.iter:
        metrics = curve.metrics  # the curve's last point is the end
    else:
        metrics = runner.val()
    rec: Dict[str, Any] = dict(
        method=arm,
        seed=seed,
        iterations=int(runner.iter),
        train_seconds=train_s,
        eval_seconds=time.perf_counter() - tic,
        num_hard=int(metrics.get('hard_variant/num_hard', 0)),
        num_normal=int(metrics.get('hard_variant/num_normal', 0)),
        **_table_metrics(metrics))
    rec['collapsed'] = bool(rec['AP'] < COLLAPSED_AP)
    if curve.points:
        rec['curve'] = curve.points
    rec.update(
        _signal(runner, preset.data_dir + 'annotations/lvis_v1_train.json'))
    del runner
    gc.collect()
    return rec


def _run_in_worker(preset: DetectionPreset, arm: str, seed: int,
                   work_dir: str) -> Dict[str, Any]:
    torch.set_num_threads(preset.threads)
    return _run_one(preset, arm, seed, work_dir)


Run = Tuple[str, int, str]


def _train_all(preset: DetectionPreset,
               runs: Sequence[Run]) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """``(index in runs, record)`` as the runs finish.

    ``preset.jobs`` > 1 trains that many at once in spawned processes (a
    fork would not carry the parent's OpenMP threads); a failed run stops
    the others and raises its error.
    """
    if preset.jobs == 1 or len(runs) == 1:
        for index, run in enumerate(runs):
            yield index, _run_one(preset, *run)
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


def _versions() -> Dict[str, str]:
    import mmcv
    import mmdet
    import mmengine
    return dict(
        torch=torch.__version__,
        mmdet=mmdet.__version__,
        mmengine=mmengine.__version__,
        mmcv=mmcv.__version__)


def _validation_counts(ann_file: str) -> Tuple[int, int]:
    """Hard variants, and normal objects of their classes, in a split."""
    anns = load(ann_file)['annotations']
    hard = [a for a in anns if a.get(HARD_KEY, False)]
    classes = {a['category_id'] for a in hard}
    normal = [
        a for a in anns
        if a['category_id'] in classes and not a.get(HARD_KEY, False)
    ]
    return len(hard), len(normal)


def _group(preset: DetectionPreset, summary: Dict[str, Any], keys: List[str],
           old: Dict[str, Any]) -> Dict[str, Any]:
    """The results file's entry of a preset (see :mod:`.detection_store`)."""
    hard, normal = _validation_counts(preset.data_dir +
                                      'annotations/lvis_v1_val.json')
    kept = {
        k: v
        for k, v in asdict(preset).items()
        if k not in ('jobs', 'work_dir', 'data_root')
    }
    return dict(
        old,
        preset=kept,
        schedule=schedule_of(preset),
        iterations=preset.iterations,
        data={
            k: summary[k]
            for k in ('num_images', 'num_instances', 'frequency',
                      'hard_variant_classes')
        },
        num_hard_val=hard,
        num_normal_val=normal,
        runs=keys,
        versions=_versions())


def _eta(start: float, finished: int, left: int) -> str:
    elapsed = time.perf_counter() - start
    if not finished:
        return f'{elapsed / 60:.0f} min'
    return (f'{elapsed / 60:.0f} min, ETA '
            f'{elapsed / finished * left / 60:.0f} min')


def run_detection(preset: DetectionPreset,
                  progress: Optional[Callable[[str], None]] = print,
                  meta: Optional[Dict[str, Any]] = None,
                  store: Optional[ResultStore] = None) -> Dict[str, Any]:
    """Train every arm on every seed not yet recorded; evaluate each run.

    Runs already in ``store`` (same :func:`.detection_store.run_key`) are
    kept, not trained again; the store is saved after every run, so a
    stopped section resumes where it stopped.

    Args:
        preset (DetectionPreset): The setting.
        progress (callable, optional): Receives a line per finished run,
            with the progress and an ETA.
        meta (dict, optional): Kept in the group as it is (e.g. the
            command that ran it).
        store (ResultStore, optional): Where runs are recorded and
            resumed from. Defaults to ``{work_dir}/results.json``.

    Returns:
        dict: The group (:mod:`.detection_store`) with its ``records``
        (one per run, in (seed, arm) order).
    """
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(preset.threads)
    os.makedirs(preset.work_dir, exist_ok=True)
    if store is None:
        store = ResultStore(osp.join(preset.work_dir, 'results.json'))
    name = preset.name
    try:
        summary = ensure_synthetic_lvis(preset.data_dir, **preset.synthetic)
        runs = [(arm, seed,
                 osp.join(preset.work_dir, 'runs', name, f'{arm}_seed{seed}'))
                for seed in preset.seeds for arm in preset.arms]
        keys = [run_key(preset, arm, seed) for arm, seed, _ in runs]
        old = store.groups.get(name, {})
        listed = list(keys)
        if old.get('schedule') == schedule_of(preset):
            # Runs of the same schedule (other arms or seeds) stay listed,
            # but not an older record of an (arm, seed) planned here.
            planned = {(arm, seed) for arm, seed, _ in runs}
            listed = [
                k for k in old['runs'] if k not in keys and k in store.runs and
                (store.runs[k]['method'], store.runs[k]['seed']) not in planned
            ] + keys
        else:
            old = {}
        store.groups[name] = _group(
            preset, summary, listed,
            dict(
                dict(started=time.time(), seconds=0.0),
                **{k: old[k]
                   for k in ('started', 'seconds')
                   if k in old}, **(meta or {})))
        seconds = store.groups[name]['seconds']
        recipe = recipe_sha(preset)
        todo = [i for i, k in enumerate(keys) if store.get(k, recipe) is None]
        if progress is not None and len(todo) < len(runs):
            progress(f'[detection {name}] {len(runs) - len(todo)} of '
                     f'{len(runs)} runs recorded in {store.path}; training '
                     f'the other {len(todo)}')
        store.save()
        finished = 0
        # Nothing to train (all recorded): no pool is started.
        trained = _train_all(preset, [runs[i] for i in todo]) if todo else ()
        for index, rec in trained:
            store.add(keys[todo[index]],
                      dict(rec, setting=name, recipe_sha=recipe))
            finished += 1
            store.groups[name]['seconds'] = seconds + (
                time.perf_counter() - start)
            store.save()
            if progress is not None:
                progress(f"[detection {name}] {rec['method']} seed "
                         f"{rec['seed']}: AP {rec['AP']:.1f}, APr "
                         f"{rec['APr']:.1f}, hard recall "
                         f"{rec['recall_hard']:.1f} %, "
                         f"{rec['train_seconds']:.0f} s "
                         f'({finished}/{len(todo)}; '
                         f'{_eta(start, finished, len(todo) - finished)})')
    finally:
        torch.set_num_threads(threads)
    return store.result(name)
