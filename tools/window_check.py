"""Count how often a live window comes up black: the app's window (SDL) against OpenCV's (Qt).

Each start runs in a fresh process on a fresh virtual screen (Xvfb): the process opens a
window the way the backend does and shows one solid frame ~30 times a second; after 2.5 s of
frames a screenshot (FFmpeg's x11grab, another process) tells whether it reached the screen. OpenCV's window is
opened as lipparse-rt opened it before (WINDOW_NORMAL | KEEPRATIO | GUI_NORMAL, resized to
the frame), after a 1 s pause like the model's loading time.

    python tools/window_check.py --starts 20     # needs Xvfb (Debian: apt-get install xvfb)

Prints one Markdown row per backend: starts, black windows.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import os, sys, time
import numpy as np
backend = sys.argv[1]
frame = np.full((480, 640, 3), (40, 120, 200), np.uint8)
if backend == "opencv":
    import cv2
    cv2.namedWindow("check", cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
    time.sleep(1.0)
    cv2.resizeWindow("check", 640, 480)
    show = lambda: cv2.waitKey(1) if cv2.imshow("check", frame) is None else None
else:
    from lipparse_rt.sinks import Window
    window = Window("check")
    time.sleep(1.0)
    show = lambda: window.show(frame)
t0 = time.time()
while time.time() - t0 < 6:
    show()
    time.sleep(0.03)
"""

GRAB = r"""
import os, av, numpy as np
with av.open(os.environ["DISPLAY"], format="x11grab", options={"video_size": "1024x768"}) as c:
    shot = next(c.decode(video=0)).to_ndarray(format="bgr24")
print("shown" if (np.abs(shot.astype(int) - (40, 120, 200)).max(2) < 8).sum() > 100_000 else "black")
"""


def _free_display() -> int:
    for n in range(150, 400):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            return n
    raise SystemExit("no free X display number")


def one_start(backend: str, child: Path) -> str:
    """Run one start on its own virtual screen; return 'shown', 'black' or 'error: ...'."""
    n = _free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(f"/tmp/.X11-unix/X{n}"):
                break
            time.sleep(0.05)
        root = Path(__file__).resolve().parents[1]
        env = dict(os.environ, DISPLAY=f":{n}", PYTHONPATH=str(root))
        app = subprocess.Popen([sys.executable, str(child), backend], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(4.5)  # start-up, the 1 s pause, then 2.5 s of frames
        if app.poll() is not None:
            return f"error: rc {app.returncode} {app.stderr.read().strip()[-200:]}"
        r = subprocess.run([sys.executable, "-c", GRAB], env=env, capture_output=True, text=True, timeout=30)
        app.kill()
        app.wait()
        return r.stdout.strip() or f"error: {r.stderr.strip()[-200:]}"
    finally:
        xvfb.terminate()
        xvfb.wait(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=20, help="starts per backend")
    ap.add_argument("--backend", action="append", choices=["sdl", "opencv"], help="default: both")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        child = Path(tmp) / "child.py"
        child.write_text(CHILD)
        print("| window | starts | black | errors |\n|---|---|---|---|")
        for backend in args.backend or ["sdl", "opencv"]:
            results = [one_start(backend, child) for _ in range(args.starts)]
            errors = [r for r in results if r.startswith("error")]
            name = "SDL 2 (pygame-ce), the app's" if backend == "sdl" else "OpenCV's Qt (before)"
            print(f"| {name} | {args.starts} | {results.count('black')} | {len(errors)} {errors[:1] if errors else ''} |",
                  flush=True)


if __name__ == "__main__":
    main()
