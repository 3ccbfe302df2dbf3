"""Load checkpoints as data: torch's weights-only unpickler, exact stand-ins.

torch >= 2.6 loads with ``weights_only=True``: a pickle may only name
globals on an allow-list, and the unpickler calls (REDUCE, NEWOBJ) or
builds (BUILD) nothing else. mmengine 0.10.7 checkpoints also hold a
``HistoryBuffer`` (whose statistics methods pickle as
``getattr(HistoryBuffer, 'mean')``) and numpy arrays, dtypes and scalars.
Allow-listing those objects themselves is not safe, so every name they
pickle under is bound to a *stand-in* that accepts exactly what mmengine
and numpy write and refuses everything else with
:class:`UnsafeCheckpointError`.

What a pickle could reach through each name, and the stand-in's answer:

- ``builtins.getattr`` is generic: ``getattr(getattr, '__self__')`` is the
  ``builtins`` module, whose ``eval`` a BUILD on an instance with a
  ``__dict__`` plants as its ``__setstate__``, and the next BUILD calls it.
  Stand-in: resolves only ``HistoryBuffer.{min, max, current, mean}``.
- ``HistoryBuffer``: NEWOBJ makes an empty instance; BUILD runs its
  ``__setstate__``, which copies any key into the instance ``__dict__``
  (planting) and any statistics method into a dict shared by all buffers.
  Stand-in: a subclass whose ``__setstate__`` accepts only the four fields
  ``HistoryBuffer.__getstate__`` writes, with the types mmengine writes,
  then turns the object into a plain ``HistoryBuffer`` (which is not on
  the list, so no second BUILD can touch it). REDUCE would call
  ``__init__``; such an object is refused when the load ends.
- ``numpy.dtype``: a dtype's ``__setstate__`` trusts its flags, so a
  pickle can declare an object field in a dtype that claims to hold no
  objects; an array or scalar of it then reads raw bytes as object
  pointers (a crash, or worse). Stand-in: makes a *pending* dtype from a
  plain name (bool, integer, float, complex, bytes, str, datetime) whose
  BUILD state must equal, field for field, the state numpy itself writes
  for that dtype.
- ``numpy.ndarray`` is only ever an argument of ``_reconstruct``.
  Stand-in: a marker that cannot be called or instantiated (the real class
  would build an array over raw bytes with any dtype).
- ``numpy._core.multiarray._reconstruct`` (and ``numpy.core``): stand-in
  makes a pending array whose BUILD state must be ``(1, shape, pending
  dtype, fortran, bytes)`` with exactly ``prod(shape) * itemsize`` bytes;
  the array is made by ``np.frombuffer`` and copied. Object arrays are
  refused.
- ``numpy._core.multiarray.scalar`` (and ``numpy.core``): stand-in makes
  the scalar from a pending dtype and exactly ``itemsize`` bytes.
- ``builtins.bytes``: protocol 2 writes ``b''`` (the data of an empty
  array) as ``bytes()``; with an argument, ``bytes`` allocates or copies.
  Stand-in: ``bytes()`` with no argument only.

Pending objects' classes are registered under names that contain a
newline: torch's weights-only unpickler reads names only through the
line-based GLOBAL opcode (it has no STACK_GLOBAL), so no pickle can name
them; BUILD may run their strict ``__setstate__``, but nothing can call or
instantiate them. When the load ends (:mod:`mmdiff.safe_load.finish`),
every pending object is replaced by the real array, dtype or scalar it
stands for, and a load that leaves any stand-in behind, or an object
carrying a planted ``__setstate__``, is refused.

What this guarantees: the only code a checkpoint can make run is torch's
own allow-list (tensors, storages, ``OrderedDict``, ``Counter``, ...),
these stand-ins, and what they call with arguments they have checked:
``HistoryBuffer.__init__`` (when a pickle calls the class) and
``HistoryBuffer.__setstate__`` with a cleaned state. Everything a load
returns is data. During a load, on every name this list uses, torch's
process-wide list of user-allowed globals holds only this list's entry
(:mod:`mmdiff.safe_load.checkpoint`), so another library's
``add_safe_globals([getattr])`` cannot replace a stand-in. A type a user adds
with ``allow_checkpoint_types`` is unpickled by torch's rules, on
purpose; names a stand-in owns cannot be added.
``tests/test_safe_checkpoint.py`` feeds crafted pickles for each route
above and a fuzzed real checkpoint; the CIFAR archives are read through
the numpy stand-ins by a narrowed unpickler
(:mod:`mmdiff.safe_load.pickle_data`).
"""
import math
import pickle
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from mmengine.logging.history_buffer import HistoryBuffer

__all__ = [
    'UnsafeCheckpointError', 'DamagedCheckpointError', 'stand_ins',
    'pending_types'
]

STATISTICS = ('min', 'max', 'current', 'mean')
HISTORY_FIELDS = ('max_length', '_log_history', '_count_history',
                  'statistics_methods')
# bool, signed / unsigned int, float, complex, timedelta, datetime, bytes,
# str: fixed-size values without pointers.
PLAIN_KINDS = 'biufcmMSU'
UNREACHABLE = '\n'  # no GLOBAL opcode can name a key with a newline


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds something outside mmdiff's allow-list."""


class DamagedCheckpointError(ValueError):
    """A file that cannot be read as a checkpoint."""


def _refuse(what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f'{what}; mmdiff loads checkpoints as data only (see '
        'mmdiff.safe_load.stand_ins) and refuses what a genuine mmengine / '
        'numpy checkpoint never holds')


def _is_plain(value: Any) -> bool:
    """None, bool, int, str, bytes, or tuples of them (no custom __eq__)."""
    if value is None or type(value) in (bool, int, str, bytes):
        return True
    return type(value) is tuple and all(_is_plain(v) for v in value)


# ---------------------------------------------------------------------------
# numpy
class _PendingDtype:
    """A dtype named by a pickle, complete once its BUILD state checks."""

    def __init__(self, dtype: np.dtype) -> None:
        self.named, self.dtype = dtype, None

    def __setstate__(self, state: Any) -> None:
        if self.dtype is not None or not _is_plain(state) or \
                type(state) is not tuple:
            raise _refuse('a numpy dtype is built twice or from a state '
                          'numpy never writes')
        if len(state) > 1 and type(state[1]) is bytes:  # Python 2 pickles
            state = (state[0], state[1].decode('latin1')) + state[2:]
        named = self.named
        if named.kind in 'mM' and len(state) == 9:
            named = _datetime_dtype(named, state[8])
        for order in ('=', '<', '>', '|'):
            candidate = named.newbyteorder(order)
            if candidate.__reduce__()[2] == state:
                self.dtype = candidate
                return
        raise _refuse(f'the state of numpy dtype {self.named} is not one '
                      'numpy writes for it')


DATETIME_UNITS = (b'Y', b'M', b'W', b'D', b'h', b'm', b's', b'ms', b'us',
                  b'ns', b'ps', b'fs', b'as', b'generic')


def _datetime_dtype(named: np.dtype, metadata: Any) -> np.dtype:
    """datetime64 / timedelta64 with the unit a pickle's state names."""
    try:
        none, (unit, count, one, also_one) = metadata
    except (TypeError, ValueError):
        raise _refuse('a numpy datetime dtype state numpy never writes') \
            from None
    if none is not None or unit not in DATETIME_UNITS or \
            type(count) is not int or not 1 <= count < 2**31 or \
            (one, also_one) != (1, 1):
        raise _refuse('a numpy datetime dtype state numpy never writes')
    if unit == b'generic':
        return named
    return np.dtype(f'{named.kind}8[{count}{unit.decode()}]')


def codecs_encode(text: Any, encoding: Any = 'latin1') -> bytes:
    """Stand-in of ``_codecs.encode``: how protocol 2 writes bytes."""
    if type(text) is not str or encoding != 'latin1':
        raise _refuse('_codecs.encode is called with arguments pickle never '
                      'writes')
    return text.encode('latin1')


def _empty_bytes(*args: Any) -> bytes:
    """Stand-in of ``builtins.bytes``: protocol 2 writes b'' as bytes()."""
    if args:
        raise _refuse('bytes() is called with arguments')
    return b''


def _plain_dtype(name: Any) -> np.dtype:
    if type(name) is bytes:  # Python 2 pickles read with encoding='bytes'
        name = name.decode('latin1')
    if type(name) is not str or len(name) > 16:
        raise _refuse(f'numpy dtype name {name!r} is not a plain dtype')
    try:
        dtype = np.dtype(name)
    except (TypeError, ValueError):
        raise _refuse(f'numpy dtype {name!r} is unknown') from None
    if dtype.kind not in PLAIN_KINDS or dtype.fields is not None or \
            dtype.subdtype is not None or dtype.hasobject:
        raise _refuse(f'numpy dtype {name!r} is not a plain dtype '
                      '(object, void and structured dtypes are refused)')
    return dtype


def _dtype_from_pickle(name: Any,
                       align: Any = False,
                       copy: Any = True) -> _PendingDtype:
    """Stand-in of ``numpy.dtype``."""
    if align is not False or copy is not True:
        raise _refuse('numpy dtype arguments numpy never writes')
    return _PendingDtype(_plain_dtype(name))


def _built_dtype(value: Any) -> np.dtype:
    if type(value) is not _PendingDtype or value.dtype is None:
        raise _refuse('a numpy array or scalar has no complete plain dtype')
    return value.dtype


class _PendingArray:
    """An ndarray named by a pickle, complete once its BUILD state checks."""

    array: Optional[np.ndarray] = None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None or type(state) is not tuple or \
                len(state) != 5:
            raise _refuse('a numpy array state numpy never writes')
        version, shape, dtype, fortran, data = state
        dtype = _built_dtype(dtype)
        # numpy allows 64 dimensions of at most 2**63 - 1 each; checked
        # before the product, which a file could make arbitrarily slow.
        if version != 1 or type(shape) is not tuple or len(shape) > 64 or \
                not all(type(n) is int and 0 <= n < 2**63
                        for n in shape) or \
                type(fortran) is not bool or type(data) is not bytes:
            raise _refuse('a numpy array state numpy never writes')
        if len(data) != math.prod(shape) * dtype.itemsize:
            raise _refuse(f'a numpy array of shape {shape} and dtype {dtype} '
                          f'comes with {len(data)} bytes')
        order = 'F' if fortran else 'C'
        array = np.frombuffer(data, dtype=dtype).reshape(shape, order=order)
        # numpy's own unpickling hands back native byte order
        self.array = array.astype(
            dtype.newbyteorder('='), order=order, copy=True)


class _NdarrayName:
    """Stand-in of the name ``numpy.ndarray``: only an argument."""

    def __new__(cls, *args: Any) -> Any:
        if cls is _NdarrayName:
            return super().__new__(cls)
        raise _refuse('numpy.ndarray is instantiated')

    def __call__(self, *args: Any) -> Any:
        raise _refuse('numpy.ndarray is called')


# NEWOBJ calls cls.__new__(cls, ...) with cls this marker: refused above.
_NDARRAY = _NdarrayName()


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _PendingArray:
    """Stand-in of numpy's ``_reconstruct`` (array unpickling)."""
    if subtype is not _NDARRAY or shape != (0, ) or typecode != b'b':
        raise _refuse('numpy _reconstruct is called with arguments numpy '
                      'never writes')
    return _PendingArray()


def _scalar(dtype: Any, data: Any) -> Any:
    """Stand-in of numpy's ``scalar`` (scalar unpickling)."""
    dtype = _built_dtype(dtype)
    if type(data) is not bytes or len(data) != dtype.itemsize:
        raise _refuse('a numpy scalar comes with the wrong bytes')
    return np.frombuffer(data, dtype=dtype)[0]


# ---------------------------------------------------------------------------
# mmengine
class _HistoryBufferStandIn(HistoryBuffer):
    """Stand-in of mmengine's HistoryBuffer: a strict ``__setstate__``."""

    def __setstate__(self, state: Any) -> None:
        if type(state) is not dict or not all(
                type(k) is str and k in HISTORY_FIELDS for k in state):
            raise _refuse('a HistoryBuffer state has fields mmengine never '
                          f'writes (it writes {HISTORY_FIELDS})')
        clean: Dict[str, Any] = {}
        max_length = state.get('max_length', 1000000)
        if type(max_length) is not int or max_length < 1:
            raise _refuse('HistoryBuffer.max_length is not a positive int')
        clean['max_length'] = max_length
        for key in ('_log_history', '_count_history'):
            value = state.get(key)
            array = value.array if type(value) is _PendingArray else None
            if array is None or array.ndim != 1 or array.dtype.kind not in \
                    'biuf':
                raise _refuse(f'HistoryBuffer.{key} is not a 1-D numeric '
                              'numpy array')
            clean[key] = array
        methods = state.get('statistics_methods', {})
        if type(methods) is not dict or any(
                name not in STATISTICS
                or method is not getattr(HistoryBuffer, name)
                for name, method in methods.items()):
            raise _refuse('HistoryBuffer.statistics_methods are not '
                          "mmengine's own min / max / current / mean")
        clean['statistics_methods'] = dict(methods)
        self.__class__ = HistoryBuffer
        HistoryBuffer.__setstate__(self, clean)


def _getattr(owner: Any, name: Any) -> Any:
    """Stand-in of ``builtins.getattr``: HistoryBuffer's statistics only."""
    if (owner is HistoryBuffer or owner is _HistoryBufferStandIn) and \
            type(name) is str and name in STATISTICS:
        return getattr(HistoryBuffer, name)
    what = getattr(owner, '__name__', type(owner).__name__)
    raise _refuse(f'the checkpoint asks for getattr({what}, {name!r}); only '
                  f'HistoryBuffer.{STATISTICS} are resolved')


def stand_ins() -> List[Tuple[Any, str]]:
    """``(stand-in, pickle name)`` pairs of every name mmdiff resolves."""
    pairs: List[Tuple[Any, str]] = [
        (_getattr, 'builtins.getattr'),
        (_empty_bytes, 'builtins.bytes'),
        (_HistoryBufferStandIn,
         'mmengine.logging.history_buffer.HistoryBuffer'),
        (_dtype_from_pickle, 'numpy.dtype'),
        (_NDARRAY, 'numpy.ndarray'),
        (_PendingDtype, UNREACHABLE + 'pending numpy dtype'),
        (_PendingArray, UNREACHABLE + 'pending numpy array'),
    ]
    # numpy 2 pickles name numpy._core, numpy 1 numpy.core.
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        pairs += [(_reconstruct, f'{module}._reconstruct'),
                  (_scalar, f'{module}.scalar')]
    return pairs


def pending_types() -> Tuple[type, ...]:
    """The classes a BUILD may complete: pending numpy dtypes and arrays."""
    return (_PendingDtype, _PendingArray)
