"""What the names a checkpoint may spell resolve to, and what each accepts.

mmengine 0.10.7 checkpoints pickle, beyond plain containers and tensors,
numpy arrays, dtypes and scalars (``runtime_info``, seeds) and
``HistoryBuffer`` objects (``message_hub``), whose statistics methods are
pickled as ``getattr(HistoryBuffer, name)``. Each name resolves to a
stand-in that accepts exactly what numpy / mmengine write:

- ``numpy.dtype(name, False, True)``: a plain dtype (bool, numbers,
  datetime, bytes, str; never object, void or structured), completed by a
  BUILD state that numpy itself would write for it;
- ``numpy...._reconstruct(ndarray, (0,), b'b')``: an array completed by a
  BUILD ``(1, shape, dtype, fortran, data)`` whose ``data`` has exactly
  ``prod(shape) * itemsize`` bytes, copied into a new writable array;
- ``numpy....scalar(dtype, data)``: ``data`` of exactly one item;
- ``numpy.ndarray``: only the marker ``_reconstruct`` takes;
- ``HistoryBuffer`` (NEWOBJ without arguments): completed by a BUILD whose
  state holds only mmengine's four fields: a positive ``max_length``, two
  1-D numeric arrays of one length and the default statistics; the real
  buffer is then made by mmengine's constructor from ``max_length`` alone
  and given those two arrays;
- ``getattr(HistoryBuffer, 'min' | 'max' | 'current' | 'mean')``: the name
  itself (a string), which only a HistoryBuffer's state may hold;
- ``builtins.bytes()`` and ``_codecs.encode(text, 'latin1')``: how protocol
  2 writes ``bytes``.

Every byte a stand-in makes is charged to the load's budget
(:mod:`mmdiff.safe_load.budget`). The stand-ins are made per load
(:func:`numpy_names`, :func:`history_buffer_names`), so that each charges
its own load.
"""
import math
from typing import Any, Dict

import numpy as np
from mmengine.logging.history_buffer import HistoryBuffer

from .budget import Meter
from .containers import Marker, Pending
from .errors import refuse

__all__ = ['numpy_names', 'history_buffer_names', 'stand_in_names']

STATISTICS = ('min', 'max', 'current', 'mean')
HISTORY_FIELDS = ('max_length', '_log_history', '_count_history',
                  'statistics_methods')
# bool, signed / unsigned int, float, complex, timedelta, datetime, bytes,
# str: fixed-size values without pointers.
PLAIN_KINDS = 'biufcmMSU'
DATETIME_UNITS = (b'Y', b'M', b'W', b'D', b'h', b'm', b's', b'ms', b'us',
                  b'ns', b'ps', b'fs', b'as', b'generic')
HISTORY_BUFFER = 'mmengine.logging.history_buffer.HistoryBuffer'


def _is_plain(value: Any, leaves: int = 32) -> bool:
    """None, bool, int, str, bytes, or tuples of them (no custom __eq__),
    with at most ``leaves`` values: numpy's dtype states are small, and a
    tuple that shares its parts can stand for 2**62 of them."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        if type(item) is tuple:
            stack.extend(item)
        elif item is not None and type(item) not in (bool, int, str, bytes):
            return False
        seen += 1
        if seen > leaves:
            return False
    return True


def describe(value: Any) -> str:
    """A file's value for a message, never a repr of something large."""
    if type(value) in (str, bytes) and len(value) <= 40:
        return repr(value)
    return f'a {type(value).__name__}'


def _plain_dtype(value: Any) -> np.dtype:
    """A dtype only a stand-in can have made, checked again where used."""
    if not isinstance(value, np.dtype) or value.kind not in PLAIN_KINDS or \
            value.hasobject or value.fields is not None or \
            value.subdtype is not None:
        raise refuse('a numpy array or scalar without a plain dtype')
    return value


# ---------------------------------------------------------------------------
# numpy
class _PendingDtype(Pending):
    """A dtype named by a pickle, complete once its BUILD state checks."""

    what = 'a numpy dtype'

    def __init__(self, named: np.dtype) -> None:
        self.named = named

    def build(self, state: Any) -> None:
        if self.real is not None or type(state) is not tuple or \
                not _is_plain(state):
            raise refuse('a numpy dtype is built twice or from a state '
                         'numpy never writes')
        if len(state) > 1 and type(state[1]) is bytes:  # Python 2 pickles
            state = (state[0], state[1].decode('latin1')) + state[2:]
        named = self.named
        if named.kind in 'mM' and len(state) == 9:
            named = _datetime_dtype(named, state[8])
        for order in ('=', '<', '>', '|'):
            candidate = named.newbyteorder(order)
            if candidate.__reduce__()[2] == state:
                self.real = candidate
                return
        raise refuse(f'the state of numpy dtype {self.named} is not one '
                     'numpy writes for it')


def _datetime_dtype(named: np.dtype, metadata: Any) -> np.dtype:
    """datetime64 / timedelta64 with the unit a pickle's state names."""
    try:
        none, (unit, count, one, also_one) = metadata
    except (TypeError, ValueError):
        raise refuse('a numpy datetime dtype state numpy never writes') \
            from None
    if none is not None or unit not in DATETIME_UNITS or \
            type(count) is not int or not 1 <= count < 2**31 or \
            (one, also_one) != (1, 1):
        raise refuse('a numpy datetime dtype state numpy never writes')
    if unit == b'generic':
        return named
    return np.dtype(f'{named.kind}8[{count}{unit.decode()}]')


class _PendingArray(Pending):
    """An ndarray named by a pickle, complete once its BUILD state checks."""

    what = 'a numpy array'

    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def build(self, state: Any) -> None:
        if self.real is not None or type(state) is not tuple or \
                len(state) != 5:
            raise refuse('a numpy array state numpy never writes')
        version, shape, dtype, fortran, data = state
        dtype = _plain_dtype(dtype)
        # numpy allows 64 dimensions of at most 2**63 - 1 each; checked
        # before the product, which a file could make arbitrarily slow.
        if version != 1 or type(shape) is not tuple or len(shape) > 64 or \
                not all(type(n) is int and 0 <= n < 2**63
                        for n in shape) or \
                type(fortran) is not bool or type(data) is not bytes:
            raise refuse('a numpy array state numpy never writes')
        if len(data) != math.prod(shape) * dtype.itemsize:
            raise refuse(f'a numpy array of shape {shape} and dtype {dtype} '
                         f'comes with {len(data)} bytes')
        self.meter.charge_bytes(
            len(data), f'a numpy array of {len(data)} '
            'bytes')
        order = 'F' if fortran else 'C'
        array = np.frombuffer(data, dtype=dtype).reshape(shape, order=order)
        # numpy's own unpickling hands back native byte order
        self.real = array.astype(
            dtype.newbyteorder('='), order=order, copy=True)


class _NdarrayName(Marker):
    """What ``numpy.ndarray`` resolves to: the marker _reconstruct takes."""


def numpy_names(meter: Meter) -> Dict[str, Any]:
    """numpy's pickle names -> stand-ins charging ``meter``."""
    ndarray = _NdarrayName()

    def dtype(name: Any, align: Any = False, copy: Any = True) -> Pending:
        if align is not False or copy is not True:
            raise refuse('numpy dtype arguments numpy never writes')
        if type(name) is bytes:  # Python 2 pickles read with encoding=bytes
            name = name.decode('latin1')
        if type(name) is not str or len(name) > 16:
            raise refuse(f'numpy dtype name {describe(name)} is not a plain '
                         'dtype')
        try:
            named = np.dtype(name)
        except (TypeError, ValueError):
            raise refuse(f'numpy dtype {describe(name)} is unknown') from None
        try:
            _plain_dtype(named)
        except Exception:
            raise refuse(
                f'numpy dtype {describe(name)} is not a plain dtype (object,'
                ' void and structured dtypes are refused)') from None
        return _PendingDtype(named)

    def reconstruct(subtype: Any, shape: Any, typecode: Any) -> Pending:
        if subtype is not ndarray or shape != (0, ) or typecode != b'b':
            raise refuse('numpy _reconstruct is called with arguments numpy '
                         'never writes')
        return _PendingArray(meter)

    def scalar(dtype: Any, data: Any) -> Any:
        dtype = _plain_dtype(dtype)
        if type(data) is not bytes or len(data) != dtype.itemsize:
            raise refuse('a numpy scalar comes with the wrong bytes')
        meter.charge_bytes(len(data), 'a numpy scalar')
        return np.frombuffer(data, dtype=dtype)[0]

    def codecs_encode(text: Any, encoding: Any = 'latin1') -> bytes:
        if type(text) is not str or encoding != 'latin1':
            raise refuse('_codecs.encode is called with arguments pickle '
                         'never writes')
        meter.charge_bytes(len(text), f'bytes of length {len(text)}')
        return text.encode('latin1')

    def empty_bytes(*args: Any) -> bytes:
        if args:
            raise refuse('bytes() is called with arguments')
        return b''

    names = {
        'numpy.dtype': dtype,
        'numpy.ndarray': ndarray,
        '_codecs.encode': codecs_encode,
        'builtins.bytes': empty_bytes,
    }
    # numpy 2 pickles name numpy._core, numpy 1 numpy.core.
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        names[f'{module}._reconstruct'] = reconstruct
        names[f'{module}.scalar'] = scalar
    return names


# ---------------------------------------------------------------------------
# mmengine
class _PendingHistoryBuffer(Pending):
    """A HistoryBuffer named by a pickle, made once its state checks."""

    what = 'a HistoryBuffer'

    def build(self, state: Any) -> None:
        if self.real is not None or type(state) is not dict or not all(
                type(k) is str and k in HISTORY_FIELDS for k in state):
            raise refuse('a HistoryBuffer state has fields mmengine never '
                         f'writes (it writes {HISTORY_FIELDS})')
        max_length = state.get('max_length', 1000000)
        if type(max_length) is not int or not 1 <= max_length < 2**62:
            raise refuse('HistoryBuffer.max_length is not a positive int')
        arrays = [state.get(k) for k in ('_log_history', '_count_history')]
        if not all(type(a) is np.ndarray and a.ndim == 1 and a.dtype.kind in
                   'biuf' for a in arrays) or \
                len(arrays[0]) != len(arrays[1]):
            raise refuse('HistoryBuffer histories are not two 1-D numeric '
                         'numpy arrays of one length')
        methods = state.get('statistics_methods', {})
        if type(methods) is not dict or any(
                name not in STATISTICS or method != name
                for name, method in methods.items()):
            raise refuse('HistoryBuffer.statistics_methods are not '
                         "mmengine's own min / max / current / mean")
        real = HistoryBuffer(max_length=max_length)
        real._log_history, real._count_history = arrays
        self.real = real


def _getattr(owner: Any, name: Any) -> str:
    """``getattr(HistoryBuffer, statistic)``: the statistic's name."""
    if owner is _PendingHistoryBuffer and type(name) is str and \
            name in STATISTICS:
        return name
    what = owner.__name__ if owner in (HistoryBuffer, _PendingHistoryBuffer) \
        else describe(owner)
    raise refuse(
        f'the checkpoint asks for getattr({what}, {describe(name)}); only '
        f'HistoryBuffer.{STATISTICS} are resolved')


def history_buffer_names() -> Dict[str, Any]:
    """mmengine's pickle names -> stand-ins."""
    return {
        HISTORY_BUFFER: _PendingHistoryBuffer,
        'builtins.getattr': _getattr,
    }


def stand_in_names(meter: Meter) -> Dict[str, Any]:
    """Every name resolved to a stand-in (checkpoints), charging ``meter``."""
    names = numpy_names(meter)
    names.update(history_buffer_names())
    return names
