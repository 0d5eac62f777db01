"""fetch.py: pipes and URLs made files, and the names outputs take from them."""

import io
import os
from pathlib import Path

import pytest

from lipparse_rt.errors import InputError, OutputError
from lipparse_rt.fetch import _copy_into, given_as, is_pipe, pipe_name, spooled, stem_of, web_url


def test_names_of_pipes_and_urls():
    assert pipe_name(Path("-")) == "stdin" and stem_of(Path("-")) == "stdin"
    url = Path("https://cdn.example.com/v/My%20Clip.mp4?token=abc")  # as the shell gives it, folded by Path
    assert web_url(url) == "https://cdn.example.com/v/My%20Clip.mp4?token=abc" == given_as(url)
    assert pipe_name(url) == "My Clip.mp4" and stem_of(url) == "My Clip"
    assert pipe_name(Path("https://example.com/")) == "example.com"
    assert web_url(Path("rtsp://cam/live")) is None and web_url(Path("c:/x.jpg")) is None
    assert stem_of(Path("clips/a.mp4")) == "a" and given_as(Path("clips/a.mp4")) == "clips/a.mp4"


def test_a_fifo_is_a_pipe_and_a_file_is_not(tmp_path):
    os.mkfifo(tmp_path / "f")
    (tmp_path / "a.mp4").write_bytes(b"x")
    assert is_pipe(tmp_path / "f") and is_pipe(Path("-"))
    assert not is_pipe(tmp_path / "a.mp4") and not is_pipe(tmp_path / "missing")


def test_copy_errors_say_which_side_failed(tmp_path):
    """A full disk where the copy goes is the output's fault (exit 3, with TMPDIR to set); a
    stream that breaks off, the input's (exit 2)."""
    with pytest.raises(OutputError, match=r"cannot keep the video from '-' in '/dev' \(it is read into a file "
                                          r"first\): No space left on device; set TMPDIR"):
        _copy_into(io.BytesIO(b"x" * (2 << 20)), Path("/dev/full"), "-", "video", None)

    class Broken(io.RawIOBase):
        def read(self, n=-1):
            raise ConnectionResetError(104, "Connection reset by peer")

    with pytest.raises(InputError, match=r"cannot read image 'http://h/a.jpg': it broke off \(Connection reset"):
        _copy_into(Broken(), tmp_path / "a", "http://h/a.jpg", "image", None)
    # a download whose connection closed early ends short of its Content-Length: before 2026-12-05
    # that was the end of the file, and what had come was parsed as the whole video, exit 0
    with pytest.raises(InputError, match=r"cannot read video 'http://h/a.mkv': it broke off after 5 of its 9 bytes"):
        _copy_into(io.BytesIO(b"x" * 5), tmp_path / "c", "http://h/a.mkv", "video", None, expected=9)
    seen = []
    assert _copy_into(io.BytesIO(b"y" * (3 << 20)), tmp_path / "b", "-", "video", seen.append) == 3 << 20
    assert seen == [1 << 20, 2 << 20, 3 << 20] and (tmp_path / "b").stat().st_size == 3 << 20


def test_a_file_is_given_back_as_it_is(tmp_path):
    f = tmp_path / "a.mp4"
    f.write_bytes(b"x")
    with spooled(f) as got:
        assert got == f
    assert f.exists()


def test_a_pipes_copy_is_read_as_it_grows(tmp_path):
    """`video -` on a live stream: the copy is read as it is made (a read takes what has come and
    waits only for the first byte past it), its size is unknown until the stream ends (FFmpeg asks
    for it at opening, and a live stream would never start), and the end of the stream is the end
    of the file. Before 2026-12-05 the whole stream was copied first: an endless one never started."""
    import threading

    from lipparse_rt.fetch import _Copy, _Following

    r, w = os.pipe()
    src = open(r, "rb", buffering=0)
    copy = _Copy(src, tmp_path / "stdin", "-", "video", close=True)
    os.write(w, b"abc")
    assert copy.wait(3) == 3
    reader = _Following(copy)
    assert reader.read(10) == b"abc"  # what has come, not 10 bytes
    assert reader.seek(0, io.SEEK_END) == -1 and reader.tell() == 3  # size unknown, not moved
    got = []
    waiting = threading.Thread(target=lambda: got.append(reader.read(10)))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and not got  # waits for the next bytes
    os.write(w, b"de")
    waiting.join(5)
    assert got == [b"de"]
    os.close(w)  # the stream ends
    copy.wait(None)
    assert reader.read(10) == b"" and reader.seek(0, io.SEEK_END) == 5 and copy.error is None
    reader.close()
    # a copy that cannot be written (a full disk) ends, and keeps its error for the end of the run
    full = _Copy(io.BytesIO(b"x" * (1 << 20)), Path("/dev/full"), "-", "video", close=False)
    full.wait(None)
    assert full.done and isinstance(full.error, OutputError) and "set TMPDIR" in str(full.error)
