"""Render the project's own demo media from scikit-image's astronaut photo.

- demos/astronaut.mp4: a slow pan and zoom over the photo (the README's demo input);
- docs/astronaut-parsed.png, docs/camera-parsed.png: photos beside their overlays by the
  shipped weights (`--picture`; with `--scales`, docs/NAME-scales-parsed.png, parsed with flip
  TTA at the test-time scales 1.125 and 1.375);
- `--zoom`: docs/zoom-parsed.png and docs/zoom-camera-parsed.png, the two photos of people
  standing at a distance in a 1280x720 frame (a brick wall from the same wheel behind them),
  parsed whole and with `--zoom`;
- `--empty DIR`: the scikit-image pictures with nobody in them (CC0 or public domain), written
  as PNGs for `lipparse-rt eval --empty DIR`, and docs/empty-parsed.png, four of them beside
  their overlays.

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


def skimage_bgr(name: str) -> np.ndarray:
    """A picture from inside the scikit-image wheel (`skimage.data.NAME`), as HxWx3 BGR (grey ones too)."""
    from skimage import data

    img = getattr(data, name)()
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_RGB2BGR)


def picture(name: str = "astronaut", scales: bool = False) -> Path:
    """A scikit-image photo beside its overlay (with the legend), as the README shows it: one
    pass, as `video` parses a frame; with `scales`, as `image --scales 1.125,1.375` parses it
    (flip TTA at those test-time scales), written to NAME-scales-parsed.png (the model card:
    these close-ups lose much of their colour at the larger scales).

    'astronaut' (NASA, public domain) and 'camera' (CC0, Lav Varshney; grey) are the two
    photos of people inside the scikit-image wheel.
    """
    from lipparse_rt.engine import Engine, EngineConfig, default_weights
    from lipparse_rt.pipeline import render_frame

    img = skimage_bgr(name)
    config = EngineConfig(weights=default_weights(), flip=True, scales=(1.125, 1.375)) if scales else \
        EngineConfig(weights=default_weights())
    ids = Engine(config).run(img)
    out = Path(__file__).resolve().parent.parent / "docs" / f"{name}{'-scales' if scales else ''}-parsed.png"
    cv2.imwrite(str(out), np.hstack([img, render_frame(img, ids, 0.55)]))
    return out


def zoom_picture(name: str = "astronaut") -> Path:
    """A scikit-image photo of a person at 60% of a 1280x720 frame's height (a brick wall behind),
    parsed as a whole frame and with person zoom (`Zoom.run_still`): both overlays, cropped
    around the photo. 'astronaut': face and hair sharper, the suit a patchwork; 'camera': finer
    detail, with false colours on the grass and the tripod."""
    from lipparse_rt.engine import Engine, EngineConfig, default_weights
    from lipparse_rt.pipeline import render_frame
    from lipparse_rt.zoom import Zoom

    scene = cv2.resize(skimage_bgr("brick"), (1280, 720), interpolation=cv2.INTER_LINEAR)
    person = skimage_bgr(name)
    side = round(0.6 * 720)
    y0, x0 = 720 - side, 720
    scene[y0:, x0:x0 + side] = cv2.resize(person, (side, side), interpolation=cv2.INTER_AREA)
    engine = Engine(EngineConfig(weights=default_weights()))
    tiles = []
    for title, ids in (("whole frame (256x144)", engine.run(scene)),
                       ("--zoom", Zoom(engine).run_still(scene))):
        tile = render_frame(scene, ids, 0.55, with_legend=False)[y0 - 40:, x0 - 60:x0 + side + 60].copy()
        cv2.putText(tile, title, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
        tiles.append(tile)
    out = Path(__file__).resolve().parent.parent / "docs" / ("zoom-parsed.png" if name == "astronaut" else f"zoom-{name}-parsed.png")
    cv2.imwrite(str(out), np.hstack([tiles[0], np.full((tiles[0].shape[0], 6, 3), 255, np.uint8), tiles[1]]))
    return out


# Pictures inside the scikit-image wheel with nobody in them: CC0 (coffee, Rachel Michetti; chelsea,
# Stefan van der Walt; brick, grass, gravel, CC0Textures) or public domain (rocket, SpaceX; the Hubble deep field, NASA).
EMPTY = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "hubble_deep_field")


def empty_pictures(folder: Path) -> list[Path]:
    """Write the EMPTY pictures into `folder` as PNGs; render four beside their overlays into docs/."""
    from lipparse_rt.engine import Engine, EngineConfig, default_weights
    from lipparse_rt.pipeline import render_frame

    folder.mkdir(parents=True, exist_ok=True)
    paths, tiles = [], []
    engine = Engine(EngineConfig(weights=default_weights()))
    for name in EMPTY:
        img = skimage_bgr(name)
        paths.append(folder / f"{name}.png")
        cv2.imwrite(str(paths[-1]), img)
        if name in ("coffee", "chelsea", "rocket", "grass"):
            img = cv2.resize(img, (round(img.shape[1] * 300 / img.shape[0]), 300), interpolation=cv2.INTER_AREA)
            tiles.append(np.hstack([img, render_frame(img, engine.run(img), 0.55, with_legend=False)]))
    width = max(t.shape[1] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, 4, 0, width - t.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255)) for t in tiles]
    doc = Path(__file__).resolve().parent.parent / "docs" / "empty-parsed.png"
    cv2.imwrite(str(doc), cv2.resize(np.vstack(tiles), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    return paths + [doc]


def main() -> None:
    import sys

    from lipparse_rt.sinks import VideoWriter

    if "--empty" in sys.argv:
        for path in empty_pictures(Path(sys.argv[sys.argv.index("--empty") + 1])):
            print(f"wrote {path}")
        return
    if "--zoom" in sys.argv:
        for name in ("astronaut", "camera"):
            print(f"wrote {zoom_picture(name)}")
        return
    if "--picture" in sys.argv:
        for name in ("astronaut", "camera"):
            print(f"wrote {picture(name, scales='--scales' in sys.argv)}")
        return
    out = Path(__file__).with_name("astronaut.mp4")
    with VideoWriter(out, Fraction(30), 640, 480, crf=26) as writer:
        for f in frames():
            writer.write(f)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
