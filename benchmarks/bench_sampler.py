"""Benchmark DifficultyClassAwareSampler at LVIS v1 scale.

A fake dataset with LVIS v1 train's shape (100,170 images, 1,203 classes,
Zipf-like class frequencies, about 4 classes and 12 objects per image)
exposes ``get_cat_ids`` and ``metainfo`` like mmdet's ``LVISV1Dataset``.
Timed, with mmdet's ``ClassAwareSampler`` in the same process, repeats
alternating and medians reported:

- ``build_s``: building our sampler (label walk, index, prior);
- ``set_difficulty_s``: recomputing the probabilities from a difficulty;
- ``epoch_s``: one epoch of indices, a full iteration of the sampler.

Prints one JSON line. Acceptance: ``build_s <= 2`` and
``epoch_ratio = epoch_s / mmdet_epoch_s <= 1``.

Usage (after ``pip install -e .``, or with ``PYTHONPATH=.``)::

    python benchmarks/bench_sampler.py [--repeats 5] [--scheme class_aware]
"""
import argparse
import json
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from mmdiff.samplers import DifficultyClassAwareSampler

NUM_IMAGES = 100170
NUM_CLASSES = 1203


class FakeLVISDataset:
    """Per-object class labels of an LVIS-sized dataset.

    Args:
        num_images (int): Number of images. Defaults to 100170.
        num_classes (int): Number of classes. Defaults to 1203.
        zipf (float): Exponent of the class frequencies. Defaults to 1.1.
        seed (int): Seed of the generated labels. Defaults to 0.
    """

    def __init__(self,
                 num_images: int = NUM_IMAGES,
                 num_classes: int = NUM_CLASSES,
                 zipf: float = 1.1,
                 seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        class_p = 1.0 / np.arange(1, num_classes + 1)**zipf
        class_p = class_p[rng.permutation(num_classes)]
        class_p /= class_p.sum()
        classes_per_image = rng.poisson(3.0, num_images) + 1  # mean 4
        labels = rng.choice(num_classes, classes_per_image.sum(), p=class_p)
        objects = rng.poisson(2.0, labels.size) + 1  # mean 3 per class
        per_object = np.repeat(labels, objects)
        ends = np.cumsum(
            np.add.reduceat(objects, np.r_[0,
                                           np.cumsum(classes_per_image)[:-1]]))
        starts = np.r_[0, ends[:-1]]
        flat = per_object.tolist()
        self._labels: List[List[int]] = [
            flat[s:e] for s, e in zip(starts.tolist(), ends.tolist())
        ]
        self.metainfo = dict(
            classes=tuple(f'c{i}' for i in range(num_classes)))
        self.num_objects = int(per_object.size)

    def __len__(self) -> int:
        return len(self._labels)

    def get_cat_ids(self, idx: int) -> List[int]:
        # mmdet's BaseDetDataset returns a fresh list of bbox_label.
        return list(self._labels[idx])


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> Dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--scheme', default='class_aware')
    args = parser.parse_args()

    dataset = FakeLVISDataset()
    difficulty = np.random.default_rng(1).gamma(2.0, 0.5, len(dataset))
    try:
        from mmdet.datasets.samplers import ClassAwareSampler
    except ImportError:
        ClassAwareSampler = None

    build, build_mmdet, set_d, epoch, epoch_mmdet = [], [], [], [], []
    ours: Optional[DifficultyClassAwareSampler] = None
    theirs = None
    for repeat in range(args.repeats):
        start = time.perf_counter()
        ours = DifficultyClassAwareSampler(dataset, seed=0, scheme=args.scheme)
        build.append(time.perf_counter() - start)
        set_d.append(_timed(lambda: ours.set_difficulty(difficulty, 0)))
        if ClassAwareSampler is not None:
            start = time.perf_counter()
            theirs = ClassAwareSampler(dataset, seed=0)
            build_mmdet.append(time.perf_counter() - start)
        # Alternate the epoch timings so load drifts hit both alike.
        ours.set_epoch(repeat)
        epoch.append(_timed(lambda: list(ours)))
        if theirs is not None:
            theirs.set_epoch(repeat)
            epoch_mmdet.append(_timed(lambda: list(theirs)))

    def med(values: List[float]) -> Optional[float]:
        return round(statistics.median(values), 4) if values else None

    result = dict(
        benchmark='bench_sampler',
        scheme=args.scheme,
        num_images=len(dataset),
        num_classes=NUM_CLASSES,
        num_objects=dataset.num_objects,
        num_entries=ours.class_index.num_entries,
        repeats=args.repeats,
        build_s=med(build),
        set_difficulty_s=med(set_d),
        epoch_s=med(epoch),
        mmdet_build_s=med(build_mmdet),
        mmdet_epoch_s=med(epoch_mmdet),
        epoch_ratio=(round(med(epoch) /
                           med(epoch_mmdet), 4) if epoch_mmdet else None),
        build_ok=med(build) <= 2.0,
        epoch_ok=(med(epoch) <= med(epoch_mmdet)) if epoch_mmdet else None,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        cpu=platform.processor() or platform.machine())
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
