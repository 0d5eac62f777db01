import cv2
import numpy as np
import pytest

from lipparse_rt.data import AugmentConfig, augment, find_pairs, flip, read_mask
from lipparse_rt.errors import InputError


def test_flip_mirrors_and_swaps_left_right():
    img = np.zeros((2, 3, 3), np.uint8)
    img[:, 0] = 255
    mask = np.array([[14, 16, 18], [15, 17, 5]], np.uint8)
    fi, fm = flip(img, mask)
    assert (fi[:, 2] == 255).all() and (fi[:, 0] == 0).all()
    assert fm.tolist() == [[19, 17, 15], [5, 16, 14]]


def test_augment_flip_swaps_sides_and_keeps_alignment():
    rng = np.random.default_rng(0)
    img = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    img[:, :32] = 200
    mask[:, :32] = 14  # left arm on the image's left half
    cfg = AugmentConfig(size=64, scale=(1.0, 1.0), rotate_deg=0, jitter=0, blur_p=0)
    seen = set()
    for _ in range(20):
        a, m = augment(img, mask, rng, cfg)
        arm = m == 14 if (m == 14).any() else m == 15
        seen.add(14 if (m == 14).any() else 15)
        # the arm label sits where the bright pixels are, whichever way it was flipped
        assert a[arm].mean() > 150 and a[m == 0].mean() < 50
        if (m == 15).any():
            assert arm[:, 40:].all()  # flipped: the arm is now on the right, and named right-arm
    assert seen == {14, 15}


def test_find_pairs_matches_stems_and_split(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "parse").mkdir()
    for s in ("a", "b", "c"):
        cv2.imwrite(str(tmp_path / "images" / f"{s}.jpg"), np.zeros((8, 8, 3), np.uint8))
    for s in ("a", "b"):
        cv2.imwrite(str(tmp_path / "parse" / f"{s}.png"), np.full((8, 8), 3, np.uint8))
    (tmp_path / "val.txt").write_text("b\nc\n")
    assert [p[0].stem for p in find_pairs(tmp_path)] == ["a", "b"]
    assert [p[0].stem for p in find_pairs(tmp_path, "val")] == ["b"]
    assert read_mask(find_pairs(tmp_path)[0][1]).max() == 3
    with pytest.raises(InputError, match="no such file"):
        find_pairs(tmp_path, "test")


def test_augment_grey_turns_a_share_of_samples_grey_and_leaves_labels():
    rng = np.random.default_rng(1)
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 2] = 220  # saturated red
    mask = np.full((32, 32), 5, np.uint8)
    cfg = AugmentConfig(size=32, scale=(1.0, 1.0), rotate_deg=0, flip=False, jitter=0, blur_p=0, grey_p=0.5)
    grey = 0
    for _ in range(200):
        a, m = augment(img, mask, rng, cfg)
        assert (m == 5).all()
        is_grey = bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())
        assert is_grey or a[..., 2].mean() > a[..., 0].mean() + 100  # colour kept otherwise
        grey += is_grey
    assert 70 <= grey <= 130  # about half, of 200
