"""Tests of tools/analysis/plot_difficulty.py and mmdiff.analysis."""
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

from mmdiff.analysis.dump import load_dump, write_epoch, write_index
from mmdiff.analysis.report import PLOT_FILES
from mmdiff.analysis.stats import (class_index_from_instances,
                                   class_sampling_mass, hardest_objects,
                                   index_in_image, repeat_factor_probs)
from mmdiff.datasets.synthetic.make import make_synthetic_lvis

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
    deterministic and drifts with the epoch. ``drop_last_image`` writes
    epoch dumps with one image fewer than the index (another run's).
    """
    with open(osp.join(data_root, 'annotations', 'lvis_v1_train.json')) as f:
        ann = json.load(f)
    cat2label = {c['id']: i for i, c in enumerate(ann['categories'])}
    groups = {'r': 0, 'c': 1, 'f': 2}
    class_group = np.array([groups[c['frequency']] for c in ann['categories']],
                           dtype=np.int64)
    per_image: Dict[int, list] = {}
    for a in ann['annotations']:
        per_image.setdefault(a['image_id'], []).append(a)
    records = [r for r in ann['images'] if r['id'] in per_image]
    objects = [per_image[r['id']] for r in records]
    num_images = len(records)
    num_classes = len(cat2label)
    inst_image = np.repeat(np.arange(num_images),
                           [len(v) for v in objects]).astype(np.int64)
    inst_label = np.array(
        [cat2label[a['category_id']] for v in objects for a in v],
        dtype=np.int64)
    boxes = np.array([[x, y, x + w, y + h] for v in objects
                      for x, y, w, h in (a['bbox'] for a in v)])
    pairs = np.unique(inst_image * num_classes + inst_label)
    images_per_class = np.bincount(
        pairs % num_classes, minlength=num_classes).astype(np.int64)
    out_dir = osp.join(work_dir, 'difficulty')
    write_index(
        out_dir,
        instance_image=inst_image,
        instance_label=inst_label,
        instance_box=boxes,
        img_id=[r['id'] for r in records],
        img_path=[
            osp.join(data_root, 'train2017', r['file_name']) for r in records
        ],
        class_name=[c['name'] for c in ann['categories']],
        class_group=class_group,
        group_names=['r', 'c', 'f'],
        images_per_class=images_per_class)
    rng = np.random.default_rng(0)
    base = rng.lognormal(0.0, 0.5, size=inst_image.size)
    last = {}
    for epoch in range(1, NUM_EPOCHS + 1):
        inst_d = base**(epoch / NUM_EPOCHS) * rng.uniform(
            0.9, 1.1, size=base.size)
        img_d = (
            np.bincount(inst_image, weights=inst_d, minlength=num_images) /
            np.bincount(inst_image, minlength=num_images))
        if drop_last_image:
            img_d = img_d[:-1]
        last = dict(
            instance_difficulty=inst_d,
            instance_observed=np.ones(inst_d.size, dtype=bool),
            image_difficulty=img_d,
            sampling_probs=img_d / img_d.sum())
        write_epoch(out_dir, epoch, **last)
    last.update(
        epoch=NUM_EPOCHS,
        instance_image=inst_image,
        instance_label=inst_label,
        class_group=class_group,
        images_per_class=images_per_class)
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
    summary = _load_tool().main([work_dir, '--rfs-thr', '0.1', '--dpi', '60'])
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
    # Every box is labelled with its class name and D.
    with open(osp.join(data_root, 'annotations', 'lvis_v1_train.json')) as f:
        names = [c['name'] for c in json.load(f)['categories']]
    first = gallery['images'][0]
    assert first['class_names'] and set(first['class_names']) <= set(names)
    assert len(first['object_difficulty']) == len(first['class_names'])


def test_dumps_of_two_runs_are_refused(data_root: str, tmp_path: Any) -> None:
    work_dir = str(tmp_path / 'work')
    _write_dumps(data_root, work_dir, drop_last_image=True)
    path = osp.join(work_dir, 'difficulty', 'epoch_1.npz')
    with pytest.raises(ValueError, match='different runs'):
        load_dump(path)
    with pytest.raises(ValueError, match='different runs'):
        _load_tool().main([work_dir])


def test_gallery_draws_missing_images_as_grey_panels(
        data_root: str, tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    root = str(tmp_path / 'copy')
    make_synthetic_lvis(root, **TINY)
    work_dir = str(tmp_path / 'work')
    _write_dumps(root, work_dir)
    for name in os.listdir(osp.join(root, 'train2017'))[:5]:
        os.remove(osp.join(root, 'train2017', name))
    out_dir = str(tmp_path / 'plots')
    summary = _load_tool().main([
        work_dir, '--out-dir', out_dir, '--dpi', '50', '--num-trajectories',
        '2', '--topk-images', '40'
    ])
    assert 'image files not found' in capsys.readouterr().out
    assert summary['gallery']['status'] == 'written'
    found = [img['found'] for img in summary['gallery']['images']]
    assert found.count(False) == 5
    for key in PLOT_FILES:
        _check_png(osp.join(out_dir, PLOT_FILES[key]))
    with open(osp.join(out_dir, 'summary.json')) as f:
        saved = json.load(f)
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
