"""The predictions of one epoch, kept until the epoch ends.

During training a capture hands over the class probabilities of every
observed instance, step after step, on the model's device. Moving them to
the host each step would synchronise the GPU, and keeping the dense rows
would take ``K`` floats per observation, so :class:`EpochRecords` keeps
device tensors (already compressed to top-k records when the state stores
top-k) and moves them once, at the end of the epoch (:meth:`take`). What it
takes is a dict of plain numpy arrays, ready to be gathered from other
processes and fed to a :class:`~mmdiff.core.DifficultyState`
(:func:`observe_into`).

Shapes: ``n`` observations, ``K`` classes, ``k`` stored other classes.
"""
from typing import Dict, List, Optional

import numpy as np
import torch

from .psi import psi_split_from_prior
from .state import DifficultyState
from .topk_codec import compress

__all__ = ['EpochRecords', 'merge_parts', 'observe_into']

RECORD_KEYS = ('true_prob', 'top_idx', 'top_prob', 'rest')


class EpochRecords:
    """One epoch's observations, on the device that made them.

    Args:
        topk (int, optional): Compress each batch to top-``k`` records (and
            keep the exact first terms, see
            :func:`~mmdiff.core.psi_split_from_prior`); None keeps the
            dense rows. Defaults to None.

    Example:
        >>> records = EpochRecords(topk=None)
        >>> records.add(torch.tensor([3, 1]), torch.tensor([0, 1]),
        ...             torch.tensor([[.9, .1], [float('nan'), 1.]]))
        >>> part = records.take()
        >>> part['ids'].tolist(), part['num'], part['invalid']
        ([3], 2, 1)
    """

    def __init__(self, topk: Optional[int] = None) -> None:
        self.topk = topk
        self._batches: List[Dict[str, torch.Tensor]] = []

    def __len__(self) -> int:
        return sum(int(b['ids'].numel()) for b in self._batches)

    def add(self,
            ids: torch.Tensor,
            labels: torch.Tensor,
            probs: torch.Tensor,
            valid: Optional[torch.Tensor] = None,
            step: int = 0) -> None:
        """Keep one step's observations (no host synchronisation).

        Rows with a NaN / inf probability (counted as ``invalid``), or
        where ``valid`` is False, never reach the state.

        Args:
            ids (torch.Tensor): (n,) instance ids.
            labels (torch.Tensor): (n,) true classes.
            probs (torch.Tensor): (n, K) probabilities (fp32).
            valid (torch.Tensor, optional): (n,) bool, rows to keep.
                Defaults to None (all finite rows).
            step (int): The training iteration that made them; records of
                several processes are put back in this order
                (:func:`merge_parts`). Defaults to 0.
        """
        finite = torch.isfinite(probs).all(dim=1)
        valid = finite if valid is None else valid & finite
        batch = dict(
            ids=ids,
            labels=labels,
            valid=valid,
            finite=finite,
            step=torch.full_like(ids, int(step), dtype=torch.int64))
        if self.topk is None:
            batch['probs'] = probs
        else:
            safe = torch.where(valid[:, None], probs, 1. / probs.shape[1])
            batch.update(
                zip(RECORD_KEYS,
                    compress(safe, labels, self.topk, check=False)))
            # The first term (from p_0 = 1/K) is exact only from the
            # dense row, so it travels with the record.
            batch['prior_dl'], batch['prior_du'] = psi_split_from_prior(
                safe, labels, check=False)
        self._batches.append(batch)

    def take(self) -> Dict[str, object]:
        """The valid observations so far, on the CPU; then start afresh.

        Returns:
            dict: ``num`` (observations) and ``invalid`` (those with a
            NaN / inf probability), and when any is valid ``ids``,
            ``labels``, ``step`` and either ``probs`` or the record arrays
            with ``prior_dl`` / ``prior_du``, as numpy arrays in
            observation order.
        """
        batches, self._batches = self._batches, []
        out: Dict[str, object] = dict(
            num=sum(int(b['ids'].numel()) for b in batches), invalid=0)
        if not batches:
            return out
        valid = torch.cat([b['valid'] for b in batches]).cpu()
        finite = torch.cat([b['finite'] for b in batches])
        out['invalid'] = int((~finite).sum())
        for key in batches[0]:
            if key not in ('valid', 'finite'):
                out[key] = torch.cat([b[key]
                                      for b in batches]).cpu()[valid].numpy()
        return out


def merge_parts(parts: List[Dict[str, object]]) -> Dict[str, object]:
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
    out: Dict[str, object] = dict(
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


def observe_into(state: DifficultyState,
                 part: Dict[str, object],
                 keep: Optional[np.ndarray] = None) -> None:
    """Feed a :meth:`EpochRecords.take` result to a state.

    Args:
        state (DifficultyState): The state; its storage decides how dense
            rows are kept.
        part (dict): From :meth:`EpochRecords.take` (any process).
        keep (np.ndarray, optional): (n,) bool, rows to feed. Defaults to
            None (all).
    """
    if 'ids' not in part:
        return

    def rows(key: str) -> np.ndarray:
        value = np.asarray(part[key])
        return value if keep is None else value[keep]

    if 'probs' in part:
        state.observe(rows('ids'), rows('probs'), rows('labels'))
    else:
        state.observe_compressed(
            rows('ids'), rows('labels'), *(rows(k) for k in RECORD_KEYS),
            rows('prior_dl'), rows('prior_du'))
