# Difficulty re-sampling + Seesaw loss (Wang et al., CVPR 2021) with its
# normalised linear classifier. The hook reads Seesaw's own activation.
_base_ = '../lvis_difficulty.py'

model = dict(
    roi_head=dict(
        bbox_head=dict(
            cls_predictor_cfg=dict(type='NormedLinear', tempearture=20),
            loss_cls=dict(
                type='SeesawLoss',
                p=0.8,
                q=2.0,
                num_classes=1203,
                loss_weight=1.0)),
        mask_head=dict(
            predictor_cfg=dict(type='NormedConv2d', tempearture=20))))
