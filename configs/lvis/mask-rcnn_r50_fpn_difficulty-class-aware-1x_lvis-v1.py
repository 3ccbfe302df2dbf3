# Class-aware two-level sampling with difficulty: a class drawn uniformly,
# then an image of it with probability proportional to its difficulty.
_base_ = '../lvis_difficulty.py'

train_dataloader = dict(sampler=dict(scheme='class_aware'))
