# Baseline: mmdet's ClassAwareSampler (class drawn uniformly, then an image
# of it uniformly), same model and schedule as configs/lvis_difficulty.py.
_base_ = '../lvis_difficulty.py'

train_dataloader = dict(
    sampler=dict(_delete_=True, type='ClassAwareSampler', num_sample_class=1))
custom_hooks = []
