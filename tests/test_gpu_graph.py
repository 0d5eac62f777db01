"""The GPU providers' graph (gpu_graph.py), the libraries loaded for them, and `bench providers`.

No GPU here: what can be checked is that the edited head computes what the shipped one does (on
the CPU provider), that the engine hands it to a GPU provider, and that the preload stays quiet.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lipparse_rt import engine as engine_mod
from lipparse_rt import gpu_graph
from lipparse_rt.engine import Engine, EngineConfig, int8_weights


def _cpu(model, feeds):
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def _nhwc_head_model(scale: float = 2.0) -> onnx.ModelProto:
    """x (1x3x4x5) -> Transpose to NHWC -> Resize (1, s, s, 1), bilinear -> ArgMax over the last axis."""
    nodes = [helper.make_node("Transpose", ["x"], ["x_nhwc"], perm=[0, 2, 3, 1]),
             helper.make_node("Resize", ["x_nhwc", "", "scales"], ["up"], mode="linear",
                              coordinate_transformation_mode="half_pixel"),
             helper.make_node("ArgMax", ["up"], ["ids"], axis=3, keepdims=0)]
    graph = helper.make_graph(nodes, "head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 5])],
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 8, 10]),
                               helper.make_tensor_value_info("up", TensorProto.FLOAT, [1, 8, 10, 3])],
                              [numpy_helper.from_array(np.array([1, scale, scale, 1], np.float32), "scales")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_nchw_head_swaps_resize_and_transpose_with_the_same_numbers():
    model = _nhwc_head_model()
    x = np.random.default_rng(0).normal(size=(1, 3, 4, 5)).astype(np.float32)
    before = _cpu(model, {"x": x})
    assert gpu_graph.nchw_head(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["Resize", "Transpose", "ArgMax"]
    resize = model.graph.node[0]
    assert resize.input[0] == "x"  # reads the NCHW planes
    scales = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert scales[resize.input[2]].tolist() == [1, 1, 2, 2] and "scales" not in scales  # the old one dropped
    onnx.checker.check_model(model)
    after = _cpu(model, {"x": x})
    assert after[1].shape == before[1].shape == (1, 8, 10, 3)  # the output keeps its NHWC layout
    np.testing.assert_allclose(after[1], before[1], atol=1e-6)
    assert (after[0] == before[0]).all()


def test_nchw_head_leaves_other_graphs_alone():
    model = _nhwc_head_model()
    model.graph.node[0].attribute[0].ints[:] = [0, 1, 3, 2]  # not an NHWC transpose
    assert not gpu_graph.nchw_head(model)
    shared = _nhwc_head_model()  # the NHWC planes are an output too: they must stay
    shared.graph.output.append(helper.make_tensor_value_info("x_nhwc", TensorProto.FLOAT, [1, 4, 5, 3]))
    assert not gpu_graph.nchw_head(shared)


def test_gpu_model_of_the_exported_graph(tiny_weights, tmp_path):
    data = gpu_graph.gpu_model(tiny_weights)
    assert data is not None
    x = np.random.default_rng(1).integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)
    shipped, edited = _cpu(onnx.load(str(tiny_weights)), {"bgr": x}), _cpu(data, {"bgr": x})
    assert [o.shape for o in edited] == [o.shape for o in shipped]
    assert (edited[0] == shipped[0]).all()
    np.testing.assert_allclose(edited[1], shipped[1], atol=1e-5)
    assert gpu_graph.gpu_model(tmp_path / "missing.onnx") is None  # the engine's own load says why
    plain = tmp_path / "plain.onnx"
    onnx.save(onnx.load_from_string(data), str(plain))
    assert gpu_graph.gpu_model(plain) is None  # nothing left to swap


def test_engine_gives_a_gpu_provider_the_nchw_head(tiny_weights, monkeypatch, capsys):
    """Asked for CUDA, the engine loads the libraries once, quietly, and builds the session from the
    edited graph; here CUDA cannot be created, so it runs that graph on the CPU, with the same ids."""
    calls, preloads = [], []
    real = gpu_graph.gpu_model
    monkeypatch.setattr(gpu_graph, "gpu_model", lambda p: calls.append(p) or real(p))
    monkeypatch.setattr(engine_mod, "_preloaded", False)
    monkeypatch.setattr(ort, "preload_dlls", lambda: preloads.append(1) or print("Failed to load libcublas"),
                        raising=False)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(engine_mod, "gpu_driver_problem", lambda: None)  # as on a machine with a driver
    frame = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    gpu = Engine(EngineConfig(weights=tiny_weights, provider="cuda", input_size=64))
    Engine(EngineConfig(weights=tiny_weights, provider="cuda", input_size=64))
    assert calls == [tiny_weights, tiny_weights] and preloads == [1]
    assert "Failed" not in capsys.readouterr().out
    cpu = Engine(EngineConfig(weights=tiny_weights, provider="cpu", input_size=64))
    assert len(calls) == 2  # the CPU keeps the shipped graph
    assert (gpu.run(frame) == cpu.run(frame)).all()


def test_bench_providers_on_a_machine_without_gpu(tiny_weights):
    from conftest import demo_frame

    from lipparse_rt.bench_providers import providers_table

    table = providers_table(tiny_weights, demo_frame(), providers=("cuda", "cpu"), sizes=((64, 64),), runs=3)
    rows = [l for l in table.splitlines() if l.startswith("| cpu")]
    assert len(rows) == 1 and "| 64x64 |" in rows[0] and "| 1.0x | 100.000% |" in rows[0]
    if "| cuda |" not in table:  # no usable GPU here: said, not timed
        assert "cuda: not used here" in table


def test_fp16_copy_keeps_uint8_in_and_out(tiny_weights, tmp_path):
    pytest.importorskip("onnxruntime.transformers.float16")
    from lipparse_rt.bench_providers import fp16_copy

    half = onnx.load(str(fp16_copy(tiny_weights, tmp_path / "half.onnx")))
    assert any(i.data_type == TensorProto.FLOAT16 for i in half.graph.initializer)
    assert half.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    assert [n.op_type for n in half.graph.node if n.op_type in ("Resize", "Transpose")][-2:] == ["Resize", "Transpose"]


class _ClaimsCuda:
    """A CPU session that says it runs on CUDA, its outputs passed through `change`."""

    def __init__(self, inner, change):
        self.inner, self.change = inner, change

    def get_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def run(self, names, feeds):
        return [self.change(o) for o in self.inner.run(names, feeds)]

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _fake_cuda(monkeypatch, change):
    """Engines asked for CUDA get a _ClaimsCuda session; CPU sessions stay real."""
    cuda = "CUDAExecutionProvider"
    real = Engine._load

    def load(self, path, providers, model=None):
        if any(name == cuda for name, _ in providers):
            return _ClaimsCuda(real(self, path, [("CPUExecutionProvider", {})], model), change)
        return real(self, path, providers, model)

    monkeypatch.setattr(Engine, "_load", load)
    monkeypatch.setattr(ort, "get_available_providers", lambda: [cuda, "CPUExecutionProvider"])
    monkeypatch.setattr(engine_mod, "gpu_driver_problem", lambda: None)


def _rounded(out):  # fp16-sized noise on the scores
    noise = np.random.default_rng(0).normal(0, 0.01 * out.std(), out.shape) if out.dtype == np.float32 else 0
    return (out + noise).astype(out.dtype)


def _classes_shifted(out):
    return np.roll(out, 1, axis=-1) if out.dtype == np.float32 else (out + 1) % 20


@pytest.mark.parametrize("change, kept", [(lambda o: o, True), (_classes_shifted, False),
                                          (_rounded, True)], ids=["same", "wrong", "rounding"])
def test_a_gpu_session_is_checked_against_the_cpu(tiny_weights, monkeypatch, caplog, change, kept):
    """A GPU session whose class scores are not the CPU's on the test frame is dropped with one
    warning, and the next provider (here the CPU) runs; rounding-sized differences pass."""
    _fake_cuda(monkeypatch, change)
    with caplog.at_level("WARNING", logger="lipparse_rt.engine"):
        eng = Engine(EngineConfig(weights=tiny_weights, provider="cuda", input_size=64))
    frame = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    warned = [r.getMessage() for r in caplog.records if "differ from the CPU's" in r.getMessage()]
    if kept:
        assert eng.provider == "cuda" and not warned
    else:
        assert eng.provider == "cpu" and len(warned) == 1 and "the cuda session's class scores" in warned[0]
        assert "relative error" in warned[0]
        unchecked = Engine(EngineConfig(weights=tiny_weights, provider="cuda", input_size=64, verify=False))
        assert unchecked.provider == "cuda"  # what `bench providers` times for its fp16 copy
        cpu = Engine(EngineConfig(weights=tiny_weights, provider="cpu", input_size=64))
        assert (eng.run(frame) == cpu.run(frame)).all()


@pytest.mark.parametrize("fails, said", [
    ("libcuda.so.1", "no NVIDIA driver: libcuda.so.1 not found"),
    ("libnvinfer.so.10", "TensorRT is not installed: libnvinfer.so.10 not found"),
    ("libcublasLt.so.13", "libcublasLt.so.13 not found; pip install 'onnxruntime-gpu[cuda,cudnn]' brings CUDA and cuDNN"),
    ("libcudnn.so.9", "libcudnn.so.9 not found; pip install"),
    ("undefined", None),  # the provider's library loads its dependencies but not alone: not a missing library
    (None, None),
])
def test_provider_problem_names_the_missing_library(monkeypatch, tmp_path, fails, said):
    """The loader's words for the first library that cannot be found; the provider's own library
    is asked for its dependencies (here: the name `fails` stands for any of them)."""
    import ctypes
    import sys

    from lipparse_rt.engine import provider_problem

    asked = []

    def cdll(name, mode=0):
        asked.append(name)
        provider_lib = name.endswith("libonnxruntime_providers_cuda.so")
        if fails == "undefined" and provider_lib:
            raise OSError(f"{name}: undefined symbol: Provider_GetHost")
        if fails and (name == fails or (provider_lib and fails not in ("libcuda.so.1", "libcudnn.so.9"))):
            raise OSError(f"{fails}: cannot open shared object file: No such file or directory")

    capi = tmp_path / "onnxruntime" / "capi"  # an onnxruntime-gpu install, whatever this machine has
    capi.mkdir(parents=True)
    (capi / "libonnxruntime_providers_cuda.so").touch()
    monkeypatch.setattr(ort, "__file__", str(capi.parent / "__init__.py"))
    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setattr(sys, "platform", "linux")
    got = provider_problem("cuda")
    assert (got is None) if said is None else got.startswith(said)
    assert asked[0] == "libcuda.so.1"  # the driver first: no GPU at all is the likelier cause


def test_without_a_driver_no_gpu_provider_is_tried(tiny_weights, monkeypatch, caplog):
    """ONNX Runtime lists TensorRT and CUDA, but the NVIDIA driver is absent: the engine builds no
    GPU graph and tries no GPU session; one session, on the CPU weights, and the one line why."""
    loads, built = [], []
    real = Engine._load
    monkeypatch.setattr(Engine, "_load", lambda self, path, providers, model=None:
                        loads.append([name for name, _ in providers]) or real(self, path, providers, model))
    monkeypatch.setattr(gpu_graph, "gpu_model", lambda p: built.append(p))
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(engine_mod, "gpu_driver_problem", lambda: "no NVIDIA driver: libcuda.so.1 not found")
    cpu_copy = int8_weights()
    with caplog.at_level("INFO", logger="lipparse_rt.engine"):
        eng = Engine(EngineConfig(weights=tiny_weights, cpu_weights=cpu_copy))
    assert loads == [["CPUExecutionProvider"]] and not built
    assert eng.provider == "cpu" and eng.weights == cpu_copy
    assert any("tensorrt/cuda provider could not be created (no NVIDIA driver: libcuda.so.1 not found): running on cpu"
               in r.getMessage() for r in caplog.records)


def test_the_provider_line_names_the_cause(tiny_weights, monkeypatch, caplog):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(engine_mod, "provider_problem", lambda p: "no NVIDIA driver: libcuda.so.1 not found")
    with caplog.at_level("WARNING", logger="lipparse_rt.engine"):
        eng = Engine(EngineConfig(weights=tiny_weights, provider="cuda", input_size=64))
    if eng.provider == "cpu":  # no usable CUDA here
        assert any("cuda provider could not be created (no NVIDIA driver: libcuda.so.1 not found): running on cpu"
                   in r.getMessage() for r in caplog.records)
