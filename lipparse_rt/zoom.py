"""Person zoom: parse the part of the frame where the people are, at the model's best scale.

LIP-Net parses people well only near the size it was trained at: a person who fills the
frame's height at the default input (long side 256) is parsed at about that size, but a person
at half the height of a 1280x720 frame is ~72 pixels tall in the model's input and parsed
badly (BENCHMARKS.md, "Person zoom"). `Zoom` crops the frame to the box around the people
found in the previous result (plus a margin) and parses the crop with as many model pixels as
the whole frame would take at the input size: the same cost, the people larger. The crop is
never enlarged past its own pixels, nor past `cap` on its long side.

People standing apart (crops that would not overlap) are followed as groups, at most three.
One crop around all of them would hold the space between them too: two people at either side
of the frame leave it nearly whole. Where that is so, each group's crop is shrunk to one common
height and the crops are laid side by side in one model input of the same budget (`Tile`), so
one parse still serves the frame; one crop is kept where tiles would enlarge the least enlarged
group under 1.2 times more (people close together, or one person).

With nobody tracked (or people filling the frame) a frame is parsed whole, as without zoom,
and people large enough to be found there are followed from the next frame on. The first frame
and every `refresh`-th after it (every `idle`-th while nobody is followed: someone coming in
is found sooner, unless the frame is the empty one searched last, unchanged) are searched
whole, for people who came in: at the input size
first, then at `detect_scale` times it, for people too small to be found at the input size (3:
a person at half a 1280x720 frame's height is ~144 pixels tall at twice the input size, and
seldom found there; ~216 at three times). The enlarged parse alone can find only part of a
large person (a coat without its wearer): where the people found at the input size fill the
frame, neither a crop nor tiles could enlarge them and the enlarged parse is skipped. A search's result (the
enlarged parse, when made) is that frame's output; every other frame costs one parse. A
stream's enlarged parse goes in strips, each at most six times a frame's model pixels at the
input size (two for a 16:9 frame), cut where none of the people found already stands: the
model's memory grows with its input, and one 768x432 parse held ~110 MB more for as long as the
process ran (`bench memory`: 4K `video --zoom` over the 600 MB target). With
`background` (the app's `webcam`) the search frame is parsed like any other and the enlarged
parse runs on its own thread, one at a time: no frame waits for it (a search at three times
the input size takes ~11 frames' model time in strips), and the people it finds join the
tracked ones when it ends, a few frames later. `video` keeps the search in line: in a file no frame is late, and
people walking across a labelled stream scored higher so (BENCHMARKS.md, "Person zoom"); its
strips are parsed at once, on as many threads as `video` parses frames (`workers`). The crop
stays put while the people stay well inside it (less flicker). A still image (`run_still`)
is searched at `still_scale` times the input size (4: a still is parsed once, so its search may
cost more than a stream frame's), then cropped, and cropped again where the first crop's
people call for another. The engine knows nothing of this: `Zoom` calls `Engine.parse` on
crops.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from .engine import PAD_BGR, STRIDE, Engine, fit_size, padded, scale_ids, shrink

U8 = NDArray[np.uint8]


@dataclass(frozen=True)
class Box:
    """A region of a frame in pixels: rows y0..y1, columns x0..x1 (end exclusive)."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def area(self) -> int:
        return max(0, self.height) * max(0, self.width)

    def union(self, other: Box | None) -> Box:
        if other is None:
            return self
        return Box(min(self.y0, other.y0), min(self.x0, other.x0), max(self.y1, other.y1), max(self.x1, other.x1))

    def shrunk(self, share: float) -> Box:
        """The box with each side moved in by `share` of its height or width."""
        dy, dx = share * self.height, share * self.width
        return Box(math.floor(self.y0 + dy), math.floor(self.x0 + dx), math.ceil(self.y1 - dy), math.ceil(self.x1 - dx))

    def overlaps(self, other: Box) -> bool:
        return self.y0 < other.y1 and other.y0 < self.y1 and self.x0 < other.x1 and other.x0 < self.x1

    def grown(self, margin: float, h: int, w: int) -> Box:
        """The box grown by `margin` times its longer side on every side, clipped to an h x w frame."""
        m = margin * max(self.height, self.width)
        return Box(max(0, math.floor(self.y0 - m)), max(0, math.floor(self.x0 - m)),
                   min(h, math.ceil(self.y1 + m)), min(w, math.ceil(self.x1 + m)))


def people_boxes(ids: U8, h: int, w: int, keep: float = 0.1, least: float = 0.005) -> list[Box]:
    """One box per region of person classes in `ids` (a class map of an h x w frame at any size),
    in the frame's pixels: the connected regions at least `keep` times the largest one's area
    (stray specks are left out) and at least a share `least` of the map (a speck of an empty room
    called a person is not zoomed into). Empty when no region is that large."""
    n, region, stats, _ = cv2.connectedComponentsWithStats((ids > 0).view(np.uint8), connectivity=8)
    if n <= 1:
        return []
    area = stats[1:, cv2.CC_STAT_AREA]
    big = 1 + np.flatnonzero(area >= max(keep * area.max(), least * ids.size))
    sy, sx = h / ids.shape[0], w / ids.shape[1]
    boxes = []
    for i in big:
        x0, y0 = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_TOP]
        x1, y1 = x0 + stats[i, cv2.CC_STAT_WIDTH], y0 + stats[i, cv2.CC_STAT_HEIGHT]
        boxes.append(Box(math.floor(y0 * sy), math.floor(x0 * sx), min(h, math.ceil(y1 * sy)), min(w, math.ceil(x1 * sx))))
    return boxes


def union_of(boxes: list[Box] | tuple[Box, ...] | None) -> Box | None:
    """The box around all `boxes` (None when there are none)."""
    out = None
    for b in boxes or ():
        out = b.union(out)
    return out


def group_boxes(boxes: list[Box], margin: float, h: int, w: int, most: int = 3) -> tuple[Box, ...]:
    """People's boxes joined into groups, left to right: boxes whose crops (each grown by `margin`,
    as `Box.grown`) would overlap are one group (a person in several regions, people side by
    side), and while there are more than `most` groups, the two whose joint box adds the least
    area are joined."""
    groups = list(boxes)
    joined = True
    while joined:
        joined = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if groups[i].grown(margin, h, w).overlaps(groups[j].grown(margin, h, w)):
                    groups[i] = groups[i].union(groups.pop(j))
                    joined = True
                    break
            if joined:
                break
    while len(groups) > most:
        cost, i, j = min((a.union(b).area - a.area - b.area, i, j) for i, a in enumerate(groups)
                         for j, b in enumerate(groups) if i < j)
        groups[i] = groups[i].union(groups.pop(j))
    return tuple(sorted(groups, key=lambda b: (b.x0, b.y0)))


def tile_scales(regions: tuple[Box, ...], budget: int, cap: int) -> list[float]:
    """Each region's scale when all are laid side by side in one model input of `budget` pixels
    at one common height: every region brought to that height, each at most `cap` on its long
    side and never enlarged past its own pixels."""
    height = math.sqrt(budget / sum(r.width / r.height for r in regions)) // STRIDE * STRIDE  # a whole
    # number of strides: the tiles' own widths are padded to one, the height need not be
    return [min(height / r.height, cap / max(r.height, r.width), 1.0) for r in regions]


def crop_long_side(crop_h: int, crop_w: int, budget: int, cap: int) -> int:
    """The model long side for a crop: `budget` model pixels at the crop's aspect ratio, at most
    `cap` and at most the crop's own long side (never enlarged), a multiple of the model stride."""
    long, short = max(crop_h, crop_w), max(1, min(crop_h, crop_w))
    side = min(math.sqrt(budget * long / short), cap, long)
    return max(2 * STRIDE, int(side) // STRIDE * STRIDE)


def search_strips(h: int, w: int, side: int, most: float, people: tuple[Box, ...] = (),
                  overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """How an h x w frame parsed at long side `side` is parsed in strips of at most `most` model
    pixels, left to right: (x0, x1, c0, c1) for each, its columns x0..x1 and the part c0..c1 of
    them that goes into the frame's map. Neighbours overlap by at least `overlap` times the
    frame's height (wider than anyone small enough to need an enlarged search), and strips begin
    and hand over where none of `people` (found already) stands, where they can: a person cut by
    a strip's edge is parsed worse (the search's boxes then hold parts of them). One strip, the
    whole frame, where the frame fits in `most` or the strips would be mostly overlap (a
    portrait frame)."""
    scale = side / max(h, w)
    if h * w * scale * scale <= most:
        return [(0, w, 0, w)]
    over = math.ceil(overlap * h)
    widest = int(most / (h * scale * scale))  # a strip's width in frame pixels
    if widest <= 2 * over:
        return [(0, w, 0, w)]

    def free(lo: int, hi: int, near: float) -> int | None:
        """The column in lo..hi nearest to `near` that is inside nobody's box."""
        cols = [x for x in range(lo, hi + 1) if not any(b.x0 < x < b.x1 for b in people)]
        return min(cols, key=lambda x: abs(x - near)) if cols else None

    spans = [0]  # each strip's first column
    while spans[-1] + widest < w:
        x0 = spans[-1]
        latest = x0 + widest - over  # the next strip begins here at the latest, for the overlap
        start = free(x0 + widest // 2, latest, latest)  # and gains at least half a strip
        spans.append(latest if start is None else start)
    ends = [min(w, x + widest) for x in spans[:-1]] + [w]
    cuts = [0]
    for nxt, end in zip(spans[1:], ends):  # hand over in the overlap, nearest its middle
        mid = (nxt + end) / 2
        cut = free(nxt + 1, end - 1, mid)
        cuts.append(round(mid) if cut is None else cut)
    cuts.append(w)
    return [(x0, x1, c0, c1) for x0, x1, c0, c1 in zip(spans, ends, cuts, cuts[1:])]


def thumbnail(bgr: U8) -> NDArray[np.int16]:
    """The frame at 48x27 (area-averaged from every few pixels: cheap at 4K), for telling whether
    a scene changed."""
    step = max(1, min(bgr.shape[:2]) // 108)
    return cv2.resize(bgr[::step, ::step], (48, 27), interpolation=cv2.INTER_AREA).astype(np.int16)


@dataclass(frozen=True)
class Tile:
    """One crop of a frame in the model's input: `region` (frame pixels) shrunk to h x w, its top
    left at column x of the input's top row (tiles stand side by side in one row)."""

    region: Box
    x: int
    h: int
    w: int


class Zoom:
    """Parses frames through `engine` a person-sized crop at a time (see the module's text).

    `parse(bgr)` returns a class map of the whole frame, like `Engine.parse`: at the crops' scale,
    background outside them. Safe to call from several threads (frames parsed in parallel): the
    boxes come from the newest result to finish.
    """

    def __init__(self, engine: Engine, margin: float = 0.15, cap_scale: float = 1.25, refresh: int = 30,
                 idle: int = 10, detect_scale: float = 3.0, still_scale: float = 4.0, min_gain: float = 1.3,
                 shrink: float = 0.1, flip: bool = False, groups: int = 3, tile_gain: float = 1.2,
                 background: bool = False, search_budget: float = 6.0, same_scene: int = 12,
                 workers: int = 1) -> None:
        self.engine = engine
        self._parse = engine.parse_flip if flip else engine.parse  # flip: `eval --flip` (the app's
        # flip mode is the engine's own `flip`, which `Engine.parse` follows)
        self.margin = margin
        self.cap = int(engine.input_size * cap_scale)
        self.refresh = refresh
        self.idle = idle  # with nobody followed, the search comes this often (someone may come in)
        self.same_scene = same_scene  # ...unless no pixel of the frame's `thumbnail` differs by more
        # than this from the last search's, which found nobody: the same frame, searched again,
        # would give the same nobody (an empty room on a webcam costs no searches)
        self._empty: NDArray[np.int16] | None = None  # that thumbnail, while nobody is found
        self.shrink = shrink
        self.detect = int(engine.input_size * detect_scale)
        self.detect_still = int(engine.input_size * still_scale)
        self.min_gain = min_gain  # a crop that would enlarge the people less than this: parse the frame whole
        self.groups = groups  # at most this many groups of people, each its own tile (1: one crop around all)
        self.tile_gain = tile_gain  # tiles only where they enlarge the people this much more than one crop
        self.background = background  # a stream's enlarged search on its own thread (see `_search`)
        self.search_budget = search_budget  # a stream's enlarged search in strips of at most this many
        # times a frame's model pixels (`enlarged`; 0: in one piece)
        self.workers = workers  # an enlarged search's strips parsed at once on this many threads
        # (`video`: one per stream; a search on one thread held up the frames behind it in order,
        # and the other streams' cores went idle once they had parsed the few frames queued)
        self._search_thread: threading.Thread | None = None
        self._search_error: BaseException | None = None
        self.last_input: tuple[int, int] = (0, 0)  # the model's input (h, w) for the last frame
        self.tiled = 0  # frames parsed as tiles (several groups side by side), for benchmarks
        self.searches = 0  # enlarged parses made (a search's, in line or beside), for benchmarks
        self._boxes: tuple[Box, ...] | None = None  # the groups of people followed, left to right
        self._regions: tuple[Box, ...] | None = None  # their crops in use: kept while the people stay well inside
        self._since_look: int | None = None  # frames since the last enlarged search (None: never)
        self._ticket = 0
        self._newest = -1
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget the boxes (a new scene or the next still image)."""
        with self._lock:
            self._boxes, self._regions, self._since_look, self._empty = None, None, None, None

    def run_still(self, bgr: U8, crops: int = 2) -> U8:
        """A still image's class map at its own size (as `Engine.run`): the whole image searched
        for people (enlarged `still_scale` times), then up to `crops` crops, each around the people
        of the pass before (the first boxes, from the whole image, are the roughest); it stops when
        the next crops would be the same."""
        self.reset()
        ids = self._next(bgr, self.detect_still, budget=0)
        h, w = bgr.shape[:2]
        for _ in range(crops):
            if self._boxes is None:
                break  # nobody found: a crop has nothing to hold
            if self._regions and self._steady(self._boxes, self._regions, h, w) == self._regions:
                break  # the crops would stay put: the same ids again
            ids = self._next(bgr, self.detect_still, budget=0)
        return scale_ids(ids, h, w)

    def parse(self, bgr: U8) -> U8:
        """The next frame of a stream: crops around the boxes of the newest result (see the class)."""
        return self._next(bgr, self.detect, self.background, self.search_budget)

    def _next(self, bgr: U8, detect: int, background: bool = False, budget: float = 0) -> U8:
        """`parse` with `detect` as the search's long side (before it is clipped to the frame);
        `background`: a search's enlarged parse on its own thread (`_search`); `budget`: its strips'
        size (`enlarged`)."""
        if self._search_error is not None:
            error, self._search_error = self._search_error, None
            raise error
        h, w = bgr.shape[:2]
        with self._lock:
            ticket, boxes, current = self._ticket, self._boxes, self._regions
            self._ticket += 1
            every = self.refresh if boxes else self.idle
            look = self._since_look is None or self._since_look + 1 >= every  # frames 0, every, 2 every...
            self._since_look = 0 if look else self._since_look + 1
            empty = self._empty if not boxes else None
        if look and empty is not None and np.abs(thumbnail(bgr) - empty).max() <= self.same_scene:
            look = False  # the empty scene searched last, unchanged
        regions = self._steady(boxes, current, h, w) if boxes else None
        tiles = self._tiles(regions, h, w) if regions else None
        if not look:
            return self._next_plain(bgr, ticket, boxes, regions, tiles)
        side = self.search_side(h, w, detect)
        if background:
            # this frame is parsed as any other (a crop, or the whole frame at the input size); the
            # enlarged parse runs beside it, unless one still runs or the people fill the frame
            ids = self._next_plain(bgr, ticket, boxes, regions, tiles)
            if side > self.engine.input_size and (tiles is not None or not self._fills(self._boxes, h, w)):
                with self._lock:  # one search at a time (frames parsed in parallel may both look)
                    if self._search_thread is None or not self._search_thread.is_alive():
                        self._search_thread = threading.Thread(
                            target=self._search, args=(bgr.copy(), side, budget, self._boxes or ()), name="zoom-search",
                            daemon=False)  # not the daemon its caller may be: a search cut off at exit aborts the process
                        self._search_thread.start()
            return ids
        # a search in line: the whole frame at the input size, then enlarged, unless the people
        # found at the input size already fill the frame: any crop or tile must hold them, so none
        # could enlarge anyone (a webcam user close up pays no search); the plain parse's people
        # are kept beside the enlarged one's, which can see only part of a large person (a coat
        # without its wearer). The search's result is this frame's output.
        ids = self._parse(bgr)
        self.last_input = self.engine.model_shape(h, w)
        found = people_boxes(ids, h, w)
        if side > self.engine.input_size and not self._fills(self._group(found, h, w), h, w):
            ids, self.last_input = self.enlarged(bgr, side, budget, tuple(found) + (boxes or ()))
            found += people_boxes(ids, h, w)
        # the search adds people; a tracked one it missed is kept (the next crop decides)
        found += boxes or ()
        empty = None if found else thumbnail(bgr)
        with self._lock:
            self._empty = empty
        self._remember(ticket, self._group(found, h, w))
        return ids

    def _next_plain(self, bgr: U8, ticket: int, boxes: tuple[Box, ...] | None, regions: tuple[Box, ...] | None,
                    tiles: list[Tile] | None) -> U8:
        """A frame that is not searched: the tiles (or crop) of the tracked people, else the whole
        frame at the input size."""
        h, w = bgr.shape[:2]
        if tiles is None:
            ids = self._parse(bgr)
            self.last_input = self.engine.model_shape(h, w)
            self._remember(ticket, self._group(people_boxes(ids, h, w), h, w))
            return ids
        with self._lock:
            self._regions = regions
        ids, found = self._parse_tiles(bgr, tiles)
        # each box shrinks by at most `shrink` a frame: a crop that cut off part of a person (the
        # search saw only their coat) may see less of them, and must not spiral down onto it
        least = 0.005 * h * w  # a box shrunk to a speck is dropped (a person gone from a crop)
        if found and boxes:
            found += [k for k in (b.shrunk(self.shrink) for b in boxes) if k.height > 0 and k.area >= least]
        self._remember(ticket, self._group(found, h, w))
        return ids

    def _search(self, bgr: U8, side: int, budget: float, people: tuple[Box, ...]) -> None:
        """A stream's enlarged search on its own thread: the people it finds join the tracked ones,
        and results of frames that were in flight meanwhile no longer replace them (they did not
        see the new people). The search frame itself was parsed as any other, so no frame waits
        for the search (a search at three times the input size is ~11 frames' model time)."""
        try:
            h, w = bgr.shape[:2]
            found = people_boxes(self.enlarged(bgr, side, budget, people)[0], h, w)
            empty = None if found or people else thumbnail(bgr)
            with self._lock:
                self._empty = empty
                if found:
                    self._boxes = self._group(found + list(self._boxes or ()), h, w)
                    self._newest = self._ticket - 1
        except BaseException as exc:  # raised on the next frame, on the caller's thread
            self._search_error = exc

    def enlarged(self, bgr: U8, side: int, budget: float,
                 people: tuple[Box, ...] = ()) -> tuple[U8, tuple[int, int]]:
        """The class map of a search's enlarged parse (long side `side`) and the largest model
        input it took. With a `budget`, the frame is parsed in strips (`search_strips`, cut where
        none of `people` stands) of at most `budget` times the model pixels of a frame at the
        input size, and the strips' maps are pasted side by side at the frame's scale: the
        model's memory for activations grows with its input (~110 MB more at 768x432 than at
        256x144), and a stream searches every `refresh` frames for as long as it runs."""
        h, w = bgr.shape[:2]
        with self._lock:
            self.searches += 1
        rh, rw, _, _ = fit_size(h, w, self.engine.input_size)
        grown = tuple(b.grown(self.margin / 3, h, w) for b in people)
        strips = search_strips(h, w, side, budget * rh * rw if budget else math.inf, grown)
        # the search parses at its own side alone (not at the engine's test-time scales: a still's
        # 4x search at 1.375 times held ~500 MB more for a 4K photo); the crops after it use them
        if len(strips) == 1:
            return self._parse(bgr, side, scaled=False), self.engine.model_shape(h, w, side)
        scale = side / max(h, w)
        out = np.empty((max(1, round(h * scale)), max(1, round(w * scale))), np.uint8)
        sx = out.shape[1] / w  # the map's own scale, after rounding its size
        biggest = (0, 0)
        longs = [max(2 * STRIDE, round(scale * max(h, x1 - x0))) for x0, x1, _, _ in strips]
        crops = [bgr[:, x0:x1] for x0, x1, _, _ in strips]

        def parse(crop: U8, long: int) -> U8:
            return self._parse(crop, long, scaled=False)

        if self.workers > 1:
            with ThreadPoolExecutor(min(self.workers, len(strips)), thread_name_prefix="zoom-strip") as pool:
                maps = list(pool.map(parse, crops, longs))
        else:
            maps = list(map(parse, crops, longs))
        for (x0, x1, c0, c1), long, ids in zip(strips, longs, maps):
            biggest = max(biggest, self.engine.model_shape(h, x1 - x0, long), key=lambda s: s[0] * s[1])
            m0, m1, k0, k1 = (round(x * sx) for x in (x0, x1, c0, c1))
            strip = cv2.resize(ids, (m1 - m0, out.shape[0]), interpolation=cv2.INTER_NEAREST)
            out[:, k0:k1] = strip[:, k0 - m0:k1 - m0]
        return out, biggest

    def wait(self) -> None:
        """Wait for a background search to finish (tests, benchmarks)."""
        if self._search_thread is not None:
            self._search_thread.join()

    def _fills(self, boxes: tuple[Box, ...] | None, h: int, w: int) -> bool:
        """True when `boxes` (people found at the input size) leave no crop or tiles that would
        enlarge them: the enlarged search is skipped."""
        return boxes is not None and self._tiles(self._steady(boxes, None, h, w), h, w) is None

    def search_side(self, h: int, w: int, detect: int | None = None) -> int:
        """The model long side of the enlarged search of an h x w frame: `detect_scale` times the
        input size (`detect` instead when given), at most the frame's own long side, at least the
        input size."""
        detect = self.detect if detect is None else detect
        return max(min(detect, max(h, w)) // STRIDE * STRIDE, self.engine.input_size)

    def _group(self, found: list[Box], h: int, w: int) -> tuple[Box, ...] | None:
        return group_boxes(found, self.margin, h, w, self.groups) if found else None

    def _steady(self, boxes: tuple[Box, ...], current: tuple[Box, ...] | None, h: int, w: int) -> tuple[Box, ...]:
        """The crops for `boxes` (one per group, left to right): each group's crop in use while
        the group, grown by a third of the margin, still fits inside it and the new crop would not
        be much smaller (under 0.6 of its area); else the group grown by the margin. A crop that
        moves with every frame's box changes the people's scale and position in the model's input
        each frame, and their classes flicker. When the number of groups changes, all crops are new."""
        if current is None or len(current) != len(boxes):
            return tuple(b.grown(self.margin, h, w) for b in boxes)
        return tuple(self._steady_one(b, c, h, w) for b, c in zip(boxes, current))

    def _steady_one(self, box: Box, current: Box | None, h: int, w: int) -> Box:
        """`_steady` for one group."""
        wanted = box.grown(self.margin, h, w)
        if current is not None and wanted.height * wanted.width >= 0.6 * current.height * current.width:
            inner = box.grown(self.margin / 3, h, w)
            if (current.y0 <= inner.y0 and current.x0 <= inner.x0 and inner.y1 <= current.y1
                    and inner.x1 <= current.x1):
                return current
        return wanted

    def _crop_side(self, region: Box, h: int, w: int) -> int | None:
        """The model long side for a crop of `region`, or None when that would enlarge the people
        less than `min_gain` times over the whole frame (people filling the frame, or a small
        frame that the crop could only cut without enlarging: a crop is never enlarged)."""
        rh, rw, _, _ = fit_size(h, w, self.engine.input_size)
        side = crop_long_side(region.height, region.width, rh * rw, self.cap)
        gain = (side / max(region.height, region.width)) / (max(rh, rw) / max(h, w))
        return side if gain >= self.min_gain else None

    def _tiles(self, regions: tuple[Box, ...], h: int, w: int) -> list[Tile] | None:
        """How the crops go into the model's input, or None to parse the frame whole: one crop
        around all the groups (`_crop_side`), or, where they stand apart, each group's crop side by
        side at one height (`tile_scales`) when that enlarges the least enlarged group `tile_gain`
        times more than the one crop would, and at least `min_gain` times over the whole frame."""
        rh, rw, _, _ = fit_size(h, w, self.engine.input_size)
        whole = max(rh, rw) / max(h, w)  # the whole frame's scale
        everyone = union_of(regions)
        side = self._crop_side(everyone, h, w)
        one = side / max(everyone.height, everyone.width) if side else 0.0
        if len(regions) > 1:
            scales = tile_scales(regions, rh * rw, self.cap)
            if min(scales) >= max(self.min_gain * whole, self.tile_gain * one):
                tiles, x = [], 0
                for r, s in zip(regions, scales):
                    th, tw = max(1, round(r.height * s)), max(1, round(r.width * s))
                    tiles.append(Tile(r, x, th, tw))
                    x += padded(tw)
                return tiles
        if side is None:
            return None
        th, tw, _, _ = fit_size(everyone.height, everyone.width, side)
        return [Tile(everyone, 0, th, tw)]

    def _parse_tiles(self, bgr: U8, tiles: list[Tile]) -> tuple[U8, list[Box]]:
        """The class map of the whole frame, from one parse of the tiles (a crop alone, or the
        crops side by side on the padding's grey), and the boxes around its people in the frame's
        pixels. The map is at the crop's scale for one crop, finer for tiles (see below)."""
        h, w = bgr.shape[:2]
        if len(tiles) == 1:
            r = tiles[0].region
            crop = bgr[r.y0:r.y1, r.x0:r.x1]
            parsed = [self._parse(crop, max(tiles[0].h, tiles[0].w))]
            self.last_input = self.engine.model_shape(r.height, r.width, max(tiles[0].h, tiles[0].w))
        else:
            ch = padded(max(t.h for t in tiles))
            cw = tiles[-1].x + padded(tiles[-1].w)
            canvas = np.empty((ch, cw, 3), np.uint8)
            canvas[:] = PAD_BGR
            for t in tiles:
                r = t.region
                canvas[:t.h, t.x:t.x + t.w] = shrink(bgr[r.y0:r.y1, r.x0:r.x1], t.w, t.h)
            ids = self._parse(canvas, max(ch, cw))
            parsed = [ids[:t.h, t.x:t.x + t.w] for t in tiles]
            self.last_input = (ch, cw)
            with self._lock:
                self.tiled += 1
        # one crop: the map at its scale; tiles (each at its own scale): at four times the largest
        # one's, at most the frame's size (at the largest tile's scale, the map's grid moved the
        # other tiles' edges by up to half a pixel of theirs; the frame's size costs 8 MB a 4K map)
        scale = max(p.shape[0] / t.region.height for p, t in zip(parsed, tiles))
        if len(tiles) > 1:
            scale = min(1.0, 4 * scale)
        out = np.zeros((max(1, round(h * scale)), max(1, round(w * scale))), np.uint8)
        sy, sx = out.shape[0] / h, out.shape[1] / w  # the map's own scale, after rounding its size
        found = []
        for p, t in zip(parsed, tiles):
            r = t.region
            found += [Box(b.y0 + r.y0, b.x0 + r.x0, b.y1 + r.y0, b.x1 + r.x0) for b in people_boxes(p, r.height, r.width)]
            y0, x0 = round(r.y0 * sy), round(r.x0 * sx)
            y1, x1 = max(y0 + 1, round(r.y1 * sy)), max(x0 + 1, round(r.x1 * sx))
            # a crop's ids fitted to the rectangle it covers on the map: edges stay where the crop
            # put them (pasting them at the crop's own scale drifts by the rounding, pixels at 4K)
            out[y0:y1, x0:x1] = cv2.resize(p, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        return out, found

    def _remember(self, ticket: int, boxes: tuple[Box, ...] | None) -> None:
        with self._lock:
            if ticket > self._newest:  # a slower, older frame does not overwrite newer boxes
                self._newest, self._boxes = ticket, boxes
