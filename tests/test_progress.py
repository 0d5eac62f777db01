"""Progress in a log: plain lines while a run goes, not a bar drawn once at its end."""

import io
import subprocess
import sys

from rich.console import Console

from lipparse_rt import progress as progress_mod
from lipparse_rt.progress import PlainProgress, progress

from conftest import make_video


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_line_at_each_tenth_and_at_least_once_a_minute(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_mod.time, "perf_counter", clock)
    buf = io.StringIO()
    bar = PlainProgress(Console(file=buf, width=200), "frames")
    task = bar.add_task("parsing", total=200)
    for n in range(1, 201):  # 2 frames a second: 100 s in all
        clock.now += 0.5
        bar.update(task, completed=n)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "parsing: 20 of 200 frames (10%), 2.0 frames/s, 0:01:30 left"
    assert [l.split("(")[1].split(")")[0] for l in lines] == [f"{p}%" for p in range(10, 100, 10)]  # not 100%: the summary
    buf = io.StringIO()
    bar = PlainProgress(Console(file=buf, width=200), "bytes")
    task = bar.add_task("reading stdin", total=None)  # no total: once a minute
    for n in range(1, 301):
        clock.now += 1.0
        bar.update(task, completed=n * 1_000_000)
    assert buf.getvalue().splitlines() == [
        "reading stdin: 60.0 MB, 1.0 MB/s", "reading stdin: 120.0 MB, 1.0 MB/s", "reading stdin: 180.0 MB, 1.0 MB/s",
        "reading stdin: 240.0 MB, 1.0 MB/s", "reading stdin: 300.0 MB, 1.0 MB/s"]


def test_a_terminal_gets_rich_bar_and_a_log_plain_lines():
    from rich.progress import Progress

    assert isinstance(progress(Console(file=io.StringIO(), force_terminal=True), unit="frames"), Progress)
    assert isinstance(progress(Console(file=io.StringIO()), unit="frames"), PlainProgress)


def test_video_into_a_log_writes_no_bar(tmp_path, tiny_weights):
    """`lipparse-rt video ... 2> log` (nohup, a service): before 2026-12-05 the log held nothing
    while the run went, then the bar drawn once with its box characters."""
    src = make_video(tmp_path / "in.mp4", n=20)
    with open(tmp_path / "log", "w") as log:
        done = subprocess.run([sys.executable, "-m", "lipparse_rt", "video", str(src), "--out", str(tmp_path / "o.mp4"),
                               "--weights", str(tiny_weights)], stderr=log, stdout=subprocess.PIPE, text=True,
                              timeout=120)
    said = (tmp_path / "log").read_text()
    assert done.returncode == 0, said
    assert "━" not in said and "in.mp4: 160x120 @ 25.00 FPS" in said
    assert "in.mp4: 20 frames in" in done.stdout
