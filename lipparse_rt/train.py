"""Training loop for LIP-Net: mixed LIP-format datasets, weighted CE + partial labels (+ Lovasz-softmax), poly LR,
atomic checkpoints and resume. Needs torch (the `train` extra)."""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .classes import FLIP_LUT, NUM_CLASSES
from .data import (IGNORE, PASTE_ANCHORS, AugmentConfig, PasteItem, augment, find_pairs, id_mask, ids_outside, ids_text,
                   paste, paste_items, read_image, read_mask, recolour_garments, remove_person, replace_background)
from .errors import InputError, WeightsError
from .export import config_of, iterations, load_checkpoint, read_checkpoint
from .model import OUTPUT_STRIDE, LipNet, LipNetConfig, Preprocess
from .sinks import output_folder

log = logging.getLogger(__name__)

SKIN, SHOE = 20, 21  # CCP's partial labels: one of face/arms/legs, one of the two shoes.
PARTIAL_SETS: dict[int, tuple[int, ...]] = {SKIN: (13, 14, 15, 16, 17), SHOE: (18, 19)}
BN_BATCH = 16  # samples per batch when BatchNorm statistics are re-estimated at a schedule's end


@dataclass(frozen=True)
class DatasetSpec:
    """One training source: a LIP-format folder, its split and label folder, its share of samples."""

    root: str
    split: str | None = None
    labels: str | None = None
    ratio: float = 1.0
    white_background: bool = False  # studio photos: replace label-0 pixels with textures
    repeat: float = 0.0  # repeat-factor threshold (0: every pair equally often); see `repeat_factors`
    any_shoe: bool = False  # shoes (18/19) become the partial label 21 (either side): their sides are not trusted

    @classmethod
    def parse(cls, text: str) -> "DatasetSpec":
        """Parse 'ROOT[:split=S][:labels=L][:ratio=R][:repeat=T][:white][:anyshoe]'."""
        root, *opts = text.split(":")
        kw: dict = {}
        for opt in opts:
            key, _, value = opt.partition("=")
            if key == "white":
                kw["white_background"] = True
            elif key == "anyshoe":
                kw["any_shoe"] = True
            elif key in ("ratio", "repeat"):
                try:
                    kw[key] = float(value)
                except ValueError:
                    raise InputError(f"cannot parse dataset '{text}': {key} must be a number") from None
            elif key in ("split", "labels"):
                kw[key] = value
            else:
                raise InputError(f"cannot parse dataset '{text}': unknown option '{key}'")
        return cls(root, **kw)


@dataclass(frozen=True)
class TrainConfig:
    """The paper's recipe (Adam 0.005, poly 0.9, batch 4, dropout 0.25) and what real data needs."""

    datasets: tuple[DatasetSpec, ...] = ()
    out: str = "runs/lipnet"
    iters: int = 20000
    batch: int = 4
    lr: float = 0.005
    poly_power: float = 0.9
    size: int = 256
    seed: int = 0
    ckpt_every: int = 200
    threads: int = 2
    model: LipNetConfig = field(default_factory=LipNetConfig)
    val: DatasetSpec | None = None  # scored with the ccp protocol every `val_every` steps
    val_every: int = 1000
    val_limit: int = 50
    lovasz: float = 0.0  # weight of the Lovasz-softmax term added to the cross-entropy (0: off)
    grey: float = 0.0  # share of samples turned to grey
    scale: tuple[float, float] = AugmentConfig.scale  # random scale range, relative to the image's long side at `size`
    paste: float = 0.0  # share of samples given a rare class cut from a street photo (copy-paste)
    empty: float = 0.0  # share of samples with the person taken out and the scene labelled background
    recolour: float = 0.0  # share of samples whose garments get new colours (hue, chroma, lightness inverted or darkened)
    distill: float = 0.0  # weight of the KL term towards the teacher's flip-averaged probabilities (0: off)
    teacher: str = ""  # checkpoint of the frozen teacher for `distill`
    teacher_scale: float = 1.0  # the teacher sees each crop resized by this factor (1.25: a 256 crop at 320)
    device: str = "cpu"  # torch device: "cpu" or "cuda"
    workers: int = 0  # sampling processes (0: samples are drawn in the training process)
    snapshot_every: int = 0  # also keep the model weights every N steps as snap_NNNNNN.pt (0: off)
    bn_batches: int = 0  # at the schedule's end, re-estimate BatchNorm on this many batches of 16 (0: off)


def class_weights(counts: np.ndarray) -> np.ndarray:
    """ENet's weights w_c = 1 / ln(1.02 + f_c) from pixel frequencies f_c, scaled to mean 1 over seen classes."""
    freq = counts / max(counts.sum(), 1)
    w = 1.0 / np.log(1.02 + freq)
    w[counts == 0] = 0.0
    seen = counts > 0
    return (w / w[seen].mean()).astype(np.float32)


def parse_loss(logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Weighted cross-entropy on ordinary labels plus the partial-label loss on 20/21.

    A pixel labelled 20 (skin) or 21 (shoe) adds -log(sum of the probabilities of the classes
    it may be). 255 is ignored. The mean is over all labelled pixels (weights count for CE).
    """
    logp = F.log_softmax(logits, 1)
    full = target < logits.shape[1]
    safe = torch.where(full, target, torch.zeros_like(target))
    nll = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    w = weight[safe] if weight is not None else torch.ones_like(nll)
    w = w * full
    total, norm = (nll * w).sum(), w.sum()
    for label, allowed in PARTIAL_SETS.items():
        sel = target == label
        if sel.any():
            lse = torch.logsumexp(logp[:, list(allowed)], 1)
            total = total - lse[sel].sum()
            norm = norm + sel.sum()
    return total / norm.clamp(min=1)


def lovasz_softmax(logits: Tensor, target: Tensor) -> Tensor:
    """Lovasz-softmax loss (Berman et al., CVPR 2018): a convex surrogate of 1 - IoU per class.

    Over all pixels of the batch with an ordinary label (ids >= the number of classes, i.e. the
    partial labels 20/21 and 255, are left out), averaged over the classes present in the labels.
    With one-hot probabilities it equals the mean of 1 - IoU over those classes, so unlike the
    cross-entropy it weighs a small class's pixels by how much they move that class's IoU.
    """
    n_cls = logits.shape[1]
    probs = F.softmax(logits, 1).permute(0, 2, 3, 1).reshape(-1, n_cls)
    labels = target.reshape(-1)
    keep = labels < n_cls
    probs, labels = probs[keep], labels[keep]
    present = torch.unique(labels)
    if present.numel() == 0:
        return logits.sum() * 0.0
    fg = (labels.unsqueeze(0) == present.unsqueeze(1)).to(probs.dtype)  # classes x pixels
    errors, order = torch.sort((fg - probs[:, present].t()).abs(), dim=1, descending=True)
    fg = fg.gather(1, order)
    # The Lovasz extension's gradient: the Jaccard loss of each prefix of the sorted errors, differenced.
    gts = fg.sum(1, keepdim=True)
    jaccard = 1 - (gts - fg.cumsum(1)) / (gts + (1 - fg).cumsum(1))
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)
    return (errors * grad).sum(1).mean()


def flip_soft_labels(teacher: LipNet, x: Tensor, scale: float = 1.0) -> Tensor:
    """The teacher's flip test-time augmentation as soft labels: the mean of the class
    probabilities of `x` and of its mirror (flipped back, left/right channels swapped).

    With `scale` != 1 the teacher sees both enlarged (bilinear, sides rounded up to a multiple
    of the output stride, as the app pads its input) and its probabilities come back at `x`'s
    size: the multi-scale test-time augmentation as a target (1.25 on 256 crops: what
    `--flip --size 320` gives at inference).
    """
    h, w = x.shape[-2:]
    with torch.no_grad():
        both = torch.cat([x, x.flip(3)])
        if scale != 1.0:
            m = OUTPUT_STRIDE
            size = (m * math.ceil(h * scale / m), m * math.ceil(w * scale / m))
            both = F.interpolate(both, size=size, mode="bilinear", align_corners=False)
        probs = F.softmax(teacher(both), 1)
        if probs.shape[-2:] != (h, w):
            probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
    n = x.shape[0]
    swap = torch.as_tensor(FLIP_LUT[: probs.shape[1]].astype(np.int64), device=probs.device)
    return 0.5 * (probs[:n] + probs[n:].flip(3)[:, swap])


def distill_loss(logits: Tensor, soft: Tensor, target: Tensor) -> Tensor:
    """KL(soft || softmax(logits)) per pixel, averaged over the pixels not marked 255."""
    logq = F.log_softmax(logits, 1)
    kl = (soft * (torch.log(soft.clamp_min(1e-8)) - logq)).sum(1)
    valid = (target != IGNORE).to(kl.dtype)
    return (kl * valid).sum() / valid.sum().clamp(min=1)


def repeat_factors(present: np.ndarray, threshold: float) -> np.ndarray:
    """Per-pair sampling weights from LVIS's repeat-factor sampling (Gupta et al., 2019).

    `present` is a (pairs x classes) bool matrix of which classes each label map contains.
    A class in a fraction f_c of the maps gets r_c = max(1, sqrt(threshold / f_c)); a map gets
    the largest r_c of its classes. So maps holding a class rarer than `threshold` are drawn
    more often, by the square root of how much rarer.
    """
    f = present.mean(0)
    r_class = np.where(f > 0, np.sqrt(threshold / np.maximum(f, 1e-12)), 1.0).clip(min=1.0)
    return np.where(present, r_class, 1.0).max(1, initial=1.0)


def _check_label_ids(spec: DatasetSpec, pairs: list[tuple[Path, Path]], sample: int = 20) -> None:
    """Refuse label maps of other ids than LIP's (0-19), CCP's partial skin and shoe (20, 21) and
    255, judged on `sample` maps spread over the folder: the loss leaves other ids out, so a
    folder of another label set (CCP's own 59 labels) would train on a part of it, silently."""
    known = id_mask(max(PARTIAL_SETS) + 1)
    for _, lab in pairs[:: max(1, len(pairs) // sample)][:sample]:
        odd = ids_outside(read_mask(lab), known)
        if odd.size:
            raise InputError(f"cannot train on '{lab.parent}': its label maps hold ids that are not LIP ids "
                             f"({ids_text(odd)} in '{lab.name}'); give the folder of LIP ids (ROOT:labels=NAME)")


class _Source:
    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.pairs = find_pairs(Path(spec.root), spec.split, labels=spec.labels)
        _check_label_ids(spec, self.pairs)
        self.p: np.ndarray | None = None  # per-pair probabilities; None: uniform
        if spec.repeat > 0:
            present = np.stack([np.bincount(read_mask(lab).ravel(), minlength=256)[:NUM_CLASSES] > 0
                                for _, lab in self.pairs])
            r = repeat_factors(present, spec.repeat)
            self.p = r / r.sum()
            log.info("%s: repeat factors up to %.2f (%d of %d maps above 1)", spec.root, r.max(),
                     int((r > 1).sum()), len(r))

    def draw(self, rng: np.random.Generator) -> tuple[Path, Path]:
        return self.pairs[rng.choice(len(self.pairs), p=self.p) if self.p is not None else rng.integers(len(self.pairs))]


class MixedSampler:
    """Draws augmented samples: a dataset by ratio, then a random pair of it."""

    def __init__(self, specs: tuple[DatasetSpec, ...], aug: AugmentConfig, seed: int) -> None:
        if not specs:
            raise InputError("no training data: give at least one --data folder")
        self.sources = [_Source(s) for s in specs]
        ratios = np.array([s.ratio for s in specs], np.float64)
        self.p = ratios / ratios.sum()
        self.aug = aug
        self.rng = np.random.default_rng(seed)
        self.textures = [s for s in self.sources if not s.spec.white_background]
        self.bank = self._paste_bank() if aug.paste_p > 0 else {}

    def _paste_bank(self) -> dict[int, list[PasteItem]]:
        """The rare-class items of the street-photo sources (not the studio ones), by label."""
        bank: dict[int, list[PasteItem]] = {}
        wanted = np.array(list(PASTE_ANCHORS))
        for src in self.textures:
            for img_path, lab_path in src.pairs:
                mask = read_mask(lab_path)
                if np.isin(wanted, mask).any():
                    for item in paste_items(read_image(img_path), mask):
                        bank.setdefault(item.label, []).append(item)
        log.info("copy-paste items: %s", {label: len(v) for label, v in sorted(bank.items())})
        return bank

    def _texture(self, shape: tuple[int, int]) -> np.ndarray:
        h, w = shape
        if self.textures:
            src = self.textures[self.rng.integers(len(self.textures))]
            img_path, _ = src.pairs[self.rng.integers(len(src.pairs))]
            img = read_image(img_path)
            # The outer strips of full-body street photos are mostly scenery, not people.
            band = max(img.shape[1] // 4, 1)
            x0 = 0 if self.rng.random() < 0.5 else img.shape[1] - band
            return cv2.resize(img[:, x0:x0 + band], (w, h), interpolation=cv2.INTER_LINEAR)
        tex = self.rng.integers(0, 255, (max(h // 16, 1), max(w // 16, 1), 3), dtype=np.uint8)
        return cv2.resize(tex, (w, h), interpolation=cv2.INTER_CUBIC)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        src = self.sources[self.rng.choice(len(self.sources), p=self.p)]
        img_path, lab_path = src.draw(self.rng)
        image, mask = read_image(img_path), read_mask(lab_path)
        if src.spec.any_shoe:
            mask = np.where(np.isin(mask, PARTIAL_SETS[SHOE]), SHOE, mask).astype(np.uint8)
        if src.spec.white_background and self.rng.random() < 0.8:
            image = replace_background(image, mask, self._texture(mask.shape))
        if self.aug.empty_p > 0 and self.rng.random() < self.aug.empty_p:  # drawn only when on: older seeds replay
            image, mask = remove_person(image, mask)
        elif self.aug.recolour_p > 0 and self.rng.random() < self.aug.recolour_p:  # the same
            image = recolour_garments(image, mask, self.rng)
        elif self.bank and self.rng.random() < self.aug.paste_p:
            labels = sorted(self.bank)
            items = self.bank[labels[self.rng.integers(len(labels))]]
            image, mask = paste(image, mask, items[self.rng.integers(len(items))], self.rng)
        base = self.aug.size / max(mask.shape)
        return augment(image, mask, self.rng, self.aug, base_scale=base)

    def batch(self, n: int) -> tuple[Tensor, Tensor]:
        imgs, labs = zip(*(self.sample() for _ in range(n)))
        return torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(labs)).long()

    def label_counts(self, bins: int = 22, limit: int = 2000) -> np.ndarray:
        """Pixel counts per label id over (up to `limit` pairs of) each source, weighted by its ratio."""
        total = np.zeros(bins, np.float64)
        for src, p in zip(self.sources, self.p):
            counts = np.zeros(bins, np.float64)
            for _, lab in src.pairs[:limit]:
                counts += np.bincount(read_mask(lab).ravel(), minlength=256)[:bins]
            total += p * counts / max(counts.sum(), 1)
        return total


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless augmented batches for DataLoader workers.

    Worker k draws with its own generator seeded (seed, step, k); the loader takes the workers'
    batches in turn, so a run replays exactly for the same seed, step and number of workers.
    """

    def __init__(self, specs: tuple[DatasetSpec, ...], aug: AugmentConfig, seed: int, step: int, batch: int) -> None:
        self.specs, self.aug, self.seed, self.step, self.batch = specs, aug, seed, step, batch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        cv2.setNumThreads(1)
        torch.set_num_threads(1)
        sampler = MixedSampler(self.specs, self.aug, self.seed)
        sampler.rng = np.random.default_rng([self.seed, self.step, worker])
        while True:
            yield sampler.batch(self.batch)


def _batches(cfg: TrainConfig, sampler: MixedSampler, step: int):
    """Yield (bgr, target) batches: from `sampler` in this process, or from `cfg.workers` processes."""
    if cfg.workers <= 0:
        while True:
            yield sampler.batch(cfg.batch)
    stream = _BatchStream(cfg.datasets, sampler.aug, cfg.seed, step, cfg.batch)
    # Spawned, not forked: a forked child can hang in OpenCV's or OpenMP's thread pools of the parent.
    yield from torch.utils.data.DataLoader(stream, batch_size=None, num_workers=cfg.workers, prefetch_factor=4,
                                           pin_memory=cfg.device != "cpu", multiprocessing_context="spawn")


def validate(net: LipNet, spec: DatasetSpec, size: int, limit: int) -> float:
    """mIoU (ccp protocol) of the torch model on the first `limit` pairs, preprocessed like the engine."""
    from .engine import letterbox
    from .metrics import protocol_confusion, scores

    device = next(net.parameters()).device
    pre = Preprocess().to(device)
    cm = None
    was_training = net.training
    net.eval()
    with torch.no_grad():
        for img_path, lab_path in find_pairs(Path(spec.root), spec.split, labels=spec.labels)[:limit]:
            img, label = read_image(img_path), read_mask(lab_path)
            batch, (rh, rw) = letterbox(img, size)
            ids = net(pre(torch.from_numpy(batch).to(device))).argmax(1)[0, :rh, :rw].cpu().numpy().astype(np.uint8)
            ids = cv2.resize(ids, (label.shape[1], label.shape[0]), interpolation=cv2.INTER_NEAREST)
            c = protocol_confusion(ids, label, "ccp")
            cm = c if cm is None else cm + c
    net.train(was_training)
    return scores(cm).miou if cm is not None else float("nan")


def plot_log(log_csv: Path, out_png: Path) -> Path:
    """Draw training loss (left axis) and validation mIoU (right axis) against steps as a PNG."""
    rows = list(csv.DictReader(open(log_csv)))
    w, h, m = 640, 360, 48
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.rectangle(img, (m, 10), (w - m, h - m), (0, 0, 0), 1)
    steps = np.array([float(r["step"]) for r in rows]) if rows else np.zeros(0)
    if len(steps):
        x = lambda s: (m + (s / max(steps.max(), 1)) * (w - 2 * m)).astype(int)
        loss = np.array([float(r["loss"]) for r in rows])
        top = max(float(loss.max()), 1e-6)
        pts = np.stack([x(steps), (h - m - loss / top * (h - m - 10)).astype(int)], 1)
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, (200, 80, 0), 2, cv2.LINE_AA)
        cv2.putText(img, f"loss (max {top:.2f})", (m + 6, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 80, 0), 1, cv2.LINE_AA)
        val = [(float(r["step"]), float(r["val_miou"])) for r in rows if r.get("val_miou")]
        if val:
            v = np.array(val)
            pts = np.stack([x(v[:, 0]), (h - m - v[:, 1] * (h - m - 10)).astype(int)], 1)
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, (0, 140, 0), 2, cv2.LINE_AA)
            for px, py in pts:
                cv2.circle(img, (int(px), int(py)), 3, (0, 140, 0), -1)
            cv2.putText(img, f"val mIoU, 0..1 (last {v[-1, 1]:.3f})", (m + 6, 46), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (0, 140, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"step (0..{int(steps.max())})", (w // 2 - 40, h - 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(out_png), img)
    return out_png


def poly_lr(base: float, step: int, total: int, power: float) -> float:
    """The 'poly' schedule: base * (1 - step/total)^power."""
    return base * (1 - min(step, total) / total) ** power


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _config_to_dict(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


def train(cfg: TrainConfig, resume: bool = False, on_step: Callable[[int, float], None] | None = None,
          should_stop: Callable[[], bool] = lambda: False, init: Path | None = None) -> Path:
    """Train (or resume) and return the path of the last checkpoint.

    Args:
        resume: continue from `cfg.out/last.pt` (its step; its optimizer state when it has one,
            so the slim checkpoint shipped in weights/ resumes too, with fresh Adam moments).
        init: start a new schedule from the model weights of this checkpoint.
        should_stop: polled every step; when it turns true a checkpoint is written and training ends.
    """
    if cfg.distill > 0 and (not cfg.teacher or not Path(cfg.teacher).is_file()):  # before any data is read
        raise InputError(f"cannot distil: no teacher checkpoint at '{cfg.teacher}' (give --teacher)")
    if cfg.distill <= 0 and (cfg.teacher or cfg.teacher_scale != 1.0):
        raise InputError("--teacher and --teacher-scale only act with --distill W (a weight above 0)")
    torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("cannot train on 'cuda': torch sees no CUDA GPU (use --device cpu)")
        torch.backends.cudnn.benchmark = True
    out = output_folder(Path(cfg.out), "the run")
    ckpt_path = out / "last.pt"
    torch.manual_seed(cfg.seed)
    ckpt = read_checkpoint(ckpt_path) if resume and ckpt_path.is_file() else None
    if ckpt is not None:  # the run's own architecture, whatever the command line says
        cfg = replace(cfg, model=config_of(ckpt))
    net = LipNet(cfg.model).to(memory_format=torch.channels_last)
    pre = Preprocess()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sampler = MixedSampler(cfg.datasets, AugmentConfig(size=cfg.size, scale=cfg.scale, grey_p=cfg.grey, paste_p=cfg.paste,
                                                 empty_p=cfg.empty, recolour_p=cfg.recolour), cfg.seed)
    step = prior = 0  # prior: the iterations behind the --init weights
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        if "optimizer" in ckpt:
            opt.load_state_dict(ckpt["optimizer"])
        step = ckpt["step"]
        prior = iterations(ckpt) - step
        weights = np.array(ckpt["class_weights"], np.float32)
        sampler.rng = np.random.default_rng([cfg.seed, step])
        torch.manual_seed(cfg.seed + step)
        log.info("resumed from %s at step %d", ckpt_path, step)
    else:
        if resume:
            raise InputError(f"cannot resume: no checkpoint at '{ckpt_path}'")
        if init is not None:
            start = read_checkpoint(Path(init))
            try:
                net.load_state_dict(start["model"])
            except RuntimeError as exc:  # another architecture (--decoder-stride, widths)
                first = str(exc).strip().splitlines()[0]
                raise WeightsError(f"cannot start from '{init}': its weights do not fit this model ({first})") from exc
            prior = iterations(start)
            log.info("initialised from %s", init)
        counts = sampler.label_counts()
        weights = class_weights(counts[:NUM_CLASSES])
        log.info("class weights: %s", np.round(weights, 2).tolist())
    teacher = None
    if cfg.distill > 0:
        teacher = load_checkpoint(Path(cfg.teacher))[0].to(memory_format=torch.channels_last)
        teacher.eval().requires_grad_(False).to(device)
        log.info("distilling from %s (flip-averaged, crops x%g) at weight %g", cfg.teacher, cfg.teacher_scale, cfg.distill)
    net.to(device)
    pre.to(device)
    opt.load_state_dict(opt.state_dict())  # moves any loaded optimizer state to the parameters' device
    weight_t = torch.from_numpy(weights).to(device)
    batches = _batches(cfg, sampler, step)
    start_step = step
    log_path = out / "log.csv"
    new_log = not log_path.is_file() or step == 0
    with open(log_path, "w" if new_log else "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_log:
            writer.writerow(["step", "lr", "loss", "sec_per_iter", "val_miou"])
        net.train()
        t0, run_loss, n = time.perf_counter(), 0.0, 0
        while step < cfg.iters and not should_stop():
            lr = poly_lr(cfg.lr, step, cfg.iters, cfg.poly_power)
            for g in opt.param_groups:
                g["lr"] = lr
            bgr, target = next(batches)
            bgr, target = bgr.to(device, non_blocking=True), target.to(device, non_blocking=True)
            x = pre(bgr).contiguous(memory_format=torch.channels_last)
            logits = net(x)
            loss = parse_loss(logits, target, weight_t)
            if cfg.lovasz > 0:  # on every second row and column: a quarter of the sorting
                loss = loss + cfg.lovasz * lovasz_softmax(logits[..., ::2, ::2], target[..., ::2, ::2])
            if teacher is not None:
                loss = loss + cfg.distill * distill_loss(logits, flip_soft_labels(teacher, x, cfg.teacher_scale), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            run_loss += float(loss.detach())
            n += 1
            if on_step:
                on_step(step, float(loss.detach()))
            snap = cfg.snapshot_every > 0 and step % cfg.snapshot_every == 0
            if step % cfg.ckpt_every == 0 or snap or step == cfg.iters or should_stop():
                dt = (time.perf_counter() - t0) / n
                miou = ""
                if cfg.val is not None and (step % cfg.val_every == 0 or step == cfg.iters):
                    miou = f"{validate(net, cfg.val, cfg.size, cfg.val_limit):.4f}"
                writer.writerow([step, f"{lr:.6f}", f"{run_loss / n:.4f}", f"{dt:.3f}", miou])
                fh.flush()
                plot_log(log_path, out / "curves.png")
                last = {
                    "model": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "iterations": prior + step, "config": asdict(cfg.model), "train_config": _config_to_dict(cfg),
                    "class_weights": weights.tolist(),
                }
                _save_atomic(last, ckpt_path)
                if snap:  # weights only: for averaging
                    _save_atomic({"model": net.state_dict(), "step": step, "iterations": prior + step,
                                  "config": asdict(cfg.model),
                                  "class_weights": weights.tolist()}, out / f"snap_{step:06d}.pt")
                log.info("step %d loss %.4f lr %.5f %.2fs/iter", step, run_loss / n, lr, dt)
                t0, run_loss, n = time.perf_counter(), 0.0, 0
    if cfg.bn_batches > 0 and step == cfg.iters and start_step < step:  # the schedule ended in this call
        log.info("re-estimating BatchNorm statistics on %d batches of %d", cfg.bn_batches, BN_BATCH)
        recalibrate_bn_on(net, cfg.datasets, cfg.bn_batches, BN_BATCH, cfg.size, cfg.seed, cfg.scale, cfg.empty)
        last.update(model=net.state_dict(), bn_recalibrated=_bn_note(cfg.bn_batches, BN_BATCH, cfg.scale, cfg.empty))
        _save_atomic(last, ckpt_path)  # the final step's checkpoint again, with the new statistics
    return ckpt_path


def average_weights(states: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The uniform mean of model state dicts of one architecture ("model soup", Wortsman et al. 2022).

    Float tensors are averaged; integer ones (BatchNorm's batch counters) are taken from the first.
    """
    if not states:
        raise InputError("nothing to average: give at least one checkpoint")
    keys = states[0].keys()
    for s in states[1:]:
        if s.keys() != keys or any(s[k].shape != states[0][k].shape for k in keys):
            raise InputError("cannot average checkpoints of different architectures")
    return {k: (torch.stack([s[k].float() for s in states]).mean(0).to(states[0][k].dtype)
                if states[0][k].is_floating_point() else states[0][k].clone()) for k in keys}


@torch.no_grad()
def recalibrate_bn(net: LipNet, batches, steps: int) -> LipNet:
    """Re-estimate every BatchNorm's running mean and variance over `steps` training batches.

    Averaged weights do not match the averaged running statistics (SWA's `bn_update`, Izmailov
    et al. 2018): each BatchNorm is reset and given the plain mean over the batches (momentum
    None), with dropout off as at inference.
    """
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    net.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    device = next(net.parameters()).device
    pre = Preprocess().to(device)
    for _ in range(steps):
        bgr, _target = next(batches)
        net(pre(bgr.to(device)).contiguous(memory_format=torch.channels_last))
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
    return net.eval()


def recalibrate_bn_on(net: LipNet, data: tuple[DatasetSpec, ...], steps: int, batch: int, size: int, seed: int,
                      scale: tuple[float, float] = AugmentConfig.scale, empty: float = 0.0) -> LipNet:
    """`recalibrate_bn` on `steps` batches of `batch` augmented `size` crops drawn from `data` at
    random scales in `scale`, a share `empty` with the person taken out (a training run passes its own)."""
    sampler = MixedSampler(data, AugmentConfig(size=size, scale=scale, empty_p=empty), seed)
    return recalibrate_bn(net, (sampler.batch(batch) for _ in range(steps)), steps)


def _bn_note(steps: int, batch: int, scale: tuple[float, float], empty: float = 0.0) -> str:
    """How a checkpoint's BatchNorm statistics were re-estimated (stored in it)."""
    return f"{steps} batches of {batch} at scales {scale[0]:g}-{scale[1]:g}" + (f", {empty:g} with nobody" if empty else "")


def average_checkpoints(paths: list[Path], out: Path, bn_data: tuple[DatasetSpec, ...] = (), bn_steps: int = 100,
                        batch: int = 16, size: int = 256, seed: int = 0, threads: int = 2,
                        scale: tuple[float, float] = AugmentConfig.scale, empty: float = 0.0) -> Path:
    """Average the weights of checkpoints of one run or of runs from one start, and write a checkpoint.

    With `bn_data`, BatchNorm statistics are re-estimated on `bn_steps` batches of augmented
    training samples (the training augmentation, `size` crops at random scales in `scale`, a
    share `empty` with the person taken out); without, they are averaged too.
    """
    torch.set_num_threads(threads)
    loaded = [load_checkpoint(Path(p)) for p in paths]
    net, first = loaded[0]
    if any(n.config != net.config for n, _ in loaded[1:]):  # same shapes, different graphs (decoder_stride)
        raise InputError("cannot average checkpoints of different architectures")
    net.load_state_dict(average_weights([n.state_dict() for n, _ in loaded]))
    net = net.to(memory_format=torch.channels_last)
    if bn_data:
        recalibrate_bn_on(net, bn_data, bn_steps, batch, size, seed, scale, empty)
    out.parent.mkdir(parents=True, exist_ok=True)
    _save_atomic({
        "model": net.state_dict(), "step": max(int(c.get("step", 0)) for _, c in loaded),
        "iterations": max(iterations(c) for _, c in loaded),
        "config": first["config"], "class_weights": first.get("class_weights", []),
        "averaged_from": [str(p) for p in paths],
        "bn_recalibrated": _bn_note(bn_steps, batch, scale, empty) if bn_data else "",
    }, out)
    return out
