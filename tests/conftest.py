"""Shared fixtures: tiny synthetic media and a tiny exported LIP-Net."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEMO = Path(__file__).resolve().parents[1] / "demos" / "astronaut.mp4"


def demo_frame() -> np.ndarray:
    """The first frame of the shipped demo clip (a real photo: sided arms, a face, clothes)."""
    from lipparse_rt.sources import VideoFile

    with VideoFile(DEMO) as src:
        return next(iter(src)).image


def make_lip_folder(root: Path, stems, hw: tuple[int, int] = (48, 32), images: str = "images",
                    labels: str = "labels", splits: dict[str, list[str]] | None = None) -> Path:
    """A tiny LIP-format folder: random JPEG images and label maps holding a person (5) with a
    left arm (14), one pair per stem; `splits` writes split files, e.g. {"train": ["a", "b"]}."""
    h, w = hw
    (root / images).mkdir(parents=True)
    (root / labels).mkdir()
    rng = np.random.default_rng(0)
    for s in map(str, stems):
        cv2.imwrite(str(root / images / f"{s}.jpg"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        m = np.zeros((h, w), np.uint8)
        m[h * 10 // 48:h * 40 // 48, w * 8 // 32:w * 24 // 32] = 5
        m[h * 10 // 48:h * 20 // 48, w * 8 // 32:w * 12 // 32] = 14
        cv2.imwrite(str(root / labels / f"{s}.png"), m)
    for name, members in (splits or {}).items():
        (root / f"{name}.txt").write_text("".join(f"{s}\n" for s in members))
    return root


def make_video(path: Path, n: int = 10, size: tuple[int, int] = (160, 120), fps: int = 25,
               pts: list[int] | None = None, audio: bool = False, time_base: Fraction | None = None,
               options: dict | None = None, pixel_aspect: Fraction | None = None, interlaced: bool = False) -> Path:
    """Write an H.264 video of `n` numbered frames (a bright bar 10 pixels wide moves right by 7 a
    frame), optional sine audio, optionally of non-square pixels (`pixel_aspect`: width / height),
    optionally interlaced (top field first, the bottom field's bar 4 pixels further right: combed)."""
    import av

    w, h = size
    with av.open(str(path), "w", options=options or {}) as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        tb = time_base or Fraction(1, fps)
        v.codec_context.time_base = tb
        if pixel_aspect:
            v.codec_context.sample_aspect_ratio = pixel_aspect
        if interlaced:
            v.options = {"x264-params": "interlaced=1:tff=1"}
        a = c.add_stream("aac", rate=22050) if audio else None
        for i in range(n):
            img = np.full((h, w, 3), 40, np.uint8)
            x = (i * 7) % (w - 10)
            img[:, x:x + 10] = (200, 180, 160)
            if interlaced:
                img[1::2] = 40
                img[1::2, x + 4:x + 14] = (200, 180, 160)
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts = pts[i] if pts else i
            f.time_base = tb
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        if a is not None:
            t = np.arange(int(22050 * n / fps)) / 22050
            s = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for k in range(0, s.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(s[:, k:k + 1024]), format="fltp", layout="mono")
                af.sample_rate, af.pts = 22050, k
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return path


def mux_black_frames(container, stream, n: int) -> None:
    """Encode `n` black frames of `stream`'s size (pts 0..n-1 in its rate) into `container`, and flush."""
    import av

    for i in range(n):
        f = av.VideoFrame.from_ndarray(np.zeros((stream.height, stream.width, 3), np.uint8), format="bgr24")
        f.pts = i
        for p in stream.encode(f):
            container.mux(p)
    for p in stream.encode(None):
        container.mux(p)


@contextlib.contextmanager
def mjpeg_camera(frames: int = 5, connections: list | None = None):
    """A local MJPEG camera over HTTP (a phone's camera app, an IP camera) that sends `frames`
    frames on each connection, then keeps it open and silent until the event it gives is set (or
    the block ends). Yields (its URL, that event)."""
    import time

    quit_ = threading.Event()

    class Stalls(QuietHandler):
        def do_GET(self):
            if connections is not None:
                connections.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
            self.end_headers()
            jpg = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))[1].tobytes()
            for _ in range(frames):
                self.wfile.write(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                                 + jpg + b"\r\n")
                time.sleep(0.02)
            quit_.wait(60)

    with _serving(Stalls) as base:
        try:
            yield f"{base}/video", quit_
        finally:
            quit_.set()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder's files (`served_folder`) without a log line per request; the tests' own
    servers subclass it."""

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def served_folder(folder: Path, handler: type[http.server.SimpleHTTPRequestHandler] = QuietHandler):
    """`folder` served over HTTP on a local port by `handler` (a video a user plays from a web
    server). Yields the base URL."""
    with _serving(functools.partial(handler, directory=str(folder))) as base:
        yield base


@contextlib.contextmanager
def _serving(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def probe(path: Path) -> dict:
    """Frame count, average rate, pts list and stream types of a media file."""
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        pts = [f.pts for f in c.decode(video=0)]
        return {"frames": len(pts), "fps": vs.average_rate, "pts": pts, "tb": vs.time_base,
                "types": [s.type for s in c.streams], "size": (vs.codec_context.width, vs.codec_context.height)}


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A tiny LIP-Net (random weights, same graph shape as the real one) exported to ONNX."""
    torch = pytest.importorskip("torch")
    from lipparse_rt.export import export_onnx
    from lipparse_rt.model import LipNet, LipNetConfig

    torch.manual_seed(0)
    net = LipNet(LipNetConfig(widths=(4, 8, 8, 8, 16, 16), aspp_width=8, decoder_width=8))
    out = tmp_path_factory.mktemp("w") / "tiny.onnx"
    return export_onnx(net, out, input_size=64)


@pytest.fixture()
def video10(tmp_path) -> Path:
    return make_video(tmp_path / "in.mp4")
