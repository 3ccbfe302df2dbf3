# The embedded demo: difficulty re-sampling on a synthetic long-tailed
# LVIS-v1-format data set, made under data/synthetic_lvis/ on first use
# (no download). A small Mask R-CNN (a ResNet-18 with 16 base channels and
# GroupNorm, narrow FPN and heads, no pre-training) trains on the CPU and
# is evaluated with mmdet's LVISMetric (AP, APr, APc, APf, bbox and segm).
#
#   python tools/train.py \
#       configs/demo/mask-rcnn_r18_synthetic-lvis_difficulty.py
#   python tools/test.py \
#       configs/demo/mask-rcnn_r18_synthetic-lvis_difficulty.py \
#       work_dirs/mask-rcnn_r18_synthetic-lvis_difficulty/epoch_10.pth
#
# The recipe (shared by tools/reproduce_evidence.py): from scratch, SGD lr
# 0.02 with a 200-iteration warm-up from lr / 1000 and gradient clipping,
# 10 epochs of the 300 training images, lr x0.1 for the last 2 epochs.
#
# ---- knobs, at their keys (a child config or --cfg-options) -----------
#   train_dataloader.sampler.scheme   'repeat_factor' | 'paper' |
#                                     'class_aware' | 'uniform' |
#                                     'instance_repeat_factor'
#   train_dataloader.sampler.thr      repeat-factor threshold (0.1 here:
#                                     scaled to this tiny data set)
#   custom_hooks.0.c                  prior c of D
#   train_cfg.max_epochs              with param_scheduler.1.end / milestones
#   *_dataloader.dataset.data_root    'data/synthetic_lvis/'
#   *_dataloader.dataset.synthetic    arguments of make_synthetic_lvis
# -----------------------------------------------------------------------
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdiff'], allow_failed_imports=False)

model = dict(
    # From scratch (no download), so nothing is frozen and GroupNorm
    # replaces mmdet's frozen BatchNorm (made for pre-trained nets): it
    # trains at any batch size, and the probabilities captured during
    # training do not depend on the batch statistics (He et al., Rethinking
    # ImageNet Pre-training, 2019, train from scratch with GN).
    backbone=dict(
        depth=18,
        base_channels=16,
        stem_channels=16,
        init_cfg=None,
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True)),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64),
    rpn_head=dict(
        in_channels=64, feat_channels=64, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(
            out_channels=64, roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=20),
        mask_roi_extractor=dict(
            out_channels=64, roi_layer=dict(sampling_ratio=2)),
        mask_head=dict(in_channels=64, conv_out_channels=64, num_classes=20)),
    # A few objects per 160x128 image: 300 proposals before NMS, 150 kept
    # and 32 RoIs per image (GT boxes among them) are plenty, and NMS and
    # RoIAlign dominate a CPU step otherwise.
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=300, max_per_img=150),
        rcnn=dict(sampler=dict(num=32, add_gt_as_proposals=True))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(score_thr=0.001, max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    # sample_idx identifies the image for DifficultyHook.
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'flip', 'flip_direction', 'sample_idx'))
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(
        type='DifficultyClassAwareSampler', scheme='repeat_factor', thr=0.1),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='SyntheticLVISV1Dataset',
        data_root='data/synthetic_lvis/',
        synthetic=dict(seed=0, num_train=300, num_val=80),
        ann_file='annotations/lvis_v1_train.json',
        data_prefix=dict(img=''),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='SyntheticLVISV1Dataset',
        data_root='data/synthetic_lvis/',
        synthetic=dict(seed=0, num_train=300, num_val=80),
        ann_file='annotations/lvis_v1_val.json',
        data_prefix=dict(img=''),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='LVISMetric',
    ann_file='data/synthetic_lvis/annotations/lvis_v1_val.json',
    metric=['bbox', 'segm'])
test_evaluator = val_evaluator

custom_hooks = [
    dict(
        type='DifficultyHook',
        c=1.0,
        # LVIS r / c / f bounds in training images, scaled like the
        # generator's frequency_thresholds (2.5 % and 10 % of 300).
        frequency_thresholds=(7, 30),
        dump=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=10, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=200),
    dict(
        type='MultiStepLR',
        begin=0,
        end=10,
        by_epoch=True,
        milestones=[8],
        gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=10, norm_type=2))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
# Deterministic sampler order and initialisation for a given seed.
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=16)
