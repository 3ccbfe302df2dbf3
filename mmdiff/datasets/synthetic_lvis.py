"""A small synthetic long-tailed data set in the LVIS v1 format.

The data set is made for tests and CPU demos of difficulty-aware re-sampling:
it has a long-tailed class distribution, all three LVIS frequency groups and,
inside the frequent classes, a rare *hard variant* (same label, different
look), so that instance-level difficulty has something real to find.

Layout under ``root`` (the LVIS v1 / COCO 2017 convention)::

    root/
      annotations/lvis_v1_train.json
      annotations/lvis_v1_val.json
      train2017/000000000001.jpg ...
      val2017/000000000401.jpg ...
      mmdiff_synthetic.json          # marker: version, parameters, summary

mmdet 3.3.0's ``LVISV1Dataset.load_data_list`` derives the image path from
``coco_url`` (``coco_url.replace('http://images.cocodataset.org/', '')``),
so the data set is read with ``data_root=root`` and
``data_prefix=dict(img='')``, as in mmdet's ``lvis_v1_instance.py``.

Content: every class is a (shape, colour) pair drawn as a filled polygon on
a noisy textured background; the polygon is also the instance mask and its
extent the box. Several objects per image, placed mostly without overlap.

Frequency groups follow LVIS's definition (r: 1-10 training images,
c: 11-100, f: > 100) with thresholds scaled to the size of the synthetic
training set: they are fractions of the number of training images
(``frequency_thresholds``, by default 2.5 % and 10 %, i.e. 10 and 40 images
for the default 400 training images; with seed 0 the default data set has
8 frequent, 6 common and 6 rare classes, 224 to 3 training instances per
class, 1047 training and 215 validation objects). ``image_count`` and
``instance_count`` are computed from the training annotations; as in LVIS
v1, the validation file carries the same category list.

Hard variants: in every frequent class, a fraction ``hard_variant_fraction``
of the instances (train and val) is drawn small, rotated by 10-20 degrees
and in a washed-out colour blended towards the background. Such annotations
carry the non-standard key ``"mmdiff_hard_variant": true`` (LVIS and mmdet
loaders ignore unknown keys); all others carry ``false``.

Everything is a pure function of the parameters: the same seed gives
byte-identical JSON and JPEG files (for a given Pillow / libjpeg build).
"""
import argparse
import inspect
import json
import math
import os
import os.path as osp
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    'make_synthetic_lvis', 'ensure_synthetic_lvis', 'synthetic_lvis_metainfo',
    'synthetic_lvis_classes', 'SYNTHETIC_LVIS_VERSION'
]

# Bump whenever the files written for given parameters change.
SYNTHETIC_LVIS_VERSION = 1

MARKER_FILE = 'mmdiff_synthetic.json'
COCO_URL_PREFIX = 'http://images.cocodataset.org/'
HARD_KEY = 'mmdiff_hard_variant'

SHAPES = ('square', 'circle', 'triangle', 'diamond', 'cross', 'star')
COLOURS = (
    ('red', (230, 30, 30)),
    ('green', (30, 200, 40)),
    ('blue', (40, 70, 235)),
    ('yellow', (240, 220, 30)),
    ('magenta', (220, 40, 220)),
    ('cyan', (30, 215, 225)),
)
MAX_CLASSES = len(SHAPES) * len(COLOURS)

_CIRCLE_VERTICES = 16
_SPLIT_CODES = {'train': 1, 'val': 2}


def _class_spec(index: int) -> Tuple[str, str, Tuple[int, int, int]]:
    """Shape, colour name and RGB of class ``index`` (0-based).

    Consecutive classes differ in shape and colour, so the head, the middle
    and the tail of the long tail each mix all shapes and colours. The map
    ``index -> (shape, colour)`` is injective on ``range(MAX_CLASSES)``.
    """
    n = len(SHAPES)
    shape = SHAPES[index % n]
    colour_name, rgb = COLOURS[(index // n + index) % len(COLOURS)]
    return shape, colour_name, rgb


def _check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes,
                      int) or not (1 <= num_classes <= MAX_CLASSES):
        raise ValueError(f'num_classes must be an int in [1, {MAX_CLASSES}],'
                         f' got {num_classes!r}')


def synthetic_lvis_classes(num_classes: int = 20) -> Tuple[str, ...]:
    """Class names of the synthetic data set, in category-id order.

    Args:
        num_classes (int): Number of classes. Defaults to 20.

    Returns:
        tuple[str]: Names such as ``'red_square'``; name ``i`` is category
        id ``i + 1``.
    """
    _check_num_classes(num_classes)
    names = []
    for i in range(num_classes):
        shape, colour, _ = _class_spec(i)
        names.append(f'{colour}_{shape}')
    return tuple(names)


def synthetic_lvis_metainfo(num_classes: int = 20) -> Dict[str, Any]:
    """``metainfo`` for mmdet's ``LVISV1Dataset`` on the synthetic data.

    Args:
        num_classes (int): Number of classes. Defaults to 20.

    Returns:
        dict: ``classes`` (names in category-id order, as in the JSON files)
        and ``palette`` (each class's drawing colour).
    """
    classes = synthetic_lvis_classes(num_classes)
    palette = [_class_spec(i)[2] for i in range(num_classes)]
    return dict(classes=classes, palette=palette)


# ---------------------------------------------------------------------------
# Geometry


def _unit_polygon(shape: str) -> np.ndarray:
    """Vertices (N, 2) of ``shape`` inside the square [-1, 1]^2."""
    if shape == 'square':
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif shape == 'circle':
        t = 2 * np.pi * np.arange(_CIRCLE_VERTICES) / _CIRCLE_VERTICES
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    elif shape == 'triangle':
        pts = [(0, -1), (1, 1), (-1, 1)]
    elif shape == 'diamond':
        pts = [(0, -1), (1, 0), (0, 1), (-1, 0)]
    elif shape == 'cross':
        a = 0.34
        pts = [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1),
               (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)]
    elif shape == 'star':
        t = -np.pi / 2 + np.pi * np.arange(10) / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
        # Stretch the star to fill the unit box vertically.
        pts[:, 1] = (pts[:, 1] - pts[:, 1].min()) / np.ptp(pts[:, 1]) * 2 - 1
        return pts
    else:
        raise ValueError(f'unknown shape {shape!r}')
    return np.asarray(pts, dtype=np.float64)


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(
        abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _apportion(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Split ``total`` into integer parts proportional to ``weights``.

    Every part gets at least ``minimum``; the rest is shared by the
    largest-remainder method (ties broken by index, so it is deterministic).
    """
    k = len(weights)
    rest = total - minimum * k
    if rest < 0:
        raise ValueError(f'{total} objects cannot give {k} classes at least '
                         f'{minimum} each')
    quota = rest * weights / weights.sum()
    counts = np.floor(quota).astype(np.int64)
    remainder = quota - counts
    order = np.lexsort((np.arange(k), -remainder))
    counts[order[:rest - counts.sum()]] += 1
    return counts + minimum


def _long_tail_weights(num_classes: int, ratio: float) -> np.ndarray:
    """Exponentially decaying weights, head / tail = ``ratio``."""
    if num_classes == 1:
        return np.ones(1)
    return ratio**(-np.arange(num_classes) / (num_classes - 1))


# ---------------------------------------------------------------------------
# Layout: which objects go into which image (labels only)


def _layout_split(rng: np.random.Generator, num_images: int, num_classes: int,
                  objects_per_image: Tuple[int, int], ratio: float,
                  minimum: int) -> List[List[int]]:
    """Labels (0-based) of the objects of every image of one split."""
    lo, hi = objects_per_image
    sizes = rng.integers(lo, hi + 1, size=num_images)
    total = int(sizes.sum())
    counts = _apportion(total, _long_tail_weights(num_classes, ratio), minimum)
    pool = np.repeat(np.arange(num_classes), counts)
    rng.shuffle(pool)
    labels = []
    start = 0
    for size in sizes:
        labels.append([int(x) for x in pool[start:start + size]])
        start += size
    return labels


def _frequency(image_count: int, rare_max: int, common_max: int) -> str:
    if image_count <= rare_max:
        return 'r'
    if image_count <= common_max:
        return 'c'
    return 'f'


def _pick_hard(rng: np.random.Generator, labels: List[List[int]],
               hard_classes: Sequence[int],
               fraction: float) -> List[List[bool]]:
    """Mark about ``fraction`` of each hard class's objects as hard."""
    flags = [[False] * len(objs) for objs in labels]
    if fraction <= 0:
        return flags
    where: Dict[int, List[Tuple[int, int]]] = {c: [] for c in hard_classes}
    for i, objs in enumerate(labels):
        for j, c in enumerate(objs):
            if c in where:
                where[c].append((i, j))
    for c in hard_classes:
        slots = where[c]
        if len(slots) < 2:
            continue
        # At least one, and always a minority of the class.
        n = min(
            max(1, int(round(fraction * len(slots)))), (len(slots) - 1) // 2)
        for k in rng.choice(len(slots), size=n, replace=False):
            i, j = slots[k]
            flags[i][j] = True
    return flags


def _layout(params: Dict[str, Any]) -> Dict[str, Any]:
    """Labels, hard-variant flags and frequencies of both splits.

    Args:
        params (dict): Complete parameters (see :func:`_normalise_params`).

    Returns:
        dict: ``labels`` and ``hard_flags`` (per split, per image, per
        object), training ``image_count`` / ``instance_count`` (arrays per
        class), ``frequency`` (letters), ``rare_max`` / ``common_max``
        (thresholds in images) and ``hard_classes`` (0-based).
    """
    num_classes = params['num_classes']
    num_train = params['num_train']
    objects_per_image = tuple(params['objects_per_image'])
    rng = np.random.default_rng([params['seed'], 0])
    labels = {
        'train':
        _layout_split(rng, num_train, num_classes, objects_per_image,
                      params['imbalance_ratio'], 1),
        'val':
        _layout_split(rng, params['num_val'], num_classes, objects_per_image,
                      params['val_imbalance_ratio'], 2),
    }
    image_count = np.zeros(num_classes, dtype=np.int64)
    instance_count = np.zeros(num_classes, dtype=np.int64)
    for objs in labels['train']:
        np.add.at(instance_count, objs, 1)
        image_count[sorted(set(objs))] += 1
    rare, common = params['frequency_thresholds']
    rare_max = int(math.floor(rare * num_train))
    common_max = int(math.floor(common * num_train))
    freq = [_frequency(int(n), rare_max, common_max) for n in image_count]
    hard_classes = [c for c in range(num_classes) if freq[c] == 'f']
    fractions = dict(
        train=params['hard_variant_fraction'],
        val=params['val_hard_variant_fraction'])
    if fractions['val'] is None:
        fractions['val'] = fractions['train']
    hard_flags = {
        split: _pick_hard(rng, labels[split], hard_classes, fractions[split])
        for split in ('train', 'val')
    }
    return dict(
        labels=labels,
        hard_flags=hard_flags,
        image_count=image_count,
        instance_count=instance_count,
        frequency=freq,
        rare_max=rare_max,
        common_max=common_max,
        hard_classes=hard_classes)


# ---------------------------------------------------------------------------
# Rendering


def _background(rng: np.random.Generator, width: int,
                height: int) -> np.ndarray:
    """A grey-ish, tinted, low-frequency textured background (float RGB)."""
    base = rng.uniform(80, 170) + rng.uniform(-15, 15, size=3)
    cells = rng.uniform(-1, 1, size=(height // 16 + 2, width // 16 + 2))
    low = Image.fromarray(((cells + 1) * 127.5).astype(np.uint8))
    low = np.asarray(
        low.resize(
            (width, height), Image.BILINEAR), dtype=np.float64) / 127.5 - 1
    img = base[None, None, :] + 28 * low[:, :, None]
    return img


def _place(rng: np.random.Generator,
           width: int,
           height: int,
           poly: np.ndarray,
           boxes: List[Tuple[float, float, float, float]],
           tries: int = 30) -> np.ndarray:
    """Translate a centred polygon into the image, avoiding other boxes.

    After ``tries`` failed attempts the last position is kept, so overlaps
    are rare but possible (as in real data).
    """
    lo, hi = poly.min(0), poly.max(0)
    pad = 2.0
    for _ in range(tries):
        cx = rng.uniform(pad - lo[0], width - pad - hi[0])
        cy = rng.uniform(pad - lo[1], height - pad - hi[1])
        x1, y1 = cx + lo[0], cy + lo[1]
        x2, y2 = cx + hi[0], cy + hi[1]
        if all(x1 >= bx2 + pad or x2 + pad <= bx1 or y1 >= by2 + pad or y2 +
               pad <= by1 for bx1, by1, bx2, by2 in boxes):
            break
    return poly + np.array([cx, cy])


def _render_image(
    rng: np.random.Generator, width: int, height: int, labels: List[int],
    hard: List[bool],
    object_size: Tuple[float,
                       float]) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """Draw one image; return its pixels and its objects' geometry."""
    img = _background(rng, width, height)
    bg_mean = img.mean(axis=(0, 1))
    smin, smax = object_size
    boxes: List[Tuple[float, float, float, float]] = []
    objects = []
    for label, is_hard in zip(labels, hard):
        shape, _, rgb = _class_spec(label)
        poly = _unit_polygon(shape)
        if is_hard:
            size = rng.uniform(smin, smin + 0.3 * (smax - smin))
            poly = poly * (size / 2)
            # At most 20 degrees: a diamond must not turn into a square.
            angle = np.deg2rad(rng.uniform(10, 20) * rng.choice([-1, 1]))
            rot = np.array([[np.cos(angle), -np.sin(angle)],
                            [np.sin(angle), np.cos(angle)]])
            poly = poly @ rot.T
            mix = rng.uniform(0.5, 0.6)
            colour = (1 - mix) * np.asarray(rgb) + mix * bg_mean
        else:
            size = rng.uniform(smin, smax)
            aspect = rng.uniform(0.8, 1.25)
            poly = poly * (size / 2) * np.array([aspect**0.5, aspect**-0.5])
            colour = np.asarray(rgb) * rng.uniform(0.85, 1.0)
        # Keep the object inside the image whatever its rotated extent.
        extent = poly.max(0) - poly.min(0)
        shrink = min(1.0, (width - 6) / extent[0], (height - 6) / extent[1])
        poly = _place(rng, width, height, poly * shrink, boxes)
        # Round once: the same vertices are drawn, stored and boxed.
        poly = np.round(poly, 2)
        x1, y1 = poly.min(0)
        x2, y2 = poly.max(0)
        boxes.append((x1, y1, x2, y2))
        mask = Image.new('L', (width, height), 0)
        ImageDraw.Draw(mask).polygon([tuple(p) for p in poly], fill=255)
        m = np.asarray(mask) > 0
        img[m] = colour
        objects.append(
            dict(
                poly=poly,
                bbox=(float(x1), float(y1), float(x2 - x1), float(y2 - y1)),
                area=round(_polygon_area(poly), 2)))
    img = img + rng.normal(0, 7, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8), objects


# ---------------------------------------------------------------------------
# Writing


def _default_params() -> Dict[str, Any]:
    sig = inspect.signature(make_synthetic_lvis)
    return {
        name: p.default
        for name, p in sig.parameters.items() if name != 'root'
    }


def _normalise_params(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Full parameter dict in its JSON form (tuples become lists)."""
    params = _default_params()
    unknown = set(kwargs) - set(params)
    if unknown:
        raise TypeError(f'unknown parameters: {sorted(unknown)}')
    params.update(kwargs)
    return json.loads(json.dumps(params))


def _dump_json(obj: Any, path: str) -> None:
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


def _categories(names: Sequence[str], freq: Sequence[str],
                image_count: np.ndarray,
                instance_count: np.ndarray) -> List[Dict[str, Any]]:
    """LVIS v1 category records, ids 1..C in class order."""
    categories = []
    for c, name in enumerate(names):
        shape, colour, _ = _class_spec(c)
        record = dict(
            id=c + 1, name=name, synset=f'{name}.n.01', synonyms=[name])
        record['def'] = f'a {colour} {shape} (synthetic)'
        record.update(
            frequency=freq[c],
            image_count=int(image_count[c]),
            instance_count=int(instance_count[c]))
        categories.append(record)
    return categories


def _write_split(root: str, split: str, labels: List[List[int]],
                 hard_flags: List[List[bool]], first_id: int,
                 categories: List[Dict[str, Any]], seed: int,
                 image_size: Tuple[int, int], object_size: Tuple[float, float],
                 jpeg_quality: int) -> Tuple[int, List[int]]:
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
        pixels, geoms = _render_image(rng, width, height, objs, flags,
                                      object_size)
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
    _dump_json(data, osp.join(root, 'annotations', f'lvis_v1_{split}.json'))
    return len(annotations), hard_ids


def _check_args(seed: int, num_train: int, num_val: int, num_classes: int,
                image_size: Sequence[int], objects_per_image: Sequence[int],
                object_size: Sequence[float], imbalance_ratio: float,
                val_imbalance_ratio: float,
                frequency_thresholds: Sequence[float],
                hard_variant_fraction: float,
                val_hard_variant_fraction: Optional[float],
                jpeg_quality: int) -> None:
    _check_num_classes(num_classes)
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f'seed must be a non-negative int, got {seed!r}')
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive int, got {value!r}')
    if len(image_size) != 2 or min(image_size) < 32:
        raise ValueError('image_size must be (width, height), each >= 32, '
                         f'got {image_size!r}')
    lo, hi = objects_per_image
    if not 1 <= lo <= hi:
        raise ValueError('objects_per_image must be (min, max) with '
                         f'1 <= min <= max, got {objects_per_image!r}')
    smin, smax = object_size
    if not 4 <= smin <= smax or smax > min(image_size) - 6:
        raise ValueError('object_size must be (min, max) with 4 <= min <= '
                         'max <= min(image_size) - 6, got '
                         f'{object_size!r}')
    if imbalance_ratio < 1 or val_imbalance_ratio < 1:
        raise ValueError('imbalance ratios must be >= 1, got '
                         f'{imbalance_ratio!r}, {val_imbalance_ratio!r}')
    r, c = frequency_thresholds
    if not 0 <= r <= c <= 1:
        raise ValueError('frequency_thresholds must be fractions '
                         '0 <= rare <= common <= 1, got '
                         f'{frequency_thresholds!r}')
    for name, value in (('hard_variant_fraction', hard_variant_fraction),
                        ('val_hard_variant_fraction',
                         val_hard_variant_fraction)):
        if value is not None and not 0 <= value < 0.5:
            raise ValueError(f'{name} must be in [0, 0.5), got {value!r}')
    if not 1 <= jpeg_quality <= 100:
        raise ValueError('jpeg_quality must be in [1, 100], got '
                         f'{jpeg_quality!r}')


def make_synthetic_lvis(root: str,
                        num_train: int = 400,
                        num_val: int = 80,
                        num_classes: int = 20,
                        image_size: Tuple[int, int] = (160, 128),
                        seed: int = 0,
                        objects_per_image: Tuple[int, int] = (1, 4),
                        object_size: Tuple[float, float] = (16, 40),
                        imbalance_ratio: float = 100.0,
                        val_imbalance_ratio: float = 1.0,
                        frequency_thresholds: Tuple[float,
                                                    float] = (0.025, 0.1),
                        hard_variant_fraction: float = 0.08,
                        val_hard_variant_fraction: Optional[float] = None,
                        jpeg_quality: int = 90) -> Dict[str, Any]:
    """Write the synthetic long-tailed LVIS v1 data set under ``root``.

    Existing ``annotations/``, ``train2017/``, ``val2017/`` and the marker
    under ``root`` are replaced; nothing else there is touched. Use
    :func:`ensure_synthetic_lvis` to reuse a finished data set and to make
    one atomically.

    Args:
        root (str): Output directory (the ``data_root`` of the configs).
        num_train (int): Training images. Defaults to 400.
        num_val (int): Validation images. Defaults to 80.
        num_classes (int): Classes, at most 36. Defaults to 20.
        image_size (tuple[int, int]): ``(width, height)``.
            Defaults to (160, 128).
        seed (int): Seed of everything random. Defaults to 0.
        objects_per_image (tuple[int, int]): Inclusive range of the number
            of objects per image. Defaults to (1, 4).
        object_size (tuple[float, float]): Range of the object's nominal
            size in pixels (side of its box before a 0.8-1.25 aspect
            jitter; hard variants use the lowest 30 % of the range).
            Defaults to (16, 40).
        imbalance_ratio (float): Training instances of the head class over
            those of the tail class; counts decay exponentially with the
            class index (class 0 is the head). Defaults to 100.
        val_imbalance_ratio (float): The same for the validation split;
            1 gives a balanced split. Every class has at least 2 validation
            instances. Defaults to 1.
        frequency_thresholds (tuple[float, float]): ``(rare, common)``
            fractions of ``num_train``: a class is rare if it is in at most
            ``rare * num_train`` training images, common if in at most
            ``common * num_train``, else frequent (LVIS: 10 and 100 images).
            Defaults to (0.025, 0.1).
        hard_variant_fraction (float): Fraction of each frequent class's
            instances drawn as the hard variant (at least one, always a
            minority). 0 disables hard variants. Defaults to 0.08.
        val_hard_variant_fraction (float, optional): The same for the
            validation split, e.g. higher to measure hard-variant accuracy.
            Defaults to None (``hard_variant_fraction``).
        jpeg_quality (int): JPEG quality. Defaults to 90.

    Returns:
        dict: Summary (JSON-serialisable): ``root``, ``version``, ``params``,
        ``classes``, ``ann_files``, ``num_images``, ``num_instances``
        (per split), ``image_count`` / ``instance_count`` (training, per
        class in id order), ``frequency`` (letter per class),
        ``frequency_groups`` (names per letter), ``frequency_image_limits``
        (the thresholds in images), ``hard_variant_classes`` and
        ``hard_variant_ann_ids`` (per split).
    """
    _check_args(seed, num_train, num_val, num_classes, image_size,
                objects_per_image, object_size, imbalance_ratio,
                val_imbalance_ratio, frequency_thresholds,
                hard_variant_fraction, val_hard_variant_fraction, jpeg_quality)
    params = _normalise_params(
        dict(
            num_train=num_train,
            num_val=num_val,
            num_classes=num_classes,
            image_size=image_size,
            seed=seed,
            objects_per_image=objects_per_image,
            object_size=object_size,
            imbalance_ratio=imbalance_ratio,
            val_imbalance_ratio=val_imbalance_ratio,
            frequency_thresholds=frequency_thresholds,
            hard_variant_fraction=hard_variant_fraction,
            val_hard_variant_fraction=val_hard_variant_fraction,
            jpeg_quality=jpeg_quality))
    width, height = (int(v) for v in image_size)
    names = synthetic_lvis_classes(num_classes)
    object_size = tuple(float(v) for v in object_size)

    # Layout first (labels only), so frequencies are known before drawing.
    layout = _layout(params)
    labels, hard_flags = layout['labels'], layout['hard_flags']
    freq = layout['frequency']
    image_count = layout['image_count']
    instance_count = layout['instance_count']
    rare_max, common_max = layout['rare_max'], layout['common_max']
    hard_classes = layout['hard_classes']

    categories = _categories(names, freq, image_count, instance_count)
    for sub in ('annotations', 'train2017', 'val2017'):
        path = osp.join(root, sub)
        if osp.isdir(path):
            shutil.rmtree(path)
        os.makedirs(path)
    marker = osp.join(root, MARKER_FILE)
    if osp.exists(marker):
        os.remove(marker)

    first_id = {'train': 1, 'val': num_train + 1}
    ann_files = {}
    num_instances = {}
    hard_ann_ids = {}
    for split in ('train', 'val'):
        ann_files[split] = f'annotations/lvis_v1_{split}.json'
        num_instances[split], hard_ann_ids[split] = _write_split(
            root, split, labels[split], hard_flags[split], first_id[split],
            categories, seed, (width, height), object_size, jpeg_quality)

    groups = {
        g: [names[c] for c in range(num_classes) if freq[c] == g]
        for g in ('r', 'c', 'f')
    }
    summary = dict(
        version=SYNTHETIC_LVIS_VERSION,
        params=params,
        classes=list(names),
        ann_files=ann_files,
        num_images=dict(train=num_train, val=num_val),
        num_instances=num_instances,
        image_count=[int(v) for v in image_count],
        instance_count=[int(v) for v in instance_count],
        frequency=freq,
        frequency_groups=groups,
        frequency_image_limits=dict(r=rare_max, c=common_max),
        hard_variant_classes=[names[c] for c in hard_classes],
        hard_variant_ann_ids=hard_ann_ids)
    _dump_json(
        dict(version=SYNTHETIC_LVIS_VERSION, params=params, summary=summary),
        marker)
    return dict(root=osp.abspath(root), **summary)


def _read_marker(root: str) -> Optional[Dict[str, Any]]:
    try:
        with open(osp.join(root, MARKER_FILE), encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_complete(root: str, params: Dict[str, Any]) -> bool:
    marker = _read_marker(root)
    if (marker is None or marker.get('version') != SYNTHETIC_LVIS_VERSION
            or marker.get('params') != params):
        return False
    summary = marker.get('summary', {})
    files = list(summary.get('ann_files', {}).values())
    return bool(files) and all(osp.isfile(osp.join(root, f)) for f in files)


def _summary_from_marker(root: str) -> Dict[str, Any]:
    marker = _read_marker(root)
    assert marker is not None
    return dict(root=osp.abspath(root), **marker['summary'])


def ensure_synthetic_lvis(root: str,
                          force: bool = False,
                          **kwargs: Any) -> Dict[str, Any]:
    """Make the synthetic data set under ``root`` unless it is already there.

    The data set counts as there when ``root/mmdiff_synthetic.json`` records
    the current version and the same (complete) parameters. Otherwise it is
    made in a temporary sibling directory and moved into place with
    ``os.rename``, so an interrupted run never leaves a partial data set and
    concurrent callers (e.g. several ranks) end with one complete copy.

    Args:
        root (str): Output directory.
        force (bool): Remake the data set even if it is up to date.
            Defaults to False.
        **kwargs: Parameters of :func:`make_synthetic_lvis`.

    Returns:
        dict: The summary, as returned by :func:`make_synthetic_lvis`.

    Raises:
        FileExistsError: If ``root`` exists, is not empty and was not made
            by this function (it is never deleted then).
    """
    params = _normalise_params(kwargs)
    if not force and _is_complete(root, params):
        return _summary_from_marker(root)
    root = osp.abspath(root)
    if (osp.isdir(root) and os.listdir(root) and _read_marker(root) is None):
        raise FileExistsError(
            f'{root} exists and holds no {MARKER_FILE}; refusing to replace '
            'it with the synthetic data set')
    parent = osp.dirname(root)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(root)}.tmp-', dir=parent)
    os.chmod(tmp, 0o755)  # mkdtemp's 0o700 would stay with the data set.
    try:
        make_synthetic_lvis(tmp, **kwargs)
        if not force and _is_complete(root, params):
            # Another process was faster.
            return _summary_from_marker(root)
        old = None
        if osp.lexists(root):
            old = tempfile.mkdtemp(
                prefix=f'.{osp.basename(root)}.old-', dir=parent)
            os.rename(root, osp.join(old, 'data'))
        try:
            os.rename(tmp, root)
        except OSError:
            # Lost a race: someone else moved a data set into place.
            if not _is_complete(root, params):
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return _summary_from_marker(root)


def _format_summary(summary: Dict[str, Any]) -> str:
    lines = []
    for key, value in summary.items():
        if key == 'hard_variant_ann_ids':
            value = {k: len(v) for k, v in value.items()}
            key = 'num_hard_variant_anns'
        lines.append(f'{key}: {json.dumps(value)}')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Command line: make (or reuse) the data set and print its summary."""
    parser = argparse.ArgumentParser(
        description='Make the synthetic long-tailed LVIS v1 data set.')
    parser.add_argument('--out', default='data/synthetic_lvis')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-val', type=int, default=80)
    parser.add_argument('--num-classes', type=int, default=20)
    parser.add_argument(
        '--image-size',
        type=int,
        nargs=2,
        default=[160, 128],
        metavar=('W', 'H'))
    parser.add_argument(
        '--force', action='store_true', help='remake even if up to date')
    args = parser.parse_args(argv)
    kwargs = dict(
        seed=args.seed,
        num_train=args.num_train,
        num_val=args.num_val,
        num_classes=args.num_classes,
        image_size=tuple(args.image_size))
    summary = ensure_synthetic_lvis(args.out, force=args.force, **kwargs)
    print(_format_summary(summary))
    return summary


if __name__ == '__main__':
    main()
