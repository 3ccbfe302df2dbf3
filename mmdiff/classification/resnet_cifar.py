"""The CIFAR ResNets of He et al., CVPR 2016 (Sec. 4.2), e.g. ResNet-32.

Shapes: input (N, 3, 32, 32) -> stem 3x3 conv (w1, 32x32) -> stage 1
(w1, 32x32) -> stage 2 (w2, 16x16) -> stage 3 (w3, 8x8). Depth ``6n + 2``:
``n`` BasicBlocks per stage (n = 5 for ResNet-32, about 0.46M parameters
with a 10-way linear classifier).
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS


class CifarBasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut (He et al. 2016, Fig. 2).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first conv. Defaults to 1.
        shortcut (str): ``'A'``: identity, subsampled and zero-padded in
            channels where the shape changes (no parameters; the option He
            et al. used on CIFAR). ``'B'``: 1x1 conv + BN projection where
            the shape changes. Defaults to ``'A'``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 shortcut: str = 'A') -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut_type = shortcut
        self.stride = stride
        self.pad_channels = out_channels - in_channels
        self.needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = nn.Identity()
        if self.needs_projection and shortcut == 'B':
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))
        if self.needs_projection and shortcut == 'A' and \
                self.pad_channels < 0:
            raise ValueError('Option-A shortcuts cannot reduce channels: '
                             f'{in_channels} -> {out_channels}')

    def _identity(self, x: torch.Tensor) -> torch.Tensor:
        if not self.needs_projection or self.shortcut_type == 'B':
            return self.shortcut(x)
        x = x[:, :, ::self.stride, ::self.stride]
        # Split the extra channels between both sides, as the reference
        # CIFAR implementations do (pad planes // 4 on each side).
        front = self.pad_channels // 2
        return F.pad(x, (0, 0, 0, 0, front, self.pad_channels - front))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self._identity(x))


@MODELS.register_module()
class ResNetCifar(BaseModule):
    """ResNet for 32x32 images (He et al., CVPR 2016, Sec. 4.2).

    Registry name ``'ResNetCifar'``. ``depth=32`` is the ResNet-32 of the
    CIFAR-LT literature (Cao et al. 2019 LDAM; Yu et al. 2022). Weights are
    initialised with Kaiming-normal convolutions and unit BN, as in those
    reference implementations.

    Args:
        depth (int): ``6n + 2`` (20, 32, 44, 56, 110, ...; 8 gives one
            block per stage, for tests). Defaults to 32.
        widths (Sequence[int]): Channels of the three stages. Defaults to
            (16, 32, 64).
        shortcut (str): ``'A'`` (parameter-free, default) or ``'B'``
            (projection); see :class:`CifarBasicBlock`.
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages whose output is returned
            (0, 1, 2). Defaults to (2, ).
        init_cfg (dict, optional): mmengine init config; None keeps the
            initialisation above. Defaults to None.

    Returns (forward):
        tuple[torch.Tensor]: One (N, widths[i], H_i, W_i) map per
        ``out_indices`` entry.
    """

    def __init__(self,
                 depth: int = 32,
                 widths: Sequence[int] = (16, 32, 64),
                 shortcut: str = 'A',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (2, ),
                 init_cfg: dict = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(depth, bool) or not isinstance(depth, int) or \
                depth < 8 or (depth - 2) % 6:
            raise ValueError(f'depth must be 6n + 2 with n >= 1, got '
                             f'{depth!r}')
        widths = tuple(widths)
        if len(widths) != 3 or any(w < 1 for w in widths):
            raise ValueError(f'widths must be 3 positive ints, got {widths}')
        if shortcut not in ('A', 'B'):
            raise ValueError(f"shortcut must be 'A' or 'B', got "
                             f'{shortcut!r}')
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in (0, 1, 2) for i in out_indices):
            raise ValueError('out_indices must be a non-empty subset of '
                             f'(0, 1, 2), got {out_indices}')
        self.depth = depth
        self.widths = widths
        self.out_indices = out_indices
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.stages = nn.ModuleList()
        channels = widths[0]
        for i, width in enumerate(widths):
            layers = []
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(
                    CifarBasicBlock(channels, width, stride, shortcut))
                channels = width
            self.stages.append(nn.Sequential(*layers))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Feature maps of the stages in ``out_indices``."""
        x = F.relu(self.bn1(self.conv1(x)))
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
