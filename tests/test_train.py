import math

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lipparse_rt.train import (  # noqa: E402
    DatasetSpec, MixedSampler, TrainConfig, average_checkpoints, average_weights, class_weights, distill_loss,
    flip_soft_labels, lovasz_softmax, parse_loss, poly_lr, recalibrate_bn, repeat_factors, train,
)
from lipparse_rt.model import LipNet, LipNetConfig  # noqa: E402
from lipparse_rt.data import AugmentConfig  # noqa: E402
from conftest import make_lip_folder  # noqa: E402

TINY = LipNetConfig(widths=(4, 8, 8, 8, 8, 8), aspp_width=8, decoder_width=8)  # a LIP-Net small enough to train in a test


def test_partial_label_loss_hand_computed():
    # one pixel, 20 classes; logits 0 except face (13) = ln 3 and left-arm (14) = ln 2
    logits = torch.zeros(1, 20, 1, 1)
    logits[0, 13], logits[0, 14] = math.log(3), math.log(2)
    z = 3 + 2 + 18  # softmax denominator
    skin = torch.tensor([[[20]]])
    # allowed: 13..17 -> p = (3 + 2 + 1 + 1 + 1) / z
    assert torch.isclose(parse_loss(logits, skin), torch.tensor(-math.log(8 / z)), atol=1e-5)
    shoe = torch.tensor([[[21]]])  # allowed 18, 19 -> p = 2 / z
    assert torch.isclose(parse_loss(logits, shoe), torch.tensor(-math.log(2 / z)), atol=1e-5)
    ordinary = torch.tensor([[[13]]])
    assert torch.isclose(parse_loss(logits, ordinary), torch.tensor(-math.log(3 / z)), atol=1e-5)


def test_loss_ignores_255_and_weights_ordinary_pixels():
    logits = torch.zeros(1, 20, 1, 2)
    target = torch.tensor([[[5, 255]]])
    w = torch.ones(20)
    w[5] = 4.0
    assert torch.isclose(parse_loss(logits, target, w), torch.tensor(math.log(20)), atol=1e-5)


def test_lovasz_softmax_hand_computed():
    # two pixels, two classes: A is class 0 with p0 = 0.8, B is class 1 with p0 = 0.4.
    # class 0: errors (A 0.2, B 0.4), sorted B, A; Jaccard losses of {B}, {B, A}: 1/2, 1 -> 0.4/2 + 0.2/2 = 0.3
    # class 1: errors (A 0.2, B 0.4), sorted B, A; Jaccard losses of {B}, {B, A}: 1, 1 -> 0.4 x 1 + 0.2 x 0 = 0.4
    p0 = torch.tensor([0.8, 0.4])
    logits = torch.log(torch.stack([p0, 1 - p0])).view(1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    assert torch.isclose(lovasz_softmax(logits, target), torch.tensor(0.35), atol=1e-5)
    # 255 and the partial labels 20/21 are left out; a batch with nothing else costs 0
    logits20 = torch.zeros(1, 20, 1, 3)
    assert torch.isclose(lovasz_softmax(logits20, torch.tensor([[[255, 20, 21]]])), torch.tensor(0.0))


def test_lovasz_softmax_is_one_minus_iou_for_crisp_predictions():
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.integers(0, 4, (2, 6, 7)))
    pred = torch.where(torch.from_numpy(rng.random((2, 6, 7)) < 0.3), (target + 1) % 4, target)
    logits = _one_hot_logits(pred, 4)
    ious = [((pred == c) & (target == c)).sum() / ((pred == c) | (target == c)).sum() for c in range(4)]
    expected = 1 - torch.stack(ious).float().mean()
    assert torch.isclose(lovasz_softmax(logits, target), expected, atol=1e-4)


def _one_hot_logits(ids, n):
    """Logits whose softmax is one-hot on `ids` (to float precision)."""
    return torch.nn.functional.one_hot(ids, n).permute(0, 3, 1, 2).float() * 100.0


def test_class_weights_favour_rare_classes():
    w = class_weights(np.array([1000.0, 10.0, 0.0, 100.0]))
    assert w[1] > w[3] > w[0] and w[2] == 0


def test_repeat_factors_hand_computed():
    # class 0 in all 4 maps, class 1 in one (f=0.25), class 2 in two (f=0.5)
    present = np.array([[1, 1, 0], [1, 0, 1], [1, 0, 1], [1, 0, 0]], bool)
    r = repeat_factors(present, threshold=1.0)
    assert np.allclose(r, [2.0, np.sqrt(2), np.sqrt(2), 1.0])  # sqrt(1/0.25), sqrt(1/0.5), none rare
    assert np.allclose(repeat_factors(present, threshold=0.1), 1.0)  # nothing rarer than 10%


def test_sampler_draws_rare_maps_more_often(tmp_path):
    from lipparse_rt.data import AugmentConfig
    from lipparse_rt.train import _Source

    _tiny_dataset(tmp_path / "d")
    m = cv2.imread(str(tmp_path / "d" / "parse" / "0.png"), 0)
    m[0:5, 0:5] = 1  # a hat in map 0 only
    cv2.imwrite(str(tmp_path / "d" / "parse" / "0.png"), m)
    src = _Source(DatasetSpec.parse(f"{tmp_path / 'd'}:repeat=1"))
    rng = np.random.default_rng(0)
    drawn = [src.draw(rng)[1].name for _ in range(3000)]
    assert 0.44 < drawn.count("0.png") / len(drawn) < 0.56  # weights sqrt(3):1:1 -> 0.46 of draws
    plain = _Source(DatasetSpec.parse(str(tmp_path / "d")))
    assert plain.p is None
    MixedSampler((DatasetSpec.parse(f"{tmp_path / 'd'}:repeat=1"),), AugmentConfig(size=32), 0).sample()


def test_sampler_pastes_hats_from_street_photos_onto_studio_ones(tmp_path):
    for name in ("street", "studio"):
        _tiny_dataset(tmp_path / name)
        for lab in (tmp_path / name / "parse").iterdir():
            m = cv2.imread(str(lab), 0)
            m[3:13, 12:20] = 13  # a face at the top of the clothes
            if name == "street" and lab.stem == "0":
                m[0:3, 12:20] = 1  # a hat on one street photo
            cv2.imwrite(str(lab), m)
    specs = (DatasetSpec.parse(f"{tmp_path / 'studio'}:white:ratio=1"), DatasetSpec.parse(f"{tmp_path / 'street'}:ratio=0"))
    aug = dict(size=32, scale=(1.0, 1.0), rotate_deg=0, flip=False)
    with_hats = MixedSampler(specs, AugmentConfig(**aug, paste_p=0.5), 0)
    assert [(label, len(items)) for label, items in with_hats.bank.items()] == [(1, 1)]
    hats = sum(bool((with_hats.sample()[1] == 1).any()) for _ in range(200))
    assert 70 <= hats <= 130  # about half of the studio samples (which have no hat) get one
    plain = MixedSampler(specs, AugmentConfig(**aug), 0)
    assert plain.bank == {} and not any((plain.sample()[1] == 1).any() for _ in range(50))


def test_sampler_takes_the_person_out_of_a_share_of_samples(tmp_path):
    _tiny_dataset(tmp_path / "d")
    specs = (DatasetSpec.parse(str(tmp_path / "d")),)
    aug = dict(size=32, scale=(1.0, 1.0), rotate_deg=0)
    sampler = MixedSampler(specs, AugmentConfig(**aug, empty_p=0.3), 0)
    empty = 0
    for _ in range(200):
        _, lab = sampler.sample()
        person = (lab != 0) & (lab != 255)
        assert person.any() or (lab == 255).any()  # a person, or the ignored hole where it was
        empty += not person.any()
    assert 40 <= empty <= 80  # about 30% of samples have nobody in them
    plain = MixedSampler(specs, AugmentConfig(**aug), 0)
    assert all(np.isin(plain.sample()[1], range(1, 20)).any() for _ in range(50))


def test_anyshoe_turns_sided_shoes_into_the_partial_label(tmp_path):
    _tiny_dataset(tmp_path / "d")
    for lab in (tmp_path / "d" / "parse").iterdir():
        m = cv2.imread(str(lab), 0)
        m[40:44, 8:14], m[40:44, 18:24] = 18, 19  # a left and a right shoe
        cv2.imwrite(str(lab), m)
    aug = AugmentConfig(size=32, scale=(1.0, 1.0), rotate_deg=0)
    spec = DatasetSpec.parse(f"{tmp_path / 'd'}:anyshoe")
    assert spec.any_shoe and not DatasetSpec.parse(str(tmp_path / "d")).any_shoe
    for _ in range(5):
        lab = MixedSampler((spec,), aug, 0).sample()[1]
        assert (lab == 21).sum() > 10 and not np.isin(lab, (18, 19)).any() and (lab == 14).any()  # arms keep their side
    sided = MixedSampler((DatasetSpec.parse(str(tmp_path / "d")),), aug, 0).sample()[1]
    assert np.isin(sided, (18, 19)).sum() > 10 and not (sided == 21).any()


def test_poly_schedule():
    assert poly_lr(0.005, 0, 100, 0.9) == 0.005
    assert poly_lr(0.005, 100, 100, 0.9) == 0.0
    assert np.isclose(poly_lr(0.005, 50, 100, 0.9), 0.005 * 0.5 ** 0.9)


def _tiny_dataset(root):
    make_lip_folder(root, range(3), (48, 32), images="image", labels="parse")


def test_train_adds_the_lovasz_term(tmp_path):
    _tiny_dataset(tmp_path / "d")
    first = {}
    for weight in (0.0, 2.0):
        cfg = TrainConfig(datasets=(DatasetSpec(str(tmp_path / "d")),), out=str(tmp_path / f"run{weight}"),
                          iters=1, batch=2, size=32, model=TINY, threads=1, lovasz=weight)
        train(cfg, on_step=lambda s, loss, w=weight: first.setdefault(w, loss))
    # same seed, weights and batch: the first step's loss differs by 2 x the Lovasz term, in (0, 2]
    assert 0.0 < first[2.0] - first[0.0] <= 2.0


class _LeftArmWhereBright(torch.nn.Module):
    """A stand-in teacher: 'left arm' (14) with logit 10 wherever the first input channel is 1."""

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 20, *x.shape[2:])
        logits[:, 14] = 10 * x[:, 0]
        return logits


def test_flip_soft_labels_average_the_mirror_with_sides_swapped():
    x = torch.zeros(1, 3, 1, 2)
    x[0, 0, 0, 0] = 1  # bright on the left of the picture
    soft = flip_soft_labels(_LeftArmWhereBright(), x)
    high, low = math.exp(10) / (math.exp(10) + 19), 1 / (math.exp(10) + 19)
    # as seen: left arm at pixel 0; mirrored, it is at pixel 1 and comes back at pixel 0 as the right arm
    assert soft[0, 14, 0, 0] == pytest.approx(0.5 * (high + low), rel=1e-5)
    assert soft[0, 15, 0, 0] == pytest.approx(0.5 * (low + high), rel=1e-5)
    assert soft[0, 0, 0, 0] == pytest.approx(low, rel=1e-5)
    assert torch.allclose(soft[0, :, 0, 1], torch.full((20,), 1 / 20))
    assert torch.allclose(soft.sum(1), torch.ones(1, 1, 2))


def test_flip_soft_labels_at_a_teacher_scale_come_back_at_the_crop_size():
    seen = []

    class Recording(_LeftArmWhereBright):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return super().forward(x)

    x = torch.zeros(1, 3, 16, 32)
    x[0, 0, :, :8] = 1  # a bright band on the left quarter of the picture
    soft = flip_soft_labels(Recording(), x, scale=1.25)
    # 16x32 enlarged 1.25x is 20x40, rounded up to multiples of 16 as the app pads its input
    assert seen == [(2, 3, 32, 48)]
    assert soft.shape == (1, 20, 16, 32)
    assert torch.allclose(soft.sum(1), torch.ones(1, 16, 32), atol=1e-5)
    # away from the band's edge the enlarged view gives what the crop itself gives
    plain = flip_soft_labels(_LeftArmWhereBright(), x)
    assert torch.allclose(soft[..., 2:14, 2:6], plain[..., 2:14, 2:6], atol=1e-4)
    assert torch.allclose(soft[..., 2:14, 12:30], plain[..., 2:14, 12:30], atol=1e-4)
    assert float(soft[0, 14, 8, 2]) > 0.49  # the left arm, as seen in the band


def test_distill_loss_hand_computed_and_ignores_255():
    logits = torch.zeros(1, 20, 1, 2)
    soft = torch.zeros(1, 20, 1, 2)
    soft[0, 0] = 1.0  # the teacher is sure of background at both pixels; the student is uniform
    target = torch.tensor([[[0, 255]]])
    assert float(distill_loss(logits, soft, target)) == pytest.approx(math.log(20), rel=1e-5)
    same = torch.randn(1, 20, 1, 2)
    assert float(distill_loss(same, torch.softmax(same, 1), torch.zeros(1, 1, 2, dtype=torch.long))) == pytest.approx(0, abs=1e-5)


def test_train_adds_the_distillation_term(tmp_path):
    from lipparse_rt.errors import InputError

    _tiny_dataset(tmp_path / "d")
    base = dict(datasets=(DatasetSpec(str(tmp_path / "d")),), iters=1, batch=2, size=32, model=TINY, threads=1)
    first = {}
    teacher = train(TrainConfig(out=str(tmp_path / "plain"), **base), on_step=lambda s, loss: first.setdefault(0, loss))
    cfg = TrainConfig(out=str(tmp_path / "kd"), distill=2.0, teacher=str(teacher), **base)
    train(cfg, on_step=lambda s, loss: first.setdefault(2, loss))
    # same seed and batch: the first step's loss gains 2 x KL to a teacher one step away, > 0
    assert first[2] > first[0]
    cfg = TrainConfig(out=str(tmp_path / "kd15"), distill=2.0, teacher=str(teacher), teacher_scale=1.5, **base)
    train(cfg, on_step=lambda s, loss: first.setdefault(1.5, loss))
    assert first[1.5] > first[0] and first[1.5] != pytest.approx(first[2], abs=1e-6)  # the teacher saw 48x48 crops
    with pytest.raises(InputError, match="no teacher"):
        train(TrainConfig(out=str(tmp_path / "none"), distill=1.0, teacher=str(tmp_path / "missing.pt"), **base))
    with pytest.raises(InputError, match="only act with --distill"):  # not silently ignored
        train(TrainConfig(out=str(tmp_path / "nokd"), teacher_scale=1.25, **base))
    assert not (tmp_path / "none").exists() and not (tmp_path / "nokd").exists()  # refused before any work


def test_train_checkpoints_and_resumes(tmp_path):
    _tiny_dataset(tmp_path / "d")
    cfg = TrainConfig(datasets=(DatasetSpec(str(tmp_path / "d"), white_background=True),), out=str(tmp_path / "run"),
                      iters=4, batch=2, size=32, ckpt_every=2, model=TINY, threads=1,
                      val=DatasetSpec(str(tmp_path / "d")), val_every=4)
    calls = []
    path = train(cfg, on_step=lambda s, loss: calls.append(s), should_stop=lambda: len(calls) >= 2)
    assert torch.load(path, weights_only=False)["step"] == 2
    calls.clear()
    train(cfg, resume=True, on_step=lambda s, loss: calls.append(s))
    assert calls == [3, 4]
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["step"] == 4 and "optimizer" in ckpt
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 checkpoints
    assert rows[1].endswith(",") and 0.0 <= float(rows[2].split(",")[-1]) <= 1.0  # validated at step 4 only
    assert cv2.imread(str(tmp_path / "run" / "curves.png")).shape == (360, 640, 3)


def test_resume_without_checkpoint_is_an_error(tmp_path):
    from lipparse_rt.errors import InputError

    _tiny_dataset(tmp_path / "d")
    cfg = TrainConfig(datasets=(DatasetSpec(str(tmp_path / "d")),), out=str(tmp_path / "run"), iters=2, size=32,
                      model=TINY, threads=1)
    with pytest.raises(InputError, match="no checkpoint"):
        train(cfg, resume=True)


def test_worker_batches_replay_for_the_same_seed_and_differ_between_workers(tmp_path):
    from lipparse_rt.train import _batches

    _tiny_dataset(tmp_path / "d")
    cfg = TrainConfig(datasets=(DatasetSpec(str(tmp_path / "d")),), batch=2, size=32, workers=2, seed=3)
    sampler = MixedSampler(cfg.datasets, AugmentConfig(size=32), 3)

    def first(n):
        it = _batches(cfg, sampler, step=10)
        return [next(it) for _ in range(n)]

    a, b = first(4), first(4)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.shape == (2, 32, 32, 3) and xa.dtype == torch.uint8 and ya.dtype == torch.int64
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # batches 0 and 1 come from workers 0 and 1, whose generators differ
    assert not torch.equal(a[0][0], a[1][0])


def test_train_with_workers_checkpoints(tmp_path):
    _tiny_dataset(tmp_path / "d")
    cfg = TrainConfig(datasets=(DatasetSpec(str(tmp_path / "d")),), out=str(tmp_path / "run"), iters=3, batch=2,
                      size=32, ckpt_every=3, model=TINY, threads=1, workers=2, grey=0.5)
    losses = []
    path = train(cfg, on_step=lambda s, loss: losses.append(loss))
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert torch.load(path, weights_only=False)["train_config"]["workers"] == 2


def test_train_on_cuda_without_a_gpu_is_a_clear_error(tmp_path, monkeypatch):
    from lipparse_rt.errors import InputError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _tiny_dataset(tmp_path / "d")
    cfg = TrainConfig(datasets=(DatasetSpec(str(tmp_path / "d")),), out=str(tmp_path / "run"), iters=1, size=32,
                      threads=1, device="cuda")
    with pytest.raises(InputError, match="no CUDA GPU"):
        train(cfg)


def test_train_refuses_a_file_for_out_and_a_start_that_is_not_a_checkpoint(tmp_path):
    from lipparse_rt.errors import OutputError, WeightsError

    _tiny_dataset(tmp_path / "d")
    base = dict(datasets=(DatasetSpec(str(tmp_path / "d")),), iters=1, size=32, threads=1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="it is a file"):
        train(TrainConfig(out=str(tmp_path / "file"), **base))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x04not a pickle" * 10)
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        train(TrainConfig(out=str(tmp_path / "run"), **base), init=junk)
    torch.save({"step": 3}, tmp_path / "nomodel.pt")
    with pytest.raises(WeightsError, match="not a training checkpoint"):
        train(TrainConfig(out=str(tmp_path / "run"), **base), init=tmp_path / "nomodel.pt")
    other = LipNet(LipNetConfig(widths=(8, 8, 16, 16, 32, 32), aspp_width=16, decoder_width=16))
    torch.save({"model": other.state_dict()}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="its weights do not fit this model"):
        train(TrainConfig(out=str(tmp_path / "run"), **base), init=tmp_path / "other.pt")


def test_train_refuses_labels_of_other_ids_than_lip_ones(tmp_path):
    from lipparse_rt.errors import InputError

    # CCP's own 59 labels (`labels_ccp`): the loss leaves ids past 21 out, so training went on with
    # a part of the labels, and 13-19 read as LIP's face, arms, legs and shoes
    import cv2

    _tiny_dataset(tmp_path / "d")
    label = tmp_path / "d" / "parse" / "1.png"
    m = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    m[:4, :4] = 41
    cv2.imwrite(str(label), m)
    cfg = TrainConfig(datasets=(DatasetSpec(str(tmp_path / "d")),), out=str(tmp_path / "run"), iters=1, size=32,
                      model=TINY, threads=1)
    with pytest.raises(InputError, match=r"its label maps hold ids that are not LIP ids \(41 in '1.png'\)"):
        train(cfg)
    m[:4, :4] = 21  # CCP's shoe of either side, and 255, are LIP-format labels
    m[4:8, :4] = 255
    cv2.imwrite(str(label), m)
    train(cfg)


def test_snapshots_keep_the_weights_every_n_steps(tmp_path):
    _tiny_dataset(tmp_path / "d")
    cfg = TrainConfig(datasets=(DatasetSpec(str(tmp_path / "d")),), out=str(tmp_path / "run"), iters=4, batch=2,
                      size=32, ckpt_every=3, snapshot_every=2, model=TINY, threads=1)
    train(cfg)
    snaps = sorted(p.name for p in (tmp_path / "run").glob("snap_*.pt"))
    assert snaps == ["snap_000002.pt", "snap_000004.pt"]
    two = torch.load(tmp_path / "run" / "snap_000002.pt", weights_only=False)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert two["step"] == 2 and "optimizer" not in two
    key = next(k for k in two["model"] if k.endswith("weight"))
    assert not torch.equal(two["model"][key], last["model"][key])  # two more steps moved the weights


def test_iterations_count_the_init_weights_and_survive_resume_and_averaging(tmp_path):
    _tiny_dataset(tmp_path / "d")
    spec = DatasetSpec(str(tmp_path / "d"))
    first = train(TrainConfig(datasets=(spec,), out=str(tmp_path / "a"), iters=3, batch=2, size=32, model=TINY, threads=1))
    assert torch.load(first, weights_only=False)["iterations"] == 3
    cfg = TrainConfig(datasets=(spec,), out=str(tmp_path / "b"), iters=4, batch=2, size=32, ckpt_every=1,
                      snapshot_every=2, model=TINY, threads=1)
    stop_at_two = iter([False, False, True])  # polled before each step: stops after two
    train(cfg, init=first, should_stop=lambda: next(stop_at_two))
    two = torch.load(tmp_path / "b" / "snap_000002.pt", weights_only=False)
    assert (two["step"], two["iterations"]) == (2, 5)  # 3 behind the --init weights, 2 of its own
    last = train(cfg, resume=True)
    resumed = torch.load(last, weights_only=False)
    assert (resumed["step"], resumed["iterations"]) == (4, 7)
    soup = average_checkpoints([first, tmp_path / "b" / "snap_000002.pt", last], tmp_path / "soup.pt")
    assert torch.load(soup, weights_only=False)["iterations"] == 7


def test_average_weights_means_floats_and_keeps_counters():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(9)}
    mean = average_weights([a, b])
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0])) and int(mean["n"]) == 5
    from lipparse_rt.errors import InputError
    with pytest.raises(InputError, match="different architectures"):
        average_weights([a, {"w": torch.zeros(3), "n": torch.tensor(1)}])
    with pytest.raises(InputError, match="nothing to average"):
        average_weights([])


def test_recalibrate_bn_gives_the_batch_statistics():
    from lipparse_rt.model import LipNet
    net = LipNet(TINY)
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    bn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    with torch.no_grad():  # stale statistics, as after averaging
        bn.running_mean.fill_(7.0)
        bn.running_var.fill_(0.01)
    bgr = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8))
    recalibrate_bn(net, iter([(bgr, None)]), 1)
    x = seen[-1]
    assert torch.allclose(bn.running_mean, x.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, x.var((0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-6)
    assert bn.momentum == 0.1 and not net.training  # left as it was found, in eval mode


def _record_sampler_scales(monkeypatch) -> list:
    """Every MixedSampler the training module builds from now on appends (its scale range, its share of
    samples with nobody in them) here."""
    import lipparse_rt.train as train_mod

    seen, real = [], train_mod.MixedSampler

    def recording(specs, aug, seed):
        seen.append((aug.scale, aug.empty_p))
        return real(specs, aug, seed)

    monkeypatch.setattr(train_mod, "MixedSampler", recording)
    return seen


def test_average_checkpoints_writes_a_loadable_mean(tmp_path, monkeypatch):
    from lipparse_rt.export import load_checkpoint
    _tiny_dataset(tmp_path / "d")
    spec = DatasetSpec(str(tmp_path / "d"))
    paths = []
    for seed in (1, 2):
        cfg = TrainConfig(datasets=(spec,), out=str(tmp_path / f"run{seed}"), iters=2, batch=2, size=32,
                          model=TINY, threads=1, seed=seed)
        paths.append(train(cfg))
    plain = average_checkpoints(paths, tmp_path / "mean.pt")
    seen = _record_sampler_scales(monkeypatch)
    recal = average_checkpoints(paths, tmp_path / "recal.pt", bn_data=(spec,), bn_steps=2, batch=2, size=32, threads=1,
                                scale=(0.7, 1.2), empty=0.1)
    nets = [load_checkpoint(p)[0].state_dict() for p in (*paths, plain, recal)]
    conv = next(k for k in nets[0] if k.endswith(".weight"))
    assert torch.allclose(nets[2][conv], (nets[0][conv] + nets[1][conv]) / 2)
    assert torch.allclose(nets[3][conv], nets[2][conv])  # recalibration touches only BatchNorm statistics
    stat = next(k for k in nets[0] if k.endswith("running_mean"))
    assert torch.allclose(nets[2][stat], (nets[0][stat] + nets[1][stat]) / 2)
    assert not torch.allclose(nets[3][stat], nets[2][stat])
    assert seen == [((0.7, 1.2), 0.1)]  # the BatchNorm batches are drawn at the range (and share of empty scenes) asked for
    ckpt = torch.load(recal, weights_only=False)
    assert ckpt["averaged_from"] == [str(p) for p in paths] and ckpt["bn_recalibrated"] == "2 batches of 2 at scales 0.7-1.2, 0.1 with nobody"


def test_a_finished_schedule_ends_with_re_estimated_batchnorm(tmp_path):
    _tiny_dataset(tmp_path / "d")
    cfg = TrainConfig(datasets=(DatasetSpec(str(tmp_path / "d")),), out=str(tmp_path / "run"), iters=2, batch=2,
                      size=32, snapshot_every=2, model=TINY, threads=1, bn_batches=2)
    last = torch.load(train(cfg), weights_only=False)
    raw = torch.load(tmp_path / "run" / "snap_000002.pt", weights_only=False)  # the weights before it
    assert last["bn_recalibrated"] == "2 batches of 16 at scales 0.5-2" and "optimizer" in last
    means = [k for k in raw["model"] if k.endswith("running_mean")]
    assert means and all(not torch.equal(raw["model"][k], last["model"][k]) for k in means)
    convs = [k for k in raw["model"] if k.endswith("weight")]
    assert all(torch.equal(raw["model"][k], last["model"][k]) for k in convs)  # only the statistics changed
    again = torch.load(train(cfg, resume=True), weights_only=False)  # nothing left to run: left as it was
    assert all(torch.equal(again["model"][k], last["model"][k]) for k in means)


def test_decoder_stride_four_starts_from_stride_eight_weights_and_keeps_its_stride(tmp_path):
    from dataclasses import replace
    from lipparse_rt.errors import InputError
    _tiny_dataset(tmp_path / "d")
    spec = DatasetSpec(str(tmp_path / "d"))
    eight, four = replace(TINY, decoder_stride=8), replace(TINY, decoder_stride=4)
    start = train(TrainConfig(datasets=(spec,), out=str(tmp_path / "s8"), iters=2, batch=2, size=32, model=eight, threads=1))
    cfg = TrainConfig(datasets=(spec,), out=str(tmp_path / "s4"), iters=4, batch=2, size=32, ckpt_every=1,
                      model=four, threads=1)
    stop_at_two = iter([False, False, True])
    train(cfg, init=start, should_stop=lambda: next(stop_at_two))  # same parameters, another graph
    # resumed with stride 8 on the command line: the run's own stride is kept
    last = torch.load(train(replace(cfg, model=eight), resume=True), weights_only=False)
    assert last["step"] == 4 and last["config"]["decoder_stride"] == 4
    with pytest.raises(InputError, match="different architectures"):  # same shapes, so only the config tells
        average_checkpoints([start, tmp_path / "s4" / "last.pt"], tmp_path / "soup.pt")


def test_train_draws_its_crops_and_its_batchnorm_batches_at_the_scale_range_and_empty_share_it_is_given(tmp_path, monkeypatch):
    _tiny_dataset(tmp_path / "d")
    seen = _record_sampler_scales(monkeypatch)
    cfg = TrainConfig(datasets=(DatasetSpec(str(tmp_path / "d")),), out=str(tmp_path / "run"), iters=2, batch=2,
                      size=32, ckpt_every=2, model=TINY, threads=1, scale=(0.7, 1.2), bn_batches=1, empty=0.2)
    last = torch.load(train(cfg), weights_only=False)
    assert seen == [((0.7, 1.2), 0.2)] * 2  # the training sampler, then the BatchNorm one
    assert last["bn_recalibrated"].endswith("at scales 0.7-1.2, 0.2 with nobody")


def test_train_recolours_the_share_of_samples_it_is_given(tmp_path, monkeypatch):
    import dataclasses

    import lipparse_rt.train as train_mod

    _tiny_dataset(tmp_path / "d")
    calls = []
    real = train_mod.recolour_garments
    monkeypatch.setattr(train_mod, "recolour_garments", lambda image, mask, rng: calls.append(1) or real(image, mask, rng))
    cfg = TrainConfig(datasets=(DatasetSpec(str(tmp_path / "d")),), out=str(tmp_path / "run"), iters=2, batch=4,
                      size=32, ckpt_every=2, model=TINY, threads=1, bn_batches=0, recolour=1.0)
    train(cfg)
    assert len(calls) == 8  # every sample of both batches
    calls.clear()
    train(dataclasses.replace(cfg, out=str(tmp_path / "plain"), recolour=0.0))
    assert not calls
