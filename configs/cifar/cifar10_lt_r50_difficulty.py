# CIFAR-10-LT, imbalance ratio 50: difficulty-aware re-sampling ("Ours") of
# Yu et al., CVPR 2022 (their table: 80.2% top-1, against 78.3% for the
# baseline; docs/method.md). The recipe of cifar10_lt_r50_baseline.py
# (ResNet-32 with the multi-head normalised classifier, 200 epochs, SGD lr
# 0.1, batch 128); only the sampling differs
# (_base_/sampling/difficulty.py).
_base_ = ['./cifar10_lt_r50_baseline.py', './_base_/sampling/difficulty.py']
# 'mmdiff' registers the sampler and the hook (and the classifier) in
# mmengine's root registries, which default_scope='mmengine' searches.
custom_imports = dict(imports=['mmdiff'], allow_failed_imports=False)
train_dataloader = dict(sampler={{_base_.difficulty_sampler}})
