"""INT8 static quantisation of the exported graph for the CPU, calibrated on real photos.

ONNX Runtime's QDQ quantiser: per-channel int8 weights, uint8 activations, calibrated on frames
prepared exactly as the engine prepares them. No torch.

Only convolutions are quantised, and not those of the first `float_stages` encoder stages or
of the decoder. The early stages run at full and half resolution on 3-64 channels: there ONNX
Runtime's int8 (NHWC) convolutions are slower than its blocked float ones, and their SE gates
stay fusable (`nchwc.py`). Quantising the gates' element-wise ops as well cost more time in
QLinearMul and ReduceMean than it saved. The decoder is no faster in int8, and of the parts
tried its rounding added the most frame-to-frame flicker. Activation ranges come from the
99.999th percentile of the calibration histograms, not their min/max: finer steps, less
flicker, no mIoU lost (`BENCHMARKS.md`, "INT8").
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .engine import PAD_BGR, STRIDE, letterbox
from .errors import InputError, WeightsError
from .sources import Images, read_image_any

log = logging.getLogger(__name__)


def calibration_images(folders: list[Path | str], count: int) -> list[Path]:
    """Up to `count` images spread evenly over the image files of `folders`.

    An entry 'ROOT:split=S' takes the images of the pairs of a LIP-format folder's split S (e.g.
    CCP's train photos only, not its val photos, which score the result).
    """
    from .data import find_pairs

    files: list[Path] = []
    for entry in folders:
        root, _, split = str(entry).partition(":split=")
        folder = Path(root)
        if not folder.is_dir():
            raise InputError(f"cannot read calibration folder '{folder}': no such folder")
        if split:
            files += [img for img, _ in find_pairs(folder, split)]
        else:
            files += Images(folder).files  # as `image` lists a folder (hidden files left out)
    if not files:
        raise InputError("no calibration images found")
    step = max(1, len(files) // count)
    return files[::step][:count]


FLOAT_STAGES = 3
# Calibration frames whose activations are held at once (all 128 at once: a 16.6 GB peak; ranges of 16: 2.3 GB).
CALIBRATION_CHUNK = 16


def float_nodes(model, float_stages: int) -> list[str]:
    """Names of the nodes of the first `float_stages` encoder stages and of the decoder (LIP-Net's export names)."""
    prefixes = (*(f"/net/stages.{i}/" for i in range(float_stages)), "/net/decoder/")
    return [n.name for n in model.graph.node if n.name.startswith(prefixes)]


PERCENTILE = 99.999


def check_weights(model: Path) -> None:
    """Refuse weights to quantise that are missing or not ONNX, before any calibration."""
    import onnx

    if not Path(model).is_file():
        raise WeightsError(f"cannot read weights '{model}': no such file")
    try:
        onnx.load(str(model), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError, and what else a file that is not ONNX raises
        raise WeightsError(f"cannot read weights '{model}': not a valid ONNX model ({type(exc).__name__})") from exc


def quantize(model: Path, out: Path, images: list[Path], long_side: int, float_stages: int = FLOAT_STAGES,
             on_image: Callable[[int, int], None] | None = None, percentile: float = PERCENTILE) -> Path:
    """Write an INT8 (QDQ) copy of `model`, calibrated on `images` at `long_side`.

    The convolutions of the encoder's first `float_stages` stages and of the decoder stay float.
    Each activation's range is the `percentile` of its calibration histogram (100: min/max).
    The calibration frames are padded to one square (`long_side` rounded up to the stride): the
    percentile calibrator stacks them.
    `on_image(i, n)` is called as each of the n calibration images is read.
    """
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    side = -(-long_side // STRIDE) * STRIDE  # letterbox pads to multiples of the stride

    class Reader(CalibrationDataReader):
        """The calibration frames, in ranges: the calibrator then keeps one range's activations at a time."""

        def __init__(self) -> None:
            self.set_range(0, len(images))

        def __len__(self) -> int:
            return len(images)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._it = iter(range(start_index, end_index))

        def get_next(self) -> dict | None:
            i = next(self._it, None)
            if i is None:
                return None
            path = images[i]
            if on_image is not None:
                on_image(i + 1, len(images))
            batch = letterbox(read_image_any(path), long_side)[0]
            square = np.empty((1, side, side, 3), np.uint8)
            square[:] = PAD_BGR
            square[:, : batch.shape[1], : batch.shape[2]] = batch
            return {"bgr": square}

    check_weights(model)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(model), str(pre), skip_symbolic_shape=True)
        keep = float_nodes(onnx.load(str(pre), load_external_data=False), float_stages)
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                            nodes_to_exclude=keep, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=True, calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibStridedMinMax": math.gcd(len(images), CALIBRATION_CHUNK),
                                           "CalibPercentile": percentile})
    # Keep the metadata (class names, input size) the engine checks.
    src, dst = onnx.load(str(model)), onnx.load(str(out))
    del dst.metadata_props[:]
    for prop in src.metadata_props:
        dst.metadata_props.add(key=prop.key, value=prop.value)
    dst.metadata_props.add(key="quantization", value=f"int8 QDQ convolutions, {len(images)} calibration images, "
                                                      f"first {float_stages} stages and the decoder float, {percentile:g}th-percentile ranges")
    onnx.save(dst, str(out))
    return out
