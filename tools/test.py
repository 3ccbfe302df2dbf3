"""Test a checkpoint with mmdiff (mmdet's tools/test.py).

For LVIS configs this prints bbox (and segm) AP with APr / APc / APf
through mmdet's LVISMetric.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmdiff  # noqa: F401  (registers mmdiff's modules, applies compat)
from mmdiff.datasets.data_files import DataFilesNotFoundError, check_data_files
from mmdiff.dist import prepare_cpu_launch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (and eval) a model with mmdiff')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    cfg.load_from = args.checkpoint
    # Testing never resumes training state (e.g. the difficulty state).
    cfg.resume = False
    try:
        check_data_files(cfg, splits=['test_dataloader', 'test_evaluator'])
    except DataFilesNotFoundError as err:
        # A missing download is not a bug: the message, no traceback.
        print(f'error: {err}', file=sys.stderr, end='')
        sys.exit(1)

    # CPU-only machines: torchrun processes talk through gloo (mmengine
    # 0.10.7's init_dist needs CUDA).
    try:
        prepare_cpu_launch(cfg)
    except RuntimeError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(1)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)

    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), \
            'The dump file must be a pkl file.'
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))

    runner.test()


if __name__ == '__main__':
    main()
