import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import make_lip_folder
from lipparse_rt.engine import Engine, EngineConfig
from lipparse_rt.errors import InputError
from lipparse_rt.quantize import calibration_images, quantize


def _lip_folder(root, stems):
    make_lip_folder(root, stems, (40, 30), splits={"train": ["a", "b"], "val": ["c"]})


def test_calibration_images_respect_a_split_and_spread_evenly(tmp_path):
    _lip_folder(tmp_path / "d", ["a", "b", "c"])
    picked = calibration_images([f"{tmp_path / 'd'}:split=train"], 10)
    assert sorted(p.stem for p in picked) == ["a", "b"]  # never the val photo
    assert len(calibration_images([tmp_path / "d" / "images"], 2)) == 2
    with pytest.raises(InputError, match="no such folder"):
        calibration_images([tmp_path / "nope"], 4)


def test_quantized_model_loads_keeps_metadata_and_mostly_agrees(tmp_path, tiny_weights):
    _lip_folder(tmp_path / "d", ["a", "b", "c"])
    out = quantize(tiny_weights, tmp_path / "q.onnx", calibration_images([tmp_path / "d" / "images"], 3), 64)
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["input_size"] == "64" and meta["quantization"].startswith("int8")
    frame = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ids_f = Engine(EngineConfig(weights=tiny_weights, provider="cpu")).parse(frame)
    ids_q = Engine(EngineConfig(weights=out, provider="cpu")).parse(frame)
    assert ids_q.shape == ids_f.shape and ids_q.max() < 20
    assert (ids_q == ids_f).mean() > 0.5  # random tiny weights: a loose bound, but not a stub


def _conv_weights_quantized(model) -> dict[str, bool]:
    """Each Conv's name -> whether its weights come through a DequantizeLinear (int8 in QDQ form)."""
    producer = {out: n for n in model.graph.node for out in n.output}
    return {n.name: getattr(producer.get(n.input[1]), "op_type", "") == "DequantizeLinear"
            for n in model.graph.node if n.op_type == "Conv"}


@pytest.mark.parametrize("float_stages", [0, 3])
def test_only_convolutions_past_the_float_stages_are_quantized(tmp_path, tiny_weights, float_stages):
    _lip_folder(tmp_path / "d", ["a", "b", "c"])
    out = quantize(tiny_weights, tmp_path / "q.onnx", calibration_images([tmp_path / "d" / "images"], 3), 64,
                   float_stages=float_stages)
    model = onnx.load(str(out))
    convs = _conv_weights_quantized(model)
    early = [name for name in convs if name.startswith(("/net/stages.0/", "/net/stages.1/", "/net/stages.2/"))]
    decoder = [name for name in convs if name.startswith("/net/decoder/")]
    assert early and decoder and len(early) + len(decoder) < len(convs)
    for name, quantized in convs.items():
        assert quantized == (name not in decoder and (float_stages == 0 or name not in early)), name
    # ONNX Runtime turns the QDQ pairs into int8 kernels: convolutions only, no int8 SE gates (slow on the CPU)
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(out), opts, providers=["CPUExecutionProvider"])
    ran = {n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node}
    assert "QLinearConv" in ran and not ran & {"QLinearMul", "QLinearAdd", "QLinearSigmoid", "QLinearGlobalAveragePool"}
    meta = {p.key: p.value for p in model.metadata_props}
    assert f"first {float_stages} stages and the decoder float" in meta["quantization"]


def _activation_scales(model) -> dict[str, float]:
    """Each activation QuantizeLinear's input name -> its scale (the range / 255 of uint8)."""
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


def test_the_percentile_sets_the_activation_ranges(tmp_path, tiny_weights):
    _lip_folder(tmp_path / "d", ["a", "b", "c"])
    images = calibration_images([tmp_path / "d" / "images"], 3)
    narrow, full = (onnx.load(str(quantize(tiny_weights, tmp_path / f"q{p}.onnx", images, 64, percentile=p)))
                    for p in (90.0, 100.0))
    a, b = _activation_scales(narrow), _activation_scales(full)
    assert a.keys() == b.keys() and a
    assert all(a[k] <= b[k] * (1 + 1e-6) for k in a) and any(a[k] < 0.9 * b[k] for k in a)  # min/max holds every value
    assert "90th-percentile" in {p.key: p.value for p in narrow.metadata_props}["quantization"]


def test_calibration_at_a_long_side_off_the_stride_pads_every_frame_alike(tmp_path, tiny_weights):
    make_lip_folder(tmp_path / "d", ["a", "b", "c"], (40, 30))  # landscape
    make_lip_folder(tmp_path / "e", ["p"], (30, 40))  # portrait: another padded shape
    images = calibration_images([tmp_path / "d" / "images", tmp_path / "e" / "images"], 4)
    out = quantize(tiny_weights, tmp_path / "q.onnx", images, 56)  # 56 is not a multiple of 16
    ids = Engine(EngineConfig(weights=out, provider="cpu", input_size=64)).parse(
        np.random.default_rng(2).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    assert ids.shape == (48, 64) and ids.max() < 20


def test_the_cli_percentile_default_is_the_library_one():
    """The CLI spells its default out (importing quantize would load numpy and cv2 with the CLI
    module); this keeps the two from drifting apart."""
    import inspect

    from lipparse_rt import cli, quantize as q

    assert inspect.signature(cli.quantize).parameters["percentile"].default.default == q.PERCENTILE
    assert inspect.signature(q.quantize).parameters["percentile"].default == q.PERCENTILE
