"""tools/analysis/preview_sampling.py and mmdiff.analysis.preview.

The numbers are checked against mmengine's ClassBalancedDataset and
against plain loops over the images.
"""
import importlib.util
import json
import math
import os.path as osp
from collections import Counter
from typing import Any

import numpy as np
import pytest
from mmengine.dataset.dataset_wrapper import ClassBalancedDataset
from mmengine.registry import DATASETS, init_default_scope

from mmdiff.analysis.dump import write_epoch, write_index
from mmdiff.analysis.preview import expected_max_draws, preview_schemes
from mmdiff.core import (DatasetIndex, dataset_sampling_weights,
                         lvis_repeat_factors)
from mmdiff.datasets import index_dataset
from ..conftest import REPO, TINY_SYNTHETIC

CONFIG = osp.join(REPO, 'configs', 'demo',
                  'mask-rcnn_r18_synthetic-lvis_difficulty.py')


def load_tool() -> Any:
    path = osp.join(REPO, 'tools', 'analysis', 'preview_sampling.py')
    spec = importlib.util.spec_from_file_location('preview_sampling', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data_options(root: str) -> list:
    return [
        f'train_dataloader.dataset.data_root={root}',
        'train_dataloader.dataset.synthetic.num_train='
        f"{TINY_SYNTHETIC['num_train']}",
        'train_dataloader.dataset.synthetic.num_val='
        f"{TINY_SYNTHETIC['num_val']}",
    ]


def train_set(root: str) -> Any:
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    cfg.train_dataloader.dataset.update(
        data_root=root, synthetic=dict(TINY_SYNTHETIC))
    init_default_scope('mmdet')
    return DATASETS.build(cfg.train_dataloader.dataset)


def test_rfs_matches_class_balanced_dataset(synthetic_lvis_root: str):
    dataset = train_set(synthetic_lvis_root)
    index = index_dataset(dataset)
    thr = 0.1
    preview = preview_schemes(index, ['f'] * index.num_classes, thr)
    cbd = ClassBalancedDataset(dataset, oversample_thr=thr)
    rfs = preview['rfs_repeat']
    assert rfs['epoch_length'] == len(cbd) > len(dataset)
    # Images showing each class in one ClassBalancedDataset epoch.
    shown = Counter()
    for idx in cbd.repeat_indices:
        shown.update(set(dataset.get_cat_ids(idx)))
    np.testing.assert_array_equal(rfs['class_draws'],
                                  [shown[c] for c in range(index.num_classes)])
    assert rfs['fraction_not_drawn'] == 0.0
    assert rfs['max_draws'] == max(Counter(cbd.repeat_indices).values())
    # Drawn RFS: the same factors as probabilities, len(dataset) draws.
    factors = lvis_repeat_factors(index.class_index(), thr)
    expected = np.zeros(index.num_classes)
    for i in range(len(dataset)):
        for c in set(dataset.get_cat_ids(i)):
            expected[c] += len(dataset) * factors[i] / factors.sum()
    np.testing.assert_allclose(preview['rfs']['class_draws'], expected)


def test_expected_epoch_by_loops():
    # Image 1 is shown by two indices (RepeatDataset-like), image 3 has
    # no object.
    index = DatasetIndex([0, 1, 1, 2, 3], [0, 2, 3, 5, 5], [0, 1, 2, 0, 0], 3)
    frequency = ['r', 'c', 'f']
    preview = preview_schemes(
        index,
        frequency,
        0.5,
        images_per_epoch=7,
        configured=dict(scheme='paper'),
        difficulty=np.array([1.0, 2.0, 2.0, 4.0, 1.0]))
    p = dataset_sampling_weights('paper', index, np.array([1.0, 2, 2, 4, 1]))
    np.testing.assert_allclose(p, np.array([1, 2, 2, 4, 1]) / 10)
    row = preview['config_difficulty']
    assert row['epoch_length'] == 7
    images = {0: [0], 1: [1, 2], 2: [3], 3: [4]}
    classes = {0: {0, 1}, 1: {2}, 2: {0}, 3: set()}
    per_image = [sum(p[i] for i in idx) for idx in images.values()]
    # 7 draws miss image m with probability (1 - p_m)^7, p_m summed over
    # the indices that show it
    not_drawn = np.mean([(1 - q)**7 for q in per_image])
    assert row['fraction_not_drawn'] == pytest.approx(not_drawn)
    assert row['max_draws'] == pytest.approx(
        poisson_max_by_loops(per_image, 7))
    assert row['ess_fraction'] == pytest.approx(
        1 / sum(q * q for q in per_image) / 4)
    draws = [
        sum(7 * per_image[m] for m in images if c in classes[m])
        for c in range(3)
    ]
    np.testing.assert_allclose(row['class_draws'], draws)
    # group of an image: its rarest class (image 0: r, 1: f, 2: r)
    assert row['group_mass']['r'] == pytest.approx(per_image[0] + per_image[2])
    assert row['group_mass']['f'] == pytest.approx(per_image[1])
    assert preview['config']['ess_fraction'] < 1  # image 1 has two indices


def poisson_max_by_loops(p: list, n: int) -> float:
    """E max_m X_m, X_m ~ Poisson(n p_m) independent, term by term."""
    total = 0.0
    for k in range(n + 200):
        below = 1.0
        for q in p:
            lam, pmf, cdf = n * q, math.exp(-n * q), 0.0
            for j in range(k + 1):
                cdf += pmf
                pmf *= lam / (j + 1)
            below *= min(cdf, 1.0)
        total += 1.0 - below
    return total


def test_expected_max_draws_is_close_to_the_multinomial():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(30, 0.7))
    counts = rng.multinomial(100, p, size=20000)
    monte_carlo = counts.max(axis=1).mean()
    assert expected_max_draws(p, 100) == pytest.approx(monte_carlo, rel=0.03)
    assert expected_max_draws(p, 100) == pytest.approx(
        poisson_max_by_loops(p.tolist(), 100), rel=1e-9)
    assert expected_max_draws(np.array([1.0]), 5) == pytest.approx(5.0)


def image_dump(dump_dir: str, index: Any, img_ids: np.ndarray,
               image_difficulty: np.ndarray) -> str:
    """A hook dump with only per-image difficulty: ``epoch_1.npz``."""
    m = len(img_ids)
    write_index(
        dump_dir,
        instance_image=np.zeros(0, np.int64),
        instance_label=np.zeros(0, np.int64),
        instance_box=np.zeros((0, 4), np.float32),
        img_id=np.asarray(img_ids),
        img_path=np.array([''] * m),
        class_name=np.array([f'c{i}' for i in range(index.num_classes)]),
        class_group=np.zeros(index.num_classes, np.int64),
        group_names=np.array(['r', 'c', 'f']),
        images_per_class=index.images_per_class())
    return write_epoch(
        dump_dir,
        1,
        instance_difficulty=np.zeros(0),
        instance_observed=np.zeros(0, bool),
        image_difficulty=image_difficulty,
        sampling_probs=np.full(m, 1.0 / m))


def test_tool_on_the_synthetic_set(synthetic_lvis_root: str, tmp_path):
    tool = load_tool()
    out = str(tmp_path / 'preview')
    summary = tool.main([CONFIG, '--out-dir', out, '--cfg-options'] +
                        data_options(synthetic_lvis_root))
    assert set(summary['schemes']) == {
        'uniform', 'rfs_repeat', 'rfs', 'class_aware', 'irfs', 'config'
    }
    assert summary['thr'] == 0.1  # the config sampler's
    assert osp.getsize(osp.join(out, 'preview_sampling.png')) > 20_000
    with open(osp.join(out, 'preview_sampling.json')) as f:
        saved = json.load(f)
    uniform = saved['schemes']['uniform']
    assert uniform['epoch_length'] == TINY_SYNTHETIC['num_train']
    assert uniform['ess_fraction'] == pytest.approx(1.0)
    # The config's prior is the drawn RFS of its threshold.
    assert saved['schemes']['config'] == saved['schemes']['rfs']

    # A dump of this training set: the sampler under its difficulty.
    index = index_dataset(train_set(synthetic_lvis_root))
    m = index.num_images
    d = np.linspace(0.5, 3.0, m)
    path = image_dump(str(tmp_path / 'difficulty'), index, index.img_ids, d)
    summary = tool.main([CONFIG, '--out-dir', out, '--difficulty', path] +
                        ['--cfg-options'] + data_options(synthetic_lvis_root))
    harder = summary['schemes']['config_difficulty']
    assert harder['ess_fraction'] < summary['schemes']['config'][
        'ess_fraction']

    # A dump of another training set is refused, naming both sizes.
    bad = image_dump(str(tmp_path / 'other'), index, np.arange(3), np.ones(3))
    with pytest.raises(ValueError, match=f'holds 3 images .* has {m}'):
        tool.main([CONFIG, '--out-dir', out, '--difficulty', bad] +
                  ['--cfg-options'] + data_options(synthetic_lvis_root))

    # As many images, other ids: refused, naming the first that differs.
    bad = image_dump(str(tmp_path / 'renamed'), index, index.img_ids + 1000, d)
    with pytest.raises(
            ValueError, match='of another training set: its '
            'image 0 has id'):
        tool.main([CONFIG, '--out-dir', out, '--difficulty', bad] +
                  ['--cfg-options'] + data_options(synthetic_lvis_root))


def _child_config(root: str, path: str, dataloader: dict) -> str:
    """The demo config on ``root`` with ``dataloader`` merged, dumped."""
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    cfg.train_dataloader.dataset.update(
        data_root=root, synthetic=dict(TINY_SYNTHETIC))
    cfg.merge_from_dict(dict(train_dataloader=dataloader))
    cfg.dump(path)
    return path


def test_tool_on_other_samplers(synthetic_lvis_root: str, tmp_path):
    from mmengine.config import Config

    from mmdiff.datasets import UnsupportedDatasetError
    tool = load_tool()
    inner = Config.fromfile(CONFIG).train_dataloader.dataset
    inner.update(data_root=synthetic_lvis_root, synthetic=dict(TINY_SYNTHETIC))
    out = str(tmp_path / 'preview')

    # mmdet's RFS recipe: the ClassBalancedDataset row is the config.
    wrapped = dict(
        _delete_=True,
        type='ClassBalancedDataset',
        oversample_thr=0.2,
        dataset=inner.to_dict())
    cbd = _child_config(
        synthetic_lvis_root, str(tmp_path / 'cbd.py'),
        dict(
            sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
            dataset=wrapped))
    summary = tool.main([cbd, '--out-dir', out])
    assert summary['thr'] == 0.2  # the wrapper's oversample_thr
    assert summary['schemes']['config'] == summary['schemes']['rfs_repeat']
    assert summary['schemes']['config']['epoch_length'] > TINY_SYNTHETIC[
        'num_train']

    # DefaultSampler: every image once.
    default = _child_config(
        synthetic_lvis_root, str(tmp_path / 'default.py'),
        dict(sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True)))
    row = tool.main([default, '--out-dir', out])['schemes']['config']
    assert row['epoch_length'] == TINY_SYNTHETIC['num_train']
    assert row['fraction_not_drawn'] == 0.0 and row['max_draws'] == 1.0

    # The wrapper under the difficulty sampler is refused, naming the fix.
    both = _child_config(synthetic_lvis_root, str(tmp_path / 'both.py'),
                         dict(dataset=wrapped))
    with pytest.raises(UnsupportedDatasetError, match='Drop the wrapper'):
        tool.main([both, '--out-dir', out])
