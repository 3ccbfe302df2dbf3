"""The predictions of one epoch, kept until the epoch ends.

The one buffer between a capture and :class:`~mmdiff.core.DifficultyState`.
During training a capture hands over the class probabilities of every
observed instance, step after step, on the model's device. Moving them to
the host each step would synchronise the GPU, and keeping dense rows would
take ``K`` floats per observation, so :class:`EpochRecords` encodes each
batch right away into the payload its state's storage keeps
(:mod:`mmdiff.core.storage`: dense rows, or top-k records with their exact
first terms), keeps the tensors where they are and moves them once, at the
end of the epoch (:meth:`EpochRecords.take`). What it takes is a dict of
plain numpy arrays, ready to be gathered from other processes
(:func:`merge_parts`) and handed to ``DifficultyState.end_epoch``, which
keeps the last row of every instance (:func:`last_rows`).

Shapes: ``n`` observations, ``K`` classes, ``k`` stored other classes.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from .storage import STORAGE_CLASSES
from .validation import check_choice

__all__ = ['EpochRecords', 'merge_parts', 'select_rows', 'last_rows']

Part = Dict[str, object]


class EpochRecords:
    """One epoch's observations, encoded for the state's storage.

    Args:
        topk (int, optional): Keep top-``k`` records (and the exact first
            terms); None keeps the dense rows. Defaults to None.
        storage (str, optional): The state's storage (a key of
            :data:`~mmdiff.core.storage.STORAGE_CLASSES`), whose payload
            is kept. Defaults to None: 'dense' when ``topk`` is None, else
            'topk'.

    Example:
        >>> records = EpochRecords(topk=None)
        >>> records.add(torch.tensor([3, 1]), torch.tensor([0, 1]),
        ...             torch.tensor([[.9, .1], [float('nan'), 1.]]))
        >>> part = records.take()
        >>> part['ids'].tolist(), part['num'], part['invalid']
        ([3], 2, 1)
    """

    def __init__(self,
                 topk: Optional[int] = None,
                 storage: Optional[str] = None) -> None:
        self.topk = topk
        if storage is None:
            storage = 'dense' if topk is None else 'topk'
        self.storage = STORAGE_CLASSES[check_choice(storage, 'storage',
                                                    tuple(STORAGE_CLASSES))]
        self._batches: List[Dict[str, torch.Tensor]] = []

    def __len__(self) -> int:
        return sum(int(b['ids'].numel()) for b in self._batches)

    def add(self,
            ids: torch.Tensor,
            labels: torch.Tensor,
            probs: torch.Tensor,
            valid: Optional[torch.Tensor] = None,
            step: int = 0,
            observed: Optional[torch.Tensor] = None) -> None:
        """Keep one step's observations (no host synchronisation).

        Rows with a NaN / inf probability (counted as ``invalid``), or
        where ``valid`` or ``observed`` is False, never reach the state.

        Args:
            ids (torch.Tensor): (n,) instance ids.
            labels (torch.Tensor): (n,) true classes.
            probs (torch.Tensor): (n, K) probabilities (fp32).
            valid (torch.Tensor, optional): (n,) bool, rows to keep.
                Defaults to None (all finite rows).
            step (int): The training iteration that made them; records of
                several processes are put back in this order
                (:func:`merge_parts`). Defaults to 0.
            observed (torch.Tensor, optional): (n,) bool, False for rows
                that are no observation at all (a capture's padding, kept
                so that their number needs no host sync): neither kept nor
                counted in ``num`` / ``invalid``. Defaults to None (all).
        """
        finite = torch.isfinite(probs).all(dim=1)
        if observed is not None:
            # Padding: id -1 (no instance has it: not counted in num, never
            # matched by drop), not valid and not counted as invalid.
            ids = torch.where(observed, ids, -1)
            finite = finite | ~observed
            valid = observed if valid is None else valid & observed
        valid = finite if valid is None else valid & finite
        # Invalid rows are encoded as uniform, then dropped by take().
        safe = torch.where(valid[:, None], probs, 1. / probs.shape[1])
        batch = dict(
            ids=ids.clone(),
            labels=labels.clone(),
            valid=valid,
            finite=finite,
            step=torch.full_like(ids, int(step), dtype=torch.int64))
        batch.update(self.storage.encode(safe, labels, self.topk or 0))
        self._batches.append(batch)

    def _joined(self) -> Optional[Dict[str, torch.Tensor]]:
        if not self._batches:
            return None
        # A restored snapshot's rows (put) are on the CPU, a capture's on
        # the model's device: join them where the latest batch is.
        device = self._batches[-1]['ids'].device
        return {
            key: torch.cat([b[key].to(device) for b in self._batches])
            for key in self._batches[0]
        }

    def peek(self) -> Part:
        """What :meth:`take` would return, without clearing."""
        joined = self._joined()
        out: Part = dict(num=0, invalid=0)
        if joined is None:
            return out
        valid = joined.pop('valid').cpu()
        out['num'] = int((joined['ids'] >= 0).sum())
        out['invalid'] = int((~joined.pop('finite')).sum())
        for key, value in joined.items():
            out[key] = value.cpu()[valid].numpy()
        return out

    def take(self) -> Part:
        """The valid observations so far, on the CPU; then start afresh.

        Returns:
            dict: ``num`` (observations) and ``invalid`` (those with a
            NaN / inf probability), and when any is valid ``ids``,
            ``labels``, ``step`` and the storage's payload arrays
            (the storage's ``payload_layout``), as numpy
            arrays in observation order.
        """
        out = self.peek()
        self._batches = []
        return out

    def put(self, part: Part) -> None:
        """Keep the rows of a :meth:`take` result (a restored snapshot)."""
        if 'ids' not in part:
            return
        batch = {
            key: torch.as_tensor(np.asarray(value))
            for key, value in part.items() if key not in ('num', 'invalid')
        }
        batch['valid'] = torch.ones_like(batch['ids'], dtype=torch.bool)
        batch['finite'] = batch['valid'].clone()
        self._batches.append(batch)

    def drop(self, ids: torch.Tensor) -> None:
        """Forget every observation of ``ids``."""
        kept = []
        for batch in self._batches:
            keep = ~torch.isin(batch['ids'], ids.to(batch['ids'].device))
            kept.append({key: value[keep] for key, value in batch.items()})
        self._batches = kept

    def num_unique(self) -> int:
        """Instances with at least one observation."""
        joined = self._joined()
        if joined is None:
            return 0
        return int(torch.unique(joined['ids'][joined['valid']]).numel())

    def tensors(self) -> List[torch.Tensor]:
        """Every tensor held, for byte counts."""
        return [t for b in self._batches for t in b.values()]


def merge_parts(parts: List[Part]) -> Part:
    """One part from the :meth:`EpochRecords.take` of several processes.

    The state keeps the *last* prediction of an instance in an epoch. An
    image drawn twice may be trained on two ranks; the later one is the one
    made at the later step, whatever the rank. So the rows are put in step
    order, ties (the same step, the same weights) in the order of ``parts``
    (rank order, the same on every rank).

    Args:
        parts (list[dict]): One :meth:`EpochRecords.take` per process, in
            rank order.

    Returns:
        dict: ``num`` and ``invalid`` summed, and the rows of every part in
        (step, part) order when any part has rows.
    """
    out: Part = dict(
        num=sum(int(p['num']) for p in parts),
        invalid=sum(int(p['invalid']) for p in parts))
    full = [p for p in parts if 'ids' in p]
    if not full:
        return out
    keys = [k for k in full[0] if k not in ('num', 'invalid')]
    for key in keys:
        out[key] = np.concatenate([np.asarray(p[key]) for p in full])
    order = np.argsort(out['step'], kind='stable')
    for key in keys:
        out[key] = out[key][order]
    return out


def select_rows(part: Part, keep: np.ndarray) -> Part:
    """``part`` with only the rows where ``keep`` is True."""
    if 'ids' not in part:
        return part
    return {
        key: value if key in ('num', 'invalid') else np.asarray(value)[keep]
        for key, value in part.items()
    }


def last_rows(ids: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Unique ids (sorted) and, for each, the row of its last occurrence.

    Args:
        ids (np.ndarray): (n,) int64 ids, any order, repeats allowed.

    Returns:
        tuple: The unique ids, and the rows to take (None when the ids are
        already sorted and unique: every row kept in its own order).
        Callers must take ``values[rows]`` so each value stays with its id.
    """
    if ids.size < 2 or bool((ids[1:] > ids[:-1]).all()):
        return ids, None
    order = np.argsort(ids, kind='stable')
    ordered = ids[order]
    # A stable sort keeps equal ids in row order: take each run's end.
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
    return ordered[ends], order[ends]
