"""Crafted checkpoints against mmdiff's loader: data loads, code never runs.

Each payload is a few pickle opcodes written here by hand, inside a torch
zip file (torch.save's own layout with ``data.pkl`` replaced). A payload
that would run code only touches a marker file in ``tmp_path``; the
payloads that corrupt memory (a numpy dtype whose flags hide an object
field) are loaded in a child process, so a regression shows as a failed
test rather than a crashed test run.
"""
import json
import os.path as osp
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

import mmdiff  # noqa: F401  (installs the loader)
from mmdiff.compat import (DamagedCheckpointError, UnsafeCheckpointError,
                           load_checkpoint_file)
from .crafted_pickles import (PROTO, STOP, get, glob, put, raw, text,
                              write_checkpoint)


def eval_chain(marker: str) -> bytes:
    """The issue's chain: getattr -> builtins -> eval, planted by BUILD."""
    code = f"__import__('pathlib').Path({marker!r}).touch()"
    return (PROTO + glob('__builtin__', 'getattr') + put(0) + get(0) +
            text('__self__') + b'\x86R' + put(1)  # builtins module
            + get(0) + get(1) + text('eval') + b'\x86R' + put(2)  # eval
            + glob('mmengine.logging.history_buffer', 'HistoryBuffer') +
            b')\x81' + b'}' + text('__setstate__') + get(2) + b's' + b'b' +
            text(code) + b'b' + STOP)


def os_system(marker: str) -> bytes:
    return (PROTO + glob('os', 'system') + text(f'touch {marker}') + b'\x85R' +
            STOP)


def planted_setstate(marker: str) -> bytes:
    """A BUILD that plants an allow-listed callable as __setstate__."""
    return (PROTO + glob('mmengine.logging.history_buffer', 'HistoryBuffer') +
            b')\x81' + b'}' + text('__setstate__') +
            glob('numpy._core.multiarray', 'scalar') + b's' + b'b' +
            text(marker) + b'b' + STOP)


def poisoned_statistics(marker: str) -> bytes:
    """Class-wide statistics methods replaced through one buffer's state."""
    return (PROTO + glob('mmengine.logging.history_buffer', 'HistoryBuffer') +
            b')\x81' + b'}' + text('statistics_methods') + b'}' +
            text('mean') + glob('numpy', 'dtype') + b'ss' + b'b' + STOP)


def getattr_other_name(marker: str) -> bytes:
    return (PROTO + glob('__builtin__', 'getattr') +
            glob('mmengine.logging.history_buffer', 'HistoryBuffer') +
            text('__init__') + b'\x86R' + STOP)


def dtype(name: str, state: bytes) -> bytes:
    return (glob('numpy', 'dtype') + text(name) + b'\x89\x88\x87R' + state +
            b'b')


def hidden_object_dtype() -> bytes:
    """A void dtype whose state declares an object field but flags 0."""
    object_dtype = dtype(
        'O8',
        b'(K\x03' + text('|') + b'NNN' + b'J\xff\xff\xff\xff' * 2 + b'K\x3ft')
    fields = b'}' + text('a') + object_dtype + b'K\x00\x86s'
    state = (b'(K\x03' + text('|') + b'N' + text('a') + b'\x85' + fields +
             b'K\x08K\x01K\x00t')
    return dtype('V8', state)


def array_over_pointers(marker: str) -> bytes:
    """_reconstruct + BUILD: raw bytes read as object pointers."""
    return (PROTO + glob('numpy._core.multiarray', '_reconstruct') +
            glob('numpy', 'ndarray') + b'K\x00\x85' + raw(b'b') + b'\x87R' +
            b'(K\x01K\x01\x85' + hidden_object_dtype() + b'\x89' +
            raw(b'A' * 8) + b'tb' + STOP)


def scalar_over_pointers(marker: str) -> bytes:
    return (PROTO + glob('numpy._core.multiarray', 'scalar') +
            hidden_object_dtype() + raw(b'A' * 8) + b'\x86R' + STOP)


def ndarray_new_over_pointers(marker: str) -> bytes:
    return (PROTO + glob('numpy', 'ndarray') + b'K\x01\x85' +
            hidden_object_dtype() + raw(b'A' * 8) + b'\x87\x81' + STOP)


CRAFTED = [
    eval_chain, os_system, planted_setstate, poisoned_statistics,
    getattr_other_name
]
CORRUPTING = [
    array_over_pointers, scalar_over_pointers, ndarray_new_over_pointers
]


@pytest.mark.parametrize('payload', CRAFTED, ids=lambda f: f.__name__)
def test_crafted_checkpoints_are_refused(payload: Any, tmp_path: Any) -> None:
    marker = str(tmp_path / 'marker')
    path = write_checkpoint(str(tmp_path / 'evil.pth'), payload(marker))
    before = dict(HistoryBuffer._statistics_methods)
    with pytest.raises(UnsafeCheckpointError, match='allow-list'):
        load_checkpoint_file(path)
    assert not osp.exists(marker)
    assert HistoryBuffer._statistics_methods == before


def test_the_eval_chain_is_a_real_attack(tmp_path: Any) -> None:
    """The same bytes run code under a loader that allows getattr: the
    crafted file is a working exploit, not a malformed pickle."""
    marker = str(tmp_path / 'marker')
    path = write_checkpoint(str(tmp_path / 'evil.pth'), eval_chain(marker))
    with torch.serialization.safe_globals([getattr, HistoryBuffer]):
        torch.load(path, weights_only=True)
    assert osp.exists(marker)


CHILD = '''
import json, sys
import mmdiff
from mmdiff.compat import UnsafeCheckpointError, load_checkpoint_file
out = {}
for path in sys.argv[1:]:
    try:
        load_checkpoint_file(path)
        out[path] = 'loaded'
    except UnsafeCheckpointError as err:
        out[path] = 'refused: ' + str(err)
print(json.dumps(out))
'''


def test_memory_corrupting_checkpoints_are_refused(tmp_path: Any) -> None:
    paths = [
        write_checkpoint(str(tmp_path / f'{p.__name__}.pth'), p(''))
        for p in CORRUPTING
    ]
    run = subprocess.run([sys.executable, '-c', CHILD, *paths],
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.splitlines()[-1])
    for path in paths:
        assert result[path].startswith('refused:'), (path, result[path])
        assert 'allow-list' in result[path]


def _real_checkpoint(path: str) -> None:
    """The kinds of objects an mmengine 0.10.7 checkpoint holds."""
    buffer = HistoryBuffer()
    for v in (1.5, 2.0, 0.25):
        buffer.update(v)
    torch.save(
        dict(
            meta=dict(
                epoch=3,
                seed=np.int64(7),
                time=np.float32(1.5),
                name=np.str_('run')),
            state_dict=dict(w=torch.arange(6.).reshape(2, 3)),
            message_hub=dict(
                log_scalars={'train/loss': buffer},
                runtime_info=dict(
                    arr=np.arange(6, dtype='>i4').reshape(2, 3, order='F'),
                    flags=np.array([True, False]),
                    when=np.array(['2026-12-02'], dtype='M8[D]'),
                    words=np.array([b'ab', b'c']),
                    empty=np.zeros((0, 2)),
                    dt=np.dtype('float16'),
                    pair=(np.float64(2.0), [np.arange(2)])))), path)


def test_real_checkpoint_objects_load_exactly(tmp_path: Any) -> None:
    path = str(tmp_path / 'real.pth')
    _real_checkpoint(path)
    ckpt = load_checkpoint_file(path)
    reference = torch.load(path, weights_only=False)  # our own file
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert type(buffer) is HistoryBuffer
    assert buffer.mean() == pytest.approx(1.25) and buffer.current() == 0.25
    assert buffer.statistics('max') == 2.0
    info, ref = ckpt['message_hub']['runtime_info'], reference['message_hub'][
        'runtime_info']
    for key in ('arr', 'flags', 'when', 'words', 'empty'):
        assert type(info[key]) is np.ndarray
        assert info[key].dtype == ref[key].dtype, key
        np.testing.assert_array_equal(info[key], ref[key])
    assert info['arr'].flags.f_contiguous and info['arr'].flags.writeable
    assert info['dt'] == np.dtype('float16')
    assert type(info['pair']) is tuple
    assert type(info['pair'][0]) is np.float64
    np.testing.assert_array_equal(info['pair'][1][0], np.arange(2))
    assert ckpt['meta']['seed'] == 7 and type(ckpt['meta']['seed']) is np.int64
    assert ckpt['meta']['name'] == 'run'
    assert torch.equal(ckpt['state_dict']['w'], reference['state_dict']['w'])


FUZZ = '''
import gc, json, pickletools, random, resource, sys, zipfile
import mmdiff
from mmdiff.compat import (DamagedCheckpointError, UnsafeCheckpointError,
                           load_checkpoint_file)
from mmdiff.safe_load import load_budget
src, out_dir, seed, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), \\
    int(sys.argv[4])
vm = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0])
cap = vm * 1024 + (2 << 30)
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
rng = random.Random(seed)
with zipfile.ZipFile(src) as z:
    entries = [(i, z.read(i.filename)) for i in z.infolist()]
pkl = next(d for i, d in entries if i.filename.endswith('data.pkl'))
ops = list(pickletools.genops(pkl))
codes = [op.code.encode('latin1') for op in pickletools.opcodes]
# opcodes whose argument starts with a 4- or 8-byte length
LENGTHS = {'BINUNICODE': 4, 'BINBYTES': 4, 'BINSTRING': 4, 'LONG4': 4,
           'BINUNICODE8': 8, 'BINBYTES8': 8, 'BYTEARRAY8': 8, 'FRAME': 8,
           'LONG_BINPUT': 4, 'LONG_BINGET': 4, 'BININT': 4}
with_length = [(op, pos) for op, _, pos in ops if op.name in LENGTHS]


def mutate(data):
    kind = rng.random()
    if kind < 0.3:  # a byte
        pos = rng.randrange(len(data))
        data[pos] = rng.randrange(256)
    elif kind < 0.55:  # an opcode replaced by another
        _, _, pos = rng.choice(ops)
        data[pos:pos + 1] = rng.choice(codes)
    elif kind < 0.75 and with_length:  # a length field made huge
        op, pos = rng.choice(with_length)
        n = LENGTHS[op.name]
        big = rng.choice([2**31 - 1, 2**32 - 1, 2**40, 2**63 - 1])
        data[pos + 1:pos + 1 + n] = (big % 256**n).to_bytes(n, 'little')
    elif kind < 0.9:  # a run of opcodes repeated
        a = rng.randrange(len(ops))
        b = min(len(ops) - 1, a + rng.randint(1, 6))
        start, end = ops[a][2], ops[b][2]
        data[end:end] = data[start:end] * rng.randint(1, 50)
    else:  # a run of opcodes removed
        a = rng.randrange(len(ops))
        b = min(len(ops) - 1, a + rng.randint(1, 6))
        del data[ops[a][2]:ops[b][2]]
    return data


def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1]) * 1024


counts = dict(loaded=0, unsafe=0, damaged=0)
rise = 0
for r in range(rounds):
    data = bytearray(pkl)
    for _ in range(rng.randint(1, 3)):
        data = mutate(data)
    path = f'{out_dir}/fuzz.pth'
    with zipfile.ZipFile(path, 'w') as z:
        for info, d in entries:
            z.writestr(info, bytes(data) if info.filename.endswith(
                'data.pkl') else d)
    gc.collect()  # the last load's garbage is not this load's memory
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # the peak restarts from here
    before = status('VmRSS')
    try:
        with load_budget(max_bytes=64 << 20):
            load_checkpoint_file(path)
        counts['loaded'] += 1
    except UnsafeCheckpointError:
        counts['unsafe'] += 1
    except DamagedCheckpointError:
        counts['damaged'] += 1
    rise = max(rise, status('VmHWM') - before)
counts['rise_mb'] = rise / 2**20
print(json.dumps(counts))
'''


def test_fuzzed_real_checkpoint_loads_as_data_or_fails_clearly(
        tmp_path: Any) -> None:
    src = str(tmp_path / 'real.pth')
    _real_checkpoint(src)
    rounds = 300
    run = subprocess.run(
        [sys.executable, '-c', FUZZ, src,
         str(tmp_path), '0',
         str(rounds)],
        capture_output=True,
        text=True,
        timeout=600)
    # Any other exception, or a crash of the interpreter, fails here.
    assert run.returncode == 0, run.stderr[-3000:]
    counts = json.loads(run.stdout.splitlines()[-1])
    rise = counts.pop('rise_mb')
    assert sum(counts.values()) == rounds
    assert counts['unsafe'] and counts['damaged']  # both routes exercised
    assert rise <= 64 + 48, rise  # the budget plus the stated margin
    assert not list(tmp_path.glob('marker*'))


def test_damaged_file_is_named(tmp_path: Any) -> None:
    path = str(tmp_path / 'cut.pth')
    _real_checkpoint(path)
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(DamagedCheckpointError, match='cut.pth.*damaged'):
        load_checkpoint_file(path)


# ---------------------------------------------------------------------------
# data pickles (the CIFAR archives) through the same stand-ins
def py2_str(value: bytes) -> bytes:
    """SHORT_BINSTRING: a Python 2 str (bytes under encoding='bytes')."""
    return b'U' + bytes([len(value)]) + value


def py2_cifar_batch() -> bytes:
    """A CIFAR batch as Python 2's cPickle wrote it (numpy 1 names)."""
    dtype_u1 = (
        glob('numpy', 'dtype') + py2_str(b'u1') + b'\x89\x88\x87R' +
        b'(K\x03' + py2_str(b'|') + b'NNN' + b'J\xff\xff\xff\xff' * 2 +
        b'K\x00tb')
    array = (
        glob('numpy.core.multiarray', '_reconstruct') +
        glob('numpy', 'ndarray') + b'K\x00\x85' + py2_str(b'b') + b'\x87R' +
        b'(K\x01K\x02K\x03\x86' + dtype_u1 + b'\x89' +
        py2_str(bytes(range(6))) + b'tb')
    return (PROTO + b'}(' + py2_str(b'labels') + b'](K\x07K\x02e' +
            py2_str(b'data') + array + b'u' + STOP)


def test_python2_cifar_batch_loads_as_data(tmp_path: Any) -> None:
    from mmdiff.safe_load import load_pickle_data
    path = tmp_path / 'data_batch_1'
    path.write_bytes(py2_cifar_batch())
    batch = load_pickle_data(str(path))
    assert batch[b'labels'] == [7, 2]
    assert type(batch[b'data']) is np.ndarray
    np.testing.assert_array_equal(batch[b'data'],
                                  np.arange(6, dtype=np.uint8).reshape(2, 3))


@pytest.mark.parametrize('payload', CRAFTED, ids=lambda f: f.__name__)
def test_data_pickles_refuse_the_crafted_payloads(payload: Any,
                                                  tmp_path: Any) -> None:
    from mmdiff.safe_load import load_pickle_data
    marker = str(tmp_path / 'marker')
    path = tmp_path / 'batch'
    path.write_bytes(payload(marker))
    with pytest.raises(UnsafeCheckpointError):
        load_pickle_data(str(path))
    assert not osp.exists(marker)


def test_data_pickles_refuse_memory_corruption(tmp_path: Any) -> None:
    paths = []
    for p in CORRUPTING:
        path = tmp_path / p.__name__
        path.write_bytes(p(''))
        paths.append(str(path))
    child = CHILD.replace('load_checkpoint_file',
                          'load_pickle_data').replace('mmdiff.compat',
                                                      'mmdiff.safe_load')
    run = subprocess.run([sys.executable, '-c', child, *paths],
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert all(v.startswith('refused:') for v in result.values()), result


# ---------------------------------------------------------------------------
# routes found in review: around the stand-ins rather than through them
def build_on_a_stand_in(marker: str) -> bytes:
    """BUILD on the module-level ndarray marker plants an attribute."""
    return (PROTO + glob('numpy', 'ndarray') + b'}' + text('planted') +
            text(marker) + b's' + b'b' + STOP)


def counter_with_setstate(marker: str) -> bytes:
    """torch's allowed Counter has a __dict__ and no __setstate__."""
    return (PROTO + glob('collections', 'Counter') + b')R' + b'}' +
            text('__setstate__') + glob('__builtin__', 'getattr') + b's' +
            b'b' + STOP)


def unfinished_buffer_in_ordered_dict(marker: str) -> bytes:
    """An uncompleted HistoryBuffer hidden in an OrderedDict's __dict__."""
    return (PROTO + glob('collections', 'OrderedDict') + b')R' + b'}' +
            text('_metadata') +
            glob('mmengine.logging.history_buffer', 'HistoryBuffer') +
            b')\x81' + b's' + b'b' + STOP)


def pending_array(shape: bytes = b'K\x00\x85', data: bytes = b'') -> bytes:
    """_reconstruct(ndarray, (0,), b'b'), optionally built."""
    out = (
        glob('numpy._core.multiarray', '_reconstruct') +
        glob('numpy', 'ndarray') + b'K\x00\x85' + raw(b'b') + b'\x87R')
    if data is not None:
        out += (b'(K\x01' + shape + dtype(
            'u1', b'(K\x03' + text('|') + b'NNN' + b'J\xff\xff\xff\xff' * 2 +
            b'K\x00t') + b'\x89' + raw(data) + b'tb')
    return out


def pending_array_in_a_key(marker: str) -> bytes:
    """A tuple holding an uncompleted array, as a dict key."""
    return (PROTO + b'}' + pending_array(data=None) + b'\x85' + b'K\x01s' +
            STOP)


def huge_shape(marker: str) -> bytes:
    """A shape whose product a file could make slow to compute."""
    big = (2**70).to_bytes(9, 'little', signed=True)
    return (PROTO + pending_array(shape=b'\x8a\x09' + big + b'K\x00\x86') +
            STOP)


AROUND = [
    build_on_a_stand_in, counter_with_setstate,
    unfinished_buffer_in_ordered_dict, pending_array_in_a_key, huge_shape
]


@pytest.mark.parametrize('payload', AROUND, ids=lambda f: f.__name__)
def test_routes_around_the_stand_ins_are_refused(payload: Any,
                                                 tmp_path: Any) -> None:
    from mmdiff.safe_load import load_pickle_data
    marker = str(tmp_path / 'marker')
    path = write_checkpoint(str(tmp_path / 'evil.pth'), payload(marker))
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(path)
    plain = tmp_path / 'batch'
    plain.write_bytes(payload(marker))
    with pytest.raises(UnsafeCheckpointError):
        load_pickle_data(str(plain))
    assert not osp.exists(marker)


def test_a_built_array_still_loads(tmp_path: Any) -> None:
    """The helpers above build valid data when used as numpy does."""
    from mmdiff.safe_load import load_pickle_data
    payload = PROTO + pending_array(
        shape=b'K\x02K\x01\x86', data=b'\x01\x02') + STOP
    plain = tmp_path / 'batch'
    plain.write_bytes(payload)
    np.testing.assert_array_equal(load_pickle_data(str(plain)), [[1], [2]])
    path = write_checkpoint(str(tmp_path / 'ok.pth'), payload)
    np.testing.assert_array_equal(load_checkpoint_file(path), [[1], [2]])


def test_another_librarys_safe_globals_do_not_widen_the_list(
        tmp_path: Any) -> None:
    """A process-wide add_safe_globals([getattr, HistoryBuffer]) (the usual
    torch >= 2.6 work-around) must not replace mmdiff's stand-ins, and is
    still there after mmdiff's loads."""
    marker = str(tmp_path / 'marker')
    path = write_checkpoint(str(tmp_path / 'evil.pth'), eval_chain(marker))
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([getattr, HistoryBuffer])
    try:
        for _ in range(8):  # torch reads its set in hash order
            with pytest.raises(UnsafeCheckpointError):
                load_checkpoint_file(path)
        assert not osp.exists(marker)
        after = torch.serialization.get_safe_globals()
        assert set(after) == set(before) | {getattr, HistoryBuffer}
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


def test_names_of_stand_ins_cannot_be_allowed() -> None:
    from mmdiff.compat import allow_checkpoint_types
    for real in (getattr, HistoryBuffer, np.dtype):
        with pytest.raises(ValueError, match='stand-in'):
            allow_checkpoint_types([real])


def test_data_pickles_refuse_object_construction(tmp_path: Any) -> None:
    from mmdiff.safe_load import load_pickle_data
    path = tmp_path / 'batch'
    # NEWOBJ on an allowed name, and a set holding a pending array
    for payload in (PROTO + glob('numpy', 'ndarray') + b')\x81' + STOP,
                    b'\x80\x04\x8f(' + pending_array(data=None) + b'\x90' +
                    STOP):
        path.write_bytes(payload)
        with pytest.raises(UnsafeCheckpointError):
            load_pickle_data(str(path))
