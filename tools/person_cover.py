"""How much of the person two models colour on the sign-language clips (no labels: a rough proxy).

In each clip one person stands facing the camera in the middle of the frame, so the centre band
of the frame (below its top quarter, its middle third across) is mostly person. For every 5th
frame, the share of that band the model calls a person class, averaged per clip, for each
`--weights` given. A drop means person pixels left background (or, less often, fewer false
patches inside the band); look at the frames before reading more into it.

  python tools/person_cover.py --weights A.onnx --weights B.onnx [--videos ../shared/data/videos]
  python tools/person_cover.py --weights A.onnx --mode one --mode flip --mode scales --mode flip-scales

`--mode`: how each model parses a frame: `one` pass (as `video`), `flip` (flip TTA),
`scales` (the test-time scales 1.125 and 1.375: `--scales 1.125,1.375`), `flip-scales` (both),
`flip-face` (flip TTA scaled by the face, `--face 40`: `image`'s default); default `one`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lipparse_rt.data import default_data_root
from lipparse_rt.engine import Engine, EngineConfig
from lipparse_rt.sources import VideoFile


def centre_band_share(ids: np.ndarray) -> float:
    """The share of the map's centre band (below the top quarter, middle third across) given a person class."""
    h, w = ids.shape
    return float((ids[h // 4:, w // 3: 2 * w // 3] > 0).mean())


def cover(engines: list[Engine], video: Path, every: int = 5) -> list[float]:
    """For each engine, the mean `centre_band_share` over every `every`-th frame of `video` (decoded once)."""
    with VideoFile(video) as frames:
        shares = [[centre_band_share(e.parse(f.image)) for e in engines] for f in frames if f.index % every == 0]
    return [float(v) for v in np.mean(shares, axis=0)]


def table(names: list[str], rows: dict[str, list[float]]) -> list[str]:
    """The Markdown table: one row per clip (shares as whole percents), then the mean over the clips."""
    lines = ["| clip | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {clip} | " + " | ".join(f"{100 * c:.0f}%" for c in shares) + " |" for clip, shares in rows.items()]
    if rows:
        lines.append("| **mean** | " + " | ".join(f"{100 * c:.1f}%" for c in np.mean(list(rows.values()), axis=0)) + " |")
    return lines


MODES = {"one": {}, "flip": {"flip": True}, "scales": {"scales": (1.125, 1.375)},
         "flip-scales": {"flip": True, "scales": (1.125, 1.375)}, "flip-face": {"flip": True, "face": 40}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", action="append", type=Path, required=True)
    ap.add_argument("--videos", type=Path, default=default_data_root() / "videos")
    ap.add_argument("--mode", action="append", choices=sorted(MODES), help="how each model parses (default: one)")
    args = ap.parse_args()
    modes = args.mode or ["one"]
    runs = [(w, m) for w in args.weights for m in modes]
    engines = [Engine(EngineConfig(weights=w, **MODES[m])) for w, m in runs]
    rows = {clip.stem: cover(engines, clip) for clip in sorted(args.videos.glob("*.mkv"))}
    print("\n".join(table([w.name + ("" if modes == ["one"] else f", {m}") for w, m in runs], rows)))


if __name__ == "__main__":
    main()
