"""Keep LIP-Net's squeeze-and-excitation gates in ONNX Runtime's blocked (NCHWc) CPU layout.

On the CPU, ONNX Runtime rewrites convolutions into its NCHWc form (channels in blocks of 8 or
16, the vector width). It has no NCHWc form for a per-channel multiply by an Nx Cx1x1 tensor, so
at every SE gate (`y * sigmoid(fc2(relu(fc1(mean(y)))))`, then `+ shortcut`, then ReLU) it
converts the tensors back to plain NCHW, runs ReduceMean, Mul, Add and Relu there, and converts
the result forward again for the next convolution: about a quarter of LIP-Net's CPU time at
256x192 went to those conversions and element-wise passes.

This module edits the graph that ONNX Runtime itself optimised, on the machine that runs it:

    ReduceMean(y)                    ->  NCHWc GlobalAveragePool(y_c)
    Relu(y * gate + shortcut)        ->  one NCHWc depthwise 1x1 Conv: weights = the gate
                                         (reshaped to Cx1x1x1), Sum input = the shortcut,
                                         fused ReLU

so the whole block stays blocked. A depthwise 1x1 filter in ONNX Runtime's blocked filter
layout is the plain vector of per-channel weights, so the gate computed by the previous NCHWc
convolution is already in the layout the kernel reads. The optimised graph depends on the CPU
(its block size), so it is made at start-up and never stored; `Engine` checks the fused
session against the plain one on a test frame and keeps the plain one if they disagree.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from .classes import NUM_CLASSES

log = logging.getLogger(__name__)

NCHWC = "com.microsoft.nchwc"
_GATE_SHAPE = "se_gate_as_depthwise_weights_shape"


def fuse_se_gates(model) -> int:
    """Rewrite every matched SE gate of an ONNX Runtime-optimised model in place; return how many.

    A block is rewritten only when the whole pattern is there (the gate from an NCHWc Conv, the
    Mul feeding one Add feeding one Relu, the shortcut available in NCHWc form, channels a
    multiple of 16); anything else is left as ONNX Runtime made it.
    """
    pb = _onnx_proto()
    graph = model.graph
    nodes = list(graph.node)
    producer = {out: n for n in nodes for out in n.output}
    consumers: dict[str, list] = {}
    for n in nodes:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    outputs = {o.name for o in graph.output}

    dead: set[int] = set()
    added: list = []
    alias: dict[str, str] = {}  # outputs of removed ReorderInput nodes -> the NCHWc tensor they copied
    blocked: dict[str, str] = {}  # NCHW tensor -> its NCHWc twin made here
    count = 0

    for mul in nodes:
        if mul.op_type != "Mul" or mul.domain or len(mul.input) != 2:
            continue
        y, gate = mul.input
        y_out, gate_out = _reorder_output(producer, y), _reorder_output(producer, gate)
        if y_out is None or gate_out is None or len(consumers.get(gate, [])) != 1:
            continue
        fc2 = producer.get(gate_out.input[0])
        if fc2 is None or fc2.op_type != "Conv" or fc2.domain != NCHWC:
            continue
        channels = next((a.i for a in y_out.attribute if a.name == "channels"), 0)
        if channels <= 0 or channels % 16:
            continue
        add = _sole_user(consumers, mul.output[0], "Add")
        relu = _sole_user(consumers, add.output[0], "Relu") if add is not None else None
        if relu is None:
            continue
        shortcut = add.input[1] if add.input[0] == mul.output[0] else add.input[0]
        shortcut_c = _nchwc_twin(shortcut, producer, consumers, blocked)
        means = [n for n in consumers.get(y, []) if n.op_type == "ReduceMean" and not n.domain]
        if len(means) != 1:
            continue
        mean_in = _sole_user(consumers, means[0].output[0], "ReorderInput", NCHWC)
        if shortcut_c is None or mean_in is None:
            continue

        y_c, out = y_out.input[0], relu.output[0]
        out_c = out + "_nchwc"
        added.append(_node(pb, "GlobalAveragePool", [y_c], [mean_in.output[0]], domain=NCHWC))
        weights = gate + "_as_weights"
        added.append(_node(pb, "Reshape", [gate_out.input[0], _GATE_SHAPE], [weights]))
        added.append(_node(pb, "Conv", [y_c, weights, "", shortcut_c], [out_c], domain=NCHWC, group=channels,
                           kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1],
                           activation="Relu"))
        dead.update(id(n) for n in (means[0], mean_in, mul, add, relu, gate_out))
        blocked[out] = out_c
        plain_users = False
        for user in consumers.get(out, []):
            if user.op_type == "ReorderInput" and user.domain == NCHWC:
                dead.add(id(user))
                alias[user.output[0]] = out_c
            else:
                plain_users = True
        if plain_users or out in outputs:  # e.g. the next block's residual, or ASPP's ReduceMean
            added.append(_node(pb, "ReorderOutput", [out_c], [out], domain=NCHWC, channels=channels,
                               channels_last=0))
        count += 1

    if not count:
        return 0
    graph.initializer.append(pb.TensorProto(name=_GATE_SHAPE, data_type=pb.TensorProto.INT64, dims=[4],
                                            int64_data=[-1, 1, 1, 1]))
    keep = [n for n in nodes if id(n) not in dead] + added
    for n in keep:
        for i, name in enumerate(n.input):
            if name in alias:
                n.input[i] = alias[name]
    keep = _drop_unused(keep, outputs)
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    del graph.node[:]
    graph.node.extend(_topological(keep, known))
    del graph.value_info[:]  # shapes of removed tensors; ONNX Runtime infers what it needs
    return count


def _onnx_proto():
    """onnx's generated protobuf classes, loaded without the onnx package itself.

    `import onnx` also loads its C++ extension and every operator schema: about 20 MB of memory
    for the life of the app, which needs only to read, edit and write one graph.
    """
    import importlib.util
    import sys

    name = "lipparse_rt._onnx_ml_pb2"
    if name not in sys.modules:
        spec = importlib.util.find_spec("onnx")  # finds the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the onnx package is not installed")
        path = Path(list(spec.submodule_search_locations)[0]) / "onnx_ml_pb2.py"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def _node(pb, op: str, inputs: list[str], outputs: list[str], domain: str = "", **attrs):
    """A NodeProto with int, int-list and string attributes (what the rewrite needs)."""
    node = pb.NodeProto(op_type=op, domain=domain, input=inputs, output=outputs, name=outputs[0] + "_" + op)
    for key, value in attrs.items():
        if isinstance(value, str):
            node.attribute.add(name=key, type=pb.AttributeProto.STRING, s=value.encode())
        elif isinstance(value, list):
            node.attribute.add(name=key, type=pb.AttributeProto.INTS, ints=value)
        else:
            node.attribute.add(name=key, type=pb.AttributeProto.INT, i=value)
    return node


def _sole_user(consumers: dict, name: str, op: str, domain: str = ""):
    """The one node reading `name`, if there is exactly one and it is `op` of `domain`."""
    users = consumers.get(name, [])
    return users[0] if len(users) == 1 and users[0].op_type == op and users[0].domain == domain else None


def _reorder_output(producer: dict, name: str):
    """The ReorderOutput node that made NCHW tensor `name` from an NCHWc one, if that is its source."""
    node = producer.get(name)
    return node if node is not None and node.op_type == "ReorderOutput" and node.domain == NCHWC else None


def _nchwc_twin(name: str, producer: dict, consumers: dict, blocked: dict[str, str]) -> str | None:
    """The NCHWc tensor holding the same values as NCHW tensor `name`, if the graph has one."""
    if name in blocked:
        return blocked[name]
    node = _reorder_output(producer, name)
    if node is not None:
        return node.input[0]
    copies = [n for n in consumers.get(name, []) if n.op_type == "ReorderInput" and n.domain == NCHWC]
    return copies[0].output[0] if copies else None


def _drop_unused(nodes: list, outputs: set[str]) -> list:
    while True:
        read = {name for n in nodes for name in n.input} | outputs
        live = [n for n in nodes if any(o in read for o in n.output)]
        if len(live) == len(nodes):
            return live
        nodes = live


def _topological(nodes: list, known: set[str]) -> list:
    order, pending = [], nodes
    while pending:
        waiting = []
        for n in pending:
            if all(name in known for name in n.input):
                order.append(n)
                known.update(n.output)
            else:
                waiting.append(n)
        if len(waiting) == len(pending):
            raise ValueError(f"graph has a cycle or a missing input at {waiting[0].op_type} {waiting[0].name}")
        pending = waiting
    return order


def _check_ids(session, frame):
    """What the self-check compares on a test frame: each pixel's most likely person class (1..19),
    from the 'logits' output when the graph has one, else the ids. The test frame has nobody in
    it, so a model that leaves empty scenes background gives all-background ids, which any
    rewrite, broken or not, would match; the runner-up classes still vary over the frame."""
    if not any(o.name == "logits" for o in session.get_outputs()):
        return session.run(["ids"], {"bgr": frame})[0]
    z = session.run(["logits"], {"bgr": frame})[0]
    axis = -1 if z.shape[-1] == NUM_CLASSES else 1  # this project's exports: 1xHxWx20
    return z.take(range(1, NUM_CLASSES), axis=axis).argmax(axis)


def _self_agreement(session, frame, want) -> float:
    """The least share of `want` (`_check_ids`) that `session` keeps when the lowest bit of every
    byte of `frame` is flipped at random (three fixed draws): how far rounding noise alone moves it."""
    import numpy as np

    rng = np.random.default_rng(0)
    worst = 1.0
    for _ in range(3):
        nudged = frame ^ rng.integers(0, 2, frame.shape, dtype=frame.dtype)
        worst = min(worst, float((_check_ids(session, nudged) == want).mean()))
    return worst


def cpu_session(path: Path, options: Callable[[], object], frame=None):
    """The CPU session to run `path` with, and how many SE gates it has fused.

    `options()` makes fresh `SessionOptions` (threads, spinning, log level) for each session.
    With a test `frame` (a prepared uint8 batch) the fused session is used only if it gives
    the plain graph's classes on it (`_check_ids`; 99.9% of the pixels; float sums in another
    order may flip a near tie); otherwise, or when no gate matched, the plain session is
    returned. Only one session is alive at a time, to keep start-up memory down.

    An INT8 graph (`quantize.py`) amplifies any rounding change: its classes on the test frame
    move by about 2% (its ids did by 5-8%, before they became all background there) when
    the lowest bit of every input byte flips at random, and the fused graph's other
    order of float sums moved those ids by up to ~6%. For such a graph the bar is the agreement the
    plain graph keeps with itself under three such whole-frame nudges, less 2 points (capped at
    99.9%); a broken rewrite (a residual shortcut lost) falls far below it (tests/test_nchwc.py).
    (Single-byte nudges, the gauge before, could all land on stable pixels and set the bar at
    98%, refusing a correct fusion.)
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="lipparse-nchwc-") as tmp:
        saved = Path(tmp) / "optimised.onnx"
        opts = options()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = str(saved)
        # Weights in a file of their own: the graph read and edited here is then ~100 kB, not 16 MB.
        opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", "weights.bin")
        opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        plain = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        model = _onnx_proto().ModelProto.FromString(saved.read_bytes())
        count = fuse_se_gates(model)
        if not count:
            return plain, 0
        want, bar = None, 0.999
        if frame is not None:
            want = _check_ids(plain, frame)
            if any(n.op_type in ("QuantizeLinear", "QLinearConv") for n in model.graph.node):
                bar = min(bar, _self_agreement(plain, frame, want) - 0.02)
        del plain
        saved.write_bytes(model.SerializeToString())
        del model
        opts = options()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # already optimised
        fused = ort.InferenceSession(str(saved), opts, providers=["CPUExecutionProvider"])
    if want is not None:
        agree = float((_check_ids(fused, frame) == want).mean())
        if agree < bar:
            log.warning("SE-fused CPU graph disagrees with the plain one on %.2f%% of a test frame: not used",
                        100 * (1 - agree))
            del fused
            return ort.InferenceSession(str(path), options(), providers=["CPUExecutionProvider"]), 0
    return fused, count
