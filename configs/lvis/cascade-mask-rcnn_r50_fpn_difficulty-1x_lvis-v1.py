# Cascade Mask R-CNN R50-FPN on LVIS v1, 1x, with difficulty re-sampling
# (mmdet's cascade-mask-rcnn_r50_fpn heads with 1203 classes). The hook
# reads the classifier of custom_hooks.0.stage (-1: the last).
_base_ = '../lvis_difficulty.py'

num_classes = 1203


def _bbox_head(stds: list) -> dict:
    return dict(
        type='Shared2FCBBoxHead',
        in_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=num_classes,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0., 0., 0., 0.],
            target_stds=stds),
        reg_class_agnostic=True,
        loss_cls=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))


def _rcnn_train(iou: float) -> dict:
    return dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=iou,
            neg_iou_thr=iou,
            min_pos_iou=iou,
            match_low_quality=False,
            ignore_iof_thr=-1),
        sampler=dict(
            type='RandomSampler',
            num=512,
            pos_fraction=0.25,
            neg_pos_ub=-1,
            add_gt_as_proposals=True),
        mask_size=28,
        pos_weight=-1,
        debug=False)


model = dict(
    type='CascadeRCNN',
    roi_head=dict(
        type='CascadeRoIHead',
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_head=[
            _bbox_head([0.1, 0.1, 0.2, 0.2]),
            _bbox_head([0.05, 0.05, 0.1, 0.1]),
            _bbox_head([0.033, 0.033, 0.067, 0.067])
        ]),
    train_cfg=dict(
        rpn_proposal=dict(max_per_img=2000),
        rcnn=[_rcnn_train(0.5),
              _rcnn_train(0.6),
              _rcnn_train(0.7)]))
# custom_hooks is a list, so the hook is restated whole.
custom_hooks = [
    dict(
        type='DifficultyHook',
        c=1.0,
        reduce='mean',
        topk=8,
        stage=-1,
        dump=True)
]
