import numpy as np

from lipparse_rt.metrics import confusion, protocol_confusion, scores, side_errors, side_report


def test_confusion_and_iou_on_hand_made_case():
    label = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]], np.uint8)
    cm = confusion(pred, label, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    s = scores(cm)
    # IoU0 = 1/(2+2-1)=1/3, IoU1 = 3/(3+4-3)=3/4, IoU2 = 1/(2+1-1)=1/2
    assert np.allclose(s.iou, [1 / 3, 3 / 4, 1 / 2])
    assert np.isclose(s.miou, (1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert np.isclose(s.pixel_acc, 5 / 7)


def test_miou_skips_classes_absent_from_labels():
    cm = np.array([[5, 1], [0, 0]])
    s = scores(cm)
    assert np.isnan(s.iou[1]) and np.isclose(s.miou, 5 / 6)


def test_ccp_protocol_merges_skin_and_shoes_and_ignores_255():
    label = np.array([[20, 20, 21, 21, 255, 5]], np.uint8)
    pred = np.array([[13, 15, 18, 19, 7, 5]], np.uint8)
    cm = protocol_confusion(pred, label, "ccp")
    assert cm.shape == (15, 15)
    assert cm[13, 13] == 2 and cm[14, 14] == 2 and cm[5, 5] == 1 and cm.sum() == 5


def test_side_errors_count_same_part_other_side():
    label = np.array([[14, 14, 15, 16, 18, 14]], np.uint8)
    pred = np.array([[14, 15, 15, 17, 18, 5]], np.uint8)
    wrong, same = side_errors(confusion(pred, label, 20))
    assert (wrong, same) == (2, 5)


def test_side_report_splits_wrong_sides_by_part():
    label = np.array([[14, 14, 15, 16, 18, 19, 19, 14]], np.uint8)
    pred = np.array([[14, 15, 15, 17, 18, 18, 18, 5]], np.uint8)
    # arms: 1 wrong of 3 same-part; legs: 1 of 1; shoes: 2 of 3; all: 4 of 7
    assert side_report(confusion(pred, label, 20)) == "57.14% (arms 33.33%, legs 100.00%, shoes 66.67%)"
    no_legs = np.array([[14, 15, 18, 5]], np.uint8)
    assert side_report(confusion(no_legs, no_legs, 20)) == "0.00% (arms 0.00%, legs n/a, shoes 0.00%)"


def test_paired_bootstrap_separates_a_consistent_gain_from_noise():
    import pytest

    from lipparse_rt.metrics import miou_of, paired_bootstrap, wrong_side_of

    rng = np.random.default_rng(0)
    n = 30
    truth = rng.integers(0, 3, (n, 200))
    noisy = lambda p: np.where(rng.random(truth.shape) < p, rng.integers(0, 3, truth.shape), truth)
    stack = lambda pred: np.stack([confusion(pred[i].astype(np.uint8), truth[i].astype(np.uint8), 3) for i in range(n)])
    good, bad = stack(noisy(0.1)), stack(noisy(0.4))
    # the same model against itself: no difference, no spread
    same = paired_bootstrap(good, good, rounds=200)
    assert same.diff == same.low == same.high == 0.0 and same.verdict == "within noise"
    # fewer errors on every image: higher, and the interval holds the full-split difference
    d = paired_bootstrap(good, bad, rounds=200)
    assert d.diff == pytest.approx(miou_of(good.sum(0)) - miou_of(bad.sum(0)))
    assert 0 < d.low <= d.diff <= d.high and d.verdict == "higher"
    assert paired_bootstrap(bad, good, rounds=200).verdict == "lower"
    # two models of the same quality on a few images: within noise
    a, b = stack(noisy(0.3))[:5], stack(noisy(0.3))[:5]
    assert paired_bootstrap(a, b, rounds=200).verdict == "within noise"
    with pytest.raises(ValueError):
        paired_bootstrap(good, bad[:-1])
    cm = np.zeros((20, 20), np.int64)
    cm[14, 14], cm[14, 15] = 3, 1
    background_only = np.zeros((20, 20), np.int64)
    background_only[0, 0] = 5
    assert wrong_side_of(cm) == 0.25 and np.isnan(wrong_side_of(background_only))


def test_person_scores_merge_every_person_class_against_background():
    from lipparse_rt.metrics import person_scores

    label = np.array([[0, 0, 5, 5, 13, 13]], np.uint8)
    pred = np.array([[0, 9, 9, 0, 14, 13]], np.uint8)  # a wrong part still finds the person
    iou, recall, precision = person_scores(confusion(pred, label, 20))
    # person pixels: label 4, predicted 4; found 3 of them (tp), 1 missed (fn), 1 on background (fp)
    assert (iou, recall, precision) == (3 / 5, 3 / 4, 3 / 4)
