"""Plot the difficulty dumps of ``DifficultyHook``.

Train with ``DifficultyHook(dump=True)``: the hook writes
``<work_dir>/difficulty/index.npz`` (objects, their boxes, image files,
classes) and ``epoch_<e>.npz`` after every epoch. Then::

    python tools/analysis/plot_difficulty.py WORK_DIR [--rfs-thr 0.001]

writes to ``WORK_DIR/difficulty/plots`` (or ``--out-dir``):
``difficulty_histograms.png`` (D per LVIS frequency group),
``sampling_mass.png`` (mass per class vs class frequency and vs repeat-
factor sampling), ``difficulty_over_epochs.png`` (quantile bands and the
hardest objects), ``hardest_images.png`` (the hardest images, boxes
labelled with class and D; images read from the paths in the dump) and
``summary.json``.
"""
import argparse
import json
import os.path as osp
from typing import Any, Dict, Optional, Sequence

from mmdiff.analysis.report import plot_difficulty_dumps


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Plot the difficulty dumps of DifficultyHook')
    parser.add_argument(
        'work_dir', help='work dir of the run (dumps in WORK_DIR/difficulty)')
    parser.add_argument(
        '--dump-dir',
        help='directory of the dumps (default: WORK_DIR/difficulty)')
    parser.add_argument(
        '--out-dir',
        help='output directory (default: WORK_DIR/difficulty/plots)')
    parser.add_argument(
        '--epoch',
        type=int,
        help='epoch to show (default: the last dumped one)')
    parser.add_argument(
        '--rfs-thr',
        type=float,
        default=0.001,
        help='threshold t of the repeat-factor sampling reference '
        '(LVIS: 0.001; the synthetic demo uses 0.1)')
    parser.add_argument(
        '--num-trajectories',
        type=int,
        default=5,
        help='hardest objects whose D is drawn over epochs')
    parser.add_argument(
        '--topk-images',
        type=int,
        default=12,
        help='number of images in the gallery')
    parser.add_argument('--dpi', type=int, default=100, help='PNG dpi')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    dump_dir = args.dump_dir or osp.join(args.work_dir, 'difficulty')
    out_dir = args.out_dir or osp.join(dump_dir, 'plots')
    summary = plot_difficulty_dumps(
        dump_dir,
        out_dir,
        epoch=args.epoch,
        rfs_thr=args.rfs_thr,
        num_trajectories=args.num_trajectories,
        topk_images=args.topk_images,
        dpi=args.dpi)
    for name, path in summary['plots'].items():
        print(f'{name}: {path}')
    if 'message' in summary['gallery']:
        print(summary['gallery']['message'])
    print(f'summary: {summary["summary_file"]}')
    print('D quantiles at epoch {}: {}'.format(
        summary['epoch'],
        json.dumps({
            g: {
                k: round(v, 4)
                for k, v in q.items() if v == v
            }
            for g, q in summary['difficulty_quantiles'].items()
        })))
    return summary


if __name__ == '__main__':
    main()
