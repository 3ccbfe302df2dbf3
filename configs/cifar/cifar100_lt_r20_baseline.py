# CIFAR-100-LT, imbalance ratio 20: the cross-entropy baseline ("Base")
# of Yu et al., CVPR 2022 (their table, docs/method.md: 53.0% top-1).
# ResNet-32 with the multi-head normalised classifier, uniform sampling,
# 200 epochs.
_base_ = [
    './_base_/models/resnet32_multihead.py',
    './_base_/datasets/cifar100_lt.py',
    './_base_/schedules/cifar_lt_200e.py',
    './_base_/default_runtime.py',
]

# Knobs ---------------------------------------------------------------
imbalance_ratio = 20  # one of 1, 10, 20, 50, 100
num_classes = 100
# ---------------------------------------------------------------------

model = dict(head=dict(num_classes=num_classes))
train_dataloader = dict(dataset=dict(imbalance_ratio=20))
val_evaluator = dict(imbalance_ratio=20)
test_evaluator = val_evaluator
