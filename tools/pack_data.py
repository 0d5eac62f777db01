"""Pack a smaller copy of a LIP-format dataset, for a training run on a machine the data can't reach.

Images are scaled so their long side is at most --long-side (JPEG at --quality), label maps by
nearest neighbour (PNG); --every K keeps every K-th pair; split files (train.txt, ...) are copied.
The layout stays LIP-format, so `lipparse-rt train --data PACKED[:split=...]` reads it as it is.

  python tools/pack_data.py ../shared/data/ccp carry/ccp --labels labels_lip_sided:train --labels labels_lip:val --long-side 352 --quality 85
  python tools/pack_data.py ../shared/data/viton/train carry/viton --every 3
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2

from lipparse_rt.data import find_pairs, read_image, read_mask


def pack(src: Path, dst: Path, labels: list[str | None], long_side: int, every: int, quality: int) -> int:
    written = 0
    for spec in labels:
        label_dir, _, split = (spec or "").partition(":")
        pairs = find_pairs(src, split or None, labels=label_dir or None)[::every]
        for img_path, lab_path in pairs:
            out_img = dst / img_path.parent.name / f"{img_path.stem}.jpg"
            out_lab = dst / lab_path.parent.name / lab_path.name
            out_img.parent.mkdir(parents=True, exist_ok=True)
            out_lab.parent.mkdir(parents=True, exist_ok=True)
            mask = read_mask(lab_path)
            scale = min(1.0, long_side / max(mask.shape))
            size = (round(mask.shape[1] * scale), round(mask.shape[0] * scale))
            if scale == 1 and img_path.suffix.lower() in (".jpg", ".jpeg"):
                shutil.copy(img_path, out_img)  # small enough already: keep the original bytes
            elif not out_img.exists():  # another label folder may have written it
                img = read_image(img_path)
                if scale < 1:
                    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(out_img), img, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if scale < 1:
                mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
            cv2.imwrite(str(out_lab), mask)
            written += 1
    for split in src.glob("*.txt"):
        shutil.copy(split, dst / split.name)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--labels", action="append", help="LABELS[:SPLIT]: a label sub-folder to pack, optionally only the "
                    "pairs of SPLIT.txt (repeatable; default: the usual folder, all pairs)")
    ap.add_argument("--long-side", type=int, default=512)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--quality", type=int, default=90)
    a = ap.parse_args()
    n = pack(a.src, a.dst, a.labels or [None], a.long_side, a.every, a.quality)
    print(f"{n} pairs -> {a.dst}")


if __name__ == "__main__":
    main()
