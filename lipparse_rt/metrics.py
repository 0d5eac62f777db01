"""Confusion matrices, IoU and the CCP merged-label protocol. Pure numpy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from .classes import FLIP_PAIRS, NAMES, NUM_CLASSES

IGNORE = 255
CCP_NAMES: tuple[str, ...] = NAMES[:13] + ("skin", "shoe")


def _ccp_lut(partial: bool) -> NDArray[np.uint8]:
    lut = np.full(256, IGNORE, np.uint8)
    lut[:13] = np.arange(13)
    lut[13:18] = 13  # face, arms, legs -> skin
    lut[18:20] = 14  # shoes -> shoe
    if partial:
        lut[20], lut[21] = 13, 14
    return lut


# The `ccp` protocol of ../shared/data/README.md: 15 classes (0..12, skin, shoe), 255 ignored.
CCP_PRED_LUT = _ccp_lut(partial=False)
CCP_LABEL_LUT = _ccp_lut(partial=True)
PROTOCOLS = ("lip", "ccp")


def confusion(pred: NDArray[np.uint8], label: NDArray[np.uint8], n: int) -> NDArray[np.int64]:
    """n x n confusion matrix, rows = label, columns = prediction; labels >= n are ignored."""
    if pred.shape != label.shape:
        raise ValueError(f"prediction {pred.shape} and label {label.shape} differ in size")
    keep = label < n
    idx = label[keep].astype(np.int64) * n + np.minimum(pred[keep], n - 1).astype(np.int64)
    return np.bincount(idx, minlength=n * n).reshape(n, n)


def protocol_confusion(pred: NDArray[np.uint8], label: NDArray[np.uint8], protocol: str) -> NDArray[np.int64]:
    """The confusion matrix of one image under 'lip' (20 classes) or 'ccp' (15 merged classes)."""
    if protocol == "ccp":
        return confusion(CCP_PRED_LUT[pred], CCP_LABEL_LUT[label], len(CCP_NAMES))
    if protocol == "lip":
        return confusion(pred, label, NUM_CLASSES)
    raise ValueError(f"unknown protocol '{protocol}': use one of {', '.join(PROTOCOLS)}")


def class_names(protocol: str) -> tuple[str, ...]:
    """Class names of a protocol's confusion matrix."""
    return CCP_NAMES if protocol == "ccp" else NAMES


@dataclass(frozen=True)
class Scores:
    """IoU per class (NaN where a class is absent from the labels), mIoU, pixel accuracy."""

    iou: NDArray[np.float64]
    miou: float
    pixel_acc: float


def scores(cm: NDArray[np.int64]) -> Scores:
    """IoU = TP / (TP + FP + FN) per class; mIoU over classes present in the labels."""
    tp = np.diag(cm).astype(np.float64)
    gt, pr = cm.sum(1).astype(np.float64), cm.sum(0).astype(np.float64)
    union = gt + pr - tp
    iou = np.where(gt > 0, tp / np.maximum(union, 1), np.nan)
    present = gt > 0
    miou = float(np.nanmean(iou[present])) if present.any() else float("nan")
    acc = float(tp.sum() / cm.sum()) if cm.sum() else float("nan")
    return Scores(iou, miou, acc)


def side_errors(cm: NDArray[np.int64], pairs: tuple[tuple[int, int], ...] = FLIP_PAIRS) -> tuple[int, int]:
    """(wrong-side, same-part) pixel counts over the left/right `pairs` (arms, legs, shoes) of a 20-class matrix.

    Same-part pixels are those where label and prediction name the same part (either side);
    wrong-side ones name the other side.
    """
    wrong = same = 0
    for a, b in pairs:
        wrong += int(cm[a, b] + cm[b, a])
        same += int(cm[a, a] + cm[b, b] + cm[a, b] + cm[b, a])
    return wrong, same


SIDED_PARTS: tuple[str, ...] = ("arms", "legs", "shoes")  # the parts of FLIP_PAIRS, in order


def side_report(cm: NDArray[np.int64]) -> str:
    """'6.77% (arms 0.67%, legs 5.77%, shoes 11.48%)': the wrong-side share overall and per part."""
    def pct(pairs: tuple[tuple[int, int], ...]) -> str:
        wrong, same = side_errors(cm, pairs)
        return f"{100 * wrong / same:.2f}%" if same else "n/a"
    parts = ", ".join(f"{name} {pct((pair,))}" for name, pair in zip(SIDED_PARTS, FLIP_PAIRS))
    return f"{pct(FLIP_PAIRS)} ({parts})"


def markdown_table(s: Scores, names: tuple[str, ...], title: str = "IoU (%)",
                   images: Sequence[int] | None = None) -> str:
    """A Markdown table of per-class IoU, then mIoU and pixel accuracy.

    With `images` (per class, how many of the scored images hold it in their labels), a second
    column says on how many images each class's IoU rests: a rare class's on a handful.
    """
    with_images = images is not None
    count_cells = [[str(n)] for n in images] if with_images else [[]] * len(names)
    pad = [""] if with_images else []  # the summary rows have no count

    def row(*cells: str) -> str:
        return "| " + " | ".join(cells) + " |"

    rows = [row("class", title, *(["images with it"] if with_images else [])), "|---|---|" + "---|" * len(pad)]
    for name, v, count in zip(names, s.iou, count_cells):
        rows.append(row(name, "n/a" if np.isnan(v) else f"{100 * v:.1f}", *count))
    rows.append(row("**mIoU**", f"**{100 * s.miou:.1f}**", *pad))
    rows.append(row("pixel accuracy", f"{100 * s.pixel_acc:.1f}", *pad))
    return "\n".join(rows)


@dataclass(frozen=True)
class PairedDiff:
    """statistic(model) - statistic(baseline) on a split, and its paired-bootstrap 95% interval."""

    diff: float
    low: float
    high: float
    rounds: int

    @property
    def verdict(self) -> str:
        """'higher' or 'lower' when the interval excludes 0, else 'within noise'."""
        return "higher" if self.low > 0 else "lower" if self.high < 0 else "within noise"


def miou_of(cm: NDArray[np.int64]) -> float:
    """mIoU of a confusion matrix (0..1)."""
    return scores(cm).miou


def person_scores(cm: NDArray[np.int64]) -> tuple[float, float, float]:
    """(IoU, recall, precision) of "a person" against background (class 0), all person classes
    merged (0..1): whether the model finds the person at all, whatever the parts."""
    tp, fp, fn = cm[1:, 1:].sum(), cm[0, 1:].sum(), cm[1:, 0].sum()
    return tp / max(1, tp + fp + fn), tp / max(1, tp + fn), tp / max(1, tp + fp)


def wrong_side_of(cm: NDArray[np.int64]) -> float:
    """Share of same-part arm/leg/shoe pixels given the wrong side (0..1; NaN if none)."""
    wrong, same = side_errors(cm)
    return wrong / same if same else float("nan")


def paired_bootstrap(model: NDArray[np.int64], baseline: NDArray[np.int64],
                     stat: Callable[[NDArray[np.int64]], float] = miou_of,
                     rounds: int = 1000, seed: int = 0) -> PairedDiff:
    """Compare two models scored on the same images: `model` and `baseline` are n x k x k stacks of
    per-image confusion matrices, in the same image order.

    Each round draws n images with replacement, sums both models' matrices over the same draw and
    takes the difference of `stat`; the interval is the 2.5th-97.5th percentile of the rounds.
    Pairing keeps the images' own difficulty out of the spread, so a small difference between two
    close models can be told from noise where two separate intervals would overlap.
    """
    if model.shape != baseline.shape or model.ndim != 3:
        raise ValueError(f"per-image confusions {model.shape} and {baseline.shape} do not pair up")
    n = model.shape[0]
    rng = np.random.default_rng(seed)
    diffs = np.empty(rounds)
    for r in range(rounds):
        draw = np.bincount(rng.integers(0, n, n), minlength=n)  # times each image is drawn
        diffs[r] = stat(np.tensordot(draw, model, 1)) - stat(np.tensordot(draw, baseline, 1))
    low, high = np.nanpercentile(diffs, [2.5, 97.5])
    return PairedDiff(stat(model.sum(0)) - stat(baseline.sum(0)), float(low), float(high), rounds)
