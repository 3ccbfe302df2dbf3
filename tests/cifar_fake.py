"""A small data set in the CIFAR python-pickle format, for the tests.

Stands in for the download (``write_fake_cifar('data')`` writes the layout
the real archives extract to).
"""
import os
import os.path as osp
import pickle
from typing import Any

import numpy as np


def _dump_pickle(obj: Any, path: str) -> None:
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=2)


def write_fake_cifar(root: str,
                     num_classes: int = 10,
                     per_class: int = 20,
                     test_per_class: int = 10,
                     seed: int = 0) -> str:
    """Write a small data set in the CIFAR python-pickle format.

    The files have the keys and dtypes of the real archives (``b'data'``
    uint8 (N, 3072), rows are CHW flattened; ``b'labels'`` (CIFAR-10) or
    ``b'fine_labels'`` / ``b'coarse_labels'`` (CIFAR-100) as lists of int;
    meta with ``b'label_names'`` or ``b'fine_label_names'``), under the
    directory name the real archive extracts to, so
    ``write_fake_cifar('data')`` stands in for the download. Each class
    gets its own mean colour plus noise, so a model can learn something.

    Args:
        root (str): Parent directory (the real archives extract under
            ``data/``). Created if needed.
        num_classes (int): 10 (CIFAR-10 layout) or 100 (CIFAR-100 layout).
            Defaults to 10.
        per_class (int): Training images per class. Defaults to 20.
        test_per_class (int): Test images per class. Defaults to 10.
        seed (int): Seed of the image noise and order. Defaults to 0.

    Returns:
        str: The data root to pass to :class:`CIFAR10LT` /
        :class:`CIFAR100LT`.
    """
    if num_classes not in (10, 100):
        raise ValueError('The CIFAR formats have 10 or 100 classes, got '
                         f'num_classes={num_classes!r}')
    if per_class < 1 or test_per_class < 1:
        raise ValueError('per_class and test_per_class must be >= 1, got '
                         f'{per_class!r} and {test_per_class!r}')
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(num_classes, 3))

    def make(n_per_class: int) -> tuple:
        labels = np.repeat(np.arange(num_classes), n_per_class)
        labels = labels[rng.permutation(labels.size)]
        data = np.empty((labels.size, 3072), dtype=np.uint8)
        # One class at a time in float32 keeps a full-size (50,000-image)
        # fake set within a few hundred MB.
        for c in range(num_classes):
            rows = np.flatnonzero(labels == c)
            noise = rng.standard_normal((rows.size, 3, 1024), dtype=np.float32)
            imgs = colours[c][None, :, None] + 40 * noise
            data[rows] = np.clip(imgs, 0, 255).reshape(rows.size, 3072)
        return data, [int(v) for v in labels]

    train_data, train_labels = make(per_class)
    test_data, test_labels = make(test_per_class)
    names = [f'class_{i}'.encode() for i in range(num_classes)]
    if num_classes == 10:
        out = osp.join(root, 'cifar-10-batches-py')
        os.makedirs(out, exist_ok=True)
        chunks = np.array_split(np.arange(len(train_labels)), 5)
        for i, idx in enumerate(chunks, 1):
            _dump_pickle(
                {
                    b'batch_label': f'training batch {i} of 5'.encode(),
                    b'labels': [train_labels[j] for j in idx],
                    b'data': train_data[idx],
                    b'filenames': [f'{j}.png'.encode() for j in idx],
                }, osp.join(out, f'data_batch_{i}'))
        test_names = [f'{j}.png'.encode() for j in range(len(test_labels))]
        _dump_pickle(
            {
                b'batch_label': b'testing batch 1 of 1',
                b'labels': test_labels,
                b'data': test_data,
                b'filenames': test_names,
            }, osp.join(out, 'test_batch'))
        _dump_pickle(
            {
                b'num_cases_per_batch': len(chunks[0]),
                b'label_names': names,
                b'num_vis': 3072,
            }, osp.join(out, 'batches.meta'))
    else:
        out = osp.join(root, 'cifar-100-python')
        os.makedirs(out, exist_ok=True)
        for name, data, labels in (('train', train_data, train_labels),
                                   ('test', test_data, test_labels)):
            _dump_pickle(
                {
                    b'filenames':
                    [f'{j}.png'.encode() for j in range(len(labels))],
                    b'batch_label': f'{name}ing batch 1 of 1'.encode(),
                    b'fine_labels': labels,
                    b'coarse_labels': [v // 5 for v in labels],
                    b'data': data,
                }, osp.join(out, name))
        _dump_pickle(
            {
                b'fine_label_names': names,
                b'coarse_label_names':
                [f'super_{i}'.encode() for i in range(20)],
            }, osp.join(out, 'meta'))
    return out
