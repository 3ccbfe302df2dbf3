"""Where :class:`~mmdiff.core.DifficultyState` keeps last predictions.

Three strategies behind one interface, so the state never branches on its
storage:

- :class:`DenseStorage`: the last prediction as an (N, K) float32 matrix.
  Exact.
- :class:`DenseHalfStorage`: the same matrix as float16 codes of
  ``p * 2 ** 15`` (:func:`~mmdiff.core.topk_codec.to_stored`): half the
  memory, every class kept, each probability rounded to 2 ** -11 relative.
- :class:`TopkStorage`: the :mod:`~mmdiff.core.topk_codec` record of the
  last prediction, class-major ((k, N) arrays, so the PSI kernel's
  broadcasts run along contiguous instances).

Each holds only the stored predictions. An epoch's new predictions travel as
*payloads*: dicts of tensors with one row per observation, made by the
storage's :meth:`encode` where the prediction is made (the model's device,
see :class:`~mmdiff.core.records.EpochRecords`), split against the stored
ones by :meth:`split` and written by :meth:`store`. A top-k payload
carries the exact first term (from ``p_0 = 1 / K``) of its row, computed
from the dense prediction, which the record alone cannot give
(docs/method.md).

Shapes: ``N`` instances, ``K`` classes, ``k`` stored other classes, ``n``
observations, ``Rows`` a slice or an index tensor of instances.
"""
import contextlib
from typing import Dict, Iterator, Tuple, Union

import torch

from .psi import (_split_from_prior, _split_tensors, record_columns,
                  split_columns, uniform_where_invalid)
from .topk_codec import _compress, from_stored, index_dtype, to_stored

__all__ = [
    'DenseStorage', 'DenseHalfStorage', 'TopkStorage', 'STORAGE_CLASSES',
    'EPS', 'cpu_threads'
]


@contextlib.contextmanager
def cpu_threads(device: torch.device, num: int) -> Iterator[None]:
    """Cap torch's intra-op CPU threads for a block, then restore them.

    end_epoch runs ~60 small ops per 8k-instance chunk. Splitting each op
    across threads gains at most the core count but costs a thread barrier
    per op, which on a busy machine costs more than it gains
    (benchmarks/bench_difficulty_state.py measures it). Changing the thread
    count rebuilds the pool: fine once per epoch, which is why observe()
    does not do it.
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
#: Elements of one (rows, K) temporary of a dense split step (2 ** 26
#: float32: 256 MB). Only bounds GPU steps; a CPU step is smaller already.
DENSE_CHUNK_ELEMENTS = 2**26
Payload = Dict[str, torch.Tensor]
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

    def max_chunk_rows(self) -> int:
        """Most instances one step of ``end_epoch`` may split at once."""
        return self.num_instances

    @classmethod
    def payload_layout(cls, n: int, num_classes: int, topk: int) -> Layout:
        """Names, shapes and dtypes of a payload of ``n`` rows."""
        raise NotImplementedError

    @classmethod
    def encode(cls, probs: torch.Tensor, labels: torch.Tensor,
               topk: int) -> Payload:
        """The payload of validated rows, on their device (no host sync)."""
        raise NotImplementedError

    def to(self, device: torch.device) -> None:
        self.device = device
        self.tensors = {k: t.to(device) for k, t in self.tensors.items()}


class DenseStorage(_Storage):
    """Dense float32 last predictions (exact)."""

    name = 'dense'
    #: How a probability is kept, in payloads and in the stored matrix.
    dtype = torch.float32

    @staticmethod
    def _encode(probs: torch.Tensor) -> torch.Tensor:
        return probs.to(torch.float32, copy=True)

    @staticmethod
    def _decode(stored: torch.Tensor) -> torch.Tensor:
        return stored

    def layout(self) -> Layout:
        return dict(
            prev_probs=((self.num_instances, self.num_classes), self.dtype))

    def max_chunk_rows(self) -> int:
        # The split keeps ~8 float32 (rows, K) temporaries alive: bound
        # them to ~2 GB, not 8x the whole matrix (49 GB at LVIS scale).
        return max(1, DENSE_CHUNK_ELEMENTS // self.num_classes)

    @classmethod
    def payload_layout(cls, n: int, num_classes: int, topk: int) -> Layout:
        return dict(probs=((n, num_classes), cls.dtype))

    @classmethod
    def encode(cls, probs: torch.Tensor, labels: torch.Tensor,
               topk: int) -> Payload:
        return dict(probs=cls._encode(probs))

    def split(self, rows: Rows, prev_labels: torch.Tensor,
              labels: torch.Tensor, payload: Payload,
              seen: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(dl, du) from the stored predictions of ``rows`` to ``payload``.

        Args:
            rows (slice | torch.Tensor): Instances, one per payload row.
            prev_labels (torch.Tensor): Labels of their stored predictions.
            labels (torch.Tensor): Labels of the new ones (they decide the
                directions).
            payload (dict): The new predictions.
            seen (torch.Tensor): False where nothing is stored: the term
                is then the one from ``p_0 = 1 / K``, exact.
        """
        prev = self._decode(self.tensors['prev_probs'][rows]).masked_fill(
            ~seen.unsqueeze(1), 1.0 / self.num_classes)
        return _split_tensors(prev, self._decode(payload['probs']), labels,
                              EPS)

    def store(self, rows: Rows, payload: Payload) -> None:
        self.tensors['prev_probs'][rows] = payload['probs']


class DenseHalfStorage(DenseStorage):
    """Dense last predictions as float16 codes (half of dense's memory).

    Every class is kept, so unlike top-k nothing that moves among the
    classes is lost; each probability is rounded to float16 of
    ``p * 2 ** 15`` (relative error <= 2 ** -11 down to 1.9e-9,
    :data:`~mmdiff.core.topk_codec.PROB_SCALE`). The payloads of an epoch
    are kept in the same codes, so the epoch buffer is halved too. The PSI
    split runs in float32 on the decoded rows.
    ``benchmarks/bench_difficulty_state.py`` measures its error against
    float32 dense (the README's storage table).
    """

    name = 'dense_fp16'
    dtype = torch.float16
    _encode = staticmethod(to_stored)
    _decode = staticmethod(from_stored)


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

    @classmethod
    def payload_layout(cls, n: int, num_classes: int, topk: int) -> Layout:
        return dict(
            true_prob=((n, ), torch.float32),
            top_idx=((n, topk), index_dtype(num_classes)),
            top_prob=((n, topk), torch.float16),
            rest=((n, ), torch.float32),
            prior_dl=((n, ), torch.float32),
            prior_du=((n, ), torch.float32))

    @classmethod
    def encode(cls, probs: torch.Tensor, labels: torch.Tensor,
               topk: int) -> Payload:
        true, idx, prob, rest = _compress(probs, labels, topk)
        # A record is lossy: the first term comes from the dense row.
        prior_dl, prior_du = _split_from_prior(probs, labels, EPS)
        return dict(
            true_prob=true.to(torch.float32, copy=True),
            top_idx=idx.to(index_dtype(probs.shape[1])),
            top_prob=to_stored(prob),
            rest=rest.to(torch.float32, copy=True),
            prior_dl=prior_dl.to(torch.float32),
            prior_du=prior_du.to(torch.float32))

    def _columns(self, labels: torch.Tensor, true: torch.Tensor,
                 idx: torch.Tensor, prob: torch.Tensor,
                 rest: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return record_columns(labels, true, idx, from_stored(prob), rest,
                              self.num_classes, torch.float32)

    def split(self, rows: Rows, prev_labels: torch.Tensor,
              labels: torch.Tensor, payload: Payload,
              seen: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        # A changed label: prev's old true class is one of its stored ones.
        t = self.tensors
        a_idx, a_p, a_u = self._columns(prev_labels, t['prev_true'][rows],
                                        t['prev_idx'][:, rows],
                                        t['prev_prob'][:, rows],
                                        t['prev_rest'][rows])
        b_idx, b_p, b_u = self._columns(labels, payload['true_prob'],
                                        payload['top_idx'].t(),
                                        payload['top_prob'].t(),
                                        payload['rest'])
        if bool(seen.all()):
            return split_columns(a_idx, a_p, a_u, b_idx, b_p, b_u,
                                 self.num_classes, EPS)
        a_idx, a_p, a_u = uniform_where_invalid(a_idx, a_p, a_u, b_idx, seen,
                                                self.num_classes)
        dl, du = split_columns(a_idx, a_p, a_u, b_idx, b_p, b_u,
                               self.num_classes, EPS)
        return (torch.where(seen, dl, payload['prior_dl'].to(dl.dtype)),
                torch.where(seen, du, payload['prior_du'].to(du.dtype)))

    def store(self, rows: Rows, payload: Payload) -> None:
        t = self.tensors
        t['prev_true'][rows] = payload['true_prob']
        t['prev_idx'][:, rows] = payload['top_idx'].t()
        t['prev_prob'][:, rows] = payload['top_prob'].t()
        t['prev_rest'][rows] = payload['rest']


#: storage name -> class: the one list of storages (``'auto'`` picks one).
STORAGE_CLASSES = {
    cls.name: cls
    for cls in (DenseStorage, DenseHalfStorage, TopkStorage)
}
