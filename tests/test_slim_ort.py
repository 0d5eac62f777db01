"""tools/slim_ort.py: the cubins of other GPU architectures zeroed, fat binaries without the kept one left whole."""

import importlib.util
import struct
from pathlib import Path

_spec = importlib.util.spec_from_file_location("slim_ort", Path(__file__).parents[1] / "tools" / "slim_ort.py")
slim_ort = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slim_ort)

HEAD = 64  # an entry header's size as CUDA writes it


def _entry(arch: int, payload: bytes) -> bytes:
    head = bytearray(HEAD)
    struct.pack_into("<HHII", head, 0, 2, 0x101, HEAD, len(payload))  # kind 2 (cubin), version, header, size
    struct.pack_into("<I", head, 28, arch)
    return bytes(head) + payload


def _fatbin(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return slim_ort.MAGIC + struct.pack("<HHQ", 1, 16, len(body)) + body


def test_other_archs_are_zeroed_only_where_the_kept_one_is_there():
    a80, a90, a120 = b"\x80" * 40, b"\x90" * 24, b"\x12" * 16
    lone = b"\x55" * 8
    data = bytearray(b"host code" + _fatbin(_entry(80, a80), _entry(90, a90), _entry(120, a120))
                     + b"more" + _fatbin(_entry(120, lone)) + slim_ort.MAGIC + b"not a header")
    before = bytes(data)
    assert slim_ort.zero_other_archs(data, 90) == len(a80) + len(a120)
    assert len(data) == len(before)  # offsets unchanged: only bytes zeroed
    assert a90 in data and lone in data  # the kept cubin, and the fat binary without one for sm_90
    assert a80 not in data and a120 not in data
    assert data.startswith(b"host code") and data.endswith(slim_ort.MAGIC + b"not a header")
    changed = [i for i, (x, y) in enumerate(zip(data, before)) if x != y]
    assert all(data[i] == 0 for i in changed)
