"""The files of the synthetic LVIS set: JPEG images and LVIS v1 JSON."""
import json
import os.path as osp
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from .render import Look, render_image
from .spec import SYNTHETIC_LVIS_VERSION, class_spec

__all__ = ['write_split', 'category_records', 'dump_json']

#: (width, height) of an image.
Size = Tuple[int, int]

COCO_URL_PREFIX = 'http://images.cocodataset.org/'
HARD_KEY = 'mmdiff_hard_variant'
_SPLIT_CODES = {'train': 1, 'val': 2}


def dump_json(obj: Any, path: str) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, separators=(',', ':'))


def _image_record(img_id: int, split: str, width: int, height: int,
                  neg: List[int]) -> Dict[str, Any]:
    file_name = f'{img_id:012d}.jpg'
    url = f'{COCO_URL_PREFIX}{split}2017/{file_name}'
    return dict(
        id=img_id,
        width=width,
        height=height,
        file_name=file_name,
        coco_url=url,
        flickr_url=url,
        license=1,
        date_captured='2017-01-01 00:00:00',
        neg_category_ids=neg,
        not_exhaustive_category_ids=[])


def category_records(names: Sequence[str], freq: Sequence[str],
                     image_count: np.ndarray,
                     instance_count: np.ndarray) -> List[Dict[str, Any]]:
    """LVIS v1 category records, ids 1..C in class order."""
    categories = []
    for c, name in enumerate(names):
        shape, colour, _ = class_spec(c)
        record = dict(
            id=c + 1, name=name, synset=f'{name}.n.01', synonyms=[name])
        record['def'] = f'a {colour} {shape} (synthetic)'
        record.update(
            frequency=freq[c],
            image_count=int(image_count[c]),
            instance_count=int(instance_count[c]))
        categories.append(record)
    return categories


def write_split(root: str, split: str, labels: List[List[int]],
                hard_flags: List[List[bool]], first_id: int,
                categories: List[Dict[str, Any]], seed: int, image_size: Size,
                look: Look, jpeg_quality: int) -> Tuple[int, List[int]]:
    """Draw and save one split's images and its JSON file.

    Returns:
        tuple[int, list[int]]: Number of annotations and the ids of the
        hard-variant annotations.
    """
    width, height = image_size
    all_ids = [cat['id'] for cat in categories]
    images, annotations, hard_ids = [], [], []
    for i, (objs, flags) in enumerate(zip(labels, hard_flags)):
        img_id = first_id + i
        # One generator per image: an image depends on (seed, split, index)
        # and its layout only.
        rng = np.random.default_rng([seed, _SPLIT_CODES[split], i])
        pixels, geoms = render_image(rng, width, height, objs, flags, look,
                                     len(categories))
        present = {c + 1 for c in objs}
        # The data are exhaustively annotated: every absent category is a
        # verified negative, so LVISEval penalises false positives as COCO
        # would (real LVIS lists only a sample).
        neg = [c for c in all_ids if c not in present]
        record = _image_record(img_id, split, width, height, neg)
        images.append(record)
        Image.fromarray(pixels).save(
            osp.join(root, f'{split}2017', record['file_name']),
            format='JPEG',
            quality=jpeg_quality)
        for c, is_hard, geom in zip(objs, flags, geoms):
            ann_id = len(annotations) + 1
            annotations.append({
                'id':
                ann_id,
                'image_id':
                img_id,
                'category_id':
                c + 1,
                'bbox': [round(v, 2) for v in geom['bbox']],
                'area':
                geom['area'],
                'segmentation': [[float(v) for v in geom['poly'].reshape(-1)]],
                HARD_KEY:
                bool(is_hard),
            })
            if is_hard:
                hard_ids.append(ann_id)
    data = dict(
        info=dict(
            description=f'mmdiff synthetic long-tailed LVIS v1 ({split})',
            version=f'mmdiff-synthetic-{SYNTHETIC_LVIS_VERSION}',
            year=2017,
            contributor='mmdiff',
            date_created='2017-01-01 00:00:00'),
        licenses=[
            dict(
                id=1,
                name='CC0 1.0',
                url='https://creativecommons.org/publicdomain/zero/1.0/')
        ],
        images=images,
        annotations=annotations,
        categories=categories)
    dump_json(data, osp.join(root, 'annotations', f'lvis_v1_{split}.json'))
    return len(annotations), hard_ids
