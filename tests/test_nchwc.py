"""SE-gate fusion on ONNX Runtime's NCHWc CPU graph: same answers, fewer layout conversions."""

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from lipparse_rt import nchwc
from lipparse_rt.engine import Engine, EngineConfig, letterbox

from conftest import demo_frame

SHIPPED = Path(__file__).resolve().parents[1] / "weights" / "lipnet.onnx"
SHIPPED_INT8 = SHIPPED.with_name("lipnet-int8.onnx")


def _options():
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    return opts


def _frame(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    import cv2

    return cv2.resize(small, (320, 240), interpolation=cv2.INTER_CUBIC)


def _op_counts(session_or_model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in session_or_model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


def _drop_shortcuts(real):
    def broken(model):  # a broken rewrite: the residual shortcut no longer reaches the output
        count = real(model)
        for node in model.graph.node:
            if node.domain == nchwc.NCHWC and node.op_type == "Conv" and len(node.input) == 4:
                node.input[3] = ""
        return count

    return broken


def test_fused_graph_gives_the_plain_graphs_logits_and_ids():
    plain = ort.InferenceSession(str(SHIPPED), _options(), providers=["CPUExecutionProvider"])
    batch = letterbox(_frame(), 256)[0]
    fused, count = nchwc.cpu_session(SHIPPED, _options, letterbox(_frame(7), 256)[0])
    assert count == 12  # two SE-ResNet blocks in each of the six stages
    want_ids, want_logits = plain.run(["ids", "logits"], {"bgr": batch})
    got_ids, got_logits = fused.run(["ids", "logits"], {"bgr": batch})
    assert np.abs(got_logits - want_logits).max() < 1e-3 * np.abs(want_logits).max()
    assert (got_ids == want_ids).mean() > 0.999


def test_fusion_removes_the_nchw_passes_around_each_gate(tmp_path):
    import onnx

    saved = tmp_path / "opt.onnx"
    opts = _options()
    opts.optimized_model_filepath = str(saved)
    ort.InferenceSession(str(SHIPPED), opts, providers=["CPUExecutionProvider"])
    model = onnx.load(str(saved))
    before = _op_counts(model)
    assert nchwc.fuse_se_gates(model) == 12
    after = _op_counts(model)
    assert after.get("Mul", 0) == before["Mul"] - 12  # the gates (the preprocessing Mul stays)
    assert after.get("Relu", 0) == before["Relu"] - 12 and after.get("Add", 0) == before["Add"] - 12
    assert after["GlobalAveragePool"] == 12
    assert after["ReorderOutput"] + after["ReorderInput"] < before["ReorderOutput"] + before["ReorderInput"] - 40
    ort.InferenceSession(model.SerializeToString(), _options(), providers=["CPUExecutionProvider"])


def test_a_graph_without_se_gates_is_left_alone(tiny_plain_conv):
    session, count = nchwc.cpu_session(tiny_plain_conv, _options)
    assert count == 0 and session.get_outputs()[0].name == "y"


def test_engine_uses_the_fused_graph_on_cpu_and_agrees_with_the_plain_one():
    frame = _frame(5)
    fused = Engine(EngineConfig(weights=SHIPPED, provider="cpu", threads=1))
    plain = Engine(EngineConfig(weights=SHIPPED, provider="cpu", threads=1, fuse=False))
    assert fused.fused == 12 and plain.fused == 0
    assert (fused.run(frame) == plain.run(frame)).mean() > 0.999


def test_engine_keeps_the_plain_graph_when_the_fused_one_disagrees(monkeypatch, caplog):
    monkeypatch.setattr(nchwc, "fuse_se_gates", _drop_shortcuts(nchwc.fuse_se_gates))
    with caplog.at_level(logging.WARNING, logger=nchwc.__name__):
        eng = Engine(EngineConfig(weights=SHIPPED, provider="cpu", threads=1))
    assert eng.fused == 0 and "disagrees" in caplog.text
    plain = Engine(EngineConfig(weights=SHIPPED, provider="cpu", threads=1, fuse=False))
    assert (eng.run(_frame()) == plain.run(_frame())).all()


@pytest.mark.parametrize("size", [256, 384])
def test_int8_graph_is_fused_in_its_float_stages_and_stays_as_close_to_the_float_model(size):
    """The INT8 graph's ids move with any rounding change; the engine's check allows for that, and
    the fused INT8 graph agrees with the float model as well as the plain INT8 graph does."""
    frame = demo_frame()
    fused = Engine(EngineConfig(weights=SHIPPED_INT8, provider="cpu", threads=1, input_size=size))
    plain = Engine(EngineConfig(weights=SHIPPED_INT8, provider="cpu", threads=1, input_size=size, fuse=False))
    # The three float stages' six gates. With the decoder at stride 8 the last one's ReLU feeds only
    # the int8 stages, and ORT folds it into their quantiser (5 left); at stride 4 the float decoder
    # reads S3 too, so the ReLU stays and all six are fused.
    stride = json.loads(fused.meta["config"])["decoder_stride"]
    assert fused.fused == {8: 5, 4: 6}[stride]
    want = Engine(EngineConfig(weights=SHIPPED, provider="cpu", threads=1, input_size=size)).run(frame)
    plain_agree, fused_agree = (plain.run(frame) == want).mean(), (fused.run(frame) == want).mean()
    assert fused_agree > 0.95 and fused_agree > plain_agree - 0.01


def test_a_broken_rewrite_of_the_int8_graph_is_refused(monkeypatch, caplog):
    monkeypatch.setattr(nchwc, "fuse_se_gates", _drop_shortcuts(nchwc.fuse_se_gates))
    with caplog.at_level(logging.WARNING, logger=nchwc.__name__):
        eng = Engine(EngineConfig(weights=SHIPPED_INT8, provider="cpu", threads=1, input_size=384))
    assert eng.fused == 0 and "disagrees" in caplog.text


def test_engine_runs_plain_when_fusion_fails(monkeypatch):
    def broken(path, options, frame):
        raise ValueError("graph has a cycle")

    monkeypatch.setattr(nchwc, "cpu_session", broken)
    eng = Engine(EngineConfig(weights=SHIPPED, provider="cpu", threads=1))
    assert eng.fused == 0 and eng.run(_frame()).shape == (240, 320)


@pytest.fixture()
def tiny_plain_conv(tmp_path) -> Path:
    """A two-conv ONNX graph (16 channels, so ONNX Runtime blocks it) with no SE gate."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 16, 1, 1)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "plain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    path = tmp_path / "plain.onnx"
    onnx.save(model, str(path))
    return path
