"""What DifficultyHook's eval pass costs, as a fraction of a training epoch.

``DifficultyHook(mode='eval_pass')`` runs, every ``eval_pass['interval']``
epochs, one forward of the backbone and the bbox head over each training
image once, with the GT boxes as RoIs (``RoIHeadCapture.predict_gt`` through
``mmdiff.hooks.eval_pass.run_eval_pass``, the code the hook runs). A
training epoch is ``images_per_epoch`` training steps' worth of images (the
sampler's default: the number of training images).

This script times both on one set of synthetic batches (LVIS-sized images
and objects: ``bench_hook_overhead.make_batches``), side by side in one run:

- ``train_ms_per_image``: median training step (``model.train_step``;
  in eval_pass mode training runs without the capture) divided by the
  batch size;
- ``eval_ms_per_image``: median wall time of ``run_eval_pass`` over the
  batches, per image;
- ``fraction_every_epoch``: the eval pass over ``--images`` training
  images against an epoch of ``--images-per-epoch`` (defaults: LVIS v1
  train, 100,170 images, the sampler's default epoch), and
  ``fraction_every_4th`` the same spread over four epochs. Goals: <= 0.15
  and <= 0.04.

Data loading is left out of both: the eval pass decodes each image once
through the test pipeline, as an epoch does through the train pipeline.

Prints one JSON line. Usage (after ``pip install -e .``)::

    python benchmarks/bench_eval_pass.py                   # CPU, demo model
    python benchmarks/bench_eval_pass.py --model r50-lvis \\
        --image-size 1333 800 --batch 2                     # on a GPU
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_hook_overhead as common  # noqa: E402

from mmdiff.hooks import DifficultyHook  # noqa: E402
from mmdiff.hooks.eval_pass import run_eval_pass  # noqa: E402
from mmdiff.models import build_capture  # noqa: E402

#: LVIS v1 train images (mmdet's LVISV1Dataset, filter_empty_gt=True).
LVIS_TRAIN_IMAGES = 100_170
GOALS = dict(fraction_every_epoch=0.15, fraction_every_4th=0.04)
# Per device: (warm-up steps, timed training steps, timed eval passes).
SCHEDULES = dict(cpu=(2, 6, 2), cuda=(10, 60, 5))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    common.add_model_args(parser)
    parser.add_argument(
        '--num-batches',
        type=int,
        default=None,
        help='distinct batches: the simulated subset (default: 4 on the '
        'CPU, 16 on CUDA)')
    parser.add_argument(
        '--images',
        type=int,
        default=LVIS_TRAIN_IMAGES,
        help='training images the eval pass visits (default: LVIS v1)')
    parser.add_argument(
        '--images-per-epoch',
        type=int,
        default=None,
        help="images of one training epoch (default: --images, the "
        "sampler's default)")
    parser.add_argument(
        '--interval',
        type=int,
        default=4,
        help='the sparser eval-pass interval reported (default: 4)')
    parser.add_argument(
        '--warmup', type=int, default=None, help='warm-up training steps')
    parser.add_argument(
        '--train-steps', type=int, default=None, help='timed training steps')
    parser.add_argument(
        '--eval-passes',
        type=int,
        default=None,
        help='timed eval passes over the batches')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    threads = args.threads
    if threads is None:
        threads = 1 if device.type == 'cpu' else 0
    if threads:
        torch.set_num_threads(threads)
    schedule = SCHEDULES[device.type]
    warmup = schedule[0] if args.warmup is None else args.warmup
    train_steps = schedule[1] if args.train_steps is None else \
        args.train_steps
    passes = schedule[2] if args.eval_passes is None else args.eval_passes
    num_batches = args.num_batches or (16 if device.type == 'cuda' else 4)
    size = tuple(args.image_size or (160, 128))
    images_per_epoch = args.images_per_epoch or args.images
    torch.manual_seed(args.seed)

    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    MMLogger.get_instance('bench_eval_pass', log_level='WARNING')
    model, num_classes = common.build_model(args.model)
    model.to(device)
    # lr = 0: every step costs the same (see bench_hook_overhead).
    optim_wrapper = build_optim_wrapper(
        model,
        dict(
            optimizer=dict(
                type='SGD', lr=0.0, momentum=0.9, weight_decay=1e-4),
            clip_grad=dict(max_norm=10, norm_type=2)))
    batches, labels = common.make_batches(num_batches, args.batch, size,
                                          args.objects, num_classes, args.seed)
    dataset = common.SyntheticDetections(labels, num_classes)
    runner = common.stand_in_runner(
        model, dataset, tempfile.mkdtemp(prefix='bench_eval_pass_'))
    # The hook's state and sink; in eval_pass mode training runs without
    # the capture, and the pass feeds a capture that is not attached.
    hook = DifficultyHook()
    hook.before_train(runner)
    hook._capture.detach()
    capture = build_capture(
        model, hook.record_batch, stage=hook.stage, attach=False)

    common.time_steps(model, optim_wrapper, batches, 0, warmup, device)
    run_eval_pass(runner, capture, batches)  # warm-up
    train_s: List[float] = []
    eval_s: List[float] = []
    # Alternate: a pass, then as many training steps as the pass has
    # batches, so the load of the machine weighs on both alike.
    per_round = max(1, train_steps // max(1, passes))
    for i in range(max(passes, 1)):
        train_s += common.time_steps(model, optim_wrapper, batches,
                                     i * per_round, per_round, device)
        common.synchronize(device)
        t0 = time.perf_counter()
        run_eval_pass(runner, capture, batches)
        common.synchronize(device)
        eval_s.append((time.perf_counter() - t0) / len(batches))
    records = hook.state.records.peek()['num']

    train_ms = statistics.median(train_s) * 1e3 / args.batch
    eval_ms = statistics.median(eval_s) * 1e3 / args.batch
    every = (args.images * eval_ms) / (images_per_epoch * train_ms)
    result = dict(
        benchmark='bench_eval_pass',
        device=common.device_name(device),
        model=args.model,
        num_classes=num_classes,
        image_size=list(size),
        batch=args.batch,
        objects_per_image=args.objects,
        simulated_images=num_batches * args.batch,
        images=args.images,
        images_per_epoch=images_per_epoch,
        train_steps=len(train_s),
        eval_passes=len(eval_s),
        train_ms_per_image=round(train_ms, 3),
        eval_ms_per_image=round(eval_ms, 3),
        eval_over_train_per_image=round(eval_ms / train_ms, 4),
        fraction_every_epoch=round(every, 4),
        interval=args.interval,
        fraction_every_interval=round(every / args.interval, 4),
        goals=dict(
            fraction_every_epoch=GOALS['fraction_every_epoch'],
            fraction_every_interval=GOALS['fraction_every_4th']
            if args.interval == 4 else None),
        gt_predictions_captured=records,
        torch=torch.__version__,
        peak_gpu_mb=round(torch.cuda.max_memory_allocated(device) /
                          2**20) if device.type == 'cuda' else None)
    result['pass'] = dict(
        fraction_every_epoch=every <= GOALS['fraction_every_epoch'],
        fraction_every_interval=every / args.interval
        <= GOALS['fraction_every_4th'] if args.interval == 4 else None)
    # After the eval pass's progress bar, on a line of its own.
    print('\n' + json.dumps(result))
    return result


if __name__ == '__main__':
    main()
