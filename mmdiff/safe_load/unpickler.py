"""A pickle machine that builds data only, within a budget.

:class:`DataUnpickler` is Python's own (pure-Python) unpickler with its
opcode table replaced by an allow-list. Checkpoints and the CIFAR archives
both load through it; :class:`Rules` says which globals a file may name.

- A global resolves only through ``Rules.globals``. REDUCE calls only a
  callable on ``Rules.callables`` (stand-ins that check every argument),
  NEWOBJ only a class on ``Rules.classes``, BUILD completes only a
  :class:`Pending` object, the ``_metadata`` attribute torch writes on a
  state dict's ``OrderedDict``, or an instance of a type the user allowed.
  INST, OBJ, NEWOBJ_EX, the extension registry, text persistent ids and
  out-of-band buffers are refused, as is any opcode not listed below.
- A :class:`Pending` object (a numpy array or dtype, a HistoryBuffer) is
  replaced by the real object wherever it is used (in a container, as an
  argument, as the result); one used before its BUILD is refused.
- Dict keys and set members are strings, bytes, ints below 2**61, bools,
  None, or tuples of strings / bytes / bools / None: their hashes are
  distinct or salted per process, so building a dict is linear in its size.
- A container is never changed after it has been put in another one (a
  real pickle fills a container before using it), so the data has no
  cycles and each container's nesting depth is known when it is built and
  checked against the budget.
- Each opcode, each byte a declared length asks for and each byte a
  stand-in makes are charged to the load's :class:`~.budget.Meter`.
"""
import io
import pickle
from collections import Counter, OrderedDict
from struct import unpack
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional

from .budget import Meter, over_budget
from .containers import ContainerOps, Pending
from .errors import refuse

__all__ = ['DataUnpickler', 'Pending', 'Rules']

_MAX_MEMO_INDEX = 2**32
# Memory charged per opcode: the value it makes (a number, a short string)
# and its place on the stack or in the memo.
OPCODE_BYTES = 96
# What a stand-in's call may return that holds other values.
_CALL_CONTAINERS = (list, dict, set, frozenset, OrderedDict, Counter)
# The data opcodes Python's unpickler runs unchanged.
_PLAIN_OPCODES = ('PROTO', 'FRAME', 'STOP', 'MARK', 'POP', 'POP_MARK', 'DUP',
                  'NONE', 'NEWTRUE', 'NEWFALSE', 'INT', 'BININT', 'BININT1',
                  'BININT2', 'LONG', 'LONG1', 'LONG4', 'FLOAT', 'BINFLOAT',
                  'STRING', 'BINSTRING', 'SHORT_BINSTRING', 'UNICODE',
                  'BINUNICODE', 'SHORT_BINUNICODE', 'BINUNICODE8', 'BINBYTES',
                  'SHORT_BINBYTES', 'BINBYTES8', 'BINGET', 'LONG_BINGET',
                  'BINPUT', 'LONG_BINPUT', 'MEMOIZE')


class Rules:
    """What one kind of file may name.

    Args:
        globals (Mapping[str, Any]): pickle name (``module.qualname``) ->
            the object it resolves to.
        callables (Iterable): the objects REDUCE may call.
        classes (Iterable): the classes NEWOBJ may instantiate (a
            :class:`Pending` subclass is instantiated with no arguments).
        user_types (Iterable): types the user allowed; unpickled by
            pickle's own rules (REDUCE, NEWOBJ, BUILD with their state).
    """

    def __init__(
        self,
        globals: Mapping[str, Any],
        callables: Any = (),
        classes: Any = (),
        user_types: Any = ()
    ) -> None:
        self.globals = dict(globals)
        user = tuple(user_types)
        self.callables: FrozenSet[int] = frozenset(
            id(c) for c in (*callables, *user))
        self.classes: FrozenSet[int] = frozenset(
            id(c) for c in (*classes, *user))
        self.user_types = frozenset(user)
        self._keep = (callables, classes, user)  # ids stay valid


class DataUnpickler(ContainerOps,
                    pickle._Unpickler):  # type: ignore[name-defined]
    """Python's unpickler narrowed to data (see the module docstring).

    Args:
        data (bytes): the pickle stream.
        rules (Rules): what the file may name.
        meter (Meter): the load's budget.
        encoding (str): how Python 2 ``str`` objects are read.
        persistent_load (callable, optional): resolves BINPERSID ids (torch
            storages); without it they are refused.
    """

    dispatch: Dict[int, Callable[[Any], None]] = {}

    def __init__(
            self,
            data: bytes,
            rules: Rules,
            meter: Meter,
            encoding: str = 'ASCII',
            persistent_load: Optional[Callable[[Any], Any]] = None) -> None:
        super().__init__(io.BytesIO(data), encoding=encoding)
        self.rules = rules
        self.meter = meter
        self._size = len(data)
        self._persistent = persistent_load
        self._init_containers()

    # -- the loop ----------------------------------------------------------
    def load(self) -> Any:
        self._unframer = pickle._Unframer(  # type: ignore[attr-defined]
            self._file_read, self._file_readline)
        self.read = self._unframer.read
        self.readinto = self._unframer.readinto
        self.readline = self._unframer.readline
        self.metastack: List[List[Any]] = []
        self.stack: List[Any] = []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch = self.read, self.dispatch
        limit, count = self.meter.budget.max_objects, 0
        try:
            while True:
                key = read(1)
                if not key:
                    raise EOFError('the pickle ends without STOP')
                handler = dispatch.get(key[0])
                if handler is None:
                    raise refuse(f'the pickle opcode {key!r}, which plain '
                                 'data never needs')
                count += 1
                if not count & 1023:  # each opcode makes at most one value
                    if count > limit:
                        raise over_budget('max_objects', limit,
                                          'the pickle runs more opcodes')
                    self.meter.charge_bytes(1024 * OPCODE_BYTES,
                                            f'{count} opcodes')
                handler(self)
        except pickle._Stop as stop:  # type: ignore[attr-defined]
            return self._data(stop.value)

    # -- names, calls, objects --------------------------------------------
    def find_class(self, module: str, name: str) -> Any:
        full = f'{module}.{name}'
        if full not in self.rules.globals:
            raise refuse(f'the file names the global {full}, which is not on '
                         "mmdiff's allow-list")
        return self.rules.globals[full]

    def load_global(self) -> None:
        module = self.readline()[:-1].decode('utf-8')
        name = self.readline()[:-1].decode('utf-8')
        if self.proto < 3 and self.fix_imports:
            module, name = _py2_name(module, name)
        self.append(self.find_class(module, name))

    def load_stack_global(self) -> None:
        name = self.stack.pop()
        module = self.stack.pop()
        if type(name) is not str or type(module) is not str:
            raise pickle.UnpicklingError('STACK_GLOBAL requires str')
        self.append(self.find_class(module, name))

    def _args(self) -> tuple:
        args = self.stack.pop()
        if type(args) is not tuple:
            raise refuse('a call whose arguments are not a tuple')
        return args

    def _record(self, obj: Any) -> Any:
        """A container a call made joins the bookkeeping (and its memory
        and size are charged: a file may call it many times)."""
        kind = type(obj)
        if kind not in _CALL_CONTAINERS and kind not in self.rules.user_types:
            return obj
        if isinstance(obj, dict):
            values = list(obj.values())
        elif isinstance(obj, (list, set, frozenset)):
            values = list(obj)
        else:  # a user type's instance: its state comes with BUILD
            values = []
        deepest, size, _ = self._adopt(values)
        self._made(obj, deepest + 1, size)
        return obj

    def load_reduce(self) -> None:
        args = self._args()
        func = self.stack[-1] if self.stack else None
        if id(func) not in self.rules.callables:
            raise refuse(f'the file calls {_name(func)}, which is not a '
                         'stand-in on the allow-list')
        self.stack[-1] = self._record(func(*args))

    def load_newobj(self) -> None:
        args = self._args()
        cls = self.stack.pop() if self.stack else None
        if id(cls) not in self.rules.classes:
            raise refuse(f'the file instantiates {_name(cls)}, which is not '
                         'on the allow-list')
        if isinstance(cls, type) and issubclass(cls, Pending):
            if args:
                raise refuse(f'{cls.what} is instantiated with arguments')
            self.append(cls())
        else:
            self.append(self._record(cls.__new__(cls, *args)))

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1] if self.stack else None
        if isinstance(inst, Pending):
            inst.build(state)
        elif type(inst) is OrderedDict:
            self._build_metadata(inst, state)
        elif type(inst) in self.rules.user_types:
            self._build_user_object(inst, state)
        else:
            raise refuse(f'the file sets the state of a '
                         f'{type(inst).__name__}; only numpy arrays and '
                         'dtypes, HistoryBuffers and a state dict\'s '
                         '_metadata are built')

    def _build_metadata(self, inst: OrderedDict, state: Any) -> None:
        """torch's state dicts carry ``_metadata`` and nothing else."""
        if type(state) is not dict or set(state) != {'_metadata'} or \
                type(state['_metadata']) not in (dict, OrderedDict):
            raise refuse('an OrderedDict is given attributes other than a '
                         "state dict's _metadata")
        self._target((OrderedDict, ), 'BUILD')
        self._grow(inst, self._adopt([state]))
        inst._metadata = state['_metadata']  # type: ignore[attr-defined]

    def _build_user_object(self, inst: Any, state: Any) -> None:
        """A type the user allowed, built as pickle builds it."""
        self._target((type(inst), ), 'BUILD')
        self._grow(inst, self._adopt([state]))
        setstate = getattr(type(inst), '__setstate__', None)
        if setstate is not None:
            setstate(inst, state)
            return
        slots = None
        if type(state) is tuple and len(state) == 2:
            state, slots = state
        for values in (state, slots):
            if values and type(values) is not dict:
                raise refuse('an allowed type is built from a state that is '
                             'not a dict')
        inst.__dict__.update(state or {})
        for key, value in (slots or {}).items():
            setattr(inst, key, value)

    # -- memo, lengths, persistent ids -------------------------------------
    def load_get(self) -> None:
        index = self._text_index()
        if index not in self.memo:
            raise pickle.UnpicklingError(f'memo value not found at {index}')
        self.append(self.memo[index])

    def load_put(self) -> None:
        self.memo[self._text_index()] = self.stack[-1]

    def _text_index(self) -> int:
        line = self.readline()
        if len(line) > 12:
            raise pickle.UnpicklingError('a memo index of more than 11 digits')
        index = int(line[:-1])
        if not 0 <= index < _MAX_MEMO_INDEX:
            raise pickle.UnpicklingError(f'memo index {index} out of range')
        return index

    def load_bytearray8(self) -> None:
        n, = unpack('<Q', self.read(8))
        if n > self._size:
            raise pickle.UnpicklingError(
                f'BYTEARRAY8 of {n} bytes in a pickle of {self._size}')
        self.meter.charge_bytes(n, f'a bytearray of {n} bytes')
        data = self.read(n)
        if len(data) != n:
            raise pickle.UnpicklingError('the pickle ends inside a bytearray')
        self.append(bytearray(data))

    def load_binpersid(self) -> None:
        if self._persistent is None:
            raise refuse('the file refers to persistent objects')
        pid = self._real(self.stack.pop())
        self.append(self._persistent(pid))


def _name(obj: Any) -> str:
    module = getattr(obj, '__module__', None)
    name = getattr(obj, '__qualname__', None) or type(obj).__name__
    return f'{module}.{name}' if module else name


def _py2_name(module: str, name: str) -> tuple:
    import _compat_pickle
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _refused(opcode: str) -> Callable[[Any], None]:

    def handler(self: Any) -> None:
        raise refuse(f'the file uses the pickle opcode {opcode}, which '
                     'plain data never needs')

    return handler


def _dispatch() -> Dict[int, Callable[[Any], None]]:
    table = {
        getattr(pickle, name)[0]:
        pickle._Unpickler.dispatch[getattr(pickle, name)[0]]
        for name in _PLAIN_OPCODES
    }
    for name in ('EMPTY_LIST', 'EMPTY_DICT', 'EMPTY_SET', 'EMPTY_TUPLE',
                 'TUPLE', 'TUPLE1', 'TUPLE2', 'TUPLE3', 'LIST', 'DICT',
                 'FROZENSET', 'APPEND', 'APPENDS', 'SETITEM', 'SETITEMS',
                 'ADDITEMS', 'GLOBAL', 'STACK_GLOBAL', 'REDUCE', 'NEWOBJ',
                 'BUILD', 'GET', 'PUT', 'BYTEARRAY8', 'BINPERSID'):
        table[getattr(pickle, name)[0]] = getattr(DataUnpickler,
                                                  f'load_{name.lower()}')
    for name in ('INST', 'OBJ', 'NEWOBJ_EX', 'EXT1', 'EXT2', 'EXT4', 'PERSID',
                 'NEXT_BUFFER', 'READONLY_BUFFER'):
        table[getattr(pickle, name)[0]] = _refused(name)
    return table


DataUnpickler.dispatch = _dispatch()
