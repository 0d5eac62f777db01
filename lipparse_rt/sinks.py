"""Frame sinks: VideoWriter (H.264 MP4, audio kept), MaskWriter (index PNGs), Window.

No model here. Sinks are context managers that take `write(...)` and leave a complete file
on `close()`.
"""

from __future__ import annotations

import html
import logging
import os
import re
import sys
import time
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from numpy.typing import NDArray

from .errors import DisplayError, OutputError
from .fetch import PIPE, is_pipe, open_media

log = logging.getLogger(__name__)

U8 = NDArray[np.uint8]

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
BIG_FRAME = 1920 * 1088  # pixels above which (anything past 1080p) the encoder is set up to save memory
OUT_TIME_BASE = Fraction(1, 90000)  # MPEG's clock: whole ticks for 24, 25, 30, 50, 60 and 29.97 FPS

# Audio codecs the MP4 muxer takes as they are; anything else is re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "opus", "alac", "flac", "ac3", "eac3"}
# AAC's own channel configurations, by channel count: what a source of unnamed channels (a
# Matroska file's "6 channels" of PCM) is encoded as.
AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}

# Subtitles: markup that an MP4 text sample would show as it is (SubRip's and WebVTT's <i>,
# <font ...>, <v Name>; ASS's {\\an8}); and the ASS header FFmpeg's mov_text encoder takes its
# default style from
SUBTITLE_MARKUP = re.compile(r"<[^>]*>|\{[^}]*\}")
ASS_HEADER = ("[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
              "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
              "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, "
              "MarginL, MarginR, MarginV, Encoding\n"
              "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
              "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n").encode()

# Names the MP4 VideoWriter writes may take: the ISO media family, which players recognise as such.
MP4_SUFFIXES = (".mp4", ".m4v", ".mov")


def encoder_threads(width: int, height: int, cores: int | None = None) -> int:
    """x264's thread count: 1 on up to 4 cores or above 1080p, else 0 (x264 chooses).

    On a few cores the pipeline's own threads already keep every core busy, and x264's frame
    threads cost ~20% more CPU per frame (640x480, superfast: 3.6 vs 3.0 ms); above 1080p each
    frame thread holds ~40 MB more.
    """
    cores = cores or os.cpu_count() or 1
    return 1 if cores <= 4 or width * height > BIG_FRAME else 0


def output_name(path: Path) -> str:
    """How an output is named in lines: 'standard output' for '-', else its path."""
    return "standard output" if str(path) == PIPE else str(path)


def check_output(path: Path, force: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse an output that is an input, exists (without `force`), sits in an unwritable folder,
    or is named for a container other than the MP4 that VideoWriter writes (`o.avi`, `o.mkv`).
    A stream ('-', a named pipe) takes the MP4 under any name; standard output not where it is
    a terminal."""
    path = Path(path)
    if str(path) == PIPE:
        check_stdout("video", "| ffplay -", "> o.mp4")
        return
    if is_pipe(path):  # a named pipe: a stream, not a file
        return
    if path.suffix.lower() not in MP4_SUFFIXES:
        raise OutputError(f"cannot write '{path}': the output is an H.264 MP4; name it "
                          + ", ".join(MP4_SUFFIXES[:-1]) + f" or {MP4_SUFFIXES[-1]}")
    for src in inputs:
        if src.exists() and path.exists() and path.resolve() == Path(src).resolve():
            raise OutputError(f"cannot write '{path}': it is the input; choose another --out")
    if path.is_file() and not force:
        raise OutputError(f"cannot write '{path}': it exists (use --force to overwrite)")
    check_writable(path)


def check_writable(path: Path) -> None:
    """Refuse an output file that is a folder, or whose folder cannot be made or written (made
    here where it is missing)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write '{path}': it is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write '{path}': '{parent}' is a file, not a folder")
    if not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(f"cannot create folder '{parent}': {exc.strerror}") from exc
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write '{path}': folder '{parent}' is not writable")


def check_stdout(what: str, pipe: str, redirect: str) -> None:
    """Refuse to send the binary `what` (a video, an image) to standard output where it is a terminal."""
    if os.isatty(1):
        raise OutputError(f"cannot write the {what} to standard output: it is a terminal (pipe it, as in "
                          f"'{pipe}', or redirect it, '{redirect}')")


@contextmanager
def stdout_kept() -> Iterator[int]:
    """Standard output kept for one output alone (`--out -`: a video, an image): yield a copy of
    its descriptor for the writer (`VideoWriter(fd=...)`, `write_png`), and point descriptor 1
    at standard error until the end, so that nothing else printed there (a summary line, any
    library's print, Python's or C's) lands in the stream."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    stdout, sys.stdout = sys.stdout, sys.stderr  # Python's prints, where sys.stdout is not descriptor 1
    try:
        yield fd
    finally:
        sys.stdout = stdout
        os.dup2(fd, 1)
        os.close(fd)


def aac_settings(rate: int | None, layout) -> tuple[int, str]:
    """The sample rate and channel layout to encode a source's audio to AAC at: the source's own
    where FFmpeg's AAC encoder takes them, else the nearest rate it takes (192 kHz studio audio
    -> 96 kHz) and the usual layout of as many channels, else stereo (a downmix). ValueError
    where it takes none of them (the caller writes the video without that track)."""
    import av

    rates = av.Codec("aac", "w").audio_rates
    rate = rate or 48000
    if rate not in rates:
        rate = min(rates, key=lambda r: (abs(r - rate), -r))
    channels = len(layout.channels) if layout is not None else 2
    for name in dict.fromkeys(n for n in (getattr(layout, "name", None), AAC_LAYOUTS.get(channels), "stereo") if n):
        ctx = av.CodecContext.create("aac", "w")
        ctx.sample_rate, ctx.format = rate, "fltp"
        try:
            ctx.layout = name
            ctx.open()
        except (av.FFmpegError, ValueError):
            continue
        return rate, name
    raise ValueError(f"FFmpeg's AAC encoder takes no layout for these {channels} channels, nor stereo")


class _TrackCopy:
    """One sound or subtitle track of a source file, muxed into an output container in step with
    the video: the packets that start before the video's time (`feed_until`). Timestamps that go
    back (recordings joined end to end, as `cat a.ts b.ts` joins them) continue after the last
    packet, as the video's do (`VideoWriter`). Subclasses mux each packet (`_mux`) and finish the
    track (`_finish`)."""

    def __init__(self, source: Path, out, kind: str, track: int) -> None:  # out: av.container.OutputContainer
        self._name = Path(source).name
        self._in = open_media(source)  # 'file:<path>', or a pipe's copy as it grows
        self._src = getattr(self._in.streams, kind)[track]
        self._out = out
        self._packets = self._in.demux(self._src)  # from the file's start: demuxing is cheap (~1 us a packet)
        self._pending = None
        self._done = False
        # source ticks added to every packet: where the output begins taken off (`begin_at`), and,
        # since the timestamps last went back, what makes them go on
        self._start: Fraction | None = None
        self._shift = 0
        self._last: tuple[int, int] | None = None  # (dts, end) of the last packet, shifted, in source ticks
        self._until = float("inf")  # seconds of the output where the track ends (`close`)

    def _keep_names(self, stream) -> None:
        """Which track is which, in a film's several languages: its language and title."""
        for key in ("language", "title"):
            if self._src.metadata.get(key):
                stream.metadata[key] = self._src.metadata[key]

    def begin_at(self, t: Fraction) -> None:
        """Begin the track at `t` seconds of the source, where the output's picture begins (`video
        --start`): what comes before left out, and `t` made the output's 0. Before any `feed_until`."""
        self._start = t
        self._shift = -round(t / self._src.time_base)

    def _mux(self, packet) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush what the track holds back (encoders, filters); say what was lost."""

    def feed_until(self, t: float) -> None:
        """Mux source packets that start before `t` seconds (of the output)."""
        while not self._done:
            if self._pending is None:
                self._pending = next(self._packets, None)
                if self._pending is None:
                    self._done = True
                    break
            pkt = self._pending
            if pkt.size and pkt.dts is not None:
                if self._last is not None and pkt.dts + self._shift < self._last[0]:  # the timestamps went back
                    self._shift = self._last[1] - pkt.dts
                self._last = (pkt.dts + self._shift, pkt.dts + self._shift + (pkt.duration or 0))
            if pkt.pts is not None and pkt.size and float((pkt.pts + self._shift) * pkt.time_base) > t:
                break
            self._pending = None
            if pkt.size:
                self._mux(pkt)

    def drop(self) -> None:
        """Close the source unread: the output is gone (its reader closed the stream)."""
        self._in.close()

    def close(self, until: float = float("inf")) -> None:
        """Mux the packets left that start before `until` seconds (of the output), and finish."""
        self._until = until
        try:
            self.feed_until(until)
            self._finish()
        finally:
            self._in.close()


class _AudioCopy(_TrackCopy):
    """One audio track. Audio the MP4 takes as it is is copied packet for packet (AAC with its
    configuration in each packet, ADTS, as MPEG-TS carries it, through FFmpeg's `aac_adtstoasc`);
    anything else is re-encoded to AAC at the rate and channel layout nearest the source's that
    AAC takes (`aac_settings`), from the source's first timestamp."""

    def __init__(self, source: Path, out, track: int = 0) -> None:  # out: av.container.OutputContainer
        from av.bitstream import BitStreamFilterContext

        super().__init__(source, out, "audio", track)
        ctx = self._src.codec_context
        codec = ctx.codec.canonical_name  # the format's name, not its decoder's ('mp3', not 'mp3float')
        self._copy = codec in MP4_AUDIO
        self._bsf = None
        adts = self._copy and codec == "aac" and not ctx.extradata  # its configuration in each packet (MPEG-TS)
        if adts:  # the first packet's header says it; the packet is kept to be muxed first
            self._pending = next((p for p in self._packets if p.size), None)
        config = _adts_config(bytes(self._pending) if self._pending is not None else b"") if adts else None
        if adts and config is None:
            self._copy = False  # no configuration to give the MP4: re-encoded
        try:
            if self._copy:
                self.stream = out.add_stream_from_template(self._src)
                if config is not None:
                    self.stream.codec_context.extradata = config
                    self._bsf = BitStreamFilterContext("aac_adtstoasc", self._src)
            else:
                rate, layout = aac_settings(ctx.sample_rate, ctx.layout)
                self.stream = out.add_stream("aac", rate=rate, layout=layout)
            self._keep_names(self.stream)
        except Exception:
            self._in.close()
            raise
        self._bad = 0  # audio packets that would not decode (damaged): skipped, said once at the end
        self._t: Fraction | None = None  # re-encoding: the next sample's time, in seconds

    def _mux(self, packet) -> None:
        if self._copy:
            for p in self._bsf.filter(packet) if self._bsf else (packet,):
                if self._shift:
                    p.pts = None if p.pts is None else p.pts + self._shift
                    p.dts = None if p.dts is None else p.dts + self._shift
                if self._start is not None and p.pts is not None and p.pts < 0:  # before the picture's start
                    continue
                p.stream = self.stream
                self._out.mux(p)
        else:
            import av

            try:
                frames = packet.decode()
            except av.FFmpegError:  # a damaged packet: its moment is silent, the rest plays
                self._bad += 1
                return
            for frame in frames:
                # timestamps counted on from the source's first, sample by sample: the source's
                # start kept, and no gap or overlap where its own stamps jitter or go back
                if self._t is None:
                    at = Fraction(frame.pts * frame.time_base) if frame.pts is not None else Fraction(0)
                    at += self._shift * self._src.time_base  # where the output begins taken off
                    if self._start is not None and at < 0:  # before it
                        continue
                    self._t = at
                frame.pts, frame.time_base = round(self._t * frame.sample_rate), Fraction(1, frame.sample_rate)
                self._t += Fraction(frame.samples, frame.sample_rate)
                for p in self.stream.encode(frame):
                    self._out.mux(p)

    def _finish(self) -> None:
        if self._bsf is not None:
            for p in self._bsf.filter(None):
                p.stream = self.stream
                self._out.mux(p)
        if not self._copy:
            for p in self.stream.encode(None):
                self._out.mux(p)
        if self._bad:
            log.warning("%d damaged audio packet(s) of '%s' could not be decoded: silent there", self._bad,
                        self._name)


class _SubtitleCopy(_TrackCopy):
    """One subtitle track, as the MP4's own text subtitles (mov_text, which players show):
    copied where it is mov_text already; other text subtitles (SubRip, ASS/SSA, WebVTT: a film's
    MKV) have each cue's text carried over, without its styling, and cues that overlap (two
    speakers at once) shown together (`CueTimeline`). Subtitles stored as pictures (Blu-ray PGS,
    DVD, DVB) the MP4 cannot hold: ValueError (the caller leaves the track out)."""

    def __init__(self, source: Path, out, track: int = 0) -> None:  # out: av.container.OutputContainer
        super().__init__(source, out, "subtitles", track)
        codec = self._src.codec_context.codec
        self._codec = codec.canonical_name
        self._cues = CueTimeline()
        self._held: tuple[bytes, int, int | None] | None = None  # an MP4's own cue, written at the next
        try:
            if not codec.text_sub:
                raise ValueError(f"{self._codec} subtitles are pictures, which an MP4 cannot hold")
            if self._codec == "mov_text":
                self.stream = out.add_stream_from_template(self._src)
            else:
                self.stream = out.add_stream("mov_text")
                self.stream.codec_context.subtitle_header = ASS_HEADER  # the MP4's default style comes from it
                self.stream.codec_context.time_base = self._src.time_base
            self._keep_names(self.stream)
        except Exception:
            self._in.close()
            raise

    def _mux(self, packet) -> None:
        start = packet.pts if packet.pts is not None else packet.dts
        if start is None:  # a cue with no time cannot be placed
            return
        start += self._shift
        if self._codec == "mov_text":  # one text at a time already, its styling kept
            duration = packet.duration
            if start < 0 and duration:  # shown from the video's --start on, what is left of it
                start, duration = 0, duration + start
            if bytes(packet)[:2] != b"\0\0" and start >= 0 and (duration is None or duration > 0):
                # no text: the muxer fills the time between cues; a cue is held until the next, so
                # that one running where the picture ends is cut there (`close`)
                self._release()
                self._held = (bytes(packet), start, duration)
            return
        text = cue_text(bytes(packet), self._codec)
        if text:
            # a cue without a duration is shown for 3 s
            end = start + (packet.duration or round(3 / self._src.time_base))
            for a, b, shown in self._cues.add(start, end, text):
                self._write(mov_text_sample(shown), a, b - a)

    def _finish(self) -> None:
        self._release()
        for a, b, shown in self._cues.flush():
            self._write(mov_text_sample(shown), a, b - a)

    def _release(self) -> None:
        if self._held is not None:
            self._write(*self._held)
            self._held = None

    def _write(self, data: bytes, start: int, duration: int | None) -> None:
        import av

        if duration is not None and self._until != float("inf"):  # a cue running where the picture ends: cut there
            end = round(Fraction(self._until) / self._src.time_base)
            if start >= end:
                return
            duration = min(duration, end - start)
        out = av.Packet(data)
        out.pts = out.dts = start
        out.duration, out.time_base, out.stream = duration, self._src.time_base, self.stream
        self._out.mux(out)


class CueTimeline:
    """Subtitle cues, which may overlap (two speakers at once; a cue still shown when the next
    starts), made one text at a time, as an MP4's text subtitles show them: each stretch of time
    shows every cue running then, one per line, in the order they came. `add` cues in order of
    their start; it and `flush` give the stretches that are over, as (start, end, text)."""

    def __init__(self) -> None:
        self._running: list[tuple[int, str]] = []  # (end, text), in the order they came
        self._t = 0  # where the next stretch starts

    def add(self, start: int, end: int, text: str) -> list[tuple[int, int, str]]:
        done = self._until(start)
        self._t = max(self._t, start)
        self._running.append((end, text))
        return done

    def flush(self) -> list[tuple[int, int, str]]:
        return self._until(None)

    def _until(self, t: int | None) -> list[tuple[int, int, str]]:
        """The stretches up to `t` (None: to the end of every cue)."""
        done = []
        while self._running:
            first_end = min(end for end, _ in self._running)
            stop = first_end if t is None else min(first_end, t)
            if stop > self._t:
                done.append((self._t, stop, "\n".join(text for _, text in self._running)))
                self._t = stop
            if t is not None and first_end > t:
                break
            self._running = [(end, text) for end, text in self._running if end > first_end]
        return done


def cue_text(payload: bytes, codec: str) -> str:
    """The text of one cue of a text subtitle track (FFmpeg's packet of `codec`: 'subrip', 'ass',
    'webvtt', ...), without markup (which an MP4's text sample would show as it is)."""
    text = payload.decode("utf-8", "replace")
    if codec == "ass":  # ReadOrder, Layer, Style, Name, MarginL, MarginR, MarginV, Effect, Text
        text = text.split(",", 8)[-1].replace("\\N", "\n").replace("\\n", "\n").replace("\\h", " ")
    text = SUBTITLE_MARKUP.sub("", text.replace("\r\n", "\n"))
    if codec == "webvtt":
        text = html.unescape(text)
    return text.strip("\n")


def mov_text_sample(text: str) -> bytes:
    """`text` as an MP4 text sample: its length in two bytes, then UTF-8."""
    data = text.encode("utf-8")[:0xFFFF]
    return len(data).to_bytes(2, "big") + data


def _adts_config(first: bytes) -> bytes | None:
    """The MP4's AudioSpecificConfig (2 bytes) for an AAC track whose packets carry ADTS headers
    (MPEG-TS, raw .aac), from its first packet's bytes; None where that packet has no ADTS header
    or its channels are described in-band (channel configuration 0)."""
    head = first[:4]
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xF0 != 0xF0:
        return None
    profile, rate_index = head[2] >> 6, (head[2] >> 2) & 0x0F
    channels = ((head[2] & 1) << 2) | (head[3] >> 6)
    if not channels or rate_index > 12:
        return None
    return (((profile + 1) << 11) | (rate_index << 7) | (channels << 3)).to_bytes(2, "big")


def check_image_outputs(inputs: list[Path], overlays: Path | None, masks: Path | None) -> None:
    """Refuse `image` outputs (`folder/<stem>.png`) that would replace one of the input images, or
    overlays and masks sent to one folder (each image's two PNGs would share a name); '-'
    (standard output) takes one image's PNG, where it is not a terminal."""
    to_stdout = [flag for flag, folder in (("--out", overlays), ("--masks", masks)) if str(folder) == PIPE]
    if len(to_stdout) == 2:
        raise OutputError("cannot write overlays and masks both to standard output: give one of them a folder")
    if to_stdout and len(inputs) != 1:
        raise OutputError(f"cannot write {len(inputs)} images to standard output (one PNG): give {to_stdout[0]} "
                          "a folder")
    if to_stdout:
        check_stdout("image", "| display -", "> o.png")
    if overlays is not None and masks is not None and Path(overlays).resolve() == Path(masks).resolve():
        raise OutputError(f"cannot write overlays and masks both to '{overlays}': each image's two PNGs "
                          "would have one name; give two folders")
    given = {Path(p).resolve() for p in inputs}
    for folder, flag in ((overlays, "--out"), (masks, "--masks")):
        if folder is None or str(folder) == PIPE:
            continue
        for src in inputs:
            target = Path(folder) / f"{Path(src).stem}.png"
            if target.resolve() in given:
                raise OutputError(f"cannot write '{target}': it is an input image; choose another {flag}")


class VideoWriter:
    """H.264 (libx264, yuv420p) in a fragmented MP4 that browsers play; the sound and subtitle
    tracks of `tracks_from` kept.

    Fragmented ('frag_keyframe+empty_moov'): what was written before a crash or `kill -9`
    still plays, up to the last keyframe (one every 2 s). The header waits for the first
    fragment ('delay_moov') so that it can hold each track's start: a video that starts after
    its sound (a clip cut from a longer recording) keeps that offset, where each track would
    otherwise start at 0 and the picture run ahead of the sound. Every audio track is kept, and
    every subtitle track the MP4 can hold (`_SubtitleCopy`).

    Args:
        time_base: the source's time base; with it, `write(..., pts)` keeps the source's
            timestamps (variable frame rates survive). Without it frames are spaced 1/fps.
            The output's own time base is 1/90000 s.
        preset: x264 speed preset. 'superfast' by default: on two cores it is what lets the
            whole pipe keep up with the model (`lipparse-rt bench pipeline`); 'veryfast' makes
            files about half the size for ~6% less end-to-end FPS.
        metadata: the source's own tags (`VideoFile.metadata`): when and where it was shot
            (`creation_time`, `location`), its title; a phone's gallery sorts and maps by them.
        start: the source's first frames were left out (`video --start`): the first frame
            written makes the output's 0, its time taken off every timestamp, the picture's and
            the kept tracks', and what comes before it in the tracks left out. False: the
            source's timestamps kept as they are.
        fd: write to this file descriptor, not to `path` (standard output's copy, from
            `stdout_kept`; `path` then only names it, '-').
        live: a fragment each frame's time, sent at once, for a player reading the stream as it
            comes (`webcam --out -`, `video ... --out -`); else a fragment per keyframe (every
            2 s), 0.4% smaller.
    """

    def __init__(self, path: Path, fps: Fraction, width: int, height: int,
                 time_base: Fraction | None = None, tracks_from: Path | None = None,
                 crf: int = 22, preset: str = "superfast", metadata: dict[str, str] | None = None,
                 start: bool = False, fd: int | None = None, live: bool = False) -> None:
        import av

        self.path = Path(path)
        self.name = output_name(self.path)
        said = self.name if str(self.path) == PIPE else f"'{self.name}'"  # in messages
        self.frames = 0
        self._file = fd is None and not is_pipe(self.path)  # a file, removed where no frame was written
        self._refitted = False  # a frame of another size than the first has come (and was fitted in)
        self._w, self._h = width - width % 2, height - height % 2
        # live: a fragment at each frame (cut after half a frame's time, as timestamps jitter), sent
        # at once; FFmpeg's own fragment per frame ('frag_every_frame') lost a third of a clip's sound
        half_frame_us = str(round(0.5e6 / fps))
        fragments = ({"movflags": "empty_moov+default_base_moof+delay_moov", "frag_duration": half_frame_us,
                      "flush_packets": "1"} if live else
                     {"movflags": "frag_keyframe+empty_moov+default_base_moof+delay_moov"})
        try:
            # a descriptor through a Python file (PyAV's own I/O), not FFmpeg's 'pipe:N': on Windows
            # FFmpeg's C runtime has its own descriptor table
            target = os.fdopen(fd, "wb", buffering=0, closefd=False) if fd is not None else f"file:{self.path}"
            self._out = av.open(target, "w", format="mp4", options=fragments)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {said}: {exc}") from exc
        self._said = said
        self._broken = False  # the program reading the stream has closed it
        self._out.metadata.update(metadata or {})  # the MP4 keeps those it has a place for
        try:
            self._stream = self._out.add_stream("libx264", rate=fps)
            self._stream.width, self._stream.height = self._w, self._h
            self._stream.pix_fmt = "yuv420p"
            # No B-frames: a fragmented MP4 has no edit list to hide their start delay, which would
            # shift video against audio; it also keeps encoding latency at zero frames.
            # The frames are BT.601, limited range (see `write`): say so in the stream, or players
            # assume BT.709 for HD and shift the colours.
            params = "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m:range=tv"
            if self._w * self._h > BIG_FRAME:
                # Above 1080p x264 holds ~40 MB per frame it keeps (picture and half-pel planes):
                # full-pel motion search drops the half-pel planes (`lipparse-rt bench memory`).
                params += ":subme=0"
            self._stream.codec_context.thread_count = encoder_threads(self._w, self._h)
            self._stream.options = {"crf": str(crf), "preset": preset, "g": str(max(1, round(2 * fps))), "bf": "0",
                                    "x264-params": params}
            self._src_tb = Fraction(time_base) if time_base else None
            self._tb = OUT_TIME_BASE
            self._stream.codec_context.time_base = self._tb
            self._fps = Fraction(fps)
            self._t0: Fraction | None = None
            self._shift = Fraction(0)  # seconds added to the source's timestamps since they last went back
            self._begin = start  # the first frame's time is yet to be taken off (`start`)
            self._tracks: list[_TrackCopy] = []
            audio, subtitles = _track_counts(tracks_from) if tracks_from else (0, 0)
            for track in range(audio):
                try:
                    self._tracks.append(_AudioCopy(tracks_from, self._out, track))
                except (av.FFmpegError, ValueError) as exc:  # a codec this FFmpeg cannot decode or re-encode
                    log.warning("the audio of '%s' cannot be kept (%s): the video is written without it",
                                Path(tracks_from).name, exc)
            for track in range(subtitles):
                try:
                    self._tracks.append(_SubtitleCopy(tracks_from, self._out, track))
                except (av.FFmpegError, ValueError, AttributeError) as exc:  # pictures; a PyAV without subtitle_header
                    log.warning("subtitle track %d of '%s' cannot be kept (%s): the video is written without it",
                                track + 1, Path(tracks_from).name, exc)
        except Exception:
            self._out.close()
            raise
        self._last_pts: int | None = None
        self._sound_until_picture = False  # `stop_sound_with_picture`

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is not None:  # a failure or an interruption on the way out
            self.stop_sound_with_picture()
        self.close()

    def stop_sound_with_picture(self) -> None:
        """The run stopped before the end of the video (Ctrl-C, q, a failure): the sound (and
        the subtitles) are written up to the last frame written, not to the end of the input's."""
        self._sound_until_picture = True

    def _out_pts(self, pts: int | None) -> int:
        """Source timestamp -> output timestamp (1/90000 s).

        A timestamp within one source tick of the frame-rate grid is put exactly on it (a 30 FPS
        file stored in milliseconds stays 30 FPS); any other is kept as it is (variable rates).
        Where the timestamps go back or repeat (recordings joined end to end, as `cat a.ts b.ts`
        joins them), this frame and every later one move on to follow the last frame, as the
        audio does (`_AudioCopy`): the spacing of the frames kept, and picture and sound in step.
        """
        step = max(1, round(1 / (self._fps * self._tb)))
        if pts is None or self._src_tb is None:
            out = 0 if self._last_pts is None else self._last_pts + step
        else:
            if self._begin:  # the first frame written is the output's 0, and the kept tracks' (`start`)
                self._begin = False
                self._shift = -pts * self._src_tb
                for track in self._tracks:
                    track.begin_at(pts * self._src_tb)
            t = pts * self._src_tb + self._shift
            if self._t0 is None:
                self._t0 = t
            grid = self._t0 + round((t - self._t0) * self._fps) / self._fps
            if abs(t - grid) <= self._src_tb:
                t = grid
            out = round(t / self._tb)
        if self._last_pts is not None and out <= self._last_pts:
            self._shift += (self._last_pts + step - out) * self._tb
            out = self._last_pts + step
        return out

    def write(self, bgr: U8, pts: int | None = None) -> None:
        """Encode one frame; `pts` in the time base given at construction."""
        import av

        pts = self._out_pts(pts)
        self._last_pts = pts
        if not (self._h <= bgr.shape[0] <= self._h + 1 and self._w <= bgr.shape[1] <= self._w + 1):
            # the source changed its frame size mid-stream (joined recordings, a stream that
            # switched quality): the whole frame, fitted into the output's, not a corner of it
            if not self._refitted:
                log.warning("the video changes size at frame %d (%dx%d, not %dx%d): frames of another size are "
                            "scaled to fit %s", self.frames, bgr.shape[1], bgr.shape[0], self._w, self._h,
                            Path(self.name).name)
            self._refitted = True
            bgr = fit_into(bgr, self._w, self._h)
        # OpenCV's BGR -> I420 (BT.601, limited range, as swscale's default): cheaper than
        # PyAV's swscale conversion, and it rounds at least as well.
        yuv = cv2.cvtColor(np.ascontiguousarray(bgr[: self._h, : self._w]), cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = self._tb
        try:
            for track in self._tracks:
                track.feed_until(float(pts * self._tb))
            for packet in self._stream.encode(frame):
                self._out.mux(packet)
        except BrokenPipeError as exc:  # `| ffplay -` closed, `| head -c` had enough
            self._broken = True
            raise OutputError(f"cannot write {self._said}: the program reading it closed it "
                              f"(after {self.frames} frame{'s' * (self.frames != 1)})") from exc
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {self._said}: {exc}") from exc
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (it plays whatever was written; no frames, no file)."""
        if self._out is None:
            return
        out, self._out = self._out, None
        try:
            if not self._broken:
                for packet in self._stream.encode(None):
                    out.mux(packet)
                end = (self._last_pts or 0) * self._tb + 1 / self._fps  # the last frame's end
                for track in self._tracks:
                    track.close(float(end) if self._sound_until_picture else float("inf"))
        except BrokenPipeError:
            self._broken = True  # the reader went away at the end: what it read was whole fragments
        finally:
            if self._broken:
                for track in self._tracks:
                    track.drop()
            try:
                out.close()
            except BrokenPipeError:
                pass
            if self.frames == 0 and self._file:  # nothing playable: leave no empty file behind
                self.path.unlink(missing_ok=True)


def fit_into(bgr: U8, w: int, h: int) -> U8:
    """`bgr` scaled to fit inside w x h, aspect kept, centred on black."""
    fh, fw = bgr.shape[:2]
    s = min(w / fw, h / fh)
    nw, nh = min(w, max(1, round(fw * s))), min(h, max(1, round(fh * s)))
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y: y + nh, x: x + nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return out


def _track_counts(path: Path) -> tuple[int, int]:
    """How many sound and subtitle tracks the file at `path` holds."""
    with open_media(path) as c:
        return len(c.streams.audio), len(c.streams.subtitles)


FRAME_MASK = re.compile(r"\d{6,}\.png")  # `video --masks`: one per frame, named by its index


def clear_frame_masks(folder: Path, force: bool) -> None:
    """Refuse a masks folder holding an earlier `video` run's frame masks (a shorter run would
    leave the old run's last ones beside its own), unless `force`: then they are removed. Files
    of other names are left alone."""
    folder = Path(folder)
    old = [p for p in folder.iterdir() if FRAME_MASK.fullmatch(p.name)] if folder.is_dir() else []
    if old and not force:
        raise OutputError(f"cannot write masks to '{folder}': it holds {len(old)} frame masks of an earlier run "
                          "(use --force to replace them)")
    for path in old:
        path.unlink()


def output_folder(folder: Path, what: str) -> Path:
    """Make `folder` where missing and check it can take `what` (OutputError if it is a file,
    cannot be made or is not writable); return it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write {what} to '{folder}': it is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder '{folder}': {exc.strerror}") from exc
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {what} to '{folder}': not writable")
    return folder


def write_png(fd: int, img: U8, what: str) -> None:
    """`img` (BGR, or LIP ids) as a PNG to the descriptor `fd` (standard output's, `stdout_kept`)."""
    ok, data = cv2.imencode(".png", img)
    if not ok:
        raise OutputError(f"cannot encode the {what} as a PNG")
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except BrokenPipeError:
        raise OutputError(f"cannot write the {what} to standard output: the program reading it closed it") from None
    except OSError as exc:
        raise OutputError(f"cannot write the {what} to standard output: {exc.strerror}") from exc


class MaskWriter:
    """Writes class maps as single-channel 8-bit PNGs of LIP ids into a folder."""

    def __init__(self, folder: Path, what: str = "masks") -> None:
        self.folder = output_folder(folder, what)

    def __enter__(self) -> "MaskWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def write(self, ids: U8, name: str) -> Path:
        """Write `ids` as `folder/name.png`; return the path."""
        path = self.folder / f"{name}.png"
        if not cv2.imwrite(str(path), ids):
            raise OutputError(f"cannot write mask '{path}'")
        return path


class Snapshots:
    """Saves what the live window shows when asked (the webcam's s key): the picture, and its
    class map as `MaskWriter` writes one, named `lipparse-<date>-<time>-<n>.png` and
    `...-ids.png`. The folder is made and checked by `check`, or at the first `save`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._masks: MaskWriter | None = None
        self._count = 0

    def check(self) -> MaskWriter:
        """Make the folder where missing and check it can be written (OutputError if not); return
        the writer of the class maps."""
        if self._masks is None:
            self._masks = MaskWriter(self.folder, "snapshots")
        return self._masks

    def save(self, picture: U8, ids: U8) -> Path:
        """Write `picture` (BGR) and `ids` (LIP ids); return the picture's path."""
        masks = self.check()
        while True:
            self._count += 1
            stem = f"lipparse-{time.strftime('%Y%m%d-%H%M%S')}-{self._count}"
            path = self.folder / f"{stem}.png"
            if not path.exists():
                break
        if not cv2.imwrite(str(path), picture):
            raise OutputError(f"cannot write snapshot '{path}'")
        masks.write(ids, f"{stem}-ids")
        return path


def has_display() -> bool:
    """True where a window can open (an X or Wayland display on Linux; always elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Window:
    """A window (SDL 2, through pygame-ce); `show` draws a frame and returns the key pressed (or -1).

    Not OpenCV's own window: opencv-python's Qt build left it black in 4 of 20 starts on a
    virtual screen (Qt never took in the window's map event, so it never painted), against 0 of
    20 for SDL (`python tools/window_check.py`), and Qt aborts the whole process where no display
    can be opened. The window opens at the first frame's size (shrunk to fit the screen), can be
    resized, and keeps the frame's aspect ratio.
    """

    def __init__(self, title: str = "lipparse-rt") -> None:
        if not has_display():
            raise DisplayError("cannot open a window: no display (set DISPLAY, or use --out / --no-show)")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame's banner is not ours to print
        os.environ.setdefault("SDL_VIDEO_X11_WMCLASS", "lipparse-rt")  # else X11 names the class after argv[0]
        import pygame

        self._pg = pygame
        try:
            pygame.display.init()
        except pygame.error as exc:
            raise DisplayError(f"cannot open a window: {exc}") from exc
        self.title = title
        self._screen = None
        self._closed = False
        self._lost: list[bool] = []  # set by Xlib when the display goes away (`_watch_x11`)
        self._x11_handlers = None

    def __enter__(self) -> "Window":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, w: int, h: int) -> None:
        pg = self._pg
        sizes = pg.display.get_desktop_sizes() or [(w, h)]
        fit = min(1.0, 0.95 * sizes[0][0] / w, 0.9 * sizes[0][1] / h)
        self._screen = pg.display.set_mode((max(1, round(w * fit)), max(1, round(h * fit))), pg.RESIZABLE)
        pg.display.set_caption(self.title)
        self._x11_handlers = _watch_x11(pg, self._lost)

    def show(self, bgr: U8) -> int:
        """Show a frame; return the key code of the first key pressed since the last call (-1 for none)."""
        if self._closed:
            return -1
        pg = self._pg
        h, w = bgr.shape[:2]
        if self._screen is None:
            self._open(w, h)
        sw, sh = self._screen.get_size()
        scale = min(sw / w, sh / h)
        fw, fh = max(1, round(w * scale)), max(1, round(h * scale))
        img = bgr if (fw, fh) == (w, h) else cv2.resize(bgr, (fw, fh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        img = np.ascontiguousarray(img)
        if (fw, fh) != (sw, sh):
            self._screen.fill((0, 0, 0))
        self._screen.blit(pg.image.frombuffer(img.data, (fw, fh), "BGR"), ((sw - fw) // 2, (sh - fh) // 2))
        pg.display.flip()
        key = -1
        for event in pg.event.get():
            if event.type == pg.QUIT:
                self._closed = True
            elif event.type == pg.KEYDOWN and key < 0:
                key = event.key  # ASCII for letters and Esc (27), larger for other keys
                key = {pg.K_KP_PLUS: ord("+"), pg.K_KP_MINUS: ord("-")}.get(key, key)  # the keypad's as the others
        if self._lost:  # the display went away during this frame: the window is gone, and SDL is not called again
            self._closed = True
            import atexit

            atexit.unregister(pg.quit)  # SDL's clean-up spins for ever on a display that is gone
            return -1
        return key

    @property
    def lost(self) -> bool:
        """True when the display went away under the window (an SSH session's X forwarding dropped,
        the X server stopped): `closed` is then true too."""
        return bool(self._lost)

    def closed(self) -> bool:
        """True when the user closed the window, or the display went away (`lost`)."""
        return self._closed

    def close(self) -> None:
        """Close the window."""
        if not self._lost:
            self._pg.display.quit()


def _watch_x11(pg, lost: list) -> tuple | None:
    """Where SDL draws through X11: Xlib's answer to a display that goes away (a dropped SSH
    session's X forwarding, an X server stopped) becomes `lost.append(True)`, where it would print
    `X connection to :0 broken` and call exit(1), leaving the output unfinished. Needs libX11 1.7's
    XSetIOErrorExitHandler; elsewhere (Wayland, macOS, Windows, an older libX11) nothing is set.
    Returns the handlers; they also stay referenced here for the process's life, as Xlib keeps
    its I/O error handler after the window has gone."""
    import ctypes

    try:
        if pg.display.get_driver() != "x11":
            return None
        lib = ctypes.CDLL("libX11.so.6")
        set_exit = lib.XSetIOErrorExitHandler
        capsule = pg.display.get_wm_info()["display"]
        pointer = ctypes.pythonapi.PyCapsule_GetPointer
        pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        display = pointer(capsule, b"display")
    except (OSError, AttributeError, KeyError, ValueError, TypeError, pg.error) as exc:
        log.debug("display loss not watched: %s", exc)
        return None
    on_error = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(lambda _: 0)  # Xlib's own message: we say one line
    on_exit = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(lambda _d, _u: lost.append(True))
    set_exit.argtypes = [ctypes.c_void_p, type(on_exit), ctypes.c_void_p]
    lib.XSetIOErrorHandler(on_error)
    set_exit(display, on_exit, None)
    _X11_HANDLERS[:] = [on_error, on_exit]
    return on_error, on_exit


_X11_HANDLERS: list = []  # the handlers Xlib was last given (`_watch_x11`): never freed under it
