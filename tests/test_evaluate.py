import cv2
import numpy as np

from lipparse_rt.classes import FLIP_LUT
from lipparse_rt.engine import Engine, EngineConfig
from lipparse_rt.evaluate import confusion_png, evaluate, predict_flip
from lipparse_rt.metrics import CCP_NAMES


def _engine(w):
    return Engine(EngineConfig(weights=w, provider="cpu", input_size=64))


def test_flip_tta_is_mirror_symmetric(tiny_weights):
    eng = _engine(tiny_weights)
    assert eng.has_logits
    img = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    a = predict_flip(eng, img)
    b = predict_flip(eng, np.ascontiguousarray(img[:, ::-1]))
    assert a.shape == (48, 64)
    assert (FLIP_LUT[b[:, ::-1]] == a).mean() > 0.99


def _labelled_folder(root, labels, lab, stems=("a", "b")):
    """root/images: random 40x30 photos; root/`labels`: the label map `lab` for each of them."""
    (root / "images").mkdir()
    (root / labels).mkdir()
    rng = np.random.default_rng(0)
    for s in stems:
        cv2.imwrite(str(root / "images" / f"{s}.jpg"), rng.integers(0, 255, (*lab.shape, 3), dtype=np.uint8))
        cv2.imwrite(str(root / labels / f"{s}.png"), lab)


def test_evaluate_counts_every_labelled_pixel_and_draws_confusion(tmp_path, tiny_weights):
    lab = np.zeros((40, 30), np.uint8)
    lab[5:20, 5:20] = 20
    lab[30:, :] = 255
    _labelled_folder(tmp_path, "labels_lip", lab)
    r = evaluate(_engine(tiny_weights), tmp_path, labels="labels_lip", protocol="ccp")
    assert r.images == 2 and r.confusion.shape == (15, 15)
    assert r.confusion.sum() == 2 * 30 * 30  # the 255 rows are ignored
    assert r.confusion[13].sum() == 2 * 15 * 15  # skin (20) is scored as the merged skin class
    assert r.per_image.shape == (2, 15, 15) and (r.per_image.sum(0) == r.confusion).all()
    assert r.images_per_class() == [2] + [0] * 12 + [2, 0]  # background and skin in both labels, nothing else
    assert r.side_by_image() == [] and r.worst_sides(3) == ([], 0.0)  # merged skin and shoes have no sides
    png = confusion_png(r.confusion, CCP_NAMES, tmp_path / "cm.png")
    img = cv2.imread(str(png))
    assert img.shape[0] > 15 * 20 and img.std() > 10


def test_worst_sides_ranks_images_by_wrong_side_pixels():
    from lipparse_rt.evaluate import EvalResult
    from lipparse_rt.metrics import scores

    def image(wrong, right):  # a 20-class matrix with `wrong` left/right arm swaps and `right` correct arm pixels
        c = np.zeros((20, 20), np.int64)
        c[14, 15], c[14, 14] = wrong, right
        return c

    stack = np.stack([image(10, 90), image(30, 10), image(0, 50)])
    cm = stack.sum(0)
    r = EvalResult("lip", 3, cm, scores(cm), 0.1, per_image=stack, stems=("a", "b", "c"))
    ranked, share = r.worst_sides(2)
    assert ranked == [("b", 30, 40), ("a", 10, 100)] and share == 1.0
    assert r.worst_sides(1) == ([("b", 30, 40)], 0.75)


def test_images_per_class_counts_labels_not_predictions(tmp_path, tiny_weights):
    from lipparse_rt.metrics import markdown_table

    with_hat = np.zeros((40, 30), np.uint8)
    with_hat[:5, :5] = 1
    _labelled_folder(tmp_path, "labels", with_hat, stems=("a",))
    cv2.imwrite(str(tmp_path / "images" / "b.jpg"), np.zeros((40, 30, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "labels" / "b.png"), np.zeros((40, 30), np.uint8))
    r = evaluate(_engine(tiny_weights), tmp_path, labels="labels", protocol="lip")
    counts = r.images_per_class()
    assert counts[0] == 2 and counts[1] == 1 and sum(counts) == 3
    table = markdown_table(r.scores, r.names, images=counts).splitlines()
    assert table[0] == "| class | IoU (%) | images with it |"
    assert table[2].endswith("| 2 |") and table[3].endswith("| 1 |") and table[4].endswith("| 0 |")
    assert table[-2].split("**")[3] == f"{100 * r.scores.miou:.1f}"


def test_evaluate_lip_protocol_counts_sides_per_image(tmp_path, tiny_weights):
    from lipparse_rt.metrics import side_errors

    lab = np.zeros((40, 30), np.uint8)
    lab[:, :15], lab[:, 15:] = 14, 15  # arms only: any arm prediction counts as same part
    _labelled_folder(tmp_path, "labels", lab)
    r = evaluate(_engine(tiny_weights), tmp_path, labels="labels", protocol="lip")
    rows = r.side_by_image()
    assert [stem for stem, _, _ in rows] == ["a", "b"]
    wrong, same = side_errors(r.confusion)
    assert sum(w for _, w, _ in rows) == wrong and sum(s for _, _, s in rows) == same


def test_parse_ranges_reads_frame_ranges_and_rejects_bad_ones():
    import pytest

    from lipparse_rt.errors import InputError
    from lipparse_rt.evaluate import parse_ranges

    assert parse_ranges("0-50, 210-225,300") == [(0, 50), (210, 225), (300, 300)]
    for bad in ("", "a-b", "5-3", "1-2-3"):
        with pytest.raises(InputError):
            parse_ranges(bad)


def test_empty_result_shares_and_top_classes_hand_computed():
    from lipparse_rt.evaluate import EmptyResult

    counts = np.zeros(20, np.int64)
    counts[0], counts[5], counts[9] = 60, 30, 10  # 100 pixels: 40% given a person class
    r = EmptyResult(counts, np.array([3, 4, 9]), np.array([0.2, 0.4, 0.6]))
    assert r.frames == 3 and abs(r.share - 0.4) < 1e-12
    assert r.top() == [("upper-clothes", 0.3), ("pants", 0.1)]  # classes with no pixels are not listed
    assert abs(r.in_range(3, 4) - 0.3) < 1e-12 and abs(r.in_range(9, 9) - 0.6) < 1e-12


def test_empty_scenes_counts_only_the_frames_in_range(tmp_path, tiny_weights):
    from conftest import make_video

    from lipparse_rt.evaluate import empty_scenes
    from lipparse_rt.sources import VideoFile

    video = make_video(tmp_path / "v.mp4", n=10)
    eng = _engine(tiny_weights)
    r = empty_scenes(eng, video, [(2, 4), (7, 7)])
    assert r.indices.tolist() == [2, 3, 4, 7]
    with VideoFile(video) as src:
        frames = {f.index: f.image for f in src}
    expect = [eng.parse(frames[i]) for i in (2, 3, 4, 7)]
    counts = sum(np.bincount(ids.ravel(), minlength=20) for ids in expect)
    assert (r.counts == counts).all()  # every pixel of those frames at the model's size, nothing else
    assert np.allclose(r.per_frame, [(ids > 0).mean() for ids in expect])
    assert empty_scenes(eng, video).frames == 10  # no ranges: every frame


def test_empty_scenes_reads_a_folder_of_pictures_in_name_order(tmp_path, tiny_weights):
    from lipparse_rt.evaluate import empty_scenes

    rng = np.random.default_rng(3)
    pics = {name: rng.integers(0, 255, (40, 60, 3), dtype=np.uint8) for name in ("b.png", "a.png", "c.png")}
    for name, img in pics.items():
        cv2.imwrite(str(tmp_path / name), img)
    eng = _engine(tiny_weights)
    r = empty_scenes(eng, tmp_path, [(1, 2)])  # b and c
    assert r.indices.tolist() == [1, 2]
    assert np.allclose(r.per_frame, [(eng.parse(pics[n]) > 0).mean() for n in ("b.png", "c.png")])


def test_at_distance_puts_the_photo_and_its_partner_apart_with_their_labels():
    from lipparse_rt.evaluate import AtDistance

    scene = np.zeros((90, 300, 3), np.uint8)
    photo, label = np.full((40, 20, 3), 200, np.uint8), np.full((40, 20), 5, np.uint8)
    other, other_label = np.full((40, 20, 3), 100, np.uint8), np.full((40, 20), 9, np.uint8)
    for i in range(5):
        image, placed = AtDistance(scene, 0.5, seed=i, partner=lambda _: (other, other_label))(i, photo, label)
        ys5, xs5 = np.nonzero(placed == 5)
        ys9, xs9 = np.nonzero(placed == 9)
        assert xs5.size == xs9.size == 45 * 22 or xs5.size == xs9.size == 45 * 23  # half the height, aspect kept
        assert xs5.max() < 100 and xs9.min() >= 200  # the outer thirds
        assert ys5.max() == ys9.max() == 89  # standing on the floor
        assert (image[placed == 5] == 200).all() and (image[placed == 9] == 100).all()
        alone, alone_label = AtDistance(scene, 0.5, seed=i)(i, photo, label)
        assert (alone_label == 5).sum() == xs5.size and not (alone_label == 9).any()


class LabelEngine:
    """Stands in for `Engine`: parses a frame by its red channel, which the test's photos carry
    as their label ids (the scene's red channel is 0)."""

    input_size = 64

    def run(self, bgr):
        return bgr[..., 2].copy()


class FirstFrameEngine(LabelEngine):
    """Parses every frame as the first one it saw: a person who stood still."""

    def run(self, bgr):
        if not hasattr(self, "first"):
            self.first = super().run(bgr)
        return self.first


def test_walk_scores_every_frame_with_the_photo_and_its_label_moving_together(tmp_path):
    from conftest import make_lip_folder

    from lipparse_rt.evaluate import AtDistance, evaluate_walk

    root = make_lip_folder(tmp_path / "d", ["a", "b"], hw=(48, 32))
    for lab in (root / "labels").glob("*.png"):  # each photo's red channel: its label ids
        img = np.zeros((48, 32, 3), np.uint8)
        img[..., 2] = cv2.imread(str(lab), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(root / "images" / f"{lab.stem}.png"), img)
        (root / "images" / f"{lab.stem}.jpg").unlink()
    walk = AtDistance(np.zeros((48, 200, 3), np.uint8), 1.0)  # the photos at their own size: exact labels
    result = evaluate_walk(LabelEngine(), root, None, None, "lip", walk, frames=4)
    assert result.per_image.shape[0] == 2 and result.per_image[0].sum() == 4 * 48 * 200  # every pixel of 4 frames
    assert result.scores.pixel_acc == 1.0  # the label moved with the photo, frame by frame
    still = evaluate_walk(FirstFrameEngine(), root, None, None, "lip", walk, frames=4)
    assert still.scores.pixel_acc < 1.0  # a parse that does not follow the photo is scored wrong
    varied = evaluate_walk(LabelEngine(), root, None, None, "lip", walk, frames=4, vary=3)
    counts = varied.per_image.sum((1, 2)) // (48 * 200)  # frames each photo stayed
    assert all(1 <= n <= 7 for n in counts) and counts.tolist() != [4, 4]  # not all 4 (seeded)
    assert varied.scores.pixel_acc == 1.0


def test_label_ids_a_protocol_does_not_score_are_said_once(tmp_path, tiny_weights, caplog):
    # CCP's own 59 labels (labels_ccp) scored as LIP ids: ids 22-58 were left out without a word
    lab = np.zeros((40, 30), np.uint8)
    lab[5:20, 5:20] = 20
    lab[25:30, 5:20] = 41
    _labelled_folder(tmp_path, "labels", lab)
    engine = _engine(tiny_weights)
    with caplog.at_level("WARNING"):
        r = evaluate(engine, tmp_path, protocol="ccp")
    assert r.confusion.sum() == 2 * (40 * 30 - 5 * 15)  # 41 is not scored
    (said,) = [m for m in caplog.messages if "do" in m and "not score" in m]
    assert said.startswith("2 of 2 label maps hold ids the ccp protocol does not score (41; 41 first in ")
    assert said.endswith("are these labels LIP ids?")
    caplog.clear()
    with caplog.at_level("WARNING"):
        evaluate(engine, tmp_path, protocol="lip")  # 20 too, now: CCP's skin, which the ccp protocol scores
    assert "(20, 41; 20 first in " in caplog.text
    lab[25:30, 5:20] = 21
    (tmp_path / "s").mkdir()
    _labelled_folder(tmp_path / "s", "labels", lab)
    caplog.clear()
    with caplog.at_level("WARNING"):
        evaluate(engine, tmp_path / "s", protocol="lip")
    assert "--protocol ccp scores them" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        evaluate(engine, tmp_path / "s", protocol="ccp")
    assert "not score" not in caplog.text


def test_a_label_of_another_size_than_its_image_is_one_clear_error(tmp_path, tiny_weights):
    import pytest

    from lipparse_rt.errors import InputError

    _labelled_folder(tmp_path, "labels", np.zeros((40, 30), np.uint8))
    cv2.imwrite(str(tmp_path / "labels" / "b.png"), np.zeros((20, 20), np.uint8))
    with pytest.raises(InputError, match=r"cannot score '.*b\.png': the label is 20x20, its image 'b\.jpg' 30x40"):
        evaluate(_engine(tiny_weights), tmp_path)
