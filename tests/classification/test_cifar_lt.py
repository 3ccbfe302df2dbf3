import os.path as osp
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff.classification import CIFAR10LT, CIFAR100LT, cifar_lt_counts
from ..cifar_fake import write_fake_cifar


def _load(path):
    with open(path, 'rb') as f:
        return pickle.load(f, encoding='bytes')


# Subset sizes reported throughout the CIFAR-LT literature (e.g. Cao et al.
# 2019): CIFAR-10-LT 12,406 / 13,996 / 20,431 and CIFAR-100-LT 10,847 /
# 12,608 / 19,573 images at ratios 100 / 50 / 10.
@pytest.mark.parametrize('num_classes,n_max,ratio,total', [
    (10, 5000, 100, 12406),
    (10, 5000, 50, 13996),
    (10, 5000, 10, 20431),
    (100, 500, 100, 10847),
    (100, 500, 50, 12608),
    (100, 500, 10, 19573),
    (10, 5000, 1, 50000),
])
def test_counts_match_literature(num_classes, n_max, ratio, total):
    assert sum(cifar_lt_counts(num_classes, n_max, ratio)) == total


def test_counts_cifar10_r100_by_hand():
    # 5000 * 0.01 ** (i / 9), rounded down.
    assert cifar_lt_counts(
        10, 5000, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert cifar_lt_counts(1, 7, 100) == [7]
    assert cifar_lt_counts(2, 100, 4) == [100, 25]


@settings(max_examples=50, deadline=None)
@given(
    num_classes=st.integers(2, 200),
    n_max=st.integers(1, 10000),
    ratio=st.floats(1, 1000))
def test_counts_properties(num_classes, n_max, ratio):
    counts = cifar_lt_counts(num_classes, n_max, ratio)
    assert len(counts) == num_classes
    assert counts[0] == n_max
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    # The last class is n_max / ratio up to float rounding and the floor.
    assert abs(counts[-1] - n_max / ratio) <= 1 + 1e-9 * n_max


@pytest.mark.parametrize('args', [(0, 10, 10), (10, 0, 10), (10, 10, 0.5),
                                  (10.0, 10, 10), (10, 10, 'x')])
def test_counts_invalid(args):
    with pytest.raises(ValueError):
        cifar_lt_counts(*args)


def test_fake_files_have_the_cifar_format(tmp_path):
    root = write_fake_cifar(str(tmp_path), 10, per_class=3, test_per_class=2)
    assert root == osp.join(str(tmp_path), 'cifar-10-batches-py')
    batches = [_load(osp.join(root, f'data_batch_{i}')) for i in range(1, 6)]
    for b in batches:
        assert b[b'data'].dtype == np.uint8 and b[b'data'].shape[1] == 3072
        assert isinstance(b[b'labels'], list)
    assert sum(len(b[b'labels']) for b in batches) == 30
    test = _load(osp.join(root, 'test_batch'))
    assert test[b'data'].shape == (20, 3072)
    meta = _load(osp.join(root, 'batches.meta'))
    assert len(meta[b'label_names']) == 10

    root = write_fake_cifar(str(tmp_path), 100, per_class=1, test_per_class=1)
    train = _load(osp.join(root, 'train'))
    assert train[b'data'].shape == (100, 3072)
    assert sorted(train[b'fine_labels']) == list(range(100))
    meta = _load(osp.join(root, 'meta'))
    assert len(meta[b'fine_label_names']) == 100
    with pytest.raises(ValueError, match='10 or 100'):
        write_fake_cifar(str(tmp_path), 20)


@pytest.fixture(scope='module')
def cifar10_root(tmp_path_factory):
    return write_fake_cifar(
        str(tmp_path_factory.mktemp('data')),
        10,
        per_class=20,
        test_per_class=4)


def test_train_split_is_long_tailed(cifar10_root):
    ds = CIFAR10LT(cifar10_root, 'train', imbalance_ratio=10)
    # n_max defaults to the per-class count of the full split (20 here).
    expected = cifar_lt_counts(10, 20, 10)
    assert ds.get_class_counts().tolist() == expected
    assert len(ds) == sum(expected)
    labels = ds.get_gt_labels()
    assert labels.dtype == np.int64 and labels.shape == (len(ds), )
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['sample_idx'] == i
        assert info['gt_label'] == labels[i]
        assert ds.get_cat_ids(i) == [labels[i]]
        assert info['img'].shape == (32, 32, 3)
        assert info['img'].dtype == np.uint8
    assert ds.metainfo['classes'][0] == 'class_0'


def test_images_are_the_file_rows(cifar10_root):
    ds = CIFAR10LT(cifar10_root, 'train', imbalance_ratio=1)
    rows = np.concatenate([
        _load(osp.join(cifar10_root, f'data_batch_{i}'))[b'data']
        for i in range(1, 6)
    ])
    for i in (0, 7, len(ds) - 1):
        info = ds.get_data_info(i)
        chw = rows[info['ori_index']].reshape(3, 32, 32)
        np.testing.assert_array_equal(info['img'], chw.transpose(1, 2, 0))
    # The data info holds a copy: changing it leaves the store intact.
    info = ds.get_data_info(0)
    info['img'][:] = 0
    assert ds.get_data_info(0)['img'].any()


def test_test_split_stays_balanced(cifar10_root):
    ds = CIFAR10LT(cifar10_root, 'test', imbalance_ratio=100)
    assert ds.get_class_counts().tolist() == [4] * 10


def test_subset_is_seeded_and_nested(cifar10_root):

    def kept(ratio, seed):
        ds = CIFAR10LT(cifar10_root, 'train', imbalance_ratio=ratio, seed=seed)
        return {ds.get_data_info(i)['ori_index'] for i in range(len(ds))}

    assert kept(10, 0) == kept(10, 0)
    assert kept(10, 0) != kept(10, 1)
    assert kept(20, 3) <= kept(10, 3) <= kept(1, 3)
    assert len(kept(1, 0)) == 200


def test_pipeline_gets_sample_idx(cifar10_root):
    ds = CIFAR10LT(
        cifar10_root,
        'train',
        imbalance_ratio=10,
        pipeline=[dict(type='PackClsInputs')])
    out = ds[5]
    assert out['data_samples'].sample_idx == 5
    assert int(out['data_samples'].gt_label) == ds.get_gt_labels()[5]


def test_indices_and_subsets_keep_labels_right(cifar10_root):
    full = CIFAR10LT(cifar10_root, 'train', imbalance_ratio=10)
    part = CIFAR10LT(
        cifar10_root, 'train', imbalance_ratio=10, indices=[3, 1, 4])
    assert part.get_gt_labels().tolist() == \
        full.get_gt_labels()[[3, 1, 4]].tolist()
    sub = full.get_subset([0, 2])
    assert sub.get_gt_labels().tolist() == \
        full.get_gt_labels()[[0, 2]].tolist()
    plain = CIFAR10LT(
        cifar10_root, 'train', imbalance_ratio=10, serialize_data=False)
    assert plain.get_gt_labels().tolist() == full.get_gt_labels().tolist()


def test_cifar100(tmp_path):
    root = write_fake_cifar(str(tmp_path), 100, per_class=5, test_per_class=1)
    ds = CIFAR100LT(root, 'train', imbalance_ratio=1)
    assert len(ds) == 500 and len(ds.metainfo['classes']) == 100
    ds = CIFAR100LT(root, 'train', imbalance_ratio=50)
    assert ds.get_class_counts().tolist() == cifar_lt_counts(100, 5, 50)
    assert len(CIFAR100LT(root, 'test')) == 100


def test_missing_files_say_where_cifar_comes_from(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        CIFAR10LT(str(tmp_path / 'nowhere'))
    msg = str(err.value)
    for part in ('data_batch_1', 'test_batch', 'batches.meta',
                 'https://www.cs.toronto.edu/~kriz/cifar.html',
                 'cifar-10-python.tar.gz', 'data/'):
        assert part in msg
    with pytest.raises(FileNotFoundError, match='cifar-100-python.tar.gz'):
        CIFAR100LT(str(tmp_path / 'nowhere'))


def test_default_data_roots():
    assert CIFAR10LT.DEFAULT_DATA_ROOT == 'data/cifar-10-batches-py'
    assert CIFAR100LT.DEFAULT_DATA_ROOT == 'data/cifar-100-python'


@pytest.mark.parametrize('kwargs,match', [
    (dict(split='val'), 'split'),
    (dict(imbalance_ratio=30), 'imbalance_ratio'),
    (dict(imbalance_ratio=True), 'imbalance_ratio'),
    (dict(seed=-1), 'seed'),
    (dict(n_max=0), 'n_max'),
    (dict(n_max=21), 'n_max=21'),
])
def test_invalid_arguments(cifar10_root, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CIFAR10LT(cifar10_root, **kwargs)
