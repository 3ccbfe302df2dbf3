"""Where :class:`~mmdiff.core.DifficultyState` keeps last predictions.

Two strategies behind one interface, so the state never branches on its
storage:

- :class:`DenseStorage`: the last prediction as an (N, K) float32 matrix.
  Exact.
- :class:`TopkStorage`: the :mod:`~mmdiff.core.topk_codec` record of the
  last prediction, class-major ((k, N) arrays, so the PSI kernel's
  broadcasts run along contiguous instances).

Both hold only the stored predictions. An epoch's new predictions travel as
*payloads*: tuples of tensors with one row per observation, made by
:meth:`encode` (from probabilities) or :meth:`from_record` (from a top-k
record), split against the stored ones by :meth:`split` and written by
:meth:`store`.

Shapes: ``N`` instances, ``K`` classes, ``k`` stored other classes, ``n``
observations, ``Rows`` a slice or an index tensor of instances.
"""
import contextlib
from typing import Dict, Iterator, Optional, Tuple, Union

import torch

from .psi import (_split_from_prior, _split_tensors, rest_share, split_columns,
                  uniform_where_invalid)
from .topk_codec import (TopkRecord, _compress, _decompress, from_stored,
                         index_dtype, to_stored)

__all__ = ['DenseStorage', 'TopkStorage', 'EPS', 'cpu_threads']


@contextlib.contextmanager
def cpu_threads(device: torch.device, num: int) -> Iterator[None]:
    """Cap torch's intra-op CPU threads for a block, then restore them.

    end_epoch runs ~60 small ops per 8k-instance chunk. Splitting each op
    across threads gains at most the core count but costs a thread barrier
    per op; on the shared 2-core machines a second thread made end_epoch
    10x *slower*. Changing the thread count costs ~6 ms (pool rebuild):
    fine once per epoch, which is why observe() does not do it.
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


EPS = 1e-12
Payload = Tuple[torch.Tensor, ...]
Rows = Union[slice, torch.Tensor]
Layout = Dict[str, Tuple[tuple, torch.dtype]]


class _Storage:
    """Shared bookkeeping: named tensors on one device."""

    name = ''

    def __init__(self, num_instances: int, num_classes: int, topk: int,
                 device: torch.device) -> None:
        self.num_instances, self.num_classes = num_instances, num_classes
        self.topk = topk
        self.device = device
        self.tensors: Dict[str, torch.Tensor] = {
            key: torch.zeros(shape, dtype=dtype, device=device)
            for key, (shape, dtype) in self.layout().items()
        }

    def layout(self) -> Layout:
        raise NotImplementedError

    def payload_layout(self, n: int) -> Layout:
        """Names, shapes and dtypes of a payload of ``n`` rows."""
        raise NotImplementedError

    def first_terms(self, probs: torch.Tensor, labels: torch.Tensor,
                    first: torch.Tensor) -> torch.Tensor:
        """Exact (dl, du) from ``p_0`` that a payload cannot give, (2, n).

        NaN where the term comes from the stored payload at the epoch's
        end. Dense payloads are exact: all NaN.
        """
        return torch.full((2, labels.numel()),
                          float('nan'),
                          device=self.device)

    def given_first_terms(self, prior: Optional[torch.Tensor],
                          n: int) -> torch.Tensor:
        """The exact first terms of records to keep, (2, n) (see above).

        Dense storage expands records and takes its terms from them, so it
        keeps none, as :meth:`first_terms` does.
        """
        return torch.full((2, n), float('nan'), device=self.device)

    def to(self, device: torch.device) -> None:
        self.device = device
        self.tensors = {k: t.to(device) for k, t in self.tensors.items()}


class DenseStorage(_Storage):
    """Dense float32 last predictions (exact)."""

    name = 'dense'

    def layout(self) -> Layout:
        return dict(
            prev_probs=((self.num_instances, self.num_classes), torch.float32))

    def payload_layout(self, n: int) -> Layout:
        return dict(payload_probs=((n, self.num_classes), torch.float32))

    def encode(self, probs: torch.Tensor, labels: torch.Tensor) -> Payload:
        return (probs.to(self.device, torch.float32, copy=True), )

    def from_record(self, labels: torch.Tensor, record: TopkRecord) -> Payload:
        # Dense storage keeps the vectors the records stand for.
        return (_decompress(labels, *record, self.num_classes), )

    def split(self, rows: Rows, prev_labels: torch.Tensor,
              labels: torch.Tensor, payload: Payload,
              seen: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(dl, du) from the stored predictions of ``rows`` to ``payload``.

        Args:
            rows (slice | torch.Tensor): Instances, one per payload row.
            prev_labels (torch.Tensor): Labels of their stored predictions.
            labels (torch.Tensor): Labels of the new ones (they decide the
                directions).
            payload (tuple): The new predictions.
            seen (torch.Tensor): False where nothing is stored (``p_0``).
        """
        prev = self.tensors['prev_probs'][rows].masked_fill(
            ~seen.unsqueeze(1), 1.0 / self.num_classes)
        return _split_tensors(prev, payload[0], labels, EPS)

    def store(self, rows: Rows, payload: Payload) -> None:
        self.tensors['prev_probs'][rows] = payload[0]


class TopkStorage(_Storage):
    """Top-k records of the last predictions (see topk_codec)."""

    name = 'topk'

    def layout(self) -> Layout:
        n, k = self.num_instances, self.topk
        return dict(
            prev_true=((n, ), torch.float32),
            prev_idx=((k, n), index_dtype(self.num_classes)),
            prev_prob=((k, n), torch.float16),
            prev_rest=((n, ), torch.float32))

    def payload_layout(self, n: int) -> Layout:
        k = self.topk
        return dict(
            payload_true=((n, ), torch.float32),
            payload_idx=((n, k), index_dtype(self.num_classes)),
            payload_prob=((n, k), torch.float16),
            payload_rest=((n, ), torch.float32))

    def encode(self, probs: torch.Tensor, labels: torch.Tensor) -> Payload:
        return self._payload(_compress(probs, labels, self.topk))

    def first_terms(self, probs: torch.Tensor, labels: torch.Tensor,
                    first: torch.Tensor) -> torch.Tensor:
        # A record is lossy: the first term comes from the dense row.
        prior = super().first_terms(probs, labels, first)
        if bool(first.any()):
            prior[:, first] = torch.stack(
                _split_from_prior(probs[first], labels[first],
                                  EPS)).to(torch.float32)
        return prior

    def given_first_terms(self, prior: Optional[torch.Tensor],
                          n: int) -> torch.Tensor:
        if prior is None:
            return super().given_first_terms(prior, n)
        return prior

    def from_record(self, labels: torch.Tensor, record: TopkRecord) -> Payload:
        return self._payload(record)

    def _payload(self, record: TopkRecord) -> Payload:
        true, idx, prob, rest = record
        return (true.to(self.device, torch.float32, copy=True),
                idx.to(self.device, index_dtype(self.num_classes)),
                to_stored(prob.to(self.device)),
                rest.to(self.device, torch.float32, copy=True))

    def _columns(self, idx: torch.Tensor, labels: torch.Tensor,
                 true: torch.Tensor, prob: torch.Tensor,
                 rest: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Class-major (k + 1, n) classes / probs, row 0 the label."""
        free = self.num_classes - 1 - self.topk
        return (torch.cat([labels.to(idx.dtype).unsqueeze(0), idx]),
                torch.cat([true.unsqueeze(0),
                           from_stored(prob)]),
                rest_share(rest, free, torch.float32))

    def split(self, rows: Rows, prev_labels: torch.Tensor,
              labels: torch.Tensor, payload: Payload,
              seen: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        # A changed label: prev's old true class is one of its stored ones.
        t = self.tensors
        a_idx, a_p, a_u = self._columns(t['prev_idx'][:, rows], prev_labels,
                                        t['prev_true'][rows],
                                        t['prev_prob'][:, rows],
                                        t['prev_rest'][rows])
        true, idx, prob, rest = payload
        b_idx, b_p, b_u = self._columns(idx.t(), labels, true, prob.t(), rest)
        if not bool(seen.all()):
            a_idx, a_p, a_u = uniform_where_invalid(a_idx, a_p, a_u, b_idx,
                                                    seen, self.num_classes)
        return split_columns(a_idx, a_p, a_u, b_idx, b_p, b_u,
                             self.num_classes, EPS)

    def store(self, rows: Rows, payload: Payload) -> None:
        t = self.tensors
        true, idx, prob, rest = payload
        t['prev_true'][rows] = true
        t['prev_idx'][:, rows] = idx.t()
        t['prev_prob'][:, rows] = prob.t()
        t['prev_rest'][rows] = rest
