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

# ---- knobs ------------------------------------------------------------
data_root = 'data/lvis_v1/'
sampler_scheme = 'repeat_factor'  # 'paper' | 'class_aware' | 'uniform'
rfs_thr = 0.001  # LVIS repeat-factor threshold t
beta = 1.0  # exponent of the difficulty in the repeat_factor scheme
temperature = 1.0  # D ** (1 / T) before weighting
warmup_epochs = 0  # epochs of prior-only sampling
difficulty_c = 1.0  # prior c of D = (c + sum du) / (c + sum dl)
reduce = 'mean'  # object -> image difficulty: 'mean' | 'max' | 'sum'
topk = 8  # classes kept per object besides the true one
roi_stage = -1  # cascade heads: the stage read
dump_difficulty = True  # work_dir/difficulty/epoch_*.npz for tools/analysis
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
        scheme=sampler_scheme,
        thr=rfs_thr,
        beta=beta,
        temperature=temperature,
        warmup_epochs=warmup_epochs),
    # The plain LVIS v1 set replaces mmdet's static ClassBalancedDataset:
    # the sampler applies the repeat factors itself.
    dataset=dict(
        _delete_=True,
        type='LVISV1Dataset',
        data_root=data_root,
        ann_file='annotations/lvis_v1_train.json',
        data_prefix=dict(img=''),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/lvis_v1_val.json')
test_evaluator = val_evaluator

custom_hooks = [
    dict(
        type='DifficultyHook',
        c=difficulty_c,
        reduce=reduce,
        topk=topk,
        stage=roi_stage,
        dump=dump_difficulty)
]
