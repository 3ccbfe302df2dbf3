"""One epoch's observations, kept as they come until the epoch ends.

:class:`~mmdiff.core.DifficultyState` adds one term per instance per epoch,
from the *last* observation of the epoch (call order, then row order).
:class:`PendingObservations` keeps the observations of the current epoch
as chunks of rows (ids, labels, a storage payload, exact first terms) and
hands over the last one of every instance at the epoch's end, so the
state needs no per-instance epoch buffer.

Shapes: ``n`` observations; a payload is a tuple of tensors of ``n`` rows.
"""
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

__all__ = ['PendingObservations', 'last_rows']

# ids (n,), labels (n,), payload (tuple of (n, ...)), first terms (2, n)
Chunk = Tuple[torch.Tensor, torch.Tensor, Tuple[torch.Tensor, ...],
              torch.Tensor]


def last_rows(
        ids: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Unique ids (sorted) and, for each, the row of its last occurrence.

    Args:
        ids (torch.Tensor): (n,) int64 ids, any order, repeats allowed.

    Returns:
        tuple: The unique ids, and the rows to take (None when the ids are
        already sorted and unique: every row kept in its own order).
        Callers must take ``values[rows]`` so each value stays with its id.
    """
    n = ids.numel()
    if ids.device.type != 'cpu':
        uniq, inverse = torch.unique(ids, return_inverse=True)
        if uniq.numel() == n and bool((uniq == ids).all()):
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


class PendingObservations:
    """The observations of the current epoch, in call order."""

    def __init__(self) -> None:
        self.chunks: List[Chunk] = []

    def add(self, ids: torch.Tensor, labels: torch.Tensor,
            payload: Tuple[torch.Tensor, ...], prior: torch.Tensor) -> None:
        """Keep a copy of one call's rows.

        A copy: the tensors may share memory with the caller's arrays
        (``torch.from_numpy``), which the caller may change before the
        epoch ends.
        """
        self.chunks.append((ids.clone(), labels.clone(),
                            tuple(t.clone() for t in payload), prior.clone()))

    def tensors(self) -> List[torch.Tensor]:
        """Every tensor held, for byte counts."""
        return [t for c in self.chunks for t in (c[0], c[1], c[3], *c[2])]

    def num_unique(self) -> int:
        """Instances with at least one observation."""
        if not self.chunks:
            return 0
        return int(
            torch.unique(torch.cat([c[0] for c in self.chunks])).numel())

    def to(self, device: torch.device) -> None:
        self.chunks = [(i.to(device), lab.to(device),
                        tuple(p.to(device) for p in pay), pr.to(device))
                       for i, lab, pay, pr in self.chunks]

    def drop(self, ids: torch.Tensor) -> None:
        """Forget every observation of ``ids``."""
        kept = []
        for c_ids, labels, payload, prior in self.chunks:
            keep = ~torch.isin(c_ids, ids)
            kept.append((c_ids[keep], labels[keep],
                         tuple(t[keep] for t in payload), prior[:, keep]))
        self.chunks = kept

    def concat(self) -> Optional[Chunk]:
        """All observations in call order, as one chunk (None if none)."""
        chunks = self.chunks
        if not chunks:
            return None
        return (torch.cat([c[0] for c in chunks]),
                torch.cat([c[1] for c in chunks]),
                tuple(
                    torch.cat(parts)
                    for parts in zip(*(c[2] for c in chunks))),
                torch.cat([c[3] for c in chunks], dim=1))

    def take_last(self) -> Optional[Chunk]:
        """The last observation of every instance, ids sorted; clears."""
        taken, self.chunks = self.concat(), []
        if taken is None:
            return None
        ids, labels, payload, prior = taken
        ids, rows = last_rows(ids)
        if rows is not None:
            labels, prior = labels[rows], prior[:, rows]
            payload = tuple(t[rows] for t in payload)
        return ids, labels, payload, prior

    def state_dict(self, payload_names: List[str]) -> Dict[str, Any]:
        """``pending_*`` CPU copies (empty when nothing is pending)."""
        taken = self.concat()
        if taken is None:
            return {}
        ids, labels, payload, prior = taken
        named = dict(ids=ids, labels=labels, prior=prior)
        named.update(zip(payload_names, payload))
        return {
            f'pending_{k}': v.detach().cpu().clone()
            for k, v in named.items()
        }
