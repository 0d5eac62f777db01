"""LIP-format folders (an image folder and an index-PNG label folder): list pairs, read, augment.

numpy and OpenCV only; torch lives in train.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from .classes import FLIP_LUT
from .errors import InputError

U8 = NDArray[np.uint8]

IMAGE_DIRS = ("image", "images", "JPEGImages")
LABEL_DIRS = ("parse", "labels_lip_sided", "labels", "labels_lip", "SegmentationClass")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
IGNORE = 255
DATA_ENV = "LIPPARSE_DATA"


def default_data_root() -> Path:
    """The shared data folder: $LIPPARSE_DATA, else ../shared/data."""
    return Path(os.environ.get(DATA_ENV, "../shared/data"))


def _pick(root: Path, names: tuple[str, ...], given: str | None, what: str) -> Path:
    if given is not None:
        path = root / given
        if not path.is_dir():
            raise InputError(f"cannot read {what} folder '{path}': no such folder")
        return path
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise InputError(f"cannot find {what} in '{root}': expected a sub-folder named one of {', '.join(names)}")


def find_pairs(
    root: Path, split: str | None = None, images: str | None = None, labels: str | None = None
) -> list[tuple[Path, Path]]:
    """List (image, label) pairs of a LIP-format folder.

    Args:
        split: a stem list `root/{split}.txt` to restrict to (e.g. 'train', 'val').
        images, labels: sub-folder names; found among the usual names when not given.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"cannot read dataset '{root}': no such folder")
    img_dir = _pick(root, IMAGE_DIRS, images, "images")
    lab_dir = _pick(root, LABEL_DIRS, labels, "labels")
    by_stem = {p.stem: p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    if split is not None:
        split_file = root / f"{split}.txt"
        if not split_file.is_file():
            raise InputError(f"cannot read split '{split_file}': no such file")
        stems = [s.strip() for s in split_file.read_text().split() if s.strip()]
    else:
        stems = sorted(by_stem)
    pairs = [(by_stem[s], lab_dir / f"{s}.png") for s in stems if s in by_stem and (lab_dir / f"{s}.png").is_file()]
    if not pairs:
        raise InputError(f"cannot read dataset '{root}': no image has a label PNG of the same stem")
    return pairs


def read_image(path: Path) -> U8:
    """Read an image as HxWx3 uint8 BGR."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image '{path}': not an image file")
    return img


def read_mask(path: Path) -> U8:
    """Read a single-channel index PNG of LIP ids."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2 or mask.dtype != np.uint8:
        raise InputError(f"cannot read label '{path}': not a single-channel 8-bit PNG")
    return mask


def flip(image: U8, mask: U8) -> tuple[U8, U8]:
    """Flip horizontally and swap the person's left/right labels."""
    return np.ascontiguousarray(image[:, ::-1]), FLIP_LUT[mask[:, ::-1]]


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation: scale relative to `size`, crop, flip, rotation, colour."""

    size: int = 256
    scale: tuple[float, float] = (0.5, 2.0)
    rotate_deg: float = 10.0
    flip: bool = True
    jitter: float = 0.3
    blur_p: float = 0.2
    grey_p: float = 0.0  # share of samples turned to grey (3 equal channels), as from a low-light webcam


def _affine(image: U8, mask: U8, scale: float, angle: float, rng: np.random.Generator, size: int) -> tuple[U8, U8]:
    h, w = mask.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    # Place the scaled image at a random offset of a size x size crop (centre it if smaller).
    sw, sh = w * scale, h * scale
    ox = rng.uniform(min(0.0, size - sw), max(0.0, size - sw))
    oy = rng.uniform(min(0.0, size - sh), max(0.0, size - sh))
    m[0, 2] += ox - (w / 2 - sw / 2)
    m[1, 2] += oy - (h / 2 - sh / 2)
    img = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    lab = cv2.warpAffine(mask, m, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE)
    return img, lab


def _colour(image: U8, rng: np.random.Generator, jitter: float, blur_p: float) -> U8:
    img = image.astype(np.float32)
    img = img * rng.uniform(1 - jitter, 1 + jitter) + rng.uniform(-40, 40) * jitter
    img = img * rng.uniform(1 - jitter / 2, 1 + jitter / 2, size=3)
    grey = img.mean(2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(1 - jitter, 1 + jitter)
    if rng.random() < blur_p:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < blur_p:
        img = img + rng.normal(0, rng.uniform(2, 8), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def augment(
    image: U8, mask: U8, rng: np.random.Generator, cfg: AugmentConfig, base_scale: float = 1.0
) -> tuple[U8, U8]:
    """Random scale/rotation/crop to cfg.size, flip with the side swap, colour jitter, blur and noise, grey.

    Args:
        base_scale: scale that brings the image to the app's working resolution before the
            random factor (e.g. long side -> cfg.size).
    """
    lo, hi = np.log(cfg.scale[0]), np.log(cfg.scale[1])
    scale = base_scale * float(np.exp(rng.uniform(lo, hi)))
    angle = float(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    img, lab = _affine(image, mask, scale, angle, rng, cfg.size)
    if cfg.flip and rng.random() < 0.5:
        img, lab = flip(img, lab)
    img = _colour(img, rng, cfg.jitter, cfg.blur_p)
    if cfg.grey_p > 0 and rng.random() < cfg.grey_p:  # drawn only when on: older seeds replay unchanged
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return img, lab


def replace_background(image: U8, mask: U8, texture: U8) -> U8:
    """Put `texture` (same HxW) wherever `mask` is background (0), keeping the person."""
    out = image.copy()
    bg = mask == 0
    out[bg] = texture[bg]
    return out
