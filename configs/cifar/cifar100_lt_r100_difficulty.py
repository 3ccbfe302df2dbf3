# CIFAR-100-LT, imbalance ratio 100: difficulty-aware re-sampling ("Ours") of
# Yu et al., CVPR 2022 (their table: 42.3% top-1, against 40.6% for the
# baseline; docs/method.md). The recipe of cifar100_lt_r100_baseline.py
# (ResNet-32 with the multi-head normalised classifier, 200 epochs, SGD lr
# 0.1, batch 128); only the sampling differs
# (_base_/sampling/difficulty.py).
_base_ = ['./cifar100_lt_r100_baseline.py', './_base_/sampling/difficulty.py']
# 'mmdiff' registers the sampler and the hook (and the classifier) in
# mmengine's root registries, which default_scope='mmengine' searches.
custom_imports = dict(imports=['mmdiff'], allow_failed_imports=False)
train_dataloader = dict(sampler={{_base_.difficulty_sampler}})
