"""Top-k and many / medium / few-shot accuracy for long-tailed data."""
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS
from mmengine.structures import BaseDataElement

from .cifar_lt import cifar_lt_counts

# Images of each class in the balanced CIFAR-10 / CIFAR-100 training sets
# divide this: n_max = 5000 or 500.
_CIFAR_TRAIN_SIZE = 50000


def _as_int(value: Union[torch.Tensor, np.ndarray, int]) -> int:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return int(value.reshape(-1)[0])
    return int(value)


@METRICS.register_module()
class LongTailAccuracy(BaseMetric):
    """Top-k accuracy plus accuracy on many / medium / few-shot classes.

    The split follows Liu et al., CVPR 2019 (OLTR) and Kang et al., ICLR
    2020 (decoupling): a class is *many-shot* with more than
    ``many_shot_thr`` (100) training images, *few-shot* with fewer than
    ``few_shot_thr`` (20), *medium-shot* otherwise (20-100). A group's
    accuracy is the mean of its classes' accuracies (equal to the image
    accuracy on the balanced CIFAR test sets); a group with no class, e.g.
    few-shot on CIFAR-10 at ratio 100, is ``nan``, so every run reports the
    same keys. Values are percentages.

    The per-class training counts come from a config, one of:

    - ``train_class_counts=[...]`` (e.g.
      ``np.bincount(train_set.get_gt_labels())``), or
    - ``num_classes`` and ``imbalance_ratio`` (and optionally ``n_max``,
      default ``50000 // num_classes``, i.e. 5000 / 500 for CIFAR-10 / 100),
      giving :func:`cifar_lt_counts`, the profile of
      :class:`CIFAR10LT` / :class:`CIFAR100LT`.

    Registry name ``'LongTailAccuracy'``; keys ``accuracy/top1`` (and
    ``accuracy/top{k}`` for other ``topk``), ``accuracy/many``,
    ``accuracy/medium``, ``accuracy/few``.

    Args:
        train_class_counts (Sequence[int], optional): Training images per
            class. Defaults to None.
        num_classes (int, optional): For the CIFAR-LT profile.
        imbalance_ratio (float, optional): For the CIFAR-LT profile.
        n_max (int, optional): For the CIFAR-LT profile.
        many_shot_thr (int): Many-shot: count > this. Defaults to 100.
        few_shot_thr (int): Few-shot: count < this. Defaults to 20.
        topk (Sequence[int]): Top-k accuracies to report. Defaults to (1, ).
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Key prefix. Defaults to ``'accuracy'``.
    """

    default_prefix: Optional[str] = 'accuracy'

    def __init__(self,
                 train_class_counts: Optional[Sequence[int]] = None,
                 num_classes: Optional[int] = None,
                 imbalance_ratio: Optional[float] = None,
                 n_max: Optional[int] = None,
                 many_shot_thr: int = 100,
                 few_shot_thr: int = 20,
                 topk: Sequence[int] = (1, ),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        profile_args = (num_classes, imbalance_ratio, n_max)
        if train_class_counts is not None:
            if any(a is not None for a in profile_args):
                raise ValueError(
                    'Give either train_class_counts or num_classes / '
                    'imbalance_ratio / n_max, not both')
            counts = [int(c) for c in train_class_counts]
        elif num_classes is not None and imbalance_ratio is not None:
            if n_max is None:
                n_max = _CIFAR_TRAIN_SIZE // num_classes
            counts = cifar_lt_counts(num_classes, n_max, imbalance_ratio)
        else:
            raise ValueError(
                'LongTailAccuracy needs the training class counts: pass '
                'train_class_counts, or num_classes and imbalance_ratio; '
                f'got num_classes={num_classes!r}, '
                f'imbalance_ratio={imbalance_ratio!r}')
        if not counts or any(c < 0 for c in counts):
            raise ValueError('train_class_counts must be non-empty and '
                             f'non-negative, got {counts}')
        if not 0 <= few_shot_thr <= many_shot_thr:
            raise ValueError('need 0 <= few_shot_thr <= many_shot_thr, got '
                             f'{few_shot_thr!r} and {many_shot_thr!r}')
        topk = tuple(int(k) for k in topk)
        if not topk or any(k < 1 for k in topk):
            raise ValueError(f'topk must be positive ints, got {topk}')
        self.train_class_counts = np.asarray(counts, dtype=np.int64)
        self.many_shot_thr = many_shot_thr
        self.few_shot_thr = few_shot_thr
        self.topk = topk

    @property
    def groups(self) -> dict:
        """Class indices of the ``many``, ``medium`` and ``few`` groups."""
        c = self.train_class_counts
        return dict(
            many=np.flatnonzero(c > self.many_shot_thr),
            medium=np.flatnonzero((c >= self.few_shot_thr)
                                  & (c <= self.many_shot_thr)),
            few=np.flatnonzero(c < self.few_shot_thr))

    def process(self, data_batch: Any,
                data_samples: Sequence[Union[dict, BaseDataElement]]) -> None:
        """Keep label, prediction and (for top-k > 1) scores per image."""
        need_scores = max(self.topk) > 1
        # Dicts from mmengine's Evaluator (it calls ``to_dict``) or data
        # elements when called directly: both have ``get``.
        for sample in data_samples:
            score = sample.get('pred_score')
            pred = sample.get('pred_label')
            if pred is None:
                if score is None:
                    raise KeyError('A data sample has neither pred_label '
                                   'nor pred_score')
                pred = torch.as_tensor(score).argmax()
            result = dict(
                gt_label=_as_int(sample.get('gt_label')),
                pred_label=_as_int(pred))
            if need_scores:
                if score is None:
                    raise KeyError(f'top-{max(self.topk)} accuracy needs '
                                   'pred_score')
                result['pred_score'] = torch.as_tensor(score).cpu()
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> dict:
        """Accuracies in percent from the collected results."""
        gt = np.array([r['gt_label'] for r in results], dtype=np.int64)
        pred = np.array([r['pred_label'] for r in results], dtype=np.int64)
        num_classes = self.train_class_counts.size
        if gt.size and (gt.min() < 0 or gt.max() >= num_classes):
            raise ValueError(f'Labels range over [{gt.min()}, {gt.max()}] but '
                             f'train_class_counts has {num_classes} classes')
        correct = pred == gt
        metrics = {}
        for k in self.topk:
            if k == 1:
                hit = correct
            else:
                scores = torch.stack([r['pred_score'] for r in results])
                top = scores.topk(min(k, scores.size(1)), dim=1).indices
                hit = (top == torch.from_numpy(gt)[:, None]).any(1).numpy()
            metrics[f'top{k}'] = float(hit.mean() * 100) if gt.size \
                else float('nan')
        total = np.bincount(gt, minlength=num_classes)
        hits = np.bincount(gt, weights=correct, minlength=num_classes)
        for name, classes in self.groups.items():
            # Classes absent from the evaluated images do not count.
            classes = classes[total[classes] > 0]
            metrics[name] = float(
                np.mean(hits[classes] / total[classes]) *
                100) if classes.size else float('nan')
        return metrics
