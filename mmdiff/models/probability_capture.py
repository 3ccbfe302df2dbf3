"""Capture the class probabilities a model already computes while training.

Shapes: B images per batch, R RoIs, K classes (+1 background for detection).

The difficulty of an instance comes from its predicted class distribution
(docs/method.md). mmdiff reads it from the training forward pass itself:
no edit of mmdet's source and no extra forward pass (docs/design.md,
decision 3). A capture wraps one or two methods *of the model instance*
(the class is untouched):

- detection (:class:`RoIHeadCapture`): ``roi_head.loss`` (to see the batch's
  data samples, which carry ``sample_idx``) and ``roi_head.bbox_loss`` (to see
  ``cls_score`` and the sampling results). GT boxes are injected as proposals
  (``add_gt_as_proposals=True``), so each GT object has one RoI with
  ``pos_is_gt == 1`` whose ``pos_assigned_gt_inds`` is its GT index. If the
  RoI sampler drops a GT RoI (more positives than it keeps), that object is
  simply not observed in that iteration.
- classification (:class:`ClsHeadCapture`): ``head._get_loss(cls_score,
  data_samples)``; the instance is the image, its GT index is 0.

Probabilities are the head's own activation (softmax, or the loss's custom
activation for Seesaw-style heads), computed in fp32 (also under AMP) on
detached scores, for the captured rows only. Records stay on the model's
device, and nothing here makes the host wait for the device
(``tests/models/test_capture_host_syncs.py`` counts such calls in a real
training step, with :mod:`mmdiff.analysis.host_syncs`).

Extension point: a capture is a subclass of :class:`ProbabilityCapture`
registered for the head classes it reads (``register_capture``, in
:mod:`mmdiff.models.capture_registry`, with ``build_capture`` and
``supported_heads``).
"""
import inspect
from typing import Any, Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdiff.datasets.sample_idx import sample_idx_of

__all__ = [
    'UnsupportedModelError', 'Batch', 'ProbabilityCapture', 'RoIHeadCapture',
    'ClsHeadCapture', 'to_device'
]

# What a capture hands to its sink for one training step. Tensors are on
# the model's device: sample_idx (n,), gt_index (n,), labels (n,), probs
# (n, K) fp32, optionally valid (n,) bool (rows that are no GT object's,
# kept so that their number needs no host sync); num_gts lists
# (sample_idx, number of GTs) per image so the owner can detect images
# whose objects changed.
Batch = dict


class UnsupportedModelError(TypeError):
    """The model has no head mmdiff knows how to capture."""


def to_device(tensor: Tensor, device: torch.device) -> Tensor:
    """A host tensor on ``device`` without making the host wait.

    A blocking copy to a GPU waits for the queued kernels; a non-blocking
    one from pageable memory may too, so the source is pinned first.
    """
    if device.type == 'cuda':
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def head_probabilities(head: torch.nn.Module, cls_score: Tensor) -> Tensor:
    """The head's own class probabilities, in fp32, without gradient."""
    scores = cls_score.detach().float()
    loss_cls = getattr(head, 'loss_cls', None)
    if getattr(head, 'custom_cls_channels', False) and loss_cls is not None:
        # e.g. Seesaw: K class scores times objectness, plus background.
        return loss_cls.get_activation(scores).float()
    return F.softmax(scores, dim=-1)


class ProbabilityCapture:
    """Reads one kind of head's class probabilities during training.

    A subclass takes ``(head, sink, stage=-1, attach=True)``: ``head`` is
    the model's ``roi_head`` (detectors) or ``head`` (classifiers) it is
    registered for, ``sink`` receives one :data:`Batch` per training step,
    ``stage`` picks a cascade stage, ``attach=False`` installs nothing
    (eval-pass mode calls :meth:`predict_gt` only). It wraps methods of the
    head *instance* with :meth:`_patch`; :meth:`detach` removes them.
    Register it with :func:`register_capture`.
    """

    def __init__(self,
                 head: torch.nn.Module,
                 sink: Callable[[Batch], None],
                 stage: int = -1,
                 attach: bool = True) -> None:
        self.sink = sink
        self._patched: List[tuple] = []
        self._setup(head, stage)
        if attach:
            self._attach()

    def _setup(self, head: torch.nn.Module, stage: int) -> None:
        """Check the head and keep what the capture reads from it."""
        raise NotImplementedError

    def _attach(self) -> None:
        """Wrap the head's training methods (with :meth:`_patch`)."""
        raise NotImplementedError

    def _patch(self, module: torch.nn.Module, name: str,
               wrapper: Callable) -> None:
        # An instance attribute shadows the class's method; deleting it
        # restores the original. mmdet's classes are never modified.
        module.__dict__[name] = wrapper
        self._patched.append((module, name))

    def detach(self) -> None:
        for module, name in self._patched:
            module.__dict__.pop(name, None)
        self._patched.clear()

    @property
    def num_classes(self) -> int:
        """Length of the probability vectors handed to the sink."""
        raise NotImplementedError

    def predict_gt(self, model: torch.nn.Module, data: dict) -> None:
        """Eval-pass mode: probabilities of a batch's GT objects."""
        raise NotImplementedError


class RoIHeadCapture(ProbabilityCapture):
    """GT-RoI probabilities of a StandardRoIHead / CascadeRoIHead.

    Args:
        roi_head (nn.Module): the detector's ``roi_head``.
        sink (callable): receives one :data:`Batch` per training step.
        stage (int, optional): Cascade stage to read; negative counts from
            the last. Ignored for single-stage heads. Defaults to -1.
        attach (bool, optional): Wrap the head's training methods now.
            Defaults to True.
    """

    def _setup(self, roi_head: torch.nn.Module, stage: int) -> None:
        from mmdet.models.roi_heads import CascadeRoIHead
        self.cascade = isinstance(roi_head, CascadeRoIHead)
        self.roi_head = roi_head
        # Arguments are read by name: subclasses (GridRoIHead, HTC, ...)
        # add parameters after the sampling results.
        self._loss_sig = inspect.signature(roi_head.loss)
        self._bbox_loss_sig = inspect.signature(roi_head.bbox_loss)
        needed = ('stage', 'sampling_results') if self.cascade else (
            'sampling_results', )
        missing = [
            name for name in needed
            if name not in self._bbox_loss_sig.parameters
        ]
        if missing or 'batch_data_samples' not in self._loss_sig.parameters:
            raise self._unsupported(
                roi_head, 'its bbox_loss takes no sampling_results (a '
                'query-based head such as SparseRoIHead has no GT-injected '
                'proposals)')
        if self.cascade:
            num_stages = roi_head.num_stages
            if not -num_stages <= stage < num_stages:
                raise ValueError(f'stage must be in [-{num_stages}, '
                                 f'{num_stages}) for this {num_stages}-stage '
                                 f'CascadeRoIHead, got {stage}')
            self.stage = stage % num_stages
            self.bbox_head = roi_head.bbox_head[self.stage]
        else:
            self.stage = 0
            self.bbox_head = roi_head.bbox_head
        self._samples: Optional[Sequence[Any]] = None

    @classmethod
    def _unsupported(cls, roi_head: Any, why: str) -> UnsupportedModelError:
        from .capture_registry import supported_heads
        return UnsupportedModelError(
            f'DifficultyHook cannot capture RoI probabilities from '
            f'{type(roi_head).__name__}: {why}. Supported heads are '
            f'{", ".join(supported_heads())} and their subclasses (for RoI '
            'heads: whose bbox_loss takes the sampling results: Faster / '
            'Mask R-CNN, Cascade (Mask) R-CNN, Grid R-CNN, HTC, ...).')

    def _check_gt_proposals(self) -> None:
        """Refuse a sampler that does not inject GT boxes as proposals."""
        sampler = self.roi_head.bbox_sampler
        if self.cascade:
            sampler = sampler[self.stage]
        if getattr(sampler, 'add_gt_as_proposals', False):
            return
        where = f'rcnn[{self.stage}]' if self.cascade else 'rcnn'
        raise ValueError(
            'DifficultyHook reads each GT object from its GT-injected RoI, '
            f'but the RoI sampler ({type(sampler).__name__}) does not add GT '
            'boxes as proposals, so no object would ever be observed and '
            'every difficulty would stay 1. Set in the config:\n'
            f'    model.train_cfg.{where}.sampler.add_gt_as_proposals=True\n'
            "or use DifficultyHook(mode='eval_pass'), which needs no "
            'proposals.')

    def _attach(self) -> None:
        self._check_gt_proposals()
        roi_head = self.roi_head
        loss, bbox_loss = roi_head.loss, roi_head.bbox_loss

        def loss_wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = self._loss_sig.bind(*args, **kwargs)
            self._samples = bound.arguments['batch_data_samples']
            try:
                return loss(*args, **kwargs)
            finally:
                self._samples = None

        def bbox_loss_wrapper(*args: Any, **kwargs: Any) -> Any:
            results = bbox_loss(*args, **kwargs)
            bound = self._bbox_loss_sig.bind(*args, **kwargs).arguments
            stage = bound['stage'] if self.cascade else 0
            if stage == self.stage and self._samples is not None:
                self._capture(results['cls_score'], bound['sampling_results'])
            return results

        self._patch(roi_head, 'loss', loss_wrapper)
        self._patch(roi_head, 'bbox_loss', bbox_loss_wrapper)

    def _capture(self, cls_score: Tensor, sampling_results: Sequence) -> None:
        """Hand the GT RoIs' probabilities to the sink, without a host sync.

        Selecting the GT RoIs by their flags (``nonzero``, a boolean mask)
        would make the host wait for the device: their number is a device
        value. Their number is at most the image's GT objects and at most
        its positives, both known on the host, so each image gives that
        many rows: its positives sorted GT-first, the rows past its GT RoIs
        (when the RoI sampler dropped some) marked not ``valid``.
        """
        samples = self._samples
        rows, gt_index, labels, sample_idx, valid, num_gts = ([], [], [], [],
                                                              [], [])
        offset = 0
        for data_sample, res in zip(samples, sampling_results):
            idx = sample_idx_of(data_sample)
            num_gt = len(data_sample.gt_instances)
            num_gts.append((idx, num_gt))
            # rois = cat(pos_priors, neg_priors) per image, in image order.
            take = min(num_gt, len(res.pos_priors))
            is_gt, order = torch.sort(
                res.pos_is_gt.to(torch.uint8), descending=True, stable=True)
            order = order[:take]
            rows.append(order + offset)
            valid.append(is_gt[:take].bool())
            gt_index.append(res.pos_assigned_gt_inds[order])
            labels.append(res.pos_gt_labels[order])
            sample_idx.append(torch.full_like(order, idx))
            offset += len(res.priors)
        if cls_score.dim() != 2 or cls_score.shape[0] != offset:
            raise self._unsupported(
                self.roi_head, f'its cls_score has shape '
                f'{tuple(cls_score.shape)}, not one row per RoI ({offset})')
        rows_t = torch.cat(rows)
        self.sink(
            dict(
                sample_idx=torch.cat(sample_idx),
                gt_index=torch.cat(gt_index).long(),
                labels=torch.cat(labels).long(),
                probs=head_probabilities(self.bbox_head, cls_score[rows_t]),
                valid=torch.cat(valid),
                num_gts=num_gts))

    @torch.no_grad()
    def predict_gt(self, model: torch.nn.Module, data: dict) -> None:
        """Eval-pass mode: probabilities of the GT boxes used as RoIs.

        One forward of the backbone and the bbox head on ``data`` (a
        collated batch of the training images through a deterministic
        pipeline); the records go to the sink like training records.
        """
        from mmdet.structures.bbox import bbox2roi, get_box_tensor
        data = model.data_preprocessor(data, False)
        samples = data['data_samples']
        x = model.extract_feat(data['inputs'])
        boxes = [get_box_tensor(s.gt_instances.bboxes) for s in samples]
        rois = bbox2roi(boxes)
        if self.cascade:
            results = self.roi_head._bbox_forward(self.stage, x, rois)
        else:
            results = self.roi_head._bbox_forward(x, rois)
        device = rois.device
        idx = [sample_idx_of(s) for s in samples]
        counts = [len(b) for b in boxes]
        self.sink(
            dict(
                sample_idx=to_device(
                    torch.tensor(
                        [i for i, n in zip(idx, counts) for _ in range(n)],
                        dtype=torch.long), device),
                gt_index=torch.cat(
                    [torch.arange(n, device=device) for n in counts]).long(),
                labels=torch.cat([s.gt_instances.labels
                                  for s in samples]).long(),
                probs=head_probabilities(self.bbox_head, results['cls_score']),
                num_gts=list(zip(idx, counts))))

    @property
    def num_classes(self) -> int:
        return int(self.bbox_head.num_classes) + 1  # + background


class ClsHeadCapture(ProbabilityCapture):
    """Per-image probabilities of an mmpretrain-style classification head.

    Args:
        head (nn.Module): a head whose ``loss`` calls
            ``_get_loss(cls_score, data_samples, **kwargs)``.
        sink (callable): receives one :data:`Batch` per training step.
        attach (bool, optional): Wrap ``_get_loss`` now. Defaults to True.
    """

    def _setup(self, head: torch.nn.Module, stage: int) -> None:
        if not callable(getattr(head, '_get_loss', None)):
            raise UnsupportedModelError(
                f'DifficultyHook cannot capture probabilities from '
                f'{type(head).__name__}: a classification head needs '
                '`_get_loss(cls_score, data_samples)` as in mmpretrain\'s '
                'ClsHead (mmdiff.classification heads have it).')
        self.head = head

    @property
    def num_classes(self) -> int:
        return int(self.head.num_classes)

    def _attach(self) -> None:
        head = self.head
        get_loss = head._get_loss

        def get_loss_wrapper(cls_score: Tensor, data_samples: Sequence[Any],
                             *args: Any, **kwargs: Any) -> Any:
            self._capture(cls_score, data_samples)
            return get_loss(cls_score, data_samples, *args, **kwargs)

        self._patch(head, '_get_loss', get_loss_wrapper)

    def _capture(self, cls_score: Tensor, data_samples: Sequence) -> None:
        idx = [sample_idx_of(s) for s in data_samples]
        device = cls_score.device
        labels = torch.cat([s.gt_label.view(-1)[:1] for s in data_samples])
        self.sink(
            dict(
                sample_idx=to_device(torch.tensor(idx), device),
                gt_index=torch.zeros(
                    len(idx), dtype=torch.long, device=device),
                labels=(labels if labels.device == device else to_device(
                    labels, device)).long(),
                probs=head_probabilities(self.head, cls_score),
                num_gts=[(i, 1) for i in idx]))

    @torch.no_grad()
    def predict_gt(self, model: torch.nn.Module, data: dict) -> None:
        """Eval-pass mode: the head's probabilities for a batch of images."""
        data = model.data_preprocessor(data, False)
        cls_score = self.head(model.extract_feat(data['inputs']))
        self._capture(cls_score, data['data_samples'])
