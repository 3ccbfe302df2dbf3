"""Per-instance difficulty state: cumulative learning / unlearning sums.

Yu et al., CVPR 2022, "A Re-Balancing Strategy for Class-Imbalanced
Classification Based on Instance Difficulty", define the difficulty of
instance ``i`` after epoch ``T`` as (docs/method.md)::

    D_{i,T} = (c + sum_{t<=T} du_{i,t}) / (c + sum_{t<=T} dl_{i,t})

where ``dl`` / ``du`` split the PSI between the predictions of adjacent
epochs (:mod:`mmdiff.core.psi`) and ``p_{i,0} = 1 / K``.

Epoch semantics: the observations of an epoch are kept as they come
(``observe`` / ``observe_compressed``); :meth:`DifficultyState.end_epoch`
keeps the *latest* one of every instance (call order, then row order) and
adds one ``dl`` / ``du`` term per observed instance, between it and the
stored prediction of the previous epoch in which the instance was seen
(uniform on first sight). Unseen instances keep their state.

Storage (:mod:`mmdiff.core.storage`): ``'dense'`` keeps every last
prediction exactly, ``'topk'`` its top-k record; ``'auto'`` is dense when
``N * K <= 2 ** 24``. In top-k storage the first term (from ``p_0``) is
computed from the dense prediction at observe time (docs/method.md says
why). At LVIS scale (1.27M objects, K = 1,204, k = 8) the stored state
takes 50 bytes per instance, 64 MB; pending observations add about 66
bytes per observed instance until ``end_epoch``.
"""
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

from .pending import PendingObservations
from .state_snapshot import StateSnapshot
from .storage import DenseStorage, TopkStorage, cpu_threads
from .topk_codec import (PROB_DTYPE, TopkRecord, compress, decompress,
                         index_dtype)
from .validation import (ArrayLike, check_ids, check_int, check_labels,
                         check_positive, check_prior_terms, check_probs,
                         check_topk_record, row_sum_tolerance, to_tensor)

__all__ = ['DifficultyState', 'compress', 'decompress']

DEFAULT_TOPK = 8
DENSE_MAX_ELEMENTS = 2**24
STORAGES = ('auto', 'dense', 'topk')
FIRST_TERMS = ('prior', 'skip')
# Instances per end_epoch step on CPU: keeps the (k+1, k+1, rows) match
# matrix of the sparse PSI cache-sized (8192 was fastest of 4096..32768 on
# the 2-core machine). GPUs take everything at once.
CPU_CHUNK = 2**13
CUDA_CHUNK = 2**22
Device = Union[str, torch.device]


class DifficultyState(StateSnapshot):
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
            storage; clamped to ``K - 1``. The trade-off of k against
            error and memory is measured by
            ``benchmarks/bench_difficulty_state.py`` (docs/method.md).
            Defaults to 8.
        device (str | torch.device, optional): Device holding the state;
            all computation runs there. Defaults to 'cpu'.
        first_term (str, optional): 'prior': an instance's first term is
            the PSI split from ``p_0 = 1 / K`` (the paper); 'skip': the
            first observation only stores the prediction, so D measures
            change between observations and an instance seen once keeps
            D = 1, like one never seen (mmdiff, docs/method.md).
            Defaults to 'prior'.

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
                 device: Device = 'cpu',
                 first_term: str = 'prior') -> None:
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
        if first_term not in FIRST_TERMS:
            raise ValueError(
                f'first_term must be one of {FIRST_TERMS}, got {first_term!r}')
        self.first_term = first_term
        self.storage = storage
        self.device = torch.device(device)
        self.epoch = 0
        self._allocate()

    def _allocate(self) -> None:
        n, dev = self.num_instances, self.device
        kind = DenseStorage if self.storage == 'dense' else TopkStorage
        self._store = kind(n, self.num_classes, self.topk, dev)
        self._sums = torch.zeros((2, n), dtype=torch.float32, device=dev)
        self._prev_label = torch.full((n, ),
                                      -1,
                                      dtype=index_dtype(self.num_classes),
                                      device=dev)
        self._pending = PendingObservations()

    @property
    def sum_dl(self) -> torch.Tensor:
        """torch.Tensor: (N,) float32 cumulative learning sums."""
        return self._sums[0]

    @property
    def sum_du(self) -> torch.Tensor:
        """torch.Tensor: (N,) float32 cumulative unlearning sums."""
        return self._sums[1]

    def _tensors(self) -> Dict[str, torch.Tensor]:
        out = dict(
            sum_dl=self._sums[0],
            sum_du=self._sums[1],
            prev_label=self._prev_label)
        out.update(self._store.tensors)
        return out

    @property
    def nbytes(self) -> int:
        """int: Bytes held, pending observations of this epoch included."""
        held = [self._sums, self._prev_label, *self._store.tensors.values()]
        held += self._pending.tensors()
        return sum(t.numel() * t.element_size() for t in held)

    @property
    def num_pending(self) -> int:
        """int: Instances observed in the current (unfinished) epoch."""
        return self._pending.num_unique()

    def to(self, device: Device) -> 'DifficultyState':
        """Move the state to ``device`` in place.

        Args:
            device (str | torch.device): Target device.

        Returns:
            DifficultyState: self.
        """
        self.device = torch.device(device)
        self._store.to(self.device)
        self._sums = self._sums.to(self.device)
        self._prev_label = self._prev_label.to(self.device)
        self._pending.to(self.device)
        return self

    # ------------------------------------------------------------------
    # observations
    def _ids(self, ids: ArrayLike) -> torch.Tensor:
        ids_t = to_tensor(ids, 'ids', self.device)
        check_ids(ids_t, self.num_instances)
        return ids_t.long()

    def observe(self, ids: ArrayLike, probs: ArrayLike,
                labels: ArrayLike) -> None:
        """Keep the predictions of instances for this epoch.

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
        prior = self._store.first_terms(probs_t, labels_t,
                                        self._prev_label[ids_t] < 0)
        self._pending.add(ids_t, labels_t.long(),
                          self._store.encode(probs_t, labels_t), prior)

    def observe_compressed(self,
                           ids: ArrayLike,
                           labels: ArrayLike,
                           true_prob: ArrayLike,
                           top_idx: ArrayLike,
                           top_prob: ArrayLike,
                           rest: ArrayLike,
                           prior_dl: Optional[ArrayLike] = None,
                           prior_du: Optional[ArrayLike] = None) -> None:
        """Keep already-compressed predictions (see :func:`compress`).

        Meant for callers that gather records across processes: compress
        with ``k = state.topk`` locally, gather, then observe here. Same
        last-occurrence-wins rule as :meth:`observe`. In dense storage the
        records are expanded (rest spread uniformly).

        To match :meth:`observe` exactly, also pass the exact first terms
        ``psi_split_from_prior(probs, labels)`` computed next to
        ``compress``; without them a first term is the one between ``p_0``
        and the record (see :func:`mmdiff.core.psi_split_from_prior`).

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
        n, dev = ids_t.numel(), self.device
        labels_t = to_tensor(labels, 'labels', dev)
        check_labels(labels_t, n, self.num_classes)
        record = TopkRecord(*(to_tensor(v, name, dev)
                              for v, name in ((true_prob, 'true_prob'),
                                              (top_idx, 'top_idx'),
                                              (top_prob,
                                               'top_prob'), (rest, 'rest'))))
        check_topk_record(labels_t, *record, self.topk, self.num_classes,
                          row_sum_tolerance(PROB_DTYPE))
        prior = check_prior_terms(prior_dl, prior_du, n, dev)
        if n == 0:
            return
        prior = self._store.given_first_terms(prior, n)
        # Kept only where used, as observe() does: identical states.
        prior = prior.masked_fill(self._prev_label[ids_t] >= 0, float('nan'))
        self._pending.add(ids_t, labels_t.long(),
                          self._store.from_record(labels_t, record), prior)

    # ------------------------------------------------------------------
    # epoch update
    def end_epoch(self) -> int:
        """Add one dl / du term per instance observed in this epoch.

        The term is the PSI split between the instance's latest prediction
        of this epoch and its stored one (uniform on first sight); the new
        prediction is then stored. Increments :attr:`epoch`.

        Returns:
            int: The number of instances updated.
        """
        with cpu_threads(self.device, 1):
            taken = self._pending.take_last()
            self.epoch += 1
            if taken is None:
                return 0
            self._update(*taken)
            return int(taken[0].numel())

    def _update(self, ids: torch.Tensor, labels: torch.Tensor,
                payload: Tuple[torch.Tensor,
                               ...], prior: torch.Tensor) -> None:
        num = ids.numel()
        everyone = num == self.num_instances  # ids sorted: 0 .. N - 1
        chunk = CUDA_CHUNK if self.device.type == 'cuda' else CPU_CHUNK
        for start in range(0, num, chunk):
            part = slice(start, min(start + chunk, num))
            # Slices (views) when every instance was seen, else gathers.
            rows = part if everyone else ids[part]
            prev_labels = self._prev_label[rows]
            seen = prev_labels >= 0
            dl, du = self._store.split(rows, prev_labels, labels[part],
                                       tuple(t[part] for t in payload), seen)
            first = prior[:, part]
            if self.first_term == 'skip':  # first sight: store only
                dl, du = dl.masked_fill(~seen, 0), du.masked_fill(~seen, 0)
            else:
                use = ~seen & ~torch.isnan(first[0])
                dl, du = torch.where(use, first[0],
                                     dl), torch.where(use, first[1], du)
            self._sums[0, rows] += dl.float()
            self._sums[1, rows] += du.float()
        rows = slice(None) if everyone else ids
        self._store.store(rows, payload)
        self._prev_label[rows] = labels.to(self._prev_label.dtype)

    def difficulty(self) -> np.ndarray:
        """Difficulty ``D = (c + sum_du) / (c + sum_dl)`` of every instance.

        Returns:
            np.ndarray: (N,) float64 on the CPU; 1.0 for instances never
            updated.
        """
        sums = self._sums.double()
        return ((self.c + sums[1]) / (self.c + sums[0])).cpu().numpy()

    @property
    def observed(self) -> np.ndarray:
        """np.ndarray: (N,) bool, instances with a stored prediction (seen
        in some epoch and not reset since)."""
        return (self._prev_label >= 0).cpu().numpy()

    def reset(self, ids: ArrayLike) -> None:
        """Forget instances: sums to 0, prediction back to uniform.

        Also drops their observations of the current epoch, so call it
        *before* observing the new records of those instances (e.g. when an
        image's number of GT objects changed).

        Args:
            ids (np.ndarray | torch.Tensor): (n,) instance ids in [0, N).
        """
        ids_t = self._ids(ids)
        self._sums[:, ids_t] = 0
        self._prev_label[ids_t] = -1
        self._pending.drop(ids_t)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_instances={self.num_instances}, '
                f'num_classes={self.num_classes}, c={self.c}, '
                f'storage={self.storage!r}, topk={self.topk}, '
                f'first_term={self.first_term!r}, '
                f'device={str(self.device)!r}, epoch={self.epoch})')
