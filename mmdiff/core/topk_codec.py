"""Top-k codec: a probability row as true class, k likeliest others, rest.

At LVIS scale (1.27M objects, K = 1,204 classes with background) a dense
copy of every object's last prediction does not fit (6 GB in float32).
The top-k codec keeps, per row, the probability of the true class
(float32), the ``k`` most likely *other* classes (int16 indices, float16
codes of ``p * 2 ** 15``, see ``PROB_SCALE``) and the remaining mass
(float32), which stands for a uniform spread over the ``K - 1 - k``
classes not stored. :func:`mmdiff.core.psi.psi_split_compressed` computes
the exact PSI split between two such rows. docs/method.md says what the
codec cannot see (how mass moves *among* the unstored classes) and
``benchmarks/bench_difficulty_state.py`` measures what that costs.

Shapes: ``n`` rows, ``K`` classes, ``k`` stored other classes.
"""
from typing import NamedTuple

import torch

from .validation import (ArrayLike, check_int, check_labels, check_probs,
                         is_torch, to_tensor)

__all__ = [
    'TopkRecord', 'compress', 'decompress', 'to_stored', 'from_stored',
    'index_dtype', 'PROB_DTYPE', 'PROB_SCALE'
]


class TopkRecord(NamedTuple):
    """Compressed probability rows (see :func:`compress`).

    Attributes:
        true_prob: (n,) float32 probability of the true class.
        top_idx: (n, k) indices of the k most likely other classes, in
            decreasing order of probability.
        top_prob: (n, k) their probabilities, rounded to the stored codes.
        rest: (n,) float32 mass of the ``K - 1 - k`` unstored classes.
    """
    true_prob: ArrayLike
    top_idx: ArrayLike
    top_prob: ArrayLike
    rest: ArrayLike


# Stored top-k probabilities: float16 of p * 2 ** 15. The power-of-two scale
# is exact and moves float16's normal range [6e-5, 65504] to [1.9e-9, 2]:
# relative rounding error <= 2 ** -11 down to 1.9e-9 and values kept down to
# ~1.8e-12, about the eps clamp of the logarithm. Plain float16 flushes
# p < 6e-8 to 0, which moves a psi term by far more than the rounding, and
# bfloat16 has 8x the rounding error.
PROB_DTYPE = torch.float16
PROB_SCALE = 2.0**15


def to_stored(prob: torch.Tensor) -> torch.Tensor:
    """Encode probabilities in [0, 1] for storage (float16 of p * 2 ** 15).

    Args:
        prob (torch.Tensor): Probabilities.

    Returns:
        torch.Tensor: The float16 code.
    """
    return (prob.to(torch.float32) * PROB_SCALE).to(PROB_DTYPE)


def from_stored(code: torch.Tensor) -> torch.Tensor:
    """Decode :func:`to_stored` codes to float32 probabilities (exact).

    Args:
        code (torch.Tensor): float16 codes.

    Returns:
        torch.Tensor: float32 probabilities.
    """
    return code.to(torch.float32) * (1.0 / PROB_SCALE)


def index_dtype(num_classes: int) -> torch.dtype:
    """Smallest signed integer dtype for class indices and the -1 marker.

    Args:
        num_classes (int): Number of classes K.

    Returns:
        torch.dtype: int16 if K < 2 ** 15, else int32.
    """
    return torch.int16 if num_classes < 2**15 else torch.int32


def _compress(probs: torch.Tensor, labels: torch.Tensor, k: int) -> TopkRecord:
    """:func:`compress` on validated tensors."""
    n = probs.shape[0]
    p32 = probs.to(torch.float32)
    lab = labels.long().unsqueeze(1)
    true_prob = p32.gather(1, lab).squeeze(1)
    idx_dtype = index_dtype(probs.shape[1])
    if k > 0:
        # Top k + 1 overall, then drop the true class if it is among them
        # (else the (k+1)-th): avoids a masked copy of the (n, K) input.
        # The kept columns are gathered, not masked: a boolean mask's size
        # is a device value, which would make the host wait for the device.
        cand_prob, cand_idx = p32.topk(k + 1, dim=1)
        is_true = cand_idx == lab
        drop = torch.where(
            is_true.any(dim=1),
            is_true.to(torch.uint8).argmax(dim=1),
            torch.full_like(lab.squeeze(1), k))
        cols = torch.arange(k, device=probs.device).unsqueeze(0)
        cols = cols + (cols >= drop.unsqueeze(1)).long()
        top_prob = cand_prob.gather(1, cols)
        top_idx = cand_idx.gather(1, cols)
    else:
        top_prob = p32.new_zeros((n, 0))
        top_idx = lab.new_zeros((n, 0))
    # Round through the storage format so records are stored losslessly.
    top_rounded = from_stored(to_stored(top_prob))
    return TopkRecord(true_prob, top_idx.to(idx_dtype), top_rounded,
                      _rest_mass(p32, true_prob, top_prob))


def _rest_mass(probs: torch.Tensor, true_prob: torch.Tensor,
               top_prob: torch.Tensor) -> torch.Tensor:
    """Mass of the classes neither the true class nor in the top k.

    ``1 - t - sum(top)`` would cancel at the scale of 1 (float32: ~1e-7
    absolute, a large relative error for a small tail). With ``thr`` the
    smallest stored other probability, every unstored class has
    ``p <= thr``, so ``sum_j min(p_j, thr) - k thr - min(t, thr)`` is the
    tail sum, cancelling only at the scale of ``thr``.
    """
    n, k = top_prob.shape
    if k == 0:
        return (probs.sum(dim=1) - true_prob).clamp_min_(0)
    thr = top_prob[:, -1:]  # topk sorts in decreasing order
    rest = torch.empty(n, dtype=probs.dtype, device=probs.device)
    rows = 4096  # cache-sized scratch, reused
    scratch = torch.empty((min(n, rows), probs.shape[1]),
                          dtype=probs.dtype,
                          device=probs.device)
    for start in range(0, n, rows):
        end = min(start + rows, n)
        out = scratch[:end - start]
        torch.minimum(probs[start:end], thr[start:end], out=out)
        torch.sum(out, dim=1, out=rest[start:end])
    rest -= k * thr.squeeze(1) + torch.minimum(true_prob, thr.squeeze(1))
    return rest.clamp_min_(0)


def compress(probs: ArrayLike,
             labels: ArrayLike,
             k: int,
             check: bool = True) -> TopkRecord:
    """Compress probability rows to true class + top-k others + rest.

    Args:
        probs (np.ndarray | torch.Tensor): (n, K) probabilities.
        labels (np.ndarray | torch.Tensor): (n,) true classes in [0, K).
        k (int): Number of other classes to keep, 0 <= k <= K - 1.
        check (bool, optional): Validate the inputs. Defaults to True.

    Returns:
        TopkRecord: ``(true_prob, top_idx, top_prob, rest)``: (n,) float32
        probability of the true class; (n, k) int16 (int32 if K >= 2 ** 15)
        indices of the k most likely other classes, in decreasing order of
        probability; (n, k) float32 probabilities of those classes, rounded
        to what the state stores (relative error <= 2 ** -11, see
        ``PROB_SCALE``); (n,) float32 mass of the K - 1 - k classes not
        stored. numpy if ``probs`` and ``labels`` are numpy, else torch
        tensors on ``probs``' device.
    """
    as_numpy = not is_torch(probs, labels)
    probs_t = to_tensor(probs, 'probs')
    labels_t = to_tensor(labels, 'labels', probs_t.device)
    if check:
        check_probs(probs_t, 'probs')
        check_labels(labels_t, probs_t.shape[0], probs_t.shape[1])
    k = check_int(k, 'k', 0)
    if k > probs_t.shape[1] - 1:
        raise ValueError(
            f'k must be <= num_classes - 1 = {probs_t.shape[1] - 1}, got {k}')
    out = _compress(probs_t, labels_t, k)
    if as_numpy:
        return TopkRecord(*(t.numpy() for t in out))
    return out


def _decompress(labels: torch.Tensor, true_prob: torch.Tensor,
                top_idx: torch.Tensor, top_prob: torch.Tensor,
                rest: torch.Tensor, num_classes: int) -> torch.Tensor:
    """:func:`decompress` on tensors of one device."""
    n, k = top_idx.shape
    free = num_classes - 1 - k
    share = rest.float() / free if free > 0 else torch.zeros_like(
        rest, dtype=torch.float32)
    out = share.unsqueeze(1).repeat(1, num_classes)
    out.scatter_(1, top_idx.long(), top_prob.float())
    out.scatter_(1, labels.long().unsqueeze(1), true_prob.float().unsqueeze(1))
    return out


def decompress(labels: ArrayLike, true_prob: ArrayLike, top_idx: ArrayLike,
               top_prob: ArrayLike, rest: ArrayLike,
               num_classes: int) -> ArrayLike:
    """The dense vectors that compressed records stand for.

    Stored classes get their stored probability; the rest mass is spread
    uniformly over the ``K - 1 - k`` classes not stored.

    Args:
        labels (np.ndarray | torch.Tensor): (n,) true classes.
        true_prob (np.ndarray | torch.Tensor): (n,) true-class
            probabilities.
        top_idx (np.ndarray | torch.Tensor): (n, k) other stored classes.
        top_prob (np.ndarray | torch.Tensor): (n, k) their probabilities.
        rest (np.ndarray | torch.Tensor): (n,) remaining mass.
        num_classes (int): Number of classes K.

    Returns:
        np.ndarray | torch.Tensor: (n, K) float32; numpy if every input is
        numpy.
    """
    as_numpy = not is_torch(labels, true_prob, top_idx, top_prob, rest)
    device = next((v.device
                   for v in (true_prob, top_prob, top_idx, labels, rest)
                   if isinstance(v, torch.Tensor)), torch.device('cpu'))
    named = dict(
        labels=labels,
        true_prob=true_prob,
        top_idx=top_idx,
        top_prob=top_prob,
        rest=rest)
    tensors = [to_tensor(v, name, device) for name, v in named.items()]
    out = _decompress(*tensors, num_classes)
    return out.numpy() if as_numpy else out
