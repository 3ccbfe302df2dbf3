"""Benchmark of :class:`mmdiff.core.DifficultyState` at LVIS scale.

docs/method.md, "Storage at LVIS scale": at LVIS v1 scale (100,170
training images, 1,270,141 objects, 1,203 classes + background) the state
keeps per object the true
class, the top-k other classes and the remaining mass. This script measures
what that costs and how far it is from the exact dense computation
(Yu et al., CVPR 2022, PSI-based difficulty):

- ``state_mb``: bytes held by the state, epoch buffer included;
- ``end_epoch_cpu_s``: median wall time of ``end_epoch`` over the epochs
  that have a stored prediction, after ``observe()``-ing every instance in
  chunks (``end_epoch_cpu_partial_s``: an epoch where 63 % of the instances
  were seen, as with re-sampling with replacement); the same on CUDA when
  available;
- ``rel_err_median``: median over instances and epochs of
  ``|D_topk - D_dense| / D_dense`` on a sample of instances observed by a
  dense and a topk state alike, on the peaked preset;
- ``tradeoff``: for each preset, each k and dense float16
  (``'dense_fp16'``), the state's size at LVIS scale against the error
  after the last epoch, measured against float32 dense: median and largest
  relative error of D, Spearman rank correlation of D with the dense D,
  and the total-variation distance between the paper's sampling weights
  ``w ∝ D`` of the two;
- ``on_device``: with ``--device`` (CUDA when available), per storage of
  ``--device-storages`` at full scale, the state's size, the median
  ``end_epoch`` time and the peak device memory.

Presets (synthetic softmax outputs, generated chunk by chunk, never as a
dense N x K):

- ``peaked``: per instance a margin of 8-12 logits and a per-epoch trend of
  the true logit (some instances are learned, some forgotten), three
  confusable classes, a background logit, an instance-specific tail (fixed
  over epochs) and a per-epoch jitter on every class;
- ``diffuse``: early-training predictions: a true-class margin of 0-3
  logits that grows (or shrinks) each epoch, three confusers, a background
  logit, and fresh noise on every class every epoch (``--tail-churn``
  logits), so most of the mass sits, and moves, in the unstored tail.

Prints exactly one JSON line. ``--quick`` runs a small smoke test.
"""
import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mmdiff.core import DifficultyState, image_difficulty  # noqa: E402
from mmdiff.core.aggregate import instance_to_image  # noqa: E402
from mmdiff.core.state import DEFAULT_TOPK, STORAGES  # noqa: E402

LVIS_IMAGES = 100_170
LVIS_OBJECTS = 1_270_141
LVIS_CLASSES = 1_204  # 1,203 categories + background
LIMITS = dict(
    state_mb=128.0,
    end_epoch_cpu_s=1.0,
    end_epoch_cuda_s=0.010,
    rel_err_median=0.01,
    diffuse_rank_corr=0.99)


class PeakedPredictions:
    """Deterministic synthetic softmax predictions, generated in chunks.

    Args:
        num_instances (int): Number of instances N.
        num_classes (int): Number of classes K; the last is background.
        seed (int): Seed of every random draw.
        margin (tuple): Range of the initial true-class logit margin.
        trend_std (float): Std of the per-epoch change of that margin.
        tail_std (float): Std of the instance-specific logits of all
            classes (fixed over epochs).
        jitter_std (float): Std of the per-epoch noise on every logit.
    """

    def __init__(self,
                 num_instances: int,
                 num_classes: int,
                 seed: int = 0,
                 margin: tuple = (8.0, 12.0),
                 trend_std: float = 0.6,
                 tail_std: float = 1.0,
                 jitter_std: float = 0.3) -> None:
        self.num_instances, self.num_classes = num_instances, num_classes
        self.seed = seed
        self.params = dict(
            margin=list(margin),
            trend_std=trend_std,
            tail_std=tail_std,
            jitter_std=jitter_std,
            confusers=3,
            background_logit=6.0)
        self.jitter_std = jitter_std
        gen = torch.Generator().manual_seed(seed)
        fg = num_classes - 1
        # Long-tailed label frequencies over the foreground classes.
        freq = 1.0 / torch.arange(1, fg + 1, dtype=torch.float64)
        self.labels = torch.multinomial(
            freq, num_instances, True, generator=gen)
        self.confusers = torch.randint(
            0, fg, (num_instances, 3), generator=gen)
        self.margin = torch.empty(num_instances).uniform_(
            *margin, generator=gen)
        self.trend = torch.randn(num_instances, generator=gen) * trend_std
        # Tail logits as rows of shifted windows over one long random
        # vector: per-instance variety without N x K random draws.
        self.window = 1 << 16
        bank = torch.randn(self.window + num_classes, generator=gen)
        self.tail_bank = (bank * tail_std).as_strided(
            (self.window, num_classes), (1, 1))
        self.tail_offset = torch.randint(
            0, self.window, (num_instances, ), generator=gen)
        jitter = torch.randn(self.window + num_classes, generator=gen)
        self.jitter_bank = (jitter * jitter_std).as_strided(
            (self.window, num_classes), (1, 1))

    def probs(self, ids: torch.Tensor, epoch: int) -> torch.Tensor:
        """(n, K) float32 probabilities of instances ``ids`` at ``epoch``."""
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) *
                                            10_000_019 + int(ids[0]))
        n = ids.numel()
        logits = self.tail_bank[self.tail_offset[ids]]
        shift = torch.randint(0, self.window, (n, ), generator=gen)
        logits += self.jitter_bank[shift]
        rows = torch.arange(n).unsqueeze(1)
        noise = torch.randn(n, 5, generator=gen) * self.jitter_std
        margin = self.margin[ids] + self.trend[ids] * epoch
        logits[rows, self.confusers[ids]] += (margin - 2).unsqueeze(1) + \
            noise[:, :3] * 2
        logits[:, -1] += 6.0 + noise[:, 3]
        logits[rows.squeeze(1), self.labels[ids]] += margin + noise[:, 4]
        return torch.softmax(logits, dim=1)


class DiffusePredictions:
    """Diffuse, drifting predictions (the ``diffuse`` preset).

    Args:
        num_instances (int): Number of instances N.
        num_classes (int): Number of classes K; the last is background.
        seed (int): Seed of every random draw.
        tail_churn (float): Std of the fresh per-epoch noise on every
            logit. Defaults to 0.5.
    """

    def __init__(self,
                 num_instances: int,
                 num_classes: int,
                 seed: int = 0,
                 tail_churn: float = 0.5) -> None:
        self.num_instances, self.num_classes = num_instances, num_classes
        self.seed, self.tail_churn = seed, tail_churn
        self.params = dict(
            margin=[0.0, 3.0],
            growth_mean=0.4,
            growth_std=0.6,
            tail_churn=tail_churn,
            confusers=3,
            background_logit=2.0)
        gen = torch.Generator().manual_seed(seed)
        fg = num_classes - 1
        self.labels = torch.randint(0, fg, (num_instances, ), generator=gen)
        self.confusers = torch.randint(
            0, fg, (num_instances, 3), generator=gen)
        self.margin = torch.empty(num_instances).uniform_(0, 3, generator=gen)
        self.growth = torch.randn(num_instances, generator=gen) * 0.6 + 0.4

    def probs(self, ids: torch.Tensor, epoch: int) -> torch.Tensor:
        """(n, K) float32 probabilities of instances ``ids`` at ``epoch``."""
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) *
                                            10_000_019 + int(ids[0]))
        n = ids.numel()
        logits = torch.randn(n, self.num_classes, generator=gen)
        logits *= self.tail_churn
        margin = self.margin[ids] + self.growth[ids] * epoch
        rows = torch.arange(n).unsqueeze(1)
        logits[rows, self.confusers[ids]] += \
            ((margin - 1).clamp_min(0) * 0.7).unsqueeze(1)
        logits[:, -1] += 2.0
        logits[rows.squeeze(1), self.labels[ids]] += margin
        return torch.softmax(logits, dim=1)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (ranks by argsort; ties do not occur here)."""
    ranks_a = np.argsort(np.argsort(a)).astype(np.float64)
    ranks_b = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def observe_epoch(state: DifficultyState,
                  gen: PeakedPredictions,
                  epoch: int,
                  chunk: int,
                  keep: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """Observe every (or every kept) instance once; time generation."""
    t_gen = t_obs = 0.0
    for start in range(0, gen.num_instances, chunk):
        ids = torch.arange(start, min(start + chunk, gen.num_instances))
        t0 = time.perf_counter()
        probs = gen.probs(ids, epoch)
        t1 = time.perf_counter()
        if keep is not None:
            mask = keep[ids]
            ids, probs = ids[mask], probs[mask]
        state.observe(
            ids.to(state.device), probs.to(state.device),
            gen.labels[ids].to(state.device))
        t_gen += t1 - t0
        t_obs += time.perf_counter() - t1
    return dict(generate_s=t_gen, observe_s=t_obs)


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_end_epoch(gen: PeakedPredictions,
                   epochs: int,
                   chunk: int,
                   device: str,
                   topk: int,
                   storage: str = 'topk') -> Dict[str, object]:
    """Full-scale run: memory, end_epoch times (full and partial epochs)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    state = DifficultyState(
        gen.num_instances,
        gen.num_classes,
        storage=storage,
        topk=topk,
        device=device)
    times, observe = [], []
    for epoch in range(epochs):
        observe.append(observe_epoch(state, gen, epoch, chunk))
        sync(state.device)
        t0 = time.perf_counter()
        updated = state.end_epoch()
        sync(state.device)
        times.append(time.perf_counter() - t0)
        assert updated == gen.num_instances
    keep = torch.rand(
        gen.num_instances, generator=torch.Generator().manual_seed(1)) < 0.632
    observe_epoch(state, gen, epochs, chunk, keep)
    sync(state.device)
    t0 = time.perf_counter()
    state.end_epoch()
    sync(state.device)
    partial = time.perf_counter() - t0
    peak = None
    if state.device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated(state.device)
    return dict(
        state=state,
        times=times,
        partial=partial,
        peak_bytes=peak,
        observe_s=statistics.median(o['observe_s'] for o in observe),
        generate_s=statistics.median(o['generate_s'] for o in observe))


def storage_label(spec: Tuple[str, int]) -> str:
    """'topk k=8', 'dense_fp16', ...: the tradeoff table's names."""
    storage, k = spec
    return f'topk k={k}' if storage == 'topk' else storage


def sparse_error(gen: Any, sample: int, epochs: int, specs: List[Tuple[str,
                                                                       int]],
                 chunk: int) -> Dict[str, object]:
    """Error of D against float32 dense, per (storage, k), on the first
    ``sample`` ids."""
    sub = type(gen).__new__(type(gen))
    sub.__dict__.update(gen.__dict__)
    sub.num_instances = sample
    dense = DifficultyState(sample, gen.num_classes, storage='dense')
    states = {
        spec:
        DifficultyState(
            sample, gen.num_classes, storage=spec[0], topk=spec[1])
        for spec in specs
    }
    errors: Dict[tuple, list] = {spec: [] for spec in specs}
    final: Dict[tuple, np.ndarray] = {}
    tail = []
    for epoch in range(epochs):
        for start in range(0, sample, chunk):
            ids = torch.arange(start, min(start + chunk, sample))
            probs = sub.probs(ids, epoch)
            labels = gen.labels[ids]
            dense.observe(ids, probs, labels)
            for state in states.values():
                state.observe(ids, probs, labels)
            if epoch == 0:
                # mass outside the true class and top-8 others
                top = probs.scatter(1, labels.unsqueeze(1), 0).topk(8)[0]
                tail.append(1 - probs.gather(1, labels.unsqueeze(1))[:, 0] -
                            top.sum(1))
        dense.end_epoch()
        d_dense = dense.difficulty()
        for spec, state in states.items():
            state.end_epoch()
            final[spec] = state.difficulty()
            errors[spec].append(np.abs(final[spec] / d_dense - 1))
    tail_mass = torch.cat(tail).numpy()
    return dict(
        errors=errors,
        tail_mass=tail_mass,
        d_dense=dense.difficulty(),
        final=final)


def lvis_mb(storage: str, k: int) -> float:
    """The state's megabytes at LVIS scale (from 1,000 objects' bytes)."""
    per_instance = DifficultyState(
        1000, LVIS_CLASSES, storage=storage, topk=k).nbytes / 1000
    return round(per_instance * LVIS_OBJECTS / 1e6, 1)


def tradeoff(err: Dict[str, Any], preset: str) -> List[Dict[str, object]]:
    """Size at LVIS scale against the last epoch's error, per storage."""
    d_dense = err['d_dense']
    w_dense = d_dense / d_dense.sum()
    rows = []
    for spec, d in sorted(
            err['final'].items(), key=lambda kv: (kv[0][0] != 'topk', kv[0])):
        rel = np.abs(d / d_dense - 1)
        rows.append(
            dict(
                preset=preset,
                storage=storage_label(spec),
                mb_at_lvis=lvis_mb(*spec),
                rel_err_median=round(float(np.median(rel)), 7),
                rel_err_max=round(float(rel.max()), 7),
                rank_corr=round(rank_correlation(d, d_dense), 6),
                tv_paper_weights=round(
                    0.5 * float(np.abs(d / d.sum() - w_dense).sum()), 7)))
    rows.append(
        dict(
            preset=preset,
            storage='dense',
            mb_at_lvis=lvis_mb('dense', 0),
            rel_err_median=0.0,
            rel_err_max=0.0,
            rank_corr=1.0,
            tv_paper_weights=0.0))
    return rows


def time_on_device(gen: PeakedPredictions,
                   args: argparse.Namespace) -> Dict[str, Any]:
    """Per storage of ``--device-storages``: size, end_epoch, peak memory
    with the state on ``--device`` (nothing without one)."""
    on_device: Dict[str, Any] = {}
    for storage in args.device_storages if args.device else ():
        try:
            run = time_end_epoch(gen, args.device_epochs, args.chunk,
                                 args.device, args.topk, storage)
        except torch.cuda.OutOfMemoryError as error:  # a smaller card
            on_device[storage] = dict(out_of_memory=str(error)[:200])
            torch.cuda.empty_cache()
            continue
        on_device[storage] = dict(
            state_mb=round(run.pop('state').nbytes / 1e6, 1),
            end_epoch_s=round(
                statistics.median(run['times'][1:] or run['times']), 5),
            end_epoch_all_s=[round(t, 5) for t in run['times']],
            end_epoch_partial_s=round(run['partial'], 5),
            peak_mb=None if run['peak_bytes'] is None else round(
                run['peak_bytes'] / 1e6, 1))
    return on_device


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--quick', action='store_true', help='small N for a smoke test')
    parser.add_argument(
        '--epochs',
        type=int,
        default=4,
        help='timed full-scale epochs (first from p_0)')
    parser.add_argument(
        '--sample',
        type=int,
        default=20_000,
        help='instances in the dense-vs-topk error check')
    parser.add_argument('--error-epochs', type=int, default=6)
    parser.add_argument('--topk', type=int, default=DEFAULT_TOPK)
    parser.add_argument(
        '--chunk', type=int, default=32_768, help='rows per observe() call')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--tail-churn',
        type=float,
        default=0.5,
        help='fresh per-epoch logit noise of the diffuse preset')
    parser.add_argument(
        '--tradeoff-topk',
        type=int,
        nargs='+',
        default=[4, 8, 16, 32, 64],
        help='k values of the trade-off table')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else None,
        help='also time end_epoch with the state on this device, for each '
        'of --device-storages (default: cuda when available; cpu '
        'rehearses the same path)')
    parser.add_argument(
        '--device-storages',
        nargs='+',
        default=['topk', 'dense_fp16', 'dense'],
        choices=[s for s in STORAGES if s != 'auto'],
        help='storages timed on --device (dense at LVIS scale: 6.1 GB for '
        'the state and as much for an epoch of records)')
    parser.add_argument(
        '--device-epochs',
        type=int,
        default=3,
        help='timed epochs per storage on --device (first from p_0)')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch CPU threads for generation / observe '
        '(end_epoch always runs on one)')
    parser.add_argument(
        '--num-instances',
        type=int,
        default=None,
        help='objects of the timed state (default: LVIS v1 train, 50,000 '
        'with --quick)')
    parser.add_argument(
        '--only-device',
        action='store_true',
        help='only the on-device timings (what needs the card: the GPU '
        'check runs this; the CPU timings and the error table do not '
        'change with the card)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only_device and not args.device:
        parser.error('--only-device needs --device (no CUDA device found)')

    num_instances, num_images = LVIS_OBJECTS, LVIS_IMAGES
    sample = args.sample
    if args.quick:
        num_instances, num_images = 50_000, 4_000
        sample = min(sample, 2_000)
    if args.num_instances:  # e.g. the GPU check's rehearsal
        num_instances = args.num_instances
        num_images = max(1, min(num_images, num_instances // 12))
    gen = PeakedPredictions(num_instances, LVIS_CLASSES, seed=args.seed)
    # What every result names, --only-device or not.
    head = dict(
        benchmark='bench_difficulty_state',
        quick=args.quick,
        num_images=num_images,
        num_instances=num_instances,
        num_classes=LVIS_CLASSES,
        topk=args.topk,
        torch=torch.__version__,
        cuda_device=(torch.cuda.get_device_name()
                     if torch.cuda.is_available() else None))
    if args.only_device:
        on_device = time_on_device(gen, args)
        result = dict(
            head,
            only_device=True,
            state_device=args.device,
            on_device=on_device,
            limits=dict(end_epoch_s=LIMITS['end_epoch_cuda_s']))
        result['pass'] = {
            storage:
            row['end_epoch_s'] <= LIMITS['end_epoch_cuda_s']
            if 'end_epoch_s' in row else None
            for storage, row in on_device.items()
        }
        print(json.dumps(result))
        return result

    cpu = time_end_epoch(gen, args.epochs, args.chunk, 'cpu', args.topk)
    state = cpu.pop('state')
    nbytes = state.nbytes
    counts = np.random.default_rng(args.seed).multinomial(
        num_instances - num_images, np.full(num_images, 1 / num_images)) + 1
    t0 = time.perf_counter()
    image_difficulty(state.difficulty(), instance_to_image(counts), num_images)
    image_s = time.perf_counter() - t0
    del state

    on_device = time_on_device(gen, args)
    on_cuda = args.device and torch.device(args.device).type == 'cuda'
    cuda = on_device.get('topk') if on_cuda else None

    halves = [('dense_fp16', 0)]
    topks = sorted({4, args.topk, 16, *args.tradeoff_topk})
    err = sparse_error(gen, sample, args.error_epochs,
                       [('topk', k) for k in topks] + halves, args.chunk)
    rel = np.stack(err['errors'][('topk', args.topk)])  # (epochs, sample)
    diffuse = DiffusePredictions(
        sample, LVIS_CLASSES, seed=args.seed, tail_churn=args.tail_churn)
    err_diffuse = sparse_error(diffuse, sample, args.error_epochs,
                               [('topk', k)
                                for k in sorted(args.tradeoff_topk)] + halves,
                               args.chunk)
    in_table = {('topk', k) for k in args.tradeoff_topk} | set(halves)
    table = tradeoff(
        {
            **err, 'final': {
                k: v
                for k, v in err['final'].items() if k in in_table
            }
        }, 'peaked') + tradeoff(err_diffuse, 'diffuse')

    # Epochs after the first have a stored prediction: the steady state.
    steady = cpu['times'][1:] or cpu['times']
    result = dict(
        head,
        storage='topk',
        state_bytes=nbytes,
        state_mb=round(nbytes / 1e6, 2),
        state_mib=round(nbytes / 2**20, 2),
        bytes_per_instance=round(nbytes / num_instances, 2),
        end_epoch_cpu_s=round(statistics.median(steady), 4),
        end_epoch_cpu_first_s=round(cpu['times'][0], 4),
        end_epoch_cpu_all_s=[round(t, 4) for t in cpu['times']],
        end_epoch_cpu_partial_s=round(cpu['partial'], 4),
        end_epoch_cuda_s=None if cuda is None else cuda.get('end_epoch_s'),
        state_device=args.device,
        on_device=on_device,
        observe_cpu_s_per_epoch=round(cpu['observe_s'], 2),
        generate_cpu_s_per_epoch=round(cpu['generate_s'], 2),
        image_difficulty_s=round(image_s, 4),
        error_sample=sample,
        error_epochs=args.error_epochs,
        rel_err_median=float(np.median(rel)),
        rel_err_p90=float(np.quantile(rel, 0.9)),
        rel_err_p99=float(np.quantile(rel, 0.99)),
        rel_err_max=float(rel.max()),
        rel_err_median_by_epoch=[float(np.median(r)) for r in rel],
        rel_err_median_by_storage={
            storage_label(spec): float(np.median(np.stack(v)))
            for spec, v in err['errors'].items()
        },
        unstored_mass_median=float(np.median(err['tail_mass'])),
        unstored_mass_p90=float(np.quantile(err['tail_mass'], 0.9)),
        d_dense_quantiles=[
            float(q) for q in np.quantile(err['d_dense'], [.1, .5, .9])
        ],
        generator=gen.params,
        diffuse_generator=diffuse.params,
        tradeoff=table,
        limits=LIMITS,
        cpu_threads=torch.get_num_threads(),
        machine=platform.processor() or platform.machine())
    result['pass'] = dict(
        state_mb=result['state_mb'] <= LIMITS['state_mb'],
        end_epoch_cpu_s=result['end_epoch_cpu_s'] <= LIMITS['end_epoch_cpu_s'],
        end_epoch_cuda_s=None if result['end_epoch_cuda_s'] is None else
        result['end_epoch_cuda_s'] <= LIMITS['end_epoch_cuda_s'],
        rel_err_median=result['rel_err_median'] <= LIMITS['rel_err_median'],
        diffuse_rank_corr_default_k=next(
            row['rank_corr'] for row in table if row['preset'] == 'diffuse'
            and row['storage'] == f'topk k={args.topk}')
        >= LIMITS['diffuse_rank_corr']
        if args.topk in args.tradeoff_topk else None)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
