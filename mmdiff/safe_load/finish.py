"""After a load: pending objects made real, and nothing else left behind.

The stand-ins of :mod:`mmdiff.safe_load.stand_ins` hand back *pending*
numpy arrays and dtypes, completed by their BUILD. :func:`finished`
replaces each by the real object it stands for, then walks everything the
result holds (containers, dict keys, set members, instance ``__dict__``)
and refuses a stand-in that no replacement reached (a dict key, a set
member, a cycle through a tuple) and any object carrying its own
``__setstate__`` (planted by a BUILD on an object with a ``__dict__``,
e.g. torch's allowed ``Counter`` or ``OrderedDict``).
"""
from typing import Any, Dict

from .stand_ins import (_built_dtype, _HistoryBufferStandIn, _NdarrayName,
                        _PendingArray, _PendingDtype, _refuse)

__all__ = ['finished']


def finished(obj: Any) -> Any:
    """A loaded object with every pending object made real.

    Raises:
        UnsafeCheckpointError: A pending object was never completed or
            survived the replacement (a dict key, a set member, a cycle),
            or an object carries its own ``__setstate__``.
    """
    done = _finished(obj, {})
    _check_data_only(done)
    return done


def _finished(obj: Any, memo: Dict[int, Any]) -> Any:
    """``obj`` with every pending object replaced by what it stands for."""
    key = id(obj)
    if key in memo:
        return memo[key]
    kind = type(obj)
    if kind is _PendingArray:
        if obj.array is None:
            raise _refuse('a numpy array is never completed')
        memo[key] = obj.array
    elif kind is _PendingDtype:
        memo[key] = _built_dtype(obj)
    elif kind is _HistoryBufferStandIn:
        raise _refuse('a HistoryBuffer is created without its state')
    elif isinstance(obj, dict):
        memo[key] = obj
        for name in list(obj):
            obj[name] = _finished(obj[name], memo)
        _finished_attributes(obj, memo)  # OrderedDict._metadata, ...
    elif kind is list:
        memo[key] = obj
        obj[:] = [_finished(v, memo) for v in obj]
    elif kind is tuple:
        memo[key] = obj  # a cycle through it is caught by _check_data_only
        memo[key] = tuple(_finished(v, memo) for v in obj)
    else:
        memo[key] = obj  # sets are checked, not rebuilt: see below
        _finished_attributes(obj, memo)
    return memo[key]


def _finished_attributes(obj: Any, memo: Dict[int, Any]) -> None:
    state = getattr(obj, '__dict__', None)  # HistoryBuffer, tensors
    if type(state) is dict and state:
        _finished(state, memo)


_STAND_IN_TYPES = (_PendingArray, _PendingDtype, _HistoryBufferStandIn,
                   _NdarrayName)


def _check_data_only(obj: Any) -> None:
    """Refuse what no replacement reached, and planted ``__setstate__``.

    Walks everything the loaded object holds (containers, dict keys, set
    members, instance ``__dict__``), without recursion.
    """
    seen, stack = set(), [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, _STAND_IN_TYPES):
            raise _refuse('a numpy object or HistoryBuffer is never '
                          'completed, or is a dict key or set member')
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        state = getattr(item, '__dict__', None)
        if type(state) is dict:
            if '__setstate__' in state or '__reduce_ex__' in state:
                raise _refuse('an object carries its own __setstate__')
            stack.append(state)
