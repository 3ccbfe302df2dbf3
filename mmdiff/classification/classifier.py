"""The image classifier: backbone, optional neck, head."""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from .data_sample import ClsDataSample


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """Backbone -> neck -> head, with mmpretrain's ``forward`` modes.

    Registry name ``'ImageClassifier'``. ``data_samples`` travel from the
    data preprocessor to the head untouched, so their metainfo
    (``sample_idx``) reaches ``head._get_loss``.

    Args:
        backbone (dict): Config of the backbone, e.g. ``ResNetCifar``.
        head (dict): Config of the head, e.g. ``MultiHeadNormClsHead``.
        neck (dict, optional): Config of the neck, e.g.
            ``GlobalAveragePooling``. Defaults to None.
        data_preprocessor (dict | nn.Module, optional): Defaults to
            ``dict(type='ClsDataPreprocessor')``; a dict without ``type``
            gets that type.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 neck: Optional[dict] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='ClsDataPreprocessor')
        elif isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            data_preprocessor.setdefault('type', 'ClsDataPreprocessor')
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck is not None else None
        self.head = MODELS.build(head)

    def extract_feat(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Backbone and neck features of an (N, 3, H, W) batch."""
        feats = self.backbone(inputs)
        if self.neck is not None:
            feats = self.neck(feats)
        return feats

    def forward(
        self,
        inputs: torch.Tensor,
        data_samples: Optional[List[ClsDataSample]] = None,
        mode: str = 'tensor'
    ) -> Union[dict, List[ClsDataSample], torch.Tensor]:
        """Run the model in one of three modes.

        Args:
            inputs (torch.Tensor): Preprocessed images, (N, 3, H, W).
            data_samples (list[ClsDataSample], optional): Labels and
                metainfo; required for ``'loss'``.
            mode (str): ``'loss'`` (dict of losses), ``'predict'`` (data
                samples with ``pred_score`` / ``pred_label``) or
                ``'tensor'`` (raw logits, (N, C)). Defaults to
                ``'tensor'``.

        Returns:
            dict | list[ClsDataSample] | torch.Tensor: See ``mode``.
        """
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs))
        if mode == 'loss':
            if data_samples is None:
                raise ValueError("mode='loss' needs data_samples with "
                                 'gt_label')
            return self.head.loss(self.extract_feat(inputs), data_samples)
        if mode == 'predict':
            return self.head.predict(self.extract_feat(inputs), data_samples)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got "
                         f'{mode!r}')
