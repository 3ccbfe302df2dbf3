# Baseline: mmdet's static repeat-factor sampling (ClassBalancedDataset,
# t = 0.001), same model and schedule as configs/lvis_difficulty.py.
_base_ = 'mmdet::lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py'
custom_imports = dict(imports=['mmdiff'], allow_failed_imports=False)
