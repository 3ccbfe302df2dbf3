"""Start-up cost of reading the training set's objects at LVIS v1 scale.

A simulated LVIS v1 train set (100,170 images, 1,203 classes, about 12.7
objects per image, each with a box, a label, an ignore flag and a
24-coordinate polygon) is an mmengine ``BaseDataset`` with mmengine's
default ``serialize_data=True``, so every ``get_data_info`` unpickles one
image's record, as mmdet's ``LVISV1Dataset`` does.

Timed side by side in one process, repeats alternating, medians reported:

- ``before_s``: what mmdiff did before one index: the sampler walked the
  set with ``get_cat_ids`` (ignored objects included) and the hook walked
  it again with ``get_data_info`` (ignored objects excluded);
- ``after_s``: :func:`mmdiff.datasets.index_dataset`, the one walk whose
  :class:`~mmdiff.core.DatasetIndex` both now share (it also keeps every
  object's box, ignore flag, image id and path, for the dumps), and the
  sampler's class index made from it.

Prints one JSON line with both times and ``ratio = after_s / before_s``.

Usage::

    python benchmarks/bench_startup_walk.py [--images 100170] [--repeats 3]
"""
import argparse
import json
import platform
import statistics
import time
from typing import Dict, List

import numpy as np
from mmengine.dataset import BaseDataset

from mmdiff.core import ImageClassIndex
from mmdiff.datasets import index_dataset


class SimulatedLVIS(BaseDataset):
    """LVIS-v1-shaped detection records (no images)."""

    def __init__(self, num_images: int, seed: int = 0) -> None:
        self._num_images, self._seed = num_images, seed
        super().__init__(
            metainfo=dict(classes=tuple(f'c{i}' for i in range(1203))),
            serialize_data=True)

    def load_data_list(self) -> List[dict]:
        rng = np.random.default_rng(self._seed)
        class_p = 1.0 / np.arange(1, 1204)**1.1
        class_p /= class_p.sum()
        counts = rng.poisson(11.7, self._num_images) + 1
        labels = rng.choice(1203, int(counts.sum()), p=class_p).tolist()
        polygon = [float(v) for v in rng.uniform(0, 600, 24)]
        out, pos = [], 0
        for i, count in enumerate(counts.tolist()):
            instances = [
                dict(
                    bbox=[10.0, 20.0, 110.0, 220.0],
                    bbox_label=labels[pos + j],
                    ignore_flag=0,
                    mask=[polygon]) for j in range(count)
            ]
            pos += count
            out.append(
                dict(
                    img_id=i + 1,
                    img_path=f'train2017/{i + 1:012d}.jpg',
                    width=640,
                    height=480,
                    instances=instances))
        return out

    def get_cat_ids(self, idx: int) -> List[int]:
        # mmdet's BaseDetDataset.get_cat_ids
        instances = self.get_data_info(idx)['instances']
        return [instance['bbox_label'] for instance in instances]


def before(dataset: SimulatedLVIS) -> int:
    """The previous start-up: two walks, each made into arrays.

    The sampler walked ``get_cat_ids`` into an ImageClassIndex; the hook
    walked ``get_data_info`` into object counts and labels.
    """
    flat: List[int] = []
    lengths: List[int] = []
    for idx in range(len(dataset)):  # sampler: get_cat_ids
        cat_ids = dataset.get_cat_ids(idx)
        flat.extend(cat_ids)
        lengths.append(len(cat_ids))
    ImageClassIndex.from_flat(
        np.array(flat, dtype=np.int64), np.array(lengths, dtype=np.int64),
        1203)
    counts = np.zeros(len(dataset), dtype=np.int64)
    kept: List[int] = []
    for idx in range(len(dataset)):  # hook: get_data_info, kept objects
        labels = [
            inst['bbox_label']
            for inst in dataset.get_data_info(idx)['instances']
            if not inst.get('ignore_flag', 0)
        ]
        counts[idx] = len(labels)
        kept.extend(labels)
    return len(flat) + len(np.asarray(kept, dtype=np.int64))


def after(dataset: SimulatedLVIS) -> int:
    index = index_dataset(dataset)
    index.class_index()  # the sampler's view
    return index.num_objects


def main() -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=100170)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    dataset = SimulatedLVIS(args.images)
    build_s = time.perf_counter() - start
    times: Dict[str, List[float]] = dict(before=[], after=[])
    for _ in range(args.repeats):
        for name, fn in (('before', before), ('after', after)):
            start = time.perf_counter()
            fn(dataset)
            times[name].append(time.perf_counter() - start)
    result = dict(
        images=args.images,
        objects=int(after(dataset)),
        dataset_build_s=round(build_s, 2),
        before_s=round(statistics.median(times['before']), 2),
        after_s=round(statistics.median(times['after']), 2),
        repeats=args.repeats,
        machine=f'{platform.machine()}, {platform.python_version()}')
    result['ratio'] = round(result['after_s'] / result['before_s'], 3)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
