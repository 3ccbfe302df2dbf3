# Difficulty-aware re-sampling ("Ours") of Yu et al., CVPR 2022
# (docs/method.md): training starts from uniform sampling (every image
# starts at D = 1, so w proportional to D is uniform in epoch 1) and
# re-samples every epoch: after each epoch DifficultyHook updates every
# image's D from how its predicted class probabilities moved, and the next
# epoch draws len(train set) images with replacement, w_i proportional to
# D_i (the paper's flat scheme, no class prior).
#
# Knobs, at their keys (a child config or --cfg-options):
#   train_dataloader.sampler.scheme  'paper' (w ~ D) | 'class_aware' |
#                                    'uniform' (to compare)
#   custom_hooks.0.c                 prior c of D = (c + sum du) / (c + sum dl)
#
# A difficulty config uses it as its second base, with
#     train_dataloader = dict(sampler={{_base_.difficulty_sampler}})
# (two bases may not both set train_dataloader).
difficulty_sampler = dict(
    _delete_=True, type='DifficultyClassAwareSampler', scheme='paper')
custom_hooks = [dict(type='DifficultyHook', c=1.0)]
