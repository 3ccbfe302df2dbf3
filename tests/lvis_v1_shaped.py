"""A tiny LVIS-v1-shaped data set with the real 1,203 category names.

For running ``configs/lvis_difficulty.py`` itself (1,204-way bbox head)
without the LVIS download. Category names come from mmdet's
``LVISV1Dataset.METAINFO``; LVIS v1's frequency labels per category are
in its annotation files only, which no installed package ships, so the
categories get LVIS v1's group sizes (337 rare, 461 common, 405 frequent)
in a fixed shuffled order. Images are noisy backgrounds with a few filled
rectangles (box = mask polygon).
"""
import json
import os
import os.path as osp
from typing import Any, Dict, List

import numpy as np
from PIL import Image, ImageDraw

GROUP_SIZES = dict(r=337, c=461, f=405)


def _categories(rng: np.random.Generator) -> List[Dict[str, Any]]:
    from mmdet.datasets import LVISV1Dataset
    names = LVISV1Dataset.METAINFO['classes']
    freq = np.array([g for g, n in GROUP_SIZES.items() for _ in range(n)])
    rng.shuffle(freq)
    return [
        dict(
            id=i + 1,
            name=name,
            synset=f'{name}.n.01',
            synonyms=[name],
            frequency=str(freq[i]),
            image_count=1,
            instance_count=1,
            **{'def': name}) for i, name in enumerate(names)
    ]


def _split(root: str, split: str, first_id: int, num: int,
           rng: np.random.Generator, num_classes: int) -> Dict[str, Any]:
    images, annotations = [], []
    for i in range(num):
        img_id = first_id + i
        name = f'{img_id:012d}.jpg'
        pixels = rng.integers(0, 60, (96, 128, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 4))):
            x, y = float(rng.uniform(4, 80)), float(rng.uniform(4, 50))
            w, h = float(rng.uniform(16, 40)), float(rng.uniform(16, 40))
            draw.rectangle([x, y, x + w, y + h],
                           fill=tuple(
                               int(v) for v in rng.integers(90, 255, 3)))
            annotations.append(
                dict(
                    id=len(annotations) + first_id * 10,
                    image_id=img_id,
                    category_id=int(rng.integers(1, num_classes + 1)),
                    bbox=[x, y, w, h],
                    area=w * h,
                    segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
        image.save(osp.join(root, f'{split}2017', name), quality=90)
        url = f'http://images.cocodataset.org/{split}2017/{name}'
        images.append(
            dict(
                id=img_id,
                width=128,
                height=96,
                file_name=name,
                coco_url=url,
                neg_category_ids=[],
                not_exhaustive_category_ids=[]))
    return dict(images=images, annotations=annotations)


def make_lvis_v1_shaped(root: str,
                        num_train: int = 8,
                        num_val: int = 4,
                        seed: int = 0) -> str:
    """Write the set under ``root`` (LVIS v1 layout); returns ``root``."""
    rng = np.random.default_rng(seed)
    categories = _categories(rng)
    for sub in ('annotations', 'train2017', 'val2017'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    for split, first, num in (('train', 1, num_train), ('val', 1000, num_val)):
        data = _split(root, split, first, num, rng, len(categories))
        data.update(categories=categories, info={}, licenses=[])
        with open(osp.join(root, 'annotations', f'lvis_v1_{split}.json'),
                  'w') as f:
            json.dump(data, f)
    return root
