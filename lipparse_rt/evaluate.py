"""Score the shipped ONNX model over a labelled folder, through the app's own Engine. No torch."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
from numpy.typing import NDArray

from .classes import NAMES
from .data import find_pairs, id_mask, ids_outside, ids_text, read_mask
from .engine import Engine, fit_size, scale_ids
from .errors import InputError
from .metrics import protocol_confusion, scores, side_errors, Scores, class_names
from .sources import IMAGE_EXTS, Images, VideoFile, read_image_any
from .zoom import Zoom

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """One split scored under one protocol."""

    protocol: str
    images: int
    confusion: NDArray[np.int64]
    scores: Scores
    side_error: float | None  # share of same-part arm/leg/shoe pixels given the wrong side
    flip_tta: bool = False
    per_image: NDArray[np.int64] | None = None  # n x k x k: each image's confusion matrix, in `find_pairs` order
    stems: tuple[str, ...] = ()  # the images' file stems, in the same order

    def side_by_image(self) -> list[tuple[str, int, int]]:
        """(image stem, wrong-side, same-part pixels) per image; empty unless the protocol is `lip`
        (the `ccp` protocol's merged classes have no sides)."""
        if self.per_image is None or self.protocol != "lip":
            return []
        return [(stem, *side_errors(c)) for stem, c in zip(self.stems, self.per_image)]

    def images_per_class(self) -> list[int]:
        """How many of the scored images hold each class in their labels."""
        if self.per_image is None:
            return []
        return [int(v) for v in (self.per_image.sum(2) > 0).sum(0)]

    def worst_sides(self, n: int) -> tuple[list[tuple[str, int, int]], float]:
        """The `n` images with the most wrong-side pixels, and their share of all wrong-side pixels."""
        rows = self.side_by_image()
        ranked = sorted(rows, key=lambda r: -r[1])[:n]
        total = sum(r[1] for r in rows)
        return ranked, (sum(r[1] for r in ranked) / total if total else 0.0)

    @property
    def names(self) -> tuple[str, ...]:
        return class_names(self.protocol)


def predict_flip(engine: Engine, bgr: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Flip test-time augmentation (`Engine.parse_flip`); ids at the image's size."""
    return scale_ids(engine.parse_flip(bgr), *bgr.shape[:2])


def evaluate(
    engine: Engine,
    root: Path,
    split: str | None = None,
    labels: str | None = None,
    protocol: str = "lip",
    limit: int = 0,
    on_image: Callable[[int, int], None] | None = None,
    flip_tta: bool = False,
    zoom: bool | Zoom = False,
    place: Callable[[int, NDArray[np.uint8], NDArray[np.uint8]], tuple[NDArray[np.uint8], NDArray[np.uint8]]] | None = None,
) -> EvalResult:
    """Run `engine` over the labelled pairs of `root` and accumulate one confusion matrix.

    `zoom`: each image parsed as `image --zoom` parses it, searched whole and then cropped around
    its people (`Zoom.run_still`); a `Zoom` on `engine`: through that one (other search sizes).
    `place(i, bgr, label)` changes the i-th image and its
    label before scoring (`AtDistance`).
    """
    zoomer = zoom if isinstance(zoom, Zoom) else Zoom(engine, flip=flip_tta) if zoom else None
    pairs = _pairs(root, split, labels, limit)
    per_image = []
    odd = LabelIds(protocol)
    for i, (img_path, lab_path) in enumerate(pairs):
        label = read_mask(lab_path)
        bgr = read_image_any(img_path)
        if label.shape != bgr.shape[:2]:
            raise InputError(f"cannot score '{lab_path}': the label is {label.shape[1]}x{label.shape[0]}, its image "
                             f"'{img_path.name}' {bgr.shape[1]}x{bgr.shape[0]}")
        odd.check(label, lab_path)
        if place is not None:
            bgr, label = place(i, bgr, label)
        if zoomer is not None:
            pred = zoomer.run_still(bgr)
        else:
            pred = predict_flip(engine, bgr) if flip_tta else engine.run(bgr)
        c = protocol_confusion(pred, label, protocol)
        per_image.append(c)
        if on_image:
            on_image(i + 1, len(pairs))
    odd.report()
    return _result(root, protocol, per_image, pairs, flip_tta)


class LabelIds:
    """Label ids that a protocol does not score, gathered over a split and said once: a folder of
    other ids (CCP's own 59 labels, another dataset's) would otherwise be scored in part, silently."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.scored = id_mask(22 if protocol == "ccp" else len(NAMES))  # ccp: with CCP's skin and shoe, 20 and 21
        self.maps = 0  # label maps checked
        self.holding = 0  # of them, those holding an id not scored
        self.found: dict[int, Path] = {}  # id -> the first map holding it

    def check(self, label: NDArray[np.uint8], path: Path) -> None:
        self.maps += 1
        odd = ids_outside(label, self.scored)
        self.holding += bool(odd.size)
        for i in odd:
            self.found.setdefault(int(i), path)

    def report(self) -> None:
        if not self.found:
            return
        ids = sorted(self.found)
        hint = ("CCP's unsided skin (20) and shoes (21): --protocol ccp scores them" if set(ids) <= {20, 21} and
                self.protocol == "lip" else "are these labels LIP ids?")
        log.warning("%d of %d label maps hold ids the %s protocol does not score (%s; %d first in '%s'): those "
                    "pixels are left out; %s", self.holding, self.maps, self.protocol, ids_text(ids), ids[0],
                    self.found[ids[0]], hint)


class AtDistance:
    """`evaluate`'s `place`: each photo shrunk to `height` of a `scene`'s height and put on it,
    bottom-aligned at a seeded left edge; its label likewise, background around it. Photos of
    people standing at a distance from a landscape camera, with their labels.

    With `partner` (i -> the i-th photo's partner, an image and its label), the partner stands
    in the scene too: the photo in the left third of its width, the partner in the right third
    (people standing apart), both scored."""

    def __init__(self, scene: NDArray[np.uint8], height: float, seed: int = 0,
                 partner: Callable[[int], tuple[NDArray[np.uint8], NDArray[np.uint8]]] | None = None) -> None:
        self.scene, self.height, self.seed, self.partner = scene, height, seed, partner

    def __call__(self, i: int, bgr: NDArray[np.uint8], label: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        sh, sw = self.scene.shape[:2]
        rng = np.random.default_rng((self.seed, i))
        image = self.scene.copy()
        placed = np.zeros((sh, sw), np.uint8)
        if self.partner is None:
            self._put(image, placed, bgr, label, 0, sw, rng)
        else:
            self._put(image, placed, bgr, label, 0, sw // 3, rng)
            self._put(image, placed, *self.partner(i), sw - sw // 3, sw, rng)
        return image, placed

    def _put(self, image: NDArray[np.uint8], placed: NDArray[np.uint8], bgr: NDArray[np.uint8],
             label: NDArray[np.uint8], lo: int, hi: int, rng: np.random.Generator) -> None:
        """One photo and its label, bottom-aligned, its left edge at random in lo..hi minus its
        width (at most the scene's width: it may reach past hi)."""
        small, small_label = self.fit(bgr, label)
        sw, w = image.shape[1], small.shape[1]
        x = int(rng.integers(lo, max(lo, min(hi, sw) - w) + 1)) if lo + w <= sw else sw - w
        put_at(image, placed, small, small_label, x)

    def fit(self, bgr: NDArray[np.uint8], label: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        """A photo and its label shrunk to `height` of the scene's height (aspect kept, at most
        the scene's width)."""
        sh, sw = self.scene.shape[:2]
        h = max(1, min(sh, round(self.height * sh)))
        w = min(sw, max(1, round(bgr.shape[1] * h / bgr.shape[0])))
        return (cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA),
                cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST))


def put_at(image: NDArray[np.uint8], placed: NDArray[np.uint8], small: NDArray[np.uint8],
           small_label: NDArray[np.uint8], x: int) -> None:
    """A shrunk photo and its label into a scene and its label map, bottom-aligned at column x."""
    h, w = small.shape[:2]
    y = image.shape[0] - h
    image[y:y + h, x:x + w] = small
    placed[y:y + h, x:x + w] = small_label


def evaluate_walk(engine: Engine, root: Path, split: str | None, labels: str | None, protocol: str,
                  walk: AtDistance, frames: int = 30, zoom: Zoom | None = None, limit: int = 0,
                  vary: int = 0) -> EvalResult:
    """People walking across a scene, as a stream: each labelled photo, shrunk as `walk` shrinks
    it (`AtDistance.fit`), crosses `walk.scene` in `frames` frames (or a seeded number within
    `vary` of it: people then come in at any frame, not in step with zoom's search every 30
    frames), its left edge moving evenly from one seeded column to another; the photos follow
    one another in the same stream (one person leaves, the next comes in elsewhere). Every frame
    is parsed in turn, through `zoom` (`Zoom.parse`, as `video --zoom` parses a stream) or
    whole, and scored against its label; `per_image` holds each photo's frames summed."""
    pairs = _pairs(root, split, labels, limit)
    sh, sw = walk.scene.shape[:2]
    per_image = []
    for i, (img_path, lab_path) in enumerate(pairs):
        small, small_label = walk.fit(read_image_any(img_path), read_mask(lab_path))
        rng = np.random.default_rng((walk.seed, i))
        x0, x1 = rng.integers(0, sw - small.shape[1] + 1, 2)
        n = max(1, int(rng.integers(frames - vary, frames + vary + 1))) if vary else frames
        c = 0
        for t in range(n):
            image, placed = walk.scene.copy(), np.zeros((sh, sw), np.uint8)
            put_at(image, placed, small, small_label, round(x0 + (x1 - x0) * t / max(1, n - 1)))
            pred = scale_ids(zoom.parse(image), sh, sw) if zoom is not None else engine.run(image)
            c = c + protocol_confusion(pred, placed, protocol)
        per_image.append(c)
    return _result(root, protocol, per_image, pairs)


def _pairs(root: Path, split: str | None, labels: str | None, limit: int) -> list:
    """The labelled pairs of `root` (`find_pairs`), the first `limit` when it is set."""
    pairs = find_pairs(Path(root), split, labels=labels)
    return pairs[:limit] if limit else pairs


def _result(root: Path, protocol: str, per_image: list, pairs: list, flip_tta: bool = False) -> EvalResult:
    """`evaluate`'s result from each image's confusion matrix."""
    if not per_image:
        raise InputError(f"no labelled images to score in '{root}'")
    stack = np.stack(per_image)
    cm = stack.sum(0)
    wrong, same = side_errors(cm) if protocol == "lip" else (0, 0)
    return EvalResult(protocol, len(pairs), cm, scores(cm), wrong / same if protocol == "lip" and same else None,
                      flip_tta, stack, tuple(p.stem for p, _ in pairs))


@dataclass(frozen=True)
class EmptyResult:
    """Frames with nobody in them, parsed: how much of them the model calls a person."""

    counts: NDArray[np.int64]  # pixels per class over all frames, at the model's resolution
    indices: NDArray[np.int64]  # the frames' indices in the video (a folder's pictures: in name order, from 0)
    per_frame: NDArray[np.float64]  # each frame's share of pixels given a person class (1..19)

    @property
    def frames(self) -> int:
        return len(self.per_frame)

    @property
    def share(self) -> float:
        """The share of all pixels given a person class (0 for a perfect model)."""
        return 1.0 - self.counts[0] / max(1, self.counts.sum())

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        """The `n` person classes given to most pixels, with their shares of all pixels."""
        total = max(1, self.counts.sum())
        order = [int(c) for c in np.argsort(-self.counts[1:], kind="stable")[:n] + 1 if self.counts[c] > 0]
        return [(NAMES[c], self.counts[c] / total) for c in order]

    def in_range(self, lo: int, hi: int) -> float:
        """The mean share over the frames from `lo` to `hi` (frames are the same size)."""
        sel = (self.indices >= lo) & (self.indices <= hi)
        return float(self.per_frame[sel].mean()) if sel.any() else float("nan")


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """'0-50,210-225,300' -> [(0, 50), (210, 225), (300, 300)]: frame indices, both ends included."""
    ranges = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        a, sep, b = part.partition("-")
        try:
            lo, hi = int(a), int(b) if sep else int(a)
        except ValueError:
            raise InputError(f"cannot parse frames '{text}': use ranges like 0-50,210-225") from None
        if hi < lo:
            raise InputError(f"cannot parse frames '{text}': '{part}' ends before it starts")
        ranges.append((lo, hi))
    if not ranges:
        raise InputError(f"cannot parse frames '{text}': no frame ranges")
    return ranges


def empty_scenes(engine: Engine, source: Path, ranges: list[tuple[int, int]] | None = None, flip_tta: bool = False,
                 on_frame: Callable[[int], None] | None = None, zoom: bool = False) -> EmptyResult:
    """Parse pictures that hold no person (an empty room, a street with nobody in it): the frames
    of a video (all, or those in `ranges`), or the images of a folder (in name order, numbered
    from 0). Every pixel given a person class is wrong; the counts are taken at the model's
    resolution. `zoom`: the frames parsed as `video --zoom` parses a stream (`Zoom.parse`, from the
    start of each run of consecutive frames), so a speck called a person can be zoomed into."""
    zoomer = Zoom(engine, flip=flip_tta) if zoom else None
    previous = -2
    last = max(hi for _, hi in ranges) if ranges else None
    counts = np.zeros(len(NAMES), np.int64)
    indices, per_frame = [], []
    for index, image in _numbered(Path(source)):
        if last is not None and index > last:
            break
        if ranges and not any(lo <= index <= hi for lo, hi in ranges):
            continue
        if zoomer is not None:
            if index != previous + 1:  # a cut: the next range starts afresh
                zoomer.reset()
            # on the whole frame's map, so that a zoomed frame (a map at its crop's scale) weighs
            # in the overall share as any other frame does
            ids = scale_ids(zoomer.parse(image), *fit_size(*image.shape[:2], engine.input_size)[:2])
        else:
            ids = engine.parse_flip(image) if flip_tta else engine.parse(image)
        previous = index
        c = np.bincount(ids.ravel(), minlength=len(NAMES))[:len(NAMES)]
        counts += c
        indices.append(index)
        per_frame.append(1.0 - c[0] / max(1, c.sum()))
        if on_frame:
            on_frame(len(per_frame))
    if not per_frame:
        raise InputError(f"nothing to score in '{source}': the frame ranges lie past its end")
    return EmptyResult(counts, np.array(indices), np.array(per_frame))


def _numbered(source: Path) -> Iterator[tuple[int, NDArray[np.uint8]]]:
    """(index, BGR) of each frame of a video, or of each picture of a folder (or one picture) in name order."""
    if source.is_file() and source.suffix.lower() not in IMAGE_EXTS:
        with VideoFile(source) as video:
            yield from ((f.index, f.image) for f in video)
    else:
        with Images(source) as pictures:
            yield from enumerate(img for _, img in pictures)


def confusion_png(cm: NDArray[np.int64], names: tuple[str, ...], path: Path, cell: int = 28) -> Path:
    """Draw the row-normalised confusion matrix (rows = label, columns = prediction) as a PNG."""
    n = len(names)
    rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    margin = 130
    img = np.full((margin + n * cell + 10, margin + n * cell + 10, 3), 255, np.uint8)
    heat = cv2.applyColorMap((rows * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    img[margin:margin + n * cell, margin:margin + n * cell] = cv2.resize(heat, (n * cell, n * cell),
                                                                         interpolation=cv2.INTER_NEAREST)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, name in enumerate(names):
        y = margin + i * cell + cell // 2 + 4
        cv2.putText(img, name[:16], (4, y), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        for j in range(n):
            if rows[i, j] >= 0.005:
                colour = (0, 0, 0) if rows[i, j] > 0.6 else (255, 255, 255)
                cv2.putText(img, f"{100 * rows[i, j]:.0f}", (margin + j * cell + 3, y), font, 0.33, colour, 1, cv2.LINE_AA)
    img[:margin, margin:margin + n * cell] = _vertical(names, margin, cell)
    cv2.putText(img, "label \\ prediction (% of row)", (4, 16), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def _vertical(names: tuple[str, ...], margin: int, cell: int) -> NDArray[np.uint8]:
    """Column headers: names written left to right on a strip, then turned to read bottom-up."""
    strip = np.full((len(names) * cell, margin, 3), 255, np.uint8)
    for j, name in enumerate(names):
        cv2.putText(strip, name[:16], (4, j * cell + cell // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.ascontiguousarray(np.rot90(strip))
