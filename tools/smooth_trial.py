"""Temporal smoothing of the class map, measured and not kept (BENCHMARKS.md, "flicker").

Each frame's class probabilities are mixed with the running mix of the frames before it,
s_t = a * p_t + (1 - a) * s_{t-1}, and the class map is the argmax of s_t (a = 1: no smoothing).

  python tools/smooth_trial.py flicker   # the share of pixels changing class between frames
  python tools/smooth_trial.py walk      # mIoU (ccp protocol) on CCP val photos crossing a room

The walk: the first 50 CCP val photos, each shrunk to 100% / 80% of a 640x360 frame of the
street clip's empty room and moved across it in 30 frames (as `evaluate.evaluate_walk` does),
one after another in one stream. The shipped weights as the app runs them on the CPU.
"""

import sys

import cv2
import numpy as np

from lipparse_rt.data import default_data_root as data_root, read_mask
from lipparse_rt.engine import Engine, EngineConfig, _softmax, scale_ids
from lipparse_rt.evaluate import AtDistance, _pairs, put_at
from lipparse_rt.metrics import miou_of, protocol_confusion
from lipparse_rt.sources import VideoFile, read_image_any

ALPHAS = (1.0, 0.7, 0.5, 0.35)


class Mix:
    """The running mix of class probabilities for each a; restarts when the map's shape changes."""

    def __init__(self) -> None:
        self.state: dict[float, np.ndarray] = {}

    def ids(self, probs: np.ndarray) -> dict[float, np.ndarray]:
        out = {}
        for a in ALPHAS:
            s = self.state.get(a)
            s = probs if s is None or s.shape != probs.shape else a * probs + (1 - a) * s
            self.state[a], out[a] = s, s.argmax(0).astype(np.uint8)
        return out


def flicker(engine: Engine, path, frames: int) -> dict[float, float]:
    mix, prev, changed = Mix(), None, {a: [] for a in ALPHAS}
    with VideoFile(path) as src:
        for k, frame in enumerate(src):
            if k >= frames:
                break
            ids = mix.ids(_softmax(engine.logits(frame.image)))
            if prev is not None:
                for a in ALPHAS:
                    changed[a].append(float((ids[a] != prev[a]).mean()))
            prev = ids
    return {a: round(100 * float(np.mean(v)), 2) for a, v in changed.items()}


def walk(engine: Engine, height: float, frames: int = 30, limit: int = 50) -> dict[float, float]:
    with VideoFile(data_root() / "videos" / "one-by-one-person-detection.mp4") as src:
        room = cv2.resize(next(iter(src)).image, (640, 360))
    place, (sh, sw) = AtDistance(room, height), room.shape[:2]
    mix, cms = Mix(), {a: 0 for a in ALPHAS}
    for i, (image_path, label_path) in enumerate(_pairs(data_root() / "ccp", "val", "labels_lip", limit)):
        small, small_label = place.fit(read_image_any(image_path), read_mask(label_path))
        x0, x1 = np.random.default_rng((0, i)).integers(0, sw - small.shape[1] + 1, 2)
        for t in range(frames):
            image, label = room.copy(), np.zeros((sh, sw), np.uint8)
            put_at(image, label, small, small_label, round(x0 + (x1 - x0) * t / (frames - 1)))
            for a, ids in mix.ids(_softmax(engine.logits(image))).items():
                cms[a] = cms[a] + protocol_confusion(scale_ids(ids, sh, sw), label, "ccp")
    return {a: round(100 * miou_of(cm), 2) for a, cm in cms.items()}


def main() -> None:
    engine = Engine(EngineConfig(provider="cpu", threads=1))
    videos = data_root() / "videos"
    if sys.argv[1:] == ["flicker"]:
        for name, n in (("yes.mkv", 65), ("night.mkv", 100), ("one-by-one-person-detection.mp4", 200)):
            print(f"{name}, {n} frames: % of pixels changing class, by a: {flicker(engine, videos / name, n)}")
    elif sys.argv[1:] == ["walk"]:
        for height in (1.0, 0.8):
            print(f"walk at {height:.0%} of the height: mIoU by a: {walk(engine, height)}", flush=True)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
