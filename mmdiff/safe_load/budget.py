"""Resource budgets of a load: what a file may make the loader allocate.

Every load (checkpoints and data pickles) charges what it allocates to a
:class:`Meter` built from a :class:`LoadBudget`; the first charge over a
budget raises :class:`~mmdiff.safe_load.DamagedCheckpointError` naming the
budget, its value and how to raise it. The charges:

- ``max_bytes``: bytes of data the file makes: the pickle stream
  (:data:`PICKLE_FACTOR` times its size: the buffer, and strings decoded
  from it, which take up to four bytes per byte), every tensor storage,
  every numpy array, scalar and ``bytes`` a stand-in makes, each
  container (its ``sys.getsizeof`` and its bookkeeping) and each opcode's
  value, and the part of a tensor view larger than its storage (a stride-0
  view). Defaults to twice the file's size on disk plus 256 MiB: a
  ``torch.save`` file holds its tensors byte for byte (records are read
  only when stored uncompressed), so a real checkpoint always fits and a
  small file can never ask for gigabytes.
- ``max_pickle_bytes``: the size of the pickle stream.
- ``max_objects``: pickle opcodes executed (each makes at most one value),
  and the values one container holds counted as a tree (a tuple that
  shares its parts can stand for 2**62 values from a few hundred bytes).
- ``max_depth``: how deeply containers nest. Code that walks data
  recursively (``copy.deepcopy``, ``pickle.dumps``, ``hash``) needs one C
  stack frame per level; real checkpoints nest fewer than 12 levels.
- ``max_records``: entries in the zip directory.

A real mmengine / mmdet checkpoint uses a few percent of each default (see
``tests/test_safe_load_budgets.py``).
"""
import threading
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Iterator, Optional

from .errors import DamagedCheckpointError

__all__ = [
    'PICKLE_FACTOR', 'LoadBudget', 'load_budget', 'current_budget', 'Meter',
    'BudgetExceeded'
]

MiB = 1 << 20
#: Bytes charged per byte of a pickle stream (see the module docstring).
PICKLE_FACTOR = 5


class BudgetExceeded(DamagedCheckpointError):
    """A load asked for more than a budget allows."""


@dataclass(frozen=True)
class LoadBudget:
    """Limits on what one load may allocate (see the module docstring).

    ``max_bytes=None`` means ``2 * file size + 256 MiB``.
    """

    max_bytes: Optional[int] = None
    max_pickle_bytes: int = 1024 * MiB
    max_objects: int = 5_000_000
    max_depth: int = 64
    max_records: int = 100_000

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None and field.name == 'max_bytes':
                continue
            if type(value) is not int or value < 1:
                raise ValueError(f'LoadBudget.{field.name} must be a positive '
                                 f'int, got {value!r}')

    def bytes_for(self, file_size: int) -> int:
        """``max_bytes`` for a file of ``file_size`` bytes."""
        if self.max_bytes is not None:
            return self.max_bytes
        return 2 * file_size + 256 * MiB


_LOCAL = threading.local()


def current_budget() -> LoadBudget:
    """The budget loads use now (the default unless :func:`load_budget`)."""
    return getattr(_LOCAL, 'budget', None) or LoadBudget()


@contextmanager
def load_budget(**limits: Optional[int]) -> Iterator[LoadBudget]:
    """Loads inside the block use these limits (the others as before).

    Example::

        with mmdiff.safe_load.load_budget(max_bytes=64 << 30):
            runner.resume(path)
    """
    previous = getattr(_LOCAL, 'budget', None)
    budget = replace(current_budget(), **limits)
    _LOCAL.budget = budget
    try:
        yield budget
    finally:
        _LOCAL.budget = previous


class Meter:
    """Counts one load's charges against its budget."""

    def __init__(self, budget: LoadBudget, file_size: int) -> None:
        self.budget = budget
        self.max_bytes = budget.bytes_for(file_size)
        self.bytes = 0
        self.objects = 0

    def charge_bytes(self, n: int, what: str) -> None:
        self.bytes += n
        if self.bytes > self.max_bytes:
            raise over_budget(
                'max_bytes', self.max_bytes,
                f'{what} would bring the bytes this file makes '
                f'the loader allocate to {self.bytes}')

    def check(self, name: str, value: int, what: str) -> None:
        limit = getattr(self.budget, name)
        if value > limit:
            raise over_budget(name, limit, what)


def over_budget(name: str, limit: int, what: str) -> BudgetExceeded:
    return BudgetExceeded(
        f'{what}, over the load budget {name}={limit}. A real checkpoint '
        'stays far below the defaults; if you trust this file and it is '
        f'really this large, raise it: with mmdiff.safe_load.load_budget('
        f'{name}=...): ...')
