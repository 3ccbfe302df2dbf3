"""The difficulty dumps: what ``DifficultyHook(dump=True)`` writes.

Shapes: ``M`` objects (GT instances), ``N`` images (unique images of the
training set), ``K`` classes, ``G`` frequency groups.

``<work_dir>/difficulty/`` holds, written by the hook and read by the
tools through this module only:

- ``index.npz``, once before training, what does not change: for every
  object its image, class and box (x1, y1, x2, y2 in the original image),
  for every image its annotation-file id and file path, for every class
  its name, LVIS frequency group and number of training images, and the
  group names. The tools take images and boxes from here, so they never
  re-read the annotation file or re-implement mmdet's dataset filtering.
- ``epoch_<e>.npz``, after every epoch: every object's D as the sampler
  used it (after the unseen policy) and whether it has been observed, every
  image's D and its sampling probability for the next epoch.
"""
import os
import os.path as osp
import re
from typing import Any, Dict, List, Tuple

import numpy as np

__all__ = [
    'INDEX_FILE', 'INDEX_KEYS', 'EPOCH_KEYS', 'write_index', 'write_epoch',
    'find_dumps', 'load_dump'
]

INDEX_FILE = 'index.npz'
INDEX_KEYS = ('instance_image', 'instance_label', 'instance_box', 'img_id',
              'img_path', 'class_name', 'class_group', 'group_names',
              'images_per_class')
EPOCH_KEYS = ('epoch', 'instance_difficulty', 'instance_observed',
              'image_difficulty', 'sampling_probs')
_EPOCH_FILE = re.compile(r'^epoch_(\d+)\.npz$')


def write_index(dump_dir: str, **arrays: Any) -> str:
    """Write ``index.npz`` (every key of :data:`INDEX_KEYS`).

    Args:
        dump_dir (str): ``<work_dir>/difficulty``.
        **arrays: The index arrays; strings are stored as fixed-width
            unicode (no pickles).

    Returns:
        str: The file written.
    """
    missing = sorted(set(INDEX_KEYS) - set(arrays))
    if missing:
        raise ValueError(f'index dump lacks {missing}')
    os.makedirs(dump_dir, exist_ok=True)
    path = osp.join(dump_dir, INDEX_FILE)
    out = {key: np.asarray(arrays[key]) for key in INDEX_KEYS}
    for key in ('img_path', 'class_name', 'group_names'):
        out[key] = np.asarray([str(v) for v in arrays[key]], dtype=str)
    np.savez_compressed(path, **out)
    return path


def write_epoch(dump_dir: str, epoch: int, **arrays: Any) -> str:
    """Write ``epoch_<epoch>.npz`` (every key of :data:`EPOCH_KEYS`).

    Args:
        dump_dir (str): ``<work_dir>/difficulty``.
        epoch (int): The epoch that just ended (1-based).
        **arrays: The epoch arrays.

    Returns:
        str: The file written.
    """
    arrays['epoch'] = int(epoch)
    missing = sorted(set(EPOCH_KEYS) - set(arrays))
    if missing:
        raise ValueError(f'epoch dump lacks {missing}')
    os.makedirs(dump_dir, exist_ok=True)
    path = osp.join(dump_dir, f'epoch_{epoch}.npz')
    np.savez_compressed(path, **{k: np.asarray(arrays[k]) for k in EPOCH_KEYS})
    return path


def find_dumps(dump_dir: str) -> List[Tuple[int, str]]:
    """The ``epoch_<e>.npz`` files of a dump directory, by epoch.

    Args:
        dump_dir (str): ``<work_dir>/difficulty``.

    Returns:
        list[tuple[int, str]]: ``(epoch, path)`` in increasing epoch order.

    Raises:
        FileNotFoundError: If the directory holds no dump or no index.
    """
    found = []
    if osp.isdir(dump_dir):
        for name in os.listdir(dump_dir):
            match = _EPOCH_FILE.match(name)
            if match:
                found.append((int(match.group(1)), osp.join(dump_dir, name)))
    if not found or not osp.isfile(osp.join(dump_dir, INDEX_FILE)):
        raise FileNotFoundError(
            f'no epoch_<e>.npz dumps with their {INDEX_FILE} in {dump_dir!r}; '
            'train with DifficultyHook(dump=True) to write them')
    return sorted(found)


def _read(path: str, keys: Tuple[str, ...]) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        missing = [key for key in keys if key not in npz.files]
        if missing:
            raise ValueError(
                f'{path} lacks {missing}: it was not written by this version '
                "of DifficultyHook's dump; train again with dump=True")
        return {key: npz[key] for key in keys}


def load_dump(path: str) -> Dict[str, Any]:
    """One epoch's dump with its directory's index, checked.

    Args:
        path (str): An ``epoch_<e>.npz`` file.

    Returns:
        dict: The arrays of :data:`INDEX_KEYS` and :data:`EPOCH_KEYS`;
        ``epoch`` an int, ``group_names`` / ``class_name`` / ``img_path``
        lists of str, and ``path``.

    Raises:
        ValueError: If a key is missing or the shapes disagree (e.g. files
            of two runs in one directory).
    """
    dump: Dict[str, Any] = _read(
        osp.join(osp.dirname(path), INDEX_FILE), INDEX_KEYS)
    dump.update(_read(path, EPOCH_KEYS))
    dump['epoch'] = int(dump['epoch'])
    for key in ('group_names', 'class_name', 'img_path'):
        dump[key] = [str(v) for v in dump[key]]
    dump['path'] = path
    m = dump['instance_image'].shape[0]
    n = len(dump['img_path'])
    k = dump['class_group'].shape[0]
    shapes = dict(
        instance_label=(m, ),
        instance_box=(m, 4),
        instance_difficulty=(m, ),
        instance_observed=(m, ),
        img_id=(n, ),
        image_difficulty=(n, ),
        sampling_probs=(n, ),
        images_per_class=(k, ))
    for key, shape in shapes.items():
        if dump[key].shape != shape:
            raise ValueError(
                f'{path}: {key} has shape {dump[key].shape}, expected {shape} '
                f'from {INDEX_FILE}; the files come from different runs')
    if m and not (0 <= dump['instance_image'].min()
                  and dump['instance_image'].max() < n):
        raise ValueError(f'{path}: instance_image outside [0, {n})')
    if m and not (0 <= dump['instance_label'].min()
                  and dump['instance_label'].max() < k):
        raise ValueError(f'{path}: instance_label outside [0, {k})')
    if k and dump['class_group'].max() >= len(dump['group_names']):
        raise ValueError(f'{path}: class_group has ids beyond group_names '
                         f'{dump["group_names"]}')
    return dump
