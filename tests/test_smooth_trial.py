import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("smooth_trial", Path(__file__).parents[1] / "tools" / "smooth_trial.py")
trial = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trial)


def test_the_mix_lags_by_a_and_restarts_when_the_shape_changes():
    mix = trial.Mix()
    a_probs = np.zeros((3, 2, 2), np.float32)
    a_probs[0] = 1  # class 0 everywhere
    b_probs = np.zeros((3, 2, 2), np.float32)
    b_probs[2] = 1  # then class 2 everywhere
    mix.ids(a_probs)
    after_one = mix.ids(b_probs)
    assert (after_one[1.0] == 2).all()  # no smoothing: the new frame's classes
    assert (after_one[0.7] == 2).all() and (after_one[0.35] == 0).all()  # 0.7 of the new frame wins; 0.35 does not
    assert (mix.ids(b_probs)[0.35] == 2).all()  # two frames later: 1 - 0.65^2 = 0.58 of class 2
    wide = np.zeros((3, 2, 3), np.float32)
    wide[1] = 1
    assert all((ids == 1).all() for ids in mix.ids(wide).values())  # a new shape: the mix starts again
