# CIFAR-10-LT, imbalance ratio 100: the cross-entropy baseline ("Base")
# of Yu et al., CVPR 2022 (their table, docs/method.md: 72.2% top-1).
# ResNet-32 with the multi-head normalised classifier, uniform sampling,
# 200 epochs.
_base_ = [
    './_base_/models/resnet32_multihead.py',
    './_base_/datasets/cifar10_lt.py',
    './_base_/schedules/cifar_lt_200e.py',
    './_base_/default_runtime.py',
]

# The imbalance ratio (one of 1, 10, 20, 50, 100) is the knob, at
# train_dataloader.dataset.imbalance_ratio and val_evaluator.imbalance_ratio.
train_dataloader = dict(dataset=dict(imbalance_ratio=100))
val_evaluator = dict(imbalance_ratio=100)
test_evaluator = val_evaluator
