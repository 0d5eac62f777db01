"""Inputs that are not files to open in place: standard input ('-'), a named pipe (a FIFO; a
shell's `<(...)`), an http(s) URL. `spooled` gives each as a temporary file, removed afterwards
(FFmpeg reads a video more than once; a pipe gives its bytes once); and the names the commands
show and write outputs under. No model, no video decoding.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import InputError, OutputError


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
def spooled(path: Path, on_bytes: Callable[[int], None] | None = None, what: str = "video") -> Iterator[Path]:
    """`path` itself; or, for a pipe (`is_pipe`), its whole stream copied into a temporary file
    named after it (`pipe_name`), removed afterwards. FFmpeg reads a video more than once (its
    first frame, then each sound and subtitle track), and a pipe gives its bytes once; nor can
    the MP4 a phone or `yt-dlp -o -` sends be read before its index, which comes last.
    `on_bytes` is told the bytes copied so far."""
    url = web_url(path)
    if url:
        with _downloaded(url, on_bytes, what) as kept:
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
    target = folder / pipe_name(path)
    try:
        try:
            src = sys.stdin.buffer if stdin else open(path, "rb")
        except OSError as exc:
            raise InputError(f"cannot read {what} '{shown}': {exc.strerror}") from exc
        try:
            total = _copy_into(src, target, shown, what, on_bytes)
        finally:
            if not stdin:
                src.close()
        if not total:
            raise InputError(f"cannot read {what} '{shown}': the pipe gave nothing")
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _downloaded(url: str, on_bytes: Callable[[int], None] | None, what: str) -> Iterator[Path]:
    """An http(s) URL's file, downloaded into a temporary folder under its own name (`pipe_name`),
    removed afterwards. A web page (a YouTube page, a share link's) is said as such."""
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
        with answer:
            if answer.headers.get_content_type() in PAGE_TYPES:
                raise InputError(f"cannot read {what} '{url}': it is a web page, not {_a(what)} (for a video site: "
                                 f"yt-dlp -o - URL | lipparse-rt {what} - ...)")
            playlist = answer.peek(len(PLAYLIST_START))[:len(PLAYLIST_START)] == PLAYLIST_START
            if not playlist:
                total = _copy_into(answer, target, url, what, on_bytes)
        if playlist:  # HLS: its segments fetched by FFmpeg and joined into one file
            target = target.with_suffix(".mkv")
            total = _joined_segments(url, target, what, on_bytes)
        if not total:
            raise InputError(f"cannot read {what} '{url}': the server sent nothing")
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _joined_segments(url: str, target: Path, what: str, on_bytes: Callable[[int], None] | None) -> int:
    """An HLS playlist's video (`.../index.m3u8`, as many sites serve theirs): its segments read
    by FFmpeg and copied, packet for packet, into the Matroska file `target`: the best picture
    (of a playlist of several qualities, the largest) and its best sound track; the segments of
    the others are not fetched. Return the bytes copied. A live playlist (no end, so no
    duration) is refused: it would never finish."""
    import av

    try:
        src = av.open(url, timeout=DOWNLOAD_TIMEOUT_S)
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"cannot read {what} '{url}': its HLS playlist could not be read "
                         f"({getattr(exc, 'strerror', None) or exc})") from None
    with src:
        if not src.streams.video:
            raise InputError(f"cannot read {what} '{url}': its HLS playlist holds no video")
        if src.duration is None:
            raise InputError(f"cannot read {what} '{url}': it is a live stream (an HLS playlist without an end): "
                             "parse it live with lipparse-rt webcam --camera URL")
        keep = _best_variant(src)
        total = 0
        try:
            out = av.open(f"file:{target}", "w", format="matroska")
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot keep the {what} from '{url}' in '{target.parent}': {exc}") from exc
        with out:
            to = {s.index: out.add_stream_from_template(s) for s in keep}
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
                    out.mux(packet)
                except (av.FFmpegError, OSError) as exc:
                    raise OutputError(f"cannot keep the {what} from '{url}' in '{target.parent}' (it is read into a "
                                      f"file first): {exc}; set TMPDIR to a folder with room") from exc
                total += packet.size
                if on_bytes is not None:
                    on_bytes(total)
    return total


def _best_variant(src) -> list:
    """Of an HLS playlist's streams (every quality it offers), the largest picture and a sound
    track of the same quality (the demuxer tags each stream with its variant's bit rate), else
    the best sound track there is."""
    def rate(stream) -> int:
        return int(stream.metadata.get("variant_bitrate", 0) or 0)

    video = max(src.streams.video, key=lambda s: (s.codec_context.width * s.codec_context.height, rate(s)))
    audio = [s for s in src.streams.audio if rate(s) == rate(video)] or [src.streams.best("audio")]
    return [video] + [s for s in audio[:1] if s is not None]


def _copy_into(src, target: Path, shown: str, what: str, on_bytes: Callable[[int], None] | None) -> int:
    """Copy the readable `src` (a pipe, a download) into `target` a MiB at a time, telling
    `on_bytes` the bytes so far; return them. A read that fails (a pipe's error, a connection
    dropped or timed out) is an InputError; a write that fails (a full disk), an OutputError."""
    total = 0
    try:
        dst = open(target, "wb")
    except OSError as exc:
        raise OutputError(f"cannot keep the {what} from '{shown}' in '{target.parent}': {exc.strerror}") from exc
    with dst:
        while True:
            try:
                chunk = src.read(1 << 20)
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot read {what} '{shown}': it broke off ({getattr(exc, 'strerror', None) or exc})") \
                    from None
            if not chunk:
                return total
            try:
                dst.write(chunk)
            except OSError as exc:
                raise OutputError(f"cannot keep the {what} from '{shown}' in '{target.parent}' (it is read into a "
                                  f"file first): {exc.strerror}; set TMPDIR to a folder with room") from exc
            total += len(chunk)
            if on_bytes is not None:
                on_bytes(total)
