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

# the usual names (CIHP, LIP's multi-person sibling of the same 20 classes: Images, Category_ids)
IMAGE_DIRS = ("image", "images", "JPEGImages", "Images")
LABEL_DIRS = ("parse", "labels_lip_sided", "labels", "labels_lip", "SegmentationClass", "Category_ids")
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


def _lip_layout(root: Path, split: str | None) -> tuple[Path, Path, Path | None] | None:
    """The images, labels and stem list of the LIP dataset's own layout, as it is downloaded
    (`TrainVal_images/val_images`, `TrainVal_parsing_annotations/val_segmentations`,
    `TrainVal_images/val_id.txt`) or flattened as parsing repositories keep it (`val_images`,
    `val_segmentations`, `val_id.txt`); None for any other folder. A split is needed: InputError."""
    for images, labels in ((root / "TrainVal_images", root / "TrainVal_parsing_annotations"), (root, root)):
        found = sorted(p.name[:-len("_segmentations")] for p in labels.glob("*_segmentations") if p.is_dir())
        if not found:
            continue
        if split is None or split not in found:
            raise InputError(f"cannot read dataset '{root}': it is laid out as LIP is downloaded; name the split "
                             f"to read ({' or '.join(found)})" if split is None else
                             f"cannot read split '{split}' of '{root}': LIP's layout there has "
                             f"{', '.join(found)}")
        img_dir, lab_dir = images / f"{split}_images", labels / f"{split}_segmentations"
        if not img_dir.is_dir():
            raise InputError(f"cannot read images folder '{img_dir}': no such folder")
        ids = images / f"{split}_id.txt"
        return img_dir, lab_dir, ids if ids.is_file() else None
    return None


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
    lip = _lip_layout(root, split) if images is None and labels is None else None
    if lip is not None:  # the LIP dataset as it is downloaded
        img_dir, lab_dir, split_file = lip
    else:
        img_dir = _pick(root, IMAGE_DIRS, images, "images")
        lab_dir = _pick(root, LABEL_DIRS, labels, "labels")
        split_file = None if split is None else next(
            (f for f in (root / f"{split}.txt", root / f"{split}_id.txt") if f.is_file()), root / f"{split}.txt")
    by_stem = {p.stem: p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    if split_file is not None:
        if not split_file.is_file():
            raise InputError(f"cannot read split '{split_file}': no such file")
        stems = [s.strip() for s in split_file.read_text().split() if s.strip()]
    else:
        stems = sorted(by_stem)
    pairs = [(by_stem[s], lab_dir / f"{s}.png") for s in stems if s in by_stem and (lab_dir / f"{s}.png").is_file()]
    if not pairs:
        lossy = sorted({f.suffix.lower() for f in lab_dir.iterdir() if f.suffix.lower() in (".jpg", ".jpeg")})
        hint = (f" ('{lab_dir.name}' holds {'/'.join(lossy)} files: label maps must be PNG, as JPEG's "
                "compression changes the ids at every edge)") if lossy else ""
        raise InputError(f"cannot read dataset '{root}': no image has a label PNG of the same stem" + hint)
    return pairs


def read_image(path: Path) -> U8:
    """Read an image as HxWx3 uint8 BGR."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image '{path}': not an image file")
    return img


def read_mask(path: Path) -> U8:
    """Read an index PNG of LIP ids: single-channel 8-bit, or a palette PNG (its indices are the
    ids: Pascal VOC's `SegmentationClass` and datasets made like it), or 16-bit holding 0..255."""
    if _png_colour_type(path) == PNG_PALETTE:
        mask = _palette_indices(path)  # OpenCV gives a palette PNG's colours, not its indices
    else:
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if mask is not None and mask.dtype == np.uint16 and mask.ndim == 2 and mask.max(initial=0) <= 255:
            mask = mask.astype(np.uint8)
    if mask is None or mask.ndim != 2 or mask.dtype != np.uint8:
        raise InputError(f"cannot read label '{path}': not a single-channel 8-bit PNG")
    return mask


def id_mask(below: int) -> NDArray[np.bool_]:
    """256 flags, one per label id: true for ids 0..below-1 and for IGNORE (255)."""
    mask = np.zeros(256, bool)
    mask[:below] = True
    mask[IGNORE] = True
    return mask


def ids_outside(label: U8, known: NDArray[np.bool_]) -> NDArray[np.intp]:
    """The ids a label map holds that `known` (from `id_mask`) does not, in order."""
    return np.flatnonzero(~known & (np.bincount(label.ravel(), minlength=256) > 0))


def ids_text(ids) -> str:
    """Label ids for a message, the first eight: '27, 31, 33, ...'."""
    ids = list(ids)
    return ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "")


PNG_PALETTE = 3  # the colour type byte of a PNG's IHDR for an indexed-colour image


def _png_colour_type(path: Path) -> int | None:
    """A PNG's colour type from its header (0 grey, 2 RGB, 3 palette, ...); None if not a PNG."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    return head[25] if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" else None


def _palette_indices(path: Path) -> U8 | None:
    """A palette PNG's pixel indices (FFmpeg's PNG decoder, through PyAV); None if it cannot be read."""
    import av

    try:
        with av.open(f"file:{path}") as c:
            frame = next(c.decode(video=0))
        if frame.format.name != "pal8":
            return None
        indices, _palette = frame.to_ndarray()
    except (av.FFmpegError, StopIteration, ValueError):
        return None
    return np.ascontiguousarray(indices, np.uint8)


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
    paste_p: float = 0.0  # share of samples given a rare class cut from another photo (see `paste`)
    empty_p: float = 0.0  # share of samples with the person taken out: scenes with nobody in them (see `remove_person`)
    recolour_p: float = 0.0  # share of samples whose garments get new colours (see `recolour_garments`)


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


def remove_person(image: U8, mask: U8, grow: float = 0.02, work: int = 4) -> tuple[U8, U8]:
    """The scene without its person: a negative sample, where every pixel left is background.

    Every labelled pixel that is not background (the person, and the items labelled 255 on
    them), grown by `grow` of the long side, with the background it encloses, is filled from its
    surroundings (OpenCV's Telea inpainting, at 1/`work` of the size: a smooth smear) and
    labelled IGNORE, so the loss never judges the smear; all other pixels are labelled 0. Photos of people never show an empty
    room; without such samples the model paints person classes onto walls and floors.
    """
    h, w = mask.shape
    r = max(1, round(grow * max(h, w)))
    hole = cv2.dilate((mask != 0).view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    if not hole.any():
        return image, mask
    # background enclosed by the person (between an arm and the body) goes too: the fill would spread its colours
    _, comp = cv2.connectedComponents(1 - hole, connectivity=4)
    edge = np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]]))
    hole[~np.isin(comp, edge)] = 1
    sw, sh = max(1, w // work), max(1, h // work)
    small_hole = cv2.resize(hole, (sw, sh), interpolation=cv2.INTER_NEAREST) | cv2.resize(hole, (sw, sh), interpolation=cv2.INTER_AREA)
    filled = cv2.inpaint(cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA), small_hole, 3, cv2.INPAINT_TELEA)
    out = image.copy()
    cv2.copyTo(cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR), hole, out)
    return out, np.where(hole > 0, IGNORE, 0).astype(np.uint8)


# Garments: hat, upper-clothes, dress, coat, pants, jumpsuits, scarf, skirt (not skin, hair or shoes).
GARMENTS = (1, 5, 6, 7, 9, 10, 11, 12)


def recolour_garments(image: U8, mask: U8, rng: np.random.Generator) -> U8:
    """`image` with each garment on the person given another colour; the labels stay as they are.

    Per garment class present (`GARMENTS`), in CIELAB: the hue turned by a random angle and the
    chroma scaled by 0.3-2, and the lightness inverted (a white shirt with a black print becomes
    a black one with a white print), darkened to 15-50% or left, a third each. The print and the
    folds survive (they are lightness edges); what changes is what a colour can tell: the
    training photos have few dark, printed or vividly coloured clothes, which a model that
    learnt scenes with nobody in them leaves background.
    """
    present = [int(c) for c in np.intersect1d(np.unique(mask), GARMENTS)]  # one pass over the map
    if not present:
        return image
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32)
    for c in present:
        sel = mask == c
        angle, chroma = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 2.0)
        a, b = lab[..., 1][sel] - 128, lab[..., 2][sel] - 128
        cos, sin = np.cos(angle) * chroma, np.sin(angle) * chroma
        lab[..., 1][sel] = a * cos - b * sin + 128
        lab[..., 2][sel] = a * sin + b * cos + 128
        light = rng.integers(3)
        if light == 0:
            lab[..., 0][sel] = 255 - lab[..., 0][sel]
        elif light == 1:
            lab[..., 0][sel] *= rng.uniform(0.15, 0.5)
    out = image.copy()  # only garment pixels change (a LAB round trip moves others by a level)
    cv2.copyTo(cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR),
               np.isin(mask, present).view(np.uint8), out)
    return out


# Copy-paste of rare classes (Ghiasi et al., CVPR 2021, "Simple Copy-Paste"), placed by body part:
# each is put where it sat on its donor, measured from the top centre of its anchor parts and
# scaled by the face's height, which varies less between full-body street photos and half-body
# studio ones than the body's. Hats, sunglasses, scarves and jumpsuits go by the face, socks by
# the top of the shoes. Gloves are left out: no labelled part marks where the hands are.
FACE, SHOES = (13,), (18, 19)
PASTE_ANCHORS: dict[int, tuple[int, ...]] = {1: FACE, 4: FACE, 10: FACE, 11: FACE, 8: SHOES}


@dataclass(frozen=True)
class PasteItem:
    """One class's pixels cut from a donor photo, with where they sat relative to their anchor parts."""

    label: int
    patch: U8          # h x w x 3 BGR crop of the class's bounding box
    alpha: U8          # h x w, 255 where the class is
    box: tuple[float, float, float]  # (x0, y0, width) of the crop from its anchor's top centre, in face heights


def _bbox(sel: NDArray[np.bool_]) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(sel)
    if len(ys) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _anchor(mask: U8, label: int) -> tuple[float, float, float] | None:
    """(x, y) of the top centre of `label`'s anchor parts and the face's height; None if either is missing or tiny."""
    place, face = _bbox(np.isin(mask, PASTE_ANCHORS[label])), _bbox(mask == FACE[0])
    if place is None or face is None or face[3] - face[1] < 8:
        return None
    return (place[0] + place[2]) / 2, float(place[1]), float(face[3] - face[1])


def paste_items(image: U8, mask: U8, labels: tuple[int, ...] = tuple(PASTE_ANCHORS)) -> list[PasteItem]:
    """Cut each of `labels` present in `mask` (when its anchor parts and a face are too) out of `image`."""
    items = []
    for label in labels:
        own, anchor = _bbox(mask == label), _anchor(mask, label)
        if own is None or anchor is None:
            continue
        x0, y0, x1, y1 = own
        ax, ay, ah = anchor
        items.append(PasteItem(label, image[y0:y1, x0:x1].copy(), np.where(mask[y0:y1, x0:x1] == label, 255, 0).astype(np.uint8),
                               ((x0 - ax) / ah, (y0 - ay) / ah, (x1 - x0) / ah)))
    return items


def paste(image: U8, mask: U8, item: PasteItem, rng: np.random.Generator) -> tuple[U8, U8]:
    """Put `item` on the person of (image, mask) where its anchor parts are, scaled to the face.

    The item's pixels take its label; its edge is feathered by a pixel in the image. Returned
    unchanged when the anchor parts are missing or the item would land off the picture.
    """
    anchor = _anchor(mask, item.label)
    if anchor is None:
        return image, mask
    ax, ay, ah = anchor
    ah *= float(rng.uniform(0.9, 1.1))
    w = max(int(round(item.box[2] * ah)), 1)
    h = max(int(round(w * item.patch.shape[0] / item.patch.shape[1])), 1)
    x0 = int(round(ax + item.box[0] * ah))
    y0 = int(round(ay + item.box[1] * ah))
    H, W = mask.shape
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if cx1 - cx0 < 2 or cy1 - cy0 < 2:
        return image, mask
    patch = cv2.resize(item.patch, (w, h), interpolation=cv2.INTER_LINEAR)[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    alpha = cv2.resize(item.alpha, (w, h), interpolation=cv2.INTER_LINEAR)[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    inside = alpha >= 128
    if not inside.any():
        return image, mask
    a = cv2.GaussianBlur(inside.astype(np.float32), (3, 3), 0)[..., None]
    image, mask = image.copy(), mask.copy()
    region = image[cy0:cy1, cx0:cx1].astype(np.float32)
    image[cy0:cy1, cx0:cx1] = np.clip(region * (1 - a) + patch.astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)
    mask[cy0:cy1, cx0:cx1][inside] = item.label
    return image, mask
