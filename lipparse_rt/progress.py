"""The commands' progress: a live bar on a terminal, plain lines in a log.

Rich draws its bar only on a terminal; where stderr is a file or a pipe (`nohup`, `2> log`, a
service, a CI job) it printed the bar once, at the end, and a long run said nothing while it ran.
There, `PlainProgress` writes a line at each tenth of the work and at least once a minute.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import Progress, ProgressColumn

EVERY_S = 60.0  # a log hears from a run at least this often


def progress(console: Console, *columns: str | ProgressColumn, unit: str, transient: bool = True):
    """Rich's `Progress` with these columns where `console` is a terminal, else `PlainProgress`
    counting in `unit` ('frames', 'images', 'bytes')."""
    if console.is_terminal:
        return Progress(*columns, console=console, transient=transient)
    return PlainProgress(console, unit)


class PlainProgress:
    """The part of rich's `Progress` the commands use (one task), written as plain lines:
    'parsing: 450 of 900 frames (50%), 58.3 frames/s, 0:00:08 left'."""

    def __init__(self, console: Console, unit: str, every_s: float = EVERY_S) -> None:
        self.console, self.unit, self.every_s = console, unit, every_s
        self.description, self.total, self.completed = "", None, 0
        self._t0 = self._said_at = time.perf_counter()
        self._tenths = 0

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add_task(self, description: str, total: float | None = None, **fields: object) -> int:
        self.description, self.total, self.completed = description, total, 0
        self._t0 = self._said_at = time.perf_counter()
        self._tenths = 0
        return 0

    def update(self, task: int, total: float | None = None, completed: float | None = None,
               advance: float | None = None, **fields: object) -> None:
        if total is not None:
            self.total = total
        if completed is not None:
            self.completed = completed
        if advance is not None:
            self.completed += advance
        self._maybe_say()

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def _maybe_say(self) -> None:
        now = time.perf_counter()
        tenths = int(10 * self.completed / self.total) if self.total else 0
        if tenths >= 10 or (tenths <= self._tenths and now - self._said_at < self.every_s):
            return  # the end is the command's own summary line
        self._tenths, self._said_at = max(tenths, self._tenths), now
        self.console.print(self.line(now - self._t0), highlight=False, soft_wrap=True)

    def line(self, elapsed: float) -> str:
        """'parsing: 450 of 900 frames (50%), 58.3 frames/s, 0:00:08 left'."""
        rate = self.completed / elapsed if elapsed > 0 else 0.0
        if self.unit == "bytes":
            done = f"{self.completed / 1e6:.1f} MB"
            speed = f"{rate / 1e6:.1f} MB/s"
        else:
            of = f" of {int(self.total)}" if self.total else ""
            done = f"{int(self.completed)}{of} {self.unit}"
            speed = f"{rate:.1f} {self.unit}/s"
        text = f"{self.description}: {done}"
        if self.total:
            text += f" ({self.completed / self.total:.0%})"
        text += f", {speed}"
        if self.total and rate > 0:
            left = round((self.total - self.completed) / rate)
            text += f", {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d} left"
        return text
