"""The 20 LIP classes: names, the usual LIP palette, and the left/right flip pairs.

The one place that knows the vocabulary. Imports nothing but numpy.
"""

from __future__ import annotations

import numpy as np

NAMES: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses",
    "upper-clothes", "dress", "coat", "socks", "pants",
    "jumpsuits", "scarf", "skirt", "face", "left-arm",
    "right-arm", "left-leg", "right-leg", "left-shoe", "right-shoe",
)
NUM_CLASSES = len(NAMES)

# The palette used by the LIP dataset's own visualisations (RGB).
PALETTE_RGB: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51),
    (255, 85, 0), (0, 0, 85), (0, 119, 221), (85, 85, 0), (0, 85, 85),
    (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255), (51, 170, 221),
    (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0),
)

# The person's own left/right: a horizontal flip swaps each pair.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((14, 15), (16, 17), (18, 19))


def _bgr_table() -> np.ndarray:
    table = np.zeros((256, 3), np.uint8)
    table[:NUM_CLASSES] = np.array(PALETTE_RGB, np.uint8)[:, ::-1]
    return table


# Lookup table id -> BGR colour, 256 rows so any uint8 map indexes it safely.
PALETTE_BGR: np.ndarray = _bgr_table()
PALETTE_BGR.setflags(write=False)


def _flip_lut() -> np.ndarray:
    lut = np.arange(256, dtype=np.uint8)
    for a, b in FLIP_PAIRS:
        lut[a], lut[b] = b, a
    return lut


# Lookup table id -> id after a horizontal flip (identity outside the pairs).
FLIP_LUT: np.ndarray = _flip_lut()
FLIP_LUT.setflags(write=False)
