"""One small real run: mmengine Runner, fake CIFAR-10-LT, train + val."""
import math

import pytest
from mmengine.runner import Runner

from mmdiff.classification import cifar_lt_counts
from ..cifar_fake import write_fake_cifar

CIFAR_MEAN = [125.307, 122.961, 113.8575]
CIFAR_STD = [51.5865, 50.847, 51.255]


def _config(data_root: str, work_dir: str) -> dict:
    train_pipeline = [
        dict(type='PadRandomCrop', size=32, padding=4),
        dict(type='RandomHorizontalFlip', prob=0.5),
        dict(type='PackClsInputs'),
    ]
    dataset = dict(type='CIFAR10LT', data_root=data_root, seed=0)
    return dict(
        default_scope='mmengine',
        work_dir=work_dir,
        model=dict(
            type='ImageClassifier',
            data_preprocessor=dict(mean=CIFAR_MEAN, std=CIFAR_STD),
            # ResNet-8 (one block per stage) keeps the run short.
            backbone=dict(type='ResNetCifar', depth=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='MultiHeadNormClsHead', num_classes=10, in_channels=64)),
        train_dataloader=dict(
            batch_size=16,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(
                **dataset,
                split='train',
                imbalance_ratio=10,
                pipeline=train_pipeline)),
        val_dataloader=dict(
            batch_size=32,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(
                **dataset, split='test',
                pipeline=[dict(type='PackClsInputs')])),
        # A made-up profile that puts classes in all three groups.
        val_evaluator=dict(
            type='LongTailAccuracy',
            train_class_counts=cifar_lt_counts(10, 500, 100)),
        optim_wrapper=dict(
            optimizer=dict(
                type='SGD', lr=0.05, momentum=0.9, weight_decay=2e-4)),
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1),
        val_cfg=dict(),
        default_hooks=dict(
            checkpoint=None, logger=dict(type='LoggerHook', interval=5)),
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
    )


@pytest.mark.slow
def test_train_and_validate_fake_cifar10_lt(tmp_path):
    data_root = write_fake_cifar(
        str(tmp_path / 'data'), 10, per_class=20, test_per_class=5)
    runner = Runner.from_cfg(_config(data_root, str(tmp_path / 'work')))

    # The seam the difficulty hook uses: every training image reaches
    # head._get_loss once per epoch, identified by its sample_idx.
    head = runner.model.head
    original = head._get_loss
    seen = []

    def spy(cls_score, data_samples, **kwargs):
        assert cls_score.shape == (len(data_samples), 10)
        seen.extend(s.sample_idx for s in data_samples)
        return original(cls_score, data_samples, **kwargs)

    head._get_loss = spy
    runner.train()
    train_set = runner.train_dataloader.dataset
    assert sorted(seen) == list(range(len(train_set)))

    metrics = runner.val()
    for key in ('top1', 'many', 'medium', 'few'):
        value = metrics[f'accuracy/{key}']
        assert not math.isnan(value) and 0 <= value <= 100
