"""The CIFAR-LT configs parse, say what their names say, and build."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmengine.registry import DATASETS, METRICS, MODELS
from mmengine.runner import Runner

from mmdiff.classification import CIFAR10LT, CIFAR100LT, cifar_lt_counts
from ..cifar_fake import write_fake_cifar

CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'cifar')
CONFIGS = sorted(glob.glob(osp.join(CONFIG_DIR, 'cifar*_lt_r*_baseline.py')))


def test_there_are_baselines_for_both_data_sets_and_three_ratios():
    names = {osp.basename(p) for p in CONFIGS}
    for ds in (10, 100):
        for ratio in (20, 50, 100):
            assert f'cifar{ds}_lt_r{ratio}_baseline.py' in names


@pytest.fixture(scope='module')
def fake_roots(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data'))
    return {
        10: write_fake_cifar(root, 10, per_class=5, test_per_class=1),
        100: write_fake_cifar(root, 100, per_class=2, test_per_class=1),
    }


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config(path, fake_roots):
    num_classes, ratio = map(
        int,
        re.match(r'cifar(\d+)_lt_r(\d+)_', osp.basename(path)).groups())
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmengine'
    train_set = cfg.train_dataloader.dataset
    assert train_set.type == f'CIFAR{num_classes}LT'
    assert train_set.imbalance_ratio == ratio
    assert cfg.val_dataloader.dataset.split == 'test'
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator.type == 'LongTailAccuracy'
        assert evaluator.num_classes == num_classes
        assert evaluator.imbalance_ratio == ratio
    # The recipe stated in the schedule base.
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.optim_wrapper.optimizer.lr == 0.1
    assert cfg.optim_wrapper.optimizer.weight_decay == 2e-4
    assert cfg.train_cfg.max_epochs == 200
    assert cfg.param_scheduler[1].milestones == [160, 180]
    assert cfg.param_scheduler[1].gamma == 0.01

    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    assert model.head.num_classes == num_classes
    assert model.backbone.depth == 32

    metric = METRICS.build(cfg.val_evaluator)
    assert metric.train_class_counts.tolist() == cifar_lt_counts(
        num_classes, 50000 // num_classes, ratio)

    train_set = train_set.copy()
    train_set.data_root = fake_roots[num_classes]
    dataset = DATASETS.build(train_set)
    assert isinstance(dataset, (CIFAR10LT, CIFAR100LT))
    out = dataset[0]
    assert out['inputs'].shape == (3, 32, 32)
    assert out['data_samples'].sample_idx == 0


@pytest.mark.slow
def test_baseline_config_trains_and_validates(fake_roots, tmp_path):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'cifar10_lt_r100_baseline.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = fake_roots[10]
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert set(metrics) == {
        'accuracy/top1', 'accuracy/many', 'accuracy/medium', 'accuracy/few'
    }
    assert osp.isfile(osp.join(str(tmp_path), 'epoch_1.pth'))
