"""Checkpoint -> ONNX: uint8 BGR frames in, uint8 LIP ids out, with metadata for the engine."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import torch
from torch import Tensor, nn

from .classes import NAMES
from .errors import WeightsError
from .model import LipNet, LipNetConfig, Preprocess

log = logging.getLogger(__name__)

INPUT_NAME = "bgr"
OUTPUT_NAME = "ids"
LOGITS_NAME = "logits"


class Deployable(nn.Module):
    """Preprocess -> LIP-Net -> argmax: the whole graph that ships."""

    def __init__(self, net: LipNet, with_logits: bool = False) -> None:
        super().__init__()
        self.preprocess = Preprocess()
        self.net = net
        self.with_logits = with_logits

    def forward(self, bgr: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        logits = self.net(self.preprocess(bgr))
        ids = logits.argmax(1).to(torch.uint8)
        return (ids, logits) if self.with_logits else ids


def _nhwc_head(model, scale: int) -> None:
    """Rewrite the graph's tail (Resize of NCHW logits -> ArgMax over channels) to upsample and
    take the argmax channels-last: Transpose -> Resize(1, s, s, 1) -> ArgMax(axis 3).

    The same numbers (bilinear, half-pixel), but the argmax reads 20 adjacent floats per
    pixel instead of 20 strided planes, which is cheaper on a CPU. 'logits' becomes 1xHxWx20.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    nodes = list(g.node)
    resize = next(n for n in nodes if n.op_type == "Resize" and LOGITS_NAME in n.output)
    argmax = next(n for n in nodes if n.op_type == "ArgMax" and n.input[0] == LOGITS_NAME)
    small = resize.input[0]
    g.initializer.append(numpy_helper.from_array(np.array([1, scale, scale, 1], np.float32), "nhwc_scales"))
    at = nodes.index(resize)
    g.node.remove(resize)
    g.node.insert(at, helper.make_node("Resize", ["logits_small_nhwc", "", "nhwc_scales"], [LOGITS_NAME],
                                       mode="linear", coordinate_transformation_mode="half_pixel"))
    g.node.insert(at, helper.make_node("Transpose", [small], ["logits_small_nhwc"], perm=[0, 2, 3, 1]))
    next(a for a in argmax.attribute if a.name == "axis").i = 3
    out = next((o for o in g.output if o.name == LOGITS_NAME), None)
    if out is not None:
        dims = out.type.tensor_type.shape.dim
        names = [d.dim_param or d.dim_value for d in dims]
        del dims[:]
        for v in (names[0], names[2], names[3], names[1]):
            d = dims.add()
            if isinstance(v, str):
                d.dim_param = v
            else:
                d.dim_value = v


def iterations(ckpt: dict) -> int:
    """The iterations behind a checkpoint's weights: its own steps plus those of the weights it started from."""
    return int(ckpt.get("iterations", ckpt.get("step", 0)))


def config_of(ckpt: dict) -> LipNetConfig:
    """The architecture a checkpoint's weights belong to."""
    return LipNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()})


def read_checkpoint(path: Path) -> dict:
    """A training checkpoint's dict (on the CPU); a file that is not one is a WeightsError."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, EOFError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"cannot load checkpoint '{path}': not a PyTorch checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise WeightsError(f"cannot load checkpoint '{path}': not a training checkpoint (no 'model' weights)")
    return ckpt


def load_checkpoint(path: Path) -> tuple[LipNet, dict]:
    """Rebuild LIP-Net from a training checkpoint; return it (eval mode) and the checkpoint dict."""
    ckpt = read_checkpoint(path)
    try:
        net = LipNet(config_of(ckpt))
        net.load_state_dict(ckpt["model"])
    except (OSError, KeyError, RuntimeError, TypeError, IndexError) as exc:
        raise WeightsError(f"cannot load checkpoint '{path}': {exc}") from exc
    return net.eval(), ckpt


def export_onnx(
    net: LipNet,
    out: Path,
    input_size: int = 256,
    metadata: dict[str, str] | None = None,
    with_logits: bool = True,
) -> Path:
    """Write `net` as ONNX with a dynamic HxW uint8 BGR input named 'bgr' and uint8 ids 'ids'.

    Args:
        input_size: the long side the app resizes frames to; stored in the metadata.
        with_logits: also output the float logits, 1xHxWx20 (flip TTA, parity tests); free at
            run time, since 'ids' is computed from them anyway and unfetched outputs are not copied.
    """
    import onnx

    wrapper = Deployable(net.eval(), True).eval()
    dummy = torch.zeros(1, input_size, input_size, 3, dtype=torch.uint8)
    outputs = [OUTPUT_NAME, LOGITS_NAME]
    axes = {INPUT_NAME: {1: "height", 2: "width"}, OUTPUT_NAME: {1: "height", 2: "width"},
            LOGITS_NAME: {2: "height", 3: "width"}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(
            wrapper, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=outputs,
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )
    model = onnx.load(str(tmp))
    _nhwc_head(model, net.config.decoder_stride)
    if not with_logits:
        model.graph.output.remove(next(o for o in model.graph.output if o.name == LOGITS_NAME))
    meta = {
        "names": json.dumps(list(NAMES)),
        "input_size": str(input_size),
        "num_params": str(net.num_params()),
        "config": json.dumps(net.config.__dict__),
        **(metadata or {}),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(out))
    tmp.unlink()
    log.info("wrote %s", out)
    return out
