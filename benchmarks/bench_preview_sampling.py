"""The sampling preview at LVIS v1 scale: walk, numbers and figure.

The simulated LVIS v1 train set of ``bench_startup_walk.py`` (100,170
images, 1,203 classes, about 12.7 objects per image, mmengine's
``serialize_data=True``) goes through what
``tools/analysis/preview_sampling.py`` does after building the dataset:
the one walk (:func:`mmdiff.datasets.index_dataset`), the numbers of every
scheme (:func:`mmdiff.analysis.preview.preview_schemes`, with a flat
difficulty for the config's scheme) and the figure. Building the dataset
itself (reading the LVIS json) is mmdet's and is timed separately.

Prints one JSON line; the goal is under a minute in all.

Usage::

    python benchmarks/bench_preview_sampling.py [--images 100170]
"""
import argparse
import json
import os.path as osp
import platform
import sys
import tempfile
import time
from typing import Dict

import numpy as np

from mmdiff.analysis.preview import preview_schemes
from mmdiff.analysis.preview_figure import draw_preview
from mmdiff.core import frequency_of_counts
from mmdiff.datasets import index_dataset

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_startup_walk import SimulatedLVIS  # noqa: E402


def main() -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=100170)
    args = parser.parse_args()
    tic = time.perf_counter()
    dataset = SimulatedLVIS(args.images)
    build_s = time.perf_counter() - tic
    tic = time.perf_counter()
    index = index_dataset(dataset)
    walk_s = time.perf_counter() - tic
    tic = time.perf_counter()
    frequency = [
        'rcf'[g] for g in frequency_of_counts(index.images_per_class())
    ]
    rng = np.random.default_rng(0)
    preview = preview_schemes(
        index,
        frequency,
        0.001,
        configured=dict(scheme='repeat_factor'),
        difficulty=rng.lognormal(0, 0.5, index.num_indices))
    numbers_s = time.perf_counter() - tic
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        draw_preview(preview, index.images_per_class(),
                     osp.join(tmp, 'preview.png'))
    figure_s = time.perf_counter() - tic
    result = dict(
        images=args.images,
        objects=index.num_objects,
        dataset_build_s=round(build_s, 2),
        walk_s=round(walk_s, 2),
        numbers_s=round(numbers_s, 2),
        figure_s=round(figure_s, 2),
        machine=f'{platform.machine()}, {platform.python_version()}')
    result['preview_s'] = round(walk_s + numbers_s + figure_s, 2)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
