import numpy as np

from lipparse_rt.classes import PALETTE_BGR
from lipparse_rt.render import HudInfo, hud, hud_lines, legend, overlay


def test_overlay_blends_classes_and_leaves_background():
    bgr = np.full((4, 4, 3), 100, np.uint8)
    ids = np.zeros((4, 4), np.uint8)
    ids[1, 1] = 13
    out = overlay(bgr, ids, alpha=0.5)
    assert (out[ids == 0] == 100).all()
    expected = (0.5 * 100 + 0.5 * PALETTE_BGR[13].astype(float)).round()
    assert np.abs(out[1, 1].astype(float) - expected).max() <= 1
    assert (bgr == 100).all()  # input untouched


def test_legend_draws_top_right_only_for_present_classes():
    img = np.full((240, 320, 3), 128, np.uint8)
    ids = np.zeros((240, 320), np.uint8)
    ids[:100, :100] = 5
    out = legend(img.copy(), ids)
    changed = (out != 128).any(2)
    assert changed[:40, 200:].any() and not changed[:, :100].any()
    ys, xs = np.nonzero((out == PALETTE_BGR[5]).all(2))
    assert len(ys) > 0 and xs.min() > 200  # the swatch colour of upper-clothes is drawn


def test_legend_draws_nothing_for_background_only():
    img = np.full((100, 100, 3), 128, np.uint8)
    assert (legend(img.copy(), np.zeros((100, 100), np.uint8)) == 128).all()


def test_hud_text_and_drawing():
    info = HudInfo(fps=37.24, model_ms=12.3, latency_p50_ms=40, latency_p95_ms=55, provider="cpu", input_hw=(192, 256))
    lines = hud_lines(info)
    assert lines[0] == "37.2 / 49 FPS" and "12.3 ms" in lines[1] and "p50 40 / p95 55" in lines[2]
    assert "CPU" in lines[3] and "256x192" in lines[3]
    img = np.full((240, 320, 3), 200, np.uint8)
    hud(img, info)
    assert (img[:60, :120] != 200).any() and (img[200:, 200:] == 200).all()


def test_overlay_in_strips_and_in_place_matches_the_whole_frame_reference(monkeypatch):
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (37, 23, 3), dtype=np.uint8)
    ids = rng.integers(0, 20, (37, 23), dtype=np.uint8)
    colours = PALETTE_BGR[ids].astype(float)
    expected = np.where((ids > 0)[..., None], 0.3 * bgr + 0.7 * colours, bgr)
    import lipparse_rt.render as render

    monkeypatch.setattr(render, "_STRIP_PIXELS", 5 * 23)  # 5-row strips, the last one short
    frame = bgr.copy()
    out = overlay(frame, ids, alpha=0.7, out=frame)
    assert out is frame
    assert np.abs(out.astype(float) - expected).max() <= 1
