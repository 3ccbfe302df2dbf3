"""Long-tailed image classification without mmpretrain (docs/design.md).

``import mmdiff.classification`` registers, in mmengine's root registries
(so configs with ``default_scope='mmengine'`` or None find them):

- DATASETS: ``CIFAR10LT``, ``CIFAR100LT``
- TRANSFORMS: ``PadRandomCrop``, ``RandomHorizontalFlip``, ``PackClsInputs``
- MODELS: ``ImageClassifier``, ``ClsDataPreprocessor``, ``ResNetCifar``,
  ``GlobalAveragePooling``, ``LinearClsHead``, ``MultiHeadNormClsHead``,
  ``CrossEntropyLoss``
- METRICS: ``LongTailAccuracy``
"""
from .cifar_lt import (CIFAR10LT, CIFAR100LT, CIFAR_LT_RATIOS, CIFARLTDataset,
                       cifar_lt_counts)
from .classifier import ImageClassifier
from .data_preprocessor import ClsDataPreprocessor
from .data_sample import ClsDataSample, format_label
from .heads import ClsHead, LinearClsHead, MultiHeadNormClsHead
from .losses import CrossEntropyLoss
from .metrics import LongTailAccuracy
from .necks import GlobalAveragePooling
from .resnet_cifar import CifarBasicBlock, ResNetCifar
from .transforms import PackClsInputs, PadRandomCrop, RandomHorizontalFlip

__all__ = [
    'CIFAR_LT_RATIOS', 'CIFAR10LT', 'CIFAR100LT', 'CIFARLTDataset',
    'cifar_lt_counts', 'ImageClassifier', 'ClsDataPreprocessor',
    'ClsDataSample', 'format_label', 'ClsHead', 'LinearClsHead',
    'MultiHeadNormClsHead', 'CrossEntropyLoss', 'LongTailAccuracy',
    'GlobalAveragePooling', 'CifarBasicBlock', 'ResNetCifar', 'PackClsInputs',
    'PadRandomCrop', 'RandomHorizontalFlip'
]
