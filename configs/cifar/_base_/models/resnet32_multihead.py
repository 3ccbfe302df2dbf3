# ResNet-32 (He et al., CVPR 2016, Sec. 4.2; option-A shortcuts) with the
# multi-head normalised classifier of TDE (Tang et al., NeurIPS 2020):
# K = 2 heads, gamma = 1/32, tau = 16. Yu et al., CVPR 2022 use this network
# for every method of their CIFAR-LT table (docs/method.md).
# The data preprocessor comes from the data set base (top-level
# `data_preprocessor`, which mmengine's Runner merges into the model).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNetCifar', depth=32, widths=(16, 32, 64), shortcut='A'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MultiHeadNormClsHead',
        num_classes=10,
        in_channels=64,
        num_heads=2,
        tau=16.0,
        gamma=1.0 / 32,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
