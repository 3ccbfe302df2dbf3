"""Batch preprocessing of the classifier: stack, cast, normalise."""
from typing import Optional, Sequence, Union

import torch
from mmengine.model import ImgDataPreprocessor
from mmengine.registry import MODELS


@MODELS.register_module()
class ClsDataPreprocessor(ImgDataPreprocessor):
    """Move a batch to the device, stack it and normalise it.

    mmengine's ``ImgDataPreprocessor`` with mmpretrain's argument name
    ``to_rgb``, and a fast path for equal-sized images (the CIFAR case):
    they are stacked first and normalised as one tensor instead of one
    image at a time. ``data_samples`` pass through unchanged, metainfo
    (``sample_idx``) included.

    Args:
        mean (Sequence[float], optional): Per-channel mean, in the pixel
            range of the inputs (0-255). Defaults to None (no
            normalisation).
        std (Sequence[float], optional): Per-channel std. Defaults to None.
        pad_size_divisor (int): Pad images of different sizes to a multiple
            of this. Defaults to 1.
        pad_value (float): Padding value. Defaults to 0.
        to_rgb (bool): Swap the channel order (the CIFAR files are RGB
            already, so False for them). Defaults to False.
        non_blocking (bool): Asynchronous host-to-device copies. Defaults
            to False.
    """

    def __init__(self,
                 mean: Optional[Sequence[Union[float, int]]] = None,
                 std: Optional[Sequence[Union[float, int]]] = None,
                 pad_size_divisor: int = 1,
                 pad_value: Union[float, int] = 0,
                 to_rgb: bool = False,
                 non_blocking: bool = False) -> None:
        if (mean is None) != (std is None):
            raise ValueError('mean and std must both be given or both be '
                             f'None, got mean={mean!r}, std={std!r}')
        if std is not None and any(s <= 0 for s in std):
            raise ValueError(f'std must be positive, got {std!r}')
        # ImgDataPreprocessor(mean, std, pad_size_divisor, pad_value,
        # bgr_to_rgb, rgb_to_bgr, non_blocking)
        super().__init__(mean, std, pad_size_divisor, pad_value, to_rgb, False,
                         non_blocking)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Preprocess one batch.

        Args:
            data (dict): ``inputs`` (list of CHW tensors or an NCHW tensor)
                and ``data_samples``, as collated by ``pseudo_collate``.
            training (bool): Unused; augmentation happens in the pipeline.

        Returns:
            dict: ``inputs`` (float NCHW tensor) and ``data_samples``.
        """
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)) and inputs and all(
                isinstance(x, torch.Tensor) and x.shape == inputs[0].shape
                for x in inputs):
            data = dict(data)
            data['inputs'] = torch.stack(list(inputs))
        return super().forward(data, training)
