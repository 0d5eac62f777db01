import numpy as np

from lipparse_rt.classes import FLIP_LUT, FLIP_PAIRS, NAMES, PALETTE_BGR, PALETTE_RGB


def test_twenty_classes_with_distinct_colours():
    assert len(NAMES) == 20 and NAMES[0] == "background" and NAMES[19] == "right-shoe"
    assert len(set(PALETTE_RGB)) == 20


def test_bgr_table_is_rgb_reversed():
    for i, rgb in enumerate(PALETTE_RGB):
        assert tuple(PALETTE_BGR[i]) == rgb[::-1]


def test_flip_lut_swaps_sides_only():
    assert FLIP_PAIRS == ((14, 15), (16, 17), (18, 19))
    expected = np.arange(256)
    for a, b in FLIP_PAIRS:
        expected[a], expected[b] = b, a
    assert (FLIP_LUT == expected).all()
