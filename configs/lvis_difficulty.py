# Mask R-CNN R50-FPN, LVIS v1, 1x (12 epochs, 8 GPUs x 2 images), with
# difficulty-aware re-sampling (Yu et al., CVPR 2022, carried to LVIS by
# mmdiff): each epoch, images are drawn with probability proportional to
# the LVIS repeat factor x (image difficulty)^beta.
#
#   bash tools/dist_train.sh configs/lvis_difficulty.py 8
#   bash tools/dist_test.sh configs/lvis_difficulty.py \
#       work_dirs/lvis_difficulty/epoch_12.pth 8
_base_ = 'mmdet::lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py'
custom_imports = dict(imports=['mmdiff'], allow_failed_imports=False)

# ---- knobs -----------------------------------------------------------
# Values are written where they are used: a child config (or
# --cfg-options) changes a knob at its key, e.g.
#     train_dataloader = dict(sampler=dict(beta=2.0))
#     --cfg-options train_dataloader.sampler.beta=2.0 custom_hooks.0.c=3.0
# (mmengine expands a base config's variables in the base, so a child's
# `beta = 2.0` would change nothing; custom_hooks is a list: a child
# restates the whole DifficultyHook dict). The README lists every option.
#   train_dataloader.dataset.data_root   'data/lvis_v1/'
#   train_dataloader.sampler.scheme      'repeat_factor' | 'paper' |
#                                        'class_aware' | 'uniform' |
#                                        'instance_repeat_factor'
#   train_dataloader.sampler.thr         LVIS repeat-factor threshold t
#   train_dataloader.sampler.beta        exponent of D in repeat_factor
#   train_dataloader.sampler.temperature D ** (1 / T) before weighting
#   train_dataloader.sampler.warmup_epochs  epochs of prior-only sampling
#   custom_hooks.0.c                     prior c of D
#   custom_hooks.0.reduce                object -> image: mean | max | sum
#   custom_hooks.0.topk                  classes kept per object (top-k)
#   custom_hooks.0.stage                 cascade heads: the stage read
#   custom_hooks.0.dump                  work_dir/difficulty/epoch_*.npz
# -----------------------------------------------------------------------

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomChoiceResize',
        scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736),
                (1333, 768), (1333, 800)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    # sample_idx identifies the image for DifficultyHook.
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'flip', 'flip_direction', 'sample_idx'))
]
train_dataloader = dict(
    sampler=dict(
        _delete_=True,
        type='DifficultyClassAwareSampler',
        scheme='repeat_factor',
        thr=0.001,
        beta=1.0,
        temperature=1.0,
        warmup_epochs=0),
    # The plain LVIS v1 set replaces mmdet's static ClassBalancedDataset:
    # the sampler applies the repeat factors itself.
    dataset=dict(
        _delete_=True,
        type='LVISV1Dataset',
        data_root='data/lvis_v1/',
        ann_file='annotations/lvis_v1_train.json',
        data_prefix=dict(img=''),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root='data/lvis_v1/'))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file='data/lvis_v1/annotations/lvis_v1_val.json')
test_evaluator = val_evaluator

custom_hooks = [
    dict(
        type='DifficultyHook',
        c=1.0,
        reduce='mean',
        topk=8,
        stage=-1,
        dump=True)
]
