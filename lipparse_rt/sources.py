"""Frame sources: Camera (newest frame only, a reader thread), VideoFile (every frame), Images.

No model here. Sources are context managers and yield `Frame`s of HxWx3 uint8 BGR.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from . import devices
from .devices import cameras_here, metadata_node
from .errors import CameraError, InputError
from .fetch import (PIPE, as_url, cancel_reads, copied_first, given_as, is_pipe, open_media, same_stems, spooled,
                    stdin_is_a_terminal, web_page, web_url)
from .hdr import HLG, PQ, ToSdr

log = logging.getLogger(__name__)

U8 = NDArray[np.uint8]
HEIF_EXTS = (".heic", ".heif")  # iPhone photos: read through pillow-heif (the 'heic' extra)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".avif", *HEIF_EXTS)
# what a folder's videos are named (a file given by name is read by its content, whatever its name),
# and the names that get the hint to use `video` when given to `image`
VIDEO_EXTS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".wmv", ".asf", ".flv", ".f4v", ".mpg", ".mpeg",
              ".m2v", ".vob", ".ts", ".mts", ".m2ts", ".3gp", ".3g2", ".ogv", ".mxf", ".dv", ".y4m", ".h264",
              ".264", ".h265", ".265", ".hevc")


@dataclass(frozen=True)
class Frame:
    """One frame at a seam: never written after hand-off."""

    index: int
    t_capture: float  # perf_counter() when grabbed
    image: U8  # HxWx3 BGR
    pts: int | None = None  # presentation timestamp in the source's time base, if known


def _check_file(path: Path, what: str) -> None:
    if str(path) == PIPE:  # `video` reads a pipe through `spooled`
        raise InputError(f"cannot read {what} from a pipe ('-'): give a file")
    if not path.exists():
        url = as_url(path)
        if url:  # not http(s), which `spooled` downloads: a live stream's (rtsp://, rtmp://...)
            raise InputError(f"cannot read {what} '{url}': it is a URL of a kind this does not download"
                             + ("; `webcam --camera URL` parses a stream live" if what == "video" else ""))
        raise InputError(f"cannot read {what} '{path}': no such file")
    if path.is_dir():
        raise InputError(f"cannot read {what} '{path}': it is a directory")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {what} '{path}': permission denied")


def clock(seconds: float) -> str:
    """'1:30', '1:02:03.5', '12.25 s' for `--start` and its messages."""
    if seconds < 60:
        return f"{seconds:g} s"
    whole, frac = divmod(seconds, 1)
    h, rest = divmod(int(whole), 3600)
    text = f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
    return text + (f"{frac:.3f}".rstrip("0")[1:] if frac else "")


def parse_clock(text: str) -> float:
    """Seconds from '90', '1:30', '1:02:03.5' (ValueError otherwise)."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or any(not p or not re.fullmatch(r"\d+(\.\d*)?", p) for p in parts):
        raise ValueError(text)
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + float(p)
    return seconds


def mp4_without_index(path: Path) -> bool:
    """Whether `path` is an MP4/MOV whose top-level boxes hold media ('mdat') but no index ('moov',
    nor the 'moof' fragments that carry one in pieces): what a recording cut off before its end
    leaves, since a camera writes the index last."""
    seen = set()
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        at = 0
        while at + 8 <= size and len(seen) < 64:
            f.seek(at)
            head = f.read(16)
            length, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if length == 1 and len(head) == 16:  # a 64-bit size follows
                length = int.from_bytes(head[8:16], "big")
            elif length == 0:  # to the end of the file
                length = size - at
            if length < 8 or not kind.isalpha():
                break
            seen.add(kind)
            at += length
    return b"ftyp" in seen and b"mdat" in seen and not seen & {b"moov", b"moof"}


class VideoFile:
    """Every frame of a video file, in order, decoded by PyAV (FFmpeg); nothing is dropped."""

    def __init__(self, path: Path, shown: str | None = None, start: float = 0.0, end: float | None = None) -> None:
        import av

        self.path = Path(path)
        self.shown = shown or str(path)  # the name errors give: a pipe's, where `path` holds its stream
        self.start = max(0.0, float(start))  # seconds after the first frame where reading begins
        self.end = end  # seconds after the first frame where reading stops (None: the end of the file)
        self.cut = False  # reading stopped at `end`, before the end of the file
        _check_file(self.path, "video")
        try:
            self._open()
        except (av.FFmpegError, UnicodeDecodeError) as exc:
            if mp4_without_index(self.path):
                raise InputError(f"cannot read video '{self.shown}': an MP4 without its index (no 'moov'): a "
                                 "recording cut off before it was finished (a phone or camera that lost power "
                                 "or space); it needs repair first, e.g. untrunc with a good file from the same "
                                 "camera") from exc
            raise InputError(f"cannot read video '{self.shown}': not a video file") from exc
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"cannot read video '{self.shown}': it has no video stream")
        if all(s.disposition & av.stream.Disposition.attached_pic for s in self._container.streams.video):
            self._container.close()  # a song's or a podcast's cover: no video to parse
            raise InputError(f"cannot read video '{self.shown}': it has no video stream, only a cover picture")
        rate = self._stream.average_rate or self._stream.guessed_rate
        if not rate:
            self._container.close()
            raise InputError(f"cannot read video '{self.shown}': no frame rate")
        self.fps: Fraction = Fraction(rate)
        self.time_base: Fraction = Fraction(self._stream.time_base or Fraction(1, 90000))
        self.rotation, self.interlaced, self._transfer = self._first_frame()  # rotation: degrees counterclockwise
        w, h = self._stream.codec_context.width, self._stream.codec_context.height
        self.stored = (w, h)  # the decoder's frame size
        self.pixel_aspect = pixel_aspect(self._stream)  # width / height of one stored pixel
        # Non-square pixels (DVD, broadcast, HDV: 720x480 shown 16:9, 1440x1080 shown as 1920x1080)
        # are resampled to square ones, as players show them: the model sees people in their
        # true proportions and the output (square pixels) plays at the input's shape.
        if self.pixel_aspect != 1:
            w, h = square_size(w, h, self.pixel_aspect)
        self.width, self.height = (h, w) if self.rotation % 180 else (w, h)  # as displayed
        if self._stream.duration:
            seconds = float(self._stream.duration * self.time_base)
        else:
            seconds = (self._container.duration or 0) / 1_000_000
        shown = round(seconds * float(self.fps))  # the frames its duration holds
        self.declared_frames: int = self._stream.frames or 0  # from the header, 0 if unknown
        if self.declared_frames and self._stream.duration:
            # An edit list that trims the video (an editor's or a phone's trim, kept without
            # re-encoding) shows fewer frames than the track holds; FFmpeg shows only those.
            self.declared_frames = min(self.declared_frames, max(shown, 1))
        self.expected_frames: int = self.declared_frames or shown  # best guess, for progress bars
        skipped = round(self.start * float(self.fps))  # the frames before --start
        self.declared_frames = max(0, self.declared_frames - skipped) if self.declared_frames else 0
        self.expected_frames = max(0, self.expected_frames - skipped)
        if end is not None:  # the frames from --start to --end
            self.expected_frames = min(self.expected_frames, round((end - self.start) * float(self.fps)))
        # where reading begins, in the source's seconds (0: at its own start, its timestamps kept)
        self._start_time = float(self._first_pts * self.time_base) + self.start if self.start else 0.0
        self.has_audio = bool(self._container.streams.audio)
        self.has_subtitles = bool(self._container.streams.subtitles)
        # what the file says of itself (when and where it was shot, its title), for the output;
        # not the container's own technical tags
        self.metadata = {k: v for k, v in self._container.metadata.items() if k.lower() not in TECHNICAL_TAGS}
        apple = self.metadata.get("com.apple.quicktime.location.ISO6709")  # an iPhone's, which the MP4 writes
        if apple and "location" not in self.metadata:  # only under the standard name
            self.metadata["location"] = apple
        self.error: str | None = None  # set when decoding stopped early on damaged data

    def _open(self) -> None:
        """Open the file and its main video stream, at its start."""
        # 'file:': a name with a colon ('take:1.mp4') is a file, not a protocol FFmpeg would look for;
        # or a pipe's copy, read as it grows (`fetch.spooled`)
        self._container = open_media(self.path)
        if not self._container.streams.video:
            return
        # the main picture, as players choose it (FFmpeg's best stream): not a cover image, nor a
        # small extra track that happens to come first
        self._stream = self._container.streams.best("video") or self._container.streams.video[0]
        ctx = self._stream.codec_context
        if ctx.width * ctx.height <= 1920 * 1080:
            # Frame threads: ~10% faster decoding up to 1080p; above it they hold many more
            # frames (+65% decoder memory at 4K) and were slower than FFmpeg's default there.
            self._stream.thread_type = "AUTO"

    @property
    def hdr(self) -> str | None:
        """'PQ' or 'HLG' for HDR video, made SDR at decoding as an SDR screen should show it
        (hdr.py); None for SDR."""
        return {PQ: "PQ", HLG: "HLG"}.get(self._transfer)

    def describe(self) -> str:
        """The size as shown, and how the stored frames are made so ('854x480 (stored 720x480,
        pixel aspect 32:27; interlaced: deinterlaced)')."""
        notes = ([f"stored {self.stored[0]}x{self.stored[1]}, pixel aspect {self.pixel_aspect.numerator}:"
                  f"{self.pixel_aspect.denominator}"] if self.pixel_aspect != 1 else [])
        notes += ["interlaced: deinterlaced"] if self.interlaced else []
        notes += [f"HDR ({self.hdr}): made SDR"] if self.hdr else []
        return f"{self.width}x{self.height}" + (f" ({'; '.join(notes)})" if notes else "")

    def _first_frame(self) -> tuple[int, bool, int]:
        """The display rotation (degrees counterclockwise) of the first frame; whether the video
        is interlaced (two fields of different instants, woven line by line: DVD, broadcast, 1080i):
        its first frame says so, or the stream's field order does (a film's first frames may be
        progressive in an interlaced stream); and its transfer characteristic (FFmpeg's number:
        16 PQ, 18 HLG), the first frame's or else the stream's."""
        import av

        angle, interlaced = 0, self._stream.codec_context.field_order in FIELD_ORDERS
        transfer = self._stream.codec_context.color_trc
        self._first_pts = self._stream.start_time or 0  # the first frame's timestamp, where it has one
        self._timed = False  # whether frames have timestamps (a raw H.264 stream's have none)
        try:
            for frame in self._container.decode(self._stream):
                self._timed = frame.pts is not None
                self._first_pts = frame.pts if self._timed else self._first_pts
                angle, interlaced = round(getattr(frame, "rotation", 0) or 0), interlaced or bool(frame.interlaced_frame)
                transfer = frame.color_trc if frame.color_trc not in (None, 2) else transfer  # 2: unspecified
                break
        except av.FFmpegError as exc:  # not even a first frame: nothing of it can be parsed
            context = self._stream.codec_context  # the codec's own name ('av1'), not its decoder's ('libdav1d')
            codec = getattr(context.codec, "canonical_name", None) or context.name or "unknown codec"
            self._container.close()
            raise InputError(f"cannot read video '{self.shown}': its picture ({codec}) cannot be decoded "
                             f"({exc.strerror or exc})") from exc
        # Back to the start by opening the file again, not by seeking: a raw H.264/HEVC stream (a
        # Raspberry Pi's, a DVR's) cannot seek, and a still image read as a video seeks "fine" and
        # then gives no frame.
        self._container.close()
        self._open()
        return angle % 360, interlaced, int(transfer or 2)

    def __enter__(self) -> "VideoFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the file."""
        self._container.close()

    def cancel(self) -> None:
        """The run was stopped: a read waiting for a pipe's or a download's next bytes ends
        (`fetch.cancel_reads`), so that the thread reading can be joined."""
        cancel_reads(self.path)

    def _from_start(self) -> Iterator:
        """`_decoded` from `_start_time`: the demuxer sought to the keyframe before it (decoding
        from the file's start to an hour in would take minutes), the frames before it dropped.
        Where seeking gives no frame (a raw H.264 stream cannot seek; a still image read as a
        video seeks "fine" and then gives nothing), the file is read again from its start."""
        import av

        edge = self._start_time - 0.5 / float(self.fps)  # a frame within half a frame of the start is kept
        if not self._timed:  # no timestamps to seek by: the frames counted from the start
            first = float(self._first_pts * self.time_base)
            yield from (vf for n, vf in enumerate(self._decoded()) if first + n / float(self.fps) >= edge)
            return
        def kept(vf) -> bool:
            return vf.pts is None or vf.pts * self.time_base >= edge

        try:
            self._container.seek(round(self._start_time / self.time_base), stream=self._stream, backward=True)
        except av.FFmpegError:
            pass  # read from the start
        decoded = 0
        for vf in self._decoded():
            decoded += 1
            if kept(vf):
                yield vf
        if not decoded:  # sought "fine", and nothing came
            self._container.close()
            self._open()
            yield from filter(kept, self._decoded())

    def _decoded(self) -> Iterator:
        """The stream's frames (PyAV's), in order; interlaced ones made progressive (`Deinterlace`),
        as players show them. A decoding error is raised after the frames held back are given."""
        import av

        order = self._stream.codec_context.field_order  # the stream's word over each frame's flag
        parity = "tff" if order in TOP_FIRST else "bff" if order in BOTTOM_FIRST else "auto"
        deinterlace = Deinterlace(self.time_base, parity=parity) if self.interlaced else None
        failure = None
        try:
            for packet in self._container.demux(self._stream):
                for vf in packet.decode():
                    yield from deinterlace.push(vf) if deinterlace else (vf,)
        except av.FFmpegError as exc:
            failure = exc
        if deinterlace:
            yield from deinterlace.flush()
        if failure is not None:
            raise failure

    def __iter__(self) -> Iterator[Frame]:
        import av

        index = 0
        sdr = ToSdr(self._transfer) if self.hdr else None
        first = self._first_pts * self.time_base
        edge = None if self.end is None else self.end - 0.5 / float(self.fps)  # the frame nearest --end not kept
        try:
            for vf in self._from_start() if self.start else self._decoded():
                if edge is not None:
                    at = (vf.pts * self.time_base - first) if self._timed and vf.pts is not None else \
                        self.start + index / float(self.fps)  # no timestamps: counted
                    if at >= edge:
                        self.cut = True
                        break
                # one swscale thread: its automatic threads (PyAV >= 17) cost ~50% more CPU
                # per 640x480 frame, CPU that the pipeline's other stages need
                img = sdr.bgr(vf) if sdr else vf.to_ndarray(format="bgr24", threads=1)
                if self.pixel_aspect != 1:  # each frame's own size: a stream may change it
                    img = square_pixels(img, square_size(img.shape[1], img.shape[0], self.pixel_aspect))
                if self.rotation:  # portrait phone videos: show them upright
                    img = np.ascontiguousarray(np.rot90(img, self.rotation // 90))
                yield Frame(index, time.perf_counter(), img, vf.pts)
                index += 1
        except av.FFmpegError as exc:
            self.error = f"decoding stopped after frame {index}: {exc}"
            log.warning("video '%s': %s", self.path, self.error)
        if index == 0 and self.error is None:
            if self.start:
                raise InputError(f"cannot read video '{self.shown}': it has no frame {clock(self.start)} after its "
                                 "start (--start)")
            raise InputError(f"cannot read video '{self.shown}': it has no frames")


# Container tags that describe the file's format, not the recording: not carried to the output
# ("timecode" would make the MP4 muxer add a timecode track beside the picture)
TECHNICAL_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "handler_name", "vendor_id", "timecode"}

# FFmpeg's AVFieldOrder for interlaced video, by the field shown first: TT and BT (2, 5) the top
# one, BB and TB (3, 4) the bottom one (0 unknown, 1 progressive)
TOP_FIRST, BOTTOM_FIRST = (2, 5), (3, 4)
FIELD_ORDERS = TOP_FIRST + BOTTOM_FIRST


class Deinterlace:
    """FFmpeg's bwdif deinterlacer: one progressive frame out per frame in, timestamps kept, only
    the frames flagged interlaced changed (each field's missing lines interpolated from it and
    its neighbours in time). It holds a frame back, as it looks at the next: `flush` gives the
    rest. A change of frame size or format mid-stream starts a new filter."""

    ARGS = "mode=send_frame:parity={}:deint={}"

    def __init__(self, time_base: Fraction, only_flagged: bool = True, parity: str = "auto") -> None:
        """`parity`: which field is shown first, 'tff' (top), 'bff' (bottom) or 'auto' (each frame's
        flag, which streams without picture-timing data leave at bottom-first)."""
        self._tb = time_base
        self._args = self.ARGS.format(parity, "interlaced" if only_flagged else "all")
        self._graph = None
        self._shape: tuple | None = None

    def _build(self, frame) -> None:
        import av

        graph = av.filter.Graph()
        graph.threads = 1  # the pipeline's own threads keep the cores busy
        src = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format, time_base=self._tb)
        bwdif, sink = graph.add("bwdif", self._args), graph.add("buffersink")
        src.link_to(bwdif)
        bwdif.link_to(sink)
        graph.configure()
        self._graph, self._shape = graph, (frame.width, frame.height, frame.format.name)

    def _drain(self) -> list:
        import av

        out = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return out
            if frame.pts is not None and frame.time_base and frame.time_base != self._tb:
                # bwdif counts in half the input's time base (its field rate): back to the stream's
                frame.pts, frame.time_base = round(frame.pts * frame.time_base / self._tb), self._tb
            out.append(frame)

    def push(self, frame) -> list:
        """Give one decoded frame; return the frames ready (none for the first)."""
        ready = []
        if (frame.width, frame.height, frame.format.name) != self._shape:
            ready = self.flush()
            self._build(frame)
        self._graph.push(frame)
        return ready + self._drain()

    def flush(self) -> list:
        """The frames held back, at the end of the stream."""
        if self._graph is None:
            return []
        self._graph.push(None)
        ready, self._graph, self._shape = self._drain(), None, None
        return ready


MAX_PIXEL_ASPECT = 4  # a pixel aspect ratio beyond 1:4..4:1 is taken for a broken header and ignored


def pixel_aspect(stream) -> Fraction:
    """The sample (pixel) aspect ratio of a PyAV video stream: the container's, else the codec's;
    1 where neither says or the value is implausible."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar and 1 / MAX_PIXEL_ASPECT <= sar <= MAX_PIXEL_ASPECT:
            return Fraction(sar)
    return Fraction(1)


def even(x: float) -> int:
    """`x` rounded to the nearest even whole number, at least 2 (what H.264's 4:2:0 frames take)."""
    return max(2, 2 * round(x / 2))


def square_size(w: int, h: int, aspect: Fraction) -> tuple[int, int]:
    """The (width, height) of a w x h frame of pixels `aspect` wide (width / height) in square
    pixels: wide pixels widen the frame, narrow ones heighten it, so no stored pixel is lost
    (720x480 at 32:27 -> 854x480; at 8:9 -> 720x540)."""
    return (even(w * aspect), h) if aspect > 1 else (w, even(h / aspect))


def square_pixels(img: U8, size: tuple[int, int]) -> U8:
    """A frame of non-square pixels resampled to `size` (width, height) of square ones: area
    averaged where it shrinks, bilinear where it grows."""
    grow = size[0] * size[1] > img.shape[0] * img.shape[1]
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR if grow else cv2.INTER_AREA)


class FileCapture:
    """A local video file as a camera: decoded by `VideoFile`, so that it is seen as `video` sees
    it (upright, square pixels, deinterlaced, HDR made SDR), behind the few
    `cv2.VideoCapture` calls that `Camera` makes."""

    def __init__(self, path: str) -> None:
        self._src = VideoFile(Path(path))
        self._frames = iter(self._src)

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, U8 | None]:
        frame = next(self._frames, None)
        return (True, frame.image) if frame is not None else (False, None)

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: float(self._src.fps), cv2.CAP_PROP_FRAME_COUNT: float(self._src.declared_frames),
                cv2.CAP_PROP_FRAME_WIDTH: float(self._src.width), cv2.CAP_PROP_FRAME_HEIGHT: float(self._src.height)}.get(prop, 0.0)

    def set(self, prop: int, value: float) -> bool:
        return False  # a file plays at its own size

    def release(self) -> None:
        self._src.close()


# A USB 2 camera sends raw YUYV at 30 FPS only up to about 640x480 (1280x720 would need 55 MB/s):
# larger sizes are asked in its MJPEG modes, where it has them
RAW_LARGEST = 640 * 480
PIPE_PROBE = "probesize;32|analyzeduration;0"  # a live stream piped in is opened on its first frames
STREAM_TIMEOUT_S = 5.0  # a network camera that sends nothing for this long is lost


def open_capture(spec: str) -> cv2.VideoCapture | FileCapture:
    """Open an OpenCV capture from an index ('0'), a device path or a URL; a local video file
    opens as a `FileCapture`."""
    import cv2.utils.logging as cvlog

    if Path(spec).is_file():
        return FileCapture(spec)
    if is_pipe(Path(spec)):  # read once, as it comes, by FFmpeg ('pipe:0': standard input)
        # FFmpeg's probing of a live stream held its first frames back, then gave them late, at once:
        # a raw H.264 stream of 160x120 at 30 FPS (`rpicam-vid -o -`) gave its first frame after
        # 1.83 s, 0.49 s so, the sending program's own start-up (MPEG-TS 0.89 -> 0.22 s, FLV 3.17 ->
        # 0.35 s). Read at each opening; a value the user set is kept.
        quick = "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ
        if quick:
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = PIPE_PROBE
        try:
            cap = cv2.VideoCapture("pipe:0" if spec == PIPE else spec, cv2.CAP_FFMPEG)
        finally:
            if quick:
                del os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"]
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot open camera '{spec}': the pipe gave no video stream")
        return cap
    target: int | str = int(spec) if spec.isdigit() else spec
    if isinstance(target, int) and sys.platform.startswith("linux") and not (devices.DEV / f"video{target}").exists():
        raise CameraError(f"cannot open camera {target}: /dev/video{target} does not exist ({cameras_here()})")
    level = cvlog.getLogLevel()
    cvlog.setLogLevel(cvlog.LOG_LEVEL_SILENT)  # OpenCV's own multi-line warnings; we say one line
    # and its FFmpeg's ('[tcp @ 0x...] Connection to tcp://... failed', each retry of a lost
    # stream): read once, at OpenCV's first FFmpeg capture; a value the user set is kept
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        if isinstance(target, str) and "://" in target:
            # A stream that stops sending (a phone's camera app asleep, a network gone) is lost after
            # STREAM_TIMEOUT_S and reconnected, not waited on for OpenCV's 30 s
            ms = round(STREAM_TIMEOUT_S * 1000)
            cap = cv2.VideoCapture(target, cv2.CAP_ANY, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 2 * ms,
                                                         cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        else:
            cap = cv2.VideoCapture(target)
    finally:
        # OpenCV's warnings of a read that timed out, each a line: the HUD says the camera is lost
        cvlog.setLogLevel(min(level, cvlog.LOG_LEVEL_ERROR))
    if not cap.isOpened():
        cap.release()
        if "://" in spec:
            raise CameraError(f"cannot open stream '{spec}': nothing answers there, or it is not a video stream")
        node = metadata_node(target)
        if node is not None:  # a UVC camera's second node: `--camera 1` for the USB camera beside a laptop's
            raise CameraError(f"cannot open camera '{spec}': /dev/video{node.index} gives no picture (it is the "
                              f"metadata node of {repr(node.name) if node.name else 'a camera'}; {cameras_here()})")
        raise CameraError(f"cannot open camera '{spec}': the device is busy, absent or not a camera")
    return cap


class Camera:
    """A live source read by its own thread that keeps only the newest frame.

    Stale frames are overwritten and counted in `dropped`, so latency never builds up. A video
    file given as the camera (or one served over HTTP) is played at its own frame rate and ends
    at its last frame. A camera whose reads fail is reopened with back-off for `reconnect_s`
    seconds, then given up.

    Args:
        spec: camera index, device path, stream URL or video file.
        opener: makes the capture (tests pass a fake).
        finite: a failed read ends the source (default: for a recording, a file here or a URL
            with a frame count).
        size: the frame size (width, height) to ask a camera for, at every (re)opening; the
            camera picks its nearest mode (`width`, `height`: what it gives). A file, and a
            stream or video over the network, come at their own size.
    """

    def __init__(self, spec: str, reconnect_s: float = 5.0,
                 opener: Callable[[str], cv2.VideoCapture] = open_capture, finite: bool | None = None,
                 size: tuple[int, int] | None = None) -> None:
        self.spec = spec
        self.is_file = Path(spec).is_file()
        self.network = "://" in spec  # a stream or a video served over the network: it sends its own size
        # a live stream piped in ('-', a named pipe: `rpicam-vid -t 0 --inline -o - | ...`): its own
        # size and rate; it cannot be reopened, so its end is the end
        self.pipe = not self.is_file and is_pipe(Path(spec))
        if not (self.is_file or self.pipe or spec.isdigit() or self.network or spec.startswith("/dev/")):
            raise CameraError(f"cannot open camera '{spec}': no such device, stream or file")
        if spec == PIPE and stdin_is_a_terminal():
            raise CameraError("cannot open camera '-' (standard input): it is a terminal; pipe a video stream in")
        self._opener = opener
        self._reconnect_s = reconnect_s
        self._size = None if self.is_file or self.network or self.pipe else size
        try:
            self._cap = self._open()
        except CameraError:  # asked at the first opening only, not at each reconnection
            if web_url(Path(spec)) and web_page(spec):  # a YouTube or Twitch page, a camera's own web interface
                raise CameraError(f"cannot open stream '{spec}': it is a web page, not a video stream (pipe the "
                                  "stream in instead: yt-dlp -o - URL | lipparse-rt webcam --camera -)") from None
            raise
        # A recording (a file, here or served over HTTP: it has a frame count; a live stream has
        # none) plays at its own frame rate and ends at its last frame, not reopened as a lost camera.
        self.recording = self.is_file or (self.network and self._cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0)
        self.finite = (self.recording or self.pipe) if finite is None else finite  # a failed read: the end, not a loss
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 240 else 30.0
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))  # as the capture reports it (0: unknown)
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._slot: Frame | None = None
        self._count = 0  # frames grabbed
        self._consumed = 0  # frames handed out
        self.dropped = 0
        self.ended = False
        self.lost = False  # reads failing, reconnecting
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def __enter__(self) -> "Camera":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> cv2.VideoCapture:
        cap = self._opener(self.spec)
        if self._size is not None:
            if self._size[0] * self._size[1] > RAW_LARGEST:  # its compressed modes, before the size within them
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
        return cap

    def close(self) -> None:
        """Stop the reader thread; it releases the capture. A read blocked on a stream that sends
        nothing is not waited for past a second: the thread releases the capture when the read
        returns (releasing it under a read in progress is undefined: it crashed the process in a test)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=1)

    @property
    def grabbed(self) -> int:
        """Frames read from the device so far."""
        with self._cond:
            return self._count

    def _reconnect(self) -> bool:
        self.lost = True
        deadline = time.perf_counter() + self._reconnect_s
        delay = 0.1
        while not self._stop.is_set() and time.perf_counter() < deadline:
            self._stop.wait(delay)
            delay = min(delay * 2, 1.0)
            self._cap.release()
            try:
                self._cap = self._open()
            except CameraError:
                continue
            ok, img = self._cap.read()
            if ok and img is not None:
                self.lost = False
                log.info("camera '%s' is back", self.spec)
                self._publish(img)
                return True
        return False

    def _publish(self, img: U8) -> None:
        with self._cond:
            self._slot = Frame(self._count, time.perf_counter(), img)
            self._count += 1
            self._cond.notify_all()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            while not self._stop.is_set():
                if self.recording:  # play a file at its own rate
                    due = t0 + self._count / self.fps
                    self._stop.wait(max(0.0, due - time.perf_counter()))
                ok, img = self._cap.read()
                if ok and img is not None:
                    self._publish(img)
                elif self.finite:
                    break
                elif not self._reconnect():
                    self.error = f"camera '{self.spec}' was lost and did not come back within {self._reconnect_s:.0f} s"
                    break
        except Exception as exc:  # keep it for the consumer; the thread must end cleanly
            self.error = f"camera '{self.spec}' failed: {exc}"
        finally:
            self._cap.release()  # here, by the only thread that reads it
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def read(self, timeout: float = 0.1) -> Frame | None:
        """Return a frame newer than the last one returned, or None after `timeout` s.

        Raises StopIteration when the source has ended and every frame was seen.
        """
        return self._next(timeout, take=True)

    def peek(self, timeout: float = 0.1) -> Frame | None:
        """The frame `read` would return, left for it (the recording's size is read off the
        first frame, which is then recorded too); None, StopIteration as `read`."""
        return self._next(timeout, take=False)

    def _next(self, timeout: float, take: bool) -> Frame | None:
        with self._cond:
            if self._count == self._consumed and not self.ended:
                self._cond.wait(timeout)
            if self._count > self._consumed and self._slot is not None:
                frame = self._slot
                if take:
                    self.dropped += self._count - self._consumed - 1
                    self._consumed = self._count
                return frame
            if self.ended:
                if self.error:
                    raise CameraError(self.error)
                raise StopIteration
            return None


class Images:
    """Every image of the files, folders (sorted) and glob patterns given, as (path, BGR).

    What a shell passes for `photos/*.jpg` (many files) and what it passes through unexpanded
    (a quoted `'photos/*.jpg'`, or a shell that does not expand) both work. An image given twice
    is read once. An unreadable image raises InputError, unless `on_unreadable` is given: then
    it is handed the error and the image is skipped (the other images are still parsed).
    """

    def __init__(self, paths: Path | str | Sequence[Path | str],
                 on_unreadable: Callable[[InputError], None] | None = None) -> None:
        given = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        self.on_unreadable = on_unreadable
        self.files: list[Path] = []
        seen: set[Path] = set()
        for path in given:
            for file in [path] if copied_first(path) else listing(path, IMAGE_EXTS, "images"):
                real = file.resolve()
                if real not in seen:
                    seen.add(real)
                    self.files.append(file)

    def __enter__(self) -> "Images":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[tuple[Path, U8]]:
        for path in self.files:
            try:
                with spooled(path, what="image") as real:  # a pipe's or a URL's bytes, kept in a file
                    img = read_image_any(real, shown=given_as(path))
            except InputError as exc:
                if self.on_unreadable is None:
                    raise
                self.on_unreadable(exc)
                continue
            yield path, img

    def same_names(self) -> list[list[Path]]:
        """Groups of images sharing a stem (`a.jpg`, `a.png`): their outputs would have one name."""
        return same_stems(self.files)


def listing(path: Path, exts: Sequence[str], what: str) -> list[Path]:
    """The files `path` names: itself; a folder's files named with one of `exts` (sorted, hidden
    ones left out: a Mac's copies leave '._photo.jpg', resource forks, beside each file); or, for
    a pattern the shell passed through unexpanded ('photos/*.jpg'; '**' goes into subfolders at
    any depth), the files matching it that are named so. `what` ('images', 'videos') words the
    errors: nothing there, nothing matching, a folder of folders."""
    def named(p: Path) -> bool:
        return p.suffix.lower() in exts and p.is_file()

    url = as_url(path)  # http(s) ones are downloaded (`spooled`) and do not come here
    if url:
        raise InputError(f"cannot read {what} '{url}': it is a URL of a kind this does not download")
    if not path.exists() and glob.has_magic(str(path)):
        matched = [p for p in map(Path, glob.glob(str(path), recursive=True)) if p.is_file()]
        files = sorted(p for p in matched if named(p))
        if not files:
            raise InputError(f"cannot read {what} '{path}': no {what[:-1]} matches it" + _other_kind(matched, what, path))
        return files
    if not path.exists():
        raise InputError(f"cannot read {what} '{path}': no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if named(p) and not p.name.startswith("."))
        if not files:
            folders = sum(1 for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            hint = (f" (it holds {folders} folder{'s' if folders > 1 else ''}: give them, or a pattern such as "
                    f"'{path / '**' / ('*' + exts[0])}')") if folders else ""
            hint = hint or _other_kind([p for p in path.iterdir() if not p.name.startswith(".")], what, path)
            raise InputError(f"cannot read {what} '{path}': the folder has no {what}" + hint)
        return files
    return [path]


def _other_kind(files: Sequence[Path], what: str, given: Path) -> str:
    """' (it holds 10 images: lipparse-rt image seq parses them)': where a folder or a pattern
    given to `video` names images (a frame sequence), or one given to `image` videos."""
    other, command = ("images", "image") if what == "videos" else ("videos", "video")
    exts = IMAGE_EXTS if other == "images" else VIDEO_EXTS
    n = sum(1 for p in files if p.suffix.lower() in exts and p.is_file())
    if not n:
        return ""
    verb = "holds" if given.is_dir() else "matches"
    return f" (it {verb} {n} {other if n > 1 else other[:-1]}: lipparse-rt {command} '{given}' parses {'them' if n > 1 else 'it'})"


def video_files(paths: Sequence[Path]) -> list[Path]:
    """The videos the paths name: files as given (read by content, whatever their name), a
    folder's videos (by name: VIDEO_EXTS), and patterns; each file once, in the order given."""
    files: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        wildcard = not path.exists() and not web_url(path) and glob.has_magic(str(path)) and bool(
            glob.glob(str(path), recursive=True) or re.search(r"[*?]", str(path)))  # a URL's '?' is its query
        if path.is_file() or not (path.is_dir() or wildcard):
            found = [path]  # the file itself ('clip [take 2].mp4' too): a missing one is VideoFile's to report
        else:
            found = listing(path, VIDEO_EXTS, "videos")
        for file in found:
            real = file.resolve()
            if real not in seen:
                seen.add(real)
                files.append(file)
    return files



def read_image_any(path: Path, shown: str | None = None) -> U8:
    """Read any common image as HxWx3 uint8 BGR (grey, 16-bit and alpha images converted).

    Upright as a photo viewer shows it: a phone's portrait JPEG is stored sideways with an EXIF
    orientation, which OpenCV applies unless asked for the file "unchanged".
    """
    _check_file(Path(path), "image")
    data = np.fromfile(str(path), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR) if data.size else None
    if img is None and Path(path).suffix.lower() in HEIF_EXTS:
        img = _read_heif(Path(path))
    if img is None:
        video = Path(path).suffix.lower() in VIDEO_EXTS
        raise InputError(f"cannot read image '{shown or path}': " + (
            "it is a video (parse it with lipparse-rt video)" if video else "not an image file"))
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img)


def heif_reader() -> str | None:
    """What reads HEIC photos here ('pillow-heif 1.9.0'), or None where nothing does."""
    try:
        import pillow_heif
    except ImportError:
        return None
    return f"pillow-heif {pillow_heif.__version__}"


def _read_heif(path: Path) -> U8 | None:
    """A HEIC/HEIF photo (an iPhone's default) as BGR, upright (libheif applies the file's own
    rotation and mirroring), 8 bits; None if it is not one. OpenCV reads no HEIF."""
    try:
        import pillow_heif
    except ImportError:
        raise InputError(f"cannot read image '{path}': HEIC photos need pillow-heif "
                         "(pip install pillow-heif, or this package's 'heic' extra)") from None
    try:
        heif = pillow_heif.open_heif(str(path), convert_hdr_to_8bit=True, bgr_mode=True)
        img = np.asarray(heif)
    except (ValueError, RuntimeError, OSError):
        return None
    return np.ascontiguousarray(img[..., :3])  # an alpha channel dropped
