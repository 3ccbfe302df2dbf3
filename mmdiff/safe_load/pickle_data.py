"""Read plain-data pickle files (the CIFAR archives) without running code.

The CIFAR "python version" archives are pickles of dicts, lists, bytes and
numpy arrays. :func:`load_pickle_data` reads them with Python's own
(pure-Python) unpickler, narrowed to data:

- a global resolves only to numpy's stand-ins of
  :mod:`mmdiff.safe_load.stand_ins` and ``_codecs.encode`` (how protocol 2
  writes bytes); ``getattr`` and ``HistoryBuffer``, which checkpoints
  need, are not on this list;
- REDUCE calls only those stand-ins; BUILD only completes a pending numpy
  array or dtype (a plain unpickler would BUILD any object, e.g. plant
  attributes on a module-level stand-in);
- opcodes that make objects of a class (INST, OBJ, NEWOBJ, NEWOBJ_EX), the
  extension registry (EXT1/2/4), persistent ids and out-of-band buffers
  are refused.

Everything else is refused with
:class:`~mmdiff.safe_load.UnsafeCheckpointError`. A stand-in's name cannot
be spelled by a GLOBAL either: the pending classes are not in the table.
"""
import pickle
from typing import Any, Callable, Dict

from .finish import finished
from .stand_ins import (DamagedCheckpointError, UnsafeCheckpointError,
                        codecs_encode, pending_types, stand_ins)

__all__ = ['load_pickle_data']

# Python 2 wrote these modules under their old names.
_OLD_NAMES = {'__builtin__': 'builtins', 'copy_reg': 'copyreg'}
# numpy's names only: CIFAR pickles hold no HistoryBuffer, no getattr.
_NUMPY_PREFIXES = ('numpy.', 'builtins.bytes')


def _data_table() -> Dict[str, Any]:
    table = {
        name: obj
        for obj, name in stand_ins() if name.startswith(_NUMPY_PREFIXES)
    }
    table['_codecs.encode'] = codecs_encode
    return table


def _refused(opcode: str) -> Callable[[Any], None]:

    def load(self: Any) -> None:
        raise UnsafeCheckpointError(
            f'the file uses the pickle opcode {opcode}, which plain data '
            'never needs')

    return load


class _DataUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """Python's unpickler, narrowed to data (see the module docstring)."""

    table: Dict[str, Any] = {}
    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def find_class(self, module: str, name: str) -> Any:
        full = f'{_OLD_NAMES.get(module, module)}.{name}'
        if full not in self.table:
            raise UnsafeCheckpointError(
                f'the file names the global {full}, which a plain-data '
                'pickle never holds; mmdiff reads such files as data only')
        return self.table[full]

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError('the file refers to persistent objects')

    def load_reduce(self) -> None:
        func = self.stack[-2]
        if not any(func is obj for obj in self.table.values()):
            raise UnsafeCheckpointError(
                'the file calls something that is not a numpy stand-in')
        super().load_reduce()

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) not in pending_types():
            raise UnsafeCheckpointError(
                f'the file builds a {type(inst).__name__}; only numpy '
                'arrays and dtypes are built')
        inst.__setstate__(state)

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.BUILD[0]] = load_build
    for _name in ('INST', 'OBJ', 'NEWOBJ', 'NEWOBJ_EX', 'EXT1', 'EXT2', 'EXT4',
                  'NEXT_BUFFER', 'READONLY_BUFFER', 'PERSID', 'BINPERSID'):
        dispatch[getattr(pickle, _name)[0]] = _refused(_name)
    del _name


def load_pickle_data(path: str, encoding: str = 'bytes') -> Any:
    """Load a pickle file that holds plain data only.

    Args:
        path (str): The file.
        encoding (str): How Python 2 ``str`` objects are read. Defaults to
            ``'bytes'`` (what the CIFAR archives need).

    Returns:
        The data, with real numpy arrays.

    Raises:
        UnsafeCheckpointError: The file names a global outside the
            stand-ins, or a stand-in refused its arguments.
        DamagedCheckpointError: The file is not a readable pickle.
    """
    if not _DataUnpickler.table:
        _DataUnpickler.table = _data_table()
    with open(path, 'rb') as f:
        try:
            return finished(_DataUnpickler(f, encoding=encoding).load())
        except UnsafeCheckpointError as err:
            raise UnsafeCheckpointError(f'Refusing to load {path!r}: {err}') \
                from None
        except Exception as err:  # noqa: B902  damaged files fail anywhere
            raise DamagedCheckpointError(
                f'Cannot read {path!r} as a data pickle '
                f'({type(err).__name__}: {str(err)[:300]})') from None
