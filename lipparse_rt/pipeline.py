"""The pipe: source -> engine -> render -> sinks, each stage in its own thread.

Stages overlap, so the slowest one sets the pace. Queues are bounded (back-pressure, flat
memory). One stop event ends every stage; each worker keeps its exception for the caller,
and every thread started is joined before a function returns.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import numpy as np
from numpy.typing import NDArray

from .engine import Engine, scale_ids
from .errors import Interrupted, OutputError
from .render import HudInfo, hud, legend, overlay
from .sources import Camera, Frame
from .zoom import Zoom

log = logging.getLogger(__name__)

U8 = NDArray[np.uint8]
_END = object()
_POLL = 0.05


class FrameSink(Protocol):
    def write(self, bgr: U8, pts: int | None = None) -> None: ...


class MaskSink(Protocol):
    def write(self, ids: U8, name: str) -> Any: ...


class Display(Protocol):
    def show(self, bgr: U8) -> int: ...
    def closed(self) -> bool: ...


@dataclass
class LiveView:
    """How the live window draws, changed by keys while it runs (`press`)."""

    alpha: float = 0.5  # overlay opacity
    mirror: bool = True  # what is shown and recorded only: the model sees the camera's frame
    hud: bool = True

    KEYS = "q/Esc quit, s snapshot, f flip, z zoom, h HUD, m mirror, +/- opacity"

    def press(self, key: int) -> str:
        """Apply one key (`Display.show`'s code); return what the caller does next: 'quit',
        'snapshot', 'flip', 'zoom' or '' (nothing, or a change of this view)."""
        ch = chr(key).lower() if 0 <= key < 0x110000 else ""
        if key == 27 or ch == "q":
            return "quit"
        if ch in ("s", "f", "z"):
            return {"s": "snapshot", "f": "flip", "z": "zoom"}[ch]
        if ch == "h":
            self.hud = not self.hud
        elif ch == "m":
            self.mirror = not self.mirror
        elif ch in ("+", "="):  # = is + without shift on most layouts
            self.alpha = min(1.0, round(self.alpha + 0.1, 2))
        elif ch in ("-", "_"):
            self.alpha = max(0.0, round(self.alpha - 0.1, 2))
        return ""


class SnapshotSink(Protocol):
    def save(self, picture: U8, ids: U8) -> Any: ...


@dataclass
class RunStats:
    """What a run did and how fast."""

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    wall_s: float = 0.0
    model_spans: list[tuple[float, float]] = field(default_factory=list)  # each parse's (start, end), s
    latency_ms: list[float] = field(default_factory=list)
    interrupted: int = 0  # exit code of the signal that stopped the run (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)
    stopped: bool = False  # the user quit (q, Esc, window closed)
    source_error: str | None = None
    streams: int = 1  # frames parsed at once

    @property
    def fps(self) -> float:
        """End-to-end frames written (or shown) per second of wall time."""
        return self.frames_out / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def model_ms(self) -> list[float]:
        """Each parse's model time in ms."""
        return [(b - a) * 1000 for a, b in self.model_spans]

    @property
    def model_ms_median(self) -> float:
        """Median model time per frame in ms."""
        return float(np.median(self.model_ms)) if self.model_spans else 0.0

    @property
    def at_once(self) -> int:
        """The most frames the model parsed at once in this run, at most `streams`: fewer for a video
        shorter than the streams, or more streams than the queues hold frames (0 before any)."""
        events = sorted([(a, 1) for a, _ in self.model_spans] + [(b, -1) for _, b in self.model_spans])
        running = peak = 0
        for _, step in events:  # an end before a start at the same instant: not overlapping
            running += step
            peak = max(peak, running)
        return min(self.streams, peak)

    @property
    def model_fps(self) -> float:
        """Frames per second of model time alone: the frames parsed at once (`at_once`) per median
        model time."""
        med = self.model_ms_median
        return 1000.0 * self.at_once / med if med > 0 else 0.0

    def latency(self, q: float) -> float | None:
        """Capture-to-output latency percentile in ms."""
        return float(np.percentile(self.latency_ms, q)) if self.latency_ms else None


class Meter:
    """Sliding-window FPS (N stamps = N-1 intervals), recent model ms and latencies."""

    def __init__(self, window: int = 60) -> None:
        self._stamps: deque[float] = deque(maxlen=window)
        self._model: deque[float] = deque(maxlen=window)
        self._lat: deque[float] = deque(maxlen=window * 4)

    def tick(self, t: float, model_ms: float, latency_ms: float) -> None:
        self._stamps.append(t)
        self._model.append(model_ms)
        self._lat.append(latency_ms)

    @property
    def fps(self) -> float:
        if len(self._stamps) < 2:
            return 0.0
        span = self._stamps[-1] - self._stamps[0]
        return (len(self._stamps) - 1) / span if span > 0 else 0.0

    def hud(self, provider: str, input_hw: tuple[int, int], status: str = "") -> HudInfo:
        lat = np.array(self._lat) if self._lat else None
        return HudInfo(
            fps=self.fps,
            model_ms=float(np.mean(self._model)) if self._model else 0.0,
            latency_p50_ms=float(np.percentile(lat, 50)) if lat is not None else None,
            latency_p95_ms=float(np.percentile(lat, 95)) if lat is not None else None,
            provider=provider, input_hw=input_hw, status=status,
        )


class _Stage:
    """A worker thread that records its exception and sets the shared stop event on failure."""

    def __init__(self, name: str, target: Callable[[], None], stop: threading.Event) -> None:
        self.error: BaseException | None = None
        self._target, self._stop = target, stop
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as exc:  # handed to the caller, re-raised there
            self.error = exc
            self._stop.set()


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> object:
    while not stop.is_set():
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            continue
    return _END


def _join(stages: list[_Stage]) -> None:
    for s in stages:
        s.thread.join()
    for s in stages:
        if s.error is not None and not isinstance(s.error, (KeyboardInterrupt, Interrupted, CancelledError)):
            raise s.error


def render_frame(bgr: U8, ids: U8, alpha: float, with_legend: bool = True, in_place: bool = False) -> U8:
    """Overlay (and legend) for one frame; `in_place` draws on `bgr` itself (no copy of the frame).

    `ids` is the class map at the frame's size or the model's (see `render.overlay`).
    """
    out = overlay(bgr, ids, alpha, out=bgr if in_place else None)
    return legend(out, ids) if with_legend else out


def queue_depth(width: int, height: int, budget_mb: int = 32) -> int:
    """Frames per queue so that a queue of BGR frames holds about `budget_mb` (3 up to 1080p, 1 at 4K)."""
    return max(1, min(3, (budget_mb << 20) // max(1, width * height * 3)))


def search_workers(width: int, height: int, streams: int) -> int:
    """Threads for a `video --zoom` search's strips (`Zoom(workers=...)`): one per stream up to
    1080p; one above it, where the frames take most of the memory and a second strip's
    activations at once took 4K past 600 MB (`bench memory`: 609 and 649 MB against 572-598)."""
    return streams if width * height <= 1920 * 1080 else 1


def run_file(
    frames: Iterable[Frame],
    engine: Engine,
    video: FrameSink | None = None,
    masks: MaskSink | None = None,
    display: Display | None = None,
    alpha: float = 0.5,
    on_frame: Callable[[int], None] | None = None,
    depth: int = 3,
    streams: int = 1,
    zoom: Zoom | None = None,
    max_frames: int = 0,
) -> RunStats:
    """Parse every frame of a file source; nothing is dropped (bounded queues give back-pressure).

    Threads: read -> infer and draw (`streams` frames at once) -> results in order -> write.
    The reader hands each frame to a pool of `streams` threads that parse it and draw its
    overlay, and queues the pending result in frame order, so frames are parsed and drawn in
    parallel and still written in order.
    The calling thread shows frames when `display` is given (dropping display frames, never
    output frames) and reports progress. Ctrl-C (or `Interrupted`) stops every stage; what
    was written stays and `interrupted` is set.

    Args:
        depth: frames each queue holds (see `queue_depth`).
        streams: frames parsed at once (see `engine.plan_streams`).
        zoom: parse through a crop around the people (`zoom.Zoom`, made on `engine`).
        max_frames: stop after the first this many frames (0: every frame).
    """
    stats = RunStats(streams=max(1, streams))
    stop = threading.Event()
    q_ids: queue.Queue = queue.Queue(depth)  # (frame, pending ids), in frame order
    q_out: queue.Queue = queue.Queue(depth)
    shown: queue.Queue = queue.Queue(1)
    done = threading.Event()
    pool = ThreadPoolExecutor(stats.streams, thread_name_prefix="infer")

    def parse(image: U8) -> tuple[U8, tuple[float, float], U8 | None]:
        if stop.is_set():  # queued before a stop: not worth parsing
            raise CancelledError
        t = time.perf_counter()
        ids = (zoom or engine).parse(image)  # at the model's size: drawn and scaled up a strip at a time
        t1 = time.perf_counter()
        # drawn on the parse threads, on the frame's own pixels (not needed after this): with a
        # fast model, one drawing thread was the slowest stage (a GPU machine, BENCHMARKS.md)
        return ids, (t, t1), render_frame(image, ids, alpha, in_place=True) if video or display else None

    def read() -> None:
        try:
            for frame in frames:
                stats.frames_in += 1
                if not _put(q_ids, (frame, pool.submit(parse, frame.image)), stop):
                    return
                if stats.frames_in == max_frames:  # the rest not even decoded
                    return
        finally:
            _put(q_ids, _END, stop)

    def order() -> None:  # takes the parsed and drawn frames in frame order
        try:
            while (item := _get(q_ids, stop)) is not _END:
                frame, pending = item
                ids, span, out = pending.result()  # an engine error is raised here and stops the run
                stats.model_spans.append(span)
                if not _put(q_out, (frame, ids, out), stop):
                    return
        finally:
            _put(q_out, _END, stop)

    def write() -> None:
        try:
            while (item := _get(q_out, stop)) is not _END:
                frame, ids, out = item
                if video is not None:
                    video.write(out, frame.pts)
                if masks is not None:
                    masks.write(scale_ids(ids, *frame.image.shape[:2]), f"{frame.index:06d}")
                stats.latency_ms.append((time.perf_counter() - frame.t_capture) * 1000)
                stats.frames_out += 1
                if display is not None and shown.empty():
                    shown.put_nowait(out)
        finally:
            done.set()

    stages = [_Stage(n, f, stop) for n, f in (("read", read), ("order", order), ("write", write))]
    t0 = time.perf_counter()
    for s in stages:
        s.thread.start()
    try:
        last = -1
        while not done.is_set():
            if display is not None:
                _show(display, shown, stats, stop)
            else:
                done.wait(_POLL)
            if on_frame and stats.frames_out != last:
                last = stats.frames_out
                on_frame(last)
    except (KeyboardInterrupt, Interrupted) as exc:
        stats.interrupted = getattr(exc, "exit_code", 130)
    finally:
        stop.set()
        cancel = getattr(frames, "cancel", None)  # a source that may wait on a stream (`VideoFile`)
        if cancel is not None and (stats.interrupted or stats.stopped or any(s.error for s in stages)):
            cancel()  # a stalled pipe's read ends, or the reader could not be joined
        try:
            _join(stages)  # before the pool goes: the reader may still be submitting
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        stats.wall_s = time.perf_counter() - t0
    if on_frame:
        on_frame(stats.frames_out)
    stats.source_error = getattr(frames, "error", None)
    return stats


def _show(display: Display, shown: queue.Queue, stats: RunStats, stop: threading.Event) -> None:
    try:
        img = shown.get(timeout=_POLL)
    except queue.Empty:
        return
    key = display.show(img)
    if key in (ord("q"), 27) or display.closed():
        stats.stopped = True
        stop.set()


def run_live(
    camera: Camera,
    engine: Engine,
    display: Display | None = None,
    video: FrameSink | None = None,
    view: LiveView | None = None,
    max_frames: int = 0,
    zoom: Zoom | None = None,
    snapshots: SnapshotSink | None = None,
    zoom_on: bool = True,
) -> RunStats:
    """Parse a live source: newest frame only, so latency never builds up.

    Threads: the camera's reader, an inference worker that always takes the newest frame,
    and the calling thread, which renders, shows and records, and takes the window's keys
    (`LiveView.KEYS`: q or Esc quits; s saves the picture shown, without the HUD, and the class
    map to `snapshots`; f turns flip test-time augmentation on or off where the weights allow
    it; z turns person zoom on or off). Mirroring flips what is shown only; the model sees the
    camera's own frame. `zoom`: as `run_file`'s, used while it is on (from the start with `zoom_on`).
    """
    view = view or LiveView()
    stats = RunStats()
    stop = threading.Event()
    results: queue.Queue = queue.Queue(1)
    meter = Meter()
    model_hw = [(0, 0)]
    zooming = [zoom if zoom_on else None]  # the zoom in use (z changes it), or None: the frame whole

    def mode() -> str:  # what the HUD names as running (f and z change it)
        return engine.mode + (" zoom" if zooming[0] else "")

    def act(key: int, shown: tuple[Frame, U8, U8] | None) -> bool:
        """Apply a key of the window (`shown`: the frame, its ids and the picture without the HUD,
        None while the camera is lost); True to quit."""
        action = view.press(key)
        if action == "flip":
            if engine.has_logits:
                engine.flip = not engine.flip
                log.info("flip test-time augmentation %s", "on" if engine.flip else "off")
            else:
                log.warning("flip needs weights with a 'logits' output: not available with these")
        elif action == "zoom":
            if zoom is None:
                log.warning("person zoom is not available here")
            else:
                if zooming[0] is None:
                    zoom.reset()  # the people it followed before may have gone
                zooming[0] = None if zooming[0] else zoom
                log.info("person zoom %s", "on" if zooming[0] else "off")
        elif action == "snapshot" and shown is not None:
            frame, ids, picture = shown
            if snapshots is None:
                log.warning("snapshots are off (no folder given)")
            else:
                try:
                    log.info("snapshot: %s", snapshots.save(picture, scale_ids(ids, *frame.image.shape[:2])))
                except OutputError as exc:  # a full disk ends no live session: say it, go on
                    log.warning("%s", exc)
        return action == "quit"

    def infer() -> None:
        try:
            while not stop.is_set():
                try:
                    frame = camera.read(timeout=_POLL)
                except StopIteration:
                    return
                if frame is None:
                    continue
                stats.frames_in += 1
                t = time.perf_counter()
                zoomer = zooming[0]
                ids = (zoomer or engine).parse(frame.image)
                span = (t, time.perf_counter())
                model_hw[0] = zoomer.last_input if zoomer else engine.model_shape(*frame.image.shape[:2])
                try:  # keep only the newest result for the display
                    results.get_nowait()
                    stats.dropped += 1
                except queue.Empty:
                    pass
                results.put_nowait((frame, ids, span))
        finally:
            _put(results, _END, stop)

    worker = _Stage("infer", infer, stop)
    t0 = time.perf_counter()
    t_pts0: float | None = None
    last: U8 | None = None  # the last frame shown, without HUD: redrawn while the camera is lost
    worker.thread.start()
    try:
        while not stop.is_set():
            try:
                item = results.get(timeout=_POLL)
            except queue.Empty:
                if display is not None and camera.lost and last is not None:
                    lost = hud(last.copy(), meter.hud(mode(), model_hw[0], "camera lost - reconnecting"))
                    if act(display.show(lost), None) or display.closed():
                        stats.stopped = True
                        break
                continue
            if item is _END:
                break
            frame, ids, span = item
            out = overlay(frame.image, ids, view.alpha)
            if view.mirror:
                out = np.ascontiguousarray(out[:, ::-1])
            legend(out, ids)
            last = out.copy() if display is not None else None
            now = time.perf_counter()
            meter.tick(now, (span[1] - span[0]) * 1000, (now - frame.t_capture) * 1000)
            if view.hud:
                hud(out, meter.hud(mode(), model_hw[0]))
            if video is not None:
                t_pts0 = frame.t_capture if t_pts0 is None else t_pts0
                video.write(out, round((frame.t_capture - t_pts0) * 1000))
            if display is not None:
                if act(display.show(out), (frame, ids, last)) or display.closed():
                    stats.stopped = True
                    break
            done = time.perf_counter()
            stats.latency_ms.append((done - frame.t_capture) * 1000)
            stats.model_spans.append(span)
            stats.frames_out += 1
            if max_frames and stats.frames_out >= max_frames:
                break
    except (KeyboardInterrupt, Interrupted) as exc:
        stats.interrupted = getattr(exc, "exit_code", 130)
    finally:
        stop.set()
        worker.thread.join()
        stats.wall_s = time.perf_counter() - t0
        stats.dropped += camera.dropped
        if zoom is not None:
            zoom.wait()  # a search still running: the run ends with none of its threads left
    if worker.error is not None and not isinstance(worker.error, (KeyboardInterrupt, Interrupted)):
        raise worker.error
    return stats
