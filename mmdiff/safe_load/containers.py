"""The container opcodes of :class:`~.unpickler.DataUnpickler`.

A container is never changed after it has been put in another one (a real
pickle fills a container before using it), so the data has no cycles and
each container's nesting depth is known when it is built: it is checked
against the budget there. Dict keys and set members are strings, bytes,
ints below 2**61, bools, None, or tuples of strings / bytes / bools /
None: their hashes are distinct or salted per process, so building a dict
is linear in its size (``hash(k) == k`` for those ints, bar -1).
"""
import pickle
from collections import OrderedDict
from typing import Any, Dict, List

from .budget import over_budget
from .errors import refuse

__all__ = ['ContainerOps', 'check_keys', 'Pending']

_INT_KEY_LIMIT = 2**61 - 1
_SALTED = (str, bytes)  # hashed with the per-process salt
_CONSTANT_KEYS = (bool, type(None))


class Pending:
    """An object a BUILD completes (numpy array or dtype, HistoryBuffer).

    Subclasses implement :meth:`build` (check the state, make the real
    object) and keep it in ``real``; :meth:`result` hands it out.
    """

    real: Any = None
    what = 'an object'

    def build(self, state: Any) -> None:
        raise NotImplementedError

    def result(self) -> Any:
        if self.real is None:
            raise refuse(f'{self.what} is used before it is complete')
        return self.real


def _key_ok(key: Any) -> bool:
    kind = type(key)
    if kind in _SALTED or kind in _CONSTANT_KEYS:
        return True
    if kind is int:
        return -_INT_KEY_LIMIT < key < _INT_KEY_LIMIT
    if kind is tuple:
        return all(
            type(k) in _SALTED or type(k) in _CONSTANT_KEYS for k in key)
    return False


def check_keys(keys: Any) -> None:
    for key in keys:
        if not _key_ok(key):
            what = 'an int beyond 2**61, whose hash others can share' \
                if type(key) is int else f'of type {type(key).__name__}'
            raise refuse(f'a dict key or set member {what}; checkpoint keys '
                         'are strings, bytes, small ints, bools, None or '
                         'tuples of strings')


class ContainerOps:
    """Opcodes that make and fill containers, with depth bookkeeping.

    Mixed into the unpickler; it provides ``stack``, ``append``,
    ``pop_mark`` and ``meter``.
    """

    stack: List[Any]
    meter: Any

    def _init_containers(self) -> None:
        self._depth: Dict[int, int] = {}  # id of a container -> its depth
        self._inside: set = set()  # ids of containers held by another
        self._alive: List[Any] = []  # keeps those ids from being reused

    def _real(self, obj: Any) -> Any:
        return obj.result() if isinstance(obj, Pending) else obj

    def _made(self, obj: Any, depth: int) -> Any:
        """Record a new container at ``depth``."""
        if depth > self.meter.budget.max_depth:
            raise over_budget('max_depth', self.meter.budget.max_depth,
                              f'containers nest {depth} levels deep')
        self._depth[id(obj)] = depth
        self._alive.append(obj)
        return obj

    def _adopt(self, items: List[Any], parent: Any = None) -> int:
        """Make ``items`` real in place and mark them held; their depth."""
        depth, inside = self._depth, self._inside
        deepest = 0
        for i, item in enumerate(items):
            if isinstance(item, Pending):
                item = items[i] = item.result()
            d = depth.get(id(item))
            if d is not None:
                if item is parent:
                    raise refuse('a container holds itself')
                inside.add(id(item))
                if d > deepest:
                    deepest = d
        return deepest

    def _target(self, kinds: tuple, what: str) -> Any:
        target = self.stack[-1] if self.stack else None
        if type(target) not in kinds:
            raise refuse(f'{what} on a {type(target).__name__}')
        if id(target) in self._inside:
            raise refuse('a container is changed after it was put in '
                         'another one (a cycle, which data never has)')
        return target

    def _grow(self, target: Any, deepest: int) -> None:
        self._made(target, max(self._depth.get(id(target), 1), deepest + 1))

    def load_empty_list(self) -> None:
        self.append(self._made([], 1))

    def load_empty_dict(self) -> None:
        self.append(self._made({}, 1))

    def load_empty_set(self) -> None:
        self.append(self._made(set(), 1))

    def load_empty_tuple(self) -> None:
        self.append(self._made((), 1))

    def _tuple(self, items: List[Any]) -> None:
        deepest = self._adopt(items)  # before the tuple copies them
        self.append(self._made(tuple(items), deepest + 1))

    def load_tuple(self) -> None:
        self._tuple(self.pop_mark())

    def load_tuple1(self) -> None:
        self._tuple(self._pop(1))

    def _pop(self, n: int) -> List[Any]:
        if len(self.stack) < n:
            raise pickle.UnpicklingError('an opcode finds too few items')
        items = self.stack[-n:]
        del self.stack[-n:]
        return items

    def load_tuple2(self) -> None:
        self._tuple(self._pop(2))

    def load_tuple3(self) -> None:
        self._tuple(self._pop(3))

    def load_list(self) -> None:
        items = self.pop_mark()
        self.append(self._made(items, self._adopt(items) + 1))

    def load_dict(self) -> None:
        items = self.pop_mark()
        deepest = self._adopt(items)
        check_keys(items[0::2])
        self.append(
            self._made(dict(zip(items[0::2], items[1::2])), deepest + 1))

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        deepest = self._adopt(items)
        check_keys(items)
        self.append(self._made(frozenset(items), deepest + 1))

    def _add_to_list(self, items: List[Any]) -> None:
        target = self._target((list, ), 'APPEND')
        self._grow(target, self._adopt(items, target))
        target.extend(items)

    def load_append(self) -> None:
        self._add_to_list(self._pop(1))

    def load_appends(self) -> None:
        self._add_to_list(self.pop_mark())

    def _set_items(self, items: List[Any]) -> None:
        target = self._target((dict, OrderedDict), 'SETITEMS')
        if len(items) % 2:
            raise pickle.UnpicklingError('SETITEMS with an odd item count')
        self._grow(target, self._adopt(items, target))
        check_keys(items[0::2])
        target.update(zip(items[0::2], items[1::2]))

    def load_setitem(self) -> None:
        self._set_items(self._pop(2))

    def load_setitems(self) -> None:
        self._set_items(self.pop_mark())

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self._target((set, ), 'ADDITEMS')
        self._grow(target, self._adopt(items, target))
        check_keys(items)
        target.update(items)
