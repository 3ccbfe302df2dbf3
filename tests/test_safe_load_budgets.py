"""Files that crash a loader or exhaust its memory: each ends in an error.

Five classes of hand-made file (planted attributes, tiny files that ask
for gigabytes, decompression bombs, deep nesting, colliding hash keys)
are each loaded in a forked child of a child process, under an address-
space limit, so that a crash or a blow-up fails the test instead of the
suite. The child reports the outcome, the message and how far its peak
resident memory rose; every load must end as data or in one of the two
errors, the errors must name the budget they hit, and the rise must stay
within the budget plus :data:`MARGIN`.
"""
import json
import os
import struct
import subprocess
import sys
import zipfile
from typing import Any, Callable, Dict, List

import pytest

from .crafted_pickles import (PROTO, STOP, binint, glob, long, text,
                              write_checkpoint)

MiB = 1 << 20
BUDGET = 32 * MiB  # max_bytes in the child: far below every blow-up
MARGIN = 48 * MiB  # interpreter, pickle buffers and bookkeeping

CHILD = r'''
import json, os, resource, sys
import mmdiff
from mmdiff.safe_load import (DamagedCheckpointError, UnsafeCheckpointError,
                              load_budget, load_checkpoint_file,
                              load_pickle_data)

def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1]) * 1024

def reset_peak():
    """Linux: the peak resident size starts again from the current one."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    return status('VmRSS')

kind, limits, paths = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
load = load_checkpoint_file if kind == 'checkpoint' else load_pickle_data
vm = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0])
cap = vm * 1024 + (3 << 30)  # a blow-up stops here, not in the machine
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
out = {}
for path in paths:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        before = reset_peak()
        try:
            with load_budget(**limits):
                load(path)
            result = ['loaded', '']
        except UnsafeCheckpointError as err:
            result = ['unsafe', str(err)]
        except DamagedCheckpointError as err:
            result = ['damaged', str(err)]
        except BaseException as err:
            result = ['other', f'{type(err).__name__}: {err}']
        result.append(status('VmHWM') - before)
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    data = b''
    while True:
        chunk = os.read(read, 65536)
        if not chunk:
            break
        data += chunk
    _, code = os.waitpid(pid, 0)
    out[path] = json.loads(data) if data else [
        'crashed', f'wait status {code}', 0]
print(json.dumps(out))
'''


def load_in_child(kind: str, paths: List[str],
                  **limits: int) -> Dict[str, Any]:
    limits.setdefault('max_bytes', BUDGET)
    run = subprocess.run(
        [sys.executable, '-c', CHILD, kind,
         json.dumps(limits), *paths],
        capture_output=True,
        text=True,
        timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


# ---------------------------------------------------------------------------
# the payloads: name -> (data.pkl bytes or a writer, budget it hits)
def storage_pid(key: str, numel: int, kind: str = 'FloatStorage') -> bytes:
    """('storage', torch.<kind>, key, 'cpu', numel) as a persistent id."""
    return (b'(' + text('storage') + glob('torch', kind) + text(key) +
            text('cpu') + binint(numel) + b'tQ')


def empty_hooks() -> bytes:
    return glob('collections', 'OrderedDict') + b')R'


def stride0_view(n: int) -> bytes:
    """One float viewed n x n with stride 0: n * n * 4 bytes if used."""
    return (PROTO + glob('torch._utils', '_rebuild_tensor_v2') + b'(' +
            storage_pid('0', 1) + b'K\x00' + binint(n) + binint(n) + b'\x86' +
            b'K\x00K\x00\x86' + b'\x89' + empty_hooks() + b'tR' + STOP)


def call(module: str, name: str, *args: bytes) -> bytes:
    return PROTO + glob(module, name) + b'(' + b''.join(args) + b'tR' + STOP


def planted_on_ordered_dict(attribute: str) -> bytes:
    return (PROTO + empty_hooks() + b'}' + text(attribute) + text('x') + b's' +
            b'b' + STOP)


def history_buffer_state(entries: bytes) -> bytes:
    return (PROTO + glob('mmengine.logging.history_buffer', 'HistoryBuffer') +
            b')\x81' + b'}' + entries + b'b' + STOP)


def counter_array_interface() -> bytes:
    """The issue's crash: a Counter carrying a planted
    ``__array_interface__`` handed to the HistoryBuffer stand-in."""
    counter = (
        glob('collections', 'Counter') + b')R' + b'}' +
        text('__array_interface__') + b'}(' + text('data') + b'(' +
        binint(16) + b'\x89t' + text('shape') + b'K\x10\x85' +
        text('typestr') + text('<f8') + b'u' + b's' + b'b')
    return history_buffer_state(text('_log_history') + counter + b's')


def nested_tuple_key(depth: int) -> bytes:
    return PROTO + b'}' + b'N' + b'\x85' * depth + b'Ns' + STOP


def nested_lists(depth: int) -> bytes:
    return PROTO + b'(' * depth + b'l' * depth + STOP


def colliding_int_keys(n: int) -> bytes:
    """Keys k * (2**61 - 1) share one hash: a quadratic dict."""
    items = b''.join(long(k * (2**61 - 1)) + b'N' for k in range(1, n + 1))
    return PROTO + b'}(' + items + b'u' + STOP


def tuple_of_int_keys() -> bytes:
    return PROTO + b'}' + b'K\x01K\x02\x86' + b'Ns' + STOP


def float_key() -> bytes:
    return PROTO + b'}' + b'G' + struct.pack('>d', 1.5) + b'Ns' + STOP


def empty_sets(n: int) -> bytes:
    """Many small objects from one byte each."""
    return PROTO + b'\x8f' * n + b'.'


def memo_reused_set_calls(n: int, calls: int) -> bytes:
    """set(list) over one memo'd list, called again and again."""
    items = b''.join(text(str(i)) for i in range(n))
    return (PROTO + glob('builtins', 'set') + b'q\x00' + b'(' + b'(' + items +
            b'l' + b'\x85' + b'q\x01' + b'0' + (b'h\x00h\x01R0') * calls +
            b'N.')


def shared_tuple_tree(depth: int) -> bytes:
    """A tuple of tuples sharing their parts: 2**depth leaves."""
    return PROTO + b'N\x85' + b'2\x86' * depth + STOP


def dtype_named_by_a_tree(depth: int) -> bytes:
    """numpy.dtype(<2**depth leaves>): no message may repr it."""
    return (PROTO + glob('numpy', 'dtype') + b'N\x85' + b'2\x86' * depth +
            b'\x89\x88\x87R' + STOP)


def wide_text(n: int) -> bytes:
    """One emoji, then ASCII: the string takes 4 bytes per character."""
    data = '\U0001F600'.encode() + b'a' * n
    return PROTO + b'\x8d' + struct.pack('<Q', len(data)) + data + STOP


def quantized_storage() -> bytes:
    return (PROTO + glob('torch._utils', '_rebuild_tensor_v2') + b'(' +
            storage_pid('0', 16, 'QInt8Storage') + b'K\x00K\x04\x85K\x01'
            b'\x85\x89' + empty_hooks() + b'tR' + STOP)


PAYLOADS: Dict[str, Callable[[], bytes]] = {
    # 2. planted attributes
    'counter_array_interface':
    counter_array_interface,
    'ordered_dict_deepcopy':
    lambda: planted_on_ordered_dict('__deepcopy__'),
    'ordered_dict_reduce':
    lambda: planted_on_ordered_dict('__reduce__'),
    'ordered_dict_array_interface':
    lambda: planted_on_ordered_dict('__array_interface__'),
    'history_buffer_extra_field':
    lambda: history_buffer_state(text('__array_interface__') + b'}s'),
    # 3. tiny files that ask for gigabytes
    'bytearray_call':
    lambda: call('builtins', 'bytearray', binint(1 << 30)),
    'untyped_storage_call':
    lambda: call('torch', 'UntypedStorage', binint(1 << 30)),
    'tensor_call':
    lambda: call('torch', 'Tensor', binint(1 << 30)),
    'stride0_view':
    lambda: stride0_view(20000),
    # 5. nesting and hashing
    'nested_tuple_key':
    lambda: nested_tuple_key(500_000),
    'nested_lists':
    lambda: nested_lists(500_000),
    'colliding_int_keys':
    lambda: colliding_int_keys(20_000),
    'tuple_of_int_keys':
    tuple_of_int_keys,
    'float_key':
    float_key,
    # found by attacking the loader: objects, reuse, shared parts, text
    'empty_sets':
    lambda: empty_sets(1_000_000),
    'memo_reused_set_calls':
    lambda: memo_reused_set_calls(10_000, 10_000),
    'shared_tuple_tree':
    lambda: shared_tuple_tree(62),
    'dtype_named_by_a_tree':
    lambda: dtype_named_by_a_tree(62),
    'wide_text':
    lambda: wide_text(12 * MiB),
    # names that are only arguments, handed back as data
    'ndarray_marker':
    lambda: PROTO + glob('numpy', 'ndarray') + STOP,
    'stand_in_function':
    lambda: PROTO + glob('numpy', 'dtype') + STOP,
    'marker_in_a_list':
    lambda: PROTO + b'(' + glob('numpy', 'ndarray') + b'l' + STOP,
    'marker_in_a_tuple':
    lambda: PROTO + glob('numpy', 'ndarray') + b'\x85' + STOP,
    'quantized_storage':
    quantized_storage,
    'storage_marker':
    lambda: PROTO + storage_pid('0', 1) + STOP,
    'storage_type_marker':
    lambda: PROTO + glob('torch', 'FloatStorage') + STOP,
    'empty_view_far_offset':
    lambda:
    (PROTO + glob('torch._utils', '_rebuild_tensor_v2') + b'(' + storage_pid(
        '0', 1) + long(2**62 - 1) + b'K\x00\x85K\x01\x85'
     b'\x89' + empty_hooks() + b'tR' + STOP),
}
# what each is refused for: 'unsafe', or the budget named in the message
EXPECTED = {
    'counter_array_interface': 'unsafe',
    'ordered_dict_deepcopy': 'unsafe',
    'ordered_dict_reduce': 'unsafe',
    'ordered_dict_array_interface': 'unsafe',
    'history_buffer_extra_field': 'unsafe',
    'bytearray_call': 'unsafe',
    'untyped_storage_call': 'unsafe',
    'tensor_call': 'unsafe',
    'stride0_view': 'max_bytes',
    'nested_tuple_key': 'max_depth',
    'nested_lists': 'max_bytes',  # 500,000 opcodes' values, before depth
    'colliding_int_keys': 'unsafe',
    'tuple_of_int_keys': 'unsafe',
    'float_key': 'unsafe',
    'empty_sets': 'max_bytes',
    'memo_reused_set_calls': 'max_bytes',
    'shared_tuple_tree': 'max_objects',
    'dtype_named_by_a_tree': 'max_objects',  # the tree, before the call
    'wide_text': 'max_bytes',
    'ndarray_marker': 'unsafe',
    'stand_in_function': 'unsafe',
    'marker_in_a_list': 'unsafe',
    'marker_in_a_tuple': 'unsafe',
    'quantized_storage': 'unsafe',
    'storage_marker': 'unsafe',
    'storage_type_marker': 'unsafe',
    'empty_view_far_offset': 'damaged',
}
# the torch names: checkpoints only
TORCH_ONLY = ('stride0_view', 'quantized_storage', 'storage_marker',
              'storage_type_marker', 'empty_view_far_offset')
# their storage record '0' (one float)
WITH_STORAGE = ('stride0_view', 'storage_marker', 'empty_view_far_offset')


def _check(result: Dict[str, Any], expected: Dict[str, str],
           budget: int) -> None:
    for path, (outcome, message, rise) in result.items():
        name = os.path.basename(path).split('.')[0]
        want = expected[name]
        if want in ('unsafe', 'damaged'):
            assert outcome == want, (name, outcome, message)
        else:
            assert outcome == 'damaged', (name, outcome, message)
            assert f'load budget {want}=' in message, (name, message)
        assert rise <= budget + MARGIN, (name, rise)


def test_crafted_checkpoints_end_in_an_error_within_budget(
        tmp_path: Any) -> None:
    paths = []
    for name, payload in PAYLOADS.items():
        path = write_checkpoint(str(tmp_path / f'{name}.pth'), payload())
        if name in WITH_STORAGE:
            with zipfile.ZipFile(path, 'a') as z:
                z.writestr(f'{_archive_name(path)}/data/0', b'\x00' * 4)
        paths.append(path)
    _check(load_in_child('checkpoint', paths), EXPECTED, BUDGET)


def _archive_name(path: str) -> str:
    with zipfile.ZipFile(path) as z:
        return z.namelist()[0].split('/')[0]


def test_crafted_data_pickles_end_in_an_error_within_budget(
        tmp_path: Any) -> None:
    """The CIFAR loader: the same payloads, and BYTEARRAY8's declared size
    (a 13-byte file once committed 1.4 GB before it was refused)."""
    expected = {
        name: want
        for name, want in EXPECTED.items() if name not in TORCH_ONLY
    }
    expected['bytearray8'] = 'damaged'
    expected['memo_reused_set_calls'] = 'unsafe'  # no builtins.set here
    paths = []
    for name in expected:
        path = tmp_path / name
        if name == 'bytearray8':
            path.write_bytes(b'\x80\x05\x96' + struct.pack('<Q', 1400 << 20) +
                             b'..')
        else:
            path.write_bytes(PAYLOADS[name]())
        paths.append(str(path))
    result = load_in_child('pickle', paths)
    bytearray8 = result.pop(paths[-1])
    assert bytearray8[0] == 'damaged' and 'BYTEARRAY8' in bytearray8[1]
    assert bytearray8[2] <= BUDGET + MARGIN
    expected.pop('bytearray8')
    _check(result, expected, BUDGET)


# ---------------------------------------------------------------------------
# 4. decompression bombs: sizes are read from the zip directory
def _zeros_deflated(path: str,
                    name: str,
                    size: int,
                    head: bytes,
                    byteorder: bool = True) -> None:
    """``archive/<name>``: ``head`` then zeros, ``size`` bytes, deflated."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        if byteorder:
            z.writestr('archive/byteorder', b'little')
        with z.open(f'archive/{name}', 'w') as f:
            f.write(head)
            left = size - len(head)
            while left:
                n = min(left, 8 * MiB)
                f.write(bytes(n))
                left -= n


def test_decompression_bombs_are_refused_before_inflating(
        tmp_path: Any) -> None:
    """Compressed records are refused unread: torch.save stores them."""
    pickle_bomb = str(tmp_path / 'pickle_bomb.pth')
    # a BINUNICODE of 64 MiB of NULs: the pickle inflates to 64 MiB
    _zeros_deflated(pickle_bomb, 'data.pkl', 64 * MiB,
                    PROTO + b'X' + struct.pack('<I', 64 * MiB - 8))
    storage_bomb = str(tmp_path / 'storage_bomb.pth')
    _zeros_deflated(storage_bomb, 'data/0', 64 * MiB, b'')
    with zipfile.ZipFile(storage_bomb, 'a') as z:
        z.writestr('archive/data.pkl',
                   PROTO + storage_pid('0', 16 * MiB) + STOP)
    for path in (pickle_bomb, storage_bomb):
        assert os.path.getsize(path) < MiB  # 64 MiB inflated
    result = load_in_child(
        'checkpoint', [pickle_bomb, storage_bomb], max_bytes=None)
    for path in (pickle_bomb, storage_bomb):
        outcome, message, rise = result[path]
        assert outcome == 'damaged' and 'is compressed' in message, message
        assert rise <= MARGIN, rise  # nothing inflated
    # and the size budgets hold for stored records: a 16 MiB storage is
    # refused by a smaller max_bytes before it is read
    stored = str(tmp_path / 'stored.pth')
    with zipfile.ZipFile(stored, 'w') as z:
        z.writestr('archive/data.pkl',
                   PROTO + storage_pid('0', 4 * MiB) + STOP)
        z.writestr('archive/data/0', bytes(16 * MiB))
    outcome, message, rise = load_in_child(
        'checkpoint', [stored], max_bytes=8 * MiB)[stored]
    assert outcome == 'damaged' and 'max_bytes=' in message, message
    assert rise <= MARGIN, rise


def test_a_zip_directory_that_lies_is_not_inflated_past_it(
        tmp_path: Any) -> None:
    """The directory says 4 KiB, the stream inflates to 64 MiB."""
    path = str(tmp_path / 'liar.pth')
    _zeros_deflated(path, 'data.pkl', 64 * MiB, PROTO, byteorder=False)
    with open(path, 'r+b') as f:
        data = bytearray(f.read())
        # uncompressed size: local header +22, central directory entry +24
        struct.pack_into('<I', data, 22, 4096)
        struct.pack_into('<I', data, data.index(b'PK\x01\x02') + 24, 4096)
        f.seek(0)
        f.write(data)
    result = load_in_child('checkpoint', [path])
    outcome, message, rise = result[path]
    assert outcome == 'damaged', (outcome, message)
    assert rise <= MARGIN, rise


# ---------------------------------------------------------------------------
# real files meet the defaults with room to spare
def test_legit_files_load_within_the_default_budget(tmp_path: Any) -> None:
    import torch
    ints = str(tmp_path / 'ints.pth')
    torch.save({k: [k, str(k)] for k in range(100_000)}, ints)
    nested = str(tmp_path / 'nested.pth')
    value: Any = 1
    for _ in range(30):  # 60 levels; real checkpoints nest fewer than 12
        value = {'k': [value]}
    torch.save(value, nested)
    result = load_in_child('checkpoint', [ints, nested], max_bytes=None)
    for path, (outcome, message, _) in result.items():
        assert outcome == 'loaded', (path, message)


@pytest.mark.parametrize('limit', ['max_bytes', 'max_objects', 'max_depth'])
def test_each_budget_is_configurable(limit: str, tmp_path: Any) -> None:
    import torch

    from mmdiff.safe_load import (DamagedCheckpointError, load_budget,
                                  load_checkpoint_file)
    path = str(tmp_path / 'small.pth')
    torch.save({'a': [[[torch.ones(1000)]]] * 10}, path)
    load_checkpoint_file(path)
    tight = {'max_bytes': 1000, 'max_objects': 10, 'max_depth': 3}[limit]
    with load_budget(**{limit: tight}):
        with pytest.raises(DamagedCheckpointError, match=f'{limit}={tight}'):
            load_checkpoint_file(path)
    load_checkpoint_file(path)  # the block restored the default


def test_an_r50_lvis_checkpoint_loads_exactly_within_budget(
        tmp_path: Any) -> None:
    """Mask R-CNN R50-FPN with LVIS's 1,203 classes (about 180 MB)."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    from mmdiff.safe_load import load_checkpoint_file
    register_all_modules()
    cfg = Config.fromstring(
        "_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'\n", '.py').model
    cfg.backbone.init_cfg = None
    cfg.roi_head.bbox_head.num_classes = 1203
    cfg.roi_head.mask_head.num_classes = 1203
    state = MODELS.build(cfg).state_dict()
    path = str(tmp_path / 'r50_lvis.pth')
    torch.save(dict(meta=dict(epoch=12), state_dict=state), path)
    del state
    loaded = load_checkpoint_file(path)['state_dict']
    reference = torch.load(path, weights_only=True)['state_dict']
    assert list(loaded) == list(reference)
    assert all(torch.equal(loaded[k], v) for k, v in reference.items())
    assert loaded._metadata == reference._metadata
    del loaded, reference
    size = os.path.getsize(path)
    outcome, message, rise = load_in_child(
        'checkpoint', [path], max_bytes=None)[path]
    assert outcome == 'loaded', message
    assert rise <= 2 * size + 256 * MiB + MARGIN, (rise, size)
    assert rise <= 1.5 * size, (rise, size)  # what it really takes


def test_an_end_record_that_hides_entries_is_seen_through(
        tmp_path: Any) -> None:
    path = str(tmp_path / 'many.pth')
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('archive/data.pkl', PROTO + b'N' + STOP)
        for i in range(50):
            z.writestr(f'archive/x{i}', b'')
    with open(path, 'r+b') as f:
        data = bytearray(f.read())
        end = data.rindex(b'PK\x05\x06')
        struct.pack_into('<HH', data, end + 8, 1, 1)  # "1 entry"
        f.seek(0)
        f.write(data)
    outcome, message, _ = load_in_child(
        'checkpoint', [path], max_records=10)[path]
    assert outcome == 'damaged' and 'max_records=10' in message, message
