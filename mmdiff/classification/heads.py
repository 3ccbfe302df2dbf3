"""Classification heads with mmpretrain's interface.

``loss(feats, data_samples)`` computes ``cls_score = self(feats)`` and
returns ``self._get_loss(cls_score, data_samples)``. That method is the
seam the difficulty hook wraps to see every training prediction together
with its data samples (which carry ``sample_idx``): keep ``loss`` calling
``_get_loss`` exactly once per batch, with the raw logits.

Shapes: ``feats`` is a tuple of (N, D) vectors (the neck's output; the last
one is used) or one (N, D) tensor; ``cls_score`` is (N, C).
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .data_sample import ClsDataSample

Feats = Union[torch.Tensor, Tuple[torch.Tensor, ...]]


class ClsHead(BaseModule):
    """Base of the classification heads: loss and prediction logic.

    Subclasses implement ``forward(feats) -> cls_score``.

    Args:
        loss (dict | nn.Module): The loss, or its config (built from
            mmengine's ``MODELS``). Defaults to
            ``dict(type='CrossEntropyLoss', loss_weight=1.0)``.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 loss: Union[dict, nn.Module] = dict(
                     type='CrossEntropyLoss', loss_weight=1.0),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.loss_module = loss if isinstance(loss, nn.Module) \
            else MODELS.build(loss)

    def pre_logits(self, feats: Feats) -> torch.Tensor:
        """The (N, D) feature the classifier layer takes."""
        return feats[-1] if isinstance(feats, (tuple, list)) else feats

    def forward(self, feats: Feats) -> torch.Tensor:
        """Class logits, (N, C)."""
        raise NotImplementedError

    def loss(self, feats: Feats, data_samples: List[ClsDataSample],
             **kwargs) -> dict:
        """Loss of a training batch.

        Args:
            feats (Feats): Neck output.
            data_samples (list[ClsDataSample]): With ``gt_label``.
            **kwargs: Passed on to ``_get_loss`` and the loss module.

        Returns:
            dict[str, torch.Tensor]: ``{'loss': ...}``.
        """
        cls_score = self(feats)
        return self._get_loss(cls_score, data_samples, **kwargs)

    def _get_loss(self, cls_score: torch.Tensor,
                  data_samples: List[ClsDataSample], **kwargs) -> dict:
        """Loss from logits; the difficulty hook's capture point.

        Args:
            cls_score (torch.Tensor): Logits, (N, C).
            data_samples (list[ClsDataSample]): With ``gt_label``.
            **kwargs: Passed to the loss module.

        Returns:
            dict[str, torch.Tensor]: ``{'loss': ...}``.
        """
        target = torch.cat([s.gt_label
                            for s in data_samples]).to(cls_score.device)
        loss = self.loss_module(
            cls_score, target, avg_factor=cls_score.size(0), **kwargs)
        return dict(loss=loss)

    def predict(
        self,
        feats: Feats,
        data_samples: Optional[List[Optional[ClsDataSample]]] = None
    ) -> List[ClsDataSample]:
        """Predict a batch.

        Args:
            feats (Feats): Neck output.
            data_samples (list[ClsDataSample], optional): Filled in with
                the predictions; new ones are made where None.

        Returns:
            list[ClsDataSample]: With ``pred_score`` (softmax, (C, )) and
            ``pred_label``.
        """
        cls_score = self(feats)
        return self._get_predictions(cls_score, data_samples)

    def _get_predictions(
        self, cls_score: torch.Tensor,
        data_samples: Optional[Sequence[Optional[ClsDataSample]]]
    ) -> List[ClsDataSample]:
        # fp32 softmax, so scores from an AMP forward still sum to one.
        scores = F.softmax(cls_score.detach().float(), dim=1)
        labels = scores.argmax(dim=1)
        if data_samples is None:
            data_samples = [None] * scores.size(0)
        out = []
        for sample, score, label in zip(data_samples, scores, labels):
            sample = ClsDataSample() if sample is None else sample
            out.append(sample.set_pred_score(score).set_pred_label(label))
        return out


@MODELS.register_module()
class LinearClsHead(ClsHead):
    """A linear layer over the pooled feature, trained with cross entropy.

    Registry name ``'LinearClsHead'``.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Feature dimension ``D``.
        loss (dict | nn.Module): See :class:`ClsHead`.
        init_cfg (dict, optional): Defaults to a Normal(0, 0.01) init of the
            linear layer (mmpretrain's default).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        loss: Union[dict, nn.Module] = dict(
            type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg: Optional[dict] = dict(
            type='Normal', layer='Linear', std=0.01)
    ) -> None:
        super().__init__(loss=loss, init_cfg=init_cfg)
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f'num_classes and in_channels must be >= 1, got '
                             f'{num_classes!r} and {in_channels!r}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, feats: Feats) -> torch.Tensor:
        """Class logits, (N, C)."""
        return self.fc(self.pre_logits(feats))


@MODELS.register_module()
class MultiHeadNormClsHead(ClsHead):
    """Multi-head normalised classifier (Tang et al., NeurIPS 2020, TDE).

    The classifier of Yu et al., CVPR 2022 (docs/method.md, "CIFAR-LT":
    the multi-head normalised classifier). The feature ``x`` and each class
    weight ``w_i`` are split into ``K`` equal chunks; per chunk ``k``::

        x_k <- x_k / ||x_k||
        w_ik <- w_ik / (||w_ik|| + gamma)
        logit_i = (tau / K) * sum_k <w_ik, x_k>

    No bias. Weights start uniform in +-1/sqrt(D), as in TDE's
    ``Causal_Norm_Classifier``. Only the training-time classifier is
    implemented; TDE's counterfactual (de-confounded) inference is not part
    of the method here. A chunk of ``x`` that is all zeros (possible after
    ReLU) is divided by ``eps`` instead of 0 and gives zero logits, where
    TDE's code would give NaN.

    Registry name ``'MultiHeadNormClsHead'``.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Feature dimension ``D``, divisible by
            ``num_heads``.
        num_heads (int): ``K``. Defaults to 2.
        tau (float): Logit scale. Defaults to 16.
        gamma (float): Weight-norm offset. Defaults to 1/32.
        eps (float): Floor of the feature-chunk norm. Defaults to 1e-12.
        loss (dict | nn.Module): See :class:`ClsHead`.
        init_cfg (dict, optional): Defaults to None (the TDE init above).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 num_heads: int = 2,
                 tau: float = 16.0,
                 gamma: float = 1.0 / 32,
                 eps: float = 1e-12,
                 loss: Union[dict, nn.Module] = dict(
                     type='CrossEntropyLoss', loss_weight=1.0),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss=loss, init_cfg=init_cfg)
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f'num_classes and in_channels must be >= 1, got '
                             f'{num_classes!r} and {in_channels!r}')
        if num_heads < 1 or in_channels % num_heads:
            raise ValueError(f'in_channels ({in_channels}) must be divisible '
                             f'by num_heads ({num_heads})')
        if tau <= 0 or gamma < 0 or eps <= 0:
            raise ValueError(f'need tau > 0, gamma >= 0, eps > 0; got '
                             f'tau={tau!r}, gamma={gamma!r}, eps={eps!r}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.num_heads = num_heads
        self.tau = tau
        self.gamma = gamma
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(num_classes, in_channels))
        bound = 1.0 / math.sqrt(in_channels)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, feats: Feats) -> torch.Tensor:
        """Class logits, (N, C)."""
        x = self.pre_logits(feats)
        k = self.num_heads
        x = x.reshape(x.size(0), k, -1)
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(self.eps)
        w = self.weight.view(self.num_classes, k, -1)
        w_norm = w.norm(dim=-1, keepdim=True) + self.gamma
        w = w / w_norm.clamp_min(self.eps)
        return (self.tau / k) * torch.einsum('nkd,ckd->nc', x, w)
