"""Build a :class:`~mmdiff.core.DatasetIndex` in one walk of a dataset.

The walk reads every image's annotations once (``get_data_info``; one
label per image from ``get_gt_labels`` for classification sets) and is
shared by the sampler and the hook. mmengine's (and mmdet's)
``ConcatDataset`` and ``RepeatDataset`` are unwrapped:

- ``RepeatDataset`` shows each image of its part ``times`` times: those
  sampler indices are one image with one difficulty.
- ``ConcatDataset`` parts each number their images from 0, so the
  ``sample_idx`` an image carries through the pipeline is ambiguous:
  :func:`mmdiff.datasets.sample_idx.install_global_sample_idx` makes it
  the global image index given here (:func:`leaf_offsets`).

``ClassBalancedDataset`` is refused under the difficulty sampler: its
static repeats are what the sampler's ``repeat_factor`` scheme replaces.
"""
from typing import Any, Dict, List, Sized, Tuple

import numpy as np

from mmdiff.core.dataset_index import DatasetIndex

__all__ = ['index_dataset', 'leaf_offsets', 'UnsupportedDatasetError']

_NO_BOX = (0.0, 0.0, 0.0, 0.0)


class UnsupportedDatasetError(TypeError):
    """A dataset wrapper mmdiff cannot give a global image identity."""


def _is_concat(dataset: Any) -> bool:
    return hasattr(dataset, 'datasets') and hasattr(dataset,
                                                    'cumulative_sizes')


def _is_repeat(dataset: Any) -> bool:
    return hasattr(dataset, 'times') and hasattr(dataset, 'dataset')


def _check_wrapper(dataset: Any) -> None:
    name = type(dataset).__name__
    if name == 'ClassBalancedDataset':
        raise UnsupportedDatasetError(
            'DifficultyClassAwareSampler cannot draw from a '
            'ClassBalancedDataset: its static repeat factors are what the '
            "sampler's scheme='repeat_factor' replaces (the same LVIS "
            'repeat factors, times the difficulty). Remove the wrapper '
            '(train_dataloader.dataset = its inner dataset, with '
            "_delete_=True) and set the sampler's thr to its "
            'oversample_thr.')
    if hasattr(dataset, 'dataset') or hasattr(dataset, 'datasets'):
        raise UnsupportedDatasetError(
            f'DifficultyClassAwareSampler does not support the dataset '
            f'wrapper {name}: it needs one identity per image, which it '
            'knows for mmengine / mmdet ConcatDataset and RepeatDataset. '
            'Apply the wrapper inside those, or use the plain dataset.')


def _leaves(dataset: Any, unique: Dict[int, Tuple[Any, int]]) -> np.ndarray:
    """Unique image of every index; registers leaves and their offsets."""
    if _is_concat(dataset):
        return np.concatenate(
            [_leaves(part, unique) for part in dataset.datasets])
    if _is_repeat(dataset):
        return np.tile(_leaves(dataset.dataset, unique), int(dataset.times))
    _check_wrapper(dataset)
    if id(dataset) not in unique:  # the same part twice is one image set
        offset = sum(len(leaf) for leaf, _ in unique.values())
        unique[id(dataset)] = (dataset, offset)
    offset = unique[id(dataset)][1]
    return offset + np.arange(len(dataset), dtype=np.int64)


def leaf_offsets(dataset: Sized) -> List[Tuple[Any, int]]:
    """The datasets that hold images, each with its first global image.

    Args:
        dataset (Sized): The training dataset, wrappers included.

    Returns:
        list[tuple]: ``(leaf dataset, offset)`` in walk order.
    """
    unique: Dict[int, Tuple[Any, int]] = {}
    _leaves(dataset, unique)
    return list(unique.values())


def _no_labels_error(dataset: Any) -> TypeError:
    return TypeError(
        f'{type(dataset).__name__} gives no class labels per image: '
        'DifficultyClassAwareSampler needs get_data_info(idx) with '
        "'instances' (mmdet's BaseDetDataset), get_cat_ids(idx) returning "
        "the image's 0-based class labels, or get_gt_labels() returning "
        'one label per image; implement one of them on the dataset')


def _walk_leaf(dataset: Any, progress: bool = False) -> Dict[str, list]:
    """Objects, ignore flags, image ids and paths of every image."""
    num = len(dataset)
    get_gt_labels = getattr(dataset, 'get_gt_labels', None)
    if callable(get_gt_labels) and not hasattr(dataset, 'cat_ids'):
        labels = np.asarray(get_gt_labels())
        if labels.shape == (num, ) and labels.dtype.kind in 'iu':
            return dict(
                labels=labels.tolist(),
                boxes=list(_NO_BOX) * num,
                ignored=[False] * num,
                counts=[1] * num,
                img_ids=[-1] * num,
                img_paths=[''] * num)
    out: Dict[str, list] = dict(
        labels=[], boxes=[], ignored=[], counts=[], img_ids=[], img_paths=[])
    get_info = getattr(dataset, 'get_data_info', None)
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(num)
    for idx in range(num):
        info = get_info(idx) if callable(get_info) else None
        if isinstance(info, dict) and 'instances' in info:
            _add_instances(out, info)
        else:
            _add_cat_ids(out, dataset, idx)
        if bar is not None and (idx % 1000 == 999 or idx == num - 1):
            bar.update(idx + 1 - bar.completed)
    return out


def _add_instances(out: Dict[str, list], info: dict) -> None:
    """One mmdet data info: its objects (one loop: start-up at scale)."""
    labels, boxes, ignored = (out['labels'].append, out['boxes'].extend,
                              out['ignored'].append)
    instances = info['instances']
    for inst in instances:
        labels(inst['bbox_label'])
        boxes(inst.get('bbox', _NO_BOX))  # flat x1, y1, x2, y2
        ignored(bool(inst.get('ignore_flag', 0)))
    out['counts'].append(len(instances))
    out['img_ids'].append(int(info.get('img_id', -1)))
    out['img_paths'].append(str(info.get('img_path', '')))


def _add_cat_ids(out: Dict[str, list], dataset: Any, idx: int) -> None:
    """An image of a dataset that only has get_cat_ids."""
    get_cat_ids = getattr(dataset, 'get_cat_ids', None)
    if not callable(get_cat_ids):
        raise _no_labels_error(dataset)
    try:
        cat_ids = list(get_cat_ids(idx))
    except NotImplementedError:  # mmengine's BaseDataset declares it
        raise _no_labels_error(dataset) from None
    out['labels'].extend(cat_ids)
    out['boxes'].extend(_NO_BOX * len(cat_ids))
    out['ignored'].extend([False] * len(cat_ids))
    out['counts'].append(len(cat_ids))
    out['img_ids'].append(-1)
    out['img_paths'].append('')


def index_dataset(dataset: Sized, progress: bool = False) -> DatasetIndex:
    """Walk a (wrapped) dataset once and index its images and objects.

    The number of classes is ``len(metainfo['classes'])`` when the dataset
    has it, else the largest label + 1.

    Args:
        dataset (Sized): The training dataset.
        progress (bool): Show a progress bar over the images (mmengine's).
            Defaults to False.

    Returns:
        DatasetIndex: Sampler indices, unique images and their objects.

    Raises:
        UnsupportedDatasetError: For ClassBalancedDataset and wrappers
            other than ConcatDataset / RepeatDataset.
        TypeError: If a dataset gives no labels.
    """
    unique: Dict[int, Tuple[Any, int]] = {}
    image_of_index = _leaves(dataset, unique)
    walks = [_walk_leaf(leaf, progress) for leaf, _ in unique.values()]

    def cat(key: str, dtype: Any) -> np.ndarray:
        return np.asarray([v for walk in walks for v in walk[key]],
                          dtype=dtype)

    labels = cat('labels', np.int64)
    offsets = np.zeros(sum(len(w['counts']) for w in walks) + 1, np.int64)
    np.cumsum(cat('counts', np.int64), out=offsets[1:])
    metainfo = getattr(dataset, 'metainfo', None)
    classes = metainfo.get('classes') if isinstance(metainfo, dict) else None
    if classes is not None:
        num_classes = len(classes)
    else:
        num_classes = int(labels.max()) + 1 if labels.size else 1
    return DatasetIndex(
        image_of_index,
        offsets,
        labels,
        num_classes,
        ignored=cat('ignored', bool),
        img_ids=cat('img_ids', np.int64),
        img_paths=cat('img_paths', object),
        classes=None if classes is None else [str(c) for c in classes],
        object_boxes=np.asarray([b for walk in walks for b in walk['boxes']],
                                dtype=np.float32).reshape(-1, 4))
