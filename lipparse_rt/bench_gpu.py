"""`lipparse-rt bench gpu`: LIP-Net's model-only speed on a CUDA GPU through PyTorch (needs torch).

The graph timed is the one that ships (uint8 BGR in -> preprocess -> LIP-Net -> argmax -> uint8
ids out), replayed as a CUDA graph so that launch gaps do not hide the GPU's speed. Each row is
timed with CUDA events: batch-1 latency (median and p95 of single replays) and throughput at a
larger batch. fp32 runs with cuDNN's TF32 convolutions (PyTorch's default); fp16 casts the model.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .export import Deployable, load_checkpoint
from .model import LipNet


def _graphed(model: torch.nn.Module, x: torch.Tensor):
    """Warm `model` on `x` on a side stream, capture one call as a CUDA graph.

    Returns the graph's replay function, the output tensor it writes, and the seconds spent.
    """
    t0 = time.perf_counter()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):
            model(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        out = model(x)
    graph.replay()
    torch.cuda.synchronize()
    return graph.replay, out, time.perf_counter() - t0


def _event_times(fn, runs: int) -> np.ndarray:
    """Milliseconds of each of `runs` calls of `fn`, timed on the GPU with CUDA events."""
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)]
    for start, end in pairs:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return np.array([s.elapsed_time(e) for s, e in pairs])


def gpu_table(weights: Path | None, sizes: tuple[tuple[int, int], ...] = ((512, 512), (192, 256)),
              batch: int = 64, runs: int = 300, frame: np.ndarray | None = None) -> str:
    """Markdown table: per input size and precision, batch-1 latency and FPS, and batch throughput.

    With `frame` (a BGR image, resized to each input), the batch-1 input is that frame and each
    row says how many of its pixels get the class the fp32 row gave them (fp16 against fp32).
    """
    import cv2

    if not torch.cuda.is_available():
        raise InputError("bench gpu needs a CUDA GPU that torch can see")
    net = load_checkpoint(weights)[0] if weights is not None else LipNet()
    name = torch.cuda.get_device_name()
    rows = [f"GPU: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
            f"{'weights ' + weights.name if weights else 'random weights'}; CUDA graphs; batch-1 latency over {runs} "
            f"replays, throughput over {runs // 10} replays of batch {batch}.", "",
            "| input (HxW) | precision | capture s | batch-1 median ms | p95 ms | batch-1 FPS | batch-"
            f"{batch} images/s | ids as fp32 |", "|---|---|---|---|---|---|---|---|"]
    torch.backends.cudnn.benchmark = True
    rng = np.random.default_rng(0)
    for h, w in sizes:
        for precision in ("fp32", "fp16"):
            model = Deployable(copy.deepcopy(net)).eval().cuda().to(memory_format=torch.channels_last)
            if precision == "fp16":  # normalise in fp32 from uint8, run the network in fp16
                model.net = _HalfInput(model.net.half())
            img = (cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)[None] if frame is not None
                   else rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8))
            x1 = torch.from_numpy(np.ascontiguousarray(img)).cuda()
            xb = torch.from_numpy(rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)).cuda()
            replay1, out1, capture = _graphed(model, x1)
            if out1.shape != (1, h, w) or out1.dtype != torch.uint8 or int(out1.max()) >= 20:
                raise RuntimeError(f"unexpected output {tuple(out1.shape)} {out1.dtype}")
            ids = out1.cpu().numpy()
            if precision == "fp32":
                fp32_ids = ids
            agree = f"{100 * float(np.mean(ids == fp32_ids)):.3f}%" if frame is not None else "-"
            lat = _event_times(replay1, runs)
            replayb, _, _ = _graphed(model, xb)
            tb = _event_times(replayb, max(runs // 10, 5))
            rows.append(f"| {h}x{w} | {precision} | {capture:.2f} | {np.median(lat):.3f} | "
                        f"{np.percentile(lat, 95):.3f} | {1000 / np.median(lat):,.0f} | "
                        f"{batch * 1000 / np.median(tb):,.0f} | {agree} |")
            del model, replay1, replayb
            torch.cuda.empty_cache()
    return "\n".join(rows)


class _HalfInput(torch.nn.Module):
    """Run a half-precision network on the float32 normalised input; its fp16 logits go to the argmax."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.inner = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.half().contiguous(memory_format=torch.channels_last))
