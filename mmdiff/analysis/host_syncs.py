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

The classification is by name and arguments, so on the CPU it is an upper
bound: every blocking copy that names a device (``x.to(device)``,
``x.cuda()``, ``x.copy_(y)``, ``torch.tensor(..., device=...)``) counts,
whatever device that is here, because on a GPU it may cross to or from
it; ``non_blocking=True`` copies do not. Calls that are not torch
functions (``torch.cuda.synchronize``) are not seen.
``tests/models/test_capture_host_syncs.py`` runs real training steps
through the capture with it and requires none.

Example:
    >>> with HostSyncCounter() as syncs:
    ...     x = torch.arange(4)
    ...     y = x[x > 1]          # boolean-mask indexing: a sync
    ...     n = int(y.sum())      # a scalar to the host: a sync
    >>> syncs.names()
    ['Tensor.__getitem__ (mask)', 'Tensor.__int__']
"""
import traceback
from typing import Any, Callable, Dict, List, Optional

import torch
from torch.overrides import TorchFunctionMode

__all__ = ['HostSyncCounter', 'SYNCING_CALLS']

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
    'torch.Tensor.repeat_interleave', 'torch.bincount',
    'torch.Tensor.bincount', 'torch.Tensor.__format__',
    'torch.Tensor.__repr__', 'torch.Tensor.__contains__'
})
#: Copies that wait for the device unless ``non_blocking=True``.
_COPIES = frozenset(
    {'torch.Tensor.to', 'torch.Tensor.cuda', 'torch.Tensor.copy_'})
#: Tensors made from host data on a device named by ``device=``.
_FROM_HOST = frozenset(
    {'torch.tensor', 'torch.as_tensor', 'torch.Tensor.new_tensor'})
#: Masks: indexing by them has a data-dependent size.
_MASK_DTYPES = (torch.bool, torch.uint8)


def _is_mask(index: Any) -> bool:
    items = index if isinstance(index, (tuple, list)) else (index, )
    return any(
        isinstance(i, torch.Tensor) and i.dtype in _MASK_DTYPES for i in items)


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
            if '/torch/' not in f.filename and f.filename != __file__
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
        elif name in ('torch.Tensor.__getitem__', 'torch.Tensor.__setitem__',
                      'torch.Tensor.index_put_', 'torch.index_put') and \
                len(args) > 1 and _is_mask(args[1]):
            self._record(f'{name[6:]} (mask)')
        elif name == 'torch.where' and len(args) + len(kwargs) == 1:
            self._record('where (one argument: nonzero)')
        elif name == 'torch.nn.functional.one_hot' and \
                kwargs.get('num_classes', args[1] if len(args) > 1 else -1) \
                < 0:
            self._record('one_hot (num_classes from the data)')
        elif name in _COPIES and not kwargs.get('non_blocking', False) and (
                name != 'torch.Tensor.to' or _device_of(args, kwargs)):
            self._record(f'{name[6:]} (blocking copy)')
        elif name in _FROM_HOST and kwargs.get('device') is not None:
            self._record(f'{name.replace("torch.", "", 1)} '
                         '(blocking copy to a device)')
        return func(*args, **kwargs)

    def names(self) -> List[str]:
        """The synchronising calls seen, in order."""
        return list(self.calls)

    def report(self) -> str:
        """One line per call: its name and where it was made."""
        return '\n'.join(f'{n} at {w}' for n, w in zip(self.calls, self.where))
