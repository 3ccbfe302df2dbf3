"""Tests of tools/analysis/plot_difficulty.py and mmdiff.analysis.plots."""
import importlib.util
import json
import math
import os
import os.path as osp
from types import ModuleType
from typing import Any, Dict

import numpy as np
import pytest
from PIL import Image

from mmdiff.analysis.plots import (PLOT_FILES, GalleryError,
                                   class_index_from_instances,
                                   class_sampling_mass, hardest_objects,
                                   index_in_image, match_dataset_images,
                                   repeat_factor_probs)
from mmdiff.datasets.synthetic_lvis import make_synthetic_lvis

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'analysis', 'plot_difficulty.py')
# Tiny synthetic LVIS: 40 images, 8 classes in all of r / c / f.
TINY = dict(
    num_train=40,
    num_val=8,
    num_classes=8,
    image_size=(96, 80),
    frequency_thresholds=(0.05, 0.2),
    seed=0)
NUM_EPOCHS = 3


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location('plot_difficulty', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_dumps(data_root: str,
                 work_dir: str,
                 drop_last_image: bool = False) -> Dict[str, np.ndarray]:
    """Dumps as DifficultyHook writes them, consistent with the data set.

    Dataset index i is the i-th image with annotations in JSON order (as
    mmdet's LVISV1Dataset with filter_empty_gt); D is random but
    deterministic and drifts with the epoch.
    """
    with open(osp.join(data_root, 'annotations', 'lvis_v1_train.json')) as f:
        ann = json.load(f)
    cat2label = {c['id']: i for i, c in enumerate(ann['categories'])}
    groups = {'r': 0, 'c': 1, 'f': 2}
    class_group = np.array([groups[c['frequency']] for c in ann['categories']],
                           dtype=np.int64)
    per_image: Dict[int, list] = {}
    for a in ann['annotations']:
        per_image.setdefault(a['image_id'],
                             []).append(cat2label[a['category_id']])
    records = [r for r in ann['images'] if r['id'] in per_image]
    if drop_last_image:
        records = records[:-1]
    labels = [per_image[r['id']] for r in records]
    num_images = len(records)
    num_classes = len(cat2label)
    inst_image = np.repeat(np.arange(num_images),
                           [len(v) for v in labels]).astype(np.int64)
    inst_label = np.array(sum(labels, []), dtype=np.int64)
    pairs = np.unique(inst_image * num_classes + inst_label)
    images_per_class = np.bincount(
        pairs % num_classes, minlength=num_classes).astype(np.int64)
    rng = np.random.default_rng(0)
    base = rng.lognormal(0.0, 0.5, size=inst_image.size)
    out_dir = osp.join(work_dir, 'difficulty')
    os.makedirs(out_dir, exist_ok=True)
    last = {}
    for epoch in range(1, NUM_EPOCHS + 1):
        inst_d = base**(epoch / NUM_EPOCHS) * rng.uniform(
            0.9, 1.1, size=base.size)
        img_d = (
            np.bincount(inst_image, weights=inst_d, minlength=num_images) /
            np.bincount(inst_image, minlength=num_images))
        last = dict(
            epoch=epoch,
            instance_difficulty=inst_d,
            instance_image=inst_image,
            instance_label=inst_label,
            image_difficulty=img_d,
            sampling_probs=img_d / img_d.sum(),
            class_group=class_group,
            images_per_class=images_per_class,
            group_names=np.array(['r', 'c', 'f']))
        np.savez_compressed(osp.join(out_dir, f'epoch_{epoch}.npz'), **last)
    return last


@pytest.fixture(scope='module')
def data_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp('synthetic_lvis'))
    make_synthetic_lvis(root, **TINY)
    return root


def _check_png(path: str) -> None:
    assert osp.isfile(path), path
    assert osp.getsize(path) > 0, path
    with Image.open(path) as img:
        img.load()
        width, height = img.size
    assert width >= 250 and height >= 150, (path, img.size)


def test_all_plots_and_summary(data_root: str, tmp_path: Any) -> None:
    work_dir = str(tmp_path / 'work')
    last = _write_dumps(data_root, work_dir)
    summary = _load_tool().main([
        work_dir, '--ann-file',
        osp.join(data_root, 'annotations', 'lvis_v1_train.json'), '--img-root',
        data_root, '--rfs-thr', '0.1', '--dpi', '60'
    ])
    out_dir = osp.join(work_dir, 'difficulty', 'plots')
    assert set(summary['plots']) == set(PLOT_FILES)
    for name in PLOT_FILES.values():
        _check_png(osp.join(out_dir, name))

    with open(osp.join(out_dir, 'summary.json')) as f:
        saved = json.load(f)
    assert saved['epochs'] == list(range(1, NUM_EPOCHS + 1))
    assert saved['epoch'] == NUM_EPOCHS
    groups = last['class_group'][last['instance_label']]
    d = last['instance_difficulty']
    for g, name in enumerate(('r', 'c', 'f')):
        stats = saved['difficulty_quantiles'][name]
        assert stats['n'] == int((groups == g).sum()) > 0
        assert stats['q50'] == pytest.approx(np.median(d[groups == g]))
    mass = saved['sampling_mass']
    for scheme in ('difficulty', 'rfs', 'uniform'):
        per_group = mass['image_mass_per_group'][scheme]
        assert sum(per_group.values()) == pytest.approx(1.0)
    # Uniform class mass is the fraction of images holding the class.
    np.testing.assert_allclose(
        mass['class_mass']['uniform'],
        last['images_per_class'] / last['image_difficulty'].size)
    over = saved['over_epochs']
    assert over['epochs'] == list(range(1, NUM_EPOCHS + 1))
    assert len(over['trajectories']) == 5
    top = over['trajectories'][0]
    assert top['object'] == int(np.argmax(d))
    assert top['difficulty'][-1] == pytest.approx(d.max())
    gallery = saved['gallery']
    assert gallery['status'] == 'written'
    expected = np.argsort(-last['image_difficulty'], kind='stable')[:12]
    assert [img['index'] for img in gallery['images']] == expected.tolist()
    assert all(img['found'] for img in gallery['images'])


def test_gallery_skipped_when_image_count_differs(
        data_root: str, tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    work_dir = str(tmp_path / 'work')
    _write_dumps(data_root, work_dir, drop_last_image=True)
    out_dir = str(tmp_path / 'plots')
    summary = _load_tool().main([
        work_dir, '--out-dir', out_dir, '--ann-file',
        osp.join(data_root, 'annotations', 'lvis_v1_train.json'), '--dpi',
        '50', '--num-trajectories', '2'
    ])
    out = capsys.readouterr().out
    assert 'gallery skipped' in out
    assert '39 dataset indices' in out and '40 images' in out
    assert summary['gallery']['status'] == 'skipped'
    assert 'gallery' not in summary['plots']
    assert not osp.exists(osp.join(out_dir, PLOT_FILES['gallery']))
    for key in ('histograms', 'sampling_mass', 'over_epochs'):
        _check_png(osp.join(out_dir, PLOT_FILES[key]))
    with open(osp.join(out_dir, 'summary.json')) as f:
        saved = json.load(f)
    assert saved['gallery']['status'] == 'skipped'
    assert len(saved['over_epochs']['trajectories']) == 2


def test_class_mass_and_rfs_by_hand() -> None:
    # Image 0: class 0; image 1: classes 0, 0; image 2: 0 and 1;
    # image 3: no object.
    inst_image = np.array([0, 1, 1, 2, 2])
    inst_label = np.array([0, 0, 0, 1, 0])
    index = class_index_from_instances(inst_image, inst_label, 4, 2)
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(
        class_sampling_mass(index, probs), [0.1 + 0.2 + 0.3, 0.3])
    # f = (3/4, 1/4); t = 0.5: r_0 = 1, r_1 = sqrt(2); image 3 gets 1.
    rfs = repeat_factor_probs(index, np.array([3, 1]), 0.5)
    r = np.array([1, 1, math.sqrt(2), 1])
    np.testing.assert_allclose(rfs, r / r.sum())
    # The dump's own counts win over the objects' ones (f_1 = 1/2 here).
    rfs = repeat_factor_probs(index, np.array([3, 2]), 0.5)
    np.testing.assert_allclose(rfs, np.full(4, 0.25))
    with pytest.raises(ValueError, match='thr'):
        repeat_factor_probs(index, np.array([3, 1]), 0.0)


def test_object_order_helpers() -> None:
    np.testing.assert_array_equal(
        index_in_image(np.array([0, 0, 2, 1, 2, 2])), [0, 1, 0, 0, 1, 2])
    np.testing.assert_array_equal(
        hardest_objects(np.array([1.0, 3.0, 2.0, 3.0]), 3), [1, 3, 2])


def _image(img_id: int, width: int = 64, height: int = 48) -> dict:
    return dict(
        id=img_id,
        width=width,
        height=height,
        file_name=f'{img_id}.jpg',
        coco_url=f'http://images.cocodataset.org/train2017/{img_id}.jpg')


def _ann(ann_id: int, img_id: int, cat: int, **kw: Any) -> dict:
    ann = dict(
        id=ann_id,
        image_id=img_id,
        category_id=cat,
        bbox=[2, 3, 10, 8],
        area=80.0)
    ann.update(kw)
    return ann


def test_match_dataset_images_follows_mmdet_filters() -> None:
    ann = dict(
        categories=[dict(id=7), dict(id=3)],
        images=[_image(1),
                _image(2),
                _image(3, width=20),
                _image(4)],
        annotations=[
            _ann(1, 4, 3),
            _ann(2, 1, 7),
            _ann(3, 1, 3, iscrowd=1),  # ignored: not in the dumps
            _ann(4, 3, 7),  # image 3 is below min_size 32
            _ann(5, 4, 7, bbox=[1, 1, 0.5, 4]),  # under 1 pixel wide
            _ann(6, 4, 7, bbox=[5, 5, 4, 4]),
        ])
    # Dataset: image 1 (label 0), image 4 (labels 1, 0); image 2 has no
    # annotation.
    inst_image = np.array([0, 1, 1])
    inst_label = np.array([0, 1, 0])
    records, boxes = match_dataset_images(ann, inst_image, inst_label, 2)
    assert [r['id'] for r in records] == [1, 4]
    np.testing.assert_allclose(boxes[0], [[2, 3, 12, 11]])
    np.testing.assert_allclose(boxes[1], [[2, 3, 12, 11], [5, 5, 9, 9]])
    # Without the min_size filter image 3 is a dataset image too.
    records, _ = match_dataset_images(
        ann, np.array([0, 1, 2, 2]), np.array([0, 0, 1, 0]), 3, min_size=0)
    assert [r['id'] for r in records] == [1, 3, 4]
    # Counts that fit no candidate, and labels that disagree.
    with pytest.raises(GalleryError, match='4 dataset indices'):
        match_dataset_images(ann, inst_image, inst_label, 4)
    with pytest.raises(GalleryError, match='labels'):
        match_dataset_images(ann, inst_image, np.array([1, 1, 0]), 2)
