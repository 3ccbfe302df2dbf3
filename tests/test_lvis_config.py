"""The real LVIS config, run through the tools on an LVIS-v1-shaped set.

``python tools/train.py configs/lvis_difficulty.py`` as a user runs it:
mmdet's Mask R-CNN R50-FPN with the 1,204-way bbox head (1,203 LVIS
categories + background), the difficulty sampler and hook. What the
command line overrides, and nothing else: the data paths, the image scale,
the ImageNet initialisation (no download here), top-k storage (forced, as
at LVIS scale) and the run's length (one epoch of 4 images, no workers).
Then ``--resume`` trains a second epoch and ``tools/test.py`` evaluates
with the LVIS API (AP, APr / APc / APf).

It takes about 2.5 minutes on 2 cores (three R50-FPN start-ups), too long
for the default suite: it runs when ``MMDIFF_LVIS_CONFIG_TEST=1`` (the
README's command; ``.ci/run`` runs it after the suite).
"""
import os
import os.path as osp
from typing import Any, List

import pytest

from .lvis_v1_shaped import make_lvis_v1_shaped
from .test_tools import TEST, TRAIN, _run

CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
    'lvis_difficulty.py')

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get('MMDIFF_LVIS_CONFIG_TEST') != '1',
        reason='2.5 min: set MMDIFF_LVIS_CONFIG_TEST=1 to run it'),
]


def _options(root: str, max_epochs: int) -> List[str]:
    ann = root + 'annotations/lvis_v1_val.json'
    options = {
        'train_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root,
        'val_evaluator.ann_file': ann,
        'test_evaluator.ann_file': ann,
        'train_dataloader.dataset.pipeline.2.scales': '[(128,96)]',
        'val_dataloader.dataset.pipeline.1.scale': '(128,96)',
        'test_dataloader.dataset.pipeline.1.scale': '(128,96)',
        'model.backbone.init_cfg': None,
        'custom_hooks.0.storage': 'topk',
        'train_dataloader.sampler.images_per_epoch': 4,
        'train_cfg.max_epochs': max_epochs,
        'train_cfg.val_interval': 100,
    }
    for split in ('train', 'val', 'test'):
        options[f'{split}_dataloader.num_workers'] = 0
        options[f'{split}_dataloader.persistent_workers'] = False
    return ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]


def test_lvis_config_trains_resumes_and_tests(tmp_path: Any) -> None:
    root = make_lvis_v1_shaped(str(tmp_path / 'lvis') + '/')
    work_dir = str(tmp_path / 'work')
    first = _run([TRAIN, CONFIG, '--work-dir', work_dir, *_options(root, 1)],
                 str(tmp_path))
    log = first.stdout + first.stderr
    assert first.returncode == 0, log[-3000:]
    # 1,203 categories + background, stored top-k as at LVIS scale
    assert '1204 classes, topk state' in log
    assert 'DifficultyHook epoch 1' in log

    second = _run([
        TRAIN, CONFIG, '--work-dir', work_dir, '--resume', *_options(root, 2)
    ], str(tmp_path))
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    assert 'DifficultyHook: resumed the difficulty state of epoch 1' in log
    assert 'DifficultyHook epoch 2' in log

    test = _run([
        TEST, CONFIG,
        osp.join(work_dir, 'epoch_2.pth'), '--work-dir', work_dir,
        *_options(root, 2)
    ], str(tmp_path))
    log = test.stdout + test.stderr
    assert test.returncode == 0, log[-3000:]
    for key in ('lvis/bbox_AP', 'lvis/bbox_APr', 'lvis/bbox_APc',
                'lvis/bbox_APf', 'lvis/segm_AP'):
        assert key in log, key
