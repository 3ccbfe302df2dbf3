"""What an epoch of a config will draw, before training (no model, no GPU).

Builds the config's training set and walks it once, as the sampler would,
then shows side by side, for the config's sampler and for uniform, RFS
(mmengine's ``ClassBalancedDataset``, which lengthens the epoch, and drawn
in expectation), mmdet's class-aware sampling and IRFS: the epoch length,
the expected images drawn per class against the class's training images,
the share of draws per LVIS group r / c / f, the effective sample size,
the most draws of one image and the images not drawn. With
``--difficulty`` (a ``DifficultyHook`` dump, ``epoch_<e>.npz``) also the
config's sampler under that epoch's difficulty. Usage::

    python tools/analysis/preview_sampling.py CONFIG \\
        [--difficulty WORK_DIR/difficulty/epoch_3.npz] [--out-dir DIR]

writes ``preview_sampling.png`` and ``preview_sampling.json`` to
``--out-dir`` (default: ``work_dirs/preview/<config name>``).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np
from mmengine.config import Config, DictAction

import mmdiff  # noqa: F401  (registers mmdiff's modules)
from mmdiff.analysis.dump import load_dump
from mmdiff.analysis.preview import preview_schemes
from mmdiff.analysis.preview_figure import PREVIEW_LABELS, draw_preview
from mmdiff.analysis.report import to_json
from mmdiff.core.frequency import (LVIS_FREQUENCY_THRESHOLDS,
                                   frequency_of_counts)
from mmdiff.datasets import UnsupportedDatasetError, index_dataset
from mmdiff.datasets.data_files import DataFilesNotFoundError, check_data_files

#: The options of DifficultyClassAwareSampler the weights depend on.
WEIGHT_OPTIONS = ('scheme', 'thr', 'beta', 'temperature', 'floor', 'clip')
#: The preview row that is exactly what another sampler draws.
SAMPLER_ROWS = dict(
    DefaultSampler='each_once',
    InfiniteSampler='each_once',
    ClassAwareSampler='class_aware')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Preview the sampling of a config (no model)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--difficulty', help='a DifficultyHook dump (epoch_<e>.npz)')
    parser.add_argument('--out-dir', help='where the figure and JSON go')
    parser.add_argument(
        '--thr',
        type=float,
        help='repeat-factor threshold of the side-by-side schemes '
        "(default: the config sampler's thr, else 0.001)")
    parser.add_argument('--dpi', type=int, default=100, help='PNG dpi')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as in tools/train.py')
    return parser.parse_args(argv)


def _sampler_defaults() -> dict:
    import inspect

    from mmdiff.samplers import DifficultyClassAwareSampler
    params = inspect.signature(DifficultyClassAwareSampler).parameters
    return {name: params[name].default for name in WEIGHT_OPTIONS}


def _sampler_of(cfg: Config) -> Dict[str, Any]:
    """What the config samples: ``configured`` (DifficultyClassAwareSampler
    options or None), ``row`` (the preview row that is exactly the config's
    sampler otherwise, or None), ``thr`` (a threshold the config sets) and
    ``dataset`` (the dataset config to build)."""
    dataset_cfg = cfg.train_dataloader.dataset
    sampler = cfg.train_dataloader.get('sampler', {})
    kind = sampler.get('type')
    out: Dict[str, Any] = dict(
        configured=None, row=SAMPLER_ROWS.get(kind), thr=None)
    if dataset_cfg.get('type') == 'ClassBalancedDataset':
        if kind == 'DifficultyClassAwareSampler':
            raise UnsupportedDatasetError(
                'the training set is wrapped in ClassBalancedDataset, which '
                "DifficultyClassAwareSampler refuses: its scheme "
                "'repeat_factor' replaces the wrapper. Drop the wrapper "
                '(train_dataloader.dataset = its inner dataset) and set the '
                "sampler's thr to the wrapper's oversample_thr")
        # mmdet's RFS configs: the wrapped set, repeated as the wrapper does
        out.update(row='rfs_repeat', thr=float(dataset_cfg.oversample_thr))
        dataset_cfg = dataset_cfg.dataset
    if kind == 'DifficultyClassAwareSampler':
        defaults = _sampler_defaults()
        out['configured'] = {
            key: sampler.get(key, defaults[key])
            for key in WEIGHT_OPTIONS
        }
        out['images_per_epoch'] = sampler.get('images_per_epoch',
                                              sampler.get('num_samples'))
        out['thr'] = out['configured']['thr']
    out['dataset'] = dataset_cfg
    return out


def _class_frequency(dataset: Any, index: Any, cfg: Config) -> list:
    """LVIS's r / c / f per class, from the categories or from counts."""
    categories = getattr(dataset, 'metainfo', {}).get('categories')
    if categories and all('frequency' in c for c in categories):
        return [c['frequency'] for c in categories]
    thresholds = LVIS_FREQUENCY_THRESHOLDS
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') == 'DifficultyHook':
            thresholds = tuple(
                hook.get('frequency_thresholds', LVIS_FREQUENCY_THRESHOLDS))
    groups = frequency_of_counts(index.images_per_class(), thresholds)
    return ['rcf'[g] for g in groups]


def _difficulty(dump: Dict[str, Any], index: Any) -> np.ndarray:
    """The dump's per-image difficulty, per sampler index, once the dump is
    known to be of this training set."""
    path, num = dump['path'], len(dump['img_path'])
    if num != index.num_images:
        raise ValueError(
            f'{path} holds {num} images but the training set of this '
            f'config has {index.num_images}; pass a dump of a run on this '
            'config (WORK_DIR/difficulty/epoch_<e>.npz)')
    known = (dump['img_id'] >= 0) & (index.img_ids >= 0)
    if np.any(dump['img_id'][known] != index.img_ids[known]):
        first = int(
            np.flatnonzero(known & (dump['img_id'] != index.img_ids))[0])
        raise ValueError(
            f'{path} is of another training set: its image {first} has id '
            f"{int(dump['img_id'][first])}, this config's "
            f'{int(index.img_ids[first])}; pass a dump of a run on this '
            'config')
    return index.per_index(dump['image_difficulty'])


def _print_table(preview: Dict[str, Dict[str, Any]]) -> None:
    print(f"{'scheme':34s} {'epoch':>7s} {'r %':>6s} {'c %':>6s} "
          f"{'f %':>6s} {'ESS %':>6s} {'max':>6s} {'unseen %':>8s}")
    for name, row in preview.items():
        mass = row['group_mass']
        print(f'{PREVIEW_LABELS.get(name, name):34s} '
              f"{row['epoch_length']:7d} {mass['r'] * 100:6.1f} "
              f"{mass['c'] * 100:6.1f} {mass['f'] * 100:6.1f} "
              f"{row['ess_fraction'] * 100:6.1f} {row['max_draws']:6.1f} "
              f"{row['fraction_not_drawn'] * 100:8.1f}")


def _prepare(args: argparse.Namespace) -> tuple:
    """Config, what it samples, and the dump: checked before the walk."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    try:
        check_data_files(cfg, ['train_dataloader'])
    except DataFilesNotFoundError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    sampling = _sampler_of(cfg)
    dump = None
    if args.difficulty:
        if sampling['configured'] is None:
            raise ValueError(
                '--difficulty needs a config whose sampler is '
                'DifficultyClassAwareSampler (the weights come from its '
                'scheme)')
        dump = load_dump(args.difficulty)
    return cfg, sampling, dump


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    cfg, sampling, dump = _prepare(args)
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    thr = next(t for t in (args.thr, sampling['thr'], 0.001) if t is not None)
    tic = time.perf_counter()
    dataset = DATASETS.build(sampling['dataset'])
    build_s = time.perf_counter() - tic
    print(f'walking {len(dataset)} images ...')
    tic = time.perf_counter()
    index = index_dataset(dataset, progress=True)
    print()
    difficulty = None if dump is None else _difficulty(dump, index)
    preview = preview_schemes(
        index,
        _class_frequency(dataset, index, cfg),
        thr,
        images_per_epoch=sampling.get('images_per_epoch'),
        configured=sampling['configured'],
        difficulty=difficulty,
        config_row=sampling['row'])
    if 'config' not in preview:
        print("the config's sampler "
              f"({cfg.train_dataloader.get('sampler', {}).get('type')}) is "
              'not previewed; the other schemes are')
    seconds = time.perf_counter() - tic
    _print_table(preview)
    out_dir = args.out_dir or osp.join(
        'work_dirs', 'preview',
        osp.splitext(osp.basename(args.config))[0])
    os.makedirs(out_dir, exist_ok=True)
    figure = draw_preview(preview, index.images_per_class(),
                          osp.join(out_dir, 'preview_sampling.png'), args.dpi)
    summary = dict(
        config=args.config,
        thr=thr,
        configured=sampling['configured'],
        difficulty=args.difficulty,
        dataset_build_seconds=build_s,
        seconds=seconds,
        schemes=preview,
        figure=figure)
    with open(osp.join(out_dir, 'preview_sampling.json'), 'w') as f:
        json.dump(to_json(summary), f)
    print(f'figure: {figure}\nsummary: '
          f"{osp.join(out_dir, 'preview_sampling.json')} (dataset built in "
          f'{build_s:.1f} s, walk and preview {seconds:.1f} s)')
    return summary


if __name__ == '__main__':
    main()
