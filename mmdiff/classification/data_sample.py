"""The per-image data element of the classification models.

A minimal counterpart of mmpretrain's ``DataSample`` (mmdiff does not depend
on mmpretrain, docs/design.md): ground-truth label, predicted label and
predicted class scores as data fields, plus whatever the pipeline packs into
the metainfo (``sample_idx`` above all: it is how the difficulty machinery
knows which training image a prediction belongs to).
"""
from numbers import Integral
from typing import Sequence, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement

LabelLike = Union[torch.Tensor, np.ndarray, Sequence[int], int]


def format_label(value: LabelLike) -> torch.Tensor:
    """Convert a label in any common form to a 1-D int64 tensor.

    Args:
        value (LabelLike): An int, a sequence of ints, a numpy array or a
            tensor (0-D or 1-D).

    Returns:
        torch.Tensor: The labels, shape (N,), dtype int64.
    """
    if isinstance(value, torch.Tensor):
        label = value.detach()
    elif isinstance(value, np.ndarray):
        label = torch.from_numpy(value)
    elif isinstance(value, Integral):
        label = torch.tensor([int(value)])
    elif isinstance(value, Sequence) and not isinstance(value, str):
        label = torch.tensor([int(v) for v in value])
    else:
        raise TypeError(f'Cannot convert {value!r} ({type(value)}) to a '
                        'label tensor')
    if label.ndim == 0:
        label = label.view(1)
    if label.ndim != 1:
        raise ValueError('A label must be a scalar or 1-D, got shape '
                         f'{tuple(label.shape)}')
    return label.long()


class ClsDataSample(BaseDataElement):
    """Data element of one image for classification.

    Data fields (set through the setters so they get one canonical form):

    - ``gt_label`` (torch.Tensor): shape (1,), int64.
    - ``pred_label`` (torch.Tensor): shape (1,), int64.
    - ``pred_score`` (torch.Tensor): shape (num_classes,), float.

    The fields are plain data fields, not properties, so ``to_dict`` (used
    by mmengine's ``Evaluator``) yields the keys ``gt_label``,
    ``pred_label`` and ``pred_score``.

    Examples:
        >>> sample = ClsDataSample(metainfo=dict(sample_idx=3))
        >>> sample = sample.set_gt_label(2)
        >>> sample.gt_label, sample.sample_idx
        (tensor([2]), 3)
    """

    def set_gt_label(self, value: LabelLike) -> 'ClsDataSample':
        """Set ``gt_label``; returns ``self`` for chaining."""
        self.set_field(format_label(value), 'gt_label', dtype=torch.Tensor)
        return self

    def set_pred_label(self, value: LabelLike) -> 'ClsDataSample':
        """Set ``pred_label``; returns ``self`` for chaining."""
        self.set_field(format_label(value), 'pred_label', dtype=torch.Tensor)
        return self

    def set_pred_score(self, value: torch.Tensor) -> 'ClsDataSample':
        """Set ``pred_score`` (class scores of one image, shape (C,)).

        Returns ``self`` for chaining.
        """
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value)
        if value.ndim != 1:
            raise ValueError('pred_score must be 1-D (num_classes,), got '
                             f'shape {tuple(value.shape)}')
        self.set_field(value, 'pred_score', dtype=torch.Tensor)
        return self
