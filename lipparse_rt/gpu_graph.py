"""The shipped graph as the GPU providers need it: the head's upsampling in NCHW.

The exported head (export.py, `_nhwc_head`) transposes the 20 class-score planes to NHWC and
then upsamples them 4x with a Resize whose scales are (1, 4, 4, 1): on the CPU the argmax then
reads 20 adjacent floats per pixel, which is faster. ONNX Runtime's CUDA provider gets that
Resize wrong: on an H200 (onnxruntime-gpu 1.31.1) the ids were noise in stripes, 28-35% of
pixels agreeing with the CPU's, and frames parsed at once ended in "illegal memory access".
So a session for a GPU provider gets the same head with the two steps swapped: Resize with
scales (1, 1, 4, 4) on NCHW, then the transpose to NHWC. The outputs keep their names, shapes
and layout (the engine reads them the same way), and the numbers are the same (bilinear,
half-pixel, per plane either way).
"""

from __future__ import annotations

from pathlib import Path

NHWC = [0, 2, 3, 1]


def nchw_head(model) -> bool:
    """Swap each NHWC Transpose -> Resize(1, s, s, 1) pair of `model` (an onnx ModelProto) in place
    into Resize(1, 1, s, s) -> Transpose. True when one was swapped."""
    from onnx import numpy_helper

    graph = model.graph
    producer = {out: n for n in graph.node for out in n.output}
    inits = {i.name: i for i in graph.initializer}
    stale: set[str] = set()  # the NHWC planes' old name, and the scales the swapped Resizes read
    for resize in list(graph.node):
        if resize.op_type != "Resize" or len(resize.input) < 3 or resize.input[2] not in inits:
            continue
        transpose = producer.get(resize.input[0])
        perm = [list(a.ints) for a in transpose.attribute if a.name == "perm"] if transpose is not None else []
        scales = numpy_helper.to_array(inits[resize.input[2]])
        if transpose is None or transpose.op_type != "Transpose" or perm != [NHWC] or scales.shape != (4,) \
                or scales[0] != 1 or scales[3] != 1:
            continue
        if sum(transpose.output[0] in n.input for n in graph.node) + sum(
                o.name == transpose.output[0] for o in graph.output) != 1:
            continue  # the NHWC planes are used elsewhere too
        stale.update((resize.input[2], transpose.output[0]))
        nchw = numpy_helper.from_array(scales[[0, 3, 1, 2]], resize.input[2] + "_nchw")
        graph.initializer.append(nchw)
        mid = resize.output[0] + "_nchw"
        resize.input[0], resize.input[2] = transpose.input[0], nchw.name
        transpose.input[0], transpose.output[0], resize.output[0] = mid, resize.output[0], mid
        graph.node.remove(resize)  # before the transpose, which now reads it
        graph.node.insert(list(graph.node).index(transpose), resize)
    used = {i for n in graph.node for i in n.input}
    for name in [i.name for i in graph.initializer if i.name in stale and i.name not in used]:
        graph.initializer.remove(inits[name])
    kept = [v for v in graph.value_info if v.name not in stale]  # shapes of names no longer in the graph
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return bool(stale)


def gpu_model(path: Path) -> bytes | None:
    """The weights at `path` with an NCHW head, serialised for ONNX Runtime; None where they
    have no NHWC head or cannot be read here (the session then loads the file and says why)."""
    try:
        import onnx

        model = onnx.load(str(path))
        return model.SerializeToString() if nchw_head(model) else None
    except Exception:  # not an ONNX file, no onnx package: the engine's own load reports it
        return None
