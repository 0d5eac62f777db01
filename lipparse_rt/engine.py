"""ONNX Runtime engine: uint8 BGR frame in, uint8 LIP ids at the frame's size out.

Tries TensorRT -> CUDA -> CPU, reports the provider really in use and says in one log line
when a requested GPU provider could not be created. Resizes keeping the aspect ratio (the long
side to `input_size`, the other side padded to a multiple of 16), so people are never stretched
and no compute is spent on letterbox bars wider than 15 pixels.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from .classes import FLIP_LUT, NAMES
from .errors import InputError, ModelError, WeightsError
from .heap import release_freed

log = logging.getLogger(__name__)

U8 = NDArray[np.uint8]

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
SHORT = {v: k for k, v in PROVIDERS.items()}
STRIDE = 16
# The largest model long side (`--size`, and what scales or the face enlarge to): 4096 took 6.3 GB
# and 54 s for one CCP photo (`/usr/bin/time lipparse-rt image PHOTO --masks m --size 4096`).
MAX_INPUT = 2048
PAD_BGR = (104, 116, 124)  # the training mean: normalises to ~0
WEIGHTS_ENV = "LIPPARSE_WEIGHTS"


def weights_dir() -> Path:
    """Where the shipped weights are: inside the installed package (a wheel, `pip install .`), else
    weights/ beside it (a checkout, `pip install -e .`)."""
    here = Path(__file__).resolve().parent
    return here / "weights" if (here / "weights").is_dir() else here.parent / "weights"


def default_weights() -> Path:
    """$LIPPARSE_WEIGHTS, else the shipped lipnet.onnx (`weights_dir`)."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env) if env else weights_dir() / "lipnet.onnx"


def int8_weights() -> Path:
    """The shipped INT8 weights, lipnet-int8.onnx (`weights_dir`; made by `lipparse-rt quantize`)."""
    return weights_dir() / "lipnet-int8.onnx"


def app_cpu_weights() -> Path | None:
    """What the app runs on the CPU provider when no weights are named: the shipped INT8 copy.

    None where $LIPPARSE_WEIGHTS names weights (they run as they are) or the copy is missing.
    """
    return None if os.environ.get(WEIGHTS_ENV) or not int8_weights().is_file() else int8_weights()


def trt_cache_dir() -> Path:
    """Where TensorRT engines are cached: $XDG_CACHE_HOME/lipparse-rt/tensorrt."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "lipparse-rt" / "tensorrt"


@dataclass(frozen=True)
class EngineConfig:
    """What to run and how.

    Args:
        weights: the ONNX file; None: the app's default (`default_weights`, and on the CPU
            provider the shipped INT8 copy, `app_cpu_weights`, unless $LIPPARSE_WEIGHTS names one).
        provider: 'auto' (TensorRT -> CUDA -> CPU), 'tensorrt', 'cuda' or 'cpu'.
        input_size: the model's long side in pixels; 0 takes the size stored in the weights.
        threads: intra-op threads for the CPU provider; 0 lets ONNX Runtime choose.
        fp16: let TensorRT build an fp16 engine.
        flip: flip test-time augmentation in `parse`: the frame and its mirror, averaged (about
            2x the model time; needs weights with a 'logits' output); None: where the weights
            have that output (`image`'s default).
        fuse: on the CPU, keep the SE gates in ONNX Runtime's blocked layout (`nchwc.py`).
        verify: check a GPU session's class scores against the CPU's on a test frame at start-up
            and drop a provider that computes them otherwise (`Engine._mismatch`).
        cpu_weights: weights to run instead of `weights` when the session ends up on the CPU
            provider (with `weights` None: the shipped INT8 copy on a CPU, the float weights on a GPU).
        scales: test-time scales in `parse`, multiples of the long side: the frame is parsed at
            each and the class probabilities averaged (with `flip`, each scale's mirror too); ()
            parses at the long side alone (needs weights with a 'logits' output).
        face: scale by the face (`image`'s default, 40): where the first parse's faces are shorter
            than this many model pixels, the frame is parsed again enlarged so that they reach
            it, at most `FACE_MOST` times (the model parses people best at about the size it was
            trained at; close-ups are left as they are); 0: off.
    """

    weights: Path | None = None
    provider: str = "auto"
    input_size: int = 0
    threads: int = 0
    fp16: bool = True
    spinning: bool = True
    flip: bool | None = False
    fuse: bool = True
    verify: bool = True
    cpu_weights: Path | None = None
    scales: tuple[float, ...] = ()
    face: int = 0

    def __post_init__(self) -> None:
        if self.provider not in ("auto", *PROVIDERS):
            raise InputError(f"unknown provider '{self.provider}': use auto, tensorrt, cuda or cpu")
        if self.input_size and (not 32 <= self.input_size <= MAX_INPUT or self.input_size % STRIDE):
            raise InputError(f"input size {self.input_size} must be a multiple of {STRIDE} from 32 to {MAX_INPUT}")
        if any(not 0.25 <= s <= 4 for s in self.scales):
            raise InputError(f"scales {', '.join(f'{s:g}' for s in self.scales)}: each must lie in 0.25..4")


_preloaded = False


def preload_gpu_libraries() -> None:
    """Load the CUDA and cuDNN libraries that pip's NVIDIA wheels hold (`onnxruntime-gpu[cuda,cudnn]`).

    ONNX Runtime's CUDA provider library names them without a path to look in (no RPATH), so the
    loader finds them only where CUDA is installed system-wide or on LD_LIBRARY_PATH, not in the
    wheels' own folders. `onnxruntime.preload_dlls` (ONNX Runtime 1.21+) loads them from the
    NVIDIA packages beside onnxruntime, else by name; it prints what it could not load, which
    stays quiet here (the engine says in one line which provider could not be created, and why:
    `provider_problem`). Once per process.
    """
    global _preloaded
    import warnings

    import onnxruntime as ort

    if _preloaded or not hasattr(ort, "preload_dlls"):
        return
    _preloaded = True
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ort.preload_dlls()
        except Exception as exc:  # a layout this ONNX Runtime does not expect: the providers say the rest
            log.debug("CUDA libraries not preloaded: %s", exc)


def gpu_driver_problem() -> str | None:
    """'no NVIDIA driver: libcuda.so.1 not found' where the system's loader cannot find the
    driver's library (Linux): then no GPU provider can be created, whatever ONNX Runtime lists.
    None where it loads, or off Linux."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        ctypes.CDLL("libcuda.so.1", mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    except OSError as exc:
        if "cannot open shared object file" in str(exc):
            return "no NVIDIA driver: libcuda.so.1 not found"
    return None


def provider_problem(short: str) -> str | None:
    """Why the GPU provider `short` ('cuda', 'tensorrt') could not be created, where the system's
    loader can tell: no NVIDIA driver, else the first library the provider needs that cannot be
    found (TensorRT's own, CUDA's), else cuDNN. None where they all load (a driver but no usable
    GPU, say) or off Linux. ONNX Runtime's own report of it is kept out of the console (its log is
    kept to fatal errors), so this is what the engine's one line can name.
    """
    import ctypes
    import sys

    import onnxruntime as ort

    if not sys.platform.startswith("linux"):
        return None
    if problem := gpu_driver_problem():  # the driver first: no GPU at all is the likelier cause
        return problem
    lib = Path(ort.__file__).parent / "capi" / f"libonnxruntime_providers_{short}.so"
    for name in ([str(lib)] if lib.is_file() else []) + ["libcudnn.so.9"]:
        try:
            ctypes.CDLL(name, mode=os.RTLD_LAZY | os.RTLD_LOCAL)
        except OSError as exc:
            if "cannot open shared object file" not in str(exc):
                continue
            missing = Path(str(exc).split(":")[0].strip()).name
            if missing.startswith(("libnvinfer", "libnvonnxparser")):
                return f"TensorRT is not installed: {missing} not found"
            return f"{missing} not found; pip install 'onnxruntime-gpu[cuda,cudnn]' brings CUDA and cuDNN"
    return None


def plan_streams(streams: int = 0, cores: int | None = None) -> tuple[int, int]:
    """(frames parsed at once, intra-op threads per frame) for a video file.

    LIP-Net is many small ops: one frame split over two threads spends much of its time
    waiting at each op's barrier. Frames in parallel, a thread each, keep every core busy
    (`lipparse-rt bench pipeline` measures both). `streams` 0 picks one per core, up to 4.
    """
    cores = cores or os.cpu_count() or 1
    n = streams if streams > 0 else min(cores, 4)
    return n, max(1, cores // n)


def padded(n: int) -> int:
    """`n` rounded up to a multiple of the model stride (what the model's input is padded to)."""
    return -(-n // STRIDE) * STRIDE


def fit_size(h: int, w: int, long_side: int) -> tuple[int, int, int, int]:
    """Return (resized h, w, padded h, w): the long side to `long_side`, aspect kept, padded to x16."""
    scale = long_side / max(h, w)
    rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
    return rh, rw, padded(rh), padded(rw)


def shrink(bgr: U8, w: int, h: int) -> U8:
    """Resize to (w, h): area-averaged when shrinking, bilinear when enlarging.

    OpenCV's INTER_AREA is fast only for whole-number factors (it takes ~1.2 ms for 640x480 ->
    256x192, a 2.5x shrink, against ~0.2 ms for bilinear). So a shrink goes by the largest
    whole factor that divides both sides, area-averaged, then bilinear for what is left (640x480:
    2x area, then 320x240 -> 256x192): ~0.3 ms, within 1 grey level of INTER_AREA on average.
    """
    sh, sw = bgr.shape[:2]
    if h >= sh or w >= sw:
        return cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    k = next(k for k in range(min(sh // h, sw // w), 0, -1) if sh % k == 0 and sw % k == 0)
    if k > 1:
        bgr = cv2.resize(bgr, (sw // k, sh // k), interpolation=cv2.INTER_AREA)
    if bgr.shape[:2] == (h, w):
        return bgr
    return cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR if k > 1 else cv2.INTER_AREA)


def letterbox(bgr: U8, long_side: int) -> tuple[U8, tuple[int, int]]:
    """Resize one frame (aspect kept, long side to `long_side`) and pad it to multiples of 16.

    Returns a 1xHxWx3 uint8 batch and the (height, width) of the image inside it (top left).
    """
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise InputError(f"expected an HxWx3 uint8 BGR frame, got {bgr.shape} {bgr.dtype}")
    h, w = bgr.shape[:2]
    rh, rw, ph, pw = fit_size(h, w, long_side)
    batch = np.empty((1, ph, pw, 3), np.uint8)
    batch[0, rh:, :] = PAD_BGR
    batch[0, :rh, rw:] = PAD_BGR
    batch[0, :rh, :rw] = shrink(bgr, rw, rh)
    return batch, (rh, rw)


def scale_ids(ids: U8, h: int, w: int) -> U8:
    """A class map scaled to h x w by nearest neighbour (the map itself when it has that size)."""
    return ids if ids.shape == (h, w) else cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST)


class Engine:
    """A LIP-Net ONNX session; `run(bgr)` returns the class map at the frame's own size."""

    def __init__(self, config: EngineConfig) -> None:
        import onnxruntime as ort

        self.config = config
        weights = Path(config.weights) if config.weights is not None else default_weights()
        cpu_weights = (config.cpu_weights if config.weights is not None or config.cpu_weights is not None
                       else app_cpu_weights())
        wanted = self._wanted(ort.get_available_providers())
        gpus = [SHORT[name] for name, _ in wanted if SHORT[name] != "cpu"]
        skipped = gpus if gpus and gpu_driver_problem() else []  # none can be made: not built or tried (~1 s a start)
        wanted = [(name, opts) for name, opts in wanted if SHORT[name] not in skipped]
        cpu_only = [name for name, _ in wanted] == [PROVIDERS["cpu"]]
        path = Path(cpu_weights if cpu_weights is not None and cpu_only else weights)
        model = None
        if not cpu_only:
            from .gpu_graph import gpu_model

            preload_gpu_libraries()
            model = gpu_model(path)  # the head's upsampling in NCHW: CUDA's Resize got NHWC wrong
        ort.set_default_logger_severity(4)  # failed GPU providers: we say it in one line below
        self.session = self._load(path, wanted, model)
        self.provider = _provider_of(self.session)
        while self.provider != "cpu" and config.verify and (problem := self._mismatch(path)):  # checked once
            log.warning("the %s session's class scores differ from the CPU's on a test frame (%s): not used",
                        self.provider, problem)
            wanted = [(name, opts) for name, opts in wanted if SHORT[name] != self.provider]
            self.session = self._load(path, wanted, model)
            self.provider = _provider_of(self.session)
        if self.provider == "cpu" and cpu_weights is not None and path != Path(cpu_weights):
            path = Path(cpu_weights)  # a GPU provider was offered but could not be created
            self.session = self._load(path, [(PROVIDERS["cpu"], {})])
        self.weights = path
        missing = skipped + [SHORT[name] for name, _ in wanted
                          if SHORT[name] != "cpu" and name not in self.session.get_providers()]
        if missing:
            level = logging.WARNING if config.provider != "auto" else logging.INFO
            problems = {p: problem for p in missing if (problem := provider_problem(p))}
            why = ([f"{p}: {problem}" for p, problem in problems.items()] if len(set(problems.values())) > 1
                   else list(problems.values())[:1])  # one cause for all (no driver) is said once
            log.log(level, "%s provider could not be created (%s): running on %s", "/".join(missing),
                    "; ".join(why) or "no usable GPU or its libraries", self.provider)
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self._check_model(path)
        self.input_size = _input_size(config, self.session)
        logits = self.has_logits
        self._logits_last = logits and self._output("logits").shape[-1] == len(NAMES)  # else 1x20xHxW
        self.flip = logits if config.flip is None else config.flip
        if self.flip and not logits:
            raise WeightsError(f"cannot use weights '{path}' with flip: no 'logits' output (re-export them)")
        self.scales = tuple(config.scales)
        self.face = config.face if logits else 0  # needs the class probabilities
        if self.scales and not logits:
            raise WeightsError(f"cannot use weights '{path}' with scales: no 'logits' output (re-export them)")
        self.int8 = "quantization" in self.meta  # written by `lipparse-rt quantize`
        self.fused = 0  # SE gates kept in ONNX Runtime's blocked layout (see nchwc.py)
        if self.provider == "cpu" and config.fuse:
            self._fuse(path)

    def _mismatch(self, path: Path) -> str | None:
        """What is wrong with the GPU session's class scores on a test frame, against a CPU session
        of the same weights; None when they agree (or the weights are not the app's: `_check_model`
        says so next).

        A GPU provider may compute the graph otherwise than the CPU: ONNX Runtime's CUDA Resize got
        the NHWC head wrong (gpu_graph.py), and TensorRT builds fp16 engines. Class maps of the
        synthetic test frame are mostly background, so the logits are compared: their mean absolute
        difference relative to the CPU's mean spread. fp16 rounding stays well under the bar (0.05);
        scores computed from the wrong pixels are of the order of 1. Costs one CPU session at start-up.
        """
        if not _takes_bgr(self.session):
            return None
        frame = _test_frame(_input_size(self.config, self.session))
        name = "logits" if self.has_logits else "ids"
        cpu = self._load(path, [(PROVIDERS["cpu"], {})])
        try:
            want, got = cpu.run([name], {"bgr": frame})[0], self.session.run([name], {"bgr": frame})[0]
        except Exception as exc:  # the GPU session cannot even run: as wrong as can be
            return f"it failed: {runtime_cause(exc)}"
        finally:
            del cpu
            release_freed()
        if got.shape != want.shape:
            return f"shape {got.shape} against {want.shape}"
        if name == "ids":
            alike = float(np.mean(got == want))
            return None if alike >= 0.99 else f"{100 * alike:.1f}% of the classes alike"
        error = float(np.mean(np.abs(got - want)) / (np.mean(np.abs(want - want.mean())) + 1e-6))
        return None if error < 0.05 else f"relative error {error:.2f}"

    def _load(self, path: Path, providers: list[tuple[str, dict]], model: bytes | None = None):
        """A session on `providers` for the weights at `path` (or `model`, those weights edited)."""
        import onnxruntime as ort

        if not path.is_file():
            raise WeightsError(f"cannot read weights '{path}': no such file")
        if not os.access(path, os.R_OK):
            raise WeightsError(f"cannot read weights '{path}': permission denied")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return ort.InferenceSession(model if model is not None else str(path), self._options(),
                                            providers=providers)
        except Exception as exc:  # ORT raises its own exception types for a bad model
            raise WeightsError(f"cannot load weights '{path}': not a valid ONNX model ({runtime_cause(exc)[:160]})") from exc

    def _options(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.config.threads:
            options.intra_op_num_threads = self.config.threads
        if not self.config.spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # memory patterns (one block per input shape, planned from the shape's first run) held tens
        # of MB more at the peak of `video --zoom`, whose crops and searches come in many shapes,
        # and made it no faster (BENCHMARKS.md, "memory")
        options.enable_mem_pattern = False
        return options

    def _fuse(self, path: Path) -> None:
        """Swap in the SE-fused CPU session (checked against the plain one on a test frame).

        The first plain session is dropped first and freed heap pages go back to the system
        afterwards, so the fusion adds little to the process's memory.
        """
        from . import nchwc

        self.session = None
        try:
            self.session, self.fused = nchwc.cpu_session(path, self._options, _test_frame(self.input_size))
        except Exception as exc:  # an ONNX Runtime that saves graphs differently, no onnx package, ...
            log.info("SE gates not fused (%s): running the plain CPU graph", str(exc).splitlines()[0][:120])
            self.session = self._load(path, [(PROVIDERS["cpu"], {})])
        release_freed()

    def _wanted(self, available: list[str]) -> list[tuple[str, dict]]:
        order = ["tensorrt", "cuda", "cpu"] if self.config.provider == "auto" else [self.config.provider, "cpu"]
        wanted: list[tuple[str, dict]] = []
        for short in dict.fromkeys(order):
            name = PROVIDERS[short]
            if name not in available:
                if short == self.config.provider and short != "cpu":
                    log.warning("%s is not in this ONNX Runtime build: running on cpu", name)
                continue
            opts: dict = {}
            if short == "tensorrt":
                cache = trt_cache_dir()
                with contextlib.suppress(OSError):  # unwritable: TensorRT then builds its engine every start
                    cache.mkdir(parents=True, exist_ok=True)
                opts = {"trt_fp16_enable": self.config.fp16, "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(cache), "trt_timing_cache_enable": True,
                        "trt_timing_cache_path": str(cache)}
            wanted.append((name, opts))
        return wanted

    def _check_model(self, path: Path) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if not _takes_bgr(self.session):
            got = ", ".join(f"{i.name}:{i.type}" for i in inputs)
            raise WeightsError(f"cannot use weights '{path}': expected one uint8 input 'bgr', got {got}")
        if outputs[0].name != "ids":
            raise WeightsError(f"cannot use weights '{path}': expected an output 'ids', got '{outputs[0].name}'")
        names = json.loads(self.meta.get("names", "[]"))
        if tuple(names) != NAMES:
            raise WeightsError(
                f"cannot use weights '{path}': its classes ({len(names)}) are not the 20 LIP classes"
            )

    def model_shape(self, h: int, w: int, long_side: int | None = None) -> tuple[int, int]:
        """The (height, width) the model sees for an h x w frame (after padding)."""
        _, _, ph, pw = fit_size(h, w, long_side or self.input_size)
        return ph, pw

    def prepare(self, bgr: U8, long_side: int | None = None) -> tuple[U8, tuple[int, int]]:
        """Resize (aspect kept, long side to `long_side`, default the input size) and pad one frame
        into a 1xHxWx3 uint8 batch; return it and the valid size."""
        return letterbox(bgr, long_side or self.input_size)

    def infer(self, batch: U8) -> U8:
        """Run the model on a prepared batch; return its ids (1xHxW uint8)."""
        return self._run("ids", batch)

    def _run(self, output: str, batch: U8) -> NDArray:
        """One session run; a failure of the runtime itself (a GPU fault, out of memory) is a
        ModelError naming the provider and ONNX Runtime's cause, not its whole report."""
        try:
            return self.session.run([output], {"bgr": batch})[0]
        except Exception as exc:
            raise ModelError(f"the model failed on {self.provider}: {runtime_cause(exc)}") from exc

    @property
    def mode(self) -> str:
        """What runs, in words for a status line: the provider, then 'int8', 'flip', the scales and
        the face target when they apply."""
        return " ".join([self.provider] + ["int8"] * self.int8 + ["flip"] * self.flip + self.rescaling)

    @property
    def rescaling(self) -> list[str]:
        """The test-time scales and the face target, in words ('scales 1.125/1.375', 'face 40px'),
        where the engine has them."""
        return ((["scales " + "/".join(f"{s:g}" for s in self.scales)] if self.scales else [])
                + ([f"face {self.face}px"] if self.face else []))

    def _output(self, name: str):
        """The session's output of that name (ONNX Runtime's NodeArg), or None."""
        return next((o for o in self.session.get_outputs() if o.name == name), None)

    @property
    def has_logits(self) -> bool:
        """True when the weights also output class logits (needed for flip test-time augmentation)."""
        return self._output("logits") is not None

    def logits(self, bgr: U8, long_side: int | None = None) -> NDArray[np.float32]:
        """Class logits (20 x h x w, contiguous) at the model's resolution, padding cropped off."""
        if not self.has_logits:
            raise WeightsError(f"weights '{self.weights}' have no 'logits' output: re-export them")
        batch, (rh, rw) = self.prepare(bgr, long_side)
        out = self._run("logits", batch)[0]
        if self._logits_last:  # 1xHxWx20 (this project's exports): made per-class planes, so that
            # the reductions over the classes in parse_flip read whole contiguous planes
            return np.ascontiguousarray(np.moveaxis(out[:rh, :rw], -1, 0))
        return np.ascontiguousarray(out[:, :rh, :rw])

    def parse(self, bgr: U8, long_side: int | None = None, scaled: bool = True) -> U8:
        """Parse one HxWx3 uint8 BGR frame; return its LIP ids at the model's resolution (the
        frame's long side scaled to `long_side`, default the input size).

        The map covers the whole frame (padding cropped off), at the frame's aspect ratio.
        `render.overlay` takes it as it is; `scale_ids` brings it to the frame's size.
        `scaled` False: at `long_side` alone, whatever the engine's scales (zoom's searches).
        """
        return self._by_face(bgr, long_side, self.flip, scaled)

    def parse_flip(self, bgr: U8, long_side: int | None = None, scaled: bool = True) -> U8:
        """Flip test-time augmentation: average the class probabilities of the frame and of its
        mirror (flipped back, left/right channels swapped), at the engine's scales if it has some."""
        return self._by_face(bgr, long_side, True, scaled)

    def _by_face(self, bgr: U8, long_side: int | None, flip: bool, scaled: bool) -> U8:
        """`_parse_at`; where the engine scales by the face (`face_side`) and the faces are small,
        the frame is parsed again enlarged and the two parses' probabilities averaged (the
        enlarged parse alone scored higher on parts but gave more wrong sides)."""
        if not (scaled and self.face):
            return self._parse_at(bgr, long_side, flip, scaled)
        base = long_side or self.input_size
        probs = self._probs(bgr, self.tta_sides(base), flip)
        side = min(face_side(probs.argmax(0), base, self.face), MAX_INPUT)
        if side:
            probs = self._probs(bgr, [side], flip, probs)
        return probs.argmax(0).astype(np.uint8)

    def _parse_at(self, bgr: U8, long_side: int | None, flip: bool, scaled: bool) -> U8:
        if flip or (self.scales and scaled):
            return self.parse_tta(bgr, long_side, flip, scaled)
        batch, (rh, rw) = self.prepare(bgr, long_side)
        return self.infer(batch)[0, :rh, :rw]

    def tta_sides(self, long_side: int | None = None, scaled: bool = True) -> list[int]:
        """The model long sides `parse_tta` parses a frame at: `long_side` (default the input
        size) times each of the engine's scales, padded to the stride, at most `MAX_INPUT` (each
        once); `long_side` alone without scales or when not `scaled`."""
        long_side = long_side or self.input_size
        scales = self.scales if scaled else ()
        sides = [min(MAX_INPUT, max(2 * STRIDE, padded(round(long_side * s)))) for s in scales]
        return list(dict.fromkeys(sides)) or [long_side]

    def parse_tta(self, bgr: U8, long_side: int | None = None, flip: bool = True, scaled: bool = True) -> U8:
        """Test-time augmentation: the class probabilities of the frame at each of `tta_sides`
        and, with `flip`, of its mirror there (flipped back, left/right channels swapped),
        averaged. Ids at the largest side's resolution, or at the frame's own where that is
        smaller: the other maps are brought to it bilinearly (a frame smaller than the model's
        input keeps what the larger map saw, which nearest-neighbour ids would drop)."""
        return self._probs(bgr, self.tta_sides(long_side, scaled), flip).argmax(0).astype(np.uint8)

    def _probs(self, bgr: U8, sides: list[int], flip: bool,
               total: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
        """`parse_tta`'s summed class probabilities (20 x h x w) at `sides`, added to `total` (of
        an earlier call: brought to this call's resolution)."""
        h, w = bgr.shape[:2]
        th, tw, _, _ = fit_size(h, w, min(max(sides), max(h, w)))
        mirror = np.ascontiguousarray(bgr[:, ::-1]) if flip else None
        maps = [] if total is None else [total]
        for side in sides:
            probs = _softmax(self.logits(bgr, side))
            if mirror is not None:
                probs += _softmax(self.logits(mirror, side))[FLIP_LUT[: probs.shape[0]], :, ::-1]
            maps.append(probs)
        for i, probs in enumerate(maps):
            if probs.shape[1:] != (th, tw):
                maps[i] = np.stack([cv2.resize(p, (tw, th), interpolation=cv2.INTER_LINEAR) for p in probs])
        out = maps[0]
        for probs in maps[1:]:
            out += probs
        return out

    def run(self, bgr: U8) -> U8:
        """Parse one HxWx3 uint8 BGR frame; return HxW uint8 LIP ids at the frame's size."""
        return scale_ids(self.parse(bgr), *bgr.shape[:2])


FACE = NAMES.index("face")
FACE_MOST = 1.5  # `face_side`: the most a frame is enlarged for its faces
FACE_LEAST = 16  # `face_side`: a face found shorter than this (model pixels) is not measured


def face_side(ids: NDArray, long_side: int, target: int, most: float = FACE_MOST, least: int = FACE_LEAST) -> int:
    """The long side to parse a frame at again so that its faces are `target` model pixels tall
    at it: 0 where they are already (within 6%), or where `ids` (a class map of the frame at any
    resolution, parsed at `long_side`) has no face, or one shorter than `least`: a sliver of a
    face (a profile, a dark photo: scikit-image's cameraman, whose face was found only in a
    strip far shorter than his hair) says nothing of the person's size, and people that far
    are zoom's to enlarge. The faces' height is the span of the rows holding face pixels;
    several people at one distance span about one face, at several distances more (and so
    less enlargement)."""
    rows = np.flatnonzero((ids == FACE).any(1))
    if rows.size == 0:
        return 0
    height = (rows[-1] - rows[0] + 1) * long_side / max(ids.shape)  # in model pixels at long_side
    if height < least:
        return 0
    scale = min(most, target / height)
    return padded(round(long_side * scale)) if scale >= 1.06 else 0


def _input_size(config: EngineConfig, session) -> int:
    """The model's long side: the config's, else the size stored in the weights (256 if none)."""
    return config.input_size or int(session.get_modelmeta().custom_metadata_map.get("input_size", 256))


def _provider_of(session) -> str:
    """The short name ('cuda', 'cpu') of the provider a session really runs on."""
    first = session.get_providers()[0]
    return SHORT.get(first, first)


def _takes_bgr(session) -> bool:
    """True when the session's one input is the app's: uint8 'bgr'."""
    inputs = session.get_inputs()
    return len(inputs) == 1 and inputs[0].name == "bgr" and inputs[0].type == "tensor(uint8)"


def runtime_cause(exc: BaseException) -> str:
    """ONNX Runtime's error in a line: '[ONNXRuntimeError] : 1 : FAIL : CUDA failure 700: an
    illegal memory access was encountered ; GPU=0 ; file=... ; expr=...' -> 'CUDA failure 700: an
    illegal memory access was encountered'."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*", "", text)
    return text.split(" ; ")[0].strip()[:200] or type(exc).__name__


def _test_frame(long_side: int) -> U8:
    """A fixed 4:3 frame with smooth shapes and texture, prepared for the model (for self-checks)."""
    rng = np.random.default_rng(0)
    h, w = long_side * 3 // 4, long_side
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(xx / 9), 128 + 100 * np.cos(yy / 13), 255 * (xx + yy) / (h + w)], -1)
    frame = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    return letterbox(frame, long_side)[0]


def _softmax(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Softmax over axis 0, in place (x: contiguous class planes, as `Engine.logits` returns)."""
    x -= x.max(0)
    np.exp(x, out=x)
    x /= x.sum(0)
    return x
