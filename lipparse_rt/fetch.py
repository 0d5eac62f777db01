"""Inputs that are not files to open in place: standard input ('-'), a named pipe (a FIFO; a
shell's `<(...)`), an http(s) URL. `spooled` gives each as a temporary file, removed afterwards
(FFmpeg reads a video more than once; a pipe gives its bytes once), read as it is copied where
asked (`open_media`); and the names the commands show and write outputs under. No
model, no video decoding.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import InputError, LipParseError, OutputError


def as_url(path: Path) -> str | None:
    """The URL a missing path was given as ('https://x/a.mp4', which Path folds to 'https:/x/a.mp4')."""
    match = re.match(r"([a-z][a-z0-9+.-]+):/+(.*)", str(path))  # not a drive letter (c:/)
    return f"{match[1]}://{match[2]}" if match and not path.exists() else None


def web_url(path: Path) -> str | None:
    """The http(s) URL `path` was given as, which `spooled` downloads; None for anything else."""
    url = as_url(Path(path))
    return url if url and url.split(":", 1)[0].lower() in ("http", "https") else None


def given_as(path: Path) -> str:
    """An input as the user gave it, for messages: a URL with its '//' (which Path folds)."""
    return web_url(path) or str(path)


PIPE = "-"  # standard input, as a file name
DOWNLOAD_TIMEOUT_S = 15.0  # a server that sends nothing for this long has failed the download
PAGE_TYPES = ("text/html", "application/xhtml+xml")  # what a web page is sent as
PLAYLIST_START = b"#EXTM3U"  # an HLS playlist's first line, whatever type it is sent as


def copied_first(path: Path) -> bool:
    """Whether `spooled` copies `path` into a temporary file: a pipe, or an http(s) URL."""
    return is_pipe(path) or web_url(path) is not None


def stdin_is_a_terminal() -> bool:
    """Whether '-' would read what the user types, not a pipe (or there is no standard input)."""
    return sys.stdin is None or sys.stdin.isatty()


def web_page(url: str, timeout: float = 3.0) -> bool:
    """Whether `url` answers with a web page (a YouTube page, a camera's web interface); False
    where it does not answer."""
    try:
        with _request(url, timeout) as answer:
            return answer.headers.get_content_type() in PAGE_TYPES
    except (OSError, ValueError):
        return False


def _request(url: str, timeout: float):
    """`urllib`'s answer to a GET of `url` (raises as `urlopen` does)."""
    import urllib.request

    return urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "lipparse-rt"}), timeout=timeout)


def _a(what: str) -> str:
    """'a video', 'an image'."""
    return ("an " if what[0] in "aeiou" else "a ") + what


def is_pipe(path: Path) -> bool:
    """Whether `path` is a stream that can be read only once: '-' (standard input), a FIFO (a
    named pipe; /dev/fd/N from a shell's `<(...)`) or a socket."""
    if str(path) == PIPE:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def pipe_name(path: Path) -> str:
    """What an input is called in lines and output names: 'stdin' for '-', a URL's file name
    ('clip.mp4' of 'https://host/v/clip.mp4?x=1', else its host), else its file name."""
    if str(path) == PIPE:
        return "stdin"
    url = web_url(path)
    if url:
        from urllib.parse import unquote, urlparse

        parts = urlparse(url)
        return Path(unquote(parts.path)).name or parts.hostname or "download"
    return Path(path).name


def stem_of(path: Path) -> str:
    """The name outputs take from an input: its stem, 'stdin' for '-'."""
    return Path(pipe_name(path)).stem


def same_stems(paths: list[Path]) -> list[list[Path]]:
    """Groups of inputs whose outputs would have one name (`a.jpg` and `a.png`; `x/a.mp4` and
    `a.mkv`), in the order given."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(stem_of(path), []).append(path)
    return [g for g in groups.values() if len(g) > 1]


@contextmanager
def spooled(path: Path, on_bytes: Callable[[int], None] | None = None, what: str = "video",
            follow: bool = False) -> Iterator[Path]:
    """`path` itself; or, for a pipe (`is_pipe`) or an http(s) URL, its stream copied into a
    temporary file named after it (`pipe_name`), removed afterwards. FFmpeg reads a video more
    than once (its first frame, then each sound and subtitle track), and a pipe gives its bytes
    once.

    Without `follow`, the whole stream is copied first (an image is read whole). With it, the
    copy goes on in a thread once the first bytes are in, and the file is read as it grows
    (`open_media`): a live stream (`ffmpeg ... -f mpegts - | lipparse-rt video -`) is parsed as
    it comes, a download while it downloads, and a stream that must be read to its end first
    (an MP4 whose index comes last, as `yt-dlp -o -` sends it) still is. `on_bytes` is told the
    bytes copied so far (with `follow`, from the copy's thread). A failed copy (a read error, a
    full disk, a download cut off) is raised; with `follow`, once the stream has begun, told by
    `copy_error` for the caller to say after its run (what came before it was parsed)."""
    url = web_url(path)
    if url:
        with _downloaded(url, on_bytes, what, follow) as kept:
            yield kept
        return
    if not is_pipe(path):
        yield path
        return
    shown = str(path)
    stdin = shown == PIPE
    if stdin and stdin_is_a_terminal():
        raise InputError(f"cannot read {what} from '-' (standard input): it is a terminal; pipe {_a(what)} in, "
                         "or give a file")
    folder = Path(tempfile.mkdtemp(prefix="lipparse-pipe-"))
    try:
        try:
            # read in follow mode by a thread that may still be waiting on it at exit: unbuffered,
            # as sys.stdin's buffer would be locked then, and the interpreter could not exit
            src = (((follow and _raw_stdin()) or sys.stdin.buffer) if stdin
                   else open(path, "rb", buffering=0 if follow else -1))
        except OSError as exc:
            raise InputError(f"cannot read {what} '{shown}': {exc.strerror}") from exc
        with _kept(src, folder / pipe_name(path), shown, what, on_bytes, follow, close=not stdin,
                   nothing="the pipe gave nothing") as kept:
            yield kept
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _kept(src, target: Path, shown: str, what: str, on_bytes: Callable[[int], None] | None, follow: bool,
          close: bool, nothing: str, expected: int | None = None,
          upstream: Callable[[], LipParseError | None] | None = None) -> Iterator[Path]:
    """`src` copied into `target`: whole, then `target` given; or, with `follow`, by a `_Copy`
    whose file is given once its first bytes are in (its failure told by `copy_error`), stopped
    when the caller is done. `close`: `src` is closed when read. `nothing`: what an empty stream
    is called; `expected`: its size, where known ahead; `upstream`: the failure of what feeds
    `src`, if any (an HLS playlist's joining)."""
    copy = None
    try:
        if follow:
            copy = _Copy(src, target, shown, what, close=close, expected=expected, on_bytes=on_bytes,
                         upstream=upstream)
            total = copy.wait(1)
        else:
            try:
                total = _copy_into(src, target, shown, what, on_bytes, expected)
            finally:
                if close:
                    src.close()
        if not total:
            raise (copy.failure() if copy is not None else None) or InputError(f"cannot read {what} '{shown}': {nothing}")
        if copy is not None:
            _FOLLOWED[str(target)] = copy
        yield target
    finally:
        if copy is not None:
            _FOLLOWED.pop(str(target), None)
            copy.stop()  # a run that ended first (--end, Ctrl-C) needs no more of the stream


def _raw_stdin():
    """Standard input's descriptor as an unbuffered file (no lock), or None where it has none (a test's)."""
    try:
        return open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
    except (AttributeError, OSError, ValueError):
        return None


_FOLLOWED: dict[str, "_Copy"] = {}  # the temporary files `spooled(follow=True)` is still filling


FOLLOW_PROBE = {"probesize": "1000000", "analyzeduration": "1000000"}  # bytes, microseconds


def open_media(path: Path):
    """`av.open` of the file at `path` ('file:<path>': a colon in a name is not a protocol); or,
    for a pipe's copy still being made, through a reader that waits for its bytes, FFmpeg's
    look at the stream before its first frame cut from 5 s to 1 s (FOLLOW_PROBE), so that a
    live stream is parsed a second after it starts."""
    import av

    copy = _FOLLOWED.get(str(path))
    if copy is None or copy.done:
        return av.open(f"file:{path}")
    return av.open(_Following(copy), options=FOLLOW_PROBE)


def cancel_reads(path: Path) -> None:
    """A run on the copy at `path` was stopped (Ctrl-C, q, a failure): reads waiting for a
    stalled stream's next bytes (the run's reader, a sound track's) end, as at the stream's
    end, so that its threads can be joined. Nothing for a file."""
    copy = _FOLLOWED.get(str(path))
    if copy is not None:
        copy.cancel()


def copy_error(path: Path) -> LipParseError | None:
    """Why the copy at `path` (`spooled(follow=True)`) ended short (a download cut off, a full
    disk): for the caller to say once its run is over. None for a file, and for a whole copy."""
    copy = _FOLLOWED.get(str(path))
    return copy.failure() if copy is not None else None


def interruption(path: Path) -> BaseException | None:
    """Ctrl-C or SIGTERM that came while FFmpeg waited for the bytes of `path`, a pipe's or a
    download's copy (`spooled(follow=True)`): the caller raises it once FFmpeg has returned."""
    copy = _FOLLOWED.get(str(path))
    return copy.interruption if copy is not None else None


class _Copy:
    """A pipe's stream or a download copied into `target` by a thread of its own (`_copy_into`);
    readers wait for the bytes they need (`wait`)."""

    def __init__(self, src, target: Path, shown: str, what: str, close: bool, expected: int | None = None,
                 on_bytes: Callable[[int], None] | None = None,
                 upstream: Callable[[], LipParseError | None] | None = None) -> None:
        self.target = target
        self._on_bytes = on_bytes
        self._upstream = upstream
        self.expected = expected  # the stream's size where it is known ahead (a download's Content-Length)
        self.size = 0
        self.done = False
        self.error: LipParseError | None = None
        self.interruption: BaseException | None = None  # Ctrl-C or SIGTERM while FFmpeg waited (`_Following`)
        self.cancelled = False  # the run stopped: reads end here (`cancel_reads`)
        self._stopped = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(src, shown, what, close), name="pipe copy",
                                        daemon=True)  # a pipe that never ends cannot hold the exit up
        self._thread.start()

    def _run(self, src, shown: str, what: str, close: bool) -> None:
        try:
            _copy_into(src, self.target, shown, what, self._grew, self.expected)
        except LipParseError as exc:
            self.error = exc
        except _Stopped:
            pass
        finally:
            if close:
                src.close()
            with self._cond:
                self.done = True
                self._cond.notify_all()

    def _grew(self, size: int) -> None:
        if self._stopped:
            raise _Stopped
        with self._cond:
            self.size = size
            self._cond.notify_all()
        if self._on_bytes is not None:
            self._on_bytes(size)

    def failure(self) -> LipParseError | None:
        """Why the copy ended short, once it has ended: a read error, a full disk, a download cut
        off, or what fed it failing (`upstream`); None while it goes on, or where it ended whole."""
        if not self.done:
            return None
        return self.error or (self._upstream() if self._upstream is not None else None)

    def stop(self) -> None:
        """Copy no more (a download is not finished in the background); at the next bytes."""
        self._stopped = True

    def wait(self, size: int | None) -> int:
        """Wait until the copy holds `size` bytes (None: the whole stream), has ended or its
        readers were cancelled; return the bytes it holds."""
        with self._cond:
            while not self.done and not self.cancelled and (size is None or self.size < size):
                self._cond.wait()
            return self.size

    def cancel(self) -> None:
        """End every read, now and later, where it is (`cancel_reads`)."""
        with self._cond:
            self.cancelled = True
            self._cond.notify_all()


class _Stopped(Exception):
    """`_Copy.stop` was called."""


class _Following(io.RawIOBase):
    """The file a `_Copy` is filling, read as it grows: a read past its end waits for the next
    bytes, or for the end of the stream (then the end of the file is the end); its size is
    unknown until the stream has ended."""

    def __init__(self, copy: _Copy) -> None:
        super().__init__()
        self._copy = copy
        self._file = open(copy.target, "rb")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._copy.interruption is not None or self._copy.cancelled:
            return 0
        try:
            self._copy.wait(self._file.tell() + 1)
        except BaseException as exc:
            # Ctrl-C or SIGTERM while FFmpeg waits for the stream (an MP4 whose index comes last):
            # raised here, inside FFmpeg's call, it would be lost; kept for `interruption`, and
            # the stream ends here for FFmpeg
            self._copy.interruption = exc
            return 0
        return self._file.readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END and not self._copy.done:
            # FFmpeg asks for the size this way (avio_size, as a demuxer opens): a download's,
            # which the server says ahead (without it, an MP4's demuxer looks past its media for
            # more boxes, and waits for the whole file), else "unknown" (-1, the file not moved),
            # or a live stream would not start
            if self._copy.expected is None:
                return -1
            return self._file.seek(self._copy.expected + offset)
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


@contextmanager
def _downloaded(url: str, on_bytes: Callable[[int], None] | None, what: str, follow: bool = False) -> Iterator[Path]:
    """An http(s) URL's file, downloaded into a temporary folder under its own name (`pipe_name`),
    removed afterwards; with `follow`, given while it downloads (`spooled`). A web page (a
    YouTube page, a share link's) is said as such; an HLS playlist's segments are joined (as
    they come, with `follow`)."""
    import urllib.error

    folder = Path(tempfile.mkdtemp(prefix="lipparse-download-"))
    target = folder / pipe_name(Path(url))
    try:
        try:
            answer = _request(url, DOWNLOAD_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            raise InputError(f"cannot read {what} '{url}': the server answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InputError(f"cannot read {what} '{url}': cannot reach it ({reason})") from None
        try:
            if answer.headers.get_content_type() in PAGE_TYPES:
                raise InputError(f"cannot read {what} '{url}': it is a web page, not {_a(what)} (for a video site: "
                                 f"yt-dlp -o - URL | lipparse-rt {what} - ...)")
            playlist = answer.peek(len(PLAYLIST_START))[:len(PLAYLIST_START)] == PLAYLIST_START
        except BaseException:
            answer.close()
            raise
        if playlist:  # HLS: its segments fetched by FFmpeg and joined into one file
            answer.close()
            if follow:  # as an MPEG-TS stream
                with _followed_playlist(url, target.with_suffix(".ts"), what, on_bytes) as kept:
                    yield kept
                return
            target = target.with_suffix(".mkv")
            src, keep = _playlist(url, what)
            with src:
                if not _joined_segments(src, keep, f"file:{target}", url, what, target.parent, on_bytes):
                    raise InputError(f"cannot read {what} '{url}': the server sent nothing")
            yield target
            return
        length = answer.headers.get("Content-Length", "")
        with _kept(answer, target, url, what, on_bytes, follow, close=True, nothing="the server sent nothing",
                   expected=int(length) if length.isdigit() else None) as kept:
            yield kept
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _playlist(url: str, what: str, live: bool = False):
    """An HLS playlist opened by FFmpeg (`.../index.m3u8`, as many sites serve video), and the
    streams to keep of it (`_best_variant`). A live playlist (no end, so no duration: a camera's,
    a broadcast's) is refused unless `live` (followed, it is parsed as its segments come, until
    Ctrl-C); copied whole, it would never finish."""
    import av

    try:
        src = av.open(url, timeout=DOWNLOAD_TIMEOUT_S)
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"cannot read {what} '{url}': its HLS playlist could not be read "
                         f"({getattr(exc, 'strerror', None) or exc})") from None
    if not src.streams.video:
        src.close()
        raise InputError(f"cannot read {what} '{url}': its HLS playlist holds no video")
    if src.duration is None and not live:
        src.close()
        raise InputError(f"cannot read {what} '{url}': it is a live stream (an HLS playlist without an end): "
                         "parse it live with lipparse-rt webcam --camera URL")
    return src, _best_variant(src)


def _joined_segments(src, keep: list, out, url: str, what: str, room: Path,
                     on_bytes: Callable[[int], None] | None = None, format: str = "matroska") -> int:
    """The playlist's segments (`_playlist`) read by FFmpeg and copied, packet for packet, into
    `format` at `out` ('file:<path>', or a pipe's file object); the other qualities' segments
    are not fetched. Return the bytes copied; `room`: the folder the copy needs room in, for the
    error a full disk gives."""
    import av

    total = 0
    try:
        muxer = av.open(out, "w", format=format)
    except (av.FFmpegError, OSError) as exc:
        raise OutputError(f"cannot keep the {what} from '{url}' in '{room}': {exc}") from exc
    with muxer:
        to = {s.index: muxer.add_stream_from_template(s) for s in keep}
        packets = src.demux(keep)  # the others discarded: their segments are not fetched
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.FFmpegError, OSError) as exc:
                raise InputError(f"cannot read {what} '{url}': it broke off ({exc})") from None
            if packet.dts is None:  # the demuxer's flush
                continue
            packet.stream = to[packet.stream.index]
            try:
                muxer.mux(packet)
            except (av.FFmpegError, OSError) as exc:
                raise OutputError(f"cannot keep the {what} from '{url}' in '{room}' (it is read into a file "
                                  f"first): {exc}; set TMPDIR to a folder with room") from exc
            total += packet.size
            if on_bytes is not None:
                on_bytes(total)
    return total


@contextmanager
def _followed_playlist(url: str, target: Path, what: str, on_bytes: Callable[[int], None] | None) -> Iterator[Path]:
    """An HLS playlist's segments joined by a thread into a pipe as MPEG-TS (what HLS segments
    mostly are; Matroska cannot be written as a stream from them: its header wants the sound's
    configuration, which comes with the first packet), which `_kept` copies into `target` and
    gives to be read as it grows: its video parsed as it downloads. The joining's error (a
    segment that broke off) is the copy's (`copy_error`)."""
    src, keep = _playlist(url, what, live=True)
    r, w = os.pipe()
    failed: list[LipParseError] = []

    def join() -> None:
        try:
            with src, open(w, "wb") as stream:
                _joined_segments(src, keep, stream, url, what, target.parent, format="mpegts")
        except OutputError:
            pass  # the pipe's reader stopped (the run ended first): nothing more is wanted
        except LipParseError as exc:
            failed.append(exc)

    threading.Thread(target=join, name="hls join", daemon=True).start()
    with _kept(open(r, "rb", buffering=0), target, url, what, on_bytes, True, close=True,
               nothing="the server sent nothing", upstream=lambda: failed[0] if failed else None) as kept:
        yield kept


def _best_variant(src) -> list:
    """Of an HLS playlist's streams (every quality it offers), the largest picture and a sound
    track of the same quality (the demuxer tags each stream with its variant's bit rate), else
    the best sound track there is."""
    def rate(stream) -> int:
        return int(stream.metadata.get("variant_bitrate", 0) or 0)

    video = max(src.streams.video, key=lambda s: (s.codec_context.width * s.codec_context.height, rate(s)))
    audio = [s for s in src.streams.audio if rate(s) == rate(video)] or [src.streams.best("audio")]
    return [video] + [s for s in audio[:1] if s is not None]


def _copy_into(src, target: Path, shown: str, what: str, on_bytes: Callable[[int], None] | None,
               expected: int | None = None) -> int:
    """Copy the readable `src` (a pipe, a download) into `target` up to a MiB at a time, telling
    `on_bytes` the bytes so far; return them. A read that fails (a pipe's error, a connection
    dropped or timed out), or a stream that ends short of the `expected` bytes (a download whose
    connection closed early), is an InputError; a write that fails (a full disk), an OutputError."""
    import http.client

    total = 0
    try:
        dst = open(target, "wb")
    except OSError as exc:
        raise OutputError(f"cannot keep the {what} from '{shown}' in '{target.parent}': {exc.strerror}") from exc
    read = getattr(src, "read1", src.read)  # what has come, up to a MiB: a live stream's bytes as they come
    with dst:
        while True:
            try:
                chunk = read(1 << 20)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                raise InputError(f"cannot read {what} '{shown}': it broke off ({getattr(exc, 'strerror', None) or exc})") \
                    from None
            if not chunk:
                if expected is not None and total < expected:
                    raise InputError(f"cannot read {what} '{shown}': it broke off after {total:,} of its {expected:,} "
                                     "bytes")
                return total
            try:
                dst.write(chunk)
            except OSError as exc:
                raise OutputError(f"cannot keep the {what} from '{shown}' in '{target.parent}' (it is read into a "
                                  f"file first): {exc.strerror}; set TMPDIR to a folder with room") from exc
            total += len(chunk)
            if on_bytes is not None:
                dst.flush()  # readable by the time it is said
                on_bytes(total)
