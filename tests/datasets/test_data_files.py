"""The tools' data-file check: generic paths and datasets' own checks."""
import os.path as osp
from typing import Mapping

import pytest
from mmengine.config import Config

from mmdiff.classification import CIFAR10LT
from mmdiff.datasets import DataFilesNotFoundError, check_data_files
from ..cifar_fake import write_fake_cifar

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CIFAR_CONFIG = osp.join(REPO, 'configs', 'cifar',
                        'cifar10_lt_r100_difficulty.py')
LVIS_CONFIG = osp.join(REPO, 'configs', 'lvis_difficulty.py')
SPLITS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
CIFAR_FILES = ('batches.meta', 'data_batch_1', 'data_batch_5', 'test_batch')


def _cifar_cfg(data_root: str) -> Config:
    cfg = Config.fromfile(CIFAR_CONFIG)
    for split in SPLITS:
        cfg[split].dataset.data_root = data_root
    return cfg


def test_cifar_check_shows_layout_and_source_once(tmp_path):
    root = str(tmp_path / 'cifar-10-batches-py')
    with pytest.raises(DataFilesNotFoundError) as err:
        check_data_files(_cifar_cfg(root))
    message = str(err.value)
    # The three loaders read the same files: one message names them all.
    assert '  train_dataloader, val_dataloader, test_dataloader (CIFAR10LT):' \
        in message
    assert message.count('Expected:') == 1
    for name in (root, *CIFAR_FILES, 'cifar-10-python.tar.gz',
                 'https://www.cs.toronto.edu/~kriz/cifar.html'):
        assert name in message
    # The dataset's own message, not the generic hint.
    assert 'ann_file' not in message


def test_cifar_check_passes_on_the_files(tmp_path):
    root = write_fake_cifar(str(tmp_path), 10, per_class=1, test_per_class=1)
    check_data_files(_cifar_cfg(root))


def test_splits_limit_the_datasets_named(tmp_path):
    cfg = _cifar_cfg(str(tmp_path / 'missing'))
    with pytest.raises(DataFilesNotFoundError) as err:
        check_data_files(cfg, splits=['test_dataloader', 'test_evaluator'])
    assert '  test_dataloader (CIFAR10LT):' in str(err.value)
    assert 'train_dataloader' not in str(err.value)


def test_cifar_class_check_uses_the_default_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match='data/cifar-10-batches-py'):
        CIFAR10LT.check_data_files({})
    write_fake_cifar('data', 10, per_class=1, test_per_class=1)
    CIFAR10LT.check_data_files({})


class _SelfCheckingDataset:
    """Stands in for a dataset class that checks its own files."""

    calls: list = []

    @classmethod
    def check_data_files(cls, dataset_cfg: Mapping) -> None:
        cls.calls.append(dict(dataset_cfg))
        raise FileNotFoundError('own layout for ' + dataset_cfg['data_root'])


def test_a_dataset_check_replaces_the_generic_one(tmp_path):
    _SelfCheckingDataset.calls.clear()
    missing = str(tmp_path / 'nowhere')
    cfg = dict(
        train_dataloader=dict(
            dataset=dict(
                type='ClassBalancedDataset',
                oversample_thr=1e-3,
                dataset=dict(type=_SelfCheckingDataset, data_root=missing))))
    with pytest.raises(DataFilesNotFoundError) as err:
        check_data_files(cfg)
    # Found inside the wrapper, called with its config.
    assert _SelfCheckingDataset.calls == [
        dict(type=_SelfCheckingDataset, data_root=missing)
    ]
    assert f'own layout for {missing}' in str(err.value)
    # Its missing data_root is not reported a second time.
    assert f': {missing}' not in str(err.value)


def test_lvis_check_is_unchanged(tmp_path):
    root = str(tmp_path / 'lvis_v1') + '/'
    cfg = Config.fromfile(LVIS_CONFIG)
    for split in SPLITS:
        cfg[split].dataset.data_root = root
    for split in ('val_evaluator', 'test_evaluator'):
        cfg[split].ann_file = root + 'annotations/lvis_v1_val.json'
    with pytest.raises(DataFilesNotFoundError) as err:
        check_data_files(cfg)
    message = str(err.value)
    assert f'train_dataloader (LVISV1Dataset): {root}annotations/' \
        'lvis_v1_train.json' in message
    assert 'https://www.lvisdataset.org/dataset' in message
