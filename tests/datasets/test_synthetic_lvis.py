"""Tests of the synthetic long-tailed LVIS v1 data set."""
import json
import os
import os.path as osp
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

from mmdiff.datasets import (ensure_synthetic_lvis, make_synthetic_lvis,
                             synthetic_lvis_metainfo)
from mmdiff.datasets.synthetic.layout import make_layout
from mmdiff.datasets.synthetic.make import MARKER_FILE, _normalise_params, main

# Small enough to make in well under a second.
TINY = dict(
    num_train=60,
    num_val=16,
    num_classes=8,
    image_size=(96, 80),
    frequency_thresholds=(0.05, 0.2))

IMAGE_KEYS = {
    'id', 'width', 'height', 'file_name', 'coco_url', 'flickr_url',
    'neg_category_ids', 'not_exhaustive_category_ids', 'license',
    'date_captured'
}
ANN_KEYS = {
    'id', 'image_id', 'category_id', 'bbox', 'area', 'segmentation',
    'mmdiff_hard_variant'
}
CAT_KEYS = {
    'id', 'name', 'synset', 'synonyms', 'def', 'frequency', 'image_count',
    'instance_count'
}


def _load(root: str, split: str) -> dict:
    with open(osp.join(root, 'annotations', f'lvis_v1_{split}.json')) as f:
        return json.load(f)


def _read_bytes(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny'))
    summary = make_synthetic_lvis(root, seed=0, **TINY)
    return root, summary


def test_layout_and_summary(tiny):
    root, summary = tiny
    assert sorted(os.listdir(root)) == [
        'annotations', MARKER_FILE, 'train2017', 'val2017'
    ]
    assert summary['num_images'] == dict(train=60, val=16)
    assert len(os.listdir(osp.join(root, 'train2017'))) == 60
    assert len(os.listdir(osp.join(root, 'val2017'))) == 16
    for split in ('train', 'val'):
        data = _load(root, split)
        assert len(data['annotations']) == summary['num_instances'][split]
    # The summary is JSON-serialisable (the CLI prints it).
    json.dumps(summary)


def test_lvis_v1_structure(tiny):
    root, _ = tiny
    train, val = _load(root, 'train'), _load(root, 'val')
    assert train['categories'] == val['categories']
    cat_ids = [c['id'] for c in train['categories']]
    assert cat_ids == list(range(1, 9))
    img_ids = set()
    for split, data in (('train', train), ('val', val)):
        assert {'info', 'licenses', 'images', 'annotations',
                'categories'} <= set(data)
        for cat in data['categories']:
            assert set(cat) == CAT_KEYS
            assert cat['frequency'] in ('r', 'c', 'f')
        present = defaultdict(set)
        ann_ids = [a['id'] for a in data['annotations']]
        assert len(set(ann_ids)) == len(ann_ids)
        for ann in data['annotations']:
            assert set(ann) == ANN_KEYS
            present[ann['image_id']].add(ann['category_id'])
        for img in data['images']:
            assert set(img) == IMAGE_KEYS
            assert img['id'] not in img_ids  # unique across splits
            img_ids.add(img['id'])
            assert img['coco_url'] == ('http://images.cocodataset.org/'
                                       f'{split}2017/{img["file_name"]}')
            neg = set(img['neg_category_ids'])
            assert neg <= set(cat_ids)
            assert not neg & present[img['id']]
            assert set(img['not_exhaustive_category_ids']) <= set(cat_ids)
            assert present[img['id']], 'every image has objects'


def test_images_exist_with_size(tiny):
    root, _ = tiny
    for split in ('train', 'val'):
        for img in _load(root, split)['images'][:5]:
            # mmdet 3.3.0 LVISV1Dataset: path = data_root + coco_url suffix.
            rel = img['coco_url'].replace('http://images.cocodataset.org/', '')
            with Image.open(osp.join(root, rel)) as im:
                assert im.format == 'JPEG'
                assert im.mode == 'RGB'
                assert im.size == (img['width'], img['height']) == (96, 80)


def test_metainfo_matches_categories(tiny):
    root, _ = tiny
    meta = synthetic_lvis_metainfo(8)
    names = tuple(c['name'] for c in _load(root, 'train')['categories'])
    assert meta['classes'] == names
    assert len(set(names)) == len(names)
    assert len(meta['palette']) == 8
    # Names depend on num_classes only, and extend with it.
    assert synthetic_lvis_metainfo(20)['classes'][:8] == names
    assert len(set(synthetic_lvis_metainfo(36)['classes'])) == 36
    with pytest.raises(ValueError, match='num_classes'):
        synthetic_lvis_metainfo(37)


def test_counts_and_frequency_consistent(tiny):
    root, summary = tiny
    data = _load(root, 'train')
    instances = Counter(a['category_id'] for a in data['annotations'])
    pairs = {(a['image_id'], a['category_id']) for a in data['annotations']}
    images = Counter(cat_id for _, cat_id in pairs)
    limits = summary['frequency_image_limits']
    assert limits == dict(r=3, c=12)  # 5 % and 20 % of 60 images
    for cat in data['categories']:
        assert cat['instance_count'] == instances[cat['id']] > 0
        assert cat['image_count'] == images[cat['id']] > 0
        n = cat['image_count']
        expected = 'r' if n <= 3 else 'c' if n <= 12 else 'f'
        assert cat['frequency'] == expected
    assert {c['frequency'] for c in data['categories']} == {'r', 'c', 'f'}


def test_long_tail_and_balanced_val(tiny):
    root, summary = tiny
    counts = summary['instance_count']
    assert counts == sorted(counts, reverse=True)
    assert counts[0] >= 5 * counts[-1]
    val = Counter(a['category_id'] for a in _load(root, 'val')['annotations'])
    assert set(val) == set(range(1, 9)), 'val covers every class'
    assert max(val.values()) <= 2 * min(val.values())


def test_default_layout_has_all_frequency_groups():
    # The layout alone (no drawing) of the default data set.
    layout = make_layout(_normalise_params({}))
    groups = Counter(layout['frequency'])
    assert (layout['rare_max'], layout['common_max']) == (10, 40)
    assert min(groups['r'], groups['c'], groups['f']) >= 5, groups
    counts = layout['instance_count']
    assert counts[0] >= 20 * counts[-1]


def test_hard_variants(tiny):
    root, summary = tiny
    freq = {
        c['id']: c['frequency']
        for c in _load(root, 'train')['categories']
    }
    names = summary['classes']
    assert summary['hard_variant_classes'] == [
        names[i - 1] for i in sorted(freq) if freq[i] == 'f'
    ]
    for split in ('train', 'val'):
        anns = _load(root, split)['annotations']
        hard = [a for a in anns if a['mmdiff_hard_variant']]
        assert hard, f'no hard variants in {split}'
        assert [a['id'] for a in hard] == \
            summary['hard_variant_ann_ids'][split]
        assert all(freq[a['category_id']] == 'f' for a in hard)
        total = Counter(a['category_id'] for a in anns)
        n_hard = Counter(a['category_id'] for a in hard)
        for cat_id, n in n_hard.items():
            assert n < total[cat_id] / 2, 'hard variants are a minority'
            if split == 'train' and total[cat_id] >= 25:
                assert n <= 0.15 * total[cat_id]
        # Hard variants are drawn small.
        hard_size = np.mean([max(a['bbox'][2:]) for a in hard])
        other_size = np.mean(
            [max(a['bbox'][2:]) for a in anns if not a['mmdiff_hard_variant']])
        assert hard_size < other_size


def test_hard_variants_are_hollow_lookalikes(tiny):
    """A hard variant of class A wears the colour of A's look-alike B (same
    shape) and has a hole: its centre shows the background."""
    from PIL import Image

    from mmdiff.datasets.synthetic.spec import class_spec, lookalike_class
    root, summary = tiny
    data = _load(root, 'train')
    files = {img['id']: img['file_name'] for img in data['images']}
    num_classes = len(summary['classes'])
    boxes: dict = {}
    for ann in data['annotations']:
        boxes.setdefault(ann['image_id'], []).append(ann['bbox'])

    def alone(ann: dict) -> bool:
        x, y, w, h = ann['bbox']
        return all(bx >= x + w or bx + bw <= x or by >= y + h or by + bh <= y
                   for bx, by, bw, bh in boxes[ann['image_id']]
                   if [bx, by, bw, bh] != ann['bbox'])

    checked = 0
    for ann in data['annotations']:
        x, y, w, h = ann['bbox']
        if min(w, h) < 12 or not alone(ann):
            continue
        pixels = np.asarray(
            Image.open(osp.join(root, 'train2017', files[ann['image_id']])),
            dtype=np.float64)
        label = ann['category_id'] - 1
        hard = ann['mmdiff_hard_variant']
        rgb = class_spec(
            lookalike_class(label, num_classes) if hard else label)[2]
        ys, xs = np.mgrid[int(y):int(y + h), int(x):int(x + w)]
        patch = pixels[ys, xs].reshape(-1, 3)
        # Some of the object's pixels have the expected colour ...
        close = np.abs(patch - np.asarray(rgb)).max(1) < 60
        assert close.mean() > 0.15, ann['id']
        # ... and the centre is the hole exactly for hard variants.
        centre = pixels[int(y + h / 2), int(x + w / 2)]
        assert (np.abs(centre - np.asarray(rgb)).max() > 60) == hard
        checked += hard
    assert checked >= 2


def test_hard_variant_colour_mix_blends_the_two_colours():
    """The mix changes a hard variant's colour only: same geometry, same
    noise, and mix 0.5 is the midpoint of mix 0 (own colour) and mix 1
    (the look-alike's), pixel for pixel up to rounding."""
    from mmdiff.datasets.synthetic.render import Look, render_image
    from mmdiff.datasets.synthetic.spec import class_spec, lookalike_class

    def draw(mix: float, hard: bool):
        rng = np.random.default_rng(7)
        return render_image(rng, 96, 80, [2, 5], [hard, False],
                            Look((30, 40), mix), 20)

    (zero, geo0), (half, geo5), (one, geo1) = (
        draw(m, True) for m in (0.0, 0.5, 1.0))
    assert [g['bbox'] for g in geo0] == [g['bbox'] for g in geo1]
    assert [g['bbox'] for g in geo0] == [g['bbox'] for g in geo5]
    changed = np.abs(one.astype(int) - zero).max(2) > 0
    x, y, w, h = geo0[0]['bbox']
    inside = np.zeros_like(changed)
    inside[int(y):int(y + h) + 1, int(x):int(x + w) + 1] = True
    # Only the hard variant's pixels change (its ring: the hole and the
    # background around a triangle keep theirs).
    assert changed.any() and not (changed & ~inside).any()
    assert changed[inside].mean() > 0.1
    midpoint = (zero.astype(float) + one) / 2
    assert np.abs(half - midpoint)[changed].max() <= 1.0
    # Mix 0 is the class's own colour, mix 1 the look-alike's.
    own, other = (
        np.asarray(class_spec(c)[2], dtype=float)
        for c in (2, lookalike_class(2, 20)))
    for img, rgb in ((zero, own), (one, other)):
        mean = img[changed].mean(0)
        assert np.abs(mean / mean.max() - rgb / rgb.max()).max() < 0.1
    # A normal object ignores the mix.
    assert np.array_equal(draw(0.0, False)[0], draw(1.0, False)[0])


def test_colour_mix_changes_exactly_the_images_with_hard_variants(tmp_path):
    """Through make_synthetic_lvis: same annotations at mix 0 and 1, and
    an image file differs exactly when it holds a hard variant."""
    roots = [str(tmp_path / f'mix{m}') for m in (0, 1)]
    for root, mix in zip(roots, (0.0, 1.0)):
        make_synthetic_lvis(root, seed=0, hard_variant_colour_mix=mix, **TINY)
    for split in ('train', 'val'):
        zero, one = (_load(root, split) for root in roots)
        assert zero['annotations'] == one['annotations']
        hard = {
            a['image_id']
            for a in zero['annotations'] if a['mmdiff_hard_variant']
        }
        assert hard
        for img in zero['images']:
            files = [
                osp.join(root, f'{split}2017', img['file_name'])
                for root in roots
            ]
            same = open(files[0], 'rb').read() == open(files[1], 'rb').read()
            assert same == (img['id'] not in hard), img['id']


def test_val_hard_variant_fraction():
    base = _normalise_params({})
    same = make_layout(base)
    more = make_layout(dict(base, val_hard_variant_fraction=0.3))
    none = make_layout(dict(base, hard_variant_fraction=0.0))

    def count(layout, split):
        return sum(map(sum, layout['hard_flags'][split]))

    assert count(more, 'train') == count(same, 'train')
    assert count(more, 'val') > 2 * count(same, 'val')
    assert count(none, 'train') == count(none, 'val') == 0


def test_boxes_and_masks(tiny):
    root, _ = tiny
    for split in ('train', 'val'):
        data = _load(root, split)
        sizes = {
            img['id']: (img['width'], img['height'])
            for img in data['images']
        }
        for ann in data['annotations']:
            w_img, h_img = sizes[ann['image_id']]
            x, y, w, h = ann['bbox']
            assert w >= 1 and h >= 1
            assert 0 <= x and x + w <= w_img and 0 <= y and y + h <= h_img
            assert len(ann['segmentation']) == 1
            poly = np.asarray(ann['segmentation'][0]).reshape(-1, 2)
            assert len(poly) >= 3
            eps = 1e-6
            # The box is tight around the mask polygon.
            assert poly[:, 0].min() == pytest.approx(x, abs=0.011)
            assert poly[:, 1].min() == pytest.approx(y, abs=0.011)
            assert poly[:, 0].max() == pytest.approx(x + w, abs=0.011)
            assert poly[:, 1].max() == pytest.approx(y + h, abs=0.011)
            assert (poly[:, 0] >= x - eps).all()
            assert (poly[:, 0] <= x + w + 0.011).all()
            assert (poly[:, 1] >= y - eps).all()
            assert (poly[:, 1] <= y + h + 0.011).all()
            assert 0 < ann['area'] <= w * h + 0.1


def test_circle_polygon_has_16_vertices(tiny):
    root, summary = tiny
    circle = summary['classes'].index('green_circle') + 1
    anns = [
        a for a in _load(root, 'train')['annotations']
        if a['category_id'] == circle
    ]
    assert anns
    assert all(len(a['segmentation'][0]) == 32 for a in anns)


def test_deterministic(tiny, tmp_path):
    root, summary = tiny
    again = str(tmp_path / 'again')
    assert make_synthetic_lvis(again, seed=0, **TINY)['classes'] == \
        summary['classes']
    for rel in ('annotations/lvis_v1_train.json',
                'annotations/lvis_v1_val.json', 'train2017/000000000001.jpg',
                'train2017/000000000037.jpg', 'val2017/000000000061.jpg',
                MARKER_FILE):
        assert _read_bytes(osp.join(root, rel)) == \
            _read_bytes(osp.join(again, rel)), rel
    other = str(tmp_path / 'other')
    make_synthetic_lvis(other, seed=1, **TINY)
    for rel in ('annotations/lvis_v1_train.json',
                'train2017/000000000001.jpg'):
        assert _read_bytes(osp.join(root, rel)) != \
            _read_bytes(osp.join(other, rel)), rel


def test_lvis_api_and_eval(tiny, monkeypatch):
    lvis = pytest.importorskip('lvis')
    root, _ = tiny
    # lvis 0.5.3 uses np.float, removed in numpy 1.24.
    if not hasattr(np, 'float'):
        monkeypatch.setattr(np, 'float', float, raising=False)
    ann_file = osp.join(root, 'annotations', 'lvis_v1_val.json')
    gt = lvis.LVIS(ann_file)
    assert len(gt.get_img_ids()) == 16
    assert len(gt.get_cat_ids()) == 8
    # Perfect detections give AP 1 on every frequency group.
    dets = [
        dict(
            image_id=a['image_id'],
            category_id=a['category_id'],
            bbox=a['bbox'],
            score=1.0) for a in gt.load_anns()
    ]
    ev = lvis.LVISEval(gt, dets, 'bbox')
    ev.run()
    for key in ('AP', 'APr', 'APc', 'APf'):
        assert ev.results[key] == pytest.approx(1.0), key
    # Polygon masks are valid for segm evaluation.
    mask = gt.ann_to_mask(gt.load_anns()[0])
    assert mask.shape == (80, 96) and mask.sum() > 0


def test_ensure_idempotent_and_remakes(tmp_path):
    root = str(tmp_path / 'data' / 'synthetic_lvis')
    kwargs = dict(TINY, num_train=30, num_val=8)
    first = ensure_synthetic_lvis(root, **kwargs)
    marker = osp.join(root, MARKER_FILE)
    train_json = osp.join(root, 'annotations', 'lvis_v1_train.json')
    stamp = (os.stat(marker).st_mtime_ns, os.stat(train_json).st_mtime_ns)
    again = ensure_synthetic_lvis(root, **kwargs)
    assert again == first
    assert (os.stat(marker).st_mtime_ns,
            os.stat(train_json).st_mtime_ns) == stamp
    # Tuples and lists of the same values are the same parameters.
    ensure_synthetic_lvis(root, **dict(kwargs, image_size=[96, 80]))
    assert os.stat(marker).st_mtime_ns == stamp[0]
    # Changed parameters: re-made, old images gone.
    changed = ensure_synthetic_lvis(root, **dict(kwargs, num_train=20))
    assert changed['num_images'] == dict(train=20, val=8)
    assert len(os.listdir(osp.join(root, 'train2017'))) == 20
    assert len(_load(root, 'train')['images']) == 20
    # A forced run re-makes identical files.
    before = _read_bytes(train_json)
    ensure_synthetic_lvis(root, force=True, **dict(kwargs, num_train=20))
    assert _read_bytes(train_json) == before
    # No temporary directories are left next to the data set.
    assert os.listdir(osp.dirname(root)) == ['synthetic_lvis']
    assert oct(os.stat(root).st_mode & 0o777) == oct(0o755)


def test_ensure_refuses_foreign_directory(tmp_path):
    root = tmp_path / 'mine'
    root.mkdir()
    (root / 'precious.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='mmdiff_synthetic.json'):
        ensure_synthetic_lvis(str(root), **TINY)
    assert (root / 'precious.txt').read_text() == 'keep me'


def test_invalid_arguments(tmp_path):
    with pytest.raises(TypeError, match='unknown'):
        ensure_synthetic_lvis(str(tmp_path / 'x'), num_imgs=3)
    bad = [
        dict(num_train=0),
        dict(seed=-1),
        dict(num_classes=0),
        dict(image_size=(16, 16)),
        dict(objects_per_image=(2, 1)),
        dict(object_size=(16, 200)),
        dict(imbalance_ratio=0.5),
        dict(frequency_thresholds=(0.2, 0.1)),
        dict(hard_variant_fraction=0.5),
        dict(val_hard_variant_fraction=-0.1),
        dict(hard_variant_colour_mix=1.5),
        dict(hard_variant_colour_mix=-0.1),
        dict(hard_variant_colour_mix=None),
        dict(hard_variant_colour_mix='0.5'),
        dict(hard_variant_colour_mix=True),
        dict(num_train=2, num_classes=8, objects_per_image=(1, 1)),
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            make_synthetic_lvis(str(tmp_path / 'bad'), **kwargs)


def test_cli(tmp_path, capsys):
    out = str(tmp_path / 'cli')
    summary = main([
        '--out', out, '--seed', '3', '--num-train', '20', '--num-val', '6',
        '--num-classes', '6', '--image-size', '96', '80'
    ])
    printed = capsys.readouterr().out
    assert 'frequency_groups' in printed and 'num_hard_variant_anns' in printed
    assert summary['params']['seed'] == 3
    assert summary['num_images'] == dict(train=20, val=6)
    assert osp.isfile(osp.join(out, 'annotations', 'lvis_v1_val.json'))


def test_mmdet_lvis_v1_dataset_loads(tiny):
    pytest.importorskip('lvis')
    datasets = pytest.importorskip('mmdet.datasets')
    root, summary = tiny
    dataset = datasets.LVISV1Dataset(
        ann_file='annotations/lvis_v1_train.json',
        data_root=root,
        data_prefix=dict(img=''),
        metainfo=synthetic_lvis_metainfo(8),
        pipeline=[])
    assert len(dataset) == 60
    # data_list is serialised away: read through get_data_info.
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert sum(len(d['instances'])
               for d in infos) == summary['num_instances']['train']
    assert infos[0]['img_path'] == osp.join(root, 'train2017',
                                            '000000000001.jpg')
    assert all(osp.isfile(d['img_path']) for d in infos)
    labels = {i['bbox_label'] for d in infos for i in d['instances']}
    assert labels == set(range(8))
    assert all(i['ignore_flag'] == 0 for d in infos for i in d['instances'])

    # The standard loading transforms read the images and polygon masks.
    pytest.importorskip('mmdet.datasets.transforms')
    from mmengine.registry import DefaultScope

    # 'mmdet.X' resolves from the root scope only: a Runner built by an
    # earlier test leaves 'mmdet' as the default scope.
    with DefaultScope.overwrite_default_scope('mmengine'):
        dataset = datasets.LVISV1Dataset(
            ann_file='annotations/lvis_v1_val.json',
            data_root=root,
            data_prefix=dict(img=''),
            metainfo=synthetic_lvis_metainfo(8),
            pipeline=[
                dict(type='mmdet.LoadImageFromFile'),
                dict(
                    type='mmdet.LoadAnnotations',
                    with_bbox=True,
                    with_mask=True),
                dict(type='mmdet.PackDetInputs')
            ])
    sample = dataset[0]
    gt = sample['data_samples'].gt_instances
    assert tuple(sample['inputs'].shape) == (3, 80, 96)
    assert len(gt) == len(dataset.get_data_info(0)['instances']) > 0
    assert (gt.masks.areas > 0).all()
