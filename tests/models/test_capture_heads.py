"""The RoI-head capture on heads beyond StandardRoIHead: read by argument
name, or refused before training with the supported heads named."""
import os.path as osp
from typing import Any, List

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmdiff.models import UnsupportedModelError, build_capture

pytestmark = pytest.mark.slow


def _model(tmp_path: Any, base: str, **model: Any) -> torch.nn.Module:
    """An mmdet detector from one of its configs, ResNet-18, from scratch."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    path = osp.join(str(tmp_path), 'cfg.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = {base!r}\n')
    cfg = Config.fromfile(path)
    cfg.model.backbone.update(depth=18, init_cfg=None)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    cfg.merge_from_dict({
        f'model.{key}': value
        for key, value in model.items()
    })
    return MODELS.build(cfg.model)


def _batch(num_classes: int) -> tuple:
    from mmdet.structures import DetDataSample
    torch.manual_seed(0)
    inputs = torch.rand(2, 3, 128, 128)
    samples = []
    for idx, boxes in ((7, [[10, 10, 60, 70],
                            [64, 20, 120, 90]]), (3, [[30, 40, 100, 110]])):
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(128, 128),
                ori_shape=(128, 128),
                pad_shape=(128, 128),
                batch_input_shape=(128, 128),
                scale_factor=(1., 1.),
                sample_idx=idx))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32),
            labels=torch.arange(len(boxes)) % num_classes)
        samples.append(sample)
    return inputs, samples


def test_grid_roi_head_is_captured(tmp_path: Any) -> None:
    model = _model(tmp_path,
                   'mmdet::grid_rcnn/grid-rcnn_r50_fpn_gn-head_1x_coco.py',
                   **{'roi_head.bbox_head.num_classes': 5})
    model.train()
    records: List[dict] = []
    capture = build_capture(model, records.append)
    inputs, samples = _batch(5)
    # GridRoIHead.loss calls bbox_loss(x, sampling_results, batch_img_metas)
    losses = model.loss(inputs, samples)
    assert 'loss_cls' in losses and 'loss_grid' in losses
    capture.detach()
    assert len(records) == 1
    batch = records[0]
    # every GT object once, on its own image and GT index
    pairs = sorted(
        zip(batch['sample_idx'].tolist(), batch['gt_index'].tolist()))
    assert pairs == [(3, 0), (7, 0), (7, 1)]
    assert batch['probs'].shape == (3, 6)  # 5 classes + background
    torch.testing.assert_close(batch['probs'].sum(1), torch.ones(3))
    assert batch['num_gts'] == [(7, 2), (3, 1)]


def test_sparse_roi_head_is_refused(tmp_path: Any) -> None:
    model = _model(tmp_path,
                   'mmdet::sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py')
    with pytest.raises(UnsupportedModelError) as err:
        build_capture(model, lambda batch: None)
    message = str(err.value)
    assert 'SparseRoIHead' in message
    assert 'StandardRoIHead, CascadeRoIHead' in message
    assert 'sampling_results' in message
