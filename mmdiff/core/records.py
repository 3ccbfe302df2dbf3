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

__all__ = ['EpochRecords', 'observe_into']

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
            valid: Optional[torch.Tensor] = None) -> None:
        """Keep one step's observations (no host synchronisation).

        Rows with a NaN / inf probability, or where ``valid`` is False, are
        counted and never reach the state.

        Args:
            ids (torch.Tensor): (n,) instance ids.
            labels (torch.Tensor): (n,) true classes.
            probs (torch.Tensor): (n, K) probabilities (fp32).
            valid (torch.Tensor, optional): (n,) bool, rows to keep.
                Defaults to None (all finite rows).
        """
        finite = torch.isfinite(probs).all(dim=1)
        valid = finite if valid is None else valid & finite
        batch = dict(ids=ids, labels=labels, valid=valid)
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
            dict: ``num`` (observations) and ``invalid`` (those dropped),
            and when any is valid ``ids``, ``labels`` and either ``probs``
            or the record arrays with ``prior_dl`` / ``prior_du``, as
            numpy arrays in observation order.
        """
        batches, self._batches = self._batches, []
        out: Dict[str, object] = dict(
            num=sum(int(b['ids'].numel()) for b in batches), invalid=0)
        if not batches:
            return out
        valid = torch.cat([b['valid'] for b in batches]).cpu()
        out['invalid'] = int((~valid).sum())
        for key in batches[0]:
            if key != 'valid':
                out[key] = torch.cat([b[key]
                                      for b in batches]).cpu()[valid].numpy()
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
