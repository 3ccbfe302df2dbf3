"""torch's checkpoint format read as data: the zip, its storages, tensors.

``torch.save`` writes a zip: ``<name>/data.pkl`` (the pickle) and one
record ``<name>/data/<key>`` per storage, referred to from the pickle by a
persistent id ``('storage', storage type, key, location, numel)``. This
module reads that layout itself, so that every size is checked before
anything is allocated:

- the zip directory's entry count (also from the directory's size, which
  the end record cannot hide), and the size of ``data.pkl`` and of each
  storage record; records are read only when stored uncompressed, as
  ``torch.save`` writes them, so a small file cannot inflate;
- a storage has exactly ``numel * element size`` bytes, one dtype (not a
  quantized one, which torch writes differently) and a device location;
- a tensor is a view inside its storage (offset, sizes and strides checked
  before torch sees them); the part of a view larger than its storage (a
  stride-0 view) is charged to the byte budget;
- the stand-ins: ``_rebuild_tensor_v2`` and ``_rebuild_parameter`` with
  torch's own arguments (no backward hooks), ``OrderedDict()``,
  ``Counter({key: int})`` (mmengine's ``MultiStepLR`` milestones) and
  ``set([...])`` / ``frozenset([...])`` of hashable plain values.

A ``torch.save`` file of torch < 1.6 (not a zip) is refused with how to
convert it.
"""
import functools
import math
import re
import struct
import sys
import zipfile
import zlib
from collections import Counter, OrderedDict
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from .budget import PICKLE_FACTOR, Meter
from .containers import Marker, check_keys
from .errors import DamagedCheckpointError, refuse

__all__ = ['TorchZip', 'torch_names']

_MAX_DIMS = 64
# the devices torch writes a storage's location as
_LOCATION = re.compile(r'(cpu|cuda|xpu|mps|hpu)(:[0-9]{1,4})?')


class _StorageType(Marker):
    """What ``torch.<X>Storage`` resolves to: its dtype, nothing callable."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.itemsize = dtype.itemsize


class _Storage(Marker):
    """A storage read from the archive: untyped bytes and their dtype."""

    def __init__(self, untyped: Any, kind: _StorageType, numel: int) -> None:
        self.untyped, self.numel = untyped, numel
        self.dtype, self.itemsize = kind.dtype, kind.itemsize


@functools.lru_cache(maxsize=None)
def _storage_types() -> Dict[str, _StorageType]:
    """``torch.<X>Storage`` names (made once: markers without state)."""
    names = {'torch.UntypedStorage': _StorageType(torch.uint8)}
    for name in dir(torch):
        kind = getattr(torch, name)
        # quantized storages need torch's _rebuild_qtensor, not listed
        if name.endswith('Storage') and isinstance(kind, type) and \
                issubclass(kind, torch.storage._LegacyStorage) and \
                not name.startswith('Q'):
            names[f'torch.{name}'] = _StorageType(kind._dtype)
    return names


class TorchZip:
    """One ``torch.save`` archive, read within ``meter``'s budget.

    Args:
        path (str): the file.
        meter (Meter): the load's budget.
        map_location: as in :func:`torch.load`.
    """

    def __init__(self, path: str, meter: Meter,
                 map_location: Optional[Any]) -> None:
        self.meter = meter
        self._check_directory(path)
        self.zip = zipfile.ZipFile(path)
        names = self.zip.namelist()
        self.meter.check('max_records', len(names),
                         f'the zip directory holds {len(names)} records')
        if not names or '/' not in names[0]:
            raise DamagedCheckpointError('the zip holds no torch archive')
        self.prefix = names[0].split('/', 1)[0]
        self._restore = _restore_location(map_location)
        self._storages: Dict[str, _Storage] = {}
        self._swap = self._byte_order() != _native_order()

    def __enter__(self) -> 'TorchZip':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.zip.close()

    def _check_directory(self, path: str) -> None:
        with open(path, 'rb') as f:
            if not zipfile.is_zipfile(f):
                f.seek(0)
                if f.read(4) == b'PK\x03\x04':
                    raise DamagedCheckpointError(
                        'the file is damaged or truncated: a zip without its '
                        'directory')
                raise DamagedCheckpointError(
                    'it is not a zip archive; torch >= 1.6 saves checkpoints '
                    'as zips. A file from an older torch can be converted '
                    "with torch's own weights-only loader: python -c "
                    '"import torch; torch.save(torch.load(\'old.pth\', '
                    'weights_only=True), \'new.pth\')"')
            end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
        # an entry takes at least 46 bytes of the directory, whatever the
        # count the end record claims
        entries = max(
            end[zipfile._ECD_ENTRIES_TOTAL],  # type: ignore
            end[zipfile._ECD_SIZE] // 46)  # type: ignore
        self.meter.check('max_records', entries,
                         f'the zip directory holds up to {entries} records')

    def _info(self, name: str) -> zipfile.ZipInfo:
        try:
            return self.zip.getinfo(f'{self.prefix}/{name}')
        except KeyError:
            raise DamagedCheckpointError(
                f'the archive has no record {name}') from None

    def _read(self, info: zipfile.ZipInfo, n: int) -> torch.Tensor:
        """Exactly ``n`` bytes of a stored record (uint8), read straight
        into memory that is not zeroed first."""
        if info.file_size != n:
            raise DamagedCheckpointError(
                f'record {info.filename} holds {info.file_size} bytes, '
                f'{n} expected')
        if info.compress_type != zipfile.ZIP_STORED:
            raise DamagedCheckpointError(
                f'record {info.filename} is compressed (zip method '
                f'{info.compress_type}); torch.save stores every record '
                'uncompressed, and mmdiff reads stored records only, so that '
                'a small file cannot inflate. Re-save the checkpoint with '
                'torch.save')
        tensor = torch.empty(n, dtype=torch.uint8)
        data = memoryview(tensor.numpy())
        f = self.zip.fp
        f.seek(info.header_offset)
        header = f.read(30)
        if len(header) != 30 or header[:4] != b'PK\x03\x04':
            raise DamagedCheckpointError(
                f'record {info.filename} has no local header')
        name, extra = struct.unpack('<HH', header[26:30])
        f.seek(info.header_offset + 30 + name + extra)
        if f.readinto(data) != n:
            raise DamagedCheckpointError(f'record {info.filename} ends early')
        if zlib.crc32(data) != info.CRC:
            raise DamagedCheckpointError(
                f'record {info.filename} fails its CRC check')
        return tensor

    def _byte_order(self) -> str:
        name = f'{self.prefix}/byteorder'
        if name not in self.zip.NameToInfo:
            return 'little'
        info = self.zip.getinfo(name)
        if info.file_size > 8:
            raise DamagedCheckpointError('the byteorder record is too long')
        order = self._read(info, info.file_size).numpy().tobytes()
        if order not in (b'little', b'big'):
            raise DamagedCheckpointError('unknown byte order record')
        return order.decode()

    def pickle_bytes(self) -> bytes:
        info = self._info('data.pkl')
        self.meter.check('max_pickle_bytes', info.file_size,
                         f'data.pkl inflates to {info.file_size} bytes')
        self.meter.charge_bytes(PICKLE_FACTOR * info.file_size,
                                f'data.pkl of {info.file_size} bytes')
        return self._read(info, info.file_size).numpy().tobytes()

    def persistent_load(self, pid: Any) -> _Storage:
        """A storage of the archive, read once per key."""
        if type(pid) is not tuple or len(pid) != 5 or pid[0] != 'storage':
            raise refuse('a persistent id that is not a torch storage')
        _, kind, key, location, numel = pid
        if type(kind) is not _StorageType or type(key) is not str or \
                len(key) > 64 or type(location) is not str or \
                not _LOCATION.fullmatch(location) or \
                type(numel) is not int or not 0 <= numel < 2**62:
            raise refuse('a torch storage id torch never writes')
        if key in self._storages:
            storage = self._storages[key]
            if storage.dtype != kind.dtype or storage.numel != numel:
                raise DamagedCheckpointError(
                    f'storage {key} is named with two dtypes or sizes')
            return storage
        nbytes = numel * kind.itemsize
        info = self._info(f'data/{key}')
        self.meter.charge_bytes(nbytes, f'storage {key} of {nbytes} bytes')
        untyped = self._read(info, nbytes).untyped_storage()
        if self._swap:
            untyped.byteswap(kind.dtype)
        untyped = self._restore(untyped, location)
        storage = self._storages[key] = _Storage(untyped, kind, numel)
        return storage


def _native_order() -> str:
    return sys.byteorder


def _restore_location(map_location: Any) -> Callable[[Any, str], Any]:
    """torch's own rule for ``map_location`` (see :func:`torch.load`)."""
    return torch.serialization._get_restore_location(map_location)


def _view_numel(size: Tuple[int, ...], stride: Tuple[int, ...], offset: int,
                storage: _Storage) -> int:
    """The view's element count, once the view is checked to fit."""
    if type(size) is not tuple or type(stride) is not tuple or \
            len(size) != len(stride) or len(size) > _MAX_DIMS or \
            not all(type(n) is int and 0 <= n < 2**62
                    for n in (*size, *stride, offset)):
        raise refuse('a tensor with sizes, strides or offset torch never '
                     'writes')
    numel = math.prod(size)
    last = offset + sum(max(n - 1, 0) * s for n, s in zip(size, stride))
    if (last >= storage.numel and numel) or offset > storage.numel or \
            last >= 2**62:
        raise DamagedCheckpointError(
            f'a tensor of size {size} and stride {stride} at offset '
            f'{offset} reaches past its storage of {storage.numel} elements')
    return numel


def torch_names(meter: Meter) -> Dict[str, Any]:
    """torch's pickle names -> stand-ins charging ``meter``."""

    def rebuild_tensor(storage: Any,
                       offset: Any,
                       size: Any,
                       stride: Any,
                       requires_grad: Any,
                       hooks: Any,
                       metadata: Any = None) -> torch.Tensor:
        if type(storage) is not _Storage or type(requires_grad) is not bool \
                or type(hooks) is not OrderedDict or hooks or \
                metadata not in (None, {}) and not _tensor_flags(metadata):
            raise refuse('a tensor rebuilt with arguments torch never writes')
        numel = _view_numel(size, stride, offset, storage)
        beyond = (numel - storage.numel) * storage.itemsize
        if beyond > 0:
            meter.charge_bytes(
                beyond, f'a tensor view of {numel} elements '
                f'over a storage of {storage.numel}')
        tensor = torch.empty((0, ),
                             dtype=storage.dtype,
                             device=storage.untyped.device)
        tensor.set_(storage.untyped, offset, size, stride)
        if requires_grad:
            tensor.requires_grad_(True)
        if metadata:
            torch._utils.set_tensor_metadata(tensor, metadata)
        return tensor

    names: Dict[str, Any] = dict(_storage_types())
    names.update({
        'torch._utils._rebuild_tensor_v2': rebuild_tensor,
        'torch._utils._rebuild_parameter': _rebuild_parameter,
        'collections.OrderedDict': _ordered_dict,
        'collections.Counter': _counter,
        'builtins.set': _SET,
        'builtins.frozenset': _FROZENSET,
    })
    return names


def _rebuild_parameter(data: Any, requires_grad: Any,
                       hooks: Any) -> torch.nn.Parameter:
    if type(data) is not torch.Tensor or \
            type(requires_grad) is not bool or \
            type(hooks) is not OrderedDict or hooks:
        raise refuse('a parameter rebuilt with arguments torch never '
                     'writes')
    return torch.nn.Parameter(data, requires_grad)


def _ordered_dict(*args: Any) -> OrderedDict:
    if args:
        raise refuse('OrderedDict is called with arguments')
    return OrderedDict()


def _make_set(kind: type) -> Callable[..., Any]:

    def build(items: Any = ()) -> Any:
        if type(items) is not list:
            raise refuse(f'{kind.__name__}() is called with arguments '
                         'pickle never writes')
        check_keys(items)
        return kind(items)

    return build


def _counter(counts: Any = None) -> Counter:
    """mmengine's MultiStepLR keeps its milestones in a Counter."""
    if counts is None:
        return Counter()
    if type(counts) is not dict or not all(
            type(v) is int for v in counts.values()):
        raise refuse('Counter() is called with arguments pickle never '
                     'writes')
    check_keys(counts)
    return Counter(counts)


# one stand-in each, made once (REDUCE finds a stand-in by identity)
_SET = _make_set(set)
_FROZENSET = _make_set(frozenset)


def _tensor_flags(metadata: Any) -> bool:
    """``get_tensor_metadata``: the conj / neg bits, as booleans."""
    return type(metadata) is dict and all(
        k in ('conj', 'neg') and type(v) is bool for k, v in metadata.items())
