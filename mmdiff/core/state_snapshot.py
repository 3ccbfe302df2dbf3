"""Checkpoints of :class:`~mmdiff.core.DifficultyState`.

A snapshot is plain values and CPU tensors (loadable with
``weights_only=True``): the configuration (N, K, c, storage, k, first
term, epoch), the sums, the stored predictions and this epoch's pending
observations. Loading checks that it was made for the same data set.
"""
import warnings
from typing import Any, Dict, Mapping

import torch

from .validation import SNAPSHOT_CONFIG, check_snapshot_config, snapshot_tensor

__all__ = ['StateSnapshot']


class StateSnapshot:
    """``state_dict`` / ``load_state_dict`` of DifficultyState."""

    def state_dict(self) -> Dict[str, Any]:
        """Plain-type / CPU-tensor snapshot, loadable with weights_only.

        Returns:
            dict: Config (num_instances, num_classes, c, storage, topk,
            first_term, epoch), every state tensor, and this epoch's pending
            observations (``pending_*``), cloned to the CPU.
        """
        sd: Dict[str, Any] = {
            key: getattr(self, key)
            for key in SNAPSHOT_CONFIG
        }
        sd['first_term'] = self.first_term
        for name, tensor in self._tensors().items():
            sd[name] = tensor.detach().cpu().clone()
        sd.update(
            self._pending.state_dict(list(self._store.payload_layout(0))))
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` snapshot exactly.

        The checkpoint's c, storage, topk, first term and epoch replace
        this object's (a warning says which differ from the configured
        ones).

        Args:
            state_dict (Mapping[str, Any]): A snapshot from
                :meth:`state_dict`.

        Raises:
            ValueError: If the snapshot belongs to another dataset (other
                N or K) or is malformed.
        """
        c, storage, topk, epoch = check_snapshot_config(
            state_dict, self.num_instances, self.num_classes)
        first_term = state_dict.get('first_term', 'prior')
        if first_term not in ('prior', 'skip'):
            raise ValueError(f"state_dict['first_term'] must be 'prior' or "
                             f"'skip', got {first_term!r}")
        if first_term != self.first_term:
            warnings.warn(f'DifficultyState: the checkpoint used first_term='
                          f'{first_term!r}; using it instead of the '
                          f'configured {self.first_term!r}')
            self.first_term = first_term
        if c != self.c:
            warnings.warn(
                f'DifficultyState: using c={c} from the checkpoint instead '
                f'of the configured c={self.c}')
        if (storage, topk) != (self.storage, self.topk):
            warnings.warn(
                f'DifficultyState: using storage={storage!r}, topk={topk} '
                f'from the checkpoint instead of the configured '
                f'storage={self.storage!r}, topk={self.topk}')
        self.c, self.storage, self.topk = c, storage, topk
        self._allocate()
        for name, target in self._tensors().items():
            target.copy_(
                snapshot_tensor(state_dict, name, target.shape, target.dtype))
        self._load_pending(state_dict)
        self.epoch = epoch

    def _load_pending(self, state_dict: Mapping[str, Any]) -> None:
        if 'pending_ids' not in state_dict:
            return
        ids = self._ids(state_dict['pending_ids'])
        n = ids.numel()
        parts = [
            snapshot_tensor(state_dict, f'pending_{name}', shape,
                            dtype).to(self.device)
            for name, (shape,
                       dtype) in (('labels', ((n, ), torch.int64)),
                                  ('prior', ((2, n), torch.float32)),
                                  *self._store.payload_layout(n).items())
        ]
        self._pending.add(ids, parts[0], tuple(parts[2:]), parts[1])
