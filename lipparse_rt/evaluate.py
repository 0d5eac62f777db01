"""Score the shipped ONNX model over a labelled folder, through the app's own Engine. No torch."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from numpy.typing import NDArray

from .data import find_pairs, read_mask
from .engine import Engine
from .metrics import protocol_confusion, scores, side_errors, Scores, class_names
from .sources import read_image_any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """One split scored under one protocol."""

    protocol: str
    images: int
    confusion: NDArray[np.int64]
    scores: Scores
    side_error: float | None  # share of same-part arm/leg/shoe pixels given the wrong side

    @property
    def names(self) -> tuple[str, ...]:
        return class_names(self.protocol)


def evaluate(
    engine: Engine,
    root: Path,
    split: str | None = None,
    labels: str | None = None,
    protocol: str = "lip",
    limit: int = 0,
    on_image: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Run `engine` over the labelled pairs of `root` and accumulate one confusion matrix."""
    pairs = find_pairs(Path(root), split, labels=labels)
    if limit:
        pairs = pairs[:limit]
    cm = None
    side = np.zeros((20, 20), np.int64)
    for i, (img_path, lab_path) in enumerate(pairs):
        label = read_mask(lab_path)
        pred = engine.run(read_image_any(img_path))
        c = protocol_confusion(pred, label, protocol)
        cm = c if cm is None else cm + c
        if protocol == "lip":
            side += c
        if on_image:
            on_image(i + 1, len(pairs))
    assert cm is not None
    wrong, same = side_errors(side)
    return EvalResult(protocol, len(pairs), cm, scores(cm), wrong / same if protocol == "lip" and same else None)
