"""Render the project's own demo media from scikit-image's astronaut photo.

- demos/astronaut.mp4: a slow pan and zoom over the photo (the README's demo input);
- docs/astronaut-parsed.png, docs/camera-parsed.png: photos beside their overlays by the
  shipped weights (`--picture`).

The photo (Eileen Collins, NASA) is public domain and ships inside the scikit-image wheel;
nothing is downloaded. Run: `pip install scikit-image && python demos/make_demo.py [--picture]`.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def frames(n: int = 90, size: tuple[int, int] = (640, 480)):
    from skimage import data

    rgb = data.astronaut()  # 512x512 RGB
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    w, h = size
    for i in range(n):
        t = i / (n - 1)
        zoom = 1.0 + 0.35 * np.sin(np.pi * t)
        cw, ch = 512 / zoom, 512 * h / w / zoom
        cx = 256 + 60 * np.sin(2 * np.pi * t)
        cy = 240 + 20 * np.cos(2 * np.pi * t)
        x0, y0 = np.clip(cx - cw / 2, 0, 512 - cw), np.clip(cy - ch / 2, 0, 512 - ch)
        m = np.array([[w / cw, 0, -x0 * w / cw], [0, h / ch, -y0 * h / ch]], np.float32)
        yield cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def picture(name: str = "astronaut") -> Path:
    """A scikit-image photo beside its overlay (with the legend), as the README shows it.

    'astronaut' (NASA, public domain) and 'camera' (CC0, Lav Varshney; grey) are the two
    photos of people inside the scikit-image wheel.
    """
    from skimage import data

    from lipparse_rt.engine import Engine, EngineConfig, default_weights
    from lipparse_rt.pipeline import render_frame

    img = getattr(data, name)()
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_RGB2BGR)
    ids = Engine(EngineConfig(weights=default_weights())).run(img)
    out = Path(__file__).resolve().parent.parent / "docs" / f"{name}-parsed.png"
    cv2.imwrite(str(out), np.hstack([img, render_frame(img, ids, 0.55)]))
    return out


def main() -> None:
    import sys

    from lipparse_rt.sinks import VideoWriter

    if "--picture" in sys.argv:
        for name in ("astronaut", "camera"):
            print(f"wrote {picture(name)}")
        return
    out = Path(__file__).with_name("astronaut.mp4")
    with VideoWriter(out, Fraction(30), 640, 480, crf=26) as writer:
        for f in frames():
            writer.write(f)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
