"""Pure drawing functions: class overlay, legend, HUD. Array in, array out; no I/O."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from .classes import NAMES, NUM_CLASSES, PALETTE_BGR

U8 = NDArray[np.uint8]

TARGET_FPS = 49.0  # LIP-Net paper's headline speed
_FONT = cv2.FONT_HERSHEY_SIMPLEX


_LUTS = [np.ascontiguousarray(PALETTE_BGR[:, c]) for c in range(3)]  # one table per channel


def colorize(ids: U8) -> U8:
    """Return the HxWx3 BGR colour image of a class map.

    Three one-channel cv2.LUTs and a merge: ~3x faster than numpy indexing, and ~5x faster than
    one LUT on a three-channel image (which OpenCV does not vectorise).
    """
    return cv2.merge([cv2.LUT(ids, lut) for lut in _LUTS])


_STRIP_PIXELS = 1 << 17  # overlay works in strips of rows this size: cache-sized temporaries


def _nearest(n_src: int, n_dst: int) -> NDArray[np.intp]:
    """Source index of each destination index, as OpenCV's INTER_NEAREST picks it."""
    return np.minimum(np.floor(np.arange(n_dst) * (1.0 / (n_dst / n_src))).astype(np.intp), n_src - 1)


def overlay(bgr: U8, ids: U8, alpha: float = 0.5, out: U8 | None = None) -> U8:
    """Return `bgr` with the class colours of `ids` blended in (background left as is).

    `ids` may have another size than the frame (the model's own map, same aspect ratio): it is
    scaled by nearest neighbour, exactly as `engine.scale_ids` would, a strip at a time, so no
    frame-sized class map is ever made. Writes into `out` (which may be `bgr` itself) or a new
    image. Works strip by strip, so the temporaries stay in cache and a 4K frame needs no
    full-size scratch images.
    """
    h, w = bgr.shape[:2]
    if ids.ndim != 2 or not ids.size:
        raise ValueError(f"class map {ids.shape} is not an HxW map")
    if out is None:
        out = bgr.copy()
    elif out is not bgr:
        out[:] = bgr
    y_src = _nearest(ids.shape[0], h) if ids.shape != (h, w) else None
    rows = max(1, _STRIP_PIXELS // max(1, w))
    for y in range(0, h, rows):
        band = ids[y: y + rows] if y_src is None else ids[y_src[y: y + rows]]  # the strip's rows of the map
        if not band.any():  # all background: nothing to draw
            continue
        part = band if band.shape[1] == w else cv2.resize(band, (w, band.shape[0]), interpolation=cv2.INTER_NEAREST)
        blended = cv2.addWeighted(bgr[y: y + rows], 1.0 - alpha, colorize(part), alpha, 0.0)
        cv2.copyTo(blended, (part > 0).view(np.uint8), out[y: y + rows])
    return out


def _scale(img: U8) -> float:
    return max(0.4, min(img.shape[:2]) / 720)


def _text_box(img: U8, lines: list[str], origin: tuple[int, int], right: bool = False,
              swatches: list[int] | None = None) -> None:
    s = _scale(img)
    fs, th = 0.55 * s, max(1, round(1.4 * s))
    lh = round(24 * s)
    sw = round(16 * s) if swatches else 0
    widths = [cv2.getTextSize(t, _FONT, fs, th)[0][0] for t in lines]
    bw = max(widths, default=0) + sw + round(16 * s)
    bh = lh * len(lines) + round(8 * s)
    x0 = origin[0] - bw if right else origin[0]
    y0 = origin[1]
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(img.shape[1], x0 + bw), min(img.shape[0], y0 + bh)
    roi = img[y0:y1, x0:x1]
    roi[:] = (roi * 0.35).astype(np.uint8)
    for i, text in enumerate(lines):
        y = y0 + round(6 * s) + lh * (i + 1) - round(6 * s)
        x = x0 + round(8 * s)
        if swatches:
            colour = tuple(int(c) for c in PALETTE_BGR[swatches[i]])
            cv2.rectangle(img, (x, y - round(13 * s)), (x + round(12 * s), y - round(1 * s)), colour, -1)
            cv2.rectangle(img, (x, y - round(13 * s)), (x + round(12 * s), y - round(1 * s)), (255, 255, 255), 1)
            x += sw
        cv2.putText(img, text, (x, y), _FONT, fs, (255, 255, 255), th, cv2.LINE_AA)


def classes_on_screen(ids: U8, min_share: float = 0.001) -> list[int]:
    """The non-background classes covering at least `min_share` of the map.

    Counted on a grid of ~20,000 pixels: every pixel of a 640x480 map costs ~5x more time.
    """
    step = max(1, int((ids.size / 20_000) ** 0.5))
    sample = ids[::step, ::step]
    counts = np.bincount(sample.ravel(), minlength=256)[:NUM_CLASSES]
    return [c for c in range(1, NUM_CLASSES) if counts[c] >= min_share * sample.size]


def legend(img: U8, ids: U8, min_share: float = 0.001) -> U8:
    """Draw, in place at the top right, a swatch and name for each class on screen; return `img`."""
    present = classes_on_screen(ids, min_share)
    if present:
        _text_box(img, [NAMES[c] for c in present], (img.shape[1] - 4, 4), right=True, swatches=present)
    return img


@dataclass(frozen=True)
class HudInfo:
    """What the HUD shows."""

    fps: float
    model_ms: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    provider: str
    input_hw: tuple[int, int]
    status: str = ""


def hud_lines(info: HudInfo) -> list[str]:
    """The HUD's text, one string a line."""
    lines = [f"{info.fps:.1f} / {TARGET_FPS:.0f} FPS", f"model {info.model_ms:.1f} ms"]
    if info.latency_p50_ms is not None and info.latency_p95_ms is not None:
        lines.append(f"latency p50 {info.latency_p50_ms:.0f} / p95 {info.latency_p95_ms:.0f} ms")
    lines.append(f"{info.provider.upper()}  input {info.input_hw[1]}x{info.input_hw[0]}")
    if info.status:
        lines.append(info.status)
    return lines


def hud(img: U8, info: HudInfo) -> U8:
    """Draw the HUD in place at the top left; return `img`."""
    _text_box(img, hud_lines(info), (4, 4))
    return img
