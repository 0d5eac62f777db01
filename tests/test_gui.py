"""A real window under Xvfb: the webcam command shows overlay, legend and HUD, s saves a snapshot, and q quits."""

import os
import re
import shutil
import subprocess
import sys
import time
from fractions import Fraction

import cv2
import numpy as np
import pytest

from lipparse_rt.engine import Engine, EngineConfig, default_weights, int8_weights
from lipparse_rt.render import overlay
from lipparse_rt.sinks import VideoWriter
from lipparse_rt.sources import VideoFile

from conftest import probe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "demos", "astronaut.mp4")

if not shutil.which("Xvfb") or not shutil.which("xdotool"):
    if os.environ.get("CI"):
        pytest.fail("CI must install xvfb and xdotool for the window test", pytrace=False)
    pytest.skip("Xvfb/xdotool not installed", allow_module_level=True)


@pytest.fixture()
def xserver():
    """A virtual X server: (its display, its process)."""
    for n in range(90, 120):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            break
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(f"/tmp/.X11-unix/X{n}"):
            break
        time.sleep(0.05)
    yield f":{n}", proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(5)


@pytest.fixture()
def display(xserver):
    return xserver[0]


def _grab(disp: str, path) -> np.ndarray:
    """Screenshot of the whole screen (FFmpeg's x11grab, in a child process with DISPLAY set)."""
    code = ("import av, cv2, sys\n"
            "with av.open(sys.argv[1], format='x11grab', options={'video_size': '1024x768'}) as c:\n"
            "    cv2.imwrite(sys.argv[2], next(c.decode(video=0)).to_ndarray(format='bgr24'))\n")
    subprocess.run([sys.executable, "-c", code, disp, str(path)], env=dict(os.environ, DISPLAY=disp),
                   check=True, timeout=30)
    return cv2.imread(str(path))


def _window_ids(env) -> list[str]:
    # Mapped windows, by class: xdotool does not match a WM_NAME typed UTF8_STRING, as SDL writes it.
    r = subprocess.run(["xdotool", "search", "--onlyvisible", "--class", "lipparse-rt"], env=env, capture_output=True, text=True)
    return r.stdout.split()


def _press(env, key: str, proc) -> None:
    """Focus the app's window and press `key`; where that fails, say what the app was doing."""
    ids = _window_ids(env)
    try:
        assert ids, "the window is gone"
        subprocess.run(["xdotool", "windowfocus", "--sync", ids[0], "key", key], env=env, check=True, timeout=10,
                       capture_output=True, text=True)
    except (AssertionError, subprocess.SubprocessError) as exc:
        state = f"exited {proc.returncode}: {proc.stderr.read()[-800:]}" if proc.poll() is not None else "still running"
        raise AssertionError(f"could not press {key} ({exc}); the app {state}") from exc


def test_webcam_window_shows_overlay_legend_hud_and_q_quits(tmp_path, display):
    with VideoFile(DEMO) as v:
        still = next(iter(v)).image
    # A camera looking at a still scene for 60 s (600 frames at 10 FPS; it was 20 s): the app ends
    # with its camera, and a slow start (a fresh environment compiling its modules, a busy machine)
    # must not run the clip out before the keys are pressed. This test failed once in ten full
    # runs on 2026-12-04, its message not kept; a clip run out is one way it could.
    cam = tmp_path / "still.mp4"
    with VideoWriter(cam, Fraction(10), 640, 480) as w:
        for _ in range(600):
            w.write(still)
    with VideoFile(cam) as v:
        seen = next(iter(v)).image  # what the camera delivers, after the codec
    # what the app runs on the CPU by default: the shipped INT8 copy
    app = Engine(EngineConfig(weights=default_weights(), provider="cpu", cpu_weights=int8_weights()))
    expected = overlay(seen, app.run(seen))

    env = dict(os.environ, DISPLAY=display)
    env.pop("LIPPARSE_WEIGHTS", None)
    proc = subprocess.Popen([sys.executable, "-m", "lipparse_rt", "webcam", "--camera", str(cam), "--no-mirror",
                             "--snapshots", str(tmp_path / "shots")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not _window_ids(env) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert _window_ids(env), "no window opened: " + (proc.stderr.read() if proc.poll() is not None else "")
        # The window opens before the first frame is parsed (a busy CI machine may take seconds to
        # load the model): look until the overlay is on screen, or give up after 40 s.
        crop = expected[200:440, 160:480]
        score, shot, deadline = -1.0, None, time.time() + 40
        while score <= 0.9 and time.time() < deadline and proc.poll() is None:
            time.sleep(1)
            shot = _grab(display, tmp_path / "shot.png")
            _, score, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(shot, crop, cv2.TM_CCOEFF_NORMED))
        assert shot is not None, "the app ended before a screenshot: " + proc.stderr.read()
        # s saves the picture shown (without the HUD) and its class map; q quits
        _press(env, "s", proc)
        deadline = time.time() + 20
        while len(list((tmp_path / "shots").glob("lipparse-*.png"))) < 2 and time.time() < deadline:
            time.sleep(0.2)
        _press(env, "q", proc)
        rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read()
    errors = proc.stderr.read()
    assert rc == 0, out + errors
    assert "latency p50" in out and "keys: q/Esc quit, s snapshot" in errors and "snapshot: " in errors
    (snap,) = [p for p in (tmp_path / "shots").glob("lipparse-*.png") if not p.stem.endswith("-ids")]
    snap_ids = cv2.imread(str(snap.with_name(snap.stem + "-ids.png")), cv2.IMREAD_UNCHANGED)
    assert snap_ids.shape == seen.shape[:2] and (snap_ids == app.run(seen)).mean() > 0.95
    snap = cv2.imread(str(snap))  # the picture shown, without the HUD's darkened box
    assert snap.shape == seen.shape and np.abs(snap[200:440, 160:480].astype(int) - expected[200:440, 160:480]).mean() < 8
    assert np.abs(snap[8:64, 8:100].astype(int) - expected[8:64, 8:100]).mean() < 8  # darkened: ~50 off

    # The frame on screen: the middle of the expected overlay, matched in the screenshot.
    assert score > 0.9, (f"the overlay is not on screen (match {score:.2f}, screen mean {shot.mean():.0f}); "
                         f"the app said: {out[-400:]} {errors[-400:]}")
    x0, y0 = x - 160, y - 200  # window content origin
    win = shot[y0:y0 + 480, x0:x0 + 640].astype(int)
    assert np.abs(win[200:440, 160:480] - expected[200:440, 160:480]).mean() < 12
    raw_score = cv2.minMaxLoc(cv2.matchTemplate(shot, seen[200:440, 160:480], cv2.TM_CCOEFF_NORMED))[1]
    assert raw_score < score, "the raw frame matches better than the overlay: no overlay drawn"
    # HUD: a darkened box with white text at the top left (four lines, at least as wide as
    # "CPU  input 256x192": the region looked at stays inside the box whatever the figures).
    hud = win[8:64, 8:100]
    # Pixel by pixel: most of the box is the frame at 0.35x (the rest is text), not the frame itself.
    under = expected[8:64, 8:100].astype(int)
    darkened = (np.abs(hud - under * 0.35).max(2) < 16).mean()
    assert darkened > 0.5 and darkened > (np.abs(hud - under).max(2) < 16).mean(), darkened
    assert (hud.min(2) > 200).sum() > 50
    # Legend: white names at the top right, and at least one exact class colour swatch.
    leg = win[8:120, 480:636]
    assert (leg.min(2) > 200).sum() > 50
    from lipparse_rt.classes import PALETTE_BGR

    present = np.unique(app.run(seen))
    swatch_hits = sum(int((np.abs(leg - PALETTE_BGR[c].astype(int)).max(2) < 8).sum() > 20) for c in present if c)
    assert swatch_hits >= 1


def test_video_show_when_the_display_goes_away_finalises_the_output(tmp_path, xserver, tiny_weights):
    """The display goes away under `video --show` (an SSH session's X forwarding dropped, the X
    server stopped): the run stops, the MP4 is finalised with every frame parsed, and one line
    says so (exit 6). Before 2026-12-05 Xlib printed `X connection to :90 broken` and exited the
    process at once: the MP4 played to its last complete fragment, its sound and last frames lost."""
    from conftest import make_video

    disp, server = xserver
    # a minute of 640x480, the tiny model run at 512 so that the run takes half a minute or more
    # (~35 ms a frame here): the display is taken away a second after the window is up
    src = make_video(tmp_path / "long.mp4", n=1500, size=(640, 480), fps=25, audio=True)
    out = tmp_path / "o.mp4"
    env = dict(os.environ, DISPLAY=disp, LIPPARSE_WEIGHTS=str(tiny_weights))
    proc = subprocess.Popen([sys.executable, "-m", "lipparse_rt.cli", "video", str(src), "--show", "--size", "512",
                             "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while proc.poll() is None and time.time() < deadline and not _window_ids(env):
        time.sleep(0.1)
    time.sleep(1)
    assert proc.poll() is None, "the run ended before the display was taken away: " + proc.stderr.read()
    server.kill()
    _, err = proc.communicate(timeout=60)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 6 and last.startswith("error: the display was lost (its X connection broke): "), err
    parsed = int(re.search(r"broke\): (\d+)", last)[1])
    assert 0 < parsed < 1500 and probe(out)["frames"] == parsed  # finalised: every frame parsed is there
