import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from lipparse_rt.errors import CameraError, InputError
from lipparse_rt.sources import Camera, Deinterlace, Images, VideoFile, even, pixel_aspect, read_image_any, square_size

from conftest import make_video, mjpeg_camera, mux_black_frames, served_folder


def test_video_file_yields_every_frame_in_order(tmp_path):
    path = make_video(tmp_path / "v.mp4", n=12)
    with VideoFile(path) as v:
        frames = list(v)
        assert v.fps == 25 and v.width == 160 and v.height == 120
    assert [f.index for f in frames] == list(range(12))
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.dtype == np.uint8
    assert [f.pts for f in frames] == sorted(f.pts for f in frames)


def test_video_file_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        VideoFile(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="directory"):
        VideoFile(tmp_path)
    txt = tmp_path / "fake.mp4"
    txt.write_text("hello")
    with pytest.raises(InputError, match="not a video"):
        VideoFile(txt)


def test_a_recording_cut_off_before_its_index_is_named_so(tmp_path):
    """A phone or camera that lost power mid-recording leaves an MP4 of media without its index
    ('moov', written last): FFmpeg cannot read it, and `not a video file` sent users looking for
    the wrong fault (before 2026-12-05). A whole file, and a file with its index first, are read."""
    whole = make_video(tmp_path / "whole.mp4", n=30)
    data = whole.read_bytes()
    moov = data.rfind(b"moov") - 4
    assert moov > data.find(b"mdat") > 0  # this muxer writes the index last, as cameras do
    for name, cut in (("cut.mp4", data[:moov]), ("half.mp4", data[:moov // 2])):
        (tmp_path / name).write_bytes(cut)
        with pytest.raises(InputError, match=r"cut\.mp4|half\.mp4") as caught:
            VideoFile(tmp_path / name)
        assert "without its index (no 'moov'): a recording cut off" in str(caught.value)
    assert sum(1 for _ in VideoFile(whole)) == 30
    (tmp_path / "junk.mp4").write_bytes(b"\0\0\0\x10ftypisom" + bytes(64))  # no media: not a recording
    with pytest.raises(InputError, match="not a video file"):
        VideoFile(tmp_path / "junk.mp4")


class FakeCapture:
    """Emits numbered frames as fast as asked; each read blocks until the test lets it go."""

    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0
        self.gate = threading.Semaphore(0)

    def isOpened(self) -> bool:
        return True

    def get(self, prop) -> float:
        return 30.0

    def read(self):
        self.gate.acquire()
        if self.i >= self.n:
            return False, None
        img = np.full((4, 4, 3), self.i % 256, np.uint8)
        self.i += 1
        return True, img

    def release(self) -> None:
        pass


def test_camera_keeps_only_the_newest_frame_and_counts_dropped(tmp_path):
    fake = FakeCapture(n=10)
    cam = Camera("0", reconnect_s=0, opener=lambda spec: fake)
    try:
        fake.gate.release()
        first = None
        while first is None:
            first = cam.read(timeout=1)
        assert first.image[0, 0, 0] == 0
        for _ in range(5):  # the camera grabs 5 frames while the consumer is busy
            fake.gate.release()
        while cam.grabbed < 6:
            threading.Event().wait(0.01)
        frame = None
        frame = cam.read(timeout=1)
        assert frame.image[0, 0, 0] == 5 and frame.index == 5
        assert cam.dropped == 4  # frames 1..4 were never handed out
        assert cam.read(timeout=0.05) is None  # no repeat of the same frame
    finally:
        for _ in range(10):
            fake.gate.release()
        cam.close()


def test_camera_lost_is_reported(tmp_path):
    fake = FakeCapture(n=0)
    for _ in range(5):
        fake.gate.release()

    def opener(spec):
        if opener.calls:
            raise CameraError("gone")
        opener.calls += 1
        return fake
    opener.calls = 0
    cam = Camera("0", reconnect_s=0.3, opener=opener)
    with pytest.raises(CameraError, match="lost"):
        while True:
            cam.read(timeout=0.2)
    cam.close()


def test_video_file_as_camera_ends(tmp_path):
    path = make_video(tmp_path / "v.mp4", n=5, fps=50)
    with Camera(str(path)) as cam:
        got = []
        with pytest.raises(StopIteration):
            while True:
                f = cam.read(timeout=1)
                if f is not None:
                    got.append(f.index)
        assert got[-1] == 4 and len(got) + cam.dropped == 5


def test_unknown_camera_is_an_error(tmp_path):
    with pytest.raises(CameraError):
        Camera(str(tmp_path / "nope"))


def test_images_reads_grey_16bit_and_alpha(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "g.png"), np.full((5, 6), 7, np.uint8))
    cv2.imwrite(str(tmp_path / "d.png"), np.full((5, 6), 65535, np.uint16))
    cv2.imwrite(str(tmp_path / "a.png"), np.full((5, 6, 4), 9, np.uint8))
    imgs = dict((p.stem, img) for p, img in Images(tmp_path))
    assert all(i.shape == (5, 6, 3) and i.dtype == np.uint8 for i in imgs.values())
    assert imgs["d"].max() == 255 and imgs["g"].max() == 7
    (tmp_path / "x.png").write_text("no")
    with pytest.raises(InputError, match="not an image"):
        read_image_any(tmp_path / "x.png")


def test_images_are_read_upright_by_their_exif_orientation(tmp_path):
    """A phone's portrait photo: stored landscape, EXIF orientation 6 (turn 90 degrees clockwise)."""
    from PIL import Image

    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :10] = 255  # a white band on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    img = read_image_any(tmp_path / "phone.jpg")
    assert img.shape == (40, 20, 3)  # portrait, as a viewer shows it
    assert img[:10].mean() > 200 and img[12:].mean() < 50  # the left edge turned to the top


def test_camera_comes_back_after_a_drop():
    """Reads fail, the device is reopened with back-off, frames flow again: no error."""
    class Gone(FakeCapture):
        def read(self):
            return False, None

    live = FakeCapture(n=1000)
    for _ in range(1000):
        live.gate.release()
    attempts = {"n": 0}

    def opener(spec):
        attempts["n"] += 1
        if attempts["n"] == 1:
            return Gone(0)
        if attempts["n"] < 4:
            raise CameraError("not yet")
        return live

    with Camera("0", reconnect_s=5.0, opener=opener) as cam:
        frame = None
        while frame is None:
            frame = cam.read(timeout=1)
        assert attempts["n"] == 4 and not cam.lost and cam.error is None


class ModesCapture(FakeCapture):
    """A camera with two frame sizes: asked for a size, it takes its nearest mode (as V4L2 does)."""

    MODES = [(640, 480), (1280, 720)]

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.mode, self.asked = self.MODES[0], {}

    def set(self, prop, value) -> bool:
        import cv2

        self.asked[prop] = value
        if cv2.CAP_PROP_FRAME_WIDTH in self.asked and cv2.CAP_PROP_FRAME_HEIGHT in self.asked:
            w, h = self.asked[cv2.CAP_PROP_FRAME_WIDTH], self.asked[cv2.CAP_PROP_FRAME_HEIGHT]
            self.mode = min(self.MODES, key=lambda m: abs(m[0] - w) + abs(m[1] - h))
        return True

    def get(self, prop) -> float:
        import cv2

        return {cv2.CAP_PROP_FRAME_WIDTH: self.mode[0], cv2.CAP_PROP_FRAME_HEIGHT: self.mode[1]}.get(prop, 30.0)


@pytest.mark.parametrize("size, gives", [(None, (640, 480)), ((1280, 720), (1280, 720)), ((1920, 1080), (1280, 720))])
def test_camera_asks_for_a_frame_size_and_says_what_it_gives(size, gives):
    fake = ModesCapture(n=0)
    fake.gate.release()
    with Camera("0", reconnect_s=0, opener=lambda spec: fake, size=size) as cam:
        assert (cam.width, cam.height) == gives
    assert bool(fake.asked) == (size is not None)  # no size: the camera's own mode, untouched


def test_a_camera_asked_for_more_than_640x480_is_asked_for_mjpeg_first():
    """A USB 2 camera sends raw YUYV at 30 FPS only up to about 640x480 (1280x720 is 55 MB/s):
    asked for 1280x720 in its default YUYV, a webcam gave 10 FPS or fewer. Its MJPEG modes give
    30; OpenCV asks for the size within the format set before it."""
    import cv2

    for size, mjpeg in [((1280, 720), True), ((640, 480), False)]:
        fake = ModesCapture(n=0)
        fake.gate.release()
        with Camera("0", reconnect_s=0, opener=lambda spec: fake, size=size):
            pass
        order = list(fake.asked)
        if mjpeg:
            assert fake.asked[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"MJPG")
            assert order.index(cv2.CAP_PROP_FOURCC) < order.index(cv2.CAP_PROP_FRAME_WIDTH)
        else:  # raw frames cost no decoding: kept where the bus carries them
            assert cv2.CAP_PROP_FOURCC not in fake.asked


def test_a_reopened_camera_is_asked_for_the_size_again():
    gone, live = ModesCapture(n=0), ModesCapture(n=1000)
    gone.read = lambda: (False, None)
    for _ in range(1000):
        live.gate.release()
    captures = iter([gone, live])
    with Camera("0", reconnect_s=5.0, opener=lambda spec: next(captures), size=(1280, 720)) as cam:
        frame = None
        while frame is None:
            frame = cam.read(timeout=1)
    assert live.mode == (1280, 720)


def test_a_file_camera_plays_at_its_own_size(tmp_path):
    with Camera(str(make_video(tmp_path / "v.mp4", n=3)), size=(1280, 720)) as cam:
        assert (cam.width, cam.height) == (160, 120)


def test_a_missing_camera_index_names_the_ones_there(monkeypatch, tmp_path):
    from lipparse_rt import devices, sources

    monkeypatch.setattr(sources.sys, "platform", "linux")
    monkeypatch.setattr(devices, "DEV", tmp_path)
    monkeypatch.setattr(devices, "SYS_V4L", tmp_path / "sys")  # none: each node counted as a camera
    with pytest.raises(CameraError, match=r"/dev/video1 does not exist \(no /dev/video\* camera here\)"):
        sources.open_capture("1")
    for name in ("video2", "video0", "video10", "vhci"):
        (tmp_path / name).touch()
    with pytest.raises(CameraError, match=r"cannot open camera 1: /dev/video1 does not exist \(cameras here: 0, 2, 10\)"):
        sources.open_capture("1")


def _laptop_and_usb_camera(monkeypatch, tmp_path) -> None:
    """A laptop's camera (video0, its metadata video1) and a USB camera (video2, video3) as Linux
    shows them: the /dev nodes (plain files here, so they cannot be asked: sysfs says) and sysfs."""
    from lipparse_rt import devices, sources

    monkeypatch.setattr(sources.sys, "platform", "linux")
    monkeypatch.setattr(devices, "DEV", tmp_path / "dev")
    monkeypatch.setattr(devices, "SYS_V4L", tmp_path / "sys")
    for n, name, index in [(0, "Integrated Camera", 0), (1, "Integrated Camera", 1),
                           (2, "HD Pro Webcam C920", 0), (3, "HD Pro Webcam C920", 1)]:
        (tmp_path / "sys" / f"video{n}").mkdir(parents=True)
        (tmp_path / "sys" / f"video{n}" / "name").write_text(name + "\n")
        (tmp_path / "sys" / f"video{n}" / "index").write_text(f"{index}\n")
        (tmp_path / "dev").mkdir(exist_ok=True)
        (tmp_path / "dev" / f"video{n}").touch()


def test_a_cameras_metadata_node_is_named_as_such_with_the_cameras_there(monkeypatch, tmp_path):
    """`--camera 1` for the USB camera beside a laptop's: /dev/video1 is the laptop camera's
    metadata node, and OpenCV's refusal read 'busy, absent or not a camera'."""
    from lipparse_rt import sources

    _laptop_and_usb_camera(monkeypatch, tmp_path)
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda *a: type("Refused", (), {
        "isOpened": lambda self: False, "release": lambda self: None})())
    here = "cameras here: 0 (Integrated Camera), 2 (HD Pro Webcam C920)"
    for spec in ("1", "/dev/video1"):
        with pytest.raises(CameraError) as exc:
            sources.open_capture(spec)
        assert str(exc.value) == (f"cannot open camera '{spec}': /dev/video1 gives no picture (it is the metadata "
                                  f"node of 'Integrated Camera'; {here})")
    with pytest.raises(CameraError, match=r"the device is busy, absent or not a camera$"):
        sources.open_capture("2")  # a camera's picture node that will not open: as before
    with pytest.raises(CameraError) as exc:
        sources.open_capture("5")
    assert str(exc.value) == f"cannot open camera 5: /dev/video5 does not exist ({here})"


def test_a_nodes_capabilities_are_read_from_its_driver_where_it_answers(monkeypatch, tmp_path):
    """VIDIOC_QUERYCAP's struct v4l2_capability: the card's name at 16, capabilities at 84 and the
    node's own at 88 (used where capabilities has V4L2_CAP_DEVICE_CAPS); sysfs is not read."""
    import fcntl
    import os
    import struct

    from lipparse_rt import devices

    _laptop_and_usb_camera(monkeypatch, tmp_path)
    answers = {0: 0x1, 1: 0x00800000, 2: 0x1000, 3: 0x00800000}  # capture; metadata; multi-planar capture

    def ioctl(fd, request, buf, mutate):
        assert request == devices.VIDIOC_QUERYCAP and len(buf) == 104 and mutate
        n = int(os.readlink(f"/proc/self/fd/{fd}")[-1])
        buf[0:6] = b"uvcvid"
        buf[16:16 + 9] = f"Cam {n} \0x".encode()
        struct.pack_into("=III", buf, 84, 0x84a00001, answers[n], 0)
        return 0

    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    (tmp_path / "sys" / "video1" / "index").write_text("0\n")  # sysfs would have it a camera: not asked
    assert [(v.index, v.name, v.picture) for v in devices.video_nodes()] == [
        (0, "Cam 0", True), (1, "Cam 1", False), (2, "Cam 2", True), (3, "Cam 3", False)]


def test_info_names_the_cameras_there(monkeypatch, tmp_path, tiny_weights):
    from typer.testing import CliRunner

    from lipparse_rt.cli import app

    _laptop_and_usb_camera(monkeypatch, tmp_path)
    r = CliRunner().invoke(app, ["info", "--weights", str(tiny_weights)])
    assert r.exit_code == 0, r.output
    assert "cameras (webcam --camera N): 0 (Integrated Camera), 2 (HD Pro Webcam C920)" in r.stdout


def test_busy_camera_is_a_camera_error(monkeypatch):
    from lipparse_rt import sources

    class Busy:
        def __init__(self, target):
            pass

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(sources.cv2, "VideoCapture", Busy)
    monkeypatch.setattr(sources.sys, "platform", "win32")  # skip the /dev/videoN look-up
    with pytest.raises(CameraError, match="busy"):
        sources.open_capture("0")


def test_input_tagged_bt709_decodes_to_the_right_colours(tmp_path):
    """HD video is usually BT.709: decoding it with BT.601's matrix would shift colours by up to ~22 levels."""
    import av

    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 128, 255), (128, 0, 128), (85, 170, 51), (40, 40, 40), (220, 220, 220)]
    h, w = 64, 256
    img = np.zeros((h, w, 3), np.uint8)
    for i, c in enumerate(colours):
        img[:, 32 * i: 32 * (i + 1)] = c
    b, g, r = (img[..., i].astype(float) / 255 for i in range(3))
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b  # BT.709, limited range
    planes = [16 + 219 * y, 128 + 224 * (b - y) / 1.8556, 128 + 224 * (r - y) / 1.5748]
    planes[1:] = [p.reshape(h // 2, 2, w // 2, 2).mean((1, 3)) for p in planes[1:]]
    yuv = np.concatenate([p.ravel() for p in planes]).round().clip(0, 255).astype(np.uint8).reshape(h * 3 // 2, w)
    path = tmp_path / "709.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "10", "x264-params": "colormatrix=bt709:colorprim=bt709:transfer=bt709"}
        for i in range(3):
            f = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    with VideoFile(path) as src:
        got = next(iter(src)).image
    for i, c in enumerate(colours):
        centre = got[24:40, 32 * i + 8: 32 * i + 24].reshape(-1, 3).mean(0)
        assert np.abs(centre - np.array(c)).max() < 6, (c, centre)


@pytest.mark.parametrize("aspect, used, shown", [(Fraction(4, 3), Fraction(4, 3), (128, 64)),
                                                (Fraction(2, 3), Fraction(2, 3), (96, 96)),
                                                (Fraction(1, 10), 1, (96, 64))])  # beyond 1:4..4:1: ignored
def test_non_square_pixels_are_resampled_to_square_ones(tmp_path, aspect, used, shown):
    src = make_video(tmp_path / "a.mp4", n=3, size=(96, 64), pixel_aspect=aspect)
    with VideoFile(src) as v:
        assert (v.pixel_aspect, v.stored, (v.width, v.height)) == (used, (96, 64), shown)
        frames = list(v)
    assert [f.image.shape for f in frames] == [(shown[1], shown[0], 3)] * 3
    bar = np.flatnonzero(frames[2].image[shown[1] // 2, :, 1] > 110)  # stored columns 14..23
    widen = shown[0] / 96
    assert abs(bar.mean() - 18.5 * widen) <= 1.5 and abs(len(bar) - 10 * widen) <= 2


def test_pixel_aspect_reads_the_container_then_the_codec():
    class Ctx:
        def __init__(self, sar):
            self.sample_aspect_ratio = sar

    class Stream:
        def __init__(self, container, codec):
            self.sample_aspect_ratio, self.codec_context = container, Ctx(codec)

    assert pixel_aspect(Stream(Fraction(32, 27), Fraction(8, 9))) == Fraction(32, 27)
    assert pixel_aspect(Stream(None, Fraction(8, 9))) == Fraction(8, 9)
    assert pixel_aspect(Stream(Fraction(9, 1), Fraction(4, 3))) == Fraction(4, 3)
    assert pixel_aspect(Stream(None, None)) == 1
    assert [even(x) for x in (853.3, 641, 0.4)] == [854, 640, 2]
    assert square_size(720, 480, Fraction(32, 27)) == (854, 480) and square_size(720, 480, Fraction(8, 9)) == (720, 540)


def _combing(img):
    """Mean difference of each line to the next, less that to the line after it: ~0 for a
    progressive picture, large where two fields of different instants are woven."""
    g = img[..., 1].astype(int)
    return float(np.abs(g[:-2] - g[1:-1]).mean() - np.abs(g[:-2] - g[2:]).mean())


def test_interlaced_video_is_deinterlaced_frame_for_frame(tmp_path):
    import av

    src = make_video(tmp_path / "i.mp4", n=8, size=(96, 64), interlaced=True)
    with av.open(str(src)) as c:
        raw = [(f.pts, f.to_ndarray(format="bgr24")) for f in c.decode(video=0)]
    assert all(f.interlaced_frame for f in av.open(str(src)).decode(video=0))
    with VideoFile(src) as v:
        assert v.interlaced
        frames = list(v)
    assert [f.pts for f in frames] == [p for p, _ in raw]  # every frame, its own timestamp
    assert min(_combing(img) for _, img in raw) > 5
    assert max(_combing(f.image) for f in frames) < 1
    progressive = make_video(tmp_path / "p.mp4", n=3, size=(96, 64))
    with VideoFile(progressive) as v:
        assert not v.interlaced
        with av.open(str(progressive)) as c:
            assert all(np.array_equal(f.image, r.to_ndarray(format="bgr24")) for f, r in zip(v, c.decode(video=0)))


def test_a_stream_whose_field_order_says_interlaced_is_deinterlaced(tmp_path):
    """A film's first frames may be progressive in an interlaced stream: the stream's field order
    counts too (only the frames flagged interlaced are then changed)."""
    import av

    path = tmp_path / "tt.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.field_order = 2  # AV_FIELD_TT, frames progressive
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 50 * i, np.uint8), format="bgr24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    with av.open(str(path)) as c:
        raw = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    with VideoFile(path) as v:
        assert v.interlaced
        frames = [f.image for f in v]
    assert len(frames) == 3 and all(np.array_equal(a, b) for a, b in zip(frames, raw))  # progressive frames untouched


def test_deinterlace_gives_every_frame_through_a_change_of_size():
    import av

    d = Deinterlace(Fraction(1, 25), only_flagged=False)
    out = []
    for i, (w, h) in enumerate([(64, 48)] * 3 + [(96, 64)] * 2):
        f = av.VideoFrame.from_ndarray(np.full((h, w, 3), 30 * i, np.uint8), format="bgr24").reformat(format="yuv420p")
        f.pts, f.time_base = i, Fraction(1, 25)
        out += d.push(f)
    out += d.flush()
    assert [(f.pts, f.width) for f in out] == [(0, 64), (1, 64), (2, 64), (3, 96), (4, 96)]
    assert d.flush() == []


def test_a_folder_of_images_leaves_out_hidden_files_and_folders(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "photo.jpg"), np.full((8, 8, 3), 90, np.uint8))
    (tmp_path / "._photo.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # what a Mac's copy leaves
    (tmp_path / "album.png").mkdir()
    assert [p.name for p in Images(tmp_path).files] == ["photo.jpg"]


def test_heic_photos_are_read_upright(tmp_path):
    """An iPhone's HEIC, saved turned by its orientation (libheif's rotation): read upright, BGR."""
    import pillow_heif  # the 'heic' extra, which the 'test' extra holds
    from PIL import Image

    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = (255, 0, 0)  # red left half
    pillow_heif.register_heif_opener()
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: the left half on top
    im.save(tmp_path / "IMG_0001.HEIC", exif=exif.tobytes(), quality=95)
    img = read_image_any(tmp_path / "IMG_0001.HEIC")
    assert img.shape == (60, 40, 3)
    assert np.abs(img[:25].reshape(-1, 3).mean(0) - (0, 0, 255)).max() < 12 and img[35:].max() < 12
    assert [p.name for p in Images(tmp_path).files] == ["IMG_0001.HEIC"]


def test_heic_without_pillow_heif_says_what_to_install(tmp_path, monkeypatch):
    import sys

    (tmp_path / "a.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as if not installed
    with pytest.raises(InputError, match=r"HEIC photos need pillow-heif \(pip install pillow-heif, or this package's 'heic' extra\)"):
        read_image_any(tmp_path / "a.heic")


def test_avif_photos_are_listed_and_read(tmp_path):
    import cv2

    assert cv2.imwrite(str(tmp_path / "p.avif"), np.full((16, 24, 3), (30, 90, 200), np.uint8))
    (files,) = Images(tmp_path).files
    assert files.name == "p.avif" and np.abs(read_image_any(files).reshape(-1, 3).mean(0) - (30, 90, 200)).max() < 8


@pytest.mark.parametrize("interlaced", [False, True])
def test_a_raw_h264_stream_that_cannot_seek_is_read_whole(tmp_path, interlaced):
    """A Raspberry Pi's or a DVR's raw .h264 (no container, no timestamps): the first frame is
    looked at for its rotation and field order, and the stream, which cannot seek back, reopened."""
    src = make_video(tmp_path / "cam.h264", n=6, size=(96, 64), interlaced=interlaced)
    with VideoFile(src) as v:
        assert v.interlaced == interlaced and v.fps == 25
        frames = list(v)
    assert len(frames) == 6 and v.error is None
    assert [int(np.flatnonzero(f.image[32, :, 1] > 110).min()) for f in frames[:3]] == [0, 7, 14]  # from the first


def test_a_stream_url_that_does_not_answer_is_named_a_stream():
    import socket

    with socket.socket() as sock:  # a local port with nobody listening: refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CameraError, match=r"cannot open stream 'http://127\.0\.0\.1:\d+/cam\.mjpg': nothing answers there"):
        Camera(f"http://127.0.0.1:{port}/cam.mjpg").__enter__()


def test_a_video_served_over_http_plays_at_its_rate_and_ends(tmp_path):
    """A URL with a frame count is a recording: played at its own rate and ended at its last frame
    (before 2026-12-04 it was read as fast as it came and reopened at its end, over and over)."""
    import time

    make_video(tmp_path / "clip.mp4", n=10, fps=25)
    with served_folder(tmp_path) as base:
        t0 = time.perf_counter()
        with Camera(f"{base}/clip.mp4", reconnect_s=5.0) as cam:
            assert cam.recording and cam.finite
            seen = []
            while True:
                try:
                    f = cam.read(timeout=0.5)
                except StopIteration:  # ended, every frame seen
                    break
                if f is not None:
                    seen.append(f.index)
        took = time.perf_counter() - t0
    assert 0 < len(seen) <= 10 and seen == sorted(seen) and max(seen) <= 9  # never read past its end
    assert took >= 0.3  # ten frames at 25 FPS take 0.4 s when paced


def test_a_network_camera_that_stops_sending_is_reconnected_soon(monkeypatch):
    """An MJPEG camera over HTTP (a phone's camera app, an IP camera) that keeps its connection
    open but sends nothing: lost after `STREAM_TIMEOUT_S` and reconnected. Before 2026-12-05 each
    read waited OpenCV's 30 s, with a WARN line from OpenCV each time."""
    import time

    import lipparse_rt.sources as sources

    monkeypatch.setattr(sources, "STREAM_TIMEOUT_S", 1.0)
    connections, seen = [], 0
    with mjpeg_camera(connections=connections) as (url, _):
        with Camera(url, reconnect_s=5.0) as cam:
            assert not cam.recording
            deadline = time.perf_counter() + 8
            while len(connections) < 3 and time.perf_counter() < deadline:
                seen += cam.read(timeout=0.2) is not None
    assert len(connections) >= 3 and seen >= 3, (len(connections), seen)  # two stalls, each followed by frames


CLOSE_UNDER_A_BLOCKED_READ = """
import sys, time
sys.path.insert(0, sys.argv[1])
from conftest import mjpeg_camera
import lipparse_rt.sources as sources
sources.STREAM_TIMEOUT_S = 30.0  # a read blocked far longer than close() waits
with mjpeg_camera() as (url, quit_):
    cam = sources.Camera(url)
    t = time.time()
    while time.time() - t < 2:
        cam.read(0.2)
    t = time.time()
    cam.close()
    took = time.time() - t
    quit_.set()  # the stream ends: the read returns, into a capture released under it before the fix
    time.sleep(1)
print(f"closed in {took:.2f} s")
"""


def test_closing_a_camera_blocked_on_a_silent_stream_neither_crashes_nor_hangs():
    """q (or Ctrl-C) while a network camera sends nothing: before 2026-12-05 `close` waited 5 s,
    then released the capture while the reader thread was inside its read (undefined behaviour:
    in the test above, on that code, the process died of a segmentation fault, two runs in two).
    The reader thread now releases it itself, and `close` waits at most a second."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", CLOSE_UNDER_A_BLOCKED_READ, str(Path(__file__).parent)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    took = float(r.stdout.split("closed in ")[1].split()[0])
    assert took < 1.5, r.stdout


def test_a_still_image_read_as_a_video_gives_its_one_frame(tmp_path):
    """FFmpeg reads a JPEG as a one-frame video; seeking it back to the start after the first
    look 'works' and then gives nothing ('it has no frames' before 2026-12-04): it is reopened."""
    import cv2

    cv2.imwrite(str(tmp_path / "still.jpg"), np.full((48, 64, 3), 120, np.uint8))
    with VideoFile(tmp_path / "still.jpg") as v:
        frames = list(v)
    assert len(frames) == 1 and frames[0].image.shape == (48, 64, 3)


def test_a_video_file_as_the_camera_is_seen_as_video_sees_it(tmp_path):
    # `webcam --camera FILE` read files through OpenCV until 2026-12-05: stored pixels (a DVD's
    # 720x480 shown 16:9 came out 3:2) and the fields' combing.
    src = make_video(tmp_path / "dvd.mp4", n=6, size=(96, 64), pixel_aspect=Fraction(32, 27), interlaced=True)
    with VideoFile(src) as v:
        expected = [f.image for f in v]
        shown = (v.width, v.height)
    assert shown != (96, 64)
    got = []
    with Camera(str(src)) as cam:
        assert cam.recording and (cam.width, cam.height) == shown
        while True:
            try:
                frame = cam.read(timeout=1.0)
            except StopIteration:
                break
            if frame is not None:
                got.append(frame.image)
    assert got and all(any(np.array_equal(g, e) for e in expected) for g in got)
    assert max(_combing(g) for g in got) < 1


def test_the_main_picture_is_read_not_a_small_track_before_it(tmp_path):
    # a Matroska file whose first video track is a one-frame 32x32 picture (a cover, a thumbnail)
    # gave that one frame before 2026-12-05; players show the main picture, and so does VideoFile
    import av

    path = tmp_path / "film.mkv"
    with av.open(str(path), "w") as c:
        cover = c.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        main = c.add_stream("libx264", rate=25)
        main.width, main.height, main.pix_fmt = 64, 48, "yuv420p"
        mux_black_frames(c, cover, 1)
        mux_black_frames(c, main, 25)
    with VideoFile(path) as v:
        assert (v.width, v.height) == (64, 48) and len(list(v)) == 25


def test_a_video_given_as_an_image_says_to_parse_it_as_a_video(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", n=2)
    with pytest.raises(InputError, match=r"cannot read image '.*clip\.mp4': it is a video \(parse it with lipparse-rt video\)"):
        read_image_any(clip)
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(InputError, match="not an image file"):
        read_image_any(tmp_path / "notes.jpg")


def test_a_peeked_frame_is_still_read():
    """`webcam --out` reads the recording's size off the camera's first frame: before 2026-12-05 it
    took that frame, and a clip played as the camera was recorded without it (89 of 90 frames)."""
    fake = FakeCapture(n=3)
    cam = Camera("0", reconnect_s=0, opener=lambda spec: fake)
    try:
        fake.gate.release()
        first = None
        while first is None:
            first = cam.peek(timeout=1)
        assert first.index == 0
        again = cam.read(timeout=1)
        assert again is first and cam.dropped == 0
        assert cam.read(timeout=0.05) is None  # and not twice
    finally:
        for _ in range(5):
            fake.gate.release()
        cam.close()
