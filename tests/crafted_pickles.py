"""Hand-written pickle opcodes and torch zips for the loader tests.

Each helper writes a few opcodes; :func:`write_checkpoint` puts a payload
into torch.save's own zip layout as its ``data.pkl``.
"""
import io
import zipfile

import torch

PROTO = b'\x80\x02'
STOP = b'.'


def glob(module: str, name: str) -> bytes:
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def text(value: str) -> bytes:
    data = value.encode()
    return b'X' + len(data).to_bytes(4, 'little') + data


def raw(value: bytes) -> bytes:
    # _codecs.encode(latin1 text, 'latin1'), as protocol 2 writes bytes
    return glob('_codecs', 'encode') + text(
        value.decode('latin1')) + text('latin1') + b'\x86R'


def put(i: int) -> bytes:
    return b'q' + bytes([i])


def get(i: int) -> bytes:
    return b'h' + bytes([i])


def write_checkpoint(path: str, payload: bytes) -> str:
    """torch.save's zip layout, with ``payload`` as its data.pkl."""
    buffer = io.BytesIO()
    torch.save({}, buffer)
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, 'w') as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith('data.pkl'):
                data = payload
            dst.writestr(info, data)
    return path


def binint(value: int) -> bytes:
    return b'J' + value.to_bytes(4, 'little', signed=True)


def long(value: int) -> bytes:
    data = value.to_bytes((value.bit_length() + 8) // 8, 'little', signed=True)
    return b'\x8a' + bytes([len(data)]) + data
