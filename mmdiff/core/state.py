"""Per-instance difficulty state: cumulative learning / unlearning sums.

Yu et al., CVPR 2022, "A Re-Balancing Strategy for Class-Imbalanced
Classification Based on Instance Difficulty", define the difficulty of
instance ``i`` after epoch ``T`` as::

    D_{i,T} = (c + sum_{t<=T} du_{i,t}) / (c + sum_{t<=T} dl_{i,t})

where ``dl`` / ``du`` split the PSI between the predictions of adjacent
epochs (:mod:`mmdiff.core.psi`) and ``p_{i,0} = 1 / K``. :class:`Difficulty
State` keeps those sums for N instances over K classes.

Epoch semantics (DESIGN decision 3): within an epoch only the *latest*
prediction of every instance is kept; :meth:`DifficultyState.end_epoch`
adds one ``dl`` / ``du`` term per observed instance, between that latest
prediction and the one stored from the previous epoch in which the instance
was seen (uniform on first sight). Unseen instances keep their state.

Storage (DESIGN decision 4, mmdiff):

- ``'dense'``: the last prediction as an (N, K) float32 matrix, plus an
  (N, K) float32 epoch buffer. Exact.
- ``'topk'``: per instance the true-class probability (float32), the ``k``
  most likely *other* classes (int16 indices; float16 codes of p * 2 ** 15,
  see ``PROB_SCALE``) and the remaining mass (float32), for the stored
  prediction and for the epoch buffer. The remaining mass stands for a
  uniform spread over the ``K - 1 - k`` unstored classes;
  :func:`mmdiff.core.psi.psi_split_compressed` computes the exact PSI split
  between two such representations (union of the stored classes plus one
  term for the classes neither stores). The first term of an instance, from
  the uniform ``p_0``, is instead computed from the dense prediction in
  :meth:`DifficultyState.observe` (``buf_prior``, float16): there the
  uniform stand-in would replace the mean of ``ln p`` over the unstored
  classes by ``ln`` of their mean, an error that does not shrink with their
  mass. At LVIS scale (1.27M objects, K = 1204, k = 8) the whole state takes
  96 bytes per instance, 122 MB, where a dense float16 copy of the
  predictions alone would take 3 GB.
- ``'auto'``: dense if ``N * K <= 2 ** 24`` (at most 64 MiB per copy), else
  topk.

What topk storage cannot see: how the mass of the unstored classes moves
*among* them between epochs. On peaked predictions that mass is small and
the median relative error of D stays under 1 %
(``benchmarks/bench_difficulty_state.py``); it grows with the unstored mass
and its churn.

Layout: every tensor lives on ``device``. ``prev_label`` is -1 for an
instance with no stored prediction (so ``p_0`` is implicit) and
``buf_label`` is -1 for an instance not observed in the current epoch.
"""
import contextlib
import warnings
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from .psi import (_split_from_prior, _split_tensors, rest_share, split_columns,
                  uniform_where_invalid)
from .validation import (ArrayLike, check_ids, check_int, check_labels,
                         check_positive, check_probs, is_torch,
                         row_sum_tolerance, to_tensor)

__all__ = ['DifficultyState', 'compress', 'decompress']

DEFAULT_TOPK = 8
DENSE_MAX_ELEMENTS = 2**24
STORAGES = ('auto', 'dense', 'topk')
# Instances per end_epoch step on CPU: keeps the (k+1, k+1, rows) match
# matrix of the sparse PSI cache-sized (8192 was fastest of 4096..32768 on
# the 2-core machine). GPUs take everything at once.
CPU_CHUNK = 2**13
CUDA_CHUNK = 2**22
EPS = 1e-12
Device = Union[str, torch.device]
Compressed = Tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike]
# Stored top-k probabilities: float16 of p * 2 ** 15. The power-of-two scale
# is exact and moves float16's normal range [6e-5, 65504] to [1.9e-9, 2]:
# relative rounding error <= 2 ** -11 down to 1.9e-9 and values kept down to
# ~1.8e-12, about the eps clamp of the logarithm. Plain float16 flushes
# p < 6e-8 to 0 (a property test found a psi term off by 13 % from that) and
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


def _compress(probs: torch.Tensor, labels: torch.Tensor,
              k: int) -> Tuple[torch.Tensor, ...]:
    """:func:`compress` on validated tensors."""
    n = probs.shape[0]
    p32 = probs.to(torch.float32)
    lab = labels.long().unsqueeze(1)
    true_prob = p32.gather(1, lab).squeeze(1)
    idx_dtype = index_dtype(probs.shape[1])
    if k > 0:
        # Top k + 1 overall, then drop the true class if it is among them
        # (else the (k+1)-th): avoids a masked copy of the (n, K) input.
        cand_prob, cand_idx = p32.topk(k + 1, dim=1)
        keep = cand_idx != lab
        keep[:, k] &= ~keep.all(dim=1)
        top_prob = cand_prob[keep].view(n, k)
        top_idx = cand_idx[keep].view(n, k)
    else:
        top_prob = p32.new_zeros((n, 0))
        top_idx = lab.new_zeros((n, 0))
    # Round through the storage format so records are stored losslessly.
    top_rounded = from_stored(to_stored(top_prob))
    return true_prob, top_idx.to(idx_dtype), top_rounded, _rest_mass(
        p32, true_prob, top_prob)


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
             check: bool = True) -> Compressed:
    """Compress probability rows to true class + top-k others + rest.

    Args:
        probs (np.ndarray | torch.Tensor): (n, K) probabilities.
        labels (np.ndarray | torch.Tensor): (n,) true classes in [0, K).
        k (int): Number of other classes to keep, 0 <= k <= K - 1.
        check (bool, optional): Validate the inputs. Defaults to True.

    Returns:
        tuple: ``(true_prob, top_idx, top_prob, rest)``: (n,) float32
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
        return tuple(t.numpy() for t in out)
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


@contextlib.contextmanager
def _cpu_threads(device: torch.device, num: int) -> Iterator[None]:
    """Cap torch's intra-op CPU threads for a block, then restore them.

    end_epoch runs ~60 small ops per 8k-instance chunk. Splitting each op
    across threads gains at most the core count but costs a thread barrier
    per op; on the shared 2-core machines a second thread made end_epoch
    10x *slower* (busy cores turn every barrier into a wait). The whole
    update takes well under a second on one thread. Changing the thread
    count costs ~6 ms (pool rebuild): fine once per epoch, which is why
    observe() does not do it.
    """
    previous = torch.get_num_threads()
    if device.type != 'cpu' or previous <= num:
        yield
        return
    torch.set_num_threads(num)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _last_rows(
        ids: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Unique ids and, for each, the row of its last occurrence.

    The rows are None when every row is kept in its own order (the ids are
    already unique); otherwise callers must take ``values[rows]`` so that
    each value stays with its id.
    """
    n = ids.numel()
    if ids.device.type != 'cpu':
        uniq, inverse = torch.unique(ids, return_inverse=True)
        if uniq.numel() == n:
            return ids, None
        pos = torch.arange(n, device=ids.device)
        last = torch.full_like(uniq, -1).scatter_reduce(
            0, inverse, pos, reduce='amax')
        return uniq, last
    # numpy on CPU: torch's threaded sort took 100x longer on busy cores.
    array = ids.numpy()
    if n < 2 or bool((array[1:] > array[:-1]).all()):
        return ids, None
    order = np.argsort(array, kind='stable')
    ordered = array[order]
    # A stable sort keeps equal ids in call order: take each run's end.
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
    return torch.from_numpy(ordered[ends]), torch.from_numpy(order[ends])


class DifficultyState:
    """Cumulative PSI learning / unlearning sums for N instances.

    Args:
        num_instances (int): Number of instances N (e.g. GT objects).
        num_classes (int): Number of classes K of the probabilities
            (including background for detection heads).
        c (float, optional): Prior ``c > 0`` of the difficulty; a larger c
            makes D less sensitive. Defaults to 1.0.
        storage (str, optional): 'dense', 'topk' or 'auto' (dense when
            ``N * K <= 2 ** 24``). Defaults to 'auto'.
        topk (int, optional): Other classes stored per instance in topk
            storage; clamped to ``K - 1``. 8 keeps the LVIS-scale state
            under 128 MB with a median relative error of D well under 1 %
            on peaked predictions (``benchmarks/bench_difficulty_state.py``).
            Defaults to 8.
        device (str | torch.device, optional): Device holding the state;
            all computation runs there. Defaults to 'cpu'.

    Example:
        >>> state = DifficultyState(num_instances=2, num_classes=3)
        >>> state.observe([0, 1], [[.8, .1, .1], [.2, .5, .3]], [0, 0])
        >>> state.end_epoch()
        2
        >>> state.difficulty()  # instance 1's true class fell below 1/3
        array([0.50750959, 1.13171301])
    """

    def __init__(self,
                 num_instances: int,
                 num_classes: int,
                 c: float = 1.0,
                 storage: str = 'auto',
                 topk: int = DEFAULT_TOPK,
                 device: Device = 'cpu') -> None:
        self.num_instances = check_int(num_instances, 'num_instances', 1)
        self.num_classes = check_int(num_classes, 'num_classes', 2)
        self.c = check_positive(c, 'c')
        if storage not in STORAGES:
            raise ValueError(
                f'storage must be one of {STORAGES}, got {storage!r}')
        self.topk = min(check_int(topk, 'topk', 0), self.num_classes - 1)
        if storage == 'auto':
            dense = self.num_instances * self.num_classes <= \
                DENSE_MAX_ELEMENTS
            storage = 'dense' if dense else 'topk'
        self.storage = storage
        self.device = torch.device(device)
        self.epoch = 0
        self._t = self._allocate(self.storage, self.topk)

    # ------------------------------------------------------------------
    # layout
    def _layout(self, storage: str,
                topk: int) -> Dict[str, Tuple[tuple, torch.dtype, float]]:
        """Name -> (shape, dtype, fill value) of every state tensor."""
        n, k, num_cls = self.num_instances, topk, self.num_classes
        idx = index_dtype(num_cls)
        layout = {
            'sum_dl': ((n, ), torch.float32, 0.),
            'sum_du': ((n, ), torch.float32, 0.),
            'prev_label': ((n, ), idx, -1),
            'buf_label': ((n, ), idx, -1),
            # Exact first term (dl, du) from p_0 for instances without a
            # stored prediction; NaN = not given, use the stored record.
            'buf_prior': ((2, n), torch.float16, float('nan')),
        }
        for side in ('prev', 'buf'):
            if storage == 'dense':
                layout[f'{side}_probs'] = ((n, num_cls), torch.float32, 0.)
            else:
                layout[f'{side}_true'] = ((n, ), torch.float32, 0.)
                # Class-major (k, N): end_epoch's broadcasts then run along
                # contiguous instances (see psi.split_columns).
                layout[f'{side}_idx'] = ((k, n), idx, 0)
                layout[f'{side}_prob'] = ((k, n), PROB_DTYPE, 0.)
                layout[f'{side}_rest'] = ((n, ), torch.float32, 0.)
        return layout

    def _allocate(self, storage: str, topk: int) -> Dict[str, torch.Tensor]:
        return {
            name: torch.full(shape, fill, dtype=dtype, device=self.device)
            for name, (shape, dtype,
                       fill) in self._layout(storage, topk).items()
        }

    @property
    def sum_dl(self) -> torch.Tensor:
        """torch.Tensor: (N,) float32 cumulative learning sums."""
        return self._t['sum_dl']

    @property
    def sum_du(self) -> torch.Tensor:
        """torch.Tensor: (N,) float32 cumulative unlearning sums."""
        return self._t['sum_du']

    @property
    def nbytes(self) -> int:
        """int: Bytes held by the state, epoch buffer included."""
        return sum(t.numel() * t.element_size() for t in self._t.values())

    @property
    def num_pending(self) -> int:
        """int: Instances observed in the current (unfinished) epoch."""
        return int((self._t['buf_label'] >= 0).sum())

    def to(self, device: Device) -> 'DifficultyState':
        """Move the state to ``device`` in place.

        Args:
            device (str | torch.device): Target device.

        Returns:
            DifficultyState: self.
        """
        self.device = torch.device(device)
        self._t = {name: t.to(self.device) for name, t in self._t.items()}
        return self

    # ------------------------------------------------------------------
    # observations
    def _ids(self, ids: ArrayLike) -> torch.Tensor:
        ids_t = to_tensor(ids, 'ids', self.device)
        check_ids(ids_t, self.num_instances)
        return ids_t.long()

    def observe(self, ids: ArrayLike, probs: ArrayLike,
                labels: ArrayLike) -> None:
        """Buffer the latest prediction of instances for this epoch.

        If an id occurs several times (in one call or across calls of the
        same epoch), the last occurrence wins: call order, then row order.
        In topk storage rows are compressed right away.

        Args:
            ids (np.ndarray | torch.Tensor): (n,) instance ids in [0, N).
            probs (np.ndarray | torch.Tensor): (n, K) class probabilities.
            labels (np.ndarray | torch.Tensor): (n,) true classes in [0, K).

        Raises:
            ValueError: On invalid inputs, naming the argument.
        """
        ids_t = self._ids(ids)
        probs_t = to_tensor(probs, 'probs', self.device)
        check_probs(probs_t, 'probs', self.num_classes, ids_t.numel())
        labels_t = to_tensor(labels, 'labels', self.device)
        check_labels(labels_t, ids_t.numel(), self.num_classes)
        if ids_t.numel() == 0:
            return
        ids_t, rows = _last_rows(ids_t)
        if rows is not None:
            probs_t, labels_t = probs_t[rows], labels_t[rows]
        t = self._t
        t['buf_label'][ids_t] = labels_t.to(t['buf_label'].dtype)
        if self.storage == 'dense':
            # Dense first terms are exact anyway.
            t['buf_prior'][:, ids_t] = float('nan')
            t['buf_probs'][ids_t] = probs_t.to(torch.float32)
            return
        prior = torch.full((2, ids_t.numel()),
                           float('nan'),
                           device=self.device)
        first = t['prev_label'][ids_t] < 0
        if bool(first.any()):
            prior[:, first] = torch.stack(
                _split_from_prior(probs_t[first], labels_t[first],
                                  EPS)).to(torch.float32)
        t['buf_prior'][:, ids_t] = prior.to(torch.float16)
        self._write_buffer(ids_t, *_compress(probs_t, labels_t, self.topk))

    def _write_buffer(self, ids: torch.Tensor, true_prob: torch.Tensor,
                      top_idx: torch.Tensor, top_prob: torch.Tensor,
                      rest: torch.Tensor) -> None:
        t = self._t
        t['buf_true'][ids] = true_prob.to(torch.float32)
        t['buf_idx'][:, ids] = top_idx.t().to(t['buf_idx'].dtype)
        t['buf_prob'][:, ids] = to_stored(top_prob.t())
        t['buf_rest'][ids] = rest.to(torch.float32)

    def observe_compressed(self,
                           ids: ArrayLike,
                           labels: ArrayLike,
                           true_prob: ArrayLike,
                           top_idx: ArrayLike,
                           top_prob: ArrayLike,
                           rest: ArrayLike,
                           prior_dl: Optional[ArrayLike] = None,
                           prior_du: Optional[ArrayLike] = None) -> None:
        """Buffer already-compressed predictions (see :func:`compress`).

        Meant for callers that gather records across processes: compress
        with ``k = state.topk`` locally, gather, then observe here. Same
        last-occurrence-wins rule as :meth:`observe`. In dense storage the
        records are expanded (rest spread uniformly).

        To match :meth:`observe` exactly, also pass the exact first terms
        ``psi_split_from_prior(probs, labels)`` computed next to
        ``compress``; they are used for instances without a stored
        prediction. Without them such instances get the term between
        ``p_0`` and the record, which misses the spread of the unstored
        classes (see :func:`mmdiff.core.psi.psi_split_from_prior`).

        Args:
            ids (np.ndarray | torch.Tensor): (n,) instance ids in [0, N).
            labels (np.ndarray | torch.Tensor): (n,) true classes.
            true_prob (np.ndarray | torch.Tensor): (n,) true-class
                probabilities.
            top_idx (np.ndarray | torch.Tensor): (n, k) other classes,
                ``k == self.topk``, distinct and != label.
            top_prob (np.ndarray | torch.Tensor): (n, k) their probabilities.
            rest (np.ndarray | torch.Tensor): (n,) mass of unstored classes.
            prior_dl (np.ndarray | torch.Tensor, optional): (n,) exact
                learning term from ``p_0``. Defaults to None.
            prior_du (np.ndarray | torch.Tensor, optional): (n,) exact
                unlearning term from ``p_0``; given together with
                ``prior_dl``. Defaults to None.

        Raises:
            ValueError: On invalid inputs, naming the argument.
        """
        ids_t = self._ids(ids)
        n, k, dev = ids_t.numel(), self.topk, self.device
        labels_t = to_tensor(labels, 'labels', dev)
        check_labels(labels_t, n, self.num_classes)
        true_t = to_tensor(true_prob, 'true_prob', dev)
        idx_t = to_tensor(top_idx, 'top_idx', dev)
        prob_t = to_tensor(top_prob, 'top_prob', dev)
        rest_t = to_tensor(rest, 'rest', dev)
        self._check_compressed(labels_t, true_t, idx_t, prob_t, rest_t, n, k)
        prior = self._check_prior(prior_dl, prior_du, n)
        if n == 0:
            return
        ids_t, rows = _last_rows(ids_t)
        if rows is not None:
            labels_t, true_t, idx_t, prob_t, rest_t = (
                v[rows] for v in (labels_t, true_t, idx_t, prob_t, rest_t))
            prior = prior[:, rows]
        self._t['buf_label'][ids_t] = labels_t.to(self._t['buf_label'].dtype)
        # Kept only where used, as observe() does: identical states.
        prior[:, self._t['prev_label'][ids_t] >= 0] = float('nan')
        self._t['buf_prior'][:, ids_t] = prior.to(torch.float16)
        if self.storage == 'dense':
            self._t['buf_probs'][ids_t] = _decompress(labels_t, true_t, idx_t,
                                                      prob_t, rest_t,
                                                      self.num_classes)
        else:
            self._write_buffer(ids_t, true_t, idx_t, prob_t, rest_t)

    def _check_prior(self, prior_dl: Optional[ArrayLike],
                     prior_du: Optional[ArrayLike], n: int) -> torch.Tensor:
        """(2, n) float32 prior terms, NaN where not given."""
        if (prior_dl is None) != (prior_du is None):
            raise ValueError(
                'prior_dl and prior_du must be given together (or neither)')
        if prior_dl is None:
            return torch.full((2, n), float('nan'), device=self.device)
        values = []
        for value, name in ((prior_dl, 'prior_dl'), (prior_du, 'prior_du')):
            tensor = to_tensor(value, name, self.device)
            if tuple(tensor.shape) != (n, ) or not tensor.is_floating_point():
                raise ValueError(
                    f'{name} must be floating point of shape ({n},), got '
                    f'{tensor.dtype} of shape {tuple(tensor.shape)}')
            if n and not bool((torch.isfinite(tensor) & (tensor >= 0)).all()):
                raise ValueError(f'{name} must be finite and >= 0')
            values.append(tensor.to(torch.float32))
        return torch.stack(values)

    def _check_compressed(self, labels: torch.Tensor, true_prob: torch.Tensor,
                          top_idx: torch.Tensor, top_prob: torch.Tensor,
                          rest: torch.Tensor, n: int, k: int) -> None:
        for value, name, shape in ((true_prob, 'true_prob',
                                    (n, )), (top_prob, 'top_prob', (n, k)),
                                   (rest, 'rest', (n, )), (top_idx, 'top_idx',
                                                           (n, k))):
            if tuple(value.shape) != shape:
                raise ValueError(
                    f'{name} must have shape {shape} (k = state.topk = {k}),'
                    f' got {tuple(value.shape)}')
        for value, name in ((true_prob, 'true_prob'), (top_prob, 'top_prob'),
                            (rest, 'rest')):
            if not value.is_floating_point():
                raise ValueError(f'{name} must be floating point')
            if value.numel() == 0:
                continue
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f'{name} contains NaN or inf')
            if float(value.min()) < 0 or float(value.max()) > 1:
                raise ValueError(f'{name} must lie in [0, 1]')
        if top_idx.is_floating_point() or top_idx.dtype == torch.bool:
            raise ValueError('top_idx must be integer class indices')
        if n == 0:
            return
        if k > 0:
            if int(top_idx.min()) < 0 or \
                    int(top_idx.max()) >= self.num_classes:
                raise ValueError(
                    f'top_idx must lie in [0, {self.num_classes})')
            srt = torch.sort(
                torch.cat([top_idx.long(),
                           labels.long().unsqueeze(1)], 1), 1)[0]
            if bool((srt[:, 1:] == srt[:, :-1]).any()):
                raise ValueError(
                    'top_idx must hold distinct classes other than labels')
        total = (true_prob.double() + top_prob.double().sum(1) + rest.double())
        worst = float((total - 1).abs().max())
        if worst > row_sum_tolerance(PROB_DTYPE):
            raise ValueError(
                f'true_prob + top_prob.sum(1) + rest must be 1 (worst '
                f'deviation {worst:.3g}); probabilities look like logits; '
                f'apply softmax first')

    # ------------------------------------------------------------------
    # epoch update
    def end_epoch(self) -> int:
        """Add one dl / du term per instance observed in this epoch.

        The term is the PSI split between the instance's latest prediction
        of this epoch and its stored one (uniform on first sight); the new
        prediction is then stored and the buffer cleared. Increments
        :attr:`epoch`.

        Returns:
            int: The number of instances updated.
        """
        with _cpu_threads(self.device, 1):
            return self._end_epoch()

    def _end_epoch(self) -> int:
        t = self._t
        seen = (t['buf_label'] >= 0).nonzero().squeeze(1)
        num = seen.numel()
        everyone = num == self.num_instances
        chunk = CUDA_CHUNK if self.device.type == 'cuda' else CPU_CHUNK
        for start in range(0, num, chunk):
            # Slices (views) when every instance was seen, else gathers.
            if everyone:
                rows = slice(start, min(start + chunk, num))
            else:
                rows = seen[start:start + chunk]
            if self.storage == 'dense':
                dl, du = self._dense_terms(rows)
            else:
                dl, du = self._topk_terms(rows)
            first = t['prev_label'][rows] < 0
            if bool(first.any()):
                prior = t['buf_prior'][:, rows].to(dl.dtype)
                use = first & ~torch.isnan(prior[0])
                dl = torch.where(use, prior[0], dl)
                du = torch.where(use, prior[1], du)
            t['sum_dl'][rows] += dl.to(torch.float32)
            t['sum_du'][rows] += du.to(torch.float32)
        # The buffer becomes the stored prediction.
        names = [n[4:] for n in t if n.startswith('buf_') and n != 'buf_prior']
        if everyone:
            for name in names:
                t['prev_' + name], t['buf_' + name] = (t['buf_' + name],
                                                       t['prev_' + name])
        else:
            for name in names:
                prev, buf = t['prev_' + name], t['buf_' + name]
                dim = 1 if name in ('idx', 'prob') else 0
                prev.index_copy_(dim, seen, buf.index_select(dim, seen))
        t['buf_label'].fill_(-1)
        self.epoch += 1
        return num

    def _dense_terms(
            self,
            rows: Union[slice,
                        torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        t = self._t
        prev = t['prev_probs'][rows]
        unseen = (t['prev_label'][rows] < 0).unsqueeze(1)
        prev = prev.masked_fill(unseen, 1.0 / self.num_classes)
        return _split_tensors(prev, t['buf_probs'][rows], t['buf_label'][rows],
                              EPS)

    def _topk_terms(
            self,
            rows: Union[slice,
                        torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        t, num_cls = self._t, self.num_classes
        free = num_cls - 1 - self.topk
        cols = []
        for side in ('prev', 'buf'):
            idx = torch.cat([
                t[side + '_label'][rows].unsqueeze(0), t[side + '_idx'][:,
                                                                        rows]
            ])
            prob = torch.cat([
                t[side + '_true'][rows].unsqueeze(0),
                from_stored(t[side + '_prob'][:, rows])
            ])
            share = rest_share(t[side + '_rest'][rows], free, torch.float32)
            cols.append((idx, prob, share))
        (a_idx, a_p, a_u), (b_idx, b_p, b_u) = cols
        valid = a_idx[0] >= 0
        if not bool(valid.all()):
            a_idx, a_p, a_u = uniform_where_invalid(a_idx, a_p, a_u, b_idx,
                                                    valid, num_cls)
        return split_columns(a_idx, a_p, a_u, b_idx, b_p, b_u, num_cls, EPS)

    def difficulty(self) -> np.ndarray:
        """Difficulty ``D = (c + sum_du) / (c + sum_dl)`` of every instance.

        Returns:
            np.ndarray: (N,) float64 on the CPU; 1.0 for instances never
            updated.
        """
        dl = self._t['sum_dl'].double()
        du = self._t['sum_du'].double()
        return ((self.c + du) / (self.c + dl)).cpu().numpy()

    def reset(self, ids: ArrayLike) -> None:
        """Forget instances: sums to 0, prediction back to uniform.

        Also drops their observations buffered in the current epoch, so
        call it *before* observing the new records of those instances
        (e.g. when an image's number of GT objects changed).

        Args:
            ids (np.ndarray | torch.Tensor): (n,) instance ids in [0, N).
        """
        ids_t = self._ids(ids)
        t = self._t
        t['sum_dl'][ids_t] = 0
        t['sum_du'][ids_t] = 0
        t['prev_label'][ids_t] = -1
        t['buf_label'][ids_t] = -1

    # ------------------------------------------------------------------
    # checkpointing
    def state_dict(self) -> Dict[str, Any]:
        """Plain-type / CPU-tensor snapshot, loadable with weights_only.

        Returns:
            dict: Config (num_instances, num_classes, c, storage, topk,
            epoch) and every state tensor, cloned to the CPU.
        """
        sd: Dict[str, Any] = dict(
            num_instances=self.num_instances,
            num_classes=self.num_classes,
            c=self.c,
            storage=self.storage,
            topk=self.topk,
            epoch=self.epoch)
        for name, tensor in self._t.items():
            sd[name] = tensor.detach().cpu().clone()
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` snapshot exactly.

        The checkpoint's c, storage, topk and epoch replace this object's
        (a warning says when c differs from the configured one).

        Args:
            state_dict (Mapping[str, Any]): A snapshot from
                :meth:`state_dict`.

        Raises:
            ValueError: If the snapshot belongs to another dataset (other
                N or K) or is malformed.
        """
        missing = [
            key for key in ('num_instances', 'num_classes', 'c', 'storage',
                            'topk', 'epoch') if key not in state_dict
        ]
        if missing:
            raise ValueError(
                f'state_dict is not a DifficultyState snapshot: missing '
                f'{missing}')
        n_ck = int(state_dict['num_instances'])
        k_ck = int(state_dict['num_classes'])
        if (n_ck, k_ck) != (self.num_instances, self.num_classes):
            raise ValueError(
                f'the difficulty checkpoint was made for another dataset: it '
                f'has num_instances={n_ck}, num_classes={k_ck}, but this '
                f'state has num_instances={self.num_instances}, '
                f'num_classes={self.num_classes}')
        c = check_positive(state_dict['c'], 'c')
        storage = state_dict['storage']
        if storage not in ('dense', 'topk'):
            raise ValueError(
                f"state_dict['storage'] must be 'dense' or 'topk', got "
                f'{storage!r}')
        topk = check_int(state_dict['topk'], 'topk', 0)
        epoch = check_int(state_dict['epoch'], 'epoch', 0)
        tensors = {}
        for name, (shape, dtype, _) in self._layout(storage, topk).items():
            if name not in state_dict:
                raise ValueError(f'state_dict lacks {name!r}')
            value = to_tensor(state_dict[name], name)
            if tuple(value.shape) != shape or value.dtype != dtype:
                raise ValueError(
                    f'state_dict[{name!r}] must be {dtype} of shape {shape},'
                    f' got {value.dtype} of shape {tuple(value.shape)}')
            tensors[name] = value.to(self.device, copy=True)
        if c != self.c:
            warnings.warn(
                f'DifficultyState: using c={c} from the checkpoint instead '
                f'of the configured c={self.c}')
        self.c, self.storage, self.topk, self.epoch = c, storage, topk, epoch
        self._t = tensors

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_instances={self.num_instances}, '
                f'num_classes={self.num_classes}, c={self.c}, '
                f'storage={self.storage!r}, topk={self.topk}, '
                f'device={str(self.device)!r}, epoch={self.epoch})')
