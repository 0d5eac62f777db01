"""Benchmarks behind `lipparse-rt bench`: Markdown tables of measured speed, each with its baseline.

Sections: table1 (LIP-Net against the paper's baselines, same runtime and threads), pipeline
(decode / model / render / encode alone, one after another, and threaded), sizes (FPS and mIoU
per input size), latency (a fake 30 FPS camera through the live path), memory (peak RSS of
`lipparse-rt video` per frame size).
"""

from __future__ import annotations

import itertools
import logging
import os
import platform
import re
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)

PAPER = {"FCN-8s": (134.3, 2.0), "SegNet": (29.46, 16.7), "DeepLab v2": (48.0, 2.4), "LIP-Net": (3.97, 49.0)}


def machine() -> str:
    """One line describing this machine and runtime."""
    import onnxruntime as ort

    cpu = platform.processor() or platform.machine()
    vector = ""
    try:
        with open("/proc/cpuinfo") as fh:
            info = fh.read().splitlines()
        cpu = next(l.split(":", 1)[1].strip() for l in info if l.startswith("model name"))
        flags = set(next((l.split(":", 1)[1].split() for l in info if l.startswith("flags")), []))
        # the vector width sets ONNX Runtime's kernels (and its NCHWc block: 16 floats with AVX-512, else 8)
        vector = ("AVX-512" + (" VNNI" if "avx512_vnni" in flags else "") if "avx512f" in flags
                  else "AVX2" if "avx2" in flags else "")
    except (OSError, StopIteration):
        pass
    cpu = f"{cpu} ({vector})" if vector else cpu
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, onnxruntime {ort.__version__}"


def _session(path: Path, threads: int, fuse: bool = True, profile_prefix: str = ""):
    """A CPU session as the app makes it: SE gates fused (nchwc.py) where the graph has them.

    With `profile_prefix`, ONNX Runtime profiles every run into a file starting with it.
    """
    import onnxruntime as ort

    from .nchwc import cpu_session

    def options():
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if profile_prefix:
            opts.enable_profiling = True
            opts.profile_file_prefix = profile_prefix
        return opts

    if not fuse:
        return ort.InferenceSession(str(path), options(), providers=["CPUExecutionProvider"])
    return cpu_session(path, options)[0]


def _time(fn: Callable[[], object], runs: int, warmup: int = 1) -> np.ndarray:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return np.array(ts) * 1000


def table1(sizes: tuple[tuple[int, int], ...] = ((512, 512), (192, 256)), runs: int = 5, threads: int = 2) -> str:
    """LIP-Net against FCN-8s, SegNet and DeepLab v2: params, latency, FPS, speed ratio vs the paper's."""
    import torch

    from .baselines import FCN8s, DeepLabV2, SegNet
    from .model import LipNet

    nets = {"FCN-8s": FCN8s, "SegNet": SegNet, "DeepLab v2": DeepLabV2, "LIP-Net": LipNet}
    params: dict[str, float] = {}
    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls in nets.items():
            net = cls().eval()
            params[name] = sum(p.numel() for p in net.parameters()) / 1e6
            path = Path(tmp) / f"{len(sessions)}.onnx"
            with torch.no_grad():
                torch.onnx.export(net, (torch.zeros(1, 3, 64, 64),), str(path), input_names=["x"], output_names=["y"],
                                  dynamic_axes={"x": {2: "h", 3: "w"}}, opset_version=17, dynamo=False)
            del net
            sessions[name] = _session(path, threads)
    # Round-robin: each of `runs` rounds times every model once (LIP-Net 10 times), so a slow spell
    # of the shared machine hits them all alike (after one warm-up run each).
    times: dict[tuple[str, tuple[int, int]], list[float]] = {}
    in_round: dict[tuple[str, tuple[int, int]], list[float]] = {}  # each round's median ms
    for h, w in sizes:
        x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
        for name, sess in sessions.items():
            sess.run(None, {"x": x})
        for _ in range(runs):
            for name, sess in sessions.items():
                ms = _time(lambda: sess.run(None, {"x": x}), 10 if name == "LIP-Net" else 1, warmup=0)
                times.setdefault((name, (h, w)), []).extend(ms.tolist())
                in_round.setdefault((name, (h, w)), []).append(float(np.median(ms)))
    rows: dict[tuple[str, tuple[int, int]], tuple[float, float, float]] = {}
    for key, ms in times.items():
        med = float(np.median(ms))
        rows[key] = (med, float(np.percentile(ms, 95)), 1000 / med)
        log.info("%s %dx%d: %.1f ms", key[0], key[1][1], key[1][0], med)
    del sessions
    out = []
    for h, w in sizes:
        out += [f"Input {w}x{h} (float NCHW, model only), CPU provider, {threads} threads, spinning off, "
                "SE gates fused as the app runs them (`nchwc.py`; only LIP-Net has SE gates), "
                f"{runs} rounds, each model in turn (LIP-Net 10 runs a round, the others 1):", "",
                "| model | params (M) measured | paper | median ms | p95 ms | FPS | LIP-Net speed-up measured "
                "| in each round: median (lowest-highest) | paper |",
                "|---|---|---|---|---|---|---|---|---|"]
        lip = rows[("LIP-Net", (h, w))][2]
        lip_rounds = np.array(in_round[("LIP-Net", (h, w))])
        for name in nets:
            med, p95, fps = rows[(name, (h, w))]
            paper_p, paper_fps = PAPER[name]
            ratio = "-" if name == "LIP-Net" else f"{lip / fps:.1f}x"
            per = np.array(in_round[(name, (h, w))]) / lip_rounds  # the same round's times: drift cancels
            spread = "-" if name == "LIP-Net" else f"{np.median(per):.1f}x ({per.min():.1f}-{per.max():.1f})"
            paper_ratio = "-" if name == "LIP-Net" else f"{PAPER['LIP-Net'][1] / paper_fps:.1f}x"
            out.append(f"| {name} | {params[name]:.2f} | {paper_p} | {med:.1f} | {p95:.1f} | {fps:.2f} | {ratio} "
                       f"| {spread} | {paper_ratio} |")
        out.append("")
    return "\n".join(out)


def profile(weights: Path, hw: tuple[int, int] = (192, 256), runs: int = 100, threads: int = 1,
            min_share: float = 0.5) -> str:
    """Where the model's CPU time goes: each op type's share of ONNX Runtime's kernel time, for the
    graph as ONNX Runtime optimises it and with the SE gates fused (`nchwc.py`). Op types under
    `min_share` percent in both graphs are summed into one row."""
    import json

    x = np.random.default_rng(0).integers(0, 255, (1, *hw, 3), dtype=np.uint8)
    shares: dict[str, dict[str, float]] = {}
    totals: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, fuse in (("plain", False), ("fused", True)):
            sess = _session(weights, threads, fuse, profile_prefix=str(Path(tmp) / label))
            for _ in range(runs + 5):
                sess.run(None, {"bgr": x})
            with open(sess.end_profiling()) as fh:
                events = json.load(fh)
            per_op: dict[str, float] = {}
            for e in events:
                if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
                    per_op[e["args"]["op_name"]] = per_op.get(e["args"]["op_name"], 0.0) + e["dur"]
            total = sum(per_op.values())
            totals[label] = total / (runs + 5) / 1000
            shares[label] = {op: 100 * t / total for op, t in per_op.items()}
    ops = sorted(set(shares["plain"]) | set(shares["fused"]), key=lambda o: -max(shares["plain"].get(o, 0),
                                                                               shares["fused"].get(o, 0)))
    lines = [f"ONNX Runtime's kernel time by op type, uint8 {hw[1]}x{hw[0]}, CPU provider, {threads} thread(s), "
             f"{runs} runs:", "", "| op | plain graph | SE gates fused |", "|---|---|---|"]
    rest = [0.0, 0.0]
    for op in ops:
        a, b = shares["plain"].get(op, 0.0), shares["fused"].get(op, 0.0)
        if max(a, b) >= min_share:
            lines.append(f"| {op} | {a:.1f}% | {b:.1f}% |")
        else:
            rest = [rest[0] + a, rest[1] + b]
    if any(rest):
        lines.append(f"| other ops (each under {min_share:g}%) | {rest[0]:.1f}% | {rest[1]:.1f}% |")
    lines.append(f"| all kernels, ms per run | {totals['plain']:.1f} | {totals['fused']:.1f} |")
    lines += ["", "ReorderInput/ReorderOutput convert between NCHW and ONNX Runtime's blocked NCHWc layout."]
    return "\n".join(lines)


VARIANTS = (
    ("S3 before pooling (stride 4), separable 3x3, 128 wide (shipped)", {}),
    ("S3 before pooling (stride 4), separable 3x3, 128 wide, SE gates left to ONNX Runtime (not fused)",
     {"fuse": False}),
    ("S3 before pooling (stride 4), separable 3x3, 128 wide, ids written into a new buffer bound each run (IO binding)",
     {"iobinding": True}),
    ("S3 pooled (stride 8), separable 3x3, 128 wide (releases before 2026-12-03)", {"decoder_stride": 8}),
    ("S3 before pooling (stride 4), full 3x3, 128 wide", {"decoder_separable": False}),
    ("S3 before pooling (stride 4), full 3x3, 256 wide (DeepLabv3+ as published)",
     {"decoder_separable": False, "decoder_width": 256}),
)


def _runner(sess, x: np.ndarray, iobinding: bool = False) -> Callable[[], np.ndarray]:
    """One model run on `x` returning its ids: `session.run`, or through an IO binding that writes
    the ids into a fresh buffer each run (as an engine must: the pipeline keeps several frames' ids)."""
    if not iobinding:
        return lambda: sess.run(["ids"], {"bgr": x})[0]
    binding = sess.io_binding()

    def run() -> np.ndarray:
        out = np.empty(x.shape[:3], np.uint8)
        binding.bind_cpu_input("bgr", x)
        binding.bind_output("ids", "cpu", 0, np.uint8, list(out.shape), out.ctypes.data)
        sess.run_with_iobinding(binding)
        return out

    return run


def variants(hw: tuple[int, int] = (192, 256), runs: int = 200, threads: int = 2,
             files: list[tuple[str, Path]] = ()) -> str:
    """The decoder readings the paper's text allows: where it joins S3 and how its 3x3 conv is built.

    `files` adds (row name, ONNX file) rows timed in the same rounds, e.g. the shipped float and
    INT8 weights.
    """
    import torch

    from .export import export_onnx
    from .model import LipNet, LipNetConfig

    lines = [f"Model only with in-graph preprocessing and argmax, uint8 {hw[1]}x{hw[0]}, CPU provider, {threads} threads, "
             "SE gates fused (`nchwc.py`) unless the row says not:", "",
             "| decoder | params | median ms | p95 ms | FPS | time vs shipped |", "|---|---|---|---|---|---|"]
    x = np.random.default_rng(0).integers(0, 255, (1, *hw, 3), dtype=np.uint8)
    runners, params = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (_, kw) in enumerate(VARIANTS):
            kw = dict(kw)
            fuse = kw.pop("fuse", True)
            bound = kw.pop("iobinding", False)
            torch.manual_seed(0)
            net = LipNet(LipNetConfig(**kw))
            path = export_onnx(net, Path(tmp) / f"v{i}.onnx", hw[1], with_logits=False)
            runners.append(_runner(_session(path, threads, fuse), x, bound))
            params.append(net.num_params())
        rows = [name for name, _ in VARIANTS]
        for name, path in files:
            runners.append(_runner(_session(path, threads), x))
            params.append(params[0])  # the shipped architecture
            rows.append(name)
    # Round-robin: each round times every variant, so a slow spell of the machine hits them all.
    times: list[list[np.ndarray]] = [[] for _ in runners]
    rounds = max(1, runs // 10)
    for _ in range(rounds):
        for run, out in zip(runners, times):
            out.append(_time(run, max(1, runs // rounds), warmup=2))
    base = None
    for name, n, ts in zip(rows, params, times):
        ms = np.concatenate(ts)
        med = float(np.median(ms))
        base = base or med
        lines.append(f"| {name} | {n / 1e6:.2f}M | {med:.1f} | {np.percentile(ms, 95):.1f} "
                     f"| {1000 / med:.1f} | {med / base:.2f}x |")
    lines += ["", f"{rounds} rounds of {max(1, runs // rounds)} runs, the variants in turn within each round."]
    return "\n".join(lines)


def _looped_clip(video: Path, n: int) -> tuple[list[np.ndarray], Fraction]:
    """The first `n` frames of `video`, played back to back until there are `n`; and its frame rate."""
    from .sources import VideoFile

    with VideoFile(video) as src:
        clip = [f.image for _, f in zip(range(n), src)]
        fps = src.fps
    return (clip * -(-n // len(clip)))[:n], fps


def _write_clip(path: Path, frames: list[np.ndarray], fps: Fraction, wh: tuple[int, int] | None = None,
                preset: str = "superfast") -> Path:
    """Write `frames` as an MP4, resized to `wh` (width, height) when given."""
    import cv2

    from .sinks import VideoWriter

    h, w = frames[0].shape[:2]
    with VideoWriter(path, fps, *(wh or (w, h)), preset=preset) as wr:
        for img in frames:
            wr.write(cv2.resize(img, wh, interpolation=cv2.INTER_LINEAR) if wh else img)
    return path


def _model_fps(engine, imgs: list[np.ndarray], streams: int) -> tuple[float, list[np.ndarray]]:
    """Frames per second of the model alone, `streams` frames at once (as `run_file` runs it), and the ids."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(engine.parse, imgs[: 2 * streams]))  # warm-up
        t = time.perf_counter()
        ids = list(pool.map(engine.parse, imgs))
        return len(imgs) / (time.perf_counter() - t), ids


def pipeline(video: Path, weights: Path, size: int = 0, threads: int = 0, limit: int = 300, repeats: int = 3,
             provider: str = "cpu") -> str:
    """Decode, model, render and encode alone; the four one after another; the app's threaded pipeline.

    The threaded figure is the median of `repeats` runs. The clip is played back to back until
    `limit` frames (short clips would time start-up, not the steady state), and resized to 1280x720 for the second input. The threaded pipeline runs
    twice: one frame at a time on all cores, and several frames at once, a core each (the app's
    default, `engine.plan_streams`).
    """
    from .engine import Engine, EngineConfig, plan_streams
    from .pipeline import render_frame, run_file
    from .sinks import VideoWriter
    from .sources import VideoFile

    cores = os.cpu_count() or 1
    streams, per_stream = plan_streams()
    settings = [(1, threads or cores), (streams, per_stream)]
    lines = ["| input | model runs | decode FPS | model FPS | render FPS | encode FPS | one after another FPS "
             "| threaded FPS | efficiency | efficiency cap, shared cores | threaded vs one after another |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        frames, fps = _looped_clip(video, limit)
        inputs = [_write_clip(Path(tmp) / "480.mp4", frames, fps), _write_clip(Path(tmp) / "720p.mp4", frames, fps, (1280, 720))]
        del frames
        for path in inputs:
            with VideoFile(path) as src:
                h, w_ = src.height, src.width
                t = time.perf_counter()
                imgs = [f.image for f in src]
                decode = len(imgs) / (time.perf_counter() - t)
            n = len(imgs)
            render = encode = seq = 0.0
            for k, (n_streams, n_threads) in enumerate(settings):
                engine = Engine(EngineConfig(weights=weights, provider=provider, input_size=size, threads=n_threads))
                if engine.provider != provider:
                    raise InputError(f"the {provider} provider could not be created here (see the log line above)")
                mh, mw = engine.model_shape(h, w_)
                model, ids = _model_fps(engine, imgs, n_streams)
                if k == 0:  # the stages alone, and all of them one after another
                    rendered = [i.copy() for i in imgs]  # drawn on in place, as the app does
                    t = time.perf_counter()
                    for r, m in zip(rendered, ids):
                        render_frame(r, m, 0.5, in_place=True)
                    render = n / (time.perf_counter() - t)
                    t = time.perf_counter()
                    with VideoWriter(Path(tmp) / "enc.mp4", fps, w_, h) as wr:
                        for r in rendered:
                            wr.write(r)
                    encode = n / (time.perf_counter() - t)
                    del rendered
                    t = time.perf_counter()
                    with VideoFile(path) as src, VideoWriter(Path(tmp) / "seq.mp4", fps, w_, h) as wr:
                        for f in src:
                            wr.write(render_frame(f.image, engine.parse(f.image), 0.5), f.pts)
                    seq = n / (time.perf_counter() - t)
                del ids
                runs = []
                for _ in range(repeats):
                    with VideoFile(path) as src, VideoWriter(Path(tmp) / "thr.mp4", src.fps, w_, h, src.time_base) as wr:
                        runs.append(run_file(src, engine, wr, streams=n_streams).fps)
                threaded = float(np.median(runs))
                del engine
                slowest = min(decode, model, render, encode)
                # CPU-seconds per frame: the model on all cores, each other stage on one of them
                cpu_per_frame = cores / model + 1 / decode + 1 / render + 1 / encode
                cap = min(slowest, cores / cpu_per_frame) / slowest
                how = f"{n_streams} frame{'s' if n_streams > 1 else ''} at once x {n_threads} thread{'s' if n_threads > 1 else ''}"
                if k == len(settings) - 1:
                    how += " (app)"
                lines.append(f"| {w_}x{h} (model {mw}x{mh}, {n} frames) | {how} | {decode:.0f} | {model:.1f} | {render:.0f} "
                             f"| {encode:.0f} | {seq:.1f} | **{threaded:.1f}** | {100 * threaded / slowest:.0f}% | {100 * cap:.0f}% "
                             f"| {threaded / seq:.2f}x |")
    lines += ["", f"The {limit} frames are `{video.name}` played back to back; threaded FPS is the median of "
              f"{repeats} runs. efficiency = threaded FPS / FPS of the "
              "slowest stage alone (model FPS measured with the same frames at once). All stages share the same "
              "cores, so their CPU time adds up: one after another (one frame at a time, all cores) is the floor, "
              "the slowest stage the ceiling. The cap is the best efficiency that CPU time allows: the model's "
              "(all cores x 1 / model FPS) plus one core's worth of each other stage per frame, spread perfectly "
              f"over the {cores} cores."]
    return "\n".join(lines)


def sizes_table(weights: Path, video: Path, ccp: Path, sizes: tuple[int, ...] = (192, 256, 320, 384, 512),
                limit: int = 150, rounds: int = 10, runs: int = 10) -> str:
    """Model-only FPS on a video's frames and CCP val mIoU (ccp protocol), per input size.

    The sizes are timed round-robin (`rounds` rounds, `runs` frames per size in each), so a slow
    spell of a shared machine hits them all alike. One engine per size, threads spinning as in
    the app's one-frame webcam path; each turn starts with an untimed pass over its frames.
    """
    from .engine import Engine, EngineConfig
    from .evaluate import evaluate
    from .sources import VideoFile

    with VideoFile(video) as src:
        imgs = [f.image for _, f in zip(range(limit), src)]
    engines = [Engine(EngineConfig(weights=weights, provider="cpu", input_size=s)) for s in sizes]
    times: list[list[np.ndarray]] = [[] for _ in sizes]
    for r in range(rounds):
        for eng, out in zip(engines, times):
            frames = [imgs[(r * runs + i) % len(imgs)] for i in range(runs)]
            out.append(_time(lambda: [eng.parse(f) for f in frames], 1) / runs)
    lines = ["| input long side | model on 640x480 | model-only FPS | median ms | CCP val mIoU (ccp) | vs 512 |",
             "|---|---|---|---|---|---|"]
    results = []
    for s, eng, ts in zip(sizes, engines, times):
        r = evaluate(eng, ccp, "val", "labels_lip", "ccp")
        results.append((s, eng.model_shape(480, 640), float(np.median(np.concatenate(ts))), r.scores.miou))
    ref = next((m for s, _, _, m in results if s == 512), results[-1][3])
    for s, (mh, mw), ms, miou in results:
        lines.append(f"| {s} | {mw}x{mh} | {1000 / ms:.1f} | {ms:.1f} | {100 * miou:.1f} | {100 * (miou - ref):+.1f} |")
    lines += ["", f"Model-only: one frame at a time on all cores, resize and argmax included (the webcam path), "
              f"the sizes in turn ({rounds} rounds of {runs} frames, the median round); `video` parses several "
              "frames at once and gets more (`bench pipeline`)."]
    return "\n".join(lines)


_MAXRSS = """import resource, sys
from lipparse_rt.cli import run
sys.argv = sys.argv[1:]
try:
    run()
finally:
    print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def memory(video: Path, weights: Path, sizes: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720), (1920, 1080), (3840, 2160)),
           frames: int = 60, zoom_video: Path | None = None, zoom_sizes: tuple[tuple[int, int], ...] = ((1280, 720), (3840, 2160))) -> str:
    """Peak RSS of `lipparse-rt video` (a process of its own) on the clip resized to each size;
    and with `--zoom` on `zoom_video` (people far from the camera, so that zoom searches and
    crops) resized to each of `zoom_sizes`."""
    import subprocess
    import sys

    runs = [(video, wh, False) for wh in sizes] + [(zoom_video, wh, True) for wh in zoom_sizes if zoom_video is not None]
    clips = {v: _looped_clip(v, frames) for v in dict.fromkeys(v for v, _, _ in runs)}
    lines = ["| input | frames | peak RSS (MB) | end-to-end FPS |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for v, (w, h), zoom in runs:
            path = _write_clip(Path(tmp) / f"{w}x{h}.mp4", *clips[v], (w, h), preset="ultrafast")
            cmd = [sys.executable, "-c", _MAXRSS, "lipparse-rt", "video", str(path), "--out", str(Path(tmp) / "out.mp4"),
                   "--force", "--weights", str(weights)] + ["--zoom"] * zoom
            res = subprocess.run(cmd, capture_output=True, text=True)
            rss = re.search(r"MAXRSS_KB (\d+)", res.stderr)
            fps_out = re.search(r"end-to-end ([\d.]+) FPS", res.stdout + res.stderr)
            if res.returncode != 0 or not rss:
                raise RuntimeError(f"lipparse-rt video failed on {w}x{h}: {res.stderr.strip()[-300:]}")
            name = f"{w}x{h}" + (f", `--zoom`, `{v.name}`" if zoom else "")
            lines.append(f"| {name} | {frames} | {int(rss.group(1)) / 1024:.0f} | {fps_out.group(1) if fps_out else '-'} |")
    lines += ["", f"`{video.name}` resized to each size (the `--zoom` rows: the clip they name); each run is a fresh "
              "`lipparse-rt video IN --out OUT` process (all its threads, the decoder, the encoder and ONNX Runtime "
              "included)."]
    return "\n".join(lines)


class _PacedCapture:
    """A fake camera: delivers frames at `fps` in real time, like a webcam."""

    def __init__(self, frames: list[np.ndarray], fps: float, count: int) -> None:
        self.frames, self.fps, self.count, self.i = frames, fps, count, 0
        self.t0 = time.perf_counter()

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return self.fps

    def read(self):
        if self.i >= self.count:
            return False, None
        due = self.t0 + self.i / self.fps
        time.sleep(max(0.0, due - time.perf_counter()))
        img = self.frames[self.i % len(self.frames)]
        self.i += 1
        return True, img

    def release(self) -> None:
        pass


def latency(weights: Path, video: Path, seconds: float = 10.0, fps: float = 30.0) -> str:
    """Capture-to-display latency through the live path with a fake camera at `fps`."""
    from .engine import Engine, EngineConfig
    from .pipeline import run_live
    from .sources import Camera, VideoFile

    with VideoFile(video) as src:
        imgs = [f.image for _, f in zip(range(90), src)]
    engine = Engine(EngineConfig(weights=weights, provider="cpu"))
    count = int(seconds * fps)
    cap = _PacedCapture(imgs, fps, count)
    with Camera("0", opener=lambda spec: cap, finite=True) as cam:
        stats = run_live(cam, engine, display=None)
    return "\n".join([
        "| camera | frames offered | shown | stale dropped | shown FPS | latency p50 ms | p95 ms | model ms |",
        "|---|---|---|---|---|---|---|---|",
        f"| fake, {fps:.0f} FPS, {imgs[0].shape[1]}x{imgs[0].shape[0]} | {count} | {stats.frames_out} | {stats.dropped} "
        f"| {stats.fps:.1f} | {stats.latency(50):.1f} | {stats.latency(95):.1f} | {float(np.median(stats.model_ms)):.1f} |",
    ])


def clip_frames(video: Path, n: int) -> tuple[str, list[np.ndarray]]:
    """A label for `video` and its first `n` frames (fewer if it is shorter; never looped)."""
    from .sources import VideoFile

    with VideoFile(video) as src:
        imgs = [f.image for _, f in zip(range(n), src)]
    return f"{video.name} ({imgs[0].shape[1]}x{imgs[0].shape[0]})", imgs


def flicker(clips: list[tuple[str, list[np.ndarray]]], runs: list[tuple[str, Path, bool]]) -> str:
    """Frame-to-frame stability: the share of pixels whose class changes between consecutive frames.

    `clips` are (label, frames), `runs` are (label, weights, flip). Part of the change is the
    people moving, the same for every run; what differs between runs on the same frames is the
    model's own flicker.
    """
    from .engine import Engine, EngineConfig

    lines = ["| clip | weights | frames | ids changed, mean | median | p95 |", "|---|---|---|---|---|---|"]
    for clip, imgs in clips:
        for label, weights, flip in runs:
            engine = Engine(EngineConfig(weights=weights, provider="cpu", flip=flip))
            changed = _changes([engine.parse(img) for img in imgs])
            lines.append(f"| {clip} | {label} | {len(imgs)} | {changed.mean():.2f}% | {np.median(changed):.2f}% "
                         f"| {np.percentile(changed, 95):.2f}% |")
    lines += ["", "Ids at the model's resolution (default input size), one frame after another on the CPU provider."]
    return "\n".join(lines)


def _changes(maps: list[np.ndarray]) -> np.ndarray:
    """Percent of pixels whose class changes between each two consecutive class maps (same size)."""
    return 100 * np.array([np.mean(a != b) for a, b in zip(maps, maps[1:])])


def write_section(path: Path, name: str, body: str, command: str) -> None:
    """Replace (or add) section `name` of a Markdown file, with the command that made it."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n## {name}\n\n`{command}` on {machine()}, {time.strftime('%Y-%m-%d')}:\n\n{body}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nMade by `lipparse-rt bench`; re-run to refresh.\n"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def zoom_table(weights: Path, data: Path, street: Path, close: Path | None = None, viton: int = 500,
               frames: int = 300, runs: int = 10, beside: int = 600, walkers: int = 50, walk_frames: int = 30,
               walk_vary: int = 10) -> str:
    """Person zoom (`--zoom`) against the whole frame: mIoU on the labelled splits as they are and
    with CCP val's people standing at a distance (each photo shrunk into a 1280x720 frame of the
    street clip's empty room, `evaluate.AtDistance`; alone, two standing apart, and walking across
    it as a stream, `evaluate.evaluate_walk`), with the paired-bootstrap difference; and, on the street clip (people far from the camera), on the
    street clip beside itself `beside` frames later (people apart) and on `close` (a person close
    to it), the model time per frame both ways in turn (`runs` frames each), the frame-to-frame
    changes and the frames parsed as tiles."""
    import cv2

    from .engine import Engine, EngineConfig
    from .data import find_pairs, read_mask
    from .evaluate import AtDistance, evaluate, evaluate_walk
    from .metrics import paired_bootstrap
    from .sources import VideoFile, read_image_any
    from .zoom import Zoom

    engine = Engine(EngineConfig(weights=weights, provider="cpu"))
    with VideoFile(street) as src:
        clip = [f.image for _, f in zip(range(max(frames, 21)), src)]
    room = cv2.resize(clip[20], (1280, 720), interpolation=cv2.INTER_LINEAR)  # frames 0-50: nobody in the room
    ccp, vit = data / "ccp", data / "viton" / "test"
    rows = [("CCP val, `ccp` protocol", dict(root=ccp, split="val", labels="labels_lip", protocol="ccp")),
            ("CCP val, 20 classes vs `labels_lip_sided`", dict(root=ccp, split="val", labels="labels_lip_sided")),
            (f"VITON test, first {viton} photos", dict(root=vit, limit=viton)),
            ("CCP val at 80% of a 1280x720 frame's height, `ccp`",
             dict(root=ccp, split="val", labels="labels_lip", protocol="ccp", place=AtDistance(room, 0.8))),
            ("CCP val at 50% of a 1280x720 frame's height, `ccp`",
             dict(root=ccp, split="val", labels="labels_lip", protocol="ccp", place=AtDistance(room, 0.5)))]
    # the photos at a distance also searched as a stream's frame is (`detect_scale`, below a still's)
    stream = Zoom(engine).detect / engine.input_size
    runs_ = [(name, kw, True) for name, kw in rows] + [
        (f"{name}, searched as a video frame ({stream:g}x)", kw, Zoom(engine, still_scale=stream)) for name, kw in rows[3:]]
    # two people standing apart: each photo in the left third, the photo half the split later in
    # the right third; tiles (the default) and one crop around both (`groups=1`, before tiles)
    pairs = find_pairs(ccp, "val", labels="labels_lip")

    def partner(i: int) -> tuple[np.ndarray, np.ndarray]:
        img_path, lab_path = pairs[(i + len(pairs) // 2) % len(pairs)]
        return read_image_any(img_path), read_mask(lab_path)

    apart = dict(root=ccp, split="val", labels="labels_lip", protocol="ccp", place=AtDistance(room, 0.5, partner=partner))
    name = "two CCP val photos apart, each at 50% of a 1280x720 frame's height, `ccp`"
    runs_ += [(name, apart, True), (f"{name}, one crop around both (no tiles)", apart, Zoom(engine, groups=1))]
    # people walking across the room as a stream (`evaluate_walk`): the first `walkers` photos,
    # `walk_frames` frames each, give or take `walk_vary` (seeded: people come in at any frame, not
    # in step with the search), parsed by `Zoom.parse` as `video --zoom` does (the search in line)
    # and as `webcam --zoom` does (the search on its own thread)
    for height in (0.8, 0.5):
        walk = dict(root=ccp, split="val", labels="labels_lip", protocol="ccp", walk=AtDistance(room, height),
                    frames=walk_frames, vary=walk_vary, limit=walkers)
        name = (f"CCP val walking across the room at {height:.0%} of the frame's height, "
                f"{walk_frames - walk_vary}-{walk_frames + walk_vary} frames each, `ccp`")
        runs_ += [(name + ", `video`", walk, Zoom(engine)), (name + ", `webcam`", walk, Zoom(engine, background=True)),
                  (name + ", `video`, searched every 30 frames even with nobody followed", walk,
                   Zoom(engine, idle=Zoom(engine).refresh))]
    lines = ["| images | whole frame mIoU | `--zoom` mIoU | difference [95% paired bootstrap] |", "|---|---|---|---|"]
    whole = {}  # each set of photos is parsed whole once
    for name, kw, zoom in runs_:
        score = evaluate_walk if "walk" in kw else evaluate
        if id(kw) not in whole:
            whole[id(kw)] = score(engine, **kw)
        plain, zoomed = whole[id(kw)], score(engine, zoom=zoom, **kw)
        d = paired_bootstrap(zoomed.per_image, plain.per_image)
        lines.append(f"| {name} ({plain.images}) | {100 * plain.scores.miou:.1f} | {100 * zoomed.scores.miou:.1f} | "
                     f"{100 * d.diff:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}] |")
    # people apart in a stream: the street clip beside itself `beside` frames later (people walk
    # in both halves; a clip too short for that: beside itself)
    with VideoFile(street) as src:
        late = [f.image for f in itertools.islice(src, beside, beside + frames)]
    clips = [(f"`{street.name}`", clip[:frames]),
             (f"`{street.name}` beside itself {beside if late else 0} frames later",
              [np.hstack([a, b]) for a, b in zip(clip[:frames], late or clip)])]
    if close is not None:
        with VideoFile(close) as src:
            clips.append((f"`{close.name}`", [f.image for _, f in zip(range(frames), src)]))
    lines += ["", f"Model time per frame, one frame at a time, {runs} frames each way in turn (all turns' time over all frames; "
              "the searches of the whole frame included: every 30 frames, every 10 while nobody is followed), and "
              "pixels whose class changes between "
              "consecutive frames (on the whole frame's map):", "",
              "| clip | whole frame ms | `--zoom` ms | ratio | one search's enlarged parse, ms | changes, whole "
              "| changes, `--zoom` | called a person, whole | `--zoom` | frames as tiles | enlarged searches |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, imgs in clips:
        zoom = Zoom(engine)
        plain_ms, zoom_ms, changed, person = _zoom_runs(engine, zoom, imgs, runs)
        searches = zoom.searches  # before the timing below adds its own
        side = zoom.search_side(*imgs[0].shape[:2])
        search_ms = float(np.median(_time(lambda: zoom.enlarged(imgs[0], side, zoom.search_budget), runs)))
        lines.append(f"| {label} ({imgs[0].shape[1]}x{imgs[0].shape[0]}, {len(imgs)} frames) | {plain_ms:.1f} | "
                     f"{zoom_ms:.1f} | {zoom_ms / plain_ms:.2f}x | {search_ms:.1f} (long side {side}) | {changed[0]:.2f}% | "
                     f"{changed[1]:.2f}% | {person[0]:.1f}% | {person[1]:.1f}% | {zoom.tiled} | {searches} |")
    return "\n".join(lines)


def _zoom_runs(engine, zoom, imgs: list[np.ndarray], runs: int) -> tuple[float, float, list[float], list[float]]:
    """`zoom_table`'s timing: a clip's frames in order, whole and zoomed in turn (zoom follows the
    people); ms a frame each way (all turns' time over all frames: a median of the turns would
    leave out the turns with a search), and each way's share of pixels changing class between
    consecutive frames and share called a person, on the whole frame's map."""
    from .engine import scale_ids

    times: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    maps: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    sizes = []  # frames in each turn (the last may be short)
    for r in range(0, len(imgs), runs):
        part = imgs[r:r + runs]
        sizes.append(len(part))
        times[0].append(_time(lambda: maps[0].extend(engine.parse(f) for f in part), 1, warmup=0) / len(part))
        times[1].append(_time(lambda: maps[1].extend(zoom.parse(f) for f in part), 1, warmup=0) / len(part))
    plain_ms, zoom_ms = (float(np.average(np.concatenate(t), weights=sizes)) for t in times)
    grid = maps[0][0].shape  # zoom's maps (at each crop's scale) brought to the whole frame's map
    on_grid = [[scale_ids(a, *grid) for a in m] for m in maps]
    changed = [float(_changes(m).mean()) for m in on_grid]
    person = [100 * float(np.mean([np.mean(a > 0) for a in m])) for m in on_grid]
    return plain_ms, zoom_ms, changed, person
