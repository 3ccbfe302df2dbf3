# The common CIFAR-LT schedule (Cao et al., NeurIPS 2019, LDAM-DRW, also
# used by the follow-up CIFAR-LT papers): 200 epochs of SGD, lr 0.1,
# momentum 0.9, weight decay 2e-4, batch 128 (set in the data set base);
# linear warm-up over the first 5 epochs (lr 0.02, 0.04, ..., 0.1 per
# epoch, as in LDAM's code); lr x0.01 at epochs 160 and 180.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.2, by_epoch=True, begin=0, end=5),
    dict(type='MultiStepLR', by_epoch=True, milestones=[160, 180], gamma=0.01),
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=10)
val_cfg = dict()
test_cfg = dict()
# lr 0.1 is for a total batch of 128; enable to scale it linearly.
auto_scale_lr = dict(base_batch_size=128, enable=False)
