"""Classification losses."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Softmax cross entropy with optional class and sample weights.

    Registry name ``'CrossEntropyLoss'`` (mmengine's root registry; the
    mmdet / mmpretrain losses of that name live in their own scopes). The
    call signature matches theirs, ``(cls_score, label, weight=None,
    avg_factor=None, reduction_override=None)``, so heads can use either.
    With ``reduction='mean'`` the weighted sum is divided by
    ``avg_factor`` (default: the batch size), as in mmdet, not by the sum
    of the class weights as ``torch.nn.CrossEntropyLoss`` does.

    Args:
        loss_weight (float): Multiplies the loss. Defaults to 1.0.
        class_weight (Sequence[float], optional): One weight per class
            (e.g. the class-balanced weights of Cui et al., CVPR 2019).
            Defaults to None.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. Defaults to
            ``'mean'``.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 class_weight: Optional[Sequence[float]] = None,
                 reduction: str = 'mean') -> None:
        super().__init__()
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError("reduction must be 'mean', 'sum' or 'none', "
                             f'got {reduction!r}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.class_weight = None if class_weight is None else \
            [float(w) for w in class_weight]

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> torch.Tensor:
        """Loss of a batch.

        Args:
            cls_score (torch.Tensor): Logits, (N, C).
            label (torch.Tensor): Class indices, (N, ).
            weight (torch.Tensor, optional): Per-sample weights, (N, ).
            avg_factor (float, optional): Denominator of the mean.
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            torch.Tensor: Scalar, or (N, ) for ``'none'``.
        """
        reduction = reduction_override or self.reduction
        class_weight = None
        if self.class_weight is not None:
            if len(self.class_weight) != cls_score.size(-1):
                raise ValueError(
                    f'class_weight has {len(self.class_weight)} entries '
                    f'for {cls_score.size(-1)} classes')
            class_weight = cls_score.new_tensor(self.class_weight)
        loss = F.cross_entropy(
            cls_score, label, weight=class_weight, reduction='none')
        if weight is not None:
            loss = loss * weight.to(loss.dtype)
        if reduction == 'mean':
            denom = loss.numel() if avg_factor is None else avg_factor
            loss = loss.sum() / max(denom, 1)
        elif reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss
