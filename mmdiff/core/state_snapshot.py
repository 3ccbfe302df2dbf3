"""Checkpoints of :class:`~mmdiff.core.DifficultyState`.

A snapshot is plain values and CPU tensors (loadable as data): its format
version, the configuration (N, K, c, storage, k, first term, epoch), the
sums, the stored predictions and this epoch's records so far
(``pending_*``). Loading checks that it was made for the same data set and
refuses a newer format.
"""
import warnings
from typing import Any, Dict, Mapping

import torch

from .storage import STORAGE_CLASSES
from .validation import (SNAPSHOT_CONFIG, check_choice, check_ids,
                         check_snapshot_config, snapshot_tensor, to_tensor)

#: The version of the snapshot layout: a newer one is refused.
FORMAT_VERSION = 2

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
        sd['format_version'] = FORMAT_VERSION
        for name, tensor in self._tensors().items():
            sd[name] = tensor.detach().cpu().clone()
        pending = self.records.peek()
        if 'ids' in pending:
            sd.update({
                f'pending_{key}': torch.from_numpy(value.copy())
                for key, value in pending.items()
                if key not in ('num', 'invalid')
            })
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
                N or K), has a newer format or is malformed.
        """
        version = state_dict.get('format_version', 1)
        if type(version) is not int or version > FORMAT_VERSION:
            raise ValueError(
                f'the difficulty checkpoint has format version {version!r}, '
                f'newer than this mmdiff reads ({FORMAT_VERSION}); update '
                'mmdiff to load it')
        c, storage, topk, epoch = check_snapshot_config(
            state_dict, self.num_instances, self.num_classes,
            tuple(STORAGE_CLASSES))
        from .state import FIRST_TERMS  # the state imports this module
        first_term = check_choice(
            state_dict.get('first_term', 'prior'), "state_dict['first_term']",
            FIRST_TERMS)
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
        n = to_tensor(state_dict['pending_ids'], 'pending_ids').numel()
        layout = dict(
            ids=((n, ), torch.int64),
            labels=((n, ), torch.int64),
            step=((n, ), torch.int64),
            **self._store.payload_layout(n, self.num_classes, self.topk))
        part = {
            key:
            snapshot_tensor(state_dict, f'pending_{key}', shape,
                            dtype).numpy()
            for key, (shape, dtype) in layout.items()
        }
        check_ids(torch.from_numpy(part['ids']), self.num_instances)
        self.records.put(part)
