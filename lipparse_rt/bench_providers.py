"""`lipparse-rt bench providers`: the app's own ONNX Runtime sessions on every provider that can be made.

What `bench gpu` cannot say (it times the graph in PyTorch): how fast the engine users run is on
ONNX Runtime's TensorRT and CUDA providers, what their first run costs, and what fp16 gives.
Each row makes the engine as the app does (`Engine`, the provider named; its start-up check of
the GPU's class scores against the CPU's too), times its first run (session creation, that
check and the first frame: cuDNN's algorithm search, TensorRT's engine build),
then model-only batch-1 runs two ways: `session.run` with the frame and the ids in host memory
(what `Engine.infer` does), and through an IO binding with both already on the GPU (the model
alone, no copies). fp16 rows run a copy of the weights converted by ONNX Runtime's own tool
(`onnxruntime.transformers.float16`, inputs and outputs kept as they are; needs the onnx
package), not checked at start-up but compared with the float ids on a real frame. The CPU
provider, on the same machine and in the same run, is the baseline of the ratio column.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from .bench import _time
from .engine import PROVIDERS, Engine, EngineConfig, letterbox, runtime_cause


def fp16_copy(weights: Path, out: Path) -> Path:
    """Write `weights` converted to fp16 (float inputs and outputs kept in fp32), with the head the
    GPU providers get (gpu_graph.py), to `out`."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from .gpu_graph import nchw_head

    model = onnx.load(str(weights))
    nchw_head(model)
    onnx.save(convert_float_to_float16(model, keep_io_types=True), str(out))
    return out


def _device_runner(engine: Engine, x: np.ndarray):
    """One run with the frame and the ids on the GPU (IO binding), or None on the CPU provider."""
    import onnxruntime as ort

    if engine.provider == "cpu":
        return None
    sess = engine.session
    binding = sess.io_binding()
    binding.bind_ortvalue_input("bgr", ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
    binding.bind_output("ids", "cuda", 0)
    return lambda: sess.run_with_iobinding(binding)


def providers_table(weights: Path, frame: np.ndarray, providers: tuple[str, ...] = ("tensorrt", "cuda", "cpu"),
                    sizes: tuple[tuple[int, int], ...] = ((512, 512), (192, 256)), runs: int = 300,
                    fp16: bool = True) -> str:
    """Markdown table: per provider, precision and model input (h, w), first run, batch-1 latency and FPS.

    `frame` is resized to each input (aspect not kept: speed does not mind, and 512x512 is the
    paper's input); 192x256 is what the app feeds the model for a 640x480 frame.
    """
    import cv2
    import onnxruntime as ort

    lines = ["| provider | weights | input (HxW) | first run s | host in/out median ms | p95 ms | FPS "
             "| on the GPU median ms | FPS | vs CPU | ids as fp32 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes: list[str] = []
    baseline: dict[tuple[int, int], float] = {}
    reference: dict[tuple[int, int], np.ndarray] = {}
    failed: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        files = [("fp32", weights)]
        if fp16 and any(p != "cpu" for p in providers):
            try:
                files.append(("fp16", fp16_copy(weights, Path(tmp) / "lipnet-fp16.onnx")))
            except Exception as exc:  # no onnx package, a graph the converter refuses
                notes.append(f"fp16 copy not made: {runtime_cause(exc)[:160]}")
        for provider in sorted(providers, key=lambda p: p == "cpu", reverse=True):  # the CPU baseline first
            for precision, path in files:
                if provider == "cpu" and precision == "fp16":
                    continue
                for size in sizes if provider not in failed else ():
                    t = time.perf_counter()
                    engine = Engine(EngineConfig(weights=path, provider=provider, input_size=max(size), flip=False,
                                                 face=0, verify=precision == "fp32"))  # fp16: timed as it computes
                    if engine.provider != provider:
                        notes.append(f"{provider}: not used here (it could not be created, or its class scores "
                                     "differ from the CPU's: see the log line above)")
                        failed.add(provider)
                        break
                    x, _ = letterbox(cv2.resize(frame, size[::-1], interpolation=cv2.INTER_AREA), max(size))
                    ids = engine.infer(x)
                    first = time.perf_counter() - t
                    host = _time(lambda: engine.infer(x), runs)
                    dev = _device_runner(engine, x)
                    dev_ms = np.median(_time(dev, runs)) if dev else float("nan")
                    med = float(np.median(host))
                    if provider == "cpu":
                        baseline[size] = med
                    if precision == "fp32" and size not in reference:
                        reference[size] = ids
                    agree = f"{100 * float(np.mean(ids == reference[size])):.3f}%" if size in reference else "-"
                    ratio = f"{baseline[size] / min(med, dev_ms if dev else med):.1f}x" if size in baseline else "-"
                    lines.append(f"| {provider} | {precision} | {x.shape[1]}x{x.shape[2]} | {first:.2f} | {med:.3f} "
                                 f"| {np.percentile(host, 95):.3f} | {1000 / med:,.0f} | "
                                 + (f"{dev_ms:.3f} | {1000 / dev_ms:,.0f}" if dev else "- | -")
                                 + f" | {ratio} | {agree} |")
                    del engine
    lines += ["", f"onnxruntime {ort.__version__}, providers in this build: {', '.join(ort.get_available_providers())}. "
              f"Batch 1; {runs} timed runs after one warm-up; one frame of the clip, letterboxed as the app does. "
              "first run = the engine's creation (with its check against the CPU for fp32 on a GPU) and its "
              "first frame. vs CPU = the CPU provider's host median over the row's best median, same input, same run. ids as fp32 = the share of pixels whose class matches "
              "the CPU provider's with the fp32 weights on the same frame. TensorRT builds fp16 engines from "
              "either weights (the app's default)."]
    lines += [f"- {n}" for n in dict.fromkeys(notes)]
    return "\n".join(lines)


def gpu_providers() -> tuple[str, ...]:
    """The GPU providers this ONNX Runtime build lists, TensorRT first, then the CPU."""
    import onnxruntime as ort

    listed = ort.get_available_providers()
    return tuple(s for s in ("tensorrt", "cuda") if PROVIDERS[s] in listed) + ("cpu",)
