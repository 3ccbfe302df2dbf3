# The paper's flat scheme: w_i proportional to D_i, no class prior.
_base_ = '../lvis_difficulty.py'

train_dataloader = dict(sampler=dict(scheme='paper'))
