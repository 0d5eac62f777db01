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
    jpeg = tmp_path / "jpeg"  # label maps saved as JPEG: lossy, so refused with the reason
    (jpeg / "images").mkdir(parents=True)
    (jpeg / "labels").mkdir()
    cv2.imwrite(str(jpeg / "images" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(jpeg / "labels" / "a.jpg"), np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match=r"no image has a label PNG of the same stem \('labels' holds \.jpg files: "
                                         "label maps must be PNG"):
        find_pairs(jpeg)


def _lip_as_downloaded(root, flat=False):
    """LIP's own layout with two val photos (one of them listed in val_id.txt) and one train photo:
    as downloaded (TrainVal_images/..., TrainVal_parsing_annotations/...), or flattened as parsing
    repositories keep it (val_images, val_segmentations, val_id.txt)."""
    for split, stems in (("val", ("100034_483681", "100142_449784")), ("train", ("77_471474",))):
        images = root / (f"{split}_images" if flat else f"TrainVal_images/{split}_images")
        labels = root / (f"{split}_segmentations" if flat else f"TrainVal_parsing_annotations/{split}_segmentations")
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for stem in stems:
            cv2.imwrite(str(images / f"{stem}.jpg"), np.full((40, 30, 3), 128, np.uint8))
            cv2.imwrite(str(labels / f"{stem}.png"), np.full((40, 30), 5, np.uint8))
        (images.parent / f"{split}_id.txt").write_text(stems[0] + "\n")
    return root


@pytest.mark.parametrize("flat", [False, True], ids=["as-downloaded", "flattened"])
def test_find_pairs_reads_lip_as_it_is_downloaded(tmp_path, flat):
    """Before 2026-12-05 the LIP dataset itself (the classes this app parses) was `cannot find
    images in 'LIP': expected a sub-folder named one of image, images, JPEGImages`."""
    root = _lip_as_downloaded(tmp_path / "LIP", flat)
    pairs = find_pairs(root, "val")
    assert [(i.name, lab.name) for i, lab in pairs] == [("100034_483681.jpg", "100034_483681.png")]  # val_id.txt
    assert "val_images" in str(pairs[0][0]) and "val_segmentations" in str(pairs[0][1])
    assert [i.name for i, _ in find_pairs(root, "train")] == ["77_471474.jpg"]
    with pytest.raises(InputError, match=r"laid out as LIP is downloaded; name the split to read \(train or val\)"):
        find_pairs(root)
    with pytest.raises(InputError, match="LIP's layout there has train, val"):
        find_pairs(root, "test")


def test_find_pairs_reads_cihp_as_it_is_downloaded(tmp_path):
    """CIHP (LIP's multi-person sibling, the same 20 classes): `Validation/Images`, its class maps
    in `Category_ids` (not `Categories`, their colours, nor the instance maps), `val_id.txt`."""
    root = tmp_path / "instance-level_human_parsing" / "Validation"
    for folder in ("Images", "Categories", "Category_ids", "Human_ids"):
        (root / folder).mkdir(parents=True)
    for stem in ("0000001", "0000002"):
        cv2.imwrite(str(root / "Images" / f"{stem}.jpg"), np.zeros((8, 8, 3), np.uint8))
        for folder in ("Categories", "Category_ids", "Human_ids"):
            cv2.imwrite(str(root / folder / f"{stem}.png"), np.full((8, 8), 7, np.uint8))
    (root / "val_id.txt").write_text("0000002\n")
    assert [(i.parent.name, lab.parent.name) for i, lab in find_pairs(root)] == [("Images", "Category_ids")] * 2
    assert [i.stem for i, _ in find_pairs(root, "val")] == ["0000002"]


def test_augment_scale_range_sets_how_much_of_the_crop_is_labelled():
    """A crop of a scale s image holds s^2 of its area in labels up to s = 1, and is full above it."""
    rng = np.random.default_rng(2)
    img = np.full((32, 32, 3), 128, np.uint8)
    mask = np.full((32, 32), 5, np.uint8)

    def labelled(scale: tuple[float, float]) -> list[float]:
        cfg = AugmentConfig(size=32, scale=scale, rotate_deg=0, flip=False, jitter=0, blur_p=0)
        return [float((augment(img, mask, rng, cfg)[1] == 5).mean()) for _ in range(30)]

    assert all(abs(f - 0.25) < 0.05 for f in labelled((0.5, 0.5)))  # 16x16 of 32x32, the rest ignored
    assert all(f == 1.0 for f in labelled((1.5, 2.0)))
    narrow = labelled((0.7, 1.2))
    assert min(narrow) > 0.45 and max(narrow) == 1.0


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


def _person_with_face(h, w, face_box):
    """A grey picture and a label map: upper-clothes (5) below a face (13) at face_box=(x0, y0, x1, y1)."""
    img = np.full((h, w, 3), 100, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = face_box
    mask[y1:, x0 - (x1 - x0):x1 + (x1 - x0)] = 5
    mask[y0:y1, x0:x1] = 13
    return img, mask


def test_paste_puts_a_cut_hat_above_the_face_scaled_to_it():
    from lipparse_rt.data import paste, paste_items

    # Donor: a 10-high face at x 20..30, y 20..30; a red hat 10 wide and 4 high right above it.
    donor, dmask = _person_with_face(80, 60, (20, 20, 30, 30))
    donor[16:20, 20:30] = (0, 0, 255)
    dmask[16:20, 20:30] = 1
    items = paste_items(donor, dmask)
    assert [it.label for it in items] == [1]
    hat = items[0]
    assert hat.box == pytest.approx((-0.5, -0.4, 1.0))  # top centre of the face, in face heights
    assert hat.patch.shape == (4, 10, 3) and (hat.alpha == 255).all()

    # Target: a face twice the size (20 high, x 40..60, y 50..70): the hat is 20 x 8 above it.
    img, mask = _person_with_face(120, 100, (40, 50, 60, 70))
    scales = []
    for seed in range(20):
        out, lab = paste(img, mask, hat, np.random.default_rng(seed))
        ys, xs = np.nonzero(lab == 1)
        assert len(ys) > 0
        scales.append((xs.max() + 1 - xs.min()) / 20)
        assert abs((xs.min() + xs.max() + 1) / 2 - 50) <= 1.5  # centred over the face
        assert abs(ys.max() + 1 - 50) <= 1.5  # its bottom at the face's top (within the 10% scale jitter)
        inner = (lab == 1) & (cv2.erode((lab == 1).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
        assert (out[inner] == (0, 0, 255)).all()  # the hat's own pixels inside its edge
        assert (lab[lab != 1] == mask[lab != 1]).all() and (mask == 13).sum() == 400  # rest of the labels kept
    assert 0.88 <= min(scales) and max(scales) <= 1.12 and max(scales) - min(scales) > 0.05


def test_paste_leaves_a_sample_without_the_anchor_part_unchanged():
    from lipparse_rt.data import paste, paste_items

    donor, dmask = _person_with_face(80, 60, (20, 20, 30, 30))
    dmask[16:20, 20:30] = 1
    hat = paste_items(donor, dmask)[0]
    img = np.full((50, 40, 3), 7, np.uint8)
    mask = np.full((50, 40), 5, np.uint8)  # clothes, no face
    out, lab = paste(img, mask, hat, np.random.default_rng(0))
    assert (out == img).all() and (lab == mask).all()
    assert paste_items(donor, np.where(dmask == 13, 5, dmask).astype(np.uint8)) == []  # a hat without a face: no item


def test_remove_person_fills_the_person_and_its_enclosed_background_and_labels_the_rest_background():
    from lipparse_rt.data import IGNORE, remove_person

    # a grey scene with a red person (a ring of upper-clothes around a hole of background, a face on top)
    img = np.full((96, 64, 3), 120, np.uint8)
    img[:, :8] = 60  # a darker strip at the left edge: scenery to keep as it is
    mask = np.zeros((96, 64), np.uint8)
    mask[30:80, 20:44] = 5
    mask[45:55, 28:36] = 0  # background enclosed by the clothes
    mask[20:30, 26:38] = 13
    img[mask != 0] = (0, 0, 255)
    out, lab = remove_person(img, mask)
    assert set(np.unique(lab)) == {0, IGNORE}
    assert (lab[mask != 0] == IGNORE).all() and (lab[45:55, 28:36] == IGNORE).all()  # the enclosed gap goes too
    grown = (lab == IGNORE).sum() - (mask != 0).sum() - 80
    assert grown > 0  # the hole is grown past the person's edge
    assert (lab[:, :10] == 0).all() and (lab[:5] == 0).all()  # far from the person: background
    assert (out[lab == 0] == img[lab == 0]).all()  # the scenery is untouched
    hole = out[lab == IGNORE].astype(int)
    assert np.abs(hole - 120).max() <= 20  # filled from the grey around it: no red left
    # nothing to take out: unchanged
    same_img, same_lab = remove_person(img, np.zeros_like(mask))
    assert same_img is img and (same_lab == 0).all()


def test_recolour_garments_changes_only_the_garments_and_keeps_their_print():
    from lipparse_rt.data import recolour_garments

    # a grey scene, a pale skin face, a white shirt with a black stripe (a print), blue pants
    img = np.full((64, 48, 3), 120, np.uint8)
    mask = np.zeros((64, 48), np.uint8)
    mask[4:14, 18:30], img[4:14, 18:30] = 13, (150, 180, 220)
    mask[14:36, 12:36], img[14:36, 12:36] = 5, (240, 240, 240)
    img[22:26, 12:36] = (10, 10, 10)
    mask[36:60, 14:34], img[36:60, 14:34] = 9, (160, 60, 20)
    rng = np.random.default_rng(3)
    shirts = set()
    for _ in range(12):
        out = recolour_garments(img, mask, rng)
        assert out.shape == img.shape and out.dtype == np.uint8
        keep = ~np.isin(mask, (5, 9))
        assert (out[keep] == img[keep]).all()  # background and face untouched
        lum = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).astype(int)
        shirt, stripe = lum[14:22, 12:36].mean(), lum[22:26, 12:36].mean()
        assert abs(shirt - stripe) > 20  # the print stays a print
        shirts.add("dark" if shirt < 100 else "light")
        if shirt < stripe:
            assert stripe > 150  # inverted: a black shirt with a white print
    assert shirts == {"dark", "light"}  # lightness inverted or darkened in some draws, kept in others
    # no garment: the image as it is
    assert recolour_garments(img, np.where(np.isin(mask, (5, 9)), 0, mask).astype(np.uint8), rng) is img


def test_palette_and_16_bit_label_pngs_are_read_as_their_ids(tmp_path):
    # Pascal VOC's SegmentationClass (a folder name find_pairs looks for) and datasets made like it
    # store labels as palette PNGs: OpenCV reads their colours, so they were refused as "not a
    # single-channel 8-bit PNG" before 2026-12-05
    from PIL import Image

    ids = np.zeros((40, 30), np.uint8)
    ids[5:20, 5:20], ids[25:, :], ids[0, :] = 5, 14, 255
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [64, 64, 64] * 253  # colours that are not the ids
    img = Image.fromarray(ids, mode="P")
    img.putpalette(palette)
    img.save(tmp_path / "voc.png")
    assert np.array_equal(read_mask(tmp_path / "voc.png"), ids)
    small = np.where(ids == 255, 0, ids) % 16  # a 4-bit palette PNG
    img = Image.fromarray(small.astype(np.uint8), mode="P")
    img.putpalette(palette[:48])
    img.save(tmp_path / "voc4.png", bits=4)
    assert np.array_equal(read_mask(tmp_path / "voc4.png"), small)
    cv2.imwrite(str(tmp_path / "u16.png"), ids.astype(np.uint16))  # 16-bit, ids within 0..255
    assert np.array_equal(read_mask(tmp_path / "u16.png"), ids)
    cv2.imwrite(str(tmp_path / "big.png"), np.full((4, 4), 300, np.uint16))
    with pytest.raises(InputError, match="not a single-channel 8-bit PNG"):
        read_mask(tmp_path / "big.png")
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((4, 4, 3), np.uint8))  # a colour picture: still refused
    with pytest.raises(InputError, match="not a single-channel 8-bit PNG"):
        read_mask(tmp_path / "rgb.png")
