import threading
import time

import cv2
import numpy as np
import pytest

from lipparse_rt.engine import Engine, EngineConfig, plan_streams
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


class SlowOddFrames:
    """An engine stand-in whose answer names the frame, and which is slow on odd frames."""

    provider = "cpu"

    def parse(self, bgr):
        i = int(bgr[0, 0, 0])
        time.sleep(0.02 if i % 2 else 0.0)
        return np.full(bgr.shape[:2], i % 20, np.uint8)


def test_frames_parsed_at_once_come_out_in_order():
    frames = (Frame(i, float(i), np.full((24, 32, 3), i, np.uint8), pts=i) for i in range(40))
    got = []

    class Masks:
        def write(self, ids, name):
            got.append((int(name), int(ids[0, 0])))

    class Video:
        pts = []

        def write(self, bgr, pts=None):
            Video.pts.append(pts)

    stats = run_file(frames, SlowOddFrames(), Video(), Masks(), streams=3)
    assert stats.frames_out == 40 and stats.streams == 3
    assert got == [(i, i % 20) for i in range(40)]
    assert Video.pts == list(range(40))


def test_engine_error_with_several_streams_is_raised_once():
    class Fails(SlowOddFrames):
        def parse(self, bgr):
            if int(bgr[0, 0, 0]) == 5:
                raise Boom("engine broke")
            return super().parse(bgr)

    frames = (Frame(i, 0.0, np.full((24, 32, 3), i, np.uint8)) for i in range(1000))
    threads_before = threading.active_count()
    with pytest.raises(Boom, match="engine broke"):
        run_file(frames, Fails(), None, None, streams=2)
    assert threading.active_count() == threads_before


def test_plan_streams():
    assert plan_streams(0, cores=2) == (2, 1)
    assert plan_streams(0, cores=16) == (4, 4)
    assert plan_streams(1, cores=2) == (1, 2)


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


class FlakyCapture:
    """Gives 3 frames, then fails every read (an unplugged camera)."""

    def __init__(self) -> None:
        self.i = 0

    def isOpened(self) -> bool:
        return True

    def get(self, prop) -> float:
        return 30.0

    def read(self):
        self.i += 1
        return (True, np.full((32, 32, 3), 80, np.uint8)) if self.i <= 3 else (False, None)

    def release(self) -> None:
        pass


class RecordingDisplay:
    def __init__(self, camera=None) -> None:
        self.frames, self.lost_flags, self.camera = [], [], camera

    def show(self, bgr):
        self.frames.append(bgr.copy())
        self.lost_flags.append(bool(self.camera and self.camera.lost))
        return -1

    def closed(self) -> bool:
        return False


def test_lost_camera_shows_status_then_ends_with_a_clear_error(engine):
    from lipparse_rt.errors import CameraError
    from lipparse_rt.sources import Camera

    reopen = {"n": 0}

    def opener(spec):
        reopen["n"] += 1
        if reopen["n"] == 1:
            return FlakyCapture()
        raise CameraError("unplugged")

    with Camera("0", reconnect_s=1.0, opener=opener) as cam:
        display = RecordingDisplay(cam)
        with pytest.raises(CameraError, match="lost"):
            run_live(cam, engine, display=display)
    assert reopen["n"] > 2  # it retried
    # while retrying, the HUD said so: frames shown after the last real one are redrawn with the status
    assert sum(display.lost_flags) > 3  # more than the 3 real frames: redrawn while reconnecting


@pytest.mark.slow
def test_soak_20000_frames_flat_memory_no_leaked_threads(engine):
    import threading

    def rss_mb() -> float:
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) / 1024

    threads_before = threading.active_count()
    frames = (Frame(i, 0.0, np.full((48, 64, 3), i % 255, np.uint8)) for i in range(20000))
    marks = {}

    class Count:
        n = 0

        def write(self, bgr, pts=None):
            Count.n += 1
            if Count.n in (2000, 20000):
                marks[Count.n] = rss_mb()

    stats = run_file(frames, engine, Count())
    assert stats.frames_out == Count.n == 20000
    assert marks[20000] - marks[2000] < 50, marks
    assert threading.active_count() == threads_before


def test_a_zoom_search_uses_every_stream_up_to_1080p_and_one_thread_above():
    from lipparse_rt.pipeline import search_workers

    assert search_workers(768, 432, 2) == search_workers(1920, 1080, 2) == 2
    assert search_workers(3840, 2160, 2) == 1  # memory: 4K frames leave no room for two strips at once
    assert search_workers(640, 480, 1) == 1


def test_live_view_keys():
    from lipparse_rt.pipeline import LiveView

    view = LiveView(alpha=0.95)
    assert [view.press(k) for k in (ord("q"), 27, ord("Q"), ord("s"), ord("f"), ord("z"))] == ["quit"] * 3 + ["snapshot", "flip", "zoom"]
    assert view.press(ord("+")) == "" and view.alpha == 1.0 and view.press(ord("=")) == "" and view.alpha == 1.0
    for _ in range(12):
        view.press(ord("-"))
    assert view.alpha == 0.0
    assert view.press(ord("h")) == "" and not view.hud and view.press(ord("m")) == "" and not view.mirror
    assert [view.press(k) for k in (-1, ord("x"), 1073741904)] == ["", "", ""]  # nothing, others, an arrow
    assert view == LiveView(alpha=0.0, mirror=False, hud=False)


class KeyDisplay(RecordingDisplay):
    """Presses one key per frame shown, then q."""

    def __init__(self, keys) -> None:
        super().__init__()
        self.keys = list(keys)

    def show(self, bgr):
        super().show(bgr)
        return self.keys.pop(0) if self.keys else ord("q")


def test_live_keys_snapshot_flip_hud_mirror_and_opacity(tmp_path, tiny_weights):
    from fractions import Fraction

    from lipparse_rt.pipeline import LiveView
    from lipparse_rt.sinks import Snapshots, VideoWriter

    still = np.full((120, 160, 3), 30, np.uint8)
    still[:, :80] = 220  # bright left half: shown on the right while mirrored
    path = tmp_path / "cam.mp4"
    with VideoWriter(path, Fraction(30), 160, 120) as w:
        for _ in range(300):
            w.write(still)
    engine = Engine(EngineConfig(weights=tiny_weights, provider="cpu", threads=1))  # f changes it: not shared
    view, shots = LiveView(alpha=0.5, mirror=True), Snapshots(tmp_path / "shots")
    display = KeyDisplay([ord("s"), ord("f"), ord("h"), ord("m"), ord("-")])
    with Camera(str(path)) as cam:
        stats = run_live(cam, engine, display=display, view=view, snapshots=shots)
    assert stats.stopped and len(display.frames) == 6  # five keys, then q
    assert engine.flip and "flip" in engine.mode and not view.hud and not view.mirror and view.alpha == 0.4
    (picture,) = [p for p in (tmp_path / "shots").glob("lipparse-*.png") if not p.stem.endswith("-ids")]
    ids = cv2.imread(str(picture.with_name(picture.stem + "-ids.png")), cv2.IMREAD_UNCHANGED)
    shot = cv2.imread(str(picture))
    # the first frame shown, without its HUD (top left); the class map at the camera's size
    assert np.array_equal(shot[60:], display.frames[0][60:]) and not np.array_equal(shot[:30, :60], display.frames[0][:30, :60])
    assert ids.shape == (120, 160) and ids.dtype == np.uint8 and ids.max() < 20
    mirrored, plain = display.frames[0][70:], display.frames[4][70:]
    assert mirrored[:, :40].mean() < mirrored[:, -40:].mean() and plain[:, :40].mean() > plain[:, -40:].mean()


def test_live_flip_key_with_weights_without_logits_warns_and_goes_on(tmp_path, caplog):
    torch = pytest.importorskip("torch")
    from lipparse_rt.export import export_onnx
    from lipparse_rt.model import LipNet, LipNetConfig

    torch.manual_seed(0)
    net = LipNet(LipNetConfig(widths=(4, 8, 8, 8, 16, 16), aspp_width=8, decoder_width=8))
    engine = Engine(EngineConfig(weights=export_onnx(net, tmp_path / "ids.onnx", input_size=64, with_logits=False),
                                 provider="cpu", threads=1))
    display = KeyDisplay([ord("f"), -1])
    with Camera(str(make_video(tmp_path / "cam.mp4", n=200, fps=30))) as cam:
        stats = run_live(cam, engine, display=display)
    assert stats.stopped and len(display.frames) == 3 and not engine.flip  # f, nothing, then q
    assert "flip needs weights with a 'logits' output" in caplog.text


class CountingZoom:
    """Parses through the engine as a frame whole, counting the frames and resets it is given."""

    def __init__(self, engine) -> None:
        self.engine, self.frames, self.resets, self.last_input = engine, 0, 0, (0, 0)

    def parse(self, bgr):
        self.frames += 1
        self.last_input = self.engine.model_shape(*bgr.shape[:2])
        return self.engine.parse(bgr)

    def reset(self) -> None:
        self.resets += 1

    def wait(self) -> None:  # no search of its own
        pass


def test_live_zoom_key_turns_person_zoom_on_and_off(tmp_path, engine, caplog):
    caplog.set_level("INFO", logger="lipparse_rt")
    video = str(make_video(tmp_path / "cam.mp4", n=300, fps=30))
    zoom = CountingZoom(engine)
    with Camera(video) as cam:  # off from the start: no frame goes through the zoom
        stats = run_live(cam, engine, display=KeyDisplay([-1] * 4), zoom=zoom, zoom_on=False)
    assert stats.stopped and zoom.frames == 0 and stats.frames_in > 0
    display = KeyDisplay([ord("z")] + [-1] * 6 + [ord("z")])
    with Camera(video) as cam:
        stats = run_live(cam, engine, display=display, zoom=zoom, zoom_on=False)
    assert stats.stopped and len(display.frames) == 9  # z, six frames, z, then q
    assert zoom.frames > 0 and zoom.resets == 1  # turned on afresh: the people it followed may have gone
    assert caplog.text.index("person zoom on") < caplog.text.index("person zoom off")
    with Camera(video) as cam:  # on from the start, turned off: no reset
        run_live(cam, engine, display=KeyDisplay([ord("z")]), zoom=CountingZoom(engine))
    assert caplog.text.count("person zoom off") == 2
    caplog.clear()
    with Camera(video) as cam:  # no zoom given: z says so and the run goes on
        stats = run_live(cam, engine, display=KeyDisplay([ord("z"), -1]))
    assert stats.stopped and "person zoom is not available here" in caplog.text


def test_a_live_run_ends_with_its_zoom_search_finished(tmp_path, engine):
    from lipparse_rt.zoom import Zoom

    class SlowSearch:
        """The engine seeing nobody (so each search goes on to the enlarged parse), which takes a
        while (a long side given)."""

        def __init__(self, engine) -> None:
            self._engine = engine

        def __getattr__(self, name):
            return getattr(self._engine, name)

        def parse(self, bgr, long_side=None, scaled=True):
            if long_side is not None:
                time.sleep(0.5)
            return self._engine.parse(bgr, long_side, scaled) * 0

    slow = SlowSearch(engine)
    zoom = Zoom(slow, background=True)  # as `webcam --zoom`: the first frame starts a search beside it
    with Camera(str(make_video(tmp_path / "cam.mp4", n=200, fps=30))) as cam:
        stats = run_live(cam, slow, zoom=zoom, max_frames=1)
    assert stats.frames_out == 1 and zoom.searches == 1
    # a search cut off at the process's exit aborted it (ONNX Runtime, mid-run, on a daemon thread)
    assert not [t for t in threading.enumerate() if t.name == "zoom-search"]


def test_a_snapshot_that_cannot_be_written_is_a_warning_and_the_run_goes_on(tmp_path, engine, caplog):
    from lipparse_rt.errors import OutputError

    class FullDisk:
        def save(self, picture, ids):
            raise OutputError("cannot write snapshot 'x.png'")

    display = KeyDisplay([ord("s"), -1, ord("s")])
    with Camera(str(make_video(tmp_path / "cam.mp4", n=200, fps=30))) as cam:
        stats = run_live(cam, engine, display=display, snapshots=FullDisk())
    assert stats.stopped and len(display.frames) == 4  # s, nothing, s, then q
    assert caplog.text.count("cannot write snapshot 'x.png'") == 2


def test_model_only_fps_counts_the_frames_actually_parsed_at_once():
    """`video`'s model-only figure: frames at once per median model time, where 'at once' is what the
    run did (a one-frame video with 100 streams said 4,895 FPS for a 20 ms frame before 2026-12-04)."""
    from lipparse_rt.pipeline import RunStats

    s = RunStats(streams=4, model_spans=[(0.0, 0.01), (0.005, 0.015), (0.02, 0.03)])
    assert s.model_ms == pytest.approx([10.0, 10.0, 10.0])  # the model times: derived from the spans
    assert s.at_once == 2 and s.model_fps == pytest.approx(200.0)
    assert RunStats(streams=4, model_spans=[(0.0, 1.0), (1.0, 2.0)]).at_once == 1  # touching, not overlapping
    assert RunStats(streams=2, model_spans=[(0.0, 1.0), (0.1, 1.1), (0.2, 1.2)]).at_once == 2  # never above streams
    assert RunStats(streams=3).model_fps == 0.0  # nothing parsed: no figure
