"""glibc heap settings for a process that moves video frames between threads.

Each thread that allocates (decoder, inference, render, encoder) gets a malloc arena of its own
by default and keeps frames freed there for reuse, so how much memory a run holds at its peak
depends on which thread happened to free what. Capping the arenas makes it lower and steadier:
`lipparse-rt bench memory` at 3840x2160 gave 516-618 MB over four runs with glibc's default and
535-569 MB with two arenas, at the same FPS (2026-12-01). Elsewhere than glibc both calls do
nothing.
"""

from __future__ import annotations

import ctypes
import gc
import os

_M_ARENA_MAX = -8  # glibc's malloc.h


def _libc():
    try:
        return ctypes.CDLL(None)  # the process's own C library (on Windows: TypeError)
    except (OSError, TypeError):
        return None


def limit_arenas(count: int = 2) -> None:
    """Cap glibc's malloc arenas at `count` (unless $MALLOC_ARENA_MAX already says how many).

    Call it before threads start allocating: arenas that exist stay.
    """
    libc = _libc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ or not hasattr(libc, "mallopt"):
        return
    libc.mallopt(_M_ARENA_MAX, count)


def release_freed() -> None:
    """Collect garbage and give freed heap pages back to the system (glibc's malloc_trim)."""
    gc.collect()
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
