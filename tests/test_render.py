import numpy as np
import pytest

from lipparse_rt.classes import PALETTE_BGR
from lipparse_rt.engine import scale_ids
from lipparse_rt.render import HudInfo, classes_on_screen, hud, hud_lines, legend, overlay


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


def test_classes_on_screen_counts_shares_on_a_big_map():
    ids = np.zeros((1080, 1920), np.uint8)
    ids[:108, :192] = 5  # 1% of the frame
    ids[500:520, 500:530] = 13  # 600 px: 0.03%, under the 0.1% share
    ids[800:880, 1000:1052] = 2  # 4,160 px: 0.2%
    assert classes_on_screen(ids) == [2, 5]
    assert classes_on_screen(ids, min_share=0.0001) == [2, 5, 13]


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


@pytest.mark.parametrize("frame_hw, ids_hw", [((480, 640), (192, 256)), ((1080, 1920), (144, 256)),
                                              ((75, 101), (48, 64)), ((37, 23), (37, 23)), ((720, 1280), (144, 256)),
                                              ((32, 32), (64, 64))])
def test_overlay_of_the_model_map_equals_overlay_of_the_scaled_map(frame_hw, ids_hw, monkeypatch):
    import lipparse_rt.render as render

    monkeypatch.setattr(render, "_STRIP_PIXELS", 7 * frame_hw[1])  # strips that do not divide the frame
    rng = np.random.default_rng(2)
    bgr = rng.integers(0, 256, (*frame_hw, 3), dtype=np.uint8)
    ids = rng.integers(0, 20, ids_hw, dtype=np.uint8)
    ids[: ids_hw[0] // 3] = 0  # some strips all background
    full = scale_ids(ids, *frame_hw)
    assert full.shape == frame_hw
    assert np.array_equal(overlay(bgr, ids, 0.5), overlay(bgr, full, 0.5))


def test_overlay_refuses_what_is_not_a_class_map():
    with pytest.raises(ValueError, match="not an HxW map"):
        overlay(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10, 3), np.uint8))
