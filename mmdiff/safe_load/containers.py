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
import sys
import types
from collections import OrderedDict
from typing import Any, Dict, List

from .budget import over_budget
from .errors import refuse

__all__ = ['ContainerOps', 'check_keys', 'Pending', 'Marker', 'is_marker']

_INT_KEY_LIMIT = 2**61 - 1
# Memory charged per container beyond sys.getsizeof (bookkeeping, the
# memo), and per value added to one.
CONTAINER_OVERHEAD = 160
ITEM_BYTES = 16
# Values that are neither pending nor markers (most of a checkpoint).
_PLAIN_TYPES = frozenset(
    (int, float, str, bytes, bool, type(None), tuple, list, dict, OrderedDict))
# Names resolve to these; they are arguments of stand-ins, never data.
_CALLABLE_KINDS = (types.FunctionType, types.BuiltinFunctionType, type)
_SALTED = (str, bytes)  # hashed with the per-process salt
_CONSTANT_KEYS = (bool, type(None))


class Marker:
    """What a name resolves to when it is only an argument of a stand-in
    (numpy's ``ndarray`` name, a storage type, a storage): never data."""


def is_marker(obj: Any) -> bool:
    """A marker, a stand-in or a class: what a file may name but not keep."""
    return isinstance(obj, (Marker, *_CALLABLE_KINDS))


def _what(obj: Any) -> str:
    if isinstance(obj, type):
        return f'the class {obj.__name__}'
    return f'a {type(obj).__name__}'


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
        # id of a container -> [nesting depth, values it holds counted as a
        # tree (a part shared twice counts twice)]
        self._info: Dict[int, List[int]] = {}
        self._inside: set = set()  # ids of containers held by another
        self._tainted: set = set()  # ids of tuples holding a marker
        self._alive: List[Any] = []  # keeps those ids from being reused

    def _real(self, obj: Any) -> Any:
        return obj.result() if isinstance(obj, Pending) else obj

    def _data(self, obj: Any) -> Any:
        """``obj`` as the load's result: data, never a marker."""
        obj = self._real(obj)
        if is_marker(obj) or id(obj) in self._tainted:
            raise refuse(f'the file hands back {_what(obj)} as data')
        return obj

    def _check_shape(self, depth: int, size: int) -> None:
        """A container's depth and tree size against the budget."""
        budget = self.meter.budget
        if depth > budget.max_depth:
            raise over_budget('max_depth', budget.max_depth,
                              f'containers nest {depth} levels deep')
        if size > budget.max_objects:
            raise over_budget(
                'max_objects', budget.max_objects,
                f'a container holds {size} values counted as a tree')

    def _made(self, obj: Any, depth: int, size: int) -> Any:
        """Record a new container: its depth, size and memory."""
        self._check_shape(depth, size)
        self.meter.charge_bytes(
            sys.getsizeof(obj) + CONTAINER_OVERHEAD,
            f'a {type(obj).__name__} of {size} values')
        self._info[id(obj)] = [depth, size]
        self._alive.append(obj)
        return obj

    def _adopt(self,
               items: List[Any],
               parent: Any = None,
               into_tuple: bool = False) -> tuple:
        """Make ``items`` real in place and mark them held.

        Returns the deepest item's depth, the values they hold (a tree
        count) and whether one is a marker (allowed in a tuple only: the
        arguments of a call, which are never data).
        """
        info, inside, tainted = self._info, self._inside, self._tainted
        deepest, size, marked = 0, len(items), False
        for i, item in enumerate(items):
            if type(item) not in _PLAIN_TYPES:  # the rare kinds, checked
                if isinstance(item, Pending):
                    item = items[i] = item.result()
                if is_marker(item):
                    if not into_tuple:
                        raise refuse(
                            f'the file puts {_what(item)} in its data')
                    marked = True
            if id(item) in tainted:
                if not into_tuple:
                    raise refuse('the file puts a marker in its data')
                marked = True
            known = info.get(id(item))
            if known is not None:
                if item is parent:
                    raise refuse('a container holds itself')
                inside.add(id(item))
                deepest = max(deepest, known[0])
                size += known[1]
        return deepest, size, marked

    def _target(self, kinds: tuple, what: str) -> Any:
        target = self.stack[-1] if self.stack else None
        if type(target) not in kinds:
            raise refuse(f'{what} on a {type(target).__name__}')
        if id(target) in self._inside:
            raise refuse('a container is changed after it was put in '
                         'another one (a cycle, which data never has)')
        return target

    def _grow(self, target: Any, adopted: tuple) -> None:
        """``target`` (recorded) now also holds what ``_adopt`` returned."""
        deepest, size, _ = adopted
        known = self._info[id(target)]
        known[0] = max(known[0], deepest + 1)
        known[1] += size
        self._check_shape(*known)
        self.meter.charge_bytes(ITEM_BYTES * size, f'{size} more values')

    def load_empty_list(self) -> None:
        self.append(self._made([], 1, 0))

    def load_empty_dict(self) -> None:
        self.append(self._made({}, 1, 0))

    def load_empty_set(self) -> None:
        self.append(self._made(set(), 1, 0))

    def load_empty_tuple(self) -> None:
        self.append(self._made((), 1, 0))

    def _tuple(self, items: List[Any]) -> None:
        deepest, size, marked = self._adopt(items, into_tuple=True)
        made = self._made(tuple(items), deepest + 1, size)
        if marked:
            self._tainted.add(id(made))
        self.append(made)

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
        deepest, size, _ = self._adopt(items)
        self.append(self._made(items, deepest + 1, size))

    def load_dict(self) -> None:
        items = self.pop_mark()
        deepest, size, _ = self._adopt(items)
        check_keys(items[0::2])
        made = dict(zip(items[0::2], items[1::2]))
        self.append(self._made(made, deepest + 1, size))

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        deepest, size, _ = self._adopt(items)
        check_keys(items)
        self.append(self._made(frozenset(items), deepest + 1, size))

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
