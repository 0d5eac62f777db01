import importlib.util
from pathlib import Path

import numpy as np

from lipparse_rt.engine import scale_ids
from lipparse_rt.metrics import protocol_confusion, scores, side_errors

_spec = importlib.util.spec_from_file_location("postprocess_trials",
                                               Path(__file__).parents[1] / "tools" / "postprocess_trials.py")
trials = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trials)


def test_side_vote_fixes_a_minority_patch_but_not_two_touching_legs():
    ids = np.zeros((20, 40), np.uint8)
    ids[2:18, 2:10] = 16           # one left leg...
    ids[8:11, 4:7] = 17            # ...with a small right-leg patch (9 of 128 pixels)
    ids[2:18, 20:26] = 16          # two legs touching: half left,
    ids[2:18, 26:32] = 17          # half right
    out = trials.side_vote(ids, share=0.3)
    assert (out[2:18, 2:10] == 16).all()                      # the patch took the region's side
    assert (out[2:18, 20:32] == ids[2:18, 20:32]).all()       # a 50/50 region is left alone
    assert (trials.side_vote(ids, share=0.0) == ids).all()    # share 0: nothing changes
    assert (out[ids == 0] == 0).all()


def test_logit_set_scores_like_the_eval_command():
    rng = np.random.default_rng(3)
    items = []
    for h, w, H, W in [(12, 9, 50, 37), (16, 12, 16, 12)]:
        logits = rng.normal(size=(20, h, w)).astype(np.float32)
        label = rng.integers(0, 20, (H, W)).astype(np.uint8)
        label[:3] = 255
        merged = rng.choice(np.array([0, 2, 5, 20, 21, 255], np.uint8), (H, W))
        items.append((logits, label, merged))
    cm_lip = sum(protocol_confusion(scale_ids(z.argmax(0).astype(np.uint8), *lab.shape), lab, "lip")
                 for z, lab, _ in items)
    cm_ccp = sum(protocol_confusion(scale_ids(z.argmax(0).astype(np.uint8), *m.shape), m, "ccp")
                 for z, _, m in items)
    sided, merged, wrong = trials.LogitSet(items).score(np.zeros(20, np.float32))
    assert np.isclose(sided, 100 * scores(cm_lip).miou) and np.isclose(merged, 100 * scores(cm_ccp).miou)
    w, s = side_errors(cm_lip)
    assert np.isclose(wrong, 100 * w / s)
    # an offset large enough makes one class win everywhere
    big = np.zeros(20, np.float32)
    big[5] = 100
    sided5, _, _ = trials.LogitSet(items).score(big)
    cm5 = sum(protocol_confusion(np.full(lab.shape, 5, np.uint8), lab, "lip") for _, lab, _ in items)
    assert np.isclose(sided5, 100 * scores(cm5).miou)


def test_scaled_logits_give_the_argmax_at_the_same_size_and_move_a_boundary_to_the_crossing():
    z = np.zeros((20, 4, 4), np.float32)
    z[5, :, :2] = 1.0              # upper-clothes on the left half,
    z[9, :, 2:] = 1.0              # pants on the right half
    assert (trials.ids_from_scaled_logits(z, 4, 4) == z.argmax(0)).all()
    z[5, :, 1] = 0.9               # upper-clothes weaker next to the boundary, pants weaker past it:
    z[9, :, 2] = 0.1               # the two planes cross left of the middle once interpolated
    big = trials.ids_from_scaled_logits(z, 4, 16)
    near = scale_ids(z.argmax(0).astype(np.uint8), 4, 16)
    assert (near[:, :8] == 5).all() and (near[:, 8:] == 9).all()  # nearest: the edge between blocks
    assert set(np.unique(big)) == {5, 9} and (big[:, 0] == 5).all() and (big[:, -1] == 9).all()
    edge = int(np.argmax(big[0] == 9))
    assert edge != 8 and (big[:, :edge] == 5).all() and (big[:, edge:] == 9).all()
