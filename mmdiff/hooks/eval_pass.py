"""The paper-faithful eval-pass mode of DifficultyHook.

The paper computes ``p_{i,t}`` for every training instance after each epoch
with the model in evaluation mode. In detection that means one extra
forward pass over the training images: a deterministic pipeline (the test
pipeline's resize, no random flip or crop), the backbone, and the bbox head
on the GT boxes used as RoIs. The online mode (the default) reads the same
probabilities from the training forward pass instead, for free.
"""
import copy
from typing import Any, List, Optional, Sequence

import torch
from mmengine.dist import is_main_process
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar

from mmdiff.datasets.sample_idx import (install_global_sample_idx,
                                        keep_sample_idx)

__all__ = [
    'eval_pass_options', 'eval_pass_pipeline', 'build_eval_pass_loader',
    'run_eval_pass'
]

EVAL_PASS_DEFAULTS = dict(
    interval=1, pipeline=None, batch_size=None, num_workers=2)


def eval_pass_options(options: Optional[dict]) -> dict:
    """DifficultyHook's ``eval_pass`` dict, completed and checked.

    Args:
        options (dict, optional): Any of ``interval``, ``pipeline``,
            ``batch_size``, ``num_workers``.

    Returns:
        dict: All four.

    Raises:
        ValueError: An unknown key or an interval below 1.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(EVAL_PASS_DEFAULTS))
    if unknown:
        raise ValueError(f'eval_pass has unknown options {unknown}; it takes '
                         f'{sorted(EVAL_PASS_DEFAULTS)}')
    out = dict(EVAL_PASS_DEFAULTS, **options)
    if int(out['interval']) < 1:
        raise ValueError(
            f"eval_pass interval must be >= 1, got {out['interval']}")
    out['interval'] = int(out['interval'])
    out['num_workers'] = int(out['num_workers'])
    return out


def eval_pass_pipeline(test_pipeline: Sequence[dict]) -> List[dict]:
    """A deterministic training-image pipeline from the test pipeline.

    Annotations are loaded right after the image (mmdet's test pipelines
    load them after ``Resize``, in original coordinates, for evaluation;
    here the GT boxes must follow the resize), boxes and labels only (the
    pass reads no mask), and the pack transform keeps ``sample_idx``.

    Args:
        test_pipeline (Sequence[dict]): e.g. ``cfg.test_dataloader.dataset
            .pipeline``.

    Returns:
        list[dict]: the pipeline for the eval pass.
    """
    pipeline = [copy.deepcopy(dict(t)) for t in test_pipeline]
    load_ann = [t for t in pipeline if t['type'] == 'LoadAnnotations']
    if load_ann:  # detection: GT boxes must be resized with the image
        # The pass reads boxes and labels only: masks (rasterised and
        # resized per object, most of the loading time at LVIS sizes) and
        # segmentation maps are not loaded.
        load_ann[0].update(with_mask=False, with_seg=False)
        pipeline = [t for t in pipeline if t['type'] != 'LoadAnnotations']
        load_img = next(
            (i for i, t in enumerate(pipeline) if 'LoadImage' in t['type']),
            -1)
        pipeline.insert(load_img + 1, load_ann[0])
    return keep_sample_idx(pipeline)


def build_eval_pass_loader(runner: Any,
                           pipeline: Optional[Sequence[dict]] = None,
                           batch_size: Optional[int] = None,
                           num_workers: int = 2) -> Any:
    """The dataloader of the eval pass (built once, reused every pass).

    The training dataset config with a deterministic pipeline, so the
    indices are the training ``sample_idx``; every rank takes a shard
    (mmengine's DefaultSampler) and the records are merged across ranks at
    epoch end as in online mode.

    Args:
        runner (Runner): the training runner.
        pipeline (Sequence[dict], optional): Defaults to
            :func:`eval_pass_pipeline` of the test pipeline.
        batch_size (int, optional): Defaults to the train batch size.
        num_workers (int): Dataloader workers. Defaults to 2.
    """
    cfg = runner.cfg
    if pipeline is None:
        pipeline = eval_pass_pipeline(cfg.test_dataloader.dataset.pipeline)
    else:
        pipeline = keep_sample_idx(pipeline)
    loader = runner.build_dataloader(
        dict(
            dataset=_unique_images(cfg.train_dataloader.dataset, pipeline),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=batch_size or cfg.train_dataloader.batch_size,
            num_workers=num_workers,
            persistent_workers=False))
    install_global_sample_idx(loader.dataset)
    return loader


def _unique_images(dataset_cfg: Any, pipeline: Sequence[dict]) -> dict:
    """The train dataset config, each image once, with ``pipeline``.

    ConcatDataset parts keep their order (so their global image indices
    are the training ones); a RepeatDataset is replaced by its dataset.
    """
    dataset_cfg = copy.deepcopy(dict(dataset_cfg))
    if 'datasets' in dataset_cfg:
        dataset_cfg['datasets'] = [
            _unique_images(part, pipeline) for part in dataset_cfg['datasets']
        ]
        return dataset_cfg
    if 'dataset' in dataset_cfg:  # RepeatDataset (others are refused)
        return _unique_images(dataset_cfg['dataset'], pipeline)
    dataset_cfg['pipeline'] = list(pipeline)
    return dataset_cfg


def run_eval_pass(runner: Any, capture: Any, loader: Any) -> None:
    """One eval-mode pass over ``loader`` into ``capture``'s sink.

    Args:
        runner (Runner): the training runner.
        capture: a capture from :func:`mmdiff.models.build_capture`, with
            ``predict_gt(model, data)``.
        loader: from :func:`build_eval_pass_loader`.
    """
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    was_training = model.training
    model.eval()
    progress = ProgressBar(len(loader)) if is_main_process() else None
    try:
        with torch.no_grad():
            for data in loader:
                capture.predict_gt(model, data)
                if progress is not None:
                    progress.update()
    finally:
        model.train(was_training)
