"""What the model makes of two kinds of stored video that `VideoFile` now shows as players do,
on CCP val (`ccp` protocol, the app's default weights and input size; paired bootstrap).

`aspect`: non-square pixels (DVD, broadcast, HDV store a picture squeezed or stretched across).
Each photo is stored as such a video would store it (its width divided by the pixel aspect,
area-averaged) and parsed two ways, both scored against the photo's own labels:
- as stored: the model sees the squeezed picture; its class map is stretched back to the photo;
- resampled: resampled to square pixels first (`sources.square_pixels`, as `VideoFile` does).
`--landscape`: each photo first centred on a 4:3 landscape frame of its height (grey bars,
labelled background), as a video frame holds a standing person; CCP's photos are portraits, and
which side is the long one decides how many model pixels a squeezed person gets.

`interlace`: interlaced video (two fields of different instants woven line by line). Each photo,
centred on a 4:3 frame and scaled to 640x480, moves across by M pixels a field (x264-free: the
fields are woven here); three frames are made and the middle one, whose two fields lie M/2 either
side of the labels, is parsed three ways: progressive (the unmoved photo: the reference), combed
as decoded, and deinterlaced (`sources.Deinterlace`, bwdif, as `VideoFile` does).

`hdr`: HDR video (PQ, BT.2020: a Samsung's "HDR10+" recording). Each photo is stored
as such a camera would store the same scene (`hdr.pq_frame`: its SDR levels at HDR's reference
white) and parsed three ways: the photo itself (the reference), the frame decoded as if it were
SDR (dim and grey: what `VideoFile` gave before 2026-12-05), and made SDR (`hdr.ToSdr`, as
`VideoFile` now does).

  python tools/video_source_trials.py aspect [--landscape] [--aspect 4/3 --aspect 32/27 --aspect 8/9]
  python tools/video_source_trials.py interlace [--motion 4 --motion 8 --motion 16]
  python tools/video_source_trials.py hdr [--clip pq4k.mp4]

`--clip F`: instead, write a 20-frame 3840x2160 PQ clip of the first photo to F (H.264, 10-bit),
for `lipparse-rt video F` to be timed and measured on (/usr/bin/time -f '%e s %M KB').
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from lipparse_rt.bench import _time
from lipparse_rt.data import default_data_root, find_pairs, read_mask
from lipparse_rt.hdr import PQ, ToSdr, pq_frame, write_pq_video
from lipparse_rt.engine import PAD_BGR, Engine, EngineConfig, app_cpu_weights, scale_ids
from lipparse_rt.metrics import miou_of, paired_bootstrap, protocol_confusion
from lipparse_rt.sources import Deinterlace, read_image_any, square_pixels


def landscape(bgr: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo and its labels centred on a 4:3 frame of the photo's height (grey, background)."""
    h, w = label.shape
    side = max(0, (h * 4 // 3 - w) // 2)
    frame = np.empty((h, w + 2 * side, 3), np.uint8)
    frame[:] = PAD_BGR
    frame[:, side: side + w] = bgr
    return frame, np.pad(label, ((0, 0), (side, side)))


def row(lead: str, a: list, b: list) -> str:
    """A table row: its leading cell(s) `lead`, the mIoU of `a`, of `b`, and b - a with its interval."""
    a, b = np.stack(a), np.stack(b)
    d = paired_bootstrap(b, a)
    return (f"| {lead} | {100 * miou_of(a.sum(0)):.1f} | {100 * miou_of(b.sum(0)):.1f} | "
            f"{100 * d.diff:+.1f} ({100 * d.low:+.1f}, {100 * d.high:+.1f}) |")


def aspect_trial(engine: Engine, pairs: list, aspects: list[Fraction], wide: bool) -> None:
    print("| pixel aspect | mIoU as stored | resampled to square pixels | difference (95% interval) |")
    print("|---|---|---|---|")
    for aspect in aspects:
        stored, resampled = [], []
        for img_path, lab_path in pairs:
            bgr, label = read_image_any(img_path), read_mask(lab_path)
            if wide:
                bgr, label = landscape(bgr, label)
            h, w = bgr.shape[:2]
            squeezed = cv2.resize(bgr, (max(2, round(w / aspect)), h), interpolation=cv2.INTER_AREA)
            stored.append(protocol_confusion(scale_ids(engine.parse(squeezed), h, w), label, "ccp"))
            resampled.append(protocol_confusion(engine.run(square_pixels(squeezed, (w, h))), label, "ccp"))
        print(row(f"{aspect.numerator}:{aspect.denominator} (stored width {float(1 / aspect):.0%})", stored, resampled),
              flush=True)


def woven(frame: np.ndarray, motion: int, k: int) -> np.ndarray:
    """Frame k of the moving photo: its top field shifted (2k - 2.5) x `motion`, its bottom field one
    field later (frame 1's fields lie motion/2 either side of the photo)."""
    h, w = frame.shape[:2]

    def shifted(dx: float) -> np.ndarray:
        return cv2.warpAffine(frame, np.float32([[1, 0, dx], [0, 1, 0]]), (w, h), borderMode=cv2.BORDER_REPLICATE)

    out = shifted((2 * k - 2.5) * motion)
    out[1::2] = shifted((2 * k - 1.5) * motion)[1::2]
    return out


def deinterlaced(frames: list[np.ndarray]) -> np.ndarray:
    """The middle frame of `frames` through `Deinterlace` (as `VideoFile` runs it), as BGR."""
    d, out = Deinterlace(Fraction(1, 25), only_flagged=False), []
    for i, img in enumerate(frames):
        f = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        f.pts, f.time_base = i, Fraction(1, 25)
        out += d.push(f)
    out += d.flush()
    return out[len(frames) // 2].to_ndarray(format="bgr24")


def interlace_trial(engine: Engine, pairs: list, motions: list[int]) -> None:
    print("| motion per field (640x480) | progressive (reference) | combed, as decoded | deinterlaced | "
          "deinterlaced - combed (95% interval) |")
    print("|---|---|---|---|---|")
    for motion in motions:
        still, combed, fixed = [], [], []
        for img_path, lab_path in pairs:
            bgr, label = landscape(read_image_any(img_path), read_mask(lab_path))
            bgr = cv2.resize(bgr, (640, 480), interpolation=cv2.INTER_AREA)
            label = cv2.resize(label, (640, 480), interpolation=cv2.INTER_NEAREST)
            frames = [woven(bgr, motion, k) for k in range(3)]
            still.append(protocol_confusion(engine.run(bgr), label, "ccp"))
            combed.append(protocol_confusion(engine.run(frames[1]), label, "ccp"))
            fixed.append(protocol_confusion(engine.run(deinterlaced(frames)), label, "ccp"))
        ref = 100 * miou_of(np.stack(still).sum(0))
        print(row(f"{motion} px | {ref:.1f}", combed, fixed), flush=True)


def hdr_trial(engine: Engine, pairs: list) -> None:
    print("| transfer | the photo (reference) | decoded as SDR | made SDR | made SDR - as SDR (95% interval) |")
    print("|---|---|---|---|---|")
    still, plain, mapped = [], [], []
    to_sdr = ToSdr(PQ)
    for img_path, lab_path in pairs:
        bgr, label = read_image_any(img_path), read_mask(lab_path)
        h, w = label.shape[0] // 2 * 2, label.shape[1] // 2 * 2  # 4:2:0 takes even sizes
        bgr, label = bgr[:h, :w], label[:h, :w]
        frame = pq_frame(bgr)
        still.append(protocol_confusion(engine.run(bgr), label, "ccp"))
        plain.append(protocol_confusion(engine.run(frame.to_ndarray(format="bgr24")), label, "ccp"))
        mapped.append(protocol_confusion(engine.run(to_sdr.bgr(frame)), label, "ccp"))
    ref = 100 * miou_of(np.stack(still).sum(0))
    print(row(f"PQ | {ref:.1f}", plain, mapped), flush=True)
    print("\n| frame | decoded to BGR (ms) | made SDR, to BGR (ms) | ratio |\n|---|---|---|---|")
    for w, h in ((640, 480), (1280, 720), (1920, 1080)):
        frame = pq_frame(cv2.resize(read_image_any(pairs[0][0]), (w, h), interpolation=cv2.INTER_AREA))
        plain_ms = float(np.median(_time(lambda: frame.to_ndarray(format="bgr24", threads=1), 20)))
        sdr_ms = float(np.median(_time(lambda: to_sdr.bgr(frame), 20)))
        print(f"| {w}x{h} | {plain_ms:.1f} | {sdr_ms:.1f} | {sdr_ms / plain_ms:.1f}x |", flush=True)


def hdr_clip(path: Path, photo: Path, frames: int = 20) -> None:
    """A 4K PQ (HDR10) clip of one photo, standing still: `frames` frames at 25 FPS."""
    picture = cv2.resize(read_image_any(photo), (3840, 2160), interpolation=cv2.INTER_CUBIC)
    write_pq_video(path, picture, frames, {"preset": "ultrafast"})
    print(f"wrote {path}: {frames} frames of 3840x2160 PQ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trial", choices=("aspect", "interlace", "hdr"))
    ap.add_argument("--data", type=Path, default=default_data_root())
    ap.add_argument("--landscape", action="store_true", help="aspect: centre each photo on a 4:3 landscape frame")
    ap.add_argument("--aspect", action="append", type=Fraction, help="aspect: pixel aspect (width / height), e.g. 4/3")
    ap.add_argument("--motion", action="append", type=int, help="interlace: pixels the person moves a field")
    ap.add_argument("--clip", type=Path, help="hdr: write a 4K PQ clip of the first photo here instead")
    args = ap.parse_args()
    if args.clip is not None:
        return hdr_clip(args.clip, find_pairs(args.data / "ccp", "val", labels="labels_lip")[0][0])
    engine = Engine(EngineConfig(cpu_weights=app_cpu_weights()))
    pairs = find_pairs(args.data / "ccp", "val", labels="labels_lip")
    print(f"{len(pairs)} CCP val photos, `ccp` protocol, {engine.mode} at {engine.input_size}\n")
    if args.trial == "aspect":
        aspect_trial(engine, pairs, args.aspect or [Fraction(4, 3), Fraction(32, 27), Fraction(8, 9)], args.landscape)
    elif args.trial == "interlace":
        interlace_trial(engine, pairs, args.motion or [4, 8, 16])
    else:
        hdr_trial(engine, pairs)


if __name__ == "__main__":
    main()
