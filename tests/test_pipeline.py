import numpy as np
import pytest

from lipparse_rt.engine import Engine, EngineConfig
from lipparse_rt.pipeline import run_file, run_live
from lipparse_rt.sinks import MaskWriter, VideoWriter
from lipparse_rt.sources import Camera, Frame, VideoFile

from conftest import make_video, probe


@pytest.fixture(scope="module")
def engine(tiny_weights):
    return Engine(EngineConfig(weights=tiny_weights, provider="cpu", threads=1))


def test_run_file_writes_every_frame_and_mask(tmp_path, engine):
    src_path = make_video(tmp_path / "in.mp4", n=23)
    with VideoFile(src_path) as src, VideoWriter(tmp_path / "out.mp4", src.fps, src.width, src.height,
                                                 src.time_base) as w:
        stats = run_file(src, engine, w, MaskWriter(tmp_path / "m"))
    assert stats.frames_in == stats.frames_out == 23 and len(stats.model_ms) == 23
    assert probe(tmp_path / "out.mp4")["frames"] == 23
    assert sorted(p.name for p in (tmp_path / "m").iterdir())[-1] == "000022.png"


class Boom(Exception):
    pass


def test_a_failing_stage_stops_the_pipeline_and_is_reported(engine):
    class BadSink:
        def write(self, bgr, pts=None):
            raise Boom("disk full")

    frames = (Frame(i, 0.0, np.zeros((32, 32, 3), np.uint8)) for i in range(1000))
    with pytest.raises(Boom):
        run_file(frames, engine, BadSink())


def test_run_live_on_a_file_camera(tmp_path, engine):
    path = make_video(tmp_path / "cam.mp4", n=20, fps=100)
    with Camera(str(path)) as cam:
        stats = run_live(cam, engine, display=None, video=None)
    assert stats.frames_out >= 1
    assert stats.frames_out + stats.dropped == 20
    assert stats.latency(50) is not None and stats.latency(95) >= stats.latency(50)
