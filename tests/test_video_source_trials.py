import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("video_source_trials",
                                               Path(__file__).parents[1] / "tools" / "video_source_trials.py")
trial = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trial)


def _bar(w=96, h=64, x=40):
    img = np.full((h, w, 3), 40, np.uint8)
    img[:, x:x + 10] = 220
    return img


def test_the_middle_frame_s_fields_lie_half_the_motion_either_side():
    frame = _bar()
    middle = trial.woven(frame, motion=4, k=1)
    top, bottom = np.flatnonzero(middle[10, :, 0] > 130), np.flatnonzero(middle[11, :, 0] > 130)
    assert (top.min(), bottom.min()) == (38, 42)  # the bar at 40: 2 pixels left on even lines, 2 right on odd


def test_deinterlacing_the_woven_frames_takes_the_combing_out():
    frames = [trial.woven(_bar(), motion=6, k=k) for k in range(3)]
    out = trial.deinterlaced(frames).astype(int)[..., 1]
    woven = frames[1].astype(int)[..., 1]
    assert np.abs(woven[10:50:2] - woven[11:51:2]).mean() > 20  # combed
    assert np.abs(out[10:50:2] - out[11:51:2]).mean() < 5


def test_landscape_centres_the_photo_and_pads_its_labels_as_background():
    bgr, label = np.full((40, 20, 3), 200, np.uint8), np.full((40, 20), 5, np.uint8)
    frame, lab = trial.landscape(bgr, label)
    assert frame.shape == (40, 52, 3) and lab.shape == (40, 52)
    assert (lab[:, 16:36] == 5).all() and not lab[:, :16].any() and not lab[:, 36:].any()
    assert (frame[:, 16:36] == 200).all() and (frame[:, 0] == trial.PAD_BGR).all()
