"""A live stream on standard output, and how soon `lipparse-rt video -` parses one.

  python tools/live_pipe.py produce N [--wait-for FILE]   # N frames of MPEG-TS at 25 FPS, as
                                                          # `ffmpeg -i rtsp://... -f mpegts -` sends
  python tools/live_pipe.py time [--runs 3] [--frames 200]

`produce`: 160x120 H.264 (a bar moving across) with silent AAC, each frame sent at its time.
`--wait-for FILE`: after frame 40 the stream stays open until FILE exists (or 20 s), then says on
stderr whether it did: a test of parsing while the stream is open.

`time`: starts a stream and `lipparse-rt video - --out ... --masks DIR` on it together, and prints
when the first frame's mask was written and when the run ended, against the stream's length.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FPS = 25
RATE = 22050  # the sound's sample rate


def produce(frames: int, wait_for: Path | None) -> None:
    """Write `frames` frames of a live MPEG-TS stream to standard output, each at its time."""
    import av
    import numpy as np

    out = av.open(sys.stdout.buffer, "w", format="mpegts")
    v = out.add_stream("libx264", rate=FPS)
    v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
    v.options = {"tune": "zerolatency", "g": str(FPS)}
    a = out.add_stream("aac", rate=RATE)
    a.layout = "mono"
    t0, sample = time.time(), 0
    for i in range(frames):
        img = np.full((120, 160, 3), 40, np.uint8)
        img[:, (i * 7) % 150:(i * 7) % 150 + 10] = 200
        f = av.VideoFrame.from_ndarray(img, format="bgr24")
        f.pts = i
        for p in v.encode(f):
            out.mux(p)
        while sample < (i + 1) * RATE // FPS:
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = RATE, sample
            sample += 1024
            for p in a.encode(af):
                out.mux(p)
        sys.stdout.buffer.flush()
        time.sleep(max(0.0, t0 + (i + 1) / FPS - time.time()))
        if wait_for is not None and i == 39:
            deadline = time.time() + 20
            while not wait_for.exists() and time.time() < deadline:
                time.sleep(0.05)
            print("parsed while the stream was open" if wait_for.exists() else "not parsed", file=sys.stderr,
                  flush=True)
    for s in (v, a):
        for p in s.encode(None):
            out.mux(p)
    out.close()


def time_runs(runs: int, frames: int) -> None:
    """Print, for each run, when the first frame was parsed and when the run ended."""
    for run in range(runs):
        folder = Path(tempfile.mkdtemp(prefix="live-pipe-"))
        try:
            t0 = time.time()
            producer = subprocess.Popen([sys.executable, __file__, "produce", str(frames)], stdout=subprocess.PIPE)
            parser = subprocess.Popen(["lipparse-rt", "video", "-", "--out", str(folder / "o.mp4"), "--masks",
                                       str(folder / "m")], stdin=producer.stdout, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            producer.stdout.close()
            first = None
            while parser.poll() is None:
                if first is None and (folder / "m" / "000000.png").exists():
                    first = time.time() - t0
                time.sleep(0.01)
            said = f"{first:.2f} s" if first is not None else "never"
            print(f"run {run + 1}: first frame parsed {said} after the stream began; the stream lasts "
                  f"{frames / FPS:.1f} s; the run ended at {time.time() - t0:.2f} s (exit {parser.returncode})")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("produce")
    p.add_argument("frames", type=int)
    p.add_argument("--wait-for", type=Path)
    t = sub.add_parser("time")
    t.add_argument("--runs", type=int, default=3)
    t.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    if args.what == "produce":
        try:
            produce(args.frames, args.wait_for)
        except BrokenPipeError:  # the reader has had enough (--end, Ctrl-C): the stream ends, quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's advice for SIGPIPE)
    else:
        time_runs(args.runs, args.frames)


if __name__ == "__main__":
    main()
