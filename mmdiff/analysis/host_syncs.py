"""Count the torch calls that make the host wait for the device.

A training step on a GPU runs ahead of the host: kernels are queued and
the host moves on. A call whose *result on the host* depends on device
values (a tensor's size after ``nonzero``, ``.item()``, ``bool(tensor)``,
``.cpu()``, boolean-mask indexing) stops the host until the queue is
drained, so one such call per step in a capture costs the latency of the
whole queue. CUDA can report them itself
(``torch.cuda.set_sync_debug_mode``), but only on a GPU; this counter
works on the CPU, where the tests run, by watching every torch call made
inside a block (``torch.overrides.TorchFunctionMode``) and classifying it
by what it would do on a CUDA tensor.

The classification is by name and arguments, so it is an upper bound on
the CPU: ``x.to('cuda')`` of a CPU tensor counts (a blocking host-to-device
copy waits for the stream), ``x.to(device, non_blocking=True)`` does not.
``tests/models/test_capture_host_syncs.py`` runs one real training step
through the capture with it and requires none.

Example:
    >>> with HostSyncCounter() as syncs:
    ...     x = torch.arange(4)
    ...     y = x[x > 1]          # boolean-mask indexing: a sync
    ...     n = int(y.sum())      # a scalar to the host: a sync
    >>> syncs.names()
    ['Tensor.__getitem__ (bool mask)', 'Tensor.__int__']
"""
import traceback
from typing import Any, Callable, Dict, List, Optional

import torch
from torch.overrides import TorchFunctionMode

__all__ = ['HostSyncCounter', 'SYNCING_CALLS']

CPU = torch.device('cpu')

#: Calls whose result on the host needs the device's values: their names
#: as ``torch.overrides.resolve_name`` gives them.
SYNCING_CALLS = frozenset({
    'torch.nonzero', 'torch.Tensor.nonzero', 'torch.argwhere',
    'torch.Tensor.argwhere', 'torch.masked_select',
    'torch.Tensor.masked_select', 'torch.unique', 'torch.Tensor.unique',
    'torch.unique_consecutive', 'torch.Tensor.unique_consecutive',
    'torch.Tensor.item', 'torch.Tensor.tolist', 'torch.Tensor.numpy',
    'torch.Tensor.cpu', 'torch.Tensor.__bool__', 'torch.Tensor.__int__',
    'torch.Tensor.__float__', 'torch.Tensor.__index__', 'torch.is_nonzero',
    'torch.equal', 'torch.allclose', 'torch.repeat_interleave',
    'torch.Tensor.repeat_interleave', 'torch.bincount', 'torch.Tensor.bincount'
})


def _is_bool_mask(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index, )
    return any(
        isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _device_of(args: tuple, kwargs: dict) -> Optional[torch.device]:
    for value in (*args[1:], kwargs.get('device')):
        if isinstance(value, (str, torch.device)):
            try:
                return torch.device(value)
            except RuntimeError:
                continue
        if isinstance(value, torch.Tensor):
            return value.device
    return None


class HostSyncCounter(TorchFunctionMode):
    """A context that records every host-synchronising torch call in it.

    Attributes:
        calls (list[str]): One name per synchronising call, in order.
        where (list[str]): The innermost frame outside torch of each.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: List[str] = []
        self.where: List[str] = []

    def _record(self, name: str) -> None:
        frames = [
            f for f in traceback.extract_stack()[:-2]
            if '/torch/' not in f.filename and 'host_syncs' not in f.filename
        ]
        frame = frames[-1] if frames else None
        self.calls.append(name)
        self.where.append(f'{frame.filename}:{frame.lineno} ({frame.name})'
                          if frame else '?')

    def __torch_function__(self,
                           func: Callable,
                           types: Any,
                           args: tuple = (),
                           kwargs: Optional[Dict[str, Any]] = None) -> Any:
        kwargs = kwargs or {}
        name = torch.overrides.resolve_name(func) or getattr(
            func, '__name__', repr(func))
        if name in SYNCING_CALLS:
            if not ('repeat_interleave' in name and 'output_size' in kwargs):
                self._record(name.replace('torch.', '', 1))
        elif name == 'torch.Tensor.__getitem__' and len(args) > 1 and \
                _is_bool_mask(args[1]):
            self._record('Tensor.__getitem__ (bool mask)')
        elif name in ('torch.Tensor.to', 'torch.Tensor.cuda') and \
                not kwargs.get('non_blocking', False):
            target = _device_of(args, kwargs)
            if name.endswith('cuda') or (target is not None and args and
                                         target.type != args[0].device.type):
                self._record(f'{name[6:]} (blocking copy to {target})')
        elif name == 'torch.tensor' and \
                _device_of((None, ), kwargs) not in (None, CPU):
            self._record('torch.tensor (blocking copy to the device)')
        return func(*args, **kwargs)

    def names(self) -> List[str]:
        """The synchronising calls seen, in order."""
        return list(self.calls)

    def report(self) -> str:
        """One line per call: its name and where it was made."""
        return '\n'.join(f'{n} at {w}' for n, w in zip(self.calls, self.where))
