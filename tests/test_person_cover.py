import importlib.util
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("person_cover", Path(__file__).parents[1] / "tools" / "person_cover.py")
person_cover = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(person_cover)


def test_centre_band_share_counts_only_the_band_below_the_top_quarter():
    ids = np.zeros((8, 9), np.uint8)
    ids[2:, 3:6] = 5          # the band: rows 2..7, columns 3..5 (18 pixels), all person
    ids[:2, :] = 2            # above the band: not counted
    ids[:, :3] = 13           # left of the band: not counted
    assert person_cover.centre_band_share(ids) == 1.0
    ids[2:5, 3:6] = 0         # half the band left background
    assert person_cover.centre_band_share(ids) == 0.5


def test_cover_averages_every_fifth_frame(tmp_path, tiny_weights):
    from conftest import make_video

    from lipparse_rt.engine import Engine, EngineConfig
    from lipparse_rt.sources import VideoFile

    video = make_video(tmp_path / "v.mp4", n=11)
    eng = Engine(EngineConfig(weights=tiny_weights, provider="cpu", input_size=64))
    with VideoFile(video) as src:
        expect = np.mean([person_cover.centre_band_share(eng.parse(f.image)) for f in src if f.index in (0, 5, 10)])
    assert person_cover.cover([eng, eng], video) == pytest.approx([expect, expect], abs=1e-12)


def test_table_ends_with_the_mean_over_the_clips():
    lines = person_cover.table(["a.onnx", "b.onnx"], {"night": [0.6, 0.5], "yes": [0.9, 0.85]})
    assert lines[0] == "| clip | a.onnx | b.onnx |"
    assert lines[2] == "| night | 60% | 50% |"
    assert lines[-1] == "| **mean** | 75.0% | 67.5% |"
    assert len(person_cover.table(["a.onnx"], {})) == 2  # no clips: header only, no mean of nothing
