from pathlib import Path

import numpy as np
import pytest

import cv2

from lipparse_rt.engine import Engine, EngineConfig, fit_size, shrink
from lipparse_rt.errors import InputError, WeightsError

from conftest import demo_frame


def test_fit_size_keeps_aspect_and_pads_to_16():
    assert fit_size(480, 640, 256) == (192, 256, 192, 256)
    assert fit_size(640, 480, 256) == (256, 192, 256, 192)
    assert fit_size(100, 1000, 256) == (26, 256, 32, 256)


@pytest.mark.parametrize("src, dst", [((480, 640), (192, 256)), ((720, 1280), (144, 256)), ((1080, 1920), (144, 256)),
                                      ((75, 101), (48, 64)), ((100, 1000), (26, 256)), ((48, 64), (96, 128))])
def test_shrink_matches_area_averaging(src, dst):
    rng = np.random.default_rng(1)
    # a smooth picture, as most of a frame is (on noise, any two resamplers differ by aliasing)
    img = cv2.resize(rng.integers(0, 255, (src[0] // 24 + 2, src[1] // 24 + 2, 3), dtype=np.uint8), src[::-1],
                     interpolation=cv2.INTER_LINEAR)
    out = shrink(img, dst[1], dst[0])
    interp = cv2.INTER_AREA if dst[0] < src[0] else cv2.INTER_LINEAR
    ref = cv2.resize(img, dst[::-1], interpolation=interp)
    assert out.shape == (*dst, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - ref).mean() < 2.0
    if dst[0] * 2 <= src[0]:  # a real shrink averages fine detail away; bilinear alone would alias it
        stripes = np.zeros((*src, 3), np.uint8)
        stripes[::2] = 255
        area = cv2.resize(stripes, dst[::-1], interpolation=cv2.INTER_AREA)
        mean_error = np.abs(shrink(stripes, dst[1], dst[0]) - 127.5).mean()
        assert mean_error <= np.abs(area - 127.5).mean() + 4  # (bilinear: ~100 grey levels off)


def test_engine_returns_ids_at_frame_size(tiny_weights):
    eng = Engine(EngineConfig(weights=tiny_weights, provider="cpu", threads=1))
    assert eng.provider == "cpu" and eng.input_size == 64
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (75, 101, 3), dtype=np.uint8)
    ids = eng.run(frame)
    assert ids.shape == (75, 101) and ids.dtype == np.uint8 and ids.max() < 20
    assert eng.model_shape(75, 101) == (48, 64)


def test_engine_ids_follow_the_frame(tiny_weights):
    """The class map is the model's output cropped and scaled back, not padding."""
    eng = Engine(EngineConfig(weights=tiny_weights, provider="cpu", input_size=64))
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:, 32:] = 255
    batch, (rh, rw) = eng.prepare(frame)
    direct = eng.infer(batch)[0, :rh, :rw]
    assert (eng.run(frame) == direct).all()  # same size: no resize
    assert batch.shape == (1, 32, 64, 3)


def test_auto_provider_reports_what_is_used(tiny_weights):
    eng = Engine(EngineConfig(weights=tiny_weights))
    assert eng.provider in ("tensorrt", "cuda", "cpu")
    assert eng.session.get_providers()[0].lower().startswith(eng.provider)


def test_missing_and_invalid_weights(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        Engine(EngineConfig(weights=tmp_path / "none.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    with pytest.raises(WeightsError, match="not a valid ONNX model"):
        Engine(EngineConfig(weights=bad))


def test_weights_with_wrong_classes_are_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMax", ["bgr"], ["ids"], axes=[3], keepdims=0)], "g",
        [helper.make_tensor_value_info("bgr", TensorProto.UINT8, [1, None, None, 3])],
        [helper.make_tensor_value_info("ids", TensorProto.UINT8, [1, None, None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    p = tmp_path / "m.onnx"
    onnx.save(model, str(p))
    with pytest.raises(WeightsError, match="not the 20 LIP classes"):
        Engine(EngineConfig(weights=p))
    model.graph.input[0].name = "image"
    model.graph.node[0].input[0] = "image"
    onnx.save(model, str(p))
    with pytest.raises(WeightsError, match="expected one uint8 input 'bgr'"):
        Engine(EngineConfig(weights=p))


def test_bad_config_is_rejected():
    for size in (250, 16, 4096):  # off the stride, too small, too large (4096 took 6 GB for one photo)
        with pytest.raises(InputError, match="multiple of 16 from 32 to 2048"):
            EngineConfig(input_size=size)
    assert EngineConfig(input_size=2048).input_size == 2048
    with pytest.raises(InputError, match="unknown provider"):
        EngineConfig(provider="gpu")


def test_flip_mode_parses_the_frame_and_its_mirror(tiny_weights):
    from lipparse_rt.classes import FLIP_LUT

    eng = Engine(EngineConfig(weights=tiny_weights, provider="cpu", input_size=64, flip=True))
    plain = Engine(EngineConfig(weights=tiny_weights, provider="cpu", input_size=64))
    frame = np.random.default_rng(2).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ids = eng.parse(frame)
    assert ids.shape == plain.parse(frame).shape and ids.dtype == np.uint8
    assert np.array_equal(ids, eng.parse_flip(frame))
    # averaging a frame with its mirror makes the result mirror-symmetric, sides swapped
    mirrored = eng.parse(np.ascontiguousarray(frame[:, ::-1]))
    assert (FLIP_LUT[mirrored[:, ::-1]] == ids).mean() > 0.99
    assert eng.run(frame).shape == (48, 64)


def test_scales_average_the_probabilities_of_each_scale_at_the_frame_or_largest_map(tiny_weights):
    """Test-time scales: the frame parsed at each side, the softmax maps brought bilinearly to the
    largest map's size, or to the frame's own where that is smaller, summed, then the argmax."""
    eng = Engine(EngineConfig(weights=tiny_weights, provider="cpu", input_size=64, scales=(1.125, 1.375)))
    assert eng.tta_sides() == [80, 96] and eng.tta_sides(256) == [288, 352] and eng.tta_sides(scaled=False) == [64]
    assert eng.tta_sides(1600) == [1808, 2048] and eng.tta_sides(2048) == [2048]  # at most MAX_INPUT, each once
    assert "scales 1.125/1.375" in eng.mode

    def by_hand(frame, h, w):
        total = 0
        for side in (80, 96):
            z = eng.logits(frame, side).astype(np.float64)
            e = np.exp(z - z.max(0))
            probs = (e / e.sum(0)).astype(np.float32)
            total = total + np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in probs])
        return total.argmax(0)

    rng = np.random.default_rng(6)
    small = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)  # smaller than both maps: at its own size
    ids = eng.parse(small)
    assert ids.shape == (48, 64) and (ids == by_hand(small, 48, 64)).mean() > 0.999
    large = rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)  # larger: at the 96-wide map's size
    ids = eng.parse(large)
    assert ids.shape == (72, 96) and (ids == by_hand(large, 72, 96)).mean() > 0.999
    plain = Engine(EngineConfig(weights=tiny_weights, provider="cpu", input_size=64))
    assert np.array_equal(eng.parse(large, scaled=False), plain.parse(large))  # zoom's searches: one scale
    with pytest.raises(InputError, match="0.25..4"):
        EngineConfig(scales=(1.0, 5.0))


def test_face_side_enlarges_small_faces_towards_the_target_and_leaves_close_ups():
    from lipparse_rt.engine import FACE, face_side

    def with_face(rows):
        ids = np.zeros((192, 256), np.uint8)
        ids[50:50 + rows, 100:120] = FACE
        return ids

    assert face_side(with_face(30), 256, 40) == 352  # 40/30 = 1.33: 341 pixels, padded to 352
    assert face_side(with_face(20), 256, 40) == 384  # 2x wanted, 1.5x at most
    assert face_side(with_face(38), 256, 40) == 0  # within 6% of the target: parsed once
    assert face_side(with_face(60), 256, 40) == 0  # a close-up: never shrunk
    assert face_side(np.zeros((192, 256), np.uint8), 256, 40) == 0  # nobody: nothing to go by
    assert face_side(with_face(10), 256, 40) == 0  # a sliver of a face: not measured
    assert face_side(with_face(10)[::2, ::2], 256, 40) == 0  # measured in pixels at the long side
    assert face_side(with_face(30)[::2, ::2], 256, 40) == 352  # (a map at half the size: the same)


def test_an_engine_scaled_by_the_face_parses_again_enlarged_and_averages(tiny_weights, monkeypatch):
    from lipparse_rt.engine import FACE

    eng = Engine(EngineConfig(weights=tiny_weights, provider="cpu", input_size=64, face=24))
    assert eng.face == 24 and "face 24px" in eng.mode
    frame = np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    calls, real = [], eng._probs

    def probs(bgr, sides, flip, total=None):
        calls.append(list(sides))
        if total is None:  # the first parse: a face 16 rows tall at 64 (24/16 = 1.5x wanted)
            out = np.zeros((20, 48, 64), np.float32)
            out[0] = 1
            out[:, 10:26, 30:36] = 0
            out[FACE, 10:26, 30:36] = 1
            return out
        return real(bgr, sides, flip, total)

    monkeypatch.setattr(eng, "_probs", probs)
    ids = eng.parse(frame)
    assert calls == [[64], [96]] and ids.shape == (48, 64)  # the frame's own size: smaller than 96
    calls.clear()
    eng.parse(frame, scaled=False)  # zoom's searches: one parse, no face scaling
    assert calls == []
    # the averaged probabilities, by hand: the first parse's map plus the enlarged one's at 48x64
    z = eng.logits(frame, 96)
    e = np.exp(z - z.max(0))
    enlarged = np.stack([cv2.resize(c, (64, 48), interpolation=cv2.INTER_LINEAR) for c in e / e.sum(0)])
    first = probs(frame, [64], False)
    assert (ids == (first + enlarged).argmax(0)).mean() > 0.999


def test_flip_mode_averages_the_probabilities_of_frame_and_mirror():
    from lipparse_rt.classes import FLIP_LUT

    # the shipped model on the demo's astronaut: sided arms, a face, clothes (a random net is flat)
    root = Path(__file__).resolve().parents[1]
    eng = Engine(EngineConfig(weights=root / "weights" / "lipnet.onnx", provider="cpu", input_size=256))
    frame = demo_frame()
    frame = np.ascontiguousarray(frame[: frame.shape[0] * 5 // 8])  # not a multiple of 16: padded

    def probs(img):  # straight from the session: 1xHxWx20 logits, padding rows cropped
        batch, (rh, rw) = eng.prepare(img)
        z = eng.session.run(["logits"], {"bgr": batch})[0][0, :rh, :rw].astype(np.float64)
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    want = probs(frame) + probs(np.ascontiguousarray(frame[:, ::-1]))[:, ::-1][..., FLIP_LUT[:20]]
    got = eng.parse_flip(frame)
    assert got.shape == want.shape[:2] and len(np.unique(got)) > 5
    assert (got == want.argmax(-1)).mean() > 0.999


def test_flip_mode_needs_weights_with_logits(tmp_path):
    torch = pytest.importorskip("torch")
    from lipparse_rt.export import export_onnx
    from lipparse_rt.model import LipNet, LipNetConfig

    torch.manual_seed(0)
    net = LipNet(LipNetConfig(widths=(4, 8, 8, 8, 16, 16), aspp_width=8, decoder_width=8))
    w = export_onnx(net, tmp_path / "ids_only.onnx", input_size=64, with_logits=False)
    Engine(EngineConfig(weights=w, provider="cpu"))  # fine without flip
    with pytest.raises(WeightsError, match="no 'logits' output"):
        Engine(EngineConfig(weights=w, provider="cpu", flip=True))
    assert not Engine(EngineConfig(weights=w, provider="cpu", flip=None)).flip  # flip where possible: not here
    with_logits = export_onnx(net, tmp_path / "with_logits.onnx", input_size=64)
    assert Engine(EngineConfig(weights=with_logits, provider="cpu", flip=None)).flip


def test_cpu_weights_run_where_the_session_lands_on_the_cpu(tiny_weights, tmp_path):
    torch = pytest.importorskip("torch")
    from lipparse_rt.export import export_onnx
    from lipparse_rt.model import LipNet, LipNetConfig

    torch.manual_seed(1)  # other weights, other ids
    net = LipNet(LipNetConfig(widths=(4, 8, 8, 8, 16, 16), aspp_width=8, decoder_width=8))
    other = export_onnx(net, tmp_path / "other.onnx", input_size=64)
    frame = np.random.default_rng(5).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    want = Engine(EngineConfig(weights=other, provider="cpu")).run(frame)
    assert not (Engine(EngineConfig(weights=tiny_weights, provider="cpu")).run(frame) == want).all()
    eng = Engine(EngineConfig(weights=tiny_weights, provider="cpu", cpu_weights=other))
    assert eng.weights == other and (eng.run(frame) == want).all()
    auto = Engine(EngineConfig(weights=tiny_weights, cpu_weights=other))  # a GPU provider may be offered and fail
    assert auto.weights == (other if auto.provider == "cpu" else tiny_weights)
    with pytest.raises(WeightsError, match="no such file"):
        Engine(EngineConfig(weights=tiny_weights, provider="cpu", cpu_weights=tmp_path / "none.onnx"))


def test_a_config_without_weights_runs_the_apps_default(monkeypatch, tiny_weights):
    from lipparse_rt.engine import WEIGHTS_ENV, default_weights, int8_weights

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert Engine(EngineConfig(provider="cpu")).weights == int8_weights()  # the shipped INT8 copy on a CPU
    assert Engine(EngineConfig(provider="cpu", cpu_weights=default_weights())).weights == default_weights()
    monkeypatch.setenv(WEIGHTS_ENV, str(tiny_weights))  # weights named by the environment run as they are
    assert Engine(EngineConfig(provider="cpu")).weights == tiny_weights


def test_shipped_int8_weights_are_quantized_and_parse_like_the_float_ones():
    from lipparse_rt.engine import int8_weights

    root = Path(__file__).resolve().parents[1]
    frame = demo_frame()
    q = Engine(EngineConfig(weights=int8_weights(), provider="cpu"))
    f = Engine(EngineConfig(weights=root / "weights" / "lipnet.onnx", provider="cpu"))
    assert "int8" in q.meta["quantization"] and "quantization" not in f.meta
    ids_q, ids_f = q.run(frame), f.run(frame)
    assert len(np.unique(ids_f)) > 5 and (ids_q == ids_f).mean() > 0.9


def test_mode_names_the_provider_int8_and_flip(tiny_weights):
    from lipparse_rt.engine import int8_weights

    assert Engine(EngineConfig(weights=tiny_weights, provider="cpu")).mode == "cpu"
    assert Engine(EngineConfig(weights=tiny_weights, provider="cpu", flip=True)).mode == "cpu flip"
    assert Engine(EngineConfig(weights=int8_weights(), provider="cpu", flip=True)).mode == "cpu int8 flip"


def test_tensorrt_engine_cache_folder_is_made(tiny_weights, tmp_path, monkeypatch):
    """Asked for TensorRT, the engine makes its engine-cache folder in the user's cache (whether or
    not TensorRT can then be created here)."""
    import onnxruntime as ort

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["TensorrtExecutionProvider", "CPUExecutionProvider"])
    eng = Engine(EngineConfig(weights=tiny_weights, provider="tensorrt", input_size=64))
    assert (tmp_path / "cache" / "lipparse-rt" / "tensorrt").is_dir()
    assert eng.provider in ("tensorrt", "cpu")


def test_the_face_enlargement_is_capped_at_the_largest_input(tiny_weights, monkeypatch):
    import lipparse_rt.engine as engine_mod
    from lipparse_rt.engine import MAX_INPUT

    eng = Engine(EngineConfig(weights=tiny_weights, provider="cpu", input_size=64, face=40))
    sides = []

    def probs(bgr, s, flip, base=None):  # records the sides asked for; the maps do not matter here
        sides.append(list(s))
        return np.zeros((20, 4, 4), np.float32)

    monkeypatch.setattr(eng, "_probs", probs)
    monkeypatch.setattr(engine_mod, "face_side", lambda *a, **k: 4000)  # faces tiny: enlarge far
    eng.parse(np.zeros((48, 64, 3), np.uint8))
    assert sides == [[64], [MAX_INPUT]]
