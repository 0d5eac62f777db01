"""Three post-processing trials on the shipped model's output, scored like `lipparse-rt eval`.

1. Side vote: in each connected region of one part (arms, legs or shoes, both sides merged) at
   the model's resolution, give the minority side's pixels the majority side when the minority
   holds at most a share T of the region (T = 0.5: always).
2. Per-class logit offsets (a prior correction tuned for mIoU): coordinate ascent over one offset
   per class (left/right pairs tied, background fixed at 0) on the mean of three mIoUs: CCP val
   `ccp`, CCP val against `labels_lip_sided` and a seeded subset of VITON *train*. Two-fold
   cross-validation on CCP val (odd/even photos): fit on one half, score the other.
3. Logits scaled to the photo: the 20 logit planes resized bilinearly to the photo's size and
   the argmax taken there, instead of the class map scaled by nearest neighbour (what the app
   and `eval` do); with the time each takes for a 640x480 frame.

None is in the app: docs/training-log.md, "Post-processing of the class map", says why.

  python tools/postprocess_trials.py [--data ../shared/data] [--weights weights/lipnet.onnx] [--viton 200] [--trials 1,2,3]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import cv2
import numpy as np

from lipparse_rt.bench import _time
from lipparse_rt.classes import FLIP_PAIRS, NUM_CLASSES
from lipparse_rt.data import find_pairs, read_mask
from lipparse_rt.engine import Engine, EngineConfig, default_weights, scale_ids
from lipparse_rt.metrics import (CCP_LABEL_LUT, CCP_NAMES, CCP_PRED_LUT, paired_bootstrap, protocol_confusion,
                                 scores, side_errors, wrong_side_of)
from lipparse_rt.sources import read_image_any

GROUPS = [[c] for c in range(1, 14)] + [list(p) for p in FLIP_PAIRS]  # background is the reference


def side_vote(ids: np.ndarray, share: float) -> np.ndarray:
    """Trial 1 on one class map: regions of a part whose minority side holds <= `share` get the majority side."""
    out = ids.copy()
    for a, b in FLIP_PAIRS:
        part = ((ids == a) | (ids == b)).astype(np.uint8)
        n, region = cv2.connectedComponents(part, connectivity=8)
        if n <= 1:
            continue
        na = np.bincount(region[ids == a], minlength=n).astype(float)
        nb = np.bincount(region[ids == b], minlength=n).astype(float)
        share_a = na / np.maximum(na + nb, 1)
        to_a, to_b = share_a >= 1 - share, share_a <= share
        to_a[0] = to_b[0] = False
        on = part.astype(bool)
        out[on & to_a[region]] = a
        out[on & to_b[region]] = b
    return out


def ids_from_scaled_logits(logits: np.ndarray, h: int, w: int) -> np.ndarray:
    """Trial 3: the class map at h x w from the 20 x hs x ws logits resized bilinearly (half-pixel
    centres, as the graph's own Resize) and argmax taken at that size."""
    planes = [cv2.resize(z, (w, h), interpolation=cv2.INTER_LINEAR) for z in logits]
    return np.argmax(np.stack(planes), axis=0).astype(np.uint8)


def _nearest(hs: int, ws: int, h: int, w: int) -> np.ndarray:
    """Flat index into an hs x ws map of each pixel of its h x w scaling: the same OpenCV
    nearest-neighbour resize as `scale_ids`, run on the map's own pixel indices."""
    idx = np.arange(hs * ws, dtype=np.int32).reshape(hs, ws)
    return cv2.resize(idx, (w, h), interpolation=cv2.INTER_NEAREST).ravel().astype(np.int64)


def _counts(idx: np.ndarray, label: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(model pixel, label class, pixel count) triples: a full-size label folded onto the model's map."""
    keep = label < n
    key, count = np.unique(idx[keep] * n + label[keep].astype(np.int64), return_counts=True)
    return key // n, key % n, count


class LogitSet:
    """Logits at the model's resolution and their labels folded onto it, for fast re-scoring."""

    def __init__(self, items: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> None:
        self.logits, self.lip, self.ccp = [], [], []
        for logits, label, label_ccp in items:
            idx = _nearest(*logits.shape[1:], *label.shape)
            self.logits.append(logits.reshape(NUM_CLASSES, -1))
            self.lip.append(_counts(idx, label.ravel(), NUM_CLASSES))
            if label_ccp is not None:
                self.ccp.append(_counts(idx, CCP_LABEL_LUT[label_ccp.ravel()], len(CCP_NAMES)))

    def score(self, offsets: np.ndarray) -> tuple[float, float | None, float]:
        """(20-class mIoU, `ccp` mIoU or None, wrong-side %) with `offsets` added to the logits."""
        n, m = NUM_CLASSES, len(CCP_NAMES)
        cm, cmc = np.zeros(n * n), np.zeros(m * m)
        for i, z in enumerate(self.logits):
            pred = np.argmax(z + offsets[:, None], 0)
            pix, lab, cnt = self.lip[i]
            cm += np.bincount(lab * n + pred[pix], weights=cnt, minlength=n * n)
            if self.ccp:
                pix, lab, cnt = self.ccp[i]
                cmc += np.bincount(lab * m + CCP_PRED_LUT[pred[pix]], weights=cnt, minlength=m * m)
        cm = cm.reshape(n, n).astype(np.int64)
        wrong, same = side_errors(cm)
        ccp = 100 * scores(cmc.reshape(m, m).astype(np.int64)).miou if self.ccp else None
        return 100 * scores(cm).miou, ccp, 100 * wrong / max(same, 1)


def fit_offsets(ccp: LogitSet, viton: LogitSet, passes: int = 3) -> np.ndarray:
    """Trial 2: coordinate ascent on the mean of CCP `ccp`, CCP sided and VITON mIoU."""
    def objective(b: np.ndarray) -> float:
        sided, merged, _ = ccp.score(b)
        return (merged + sided + viton.score(b)[0]) / 3

    b = np.zeros(NUM_CLASSES, np.float32)
    best = objective(b)
    for _ in range(passes):
        improved = False
        for group in GROUPS:
            for step in (-1.0, -0.5, -0.25, 0.25, 0.5, 1.0):
                trial = b.copy()
                trial[group] += step
                if (o := objective(trial)) > best + 1e-3:
                    best, b, improved = o, trial, True
        if not improved:
            break
    return b


def trial_side_vote(ccp_items, ccp_ids, viton_test) -> None:
    print("## Trial 1: side vote per connected region (CCP val `ccp` / sided, wrong side / VITON test, wrong side)")
    for share in (0.0, 0.15, 0.3, 0.45, 0.5):
        cms = [np.zeros((15, 15), np.int64), np.zeros((20, 20), np.int64), np.zeros((20, 20), np.int64)]
        for ids, (_, sided, merged) in zip(ccp_ids, ccp_items):
            full = scale_ids(side_vote(ids, share), *sided.shape)
            cms[0] += protocol_confusion(full, merged, "ccp")
            cms[1] += protocol_confusion(full, sided, "lip")
        for ids, label in viton_test:
            cms[2] += protocol_confusion(scale_ids(side_vote(ids, share), *label.shape), label, "lip")
        side = [100 * w / max(s, 1) for w, s in (side_errors(cms[1]), side_errors(cms[2]))]
        name = "none (the app)" if share == 0 else f"minority <= {share}"
        print(f"{name}: {100 * scores(cms[0]).miou:.1f} / {100 * scores(cms[1]).miou:.1f}, {side[0]:.2f}% / "
              f"{100 * scores(cms[2]).miou:.1f}, {side[1]:.2f}%")


def trial_offsets(ccp_items, viton: LogitSet) -> None:
    print("\n## Trial 2: per-class logit offsets, two-fold on CCP val (held-out half: `ccp` / sided, wrong side)")
    zero = np.zeros(NUM_CLASSES, np.float32)
    for fold in (0, 1):
        fit = LogitSet([x for i, x in enumerate(ccp_items) if i % 2 == fold])
        held = LogitSet([x for i, x in enumerate(ccp_items) if i % 2 != fold])
        b = fit_offsets(fit, viton)
        (s0, c0, w0), (s1, c1, w1) = held.score(zero), held.score(b)
        print(f"fit on {'even' if fold == 0 else 'odd'} photos: offsets {np.round(b, 2).tolist()}")
        print(f"  held-out half: {c0:.1f} -> {c1:.1f} / {s0:.1f} -> {s1:.1f}, {w0:.2f}% -> {w1:.2f}%; "
              f"VITON train subset {viton.score(zero)[0]:.1f} -> {viton.score(b)[0]:.1f}")


def trial_scaled_logits(ccp_items) -> None:
    print("\n## Trial 3: logits scaled to the photo before the argmax (CCP val `ccp` / sided, wrong side)")
    z = np.ascontiguousarray(np.random.default_rng(0).normal(size=(NUM_CLASSES, 192, 256)).astype(np.float32))
    stacks = []
    for name, fn in (("class map scaled, nearest (the app)", lambda z, h, w: scale_ids(z.argmax(0).astype(np.uint8), h, w)),
                     ("logits scaled, bilinear", ids_from_scaled_logits)):
        per = [[], []]
        for logits, sided, merged in ccp_items:
            full = fn(logits, *sided.shape)
            per[0].append(protocol_confusion(full, merged, "ccp"))
            per[1].append(protocol_confusion(full, sided, "lip"))
        stacks.append([np.stack(p) for p in per])
        cms = [p.sum(0) for p in stacks[-1]]
        print(f"{name}: {100 * scores(cms[0]).miou:.2f} / {100 * scores(cms[1]).miou:.2f}, "
              f"{100 * wrong_side_of(cms[1]):.2f}%; {_time(lambda: fn(z, 480, 640), 20).mean():.1f} ms for a 640x480 frame "
              "from 256x192 logits")
    for i, split in enumerate(("`ccp`", "sided")):
        d = paired_bootstrap(stacks[1][i], stacks[0][i])
        print(f"bilinear minus nearest, {split}: {100 * d.diff:+.2f} (95% interval {100 * d.low:+.2f}, {100 * d.high:+.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--weights", type=Path, default=default_weights())
    ap.add_argument("--viton", type=int, default=200, help="VITON train photos in trial 2's objective")
    ap.add_argument("--trials", default="1,2,3", help="which trials to run, e.g. 3 or 1,3")
    args = ap.parse_args()
    trials = {int(t) for t in args.trials.split(",")}
    engine = Engine(EngineConfig(weights=args.weights))
    d = args.data

    ccp_items, ccp_ids = [], []
    for img, lab in find_pairs(d / "ccp", "val", labels="labels_lip_sided"):
        logits = engine.logits(read_image_any(img))
        ccp_items.append((logits, read_mask(lab), read_mask(d / "ccp" / "labels_lip" / lab.name)))
        ccp_ids.append(logits.argmax(0).astype(np.uint8))
    if 1 in trials:
        viton_test = [(engine.parse(read_image_any(i)), read_mask(lab)) for i, lab in find_pairs(d / "viton" / "test")]
        trial_side_vote(ccp_items, ccp_ids, viton_test)
    if 2 in trials:
        pairs = find_pairs(d / "viton" / "train")
        random.Random(0).shuffle(pairs)
        viton = LogitSet([(engine.logits(read_image_any(i)).astype(np.float16), read_mask(lab), None)  # half the memory
                          for i, lab in pairs[: args.viton]])
        trial_offsets(ccp_items, viton)
    if 3 in trials:
        trial_scaled_logits(ccp_items)


if __name__ == "__main__":
    main()
