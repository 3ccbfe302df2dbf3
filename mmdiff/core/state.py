"""Per-instance difficulty state: cumulative learning / unlearning sums.

Yu et al., CVPR 2022, "A Re-Balancing Strategy for Class-Imbalanced
Classification Based on Instance Difficulty", define the difficulty of
instance ``i`` after epoch ``T`` as (docs/method.md)::

    D_{i,T} = (c + sum_{t<=T} du_{i,t}) / (c + sum_{t<=T} dl_{i,t})

where ``dl`` / ``du`` split the PSI between the predictions of adjacent
epochs (:mod:`mmdiff.core.psi`) and ``p_{i,0} = 1 / K``.

Epoch semantics: the observations of an epoch are kept as they come, in
the state's :class:`~mmdiff.core.records.EpochRecords` (``observe``, or a
capture's ``state.records.add``); :meth:`DifficultyState.end_epoch` keeps
the *latest* one of every instance (step, then call and row order) and
adds one ``dl`` / ``du`` term per observed instance, between it and the
stored prediction of the previous epoch in which the instance was seen
(uniform on first sight). Unseen instances keep their state.

Storage (:mod:`mmdiff.core.storage`): ``'dense'`` keeps every last
prediction exactly, ``'dense_fp16'`` as float16 codes (half the memory,
rounded), ``'topk'`` its top-k record; ``'auto'`` is dense when
``N * K <= 2 ** 24``. In top-k storage the first term (from ``p_0``) is
computed from the dense prediction at observe time (docs/method.md says
why). docs/method.md gives the memory of each storage at LVIS scale.
"""
from typing import Dict, Optional, Union

import numpy as np
import torch

from .records import EpochRecords, Part, last_rows
from .state_snapshot import StateSnapshot
from .storage import STORAGE_CLASSES, cpu_threads
from .topk_codec import compress, decompress, index_dtype
from .validation import (ArrayLike, check_choice, check_ids, check_int,
                         check_labels, check_positive, check_probs, to_tensor)

__all__ = ['DifficultyState', 'compress', 'decompress']

DEFAULT_TOPK = 8
DENSE_MAX_ELEMENTS = 2**24
#: The storages (``'auto'``: dense when ``N * K <= 2 ** 24``).
STORAGES = ('auto', *STORAGE_CLASSES)
FIRST_TERMS = ('prior', 'skip')
# Instances per end_epoch step on CPU: keeps the (k+1, k+1, rows) match
# matrix of the sparse PSI cache-sized (benchmarks/bench_difficulty_state.py
# chose it). GPUs take everything at once.
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
        storage (str, optional): 'dense' (float32, exact), 'dense_fp16'
            (float16 codes, half of dense), 'topk' or 'auto' (dense when
            ``N * K <= 2 ** 24``, else topk). Defaults to 'auto'.
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
        check_choice(storage, 'storage', STORAGES)
        self.topk = min(check_int(topk, 'topk', 0), self.num_classes - 1)
        if storage == 'auto':
            dense = self.num_instances * self.num_classes <= \
                DENSE_MAX_ELEMENTS
            storage = 'dense' if dense else 'topk'
        check_choice(first_term, 'first_term', FIRST_TERMS)
        self.first_term = first_term
        self.storage = storage
        self.device = torch.device(device)
        self.epoch = 0
        self._allocate()

    def _allocate(self) -> None:
        n, dev = self.num_instances, self.device
        self._store = STORAGE_CLASSES[self.storage](n, self.num_classes,
                                                    self.topk, dev)
        self._sums = torch.zeros((2, n), dtype=torch.float32, device=dev)
        self._prev_label = torch.full((n, ),
                                      -1,
                                      dtype=index_dtype(self.num_classes),
                                      device=dev)
        #: This epoch's observations until :meth:`end_epoch` (a capture
        #: adds to it on the model's device).
        self.records = EpochRecords(self.topk, storage=self.storage)

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
        held += self.records.tensors()
        return sum(t.numel() * t.element_size() for t in held)

    @property
    def num_pending(self) -> int:
        """int: Instances observed in the current (unfinished) epoch."""
        return self.records.num_unique()

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
        In topk storage rows are compressed right away (see
        :class:`~mmdiff.core.records.EpochRecords`).

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
        self.records.add(ids_t, labels_t.long(), probs_t)

    # ------------------------------------------------------------------
    # epoch update
    def end_epoch(self, part: Optional[Part] = None) -> int:
        """Add one dl / du term per instance observed in this epoch.

        The term is the PSI split between the instance's latest prediction
        of this epoch and its stored one (uniform on first sight); the new
        prediction is then stored. Increments :attr:`epoch`.

        Args:
            part (dict, optional): The epoch's records, from
                ``self.records.take()`` (merged across processes by
                :func:`~mmdiff.core.records.merge_parts`). Defaults to None:
                take them from :attr:`records`.

        Returns:
            int: The number of instances updated.
        """
        with cpu_threads(self.device, 1):
            if part is None:
                part = self.records.take()
            # Checked before anything changes: refused records leave the
            # state as it was.
            last = self._last_of_each(part) if 'ids' in part else None
            self.epoch += 1
            if last is None:
                return 0
            ids, labels, payload = last
            self._update(ids, labels, payload)
            return int(ids.numel())

    def _last_of_each(self, part: Part) -> tuple:
        """The last row of every instance, as tensors on the device."""
        layout = self._store.payload_layout(0, self.num_classes, self.topk)
        missing = sorted(set(layout) - set(part))
        if missing:
            raise ValueError(
                f'the records lack {missing}: they were made for another '
                f'storage than this state\'s {self.storage!r} '
                f'(topk={self.topk}); make them with state.records')
        for key, (shape, dtype) in layout.items():
            value = np.asarray(part[key])
            want = torch.empty(0, dtype=dtype).numpy().dtype
            if value.dtype != want or value.shape[1:] != shape[1:]:
                # e.g. float32 dense rows read as float16 codes, or
                # another k: the state would be silently wrong.
                raise ValueError(
                    f'the records\' {key!r} is {value.dtype} '
                    f'{tuple(value.shape)}, but this state\'s '
                    f'{self.storage!r} storage (topk={self.topk}) keeps '
                    f'{want} (n, {", ".join(map(str, shape[1:]))}): they '
                    'were made for another storage; make them with '
                    'state.records')
        ids = np.asarray(part['ids'], dtype=np.int64)
        check_ids(torch.from_numpy(ids), self.num_instances)
        ids, rows = last_rows(ids)

        def rows_of(key: str) -> torch.Tensor:
            value = np.asarray(part[key])
            value = value if rows is None else value[rows]
            return torch.from_numpy(np.ascontiguousarray(value)).to(
                self.device)

        payload = {key: rows_of(key) for key in layout}
        return (torch.from_numpy(ids).to(self.device),
                rows_of('labels').long(), payload)

    def _update(self, ids: torch.Tensor, labels: torch.Tensor,
                payload: Dict[str, torch.Tensor]) -> None:
        num = ids.numel()
        everyone = num == self.num_instances  # ids sorted: 0 .. N - 1
        chunk = CUDA_CHUNK if self.device.type == 'cuda' else CPU_CHUNK
        chunk = min(chunk, self._store.max_chunk_rows())
        for start in range(0, num, chunk):
            part = slice(start, min(start + chunk, num))
            # Slices (views) when every instance was seen, else gathers.
            rows = part if everyone else ids[part]
            prev_labels = self._prev_label[rows]
            seen = prev_labels >= 0
            dl, du = self._store.split(rows, prev_labels, labels[part], {
                k: v[part]
                for k, v in payload.items()
            }, seen)
            if self.first_term == 'skip':  # first sight: store only
                dl, du = dl.masked_fill(~seen, 0), du.masked_fill(~seen, 0)
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
        self.records.drop(ids_t)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_instances={self.num_instances}, '
                f'num_classes={self.num_classes}, c={self.c}, '
                f'storage={self.storage!r}, topk={self.topk}, '
                f'first_term={self.first_term!r}, '
                f'device={str(self.device)!r}, epoch={self.epoch})')
