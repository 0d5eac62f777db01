"""What parsing a video's non-square pixels as they are stored would cost, on CCP val.

A video of non-square pixels (DVD, broadcast, HDV) stores a picture squeezed or stretched
across; players resample it to square pixels, and so does `VideoFile` since 2026-12-04. Each CCP
val photo is stored as such a video would store it (its width divided by the pixel aspect,
area-averaged) and parsed two ways, both scored against the photo's own labels (`ccp`
protocol, the app's default weights and input size):

- as stored: the model sees the squeezed picture; its class map is stretched back to the photo;
- resampled: the stored picture resampled to square pixels first (`sources.square_pixels`, as
  `VideoFile` does now), then parsed.

`--landscape`: each photo first centred on a 4:3 landscape frame of its height (grey bars,
labelled background), as a video frame holds a standing person; CCP's photos are portraits, and
which side is the long one decides how many model pixels a squeezed person gets.

  python tools/pixel_aspect_trial.py [--data ../shared/data] [--landscape] [--aspect 4/3 --aspect 32/27 --aspect 8/9]
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from lipparse_rt.data import default_data_root, find_pairs, read_mask
from lipparse_rt.engine import PAD_BGR, Engine, EngineConfig, app_cpu_weights, scale_ids
from lipparse_rt.metrics import miou_of, paired_bootstrap, protocol_confusion
from lipparse_rt.sources import read_image_any, square_pixels


def landscape(bgr: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo and its labels centred on a 4:3 frame of the photo's height (grey, background)."""
    h, w = label.shape
    side = max(0, (h * 4 // 3 - w) // 2)
    frame = np.empty((h, w + 2 * side, 3), np.uint8)
    frame[:] = PAD_BGR
    frame[:, side: side + w] = bgr
    return frame, np.pad(label, ((0, 0), (side, side)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data_root())
    ap.add_argument("--aspect", action="append", type=Fraction, help="pixel aspect (width / height), e.g. 4/3")
    ap.add_argument("--landscape", action="store_true", help="centre each photo on a 4:3 landscape frame")
    args = ap.parse_args()
    aspects = args.aspect or [Fraction(4, 3), Fraction(32, 27), Fraction(8, 9)]
    engine = Engine(EngineConfig(cpu_weights=app_cpu_weights()))
    pairs = find_pairs(args.data / "ccp", "val", labels="labels_lip")
    print(f"{len(pairs)} CCP val photos, `ccp` protocol, {engine.mode} at {engine.input_size}\n")
    print("| pixel aspect | stored width | mIoU as stored | resampled to square pixels | difference (95% interval) |")
    print("|---|---|---|---|---|")
    for aspect in aspects:
        stored, resampled = [], []
        for img_path, lab_path in pairs:
            bgr, label = read_image_any(img_path), read_mask(lab_path)
            if args.landscape:
                bgr, label = landscape(bgr, label)
            h, w = bgr.shape[:2]
            squeezed = cv2.resize(bgr, (max(2, round(w / aspect)), h), interpolation=cv2.INTER_AREA)
            stored.append(protocol_confusion(scale_ids(engine.parse(squeezed), h, w), label, "ccp"))
            resampled.append(protocol_confusion(engine.run(square_pixels(squeezed, (w, h))), label, "ccp"))
        a, b = np.stack(stored), np.stack(resampled)
        d = paired_bootstrap(b, a)
        print(f"| {aspect.numerator}:{aspect.denominator} | {float(1 / aspect):.0%} of the photo's | "
              f"{100 * miou_of(a.sum(0)):.1f} | {100 * miou_of(b.sum(0)):.1f} | "
              f"{100 * d.diff:+.1f} ({100 * d.low:+.1f}, {100 * d.high:+.1f}) |", flush=True)


if __name__ == "__main__":
    main()
