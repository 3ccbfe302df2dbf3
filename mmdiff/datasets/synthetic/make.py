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

Hard variants: in every frequent class A, a fraction
``hard_variant_fraction`` of the instances (train and val) is a confusable
look-alike: drawn in the colour of the class B with the same shape (so it
looks like B), small, rotated by 5-15 degrees, with a hole in the middle
(the only cue that it is A); ``hard_variant_colour_mix`` below 1 blends
A's colour back in, for hard variants that can be learned. It is a rare
sub-class of a frequent class, the case the paper's instance difficulty is
for. Such annotations carry the non-standard key
``"mmdiff_hard_variant": true`` (LVIS and mmdet loaders ignore unknown
keys); all others carry ``false``.

Everything is a pure function of the parameters: the same seed gives
byte-identical JSON and JPEG files (for a given Pillow / libjpeg build).
"""
import argparse
import inspect
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Any, Dict, Optional, Sequence, Tuple

from .check import check_params
from .layout import make_layout
from .render import Look
from .spec import (SYNTHETIC_LVIS_VERSION, synthetic_lvis_classes,
                   synthetic_lvis_metainfo)
from .write import category_records, dump_json, write_split

__all__ = [
    'make_synthetic_lvis', 'ensure_synthetic_lvis', 'synthetic_lvis_metainfo',
    'synthetic_lvis_classes', 'SYNTHETIC_LVIS_VERSION'
]

MARKER_FILE = 'mmdiff_synthetic.json'

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
                        hard_variant_fraction: float = 0.10,
                        val_hard_variant_fraction: Optional[float] = None,
                        hard_variant_colour_mix: float = 1.0,
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
            minority). 0 disables hard variants. Defaults to 0.1.
        val_hard_variant_fraction (float, optional): The same for the
            validation split, e.g. higher to measure hard-variant accuracy.
            Defaults to None (``hard_variant_fraction``).
        hard_variant_colour_mix (float): How much of the look-alike's
            colour a hard variant wears, in [0, 1]: 1 is the look-alike's
            colour (only the hole tells them apart), 0 the class's own
            colour, between them a blend (hard but learnable).
            Defaults to 1.
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
            hard_variant_colour_mix=hard_variant_colour_mix,
            jpeg_quality=jpeg_quality))
    check_params(params)
    summary = _write_files(root, params)
    dump_json(
        dict(version=SYNTHETIC_LVIS_VERSION, params=params, summary=summary),
        osp.join(root, MARKER_FILE))
    return dict(root=osp.abspath(root), **summary)


def _clear(root: str) -> None:
    """Remove what a previous make wrote under ``root``, nothing else."""
    for sub in ('annotations', 'train2017', 'val2017'):
        path = osp.join(root, sub)
        if osp.isdir(path):
            shutil.rmtree(path)
        os.makedirs(path)
    marker = osp.join(root, MARKER_FILE)
    if osp.exists(marker):
        os.remove(marker)


def _write_files(root: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """Lay out, draw and write both splits; return the summary."""
    names = synthetic_lvis_classes(params['num_classes'])
    # Layout first (labels only), so frequencies are known before drawing.
    layout = make_layout(params)
    freq = layout['frequency']
    categories = category_records(names, freq, layout['image_count'],
                                  layout['instance_count'])
    _clear(root)
    first_id = {'train': 1, 'val': params['num_train'] + 1}
    ann_files, num_instances, hard_ann_ids = {}, {}, {}
    for split in ('train', 'val'):
        ann_files[split] = f'annotations/lvis_v1_{split}.json'
        num_instances[split], hard_ann_ids[split] = write_split(
            root, split, layout['labels'][split], layout['hard_flags'][split],
            first_id[split], categories, params['seed'],
            tuple(params['image_size']),
            Look(
                tuple(params['object_size']),
                params['hard_variant_colour_mix']), params['jpeg_quality'])
    return dict(
        version=SYNTHETIC_LVIS_VERSION,
        params=params,
        classes=list(names),
        ann_files=ann_files,
        num_images=dict(train=params['num_train'], val=params['num_val']),
        num_instances=num_instances,
        image_count=[int(v) for v in layout['image_count']],
        instance_count=[int(v) for v in layout['instance_count']],
        frequency=freq,
        frequency_groups={
            g: [names[c] for c in range(len(names)) if freq[c] == g]
            for g in ('r', 'c', 'f')
        },
        frequency_image_limits=dict(
            r=layout['rare_max'], c=layout['common_max']),
        hard_variant_classes=[names[c] for c in layout['hard_classes']],
        hard_variant_ann_ids=hard_ann_ids)


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
