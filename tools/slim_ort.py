"""Slim an onnxruntime-gpu wheel for one GPU architecture, to carry it to a machine that cannot download it.

The wheel (256 MB) is mostly its CUDA provider library, whose kernels are compiled for several
GPU generations (sm_75 ... sm_120), each a cubin in the library's fat binaries. This keeps the
library as it is but zeroes every cubin of another architecture in each fat binary that also
holds one for `--sm` (the driver loads the one that matches the GPU, so the zeroed ones are
never read; a fat binary without one for `--sm` is left whole), then packs onnxruntime and its
dist-info into an .tar.xz, where the zeroed bytes cost nothing. For sm_90 (H100, H200): 70 MB.

  python tools/slim_ort.py onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl ort.tar.xz --sm 90
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

MAGIC = struct.pack("<I", 0xBA55ED50)  # a fat binary's header: magic, version 1, header size 16, size


def zero_other_archs(data: bytearray, sm: int) -> int:
    """Zero the cubins of other architectures in each fat binary holding one for `sm`; bytes zeroed."""
    entries = defaultdict(list)  # fat binary offset -> [(arch, payload start, payload size)]
    pos = 0
    while (i := data.find(MAGIC, pos)) >= 0:
        version, header, size = struct.unpack_from("<HHQ", data, i + 4)
        if version != 1 or header != 16 or not 0 < size <= len(data) - i - 16:
            pos = i + 4
            continue
        p, end = i + 16, i + 16 + size
        while p < end:  # entry: kind u16, version u16, header size u32, padded payload size u32, ..., arch u32 at 28
            _, _, ehead, padded = struct.unpack_from("<HHII", data, p)
            entries[i].append((struct.unpack_from("<I", data, p + 28)[0], p + ehead, padded))
            p += ehead + padded
        pos = end
    zeroed = 0
    for items in entries.values():
        if any(arch == sm for arch, _, _ in items):
            for arch, start, n in items:
                if arch != sm:
                    data[start:start + n] = bytes(n)
                    zeroed += n
    return zeroed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--sm", type=int, default=90, help="the GPU architecture to keep (90: Hopper)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(a.wheel) as whl:
            names = [n for n in whl.namelist() if not n.startswith(("onnxruntime/tools/", "onnxruntime/quantization/"))]
            whl.extractall(tmp, names)
        lib = next(Path(tmp).glob("onnxruntime/capi/libonnxruntime_providers_cuda.so"))
        data = bytearray(lib.read_bytes())
        print(f"{lib.name}: {len(data) / 1e6:.0f} MB, {zero_other_archs(data, a.sm) / 1e6:.0f} MB zeroed")
        lib.write_bytes(data)
        tops = sorted(p.name for p in Path(tmp).iterdir())
        with open(a.out, "wb") as fh:
            tar = subprocess.Popen(["tar", "cf", "-", "-C", tmp, *tops], stdout=subprocess.PIPE)
            subprocess.run(["xz", "-T2", "-6"], stdin=tar.stdout, stdout=fh, check=True)
            tar.wait()
    print(f"{a.out}: {a.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
