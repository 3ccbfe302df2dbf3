"""Necks between the backbone and the classification head."""
from typing import Tuple, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS


@MODELS.register_module()
class GlobalAveragePooling(nn.Module):
    """Average each (N, C, H, W) map to an (N, C) vector.

    Registry name ``'GlobalAveragePooling'`` (mmpretrain's name and
    interface: a tuple in gives a tuple out).
    """

    def __init__(self) -> None:
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(
        self, inputs: Union[torch.Tensor, Tuple[torch.Tensor, ...]]
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """Pool a map or a tuple of maps."""
        if isinstance(inputs, torch.Tensor):
            return self.gap(inputs).flatten(1)
        if isinstance(inputs, tuple):
            return tuple(self.gap(x).flatten(1) for x in inputs)
        raise TypeError('GlobalAveragePooling takes a tensor or a tuple of '
                        f'tensors, got {type(inputs)}')
