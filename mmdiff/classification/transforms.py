"""Pipeline transforms for CIFAR-style classification.

Plain callables over the results dict (mmengine's ``Compose`` accepts them),
so the classification side needs no mmcv. The random transforms draw from
numpy's global RNG, as mmcv's do: mmengine seeds it in every dataloader
worker (``worker_init_fn``, from ``randomness.seed``), so runs repeat.
"""
from typing import Sequence

import numpy as np
import torch
from mmengine.registry import TRANSFORMS

from .data_sample import ClsDataSample


@TRANSFORMS.register_module()
class PadRandomCrop:
    """Zero-pad the image, then crop a random ``size`` x ``size`` window.

    The standard CIFAR augmentation (He et al., CVPR 2016, Sec. 4.2: pad 4
    pixels on each side, random 32x32 crop). Registry name
    ``'PadRandomCrop'``, distinct from mmcv's / mmdet's ``RandomCrop``.

    Args:
        size (int): Output height and width. Defaults to 32.
        padding (int): Pixels added on every side. Defaults to 4.
        pad_value (int): Value of the padded pixels. Defaults to 0.
    """

    def __init__(self,
                 size: int = 32,
                 padding: int = 4,
                 pad_value: int = 0) -> None:
        if size < 1 or padding < 0:
            raise ValueError(f'size must be >= 1 and padding >= 0, got '
                             f'size={size!r}, padding={padding!r}')
        self.size = size
        self.padding = padding
        self.pad_value = pad_value

    def __call__(self, results: dict) -> dict:
        img = results['img']
        p = self.padding
        pad = ((p, p), (p, p)) + ((0, 0), ) * (img.ndim - 2)
        img = np.pad(img, pad, mode='constant', constant_values=self.pad_value)
        h, w = img.shape[:2]
        if h < self.size or w < self.size:
            raise ValueError(f'Padded image {h}x{w} is smaller than the crop '
                             f'size {self.size}')
        top = np.random.randint(0, h - self.size + 1)
        left = np.random.randint(0, w - self.size + 1)
        results['img'] = np.ascontiguousarray(img[top:top + self.size,
                                                  left:left + self.size])
        results['img_shape'] = (self.size, self.size)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'padding={self.padding}, pad_value={self.pad_value})')


@TRANSFORMS.register_module()
class RandomHorizontalFlip:
    """Flip the image left-right with probability ``prob``.

    Sets ``results['flip']``. Registry name ``'RandomHorizontalFlip'``.

    Args:
        prob (float): Flip probability, in [0, 1]. Defaults to 0.5.
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must lie in [0, 1], got {prob!r}')
        self.prob = prob

    def __call__(self, results: dict) -> dict:
        flip = bool(np.random.rand() < self.prob)
        if flip:
            results['img'] = np.ascontiguousarray(results['img'][:, ::-1])
        results['flip'] = flip
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob})'


@TRANSFORMS.register_module()
class PackClsInputs:
    """Pack an image and its label for :class:`ImageClassifier`.

    Output: ``dict(inputs=<uint8 CHW tensor>, data_samples=ClsDataSample)``.
    The data sample gets ``gt_label`` and, in its metainfo, every key of
    ``meta_keys`` present in the results. ``sample_idx`` (added by
    mmengine's ``BaseDataset.get_data_info``) is kept by default: the
    difficulty hook reads it from ``data_samples`` to know which training
    image a prediction belongs to, and fails if it is missing.

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo. Defaults
            to ``('sample_idx', 'img_shape', 'ori_shape', 'flip')``.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('sample_idx', 'img_shape', 'ori_shape',
                                    'flip')
    ) -> None:
        if isinstance(meta_keys, str):
            raise TypeError('meta_keys must be a sequence of str, got the '
                            f'str {meta_keys!r}')
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = ClsDataSample(
            metainfo={k: results[k]
                      for k in self.meta_keys if k in results})
        if 'gt_label' in results:
            sample.set_gt_label(results['gt_label'])
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
