"""Per-iteration cost of DifficultyHook's probability capture.

One model, one optimizer and one fixed list of synthetic batches; training
steps (``model.train_step(data, optim_wrapper)``) alternate between the
hook's capture installed (its sink keeps every step's GT-RoI records,
compressed per step in topk storage) and removed, after a warm-up of both.
The blocks alternate in ABBA order and both modes of a block train on the
same batches; SGD runs with ``lr=0`` so that the weights, and with them
the cost of a batch, never change. Reported:

- ``median_ms_on`` / ``median_ms_off`` and ``ratio`` (the acceptance
  number): median step time of each mode, against the device's limit
  (1.02 on the CPU, 1.005 on CUDA);
- ``block_paired_ratio``: median over blocks of on / off (drift-robust);
- ``capture_ms_median``: wall time inside the capture per step (the
  probabilities, the sink and its compress), and ``capture_fraction`` of a
  step. On the CPU this is the whole added work, free of the noise of a
  shared machine; on CUDA it is host time (the capture makes no host
  synchronisation: ``tests/models/test_capture_host_syncs.py``);
- ``peak_gpu_mb_on`` / ``peak_gpu_mb_off`` (CUDA): the peak device memory
  of the training steps of each mode;
- ``epoch_end_ms``: the hook's epoch-end work (merge, difficulty update,
  new sampler weights) on the records the run collected. It runs once per
  epoch, not per iteration (LVIS-scale epoch ends:
  ``bench_difficulty_state.py``).

The hook runs unchanged: a stand-in runner hands it the model, a small
in-memory dataset whose objects match the batches, and a
``DifficultyClassAwareSampler`` over it.

Models:

- ``demo`` (default): the model of
  ``configs/demo/mask-rcnn_r18_synthetic-lvis_difficulty.py`` (ResNet-18,
  narrow FPN, 20 classes), 160x128 images;
- ``r50-lvis``: mmdet's Mask R-CNN R50-FPN
  (``mmdet::_base_/models/mask-rcnn_r50_fpn.py``, ``init_cfg=None``: no
  download) with 1,203 classes and topk storage, as on LVIS v1.

On the CPU the steps run on one thread unless ``--threads`` says
otherwise: with as many OpenMP threads as cores, any other process on the
machine stalls steps at random (10-30x on a shared 2-core machine), which
swamps the ratio.

Prints one JSON line. Usage (after ``pip install -e .``)::

    python benchmarks/bench_hook_overhead.py              # CPU, demo
    python benchmarks/bench_hook_overhead.py --model r50-lvis \\
        --image-size 1333 800 --batch 2                   # on a GPU
"""
import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mmdiff.hooks import DifficultyHook  # noqa: E402
from mmdiff.models import build_capture  # noqa: E402
from mmdiff.samplers import DifficultyClassAwareSampler  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / 'configs' / 'demo' / \
    'mask-rcnn_r18_synthetic-lvis_difficulty.py'
R50_CONFIG = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
LVIS_CLASSES = 1203
LIMITS = dict(cpu=1.02, cuda=1.005)
# Per device: (warm-up steps per mode, blocks per mode, steps per block).
# Short blocks: the load of a shared machine drifts within seconds, and it
# should weigh on both modes alike.
SCHEDULES = dict(cpu=(2, 50, 1), cuda=(10, 100, 2))


class SyntheticDetections:
    """The objects of the synthetic images, as the hook and sampler read them.

    Mirrors what they use of mmdet's ``LVISV1Dataset``: ``len``,
    ``metainfo['classes']``, ``get_cat_ids(idx)`` and
    ``get_data_info(idx)['instances']`` with ``bbox_label``.

    Args:
        labels (Sequence[np.ndarray]): The class labels of every image's
            objects.
        num_classes (int): Number of classes.
    """

    pipeline = None

    def __init__(self, labels: Sequence[np.ndarray], num_classes: int) -> None:
        self.labels = [np.asarray(x, dtype=np.int64) for x in labels]
        self.metainfo = dict(
            classes=tuple(f'class_{i}' for i in range(num_classes)))

    def __len__(self) -> int:
        return len(self.labels)

    def get_cat_ids(self, idx: int) -> List[int]:
        return self.labels[idx].tolist()

    def get_data_info(self, idx: int) -> Dict[str, Any]:
        return dict(instances=[
            dict(bbox_label=label, ignore_flag=0)
            for label in self.get_cat_ids(idx)
        ])


def build_model(name: str) -> Tuple[torch.nn.Module, int]:
    """The detector (in train mode) and its number of classes."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    if name == 'demo':
        cfg = Config.fromfile(str(DEMO_CONFIG)).model
    else:
        # mmengine resolves the package prefix of a _base_ only.
        cfg = Config.fromstring(f'_base_ = {R50_CONFIG!r}\n', '.py').model
        cfg.backbone.init_cfg = None
        cfg.roi_head.bbox_head.num_classes = LVIS_CLASSES
        cfg.roi_head.mask_head.num_classes = LVIS_CLASSES
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    return model, int(cfg.roi_head.bbox_head.num_classes)


def make_batches(num_batches: int, batch_size: int, size: Tuple[int, int],
                 objects: int, num_classes: int,
                 seed: int) -> Tuple[List[dict], List[np.ndarray]]:
    """Packed training batches, as mmdet's pipeline and collate give them.

    Images are noise, boxes random, each mask fills its box; labels follow
    a Zipf-like long tail. Image ``i`` of the whole list has
    ``sample_idx = i``.

    Returns:
        tuple: the batches and the labels of every image.
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(seed)
    width, height = size
    class_p = 1.0 / np.arange(1, num_classes + 1)
    class_p /= class_p.sum()
    batches, labels_per_image = [], []
    for b in range(num_batches):
        inputs, samples = [], []
        for i in range(batch_size):
            idx = b * batch_size + i
            xy = rng.uniform(0, 0.8, (objects, 2)) * (width, height)
            wh = rng.uniform(0.05, 0.2, (objects, 2)) * (width, height)
            boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
            masks = np.zeros((objects, height, width), dtype=np.uint8)
            for m, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
                m[y1:y2, x1:x2] = 1
            labels = rng.choice(num_classes, objects, p=class_p)
            labels_per_image.append(labels)
            sample = DetDataSample(
                metainfo=dict(
                    img_id=idx,
                    img_path=f'synthetic_{idx}.jpg',
                    ori_shape=(height, width),
                    img_shape=(height, width),
                    scale_factor=(1.0, 1.0),
                    flip=False,
                    flip_direction=None,
                    sample_idx=idx))
            sample.gt_instances = InstanceData(
                bboxes=HorizontalBoxes(torch.from_numpy(boxes)),
                labels=torch.from_numpy(labels),
                masks=BitmapMasks(masks, height, width))
            sample.ignored_instances = InstanceData(
                bboxes=HorizontalBoxes(torch.zeros(0, 4)),
                labels=torch.zeros(0, dtype=torch.long))
            inputs.append(
                torch.from_numpy(
                    rng.integers(0, 256, (3, height, width), dtype=np.uint8)))
            samples.append(sample)
        batches.append(dict(inputs=inputs, data_samples=samples))
    return batches, labels_per_image


def stand_in_runner(model: torch.nn.Module, dataset: SyntheticDetections,
                    work_dir: str) -> SimpleNamespace:
    """What DifficultyHook reads of mmengine's Runner, nothing more."""
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.runner import EpochBasedTrainLoop
    sampler = DifficultyClassAwareSampler(dataset, seed=0)
    return SimpleNamespace(
        # The hook refuses loops not by epoch; it reads nothing else of it.
        train_loop=EpochBasedTrainLoop.__new__(EpochBasedTrainLoop),
        model=model,
        train_dataloader=SimpleNamespace(sampler=sampler, dataset=dataset),
        logger=MMLogger.get_current_instance(),
        message_hub=MessageHub.get_instance('bench_hook_overhead'),
        visualizer=SimpleNamespace(add_scalars=lambda *args, **kwargs: None),
        work_dir=work_dir,
        iter=0,
        epoch=0)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """The card's name, or the CPU's and its number of threads."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return (f'cpu ({platform.processor() or platform.machine()}, '
            f'{torch.get_num_threads()} threads)')


def time_steps(model: torch.nn.Module, optim_wrapper: Any, batches: List[dict],
               start: int, steps: int, device: torch.device) -> List[float]:
    """Seconds of each of ``steps`` training steps, batches cycled."""
    times = []
    for step in range(start, start + steps):
        data = batches[step % len(batches)]
        synchronize(device)
        t0 = time.perf_counter()
        model.train_step(data, optim_wrapper)
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """The model, its batches and the device: the options this benchmark
    shares with bench_eval_pass.py."""
    parser.add_argument(
        '--model', choices=['demo', 'r50-lvis'], default='demo')
    parser.add_argument(
        '--image-size',
        type=int,
        nargs=2,
        metavar=('W', 'H'),
        default=None,
        help='image width and height (default: 160 128)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument(
        '--objects',
        type=int,
        default=12,
        help='GT objects per image (LVIS v1 train: about 12.7)')
    parser.add_argument(
        '--device',
        default=None,
        help='cpu or cuda (default: cuda when available)')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help="CPU threads; 0: torch's default (default: 1 on the CPU, "
        "torch's default with CUDA)")
    parser.add_argument('--seed', type=int, default=0)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_model_args(parser)
    parser.add_argument(
        '--storage',
        choices=['auto', 'dense', 'dense_fp16', 'topk'],
        default=None,
        help="the hook's storage (default: auto for demo, topk for "
        'r50-lvis)')
    parser.add_argument('--topk', type=int, default=8)
    parser.add_argument(
        '--num-batches', type=int, default=4, help='distinct batches, cycled')
    parser.add_argument(
        '--warmup', type=int, default=None, help='warm-up steps per mode')
    parser.add_argument(
        '--blocks', type=int, default=None, help='timed blocks per mode')
    parser.add_argument(
        '--block-steps', type=int, default=None, help='steps per block')
    return parser.parse_args(argv)


def setup_device(args: argparse.Namespace) -> torch.device:
    """The device of ``add_model_args``' options, and torch's CPU threads
    for it (one on the CPU unless --threads says otherwise: see the module
    docstring)."""
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    threads = args.threads
    if threads is None:
        threads = 1 if device.type == 'cpu' else 0
    if threads:
        torch.set_num_threads(threads)
    return device


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    device = setup_device(args)
    default = SCHEDULES[device.type]
    warmup = default[0] if args.warmup is None else args.warmup
    blocks = default[1] if args.blocks is None else args.blocks
    block_steps = default[2] if args.block_steps is None else args.block_steps
    size = tuple(args.image_size or (160, 128))
    storage = args.storage or ('topk' if args.model == 'r50-lvis' else 'auto')
    torch.manual_seed(args.seed)

    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper

    # The current logger from now on: stdout keeps only the JSON line.
    MMLogger.get_instance('bench_hook_overhead', log_level='WARNING')
    model, num_classes = build_model(args.model)
    model.to(device)
    # A full SGD step with lr = 0: the weights never change, so a batch
    # costs the same in every block and mode; only the capture differs.
    optim_wrapper = build_optim_wrapper(
        model,
        dict(
            optimizer=dict(
                type='SGD', lr=0.0, momentum=0.9, weight_decay=1e-4),
            clip_grad=dict(max_norm=10, norm_type=2)))
    batches, labels = make_batches(args.num_batches, args.batch, size,
                                   args.objects, num_classes, args.seed)
    dataset = SyntheticDetections(labels, num_classes)

    work_dir = tempfile.mkdtemp(prefix='bench_hook_overhead_')
    runner = stand_in_runner(model, dataset, work_dir)
    hook = DifficultyHook(storage=storage, topk=args.topk)
    hook.before_train(runner)
    capture_s: List[float] = []

    def set_capture(on: bool) -> None:
        if hook._capture is not None:
            hook._capture.detach()
            hook._capture = None
        if not on:
            return
        # As before_train installs it, plus a timer around the added work.
        capture = build_capture(model, hook.record_batch, stage=hook.stage)
        inner = capture._capture

        def timed_capture(*args: Any, **kwargs: Any) -> None:
            t0 = time.perf_counter()
            inner(*args, **kwargs)
            capture_s.append(time.perf_counter() - t0)

        capture._capture = timed_capture
        hook._capture = capture

    for on in (True, False):
        set_capture(on)
        time_steps(model, optim_wrapper, batches, 0, warmup, device)
    # Warm-up records are not part of the epoch.
    hook.state.records.take()
    capture_s.clear()
    times: Dict[bool, List[float]] = {True: [], False: []}
    block_ms: Dict[bool, List[float]] = {True: [], False: []}
    # Peak device memory of the blocks of each mode (CUDA only).
    peak_mb: Dict[bool, float] = {True: 0.0, False: 0.0}
    for block in range(blocks):
        # Both modes of a block train on the same batches; which goes
        # first alternates, so drift favours neither.
        for on in ((True, False) if block % 2 == 0 else (False, True)):
            set_capture(on)
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            block_times = time_steps(model, optim_wrapper, batches,
                                     block * block_steps, block_steps, device)
            if device.type == 'cuda':
                peak_mb[on] = max(
                    peak_mb[on],
                    torch.cuda.max_memory_allocated(device) / 2**20)
            times[on] += block_times
            block_ms[on].append(statistics.median(block_times) * 1e3)
    set_capture(False)

    records = hook.state.records.peek()['num']
    synchronize(device)
    t0 = time.perf_counter()
    hook.after_train_epoch(runner)
    synchronize(device)
    epoch_end_s = time.perf_counter() - t0

    on_ms = statistics.median(times[True]) * 1e3
    off_ms = statistics.median(times[False]) * 1e3
    ratio = on_ms / off_ms
    paired = statistics.median(
        on / off for on, off in zip(block_ms[True], block_ms[False]))
    capture_ms = statistics.median(capture_s) * 1e3
    cuda = device.type == 'cuda'
    limit = LIMITS['cuda' if cuda else 'cpu']
    result = dict(
        benchmark='bench_hook_overhead',
        device=device_name(device),
        model=args.model,
        num_classes=num_classes,
        image_size=list(size),
        batch=args.batch,
        objects_per_image=args.objects,
        storage=hook.state.storage,
        topk=hook.state.topk,
        warmup_steps_per_mode=warmup,
        blocks_per_mode=blocks,
        steps_per_block=block_steps,
        steps_per_mode=blocks * block_steps,
        median_ms_on=round(on_ms, 3),
        median_ms_off=round(off_ms, 3),
        mean_ms_on=round(statistics.mean(times[True]) * 1e3, 3),
        mean_ms_off=round(statistics.mean(times[False]) * 1e3, 3),
        block_median_ms_on=[round(t) for t in block_ms[True]],
        block_median_ms_off=[round(t) for t in block_ms[False]],
        ratio=round(ratio, 4),
        limit=limit,
        block_paired_ratio=round(paired, 4),
        capture_ms_median=round(capture_ms, 3),
        capture_fraction=round(capture_ms / off_ms, 5),
        gt_predictions_captured=records,
        epoch_end_ms=round(epoch_end_s * 1e3, 2),
        epoch_end_num_images=len(dataset),
        torch=torch.__version__,
        peak_gpu_mb_on=round(peak_mb[True]) if cuda else None,
        peak_gpu_mb_off=round(peak_mb[False]) if cuda else None)
    result['pass'] = ratio <= limit
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
