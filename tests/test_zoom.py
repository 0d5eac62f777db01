"""Person zoom: the box around the people, the crop's size, the crop pasted back where it was,
and a real gain on people at a distance (the shipped weights on CCP val photos)."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from lipparse_rt.engine import Engine, EngineConfig, default_weights, fit_size, scale_ids
from lipparse_rt.zoom import (Box, Zoom, crop_long_side, group_boxes, people_boxes, search_strips, tile_scales,
                              union_of)

from conftest import SHARED


def test_people_boxes_are_in_frame_pixels_and_ignore_specks():
    ids = np.zeros((60, 80), np.uint8)
    ids[10:50, 30:45] = 5  # a person
    ids[20:30, 45:50] = 14  # their arm, touching: the same region
    ids[2, 2] = 13  # a speck far away: under a tenth of the person's area
    assert people_boxes(ids, 600, 800) == [Box(100, 300, 500, 500)]  # the map covers a 600x800 frame: 10x
    assert people_boxes(np.zeros((6, 8), np.uint8), 60, 80) == []
    speck = np.zeros((60, 80), np.uint8)
    speck[30:34, 40:44] = 5  # 16 pixels, a third of a percent of the map: an empty room's speck
    assert people_boxes(speck, 60, 80) == [] and people_boxes(speck, 60, 80, least=0.003) == [Box(30, 40, 34, 44)]
    ids[50:60, 0:10] = 9  # a second person, big enough: a box of their own
    assert people_boxes(ids, 60, 80) == [Box(10, 30, 50, 50), Box(50, 0, 60, 10)]
    assert union_of(people_boxes(ids, 60, 80)) == Box(10, 0, 60, 50) and union_of([]) is None


def test_box_grows_by_its_longer_side_and_stays_in_the_frame():
    assert Box(100, 100, 200, 150).grown(0.1, 1000, 1000) == Box(90, 90, 210, 160)
    assert Box(5, 0, 95, 40).grown(0.2, 100, 60) == Box(0, 0, 100, 58)


def test_a_box_shrunk_moves_each_side_in_by_a_share_of_its_size():
    assert Box(100, 100, 300, 200).shrunk(0.1) == Box(120, 110, 280, 190)  # 200 tall, 100 wide
    assert Box(0, 0, 10, 10).shrunk(0.6).height < 0  # shrunk past nothing: empty
    assert Box(0, 0, 10, 10).shrunk(0.6).area == 0


def test_crop_long_side_keeps_the_budget_the_cap_and_never_enlarges():
    # a 2:1 tall crop with the pixels of 256x192: 32x16 -> sqrt(49152 * 2) = 313 -> 304
    assert crop_long_side(1000, 500, 256 * 192, cap=400) == 304
    assert crop_long_side(1000, 500, 256 * 192, cap=288) == 288  # the cap
    assert crop_long_side(200, 100, 256 * 192, cap=400) == 192  # its own 200 pixels, down to x16
    assert crop_long_side(3, 2, 256 * 192, cap=400) == 32  # never below two strides


def test_boxes_whose_crops_overlap_are_one_group_and_far_ones_stay_apart():
    h, w = 720, 1280
    a, b = Box(300, 100, 700, 250), Box(320, 1000, 700, 1150)  # two people far apart
    beside = Box(310, 280, 700, 400)  # a third standing next to the first: the crops (15%) overlap
    assert group_boxes([b, a], 0.15, h, w) == (a, b)  # left to right
    assert group_boxes([a, beside, b], 0.15, h, w) == (Box(300, 100, 700, 400), b)
    head = Box(300, 1000, 330, 1030)  # a region of the same person, split off: joined
    assert group_boxes([a, b, head], 0.15, h, w) == (a, Box(300, 1000, 700, 1150))
    # more groups than allowed: the two whose joint box adds the least area are joined
    c = Box(300, 600, 700, 700)
    assert group_boxes([a, b, c], 0.15, h, w, most=2) == (a, Box(300, 600, 700, 1150))
    assert group_boxes([a, b, c], 0.15, h, w, most=1) == (Box(300, 100, 700, 1150),)


def test_tiles_share_one_height_within_the_budget_cap_and_own_pixels():
    tall, wide = Box(0, 0, 400, 200), Box(0, 0, 200, 200)  # 1:2 and 1:1
    s = tile_scales((tall, wide), 96 * 144, cap=1000)  # height sqrt(13824 / 1.5) = 96, a multiple of 16
    assert s == pytest.approx([0.24, 0.48])
    assert sum(r.width * x * r.height * x for r, x in zip((tall, wide), s)) == pytest.approx(96 * 144)
    assert tile_scales((tall, wide), 100 * 150, cap=80) == pytest.approx([0.2, 0.4])  # at most 80 long
    assert tile_scales((tall, wide), 100 * 150, cap=1000) == pytest.approx([0.24, 0.48])  # 100 -> 96
    assert tile_scales((Box(0, 0, 40, 20), wide), 100 * 150, cap=1000)[0] == 1.0  # never enlarged


class BrightEngine:
    """Stands in for `Engine` where only the geometry is tested: at the size `Engine.parse`
    would resize to, class 5 where the frame is bright, 0 elsewhere."""

    input_size = 64

    def __init__(self) -> None:
        self.sides: list[int] = []

    def parse(self, bgr, long_side=None, scaled=True):
        side = long_side or self.input_size
        self.sides.append(side)
        rh, rw, _, _ = fit_size(*bgr.shape[:2], side)
        small = cv2.resize(bgr[..., 1], (rw, rh), interpolation=cv2.INTER_AREA)
        return np.where(small > 128, 5, 0).astype(np.uint8)

    parse_flip = parse

    def model_shape(self, h, w, long_side=None):
        _, _, ph, pw = fit_size(h, w, long_side or self.input_size)
        return ph, pw


def test_the_crop_is_parsed_larger_and_pasted_back_where_it_was():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[203:437, 297:383] = 255  # a "person", half the frame's height, off the plain map's 10-pixel grid
    eng = BrightEngine()
    zoom = Zoom(eng, detect_scale=2.0)  # 64 -> a 128 search
    searched = zoom.parse(frame)  # the first frame: the search, plain and enlarged (its output)
    assert eng.sides == [64, 128] and searched.shape == (96, 128)
    ids = zoom.parse(frame)  # then the crop around the person, at the frame's budget of pixels
    assert len(eng.sides) == 3 and zoom.last_input[0] > zoom.last_input[1]  # the tall crop, not the 4:3 frame
    assert ids.shape[1] > 2 * 64  # the crop's scale: the frame's map is over twice the plain 64 wide
    got = scale_ids(ids, 480, 640) > 0
    want = np.zeros((480, 640), bool)
    want[203:437, 297:383] = True
    plain = scale_ids(eng.parse(frame), 480, 640) > 0  # the whole frame at 64: 10 frame pixels a model pixel
    assert (got != want).sum() < 0.7 * (plain != want).sum()  # finer edges: ~5 frame pixels a model pixel
    ys, xs = np.nonzero(got)
    assert abs(ys.mean() - 319.5) < 3 and abs(xs.mean() - 339.5) < 3  # pasted back where the crop was
    assert len(zoom._boxes) == 1 and abs(zoom._boxes[0].y0 - 203) < 6 and abs(zoom._boxes[0].x1 - 383) < 6  # the person followed, in frame pixels


def test_people_standing_apart_are_parsed_side_by_side_each_larger():
    """Two "people" at either end of a wide frame: one crop around both would hold most of the
    frame and enlarge them under 1.3x, so without tiles the frame is parsed whole; as two tiles
    side by side each is parsed over twice as large, and pasted back where it was."""
    frame = np.zeros((360, 1280, 3), np.uint8)
    frame[103:337, 67:143] = 255  # off the whole frame's 20-pixel grid
    frame[151:329, 1093:1161] = 255
    want = np.zeros((360, 1280), bool)
    want[103:337, 67:143] = want[151:329, 1093:1161] = True
    maps = {}
    for groups in (1, 3):
        eng = BrightEngine()
        zoom = Zoom(eng, detect_scale=4.0, groups=groups)  # a 256 search: both found
        zoom.parse(frame)
        maps[groups] = scale_ids(zoom.parse(frame), 360, 1280) > 0
        if groups == 1:
            assert eng.sides[-1] == 64 and zoom.last_input == (32, 64)  # the whole frame again
        else:
            assert len(zoom._boxes) == 2 and zoom._boxes[0].x1 <= 640 <= zoom._boxes[1].x0 and zoom.tiled == 1
            ch, cw = zoom.last_input  # the two tiles side by side, about the whole frame's 64x18 pixels
            assert eng.sides[-1] == max(ch, cw) and ch >= 32 and ch * cw <= 2 * 64 * 32
    errors = {g: (m != want).sum() for g, m in maps.items()}
    assert errors[3] < 0.7 * errors[1]  # finer edges on both (0.59: 9 and 6.5 frame pixels a model pixel, not 20)
    for x0, x1 in ((67, 143), (1093, 1161)):  # each pasted back where it was
        xs = np.nonzero(maps[3][:, x0 - 40:x1 + 40])[1] + x0 - 40
        assert abs(xs.mean() - (x0 + x1 - 1) / 2) < 4


def test_a_background_search_holds_up_no_frame_and_its_people_are_followed():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[203:437, 297:383] = 255
    eng = BrightEngine()
    zoom = Zoom(eng, background=True)
    ids = zoom.parse(frame)  # the search frame: parsed at the input size, the 3x parse beside it
    assert ids.shape == (48, 64)
    frame[:] = 0  # the pipeline draws on the frame it was given: the search parses its own copy
    zoom.wait()
    assert sorted(eng.sides) == [64, 144, 144]  # the 3x search (192x144) in two strips, each 144 tall
    assert len(zoom._boxes) == 1 and abs(zoom._boxes[0].y0 - 203) < 6
    zoom._remember(0, None)  # a frame that was in flight during the search: it does not undo it
    assert zoom._boxes is not None
    frame[203:437, 297:383] = 255
    ids = zoom.parse(frame)  # then crops, as with the search inline
    assert zoom.last_input[0] > zoom.last_input[1] and ids.shape[1] > 2 * 64  # the tall crop, at its scale


class FailsWhenEnlarged(BrightEngine):
    def parse(self, bgr, long_side=None, scaled=True):
        if (long_side or self.input_size) > self.input_size:
            raise RuntimeError("out of memory")
        return super().parse(bgr, long_side)


def test_a_background_search_that_fails_raises_on_the_next_frame():
    zoom = Zoom(FailsWhenEnlarged(), background=True)
    frame = np.zeros((480, 640, 3), np.uint8)
    zoom.parse(frame)
    zoom.wait()
    with pytest.raises(RuntimeError, match="out of memory"):
        zoom.parse(frame)
    zoom.parse(frame)  # raised once


def test_with_nobody_the_frame_is_parsed_whole_and_searched_again_later():
    eng = BrightEngine()
    zoom = Zoom(eng, idle=3)  # with nobody followed, every 3rd frame (not every `refresh`-th)
    empty = np.zeros((120, 160, 3), np.uint8)
    for i in range(8):
        empty[40:80, 10 * i:10 * i + 30] = 100  # something moves (not bright: nobody to BrightEngine)
        assert not zoom.parse(empty).any()
    # a search (plain, and enlarged 3x: 192, at most the frame's own 160, in two strips, 153 wide
    # and the rest, each 120 tall) on frames 0, 3 and 6
    assert eng.sides == [64, 153, 120, 64, 64, 64, 153, 120, 64, 64, 64, 153, 120, 64]
    assert zoom._boxes is None


def test_an_unchanged_empty_scene_is_not_searched_again():
    eng = BrightEngine()
    zoom = Zoom(eng, idle=3)
    room = np.random.default_rng(0).integers(0, 120, (120, 160, 3), dtype=np.uint8)  # nobody to BrightEngine
    for i in range(7):
        noisy = np.clip(room.astype(int) + (i % 3) - 1, 0, 255).astype(np.uint8)  # a camera's noise
        zoom.parse(noisy)
    assert eng.sides == [64, 153, 120] + [64] * 6  # searched once: the same room would show nobody again
    room[100:120, 70:80] = 110 + room[100:120, 70:80] // 4  # someone far away comes in (too dim to be found)
    before = len(eng.sides)
    for _ in range(3):
        zoom.parse(room)
    assert 153 in eng.sides[before:]  # the scene changed: searched at the next look


def test_with_someone_followed_the_search_waits_for_refresh():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[203:437, 297:383] = 255
    eng = BrightEngine()
    zoom = Zoom(eng, refresh=6, idle=2)

    def parses() -> int:  # model runs for the next frame: 1, or more for a search (whole, then enlarged)
        before = len(eng.sides)
        zoom.parse(frame)
        return len(eng.sides) - before

    assert [parses() > 1 for _ in range(8)] == [True] + [False] * 5 + [True, False]  # every `refresh`-th
    frame[:] = 0  # they leave: the crop finds nobody, and with nobody followed the search comes
    # as soon as `idle` frames have passed since the last search (the whole frame and 2 strips);
    # then not again while the empty frame stays the same
    assert [parses() for _ in range(4)] == [1, 3, 1, 1]


def test_a_still_is_searched_larger_than_a_stream_frame():
    eng = BrightEngine()
    zoom = Zoom(eng)  # input 64: a stream's search at 3x (192), a still's at 4x (256)
    empty = np.zeros((480, 640, 3), np.uint8)
    assert zoom.run_still(empty).shape == (480, 640)  # at the still's own size, as Engine.run
    assert eng.sides == [64, 256]
    zoom.reset()
    zoom.parse(empty)
    assert eng.sides[2:] == [64, 144, 144]  # 192x144 in two strips (a still's search in one piece)


def test_search_strips_overlap_cover_the_frame_keep_the_budget_and_spare_people():
    h, w, side = 720, 1280, 768  # 768x432 at 3x the input size 256
    most, scale = 6 * 256 * 144, 768 / 1280
    strips = search_strips(h, w, side, most)
    assert len(strips) == 2 and strips[0][0] == strips[0][2] == 0 and strips[-1][1] == strips[-1][3] == w
    for (a0, a1, _, ac1), (b0, b1, bc0, _) in zip(strips, strips[1:]):
        assert a1 - b0 >= 0.25 * h and ac1 == bc0 and b0 < bc0 < a1  # overlapping, handed over inside
    assert all((x1 - x0) * h * scale * scale <= most for x0, x1, _, _ in strips)
    assert len(search_strips(h, w, side, 4 * 256 * 144)) == 3  # a smaller budget: more strips
    assert search_strips(h, w, side, 768 * 432) == [(0, w, 0, w)]  # it fits: one piece
    assert search_strips(w, h, side, most) == [(0, h, 0, h)]  # portrait: strips would be mostly overlap
    # someone standing where the second strip would begin: it begins left of them, and the map
    # is handed over beside them, so one strip parses them whole and fills them in
    person = Box(100, strips[1][0] - 100, 700, strips[1][0] + 150)
    (a0, a1, _, cut), (b0, b1, _, _) = search_strips(h, w, side, most, (person,))
    assert b0 <= person.x0 and person.x1 <= b1 and not person.x0 < cut < person.x1


def test_a_search_in_strips_gives_the_map_of_one_piece():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[203:437, 297:383] = 255  # across the middle, where the two strips meet
    frame[50:150, 20:60] = frame[300:460, 590:630] = 255  # and at either end
    eng = BrightEngine()
    zoom = Zoom(eng)
    whole, shape = zoom.enlarged(frame, 192, 0)
    assert eng.sides == [192] and shape == (144, 192)
    pieces, biggest = zoom.enlarged(frame, 192, 6)
    assert eng.sides[1:] == [144, 144] and biggest[0] == 144 and biggest[1] < 192
    assert pieces.shape == whole.shape
    assert (pieces != whole).mean() < 0.005  # the same people, in the same place (rounding at the cut)
    assert people_boxes(pieces, 480, 640) == people_boxes(whole, 480, 640)


def test_a_search_with_workers_parses_its_strips_at_once_into_the_same_map():
    """`video` parses frames on several threads: a search's strips go on as many at once (a
    search on one thread left the other cores idle once the frames behind it were parsed)."""
    import threading

    frame = np.zeros((480, 640, 3), np.uint8)
    frame[203:437, 297:383] = 255
    one = Zoom(BrightEngine()).enlarged(frame, 192, 6)

    class Together(BrightEngine):
        def __init__(self) -> None:
            super().__init__()
            self.meet = threading.Barrier(2, timeout=5)  # broken unless both strips are in parse at once
            self.threads: set[str] = set()

        def parse(self, bgr, long_side=None, scaled=True):
            self.meet.wait()
            self.threads.add(threading.current_thread().name)
            return super().parse(bgr, long_side)

    eng = Together()
    ids, biggest = Zoom(eng, workers=2).enlarged(frame, 192, 6)
    assert sorted(eng.sides) == [144, 144] and len(eng.threads) == 2
    assert np.array_equal(ids, one[0]) and biggest == one[1]


def test_a_crop_that_sees_less_of_the_person_does_not_spiral_down():
    """The search finds only the lower half of a person (the upper half is too dark for it at
    that size); each crop then sees what the box holds. The box may shrink 10% a frame, so a
    crop that finds less keeps most of the person in view rather than collapsing onto a part."""
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:440, 300:380] = 255
    eng = BrightEngine()
    zoom = Zoom(eng)
    zoom._boxes, zoom._since_look = (Box(100, 300, 440, 380),), 0
    frame[100:440, 300:380] = 0
    frame[400:440, 330:350] = 255  # the next frames show only a small part: a hand
    for _ in range(3):
        zoom.parse(frame)
    assert union_of(zoom._boxes).height >= 0.9 ** 3 * 340 - 2  # shrinking 10% a frame, not down to the hand's 40 rows


class LowerHalfWhenEnlarged(BrightEngine):
    """Enlarged past the input size, sees only the lower half of what is bright (a coat without
    its wearer, as the shipped model did on scikit-image's cameraman)."""

    def parse(self, bgr, long_side=None, scaled=True):
        ids = super().parse(bgr, long_side)
        if (long_side or self.input_size) > self.input_size:
            rows = np.flatnonzero(ids.any(1))
            if rows.size:
                ids[: (rows[0] + rows[-1]) // 2] = 0
        return ids


def test_people_filling_the_frame_cost_no_enlarged_search():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[20:470, 100:560] = 255  # close to the camera: no crop of them could enlarge them
    eng = BrightEngine()
    zoom = Zoom(eng, refresh=3)
    for _ in range(5):
        assert zoom.parse(frame).shape == (48, 64)  # the whole frame at the input size, every frame
    assert eng.sides == [64] * 5


def test_the_search_keeps_what_the_plain_parse_saw_of_a_large_person():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:440, 300:380] = 255
    zoom = Zoom(LowerHalfWhenEnlarged())
    zoom.parse(frame)
    assert union_of(zoom._boxes).y0 <= 105  # the plain parse's top, not the enlarged one's half-way line (270)


def test_the_crop_stays_put_while_the_people_stay_well_inside_it():
    zoom = Zoom(BrightEngine(), margin=0.15)
    box = Box(200, 300, 400, 380)  # 200 tall: the crop is grown by 30 pixels
    crop = zoom._steady_one(box, None, 480, 640)
    assert crop == Box(170, 270, 430, 410)
    assert zoom._steady_one(Box(205, 305, 402, 383), crop, 480, 640) == crop  # moved a little: kept
    assert zoom._steady_one(Box(250, 300, 450, 380), crop, 480, 640) == Box(220, 270, 480, 410)  # walked out of it
    assert zoom._steady_one(Box(200, 300, 300, 340), crop, 480, 640) == Box(185, 285, 315, 355)  # much smaller


def test_a_slower_older_frame_does_not_overwrite_the_newer_box():
    zoom = Zoom(BrightEngine())
    zoom._remember(5, (Box(0, 0, 10, 10),))
    zoom._remember(3, (Box(0, 0, 99, 99),))
    assert zoom._boxes == (Box(0, 0, 10, 10),)


def test_frames_parsed_from_two_threads_all_come_back():
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[40:110, 70:90] = 255
    zoom = Zoom(BrightEngine())
    out: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: out.extend(zoom.parse(frame) for _ in range(20))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 40 and all(o.any() for o in out)


@pytest.mark.skipif(not (SHARED / "ccp" / "val.txt").is_file(), reason="needs ../shared/data")
def test_zoom_parses_people_at_a_distance_better_with_the_shipped_weights():
    """CCP val photos shrunk to 80% of a 1280x720 grey frame's height: the whole frame at 256
    leaves each person ~100 pixels tall; zoom finds them and parses them larger."""
    from lipparse_rt.evaluate import AtDistance, evaluate

    engine = Engine(EngineConfig(weights=default_weights(), provider="cpu"))
    scene = np.full((720, 1280, 3), 120, np.uint8)
    kw = dict(root=SHARED / "ccp", split="val", labels="labels_lip", protocol="ccp", limit=8,
              place=AtDistance(scene, 0.8))
    plain, zoomed = evaluate(engine, **kw), evaluate(engine, zoom=True, **kw)
    assert zoomed.scores.miou > plain.scores.miou + 0.05
    as_is = dict(root=SHARED / "ccp", split="val", labels="labels_lip", protocol="ccp", limit=8)
    assert evaluate(engine, zoom=True, **as_is).scores.miou > evaluate(engine, **as_is).scores.miou - 0.03


@pytest.mark.skipif(not (SHARED / "ccp" / "val.txt").is_file(), reason="needs ../shared/data")
def test_tiles_parse_two_people_apart_better_than_one_crop_with_the_shipped_weights():
    """Pairs of CCP val photos at half a 1280x720 grey frame's height, one in each outer third:
    one crop around both cannot enlarge them (the frame is parsed whole); tiles can."""
    from lipparse_rt.data import find_pairs, read_mask
    from lipparse_rt.evaluate import AtDistance, evaluate
    from lipparse_rt.sources import read_image_any

    engine = Engine(EngineConfig(weights=default_weights(), provider="cpu"))
    pairs = find_pairs(SHARED / "ccp", "val", labels="labels_lip")
    partner = lambda i: (read_image_any(pairs[i + 50][0]), read_mask(pairs[i + 50][1]))  # noqa: E731
    kw = dict(root=SHARED / "ccp", split="val", labels="labels_lip", protocol="ccp", limit=6,
              place=AtDistance(np.full((720, 1280, 3), 120, np.uint8), 0.5, partner=partner))
    one = evaluate(engine, zoom=Zoom(engine, groups=1), **kw)
    tiles = evaluate(engine, zoom=True, **kw)
    assert tiles.scores.miou > one.scores.miou + 0.05
