# CIFAR-10-LT, imbalance ratio 50: difficulty-aware re-sampling
# ("Ours") of Yu et al., CVPR 2022 (PAPER.md table: 80.2% top-1, against
# 78.3% for the baseline). The recipe of cifar10_lt_r50_baseline.py
# (ResNet-32 with the multi-head normalised classifier, 200 epochs, SGD lr
# 0.1, batch 128); only the sampling differs.
#
# As in the paper, training starts from uniform sampling (every image
# starts at D = 1, so w proportional to D is uniform in epoch 1) and
# re-samples every epoch: after each epoch DifficultyHook updates every
# image's D from how its predicted class probabilities moved, and the next
# epoch draws len(train set) images with replacement, w_i proportional to
# D_i (the paper's flat scheme, no class prior).
_base_ = ['./cifar10_lt_r50_baseline.py']
# 'mmdiff' registers the sampler and the hook (and the classifier) in
# mmengine's root registries, which default_scope='mmengine' searches.
custom_imports = dict(imports=['mmdiff'], allow_failed_imports=False)

# Knobs ---------------------------------------------------------------
difficulty_c = 1.0  # prior c of D = (c + sum du) / (c + sum dl)
sampler_scheme = 'paper'  # w_i ~ D_i; 'class_aware' | 'uniform' to compare
# ---------------------------------------------------------------------

train_dataloader = dict(
    sampler=dict(
        _delete_=True,
        type='DifficultyClassAwareSampler',
        scheme=sampler_scheme))
custom_hooks = [dict(type='DifficultyHook', c=difficulty_c)]
