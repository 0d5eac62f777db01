"""Person zoom: parse the part of the frame where the people are, at the model's best scale.

LIP-Net parses people well only near the size it was trained at: a person who fills the
frame's height at the default input (long side 256) is parsed at about that size, but a person
at half the height of a 1280x720 frame is ~72 pixels tall in the model's input and parsed
badly (BENCHMARKS.md, "Person zoom"). `Zoom` crops the frame to the box around the people
found in the previous result (plus a margin) and parses the crop with as many model pixels as
the whole frame would take at the input size: the same cost, the people larger. The crop is
never enlarged past its own pixels, nor past `cap` on its long side.

With nobody tracked (or people filling the frame) a frame is parsed whole, as without zoom,
and people large enough to be found there are followed from the next frame on. The first frame
and every `refresh`-th after it are searched whole, for people who came in: at the input size
first, then at `detect_scale` times it, for people too small to be found at the input size (3:
a person at half a 1280x720 frame's height is ~144 pixels tall at twice the input size, and
seldom found there; ~216 at three times). The enlarged parse alone can find only part of a
large person (a coat without its wearer): where the people found at the input size fill the
frame, no crop could enlarge them and the enlarged parse is skipped. A search's result (the
enlarged parse, when made) is that frame's output; every other frame costs one parse. The crop
stays put while the people stay well inside it (less flicker). A still image (`run_still`)
is searched at `still_scale` times the input size (4: a still is parsed once, so its search may
cost more than a stream frame's), then cropped, and cropped again where the first crop's
people call for another. The engine knows nothing of this: `Zoom` calls `Engine.parse` on
crops.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from .engine import STRIDE, Engine, fit_size, scale_ids

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

    def union(self, other: Box | None) -> Box:
        if other is None:
            return self
        return Box(min(self.y0, other.y0), min(self.x0, other.x0), max(self.y1, other.y1), max(self.x1, other.x1))

    def within(self, other: Box, share: float) -> Box:
        """This box, its sides moved in from `other`'s by at most `share` of `other`'s height or width
        (it may grow past them freely)."""
        dy, dx = share * other.height, share * other.width
        return Box(min(self.y0, math.floor(other.y0 + dy)), min(self.x0, math.floor(other.x0 + dx)),
                   max(self.y1, math.ceil(other.y1 - dy)), max(self.x1, math.ceil(other.x1 - dx)))

    def grown(self, margin: float, h: int, w: int) -> Box:
        """The box grown by `margin` times its longer side on every side, clipped to an h x w frame."""
        m = margin * max(self.height, self.width)
        return Box(max(0, math.floor(self.y0 - m)), max(0, math.floor(self.x0 - m)),
                   min(h, math.ceil(self.y1 + m)), min(w, math.ceil(self.x1 + m)))


def people_box(ids: U8, h: int, w: int, keep: float = 0.1, least: float = 0.005) -> Box | None:
    """The box, in an h x w frame's pixels, around the person pixels of `ids` (a class map of the
    frame at any size): the connected regions of person classes at least `keep` times the largest
    one's area (stray specks do not widen it) and at least a share `least` of the map (a speck
    of an empty room called a person is not zoomed into). None when no region is that large."""
    n, region, stats, _ = cv2.connectedComponentsWithStats((ids > 0).view(np.uint8), connectivity=8)
    if n <= 1:
        return None
    area = stats[1:, cv2.CC_STAT_AREA]
    big = 1 + np.flatnonzero(area >= max(keep * area.max(), least * ids.size))
    if not big.size:
        return None
    x0 = stats[big, cv2.CC_STAT_LEFT].min()
    y0 = stats[big, cv2.CC_STAT_TOP].min()
    x1 = (stats[big, cv2.CC_STAT_LEFT] + stats[big, cv2.CC_STAT_WIDTH]).max()
    y1 = (stats[big, cv2.CC_STAT_TOP] + stats[big, cv2.CC_STAT_HEIGHT]).max()
    sy, sx = h / ids.shape[0], w / ids.shape[1]
    return Box(math.floor(y0 * sy), math.floor(x0 * sx), min(h, math.ceil(y1 * sy)), min(w, math.ceil(x1 * sx)))


def crop_long_side(crop_h: int, crop_w: int, budget: int, cap: int) -> int:
    """The model long side for a crop: `budget` model pixels at the crop's aspect ratio, at most
    `cap` and at most the crop's own long side (never enlarged), a multiple of the model stride."""
    long, short = max(crop_h, crop_w), max(1, min(crop_h, crop_w))
    side = min(math.sqrt(budget * long / short), cap, long)
    return max(2 * STRIDE, int(side) // STRIDE * STRIDE)


class Zoom:
    """Parses frames through `engine` a person-sized crop at a time (see the module's text).

    `parse(bgr)` returns a class map of the whole frame, like `Engine.parse`: at the crop's
    scale, background outside the crop. Safe to call from several threads (frames parsed in
    parallel): the box comes from the newest result to finish.
    """

    def __init__(self, engine: Engine, margin: float = 0.15, cap_scale: float = 1.25, refresh: int = 30,
                 detect_scale: float = 3.0, still_scale: float = 4.0, min_gain: float = 1.3, shrink: float = 0.1,
                 flip: bool = False) -> None:
        self.engine = engine
        self._parse = engine.parse_flip if flip else engine.parse  # flip: `eval --flip` (the app's
        # flip mode is the engine's own `config.flip`, which `Engine.parse` follows)
        self.margin = margin
        self.cap = int(engine.input_size * cap_scale)
        self.refresh = refresh
        self.shrink = shrink
        self.detect = int(engine.input_size * detect_scale)
        self.detect_still = int(engine.input_size * still_scale)
        self.min_gain = min_gain  # a crop that would enlarge the people less than this: parse the frame whole
        self.last_input: tuple[int, int] = (0, 0)  # the model's input (h, w) for the last frame
        self._box: Box | None = None
        self._region: Box | None = None  # the crop in use: kept while the people stay well inside it
        self._since_look: int | None = None  # frames since the last enlarged search (None: never)
        self._ticket = 0
        self._newest = -1
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget the box (a new scene or the next still image)."""
        with self._lock:
            self._box, self._region, self._since_look = None, None, None

    def run_still(self, bgr: U8, crops: int = 2) -> U8:
        """A still image's class map at its own size (as `Engine.run`): the whole image searched
        for people (enlarged `still_scale` times), then up to `crops` crops, each around the people
        of the pass before (the first box, from the whole image, is the roughest); it stops when
        the next crop would be the same."""
        self.reset()
        ids = self._next(bgr, self.detect_still)
        h, w = bgr.shape[:2]
        for _ in range(crops):
            if self._box is None:
                break  # nobody found: a crop has nothing to hold
            if self._region and self._steady(self._box, self._region, h, w) == self._region:
                break  # the crop would stay put: the same ids again
            ids = self._next(bgr, self.detect_still)
        return scale_ids(ids, h, w)

    def parse(self, bgr: U8) -> U8:
        """The next frame of a stream: a crop around the box of the newest result (see the class)."""
        return self._next(bgr, self.detect)

    def _next(self, bgr: U8, detect: int) -> U8:
        """`parse` with `detect` as the search's long side (before it is clipped to the frame)."""
        h, w = bgr.shape[:2]
        with self._lock:
            ticket, box, current = self._ticket, self._box, self._region
            self._ticket += 1
            look = self._since_look is None or self._since_look >= self.refresh
            self._since_look = 0 if look else self._since_look + 1
        region = self._steady(box, current, h, w) if box else None
        side = self._crop_side(region, h, w) if region else None
        if look or side is None:
            # the whole frame: enlarged when searching for people (new ones beside the tracked
            # ones), else as without zoom (nobody tracked, or the people fill the frame)
            ids = self._parse(bgr)
            self.last_input = self.engine.model_shape(h, w)
            found = people_box(ids, h, w)
            if look:
                # the enlarged parse, unless the people found at the input size already fill the
                # frame: any crop must hold them, so none could enlarge anyone (a webcam user close
                # up pays no search); the plain parse's people are kept beside the enlarged one's,
                # which can see only part of a large person (a coat without its wearer)
                side = self.search_side(h, w, detect)
                filled = found is not None and self._crop_side(found.grown(self.margin, h, w), h, w) is None
                if side > self.engine.input_size and not filled:
                    ids = self._parse(bgr, side)
                    self.last_input = self.engine.model_shape(h, w, side)
                    enlarged = people_box(ids, h, w)
                    found = enlarged.union(found) if enlarged else found
                # the search adds people; a tracked one it missed is kept (the next crop decides)
                found = found.union(box) if found else box
            self._remember(ticket, found)
            return ids
        with self._lock:
            self._region = region
        ids, found = self._parse_crop(bgr, region, side)
        # the box shrinks by at most `shrink` a frame: a crop that cut off part of a person (the
        # search saw only their coat) may see less of them, and must not spiral down onto it
        self._remember(ticket, found.within(box, self.shrink) if found and box else found)
        return ids

    def search_side(self, h: int, w: int, detect: int | None = None) -> int:
        """The model long side of the enlarged search of an h x w frame: `detect_scale` times the
        input size (`detect` instead when given), at most the frame's own long side, at least the
        input size."""
        detect = self.detect if detect is None else detect
        return max(min(detect, max(h, w)) // STRIDE * STRIDE, self.engine.input_size)

    def _steady(self, box: Box, current: Box | None, h: int, w: int) -> Box:
        """The crop for `box`: the crop in use while the box, grown by a third of the margin, still
        fits inside it and the new crop would not be much smaller (under 0.6 of its area); else
        the box grown by the margin. A crop that moves with every frame's box changes the
        people's scale and position in the model's input each frame, and their classes flicker."""
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

    def _parse_crop(self, bgr: U8, region: Box, side: int) -> tuple[U8, Box | None]:
        """The class map of the whole frame at the crop's scale, from a parse of the crop alone
        at long side `side`, and the box around its people in the frame's pixels."""
        h, w = bgr.shape[:2]
        crop_ids = self._parse(bgr[region.y0:region.y1, region.x0:region.x1], side)
        self.last_input = self.engine.model_shape(region.height, region.width, side)
        found = people_box(crop_ids, region.height, region.width)
        if found is not None:
            found = Box(found.y0 + region.y0, found.x0 + region.x0, found.y1 + region.y0, found.x1 + region.x0)
        scale = crop_ids.shape[0] / region.height
        out = np.zeros((max(1, round(h * scale)), max(1, round(w * scale))), np.uint8)
        sy, sx = out.shape[0] / h, out.shape[1] / w  # the map's own scale, after rounding its size
        y0, x0 = round(region.y0 * sy), round(region.x0 * sx)
        y1, x1 = max(y0 + 1, round(region.y1 * sy)), max(x0 + 1, round(region.x1 * sx))
        # the crop's ids fitted to the rectangle it covers on the map: edges stay where the crop
        # put them (pasting them at the crop's own scale drifts by the rounding, pixels at 4K)
        out[y0:y1, x0:x1] = cv2.resize(crop_ids, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        return out, found

    def _remember(self, ticket: int, box: Box | None) -> None:
        with self._lock:
            if ticket > self._newest:  # a slower, older frame does not overwrite a newer box
                self._newest, self._box = ticket, box
