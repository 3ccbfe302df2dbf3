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
  ``fraction_every_interval`` the same spread over ``--interval`` (4)
  epochs. Goals: <= 0.15 and <= 0.04 (every 4th epoch).

The model's work is timed on batches already in memory. The pass also
decodes every image through its pipeline (the LVIS config's test
pipeline as ``eval_pass_pipeline`` makes it: boxes and labels, no masks)
in ``--workers`` loader processes (the pass's default: 2). So this script
also times that pipeline on ``--load-images`` JPEGs of COCO size
(``--source-size``, 640x480) on one thread: ``load_ms_per_image``. A pass
can go no faster than its loader, so ``eval_ms_per_image_loaded`` =
max(model, load / workers), and the fractions use it
(``fraction_every_epoch_model_only`` leaves loading out). A training
epoch loads its images too, but behind a slower step.

Prints one JSON line. Usage (after ``pip install -e .``)::

    python benchmarks/bench_eval_pass.py                   # CPU, demo model
    python benchmarks/bench_eval_pass.py --model r50-lvis \\
        --image-size 1333 800 --batch 2                     # on a GPU
"""
import argparse
import json
import os.path as osp
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
from mmdiff.hooks.eval_pass import eval_pass_pipeline  # noqa: E402
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
        '--workers',
        type=int,
        default=2,
        help="the eval pass's loader processes (eval_pass['num_workers'])")
    parser.add_argument(
        '--load-images',
        type=int,
        default=16,
        help='JPEGs timed through the pipeline (0: loading not timed)')
    parser.add_argument(
        '--source-size',
        type=int,
        nargs=2,
        metavar=('W', 'H'),
        default=(640, 480),
        help='size of those JPEGs (COCO / LVIS images: about 640x480)')
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


def time_loading(num_images: int, size: Sequence[int], objects: int,
                 work_dir: str) -> float:
    """Seconds per image of the eval pass's pipeline on one core.

    The LVIS config's test pipeline made into the pass's pipeline
    (:func:`eval_pass_pipeline`: boxes and labels loaded before the
    resize, no masks) runs on ``num_images`` JPEGs of ``size``. They are
    smooth random images with some noise, like photos in file size rather
    than white noise, each with ``objects`` box and polygon annotations.
    """
    import cv2
    import numpy as np
    from mmdet.registry import TRANSFORMS
    from mmengine.config import Config
    from mmengine.dataset import Compose
    cfg = Config.fromfile(str(common.REPO / 'configs' / 'lvis_difficulty.py'))
    pipeline = Compose([
        TRANSFORMS.build(t)
        for t in eval_pass_pipeline(cfg.test_dataloader.dataset.pipeline)
    ])
    rng = np.random.default_rng(0)
    width, height = size
    infos = []
    for i in range(num_images + 1):  # the first one warms up
        low = rng.uniform(0, 255, (height // 16, width // 16, 3))
        img = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255)
        path = osp.join(work_dir, f'load_{i}.jpg')
        cv2.imwrite(path, img.astype(np.uint8))
        instances = []
        for _ in range(objects):
            x, y = rng.uniform(0, 0.8) * width, rng.uniform(0, 0.8) * height
            w, h = rng.uniform(0.05, 0.2) * width, rng.uniform(0.05,
                                                               0.2) * height
            instances.append(
                dict(
                    bbox=[x, y, x + w, y + h],
                    bbox_label=int(rng.integers(0, 1203)),
                    ignore_flag=0,
                    mask=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
        infos.append(
            dict(
                img_path=path,
                img_id=i,
                sample_idx=i,
                height=height,
                width=width,
                instances=instances))
    # As in a loader worker: one thread (mmengine sets OpenCV's threads to
    # 0 in workers). The JPEGs were just written, so they come from the
    # page cache: disk reads are not in this figure.
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    try:
        pipeline(dict(infos[0]))
        t0 = time.perf_counter()
        for info in infos[1:]:
            pipeline(dict(info))
        return (time.perf_counter() - t0) / num_images
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    device = common.setup_device(args)
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
    hook = DifficultyHook(storage='topk')  # as at LVIS scale
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
    load_ms = None
    if args.load_images:
        load_ms = time_loading(args.load_images, args.source_size,
                               args.objects, runner.work_dir) * 1e3
    # The pass goes at the pace of the slower of the model and the loader.
    loaded_ms = max(eval_ms, (load_ms or 0.0) / max(1, args.workers))
    scale = args.images / images_per_epoch / train_ms
    every = loaded_ms * scale
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
        load_ms_per_image=None if load_ms is None else round(load_ms, 3),
        load_source_size=list(args.source_size),
        workers=args.workers,
        eval_ms_per_image_loaded=round(loaded_ms, 3),
        loader_bound=loaded_ms > eval_ms,
        fraction_every_epoch=round(every, 4),
        interval=args.interval,
        fraction_every_interval=round(every / args.interval, 4),
        fraction_every_epoch_model_only=round(eval_ms * scale, 4),
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
