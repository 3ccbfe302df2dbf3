"""DifficultyHook: instance difficulty from training, re-sampling each epoch.

Data flow of one epoch (docs/design.md):
``DifficultyClassAwareSampler`` draws the images -> the model trains -> a
capture (:mod:`mmdiff.models.probability_capture`) hands over the class
probabilities of every GT object (detection: its GT-injected RoI;
classification: the image) -> at epoch end the records of all ranks are
merged, the :class:`~mmdiff.core.DifficultyState` adds one learning /
unlearning term per instance, instance difficulty is aggregated per image
and handed to the sampler for the next epoch. The state and the sampler
are saved in checkpoints under one key (:data:`CHECKPOINT_KEY`).
"""
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from mmdiff.analysis.dump import write_epoch, write_index
from mmdiff.core import (FIRST_TERMS, LVIS_FREQUENCY_GROUPS, NORMALIZATIONS,
                         REDUCTIONS, STORAGES, UNSEEN_POLICIES,
                         DifficultyState, check_choice, fill_unseen,
                         frequency_of_counts, image_difficulty, image_groups,
                         instance_offsets, instance_to_image,
                         normalize_difficulty, object_ids)
from mmdiff.core.records import merge_parts, select_rows
from mmdiff.datasets.sample_idx import check_pipeline_keeps_sample_idx
from mmdiff.models import build_capture
from mmdiff.models.probability_capture import to_device
from mmdiff.samplers import DifficultyClassAwareSampler
from .checkpoint import CHECKPOINT_KEY, FORMAT_VERSION, DifficultyCheckpoint
from .epoch_log import dump_dir, epoch_scalars, log_epoch
from .eval_pass import build_eval_pass_loader, eval_pass_options, run_eval_pass
from .runner_checks import check_epoch_based, find_sampler

__all__ = ['DifficultyHook', 'CHECKPOINT_KEY', 'FORMAT_VERSION', 'MODES']

#: Where the predictions come from: the training steps themselves, or an
#: extra eval-mode pass every ``eval_pass['interval']`` epochs.
MODES = ('online', 'eval_pass')


@HOOKS.register_module()
class DifficultyHook(DifficultyCheckpoint, Hook):
    """Re-balance training by instance difficulty (Yu et al., CVPR 2022).

    Args:
        c (float): Prior of ``D = (c + sum du) / (c + sum dl)``; a larger
            c makes D less sensitive. Defaults to 1.0.
        reduce (str): Instance-to-image aggregation, one of
            :data:`mmdiff.core.REDUCTIONS`. Defaults to 'mean'.
        storage (str): How last predictions are kept, one of
            :data:`mmdiff.core.STORAGES` ('dense': float32, exact;
            'dense_fp16': float16 codes, half of dense; 'topk': true class
            + top-k others + rest; 'auto': dense when objects x classes <=
            2 ** 24, else topk). The README's storage table says what
            each costs and which to pick. Defaults to 'auto'.
        topk (int): Other classes kept per object in topk storage.
            Defaults to 8.
        empty_difficulty (float): Difficulty of images without objects
            (1.0 = the starting difficulty). Defaults to 1.0.
        stage (int): Cascade RoI head stage to read. Defaults to -1.
        frequency_thresholds (tuple[int, int]): Training-image counts
            bounding LVIS rare / common classes, for the logs. Defaults to
            (10, 100), LVIS's definition.
        state_device (str): Where the difficulty state lives ('cpu' or
            'cuda'). Defaults to 'cpu'.
        dump (bool): Write ``difficulty/epoch_{e}.npz`` in the work dir
            every epoch (for ``tools/analysis``). Defaults to False.
        log_quantiles (tuple[float]): Quantiles of D to log.
            Defaults to (0.1, 0.5, 0.9, 0.99).
        unseen (str): What objects without a stored prediction (never
            drawn yet, or reset) weigh: 'one' (D = 1), 'mean' (the mean D
            of the observed objects) or 'class_mean' (that of their
            class); see :func:`mmdiff.core.fill_unseen`. Defaults to 'one'.
        first_term (str): 'prior' (the paper: the first term is the PSI
            split from p_0 = 1/K) or 'skip' (D counts changes between
            observations only). Defaults to 'prior'.
        mode (str): 'online' reads the probabilities from the training
            forward pass (free); 'eval_pass' runs an eval-mode pass over
            the training images (the paper's protocol; deterministic
            pipeline, GT boxes as RoIs). Defaults to 'online'.
        eval_pass (dict, optional): Options of the eval pass, as EMAHook
            groups ``ema_cfg``: ``interval`` (epochs between passes; the
            weights of the epochs in between stay; 1), ``pipeline`` (None:
            the test pipeline with annotations loaded before the resize
            and ``sample_idx`` kept), ``batch_size`` (None: the train batch
            size), ``num_workers`` (2). Defaults to None (all defaults).
        normalize (str): 'none' (D as it is) or 'class' (D over the mean
            D of the object's class, so that under a class prior D only
            ranks objects within their class); see
            :func:`mmdiff.core.normalize_difficulty`. The logs and dumps
            then hold the normalised D (each class's mean is 1).
            Defaults to 'none'.
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW) saves the epoch

    def __init__(self,
                 c: float = 1.0,
                 reduce: str = 'mean',
                 storage: str = 'auto',
                 topk: int = 8,
                 empty_difficulty: float = 1.0,
                 stage: int = -1,
                 frequency_thresholds: Tuple[int, int] = (10, 100),
                 state_device: str = 'cpu',
                 dump: bool = False,
                 log_quantiles: Sequence[float] = (0.1, 0.5, 0.9, 0.99),
                 unseen: str = 'one',
                 first_term: str = 'prior',
                 mode: str = 'online',
                 eval_pass: Optional[dict] = None,
                 normalize: str = 'none') -> None:
        if not c > 0:
            raise ValueError(f'c must be > 0, got {c}')
        check_choice(reduce, 'reduce', REDUCTIONS)
        check_choice(storage, 'storage', STORAGES)
        if len(frequency_thresholds) != 2 or not \
                0 < frequency_thresholds[0] < frequency_thresholds[1]:
            raise ValueError('frequency_thresholds must be two increasing '
                             f'positive counts, got {frequency_thresholds}')
        check_choice(mode, 'mode', MODES)
        check_choice(unseen, 'unseen', UNSEEN_POLICIES)
        check_choice(first_term, 'first_term', FIRST_TERMS)
        check_choice(normalize, 'normalize', NORMALIZATIONS)
        self.normalize = normalize
        self.unseen = unseen
        self.first_term = first_term
        self.mode = mode
        self.eval_pass = eval_pass_options(eval_pass)
        self._eval_loader: Any = None
        self.c = float(c)
        self.reduce = reduce
        self.storage = storage
        self.topk = int(topk)
        self.empty_difficulty = float(empty_difficulty)
        self.stage = int(stage)
        self.frequency_thresholds = tuple(frequency_thresholds)
        self.state_device = state_device
        self.dump = dump
        self.log_quantiles = tuple(log_quantiles)
        self.state: Optional[DifficultyState] = None
        self.sampler: Optional[DifficultyClassAwareSampler] = None
        self._capture: Any = None
        self._changed_images: set = set()
        self._loaded: Optional[dict] = None
        self._step = 0

    # ------------------------------------------------------------------
    # set-up
    def before_train(self, runner: Any) -> None:
        """Check the set-up, build the state, start capturing."""
        check_epoch_based(runner.train_loop)
        self.sampler = find_sampler(runner)
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        online = self.mode == 'online'
        self._capture = build_capture(
            model, self.record_batch, stage=self.stage, attach=online)
        if online:
            check_pipeline_keeps_sample_idx(runner.train_dataloader.dataset)
        else:
            self._eval_loader = build_eval_pass_loader(
                runner, **{
                    k: v
                    for k, v in self.eval_pass.items() if k != 'interval'
                })
            check_pipeline_keeps_sample_idx(self._eval_loader.dataset,
                                            'eval pass pipeline')

        # The sampler's walk of the dataset: objects of every unique image.
        index = self.index = self.sampler.dataset_index
        counts = index.kept_counts()
        self.counts = counts
        self.offsets = instance_offsets(counts)
        self.instance_labels = index.kept_labels()
        self.instance_image = instance_to_image(counts)
        self._offsets_t: Dict[torch.device, torch.Tensor] = {}
        num_classes = self._capture.num_classes
        self.class_groups = frequency_of_counts(index.images_per_class(),
                                                self.frequency_thresholds)
        if self.sampler.groups is None:
            self.sampler.set_groups(
                image_groups(self.class_groups, self.sampler.class_index),
                LVIS_FREQUENCY_GROUPS)
        self.state = DifficultyState(
            num_instances=max(int(counts.sum()), 1),
            num_classes=num_classes,
            c=self.c,
            storage=self.storage,
            topk=self.topk,
            device=self.state_device,
            first_term=self.first_term)
        self.invalid_rows = 0
        # A checkpoint's storage and k replace the configured ones; the
        # state's records (state.records) follow them.
        self._restore(runner)
        if self.dump and is_main_process():
            self._dump_index(runner)
        runner.logger.info(
            f'DifficultyHook: {int(counts.sum())} objects in {len(counts)} '
            f'images, {num_classes} classes, {self.state.storage} state '
            f'({self.state.nbytes / 2**20:.1f} MiB), sampler scheme '
            f'{self.sampler.scheme!r}')

    def before_train_iter(self,
                          runner: Any,
                          batch_idx: int,
                          data_batch: Any = None) -> None:
        self._step = runner.iter  # orders the ranks' records (merge_parts)

    def after_train(self, runner: Any) -> None:
        if self._capture is not None:
            self._capture.detach()
            self._capture = None

    # ------------------------------------------------------------------
    # capture
    def record_batch(self, batch: Dict[str, Any]) -> None:
        """Keep one step's predictions; the capture's callback.

        Args:
            batch (dict): ``sample_idx`` / ``gt_index`` / ``labels`` (n,),
                ``probs`` (n, K) of the GT RoIs, optionally ``valid`` (n,)
                (False: not a GT RoI), and ``num_gts``: (image, number of
                GT objects) of every image of the step. Kept on the model's
                device, with no host synchronisation.
        """
        for idx, num in batch['num_gts']:
            if num != self.counts[idx]:
                # The pipeline changed this image's objects: its GT indices
                # no longer name the same objects.
                self._changed_images.add(idx)
        probs = batch['probs']
        if probs.shape[0] == 0:
            return
        device = probs.device
        if device not in self._offsets_t:
            self._offsets_t[device] = to_device(
                torch.from_numpy(self.offsets), device)
        ids, valid = object_ids(self._offsets_t[device], batch['sample_idx'],
                                batch['gt_index'])
        # valid=False in the batch: padding the capture kept only for the
        # number of its rows (no observation, not counted).
        self.state.records.add(
            ids,
            batch['labels'],
            probs,
            valid,
            self._step,
            observed=batch.get('valid'))

    def _gather_records(self) -> Dict[str, Any]:
        """This epoch's valid records of all ranks, in step order."""
        local = dict(
            part=self.state.records.take(), changed=self._changed_images)
        self._changed_images = set()
        _, world_size = get_dist_info()
        parts = all_gather_object(local) if world_size > 1 else [local]
        merged = merge_parts([p['part'] for p in parts])
        merged['changed'] = set().union(*(p['changed'] for p in parts))
        return merged

    # ------------------------------------------------------------------
    # epoch end
    def after_train_epoch(self, runner: Any) -> None:
        """Update the difficulty and hand new weights to the sampler."""
        if self.mode == 'eval_pass':
            if (runner.epoch + 1) % self.eval_pass['interval']:
                return  # no pass this epoch: the weights stay
            runner.logger.info('DifficultyHook: eval pass over the '
                               'training images')
            run_eval_pass(runner, self._capture, self._eval_loader)
        merged = self._gather_records()
        state = self.state
        changed = sorted(merged.pop('changed'))
        if 'ids' in merged:
            keep = ~np.isin(self.instance_image[merged['ids']], changed)
            merged = select_rows(merged, keep)
        updated = state.end_epoch(merged)
        if changed:
            ids = np.concatenate([
                np.arange(self.offsets[i], self.offsets[i + 1])
                for i in changed
            ])
            state.reset(ids)
        self.invalid_rows += merged['invalid']
        inst_d = self.instance_difficulty()
        img_d = image_difficulty(
            inst_d,
            self.instance_image,
            len(self.counts),
            reduce=self.reduce,
            empty_value=self.empty_difficulty)
        next_epoch = runner.epoch + 1
        self.sampler.set_difficulty(
            self.index.per_index(img_d), epoch=next_epoch)
        self._log(runner, inst_d, updated, merged, len(changed))
        if self.dump and is_main_process():
            self._dump(runner, inst_d, img_d)

    def instance_difficulty(self) -> np.ndarray:
        """D of every training object as the sampler uses it (the ``unseen``
        policy and ``normalize`` applied): ``(num_objects,)`` float64 in the
        dataset index's object order. Available from ``before_train`` on."""
        if self.state is None:
            raise RuntimeError('DifficultyHook.instance_difficulty() needs '
                               'the state that before_train builds')
        n = len(self.instance_labels)
        d = np.asarray(self.state.difficulty(), dtype=np.float64)[:n]
        d = fill_unseen(d, self.state.observed[:n], self.instance_labels,
                        self.unseen)
        return normalize_difficulty(d, self.instance_labels, self.normalize)

    def _log(self, runner: Any, inst_d: np.ndarray, updated: int,
             merged: Dict[str, Any], num_changed: int) -> None:
        scalars = epoch_scalars(
            inst_d,
            self.class_groups[self.instance_labels],
            self.log_quantiles,
            self.sampler.diagnostics(),
            objects_updated=updated,
            invalid_rows=merged['invalid'],
            images_reset=num_changed,
            observed=float(self.state.observed[:inst_d.size].mean())
            if inst_d.size else 0.0)
        log_epoch(runner, scalars, merged['num'], merged['invalid'])

    def _dump_index(self, runner: Any) -> None:
        """``index.npz``: objects, images and classes (mmdiff.analysis)."""
        index = self.index
        write_index(
            dump_dir(runner),
            instance_image=self.instance_image,
            instance_label=self.instance_labels,
            instance_box=index.object_boxes[~index.ignored],
            img_id=index.img_ids,
            img_path=index.img_paths,
            class_name=index.classes
            or [str(c) for c in range(index.num_classes)],
            class_group=self.class_groups,
            group_names=LVIS_FREQUENCY_GROUPS,
            images_per_class=index.images_per_class())

    def _dump(self, runner: Any, inst_d: np.ndarray,
              img_d: np.ndarray) -> None:
        write_epoch(
            dump_dir(runner),
            runner.epoch + 1,
            instance_difficulty=inst_d,
            instance_observed=self.state.observed[:inst_d.size],
            image_difficulty=img_d,
            # what the next epoch draws from, per unique image (summed
            # over the indices that show it)
            sampling_probs=np.bincount(
                self.index.image_of_index,
                weights=self.sampler.probabilities_for(runner.epoch + 1),
                minlength=self.index.num_images))
