import re
from fractions import Fraction

import cv2
import numpy as np
import pytest

from lipparse_rt.errors import DisplayError, OutputError
from lipparse_rt.sinks import CueTimeline, MaskWriter, VideoWriter, Window, check_output, encoder_threads
from lipparse_rt.sources import VideoFile

from conftest import make_video, mux_black_frames, probe


def _copy(src_path, out_path):
    with VideoFile(src_path) as src, VideoWriter(out_path, src.fps, src.width, src.height, src.time_base,
                                                 tracks_from=src_path if src.has_audio or src.has_subtitles else None) as w:
        for f in src:
            w.write(f.image, f.pts)


def test_writer_keeps_frame_count_rate_and_timestamps(tmp_path):
    src = make_video(tmp_path / "in.mp4", n=15, fps=30)
    _copy(src, tmp_path / "out.mp4")
    a, b = probe(src), probe(tmp_path / "out.mp4")
    assert b["frames"] == a["frames"] == 15
    assert b["fps"] == a["fps"] == 30
    assert b["types"] == ["video"]


def test_writer_keeps_variable_frame_rate_timestamps(tmp_path):
    pts = [0, 1, 2, 5, 6, 10, 11, 12]  # gaps: a variable-frame-rate source
    src = make_video(tmp_path / "vfr.mp4", n=len(pts), fps=25, pts=pts)
    _copy(src, tmp_path / "out.mp4")
    a, b = probe(src), probe(tmp_path / "out.mp4")
    secs = lambda p: [round(float(x * p["tb"]), 4) for x in p["pts"]]
    assert secs(b) == secs(a)


def test_writer_keeps_audio(tmp_path):
    src = make_video(tmp_path / "a.mp4", n=20, audio=True)
    _copy(src, tmp_path / "out.mp4")
    info = probe(tmp_path / "out.mp4")
    assert sorted(info["types"]) == ["audio", "video"] and info["frames"] == 20


def test_odd_sizes_are_written(tmp_path):
    with VideoWriter(tmp_path / "o.mp4", Fraction(10), 33, 21) as w:
        for _ in range(3):
            w.write(np.zeros((21, 33, 3), np.uint8))
    assert probe(tmp_path / "o.mp4")["frames"] == 3


def test_check_output_refusals(tmp_path):
    existing = tmp_path / "x.mp4"
    existing.write_text("x")
    with pytest.raises(OutputError, match="--force"):
        check_output(existing, force=False)
    check_output(existing, force=True)
    with pytest.raises(OutputError, match="is the input"):
        check_output(existing, force=True, inputs=(existing,))
    folder = tmp_path / "d.mp4"
    folder.mkdir()
    with pytest.raises(OutputError, match="directory"):
        check_output(folder, force=True)
    for name in ("o.avi", "o.mkv", "o"):  # an MP4 under another container's name would mislead
        with pytest.raises(OutputError, match=r"name it \.mp4, \.m4v or \.mov"):
            check_output(tmp_path / name, force=True)
    check_output(tmp_path / "o.MOV", force=False)


def test_mask_writer_writes_exact_ids(tmp_path):
    ids = np.arange(20, dtype=np.uint8).reshape(4, 5)
    path = MaskWriter(tmp_path / "m").write(ids, "photo")
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert path.name == "photo.png" and back.dtype == np.uint8 and back.ndim == 2 and (back == ids).all()


def test_window_without_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(DisplayError, match="no display"):
        Window()


def _video_with_audio(path, codec, rate, layout, damaged=()):
    """One second of black 64x48 video at 25 FPS with a 440 Hz tone in `codec`; the audio
    packets numbered in `damaged` are replaced by random bytes of their size (a damaged file)."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream(codec, rate=rate, layout=layout)
        mux_black_frames(c, v, 25)
        channels = len(av.AudioLayout(layout).channels)
        tone = (np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 8000).astype(np.int16)
        step = a.codec_context.frame_size or rate // 50
        packets = []
        for k in range(0, rate, step):
            part = np.repeat(tone[k:k + step], channels)[None]  # s16 interleaves the channels
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format="s16", layout=layout)
            af.sample_rate, af.pts = rate, k
            packets += a.encode(af)
        packets += a.encode(None)
        for i, p in enumerate(packets):
            if i in damaged:
                q = av.Packet(rng.integers(0, 256, p.size, dtype=np.uint8).tobytes())
                q.pts, q.dts, q.time_base, q.stream = p.pts, p.dts, p.time_base, p.stream
                p = q
            c.mux(p)
    return path


def _audio_of(path):
    """(codec, sample rate, layout name, samples of the first channel as float) of a file's audio."""
    import av

    with av.open(str(path)) as c:
        ctx = c.streams.audio[0].codec_context
        samples = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
        return ctx.name, ctx.sample_rate, ctx.layout.name, samples


def test_audio_the_mp4_cannot_hold_is_reencoded_to_aac(tmp_path):
    src = _video_with_audio(tmp_path / "pcm.mkv", "pcm_s16le", 16000, "mono")
    _copy(src, tmp_path / "out.mp4")
    assert probe(tmp_path / "out.mp4")["types"] == ["video", "audio"]
    codec, rate, layout, samples = _audio_of(tmp_path / "out.mp4")
    assert (codec, rate, layout) == ("aac", 16000, "mono")
    assert 0.95 < len(samples) / rate < 1.2  # the second of sound, and AAC's priming


def test_mp3_is_copied_as_it_is(tmp_path):
    """MP3 (an AVI's from an old camera or an Xvid copy, a screen recorder's) is one of the codecs the
    MP4 takes: its packets are copied. Its decoder is named `mp3float`, and by that name it was
    re-encoded to AAC before 2026-12-05 (a second lossy generation)."""
    import av

    src = _video_with_audio(tmp_path / "old.avi", "libmp3lame", 44100, "stereo")
    _copy(src, tmp_path / "out.mp4")
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.mp4")) as b:
        assert b.streams.audio[0].codec_context.codec.canonical_name == "mp3"
        sent = [bytes(p) for p in a.demux(audio=0) if p.size]
        kept = [bytes(p) for p in b.demux(audio=0) if p.size]
    assert len(sent) > 30 and kept == sent


def test_studio_audio_is_reencoded_at_a_rate_and_layout_aac_takes(tmp_path):
    # 192 kHz PCM (a studio recorder's) was `error: ArgumentError: avcodec_open2("aac")` before
    # any frame was written (AAC tops out at 96 kHz); six unnamed PCM channels became stereo.
    src = _video_with_audio(tmp_path / "studio.mov", "pcm_s16le", 192000, "stereo")
    _copy(src, tmp_path / "out.mp4")
    codec, rate, layout, samples = _audio_of(tmp_path / "out.mp4")
    assert (codec, rate, layout) == ("aac", 96000, "stereo")
    assert probe(tmp_path / "out.mp4")["frames"] == 25
    spectrum = np.abs(np.fft.rfft(samples[4096:4096 + 96000 // 2]))
    assert abs(np.argmax(spectrum) * 2 - 440) <= 4  # the tone, at its pitch: resampled, not reinterpreted
    src = _video_with_audio(tmp_path / "six.mkv", "pcm_s16le", 48000, "5.1")
    _copy(src, tmp_path / "out6.mp4")
    assert _audio_of(tmp_path / "out6.mp4")[:3] == ("aac", 48000, "5.1")


def test_damaged_audio_packets_are_skipped_and_every_frame_written(tmp_path, caplog):
    # MP2 (a DVD's or a broadcast recording's audio) is decoded to be re-encoded: a packet that
    # will not decode stopped the whole run before.
    src = _video_with_audio(tmp_path / "dvd.mkv", "mp2", 48000, "stereo", damaged=range(10, 14))
    with caplog.at_level("WARNING"):
        _copy(src, tmp_path / "out.mp4")
    assert probe(tmp_path / "out.mp4")["frames"] == 25
    codec, _, _, samples = _audio_of(tmp_path / "out.mp4")
    assert codec == "aac" and len(samples) > 0.6 * 48000  # the undamaged audio is kept
    assert re.search(r"\d damaged audio packet\(s\) of 'dvd.mkv' could not be decoded: silent there", caplog.text)


def test_writer_keeps_colours(tmp_path):
    # 8 flat colour blocks (the LIP palette's kind of saturated colours): a swapped channel or
    # chroma plane, or a wrong matrix, moves them by tens of levels.
    colours = [(0, 0, 0), (255, 255, 255), (0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 128, 255), (128, 0, 128), (85, 170, 51)]
    img = np.zeros((64, 256, 3), np.uint8)
    for i, c in enumerate(colours):
        img[:, 32 * i: 32 * (i + 1)] = c
    with VideoWriter(tmp_path / "c.mp4", Fraction(30), 256, 64) as w:
        for _ in range(3):
            w.write(img)
    with VideoFile(tmp_path / "c.mp4") as src:
        got = next(iter(src)).image
    import av

    with av.open(str(tmp_path / "c.mp4")) as c:  # tagged BT.601 limited range, as encoded
        ctx = c.streams.video[0].codec_context
        assert (ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc) == (6, 1, 6, 6)
    for i, c in enumerate(colours):
        centre = got[24:40, 32 * i + 8: 32 * i + 24].reshape(-1, 3).mean(0)
        assert np.abs(centre - np.array(c)).max() < 6, (c, centre)


def test_encoder_threads():
    assert encoder_threads(640, 480, cores=2) == 1 and encoder_threads(640, 480, cores=16) == 0
    assert encoder_threads(3840, 2160, cores=16) == 1


@pytest.mark.parametrize("w, h, big", [(640, 480, False), (2048, 1152, True)])
def test_writer_saves_encoder_memory_only_above_1080p(tmp_path, w, h, big):
    with VideoWriter(tmp_path / "b.mp4", Fraction(30), w, h) as wr:
        wr.write(np.full((h, w, 3), 90, np.uint8))
    sei = (tmp_path / "b.mp4").read_bytes()  # x264 writes its settings into the stream
    settings = sei[sei.index(b"x264 - core"):][:2000]
    assert (b" subme=0 " in settings) == big
    assert (b" threads=1 " in settings) == (encoder_threads(w, h) == 1)
    with VideoFile(tmp_path / "b.mp4") as src:
        assert next(iter(src)).image.shape == (h, w, 3)


@pytest.fixture()
def sdl_window(monkeypatch):
    """The app's window on SDL's offscreen driver (no X server needed)."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("DISPLAY", ":fake")  # has_display() asks for one; the dummy driver needs none
    with Window() as w:
        yield w


def test_window_shows_the_frame_exactly_and_reports_keys_and_closing(sdl_window):
    import pygame

    frame = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    assert sdl_window.show(frame) == -1
    screen = pygame.display.get_surface()
    assert screen.get_size() == (80, 60)
    shown = pygame.surfarray.array3d(screen).transpose(1, 0, 2)[:, :, ::-1]  # WxH RGB -> HxW BGR
    assert (shown == frame).all()

    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_q))
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
    assert sdl_window.show(frame) == ord("q")  # the first key since the last frame
    assert not sdl_window.closed()
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    sdl_window.show(frame)
    assert sdl_window.closed()


def test_resized_window_keeps_the_aspect_ratio(sdl_window):
    import pygame

    frame = np.full((60, 80, 3), (10, 200, 30), np.uint8)
    sdl_window.show(frame)
    pygame.display.set_mode((80, 80), pygame.RESIZABLE)  # the user makes the window square
    sdl_window.show(frame)
    shown = pygame.surfarray.array3d(pygame.display.get_surface()).transpose(1, 0, 2)[:, :, ::-1]
    assert (shown[20:80 - 20] == (10, 200, 30)).all()  # the frame, 80x60, in the middle
    assert (shown[:10] == 0).all() and (shown[-10:] == 0).all()  # black bars above and below


def test_snapshots_are_named_apart_and_a_file_for_a_folder_is_refused(tmp_path):
    from lipparse_rt.errors import OutputError
    from lipparse_rt.sinks import Snapshots

    shots = Snapshots(tmp_path / "new" / "shots")  # made when missing, as --masks is
    picture = np.full((20, 30, 3), (10, 20, 30), np.uint8)
    ids = np.arange(600, dtype=np.uint8).reshape(20, 30) % 20
    paths = [shots.save(picture, ids) for _ in range(3)]  # within one second: still three names
    assert len(set(paths)) == 3 and all(p.parent == tmp_path / "new" / "shots" for p in paths)
    assert np.array_equal(cv2.imread(str(paths[0])), picture)
    assert np.array_equal(cv2.imread(str(paths[0].with_name(paths[0].stem + "-ids.png")), cv2.IMREAD_UNCHANGED), ids)
    (tmp_path / "f").write_text("x")
    late = Snapshots(tmp_path / "f")  # checked when asked, or at the first save
    with pytest.raises(OutputError, match="cannot write snapshots to .*: it is a file"):
        late.save(picture, ids)
    with pytest.raises(OutputError, match="cannot write snapshots to .*: it is a file"):
        late.check()


def test_frames_of_another_size_are_fitted_whole_not_cropped(tmp_path, caplog):
    """A source that changes size mid-stream (joined recordings): every later frame is scaled into
    the first's size with its aspect kept, not cut to its top left corner."""
    wide = np.zeros((64, 128, 3), np.uint8)
    wide[:, :64] = (0, 0, 220)  # red left half
    wide[:, 64:] = (220, 0, 0)  # blue right half
    small = np.full((24, 32, 3), 200, np.uint8)
    with VideoWriter(tmp_path / "o.mp4", Fraction(10), 64, 48) as w:
        w.write(np.full((48, 64, 3), 100, np.uint8))
        w.write(wide)
        w.write(small)
    assert sum("changes size at frame 1 (128x64, not 64x48)" in r.getMessage() for r in caplog.records) == 1
    with VideoFile(tmp_path / "o.mp4") as v:
        out = [f.image.astype(int) for f in v]
    assert [o.shape for o in out] == [(48, 64, 3)] * 3
    bars, middle = np.r_[out[1][:6], out[1][-6:]], out[1][10:38]
    assert bars.max() < 30  # letterboxed: 2:1 into 4:3
    assert middle[:, 4:28, 2].mean() > 180 and middle[:, 36:60, 0].mean() > 180  # both halves there
    assert np.abs(out[2] - 200).max() < 10  # a smaller frame fills it (same aspect)


def test_check_writable_refuses_a_folder_a_file_for_a_folder_and_makes_a_missing_one(tmp_path):
    from lipparse_rt.sinks import check_writable

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="'.*file' is a file, not a folder"):
        check_writable(tmp_path / "file" / "B.md")
    with pytest.raises(OutputError, match="cannot create folder"):
        check_writable(tmp_path / "file" / "sub" / "B.md")
    with pytest.raises(OutputError, match="it is a directory"):
        check_writable(tmp_path)
    check_writable(tmp_path / "new" / "B.md")
    assert (tmp_path / "new").is_dir()


def test_bench_and_eval_outputs_are_checked_before_the_work(tmp_path, tiny_weights, monkeypatch):
    from typer.testing import CliRunner

    from conftest import make_lip_folder
    from lipparse_rt.cli import app

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    (tmp_path / "file").write_text("x")
    r = CliRunner().invoke(app, ["bench", "table1", "--write", str(tmp_path / "file" / "B.md")])
    assert r.exit_code == 3 and "is a file, not a folder" in r.stderr and "|" not in r.stdout  # no table timed
    root = make_lip_folder(tmp_path / "d", ["a", "b"])
    r = CliRunner().invoke(app, ["eval", "--data", str(root), "--confusion", str(tmp_path / "file" / "c.png")])
    assert r.exit_code == 3 and "is a file, not a folder" in r.stderr and "mIoU" not in r.stdout  # nothing scored


def test_audio_that_cannot_be_reencoded_leaves_the_video_written_without_it(tmp_path, monkeypatch, caplog):
    import av

    from lipparse_rt import sinks

    def no_encoder(rate, layout):  # as a build of FFmpeg without the AAC encoder would answer
        raise av.FFmpegError(1330794744, "Encoder not found")

    monkeypatch.setattr(sinks, "aac_settings", no_encoder)
    src = _video_with_audio(tmp_path / "pcm.mkv", "pcm_s16le", 16000, "mono")
    with caplog.at_level("WARNING"):
        _copy(src, tmp_path / "out.mp4")
    info = probe(tmp_path / "out.mp4")
    assert info["types"] == ["video"] and info["frames"] == 25
    assert "the audio of 'pcm.mkv' cannot be kept (" in caplog.text and "written without it" in caplog.text


def _first_pts(path):
    """Each stream's (type, language, first timestamp in seconds), read packet by packet."""
    import av

    out = []
    with av.open(str(path)) as c:
        n = len(c.streams)
    for i in range(n):
        with av.open(str(path)) as c:
            s = c.streams[i]
            first = next(p for p in c.demux(s) if p.pts is not None and p.stream.index == i)
            out.append((s.type, s.metadata.get("language"), float(first.pts * s.time_base)))
    return out


def test_every_audio_track_is_kept_with_its_language_and_the_picture_keeps_its_offset(tmp_path):
    # A film with two languages lost its second; a clip whose picture starts a second after its
    # sound (cut from a longer recording) had both tracks moved to start at 0: the picture ran a
    # second ahead of the sound.
    import av

    src = tmp_path / "film.mkv"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        tracks = [c.add_stream("aac", rate=48000), c.add_stream("libopus", rate=48000)]
        for a, lang in zip(tracks, ("eng", "fra")):
            a.metadata["language"] = lang
        for i in range(50):
            f = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")
            f.pts, f.time_base = 25 + i, Fraction(1, 25)  # from 1 s
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        for a in tracks:  # sound from 0 s to 3 s
            step = a.codec_context.frame_size
            for k in range(0, 3 * 48000, step):
                af = av.AudioFrame.from_ndarray(np.zeros((1, step), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 48000, k
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    _copy(src, tmp_path / "out.mp4")
    before, after = _first_pts(src), _first_pts(tmp_path / "out.mp4")
    assert [(t, lang) for t, lang, _ in after] == [("video", "und"), ("audio", "eng"), ("audio", "fra")]
    offset = lambda streams: streams[0][2] - streams[1][2]  # the picture's start after the sound's
    assert offset(before) > 0.9 and abs(offset(after) - offset(before)) < 0.03
    assert probe(tmp_path / "out.mp4")["frames"] == 50


def _transport_stream(path, n=50, shade=40):
    """An MPEG-TS recording (a DVR's, a broadcast's, an HLS segment's): H.264 at 25 FPS and AAC,
    whose packets carry ADTS headers as MPEG-TS has them, `n` frames long, starting at 0."""
    import av

    with av.open(str(path), "w", format="mpegts") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=48000)
        k = 0
        for i in range(n):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), shade, np.uint8), format="bgr24")
            f.pts, f.time_base = i, Fraction(1, 25)
            for p in v.encode(f):
                c.mux(p)
            while k < 48000 * (i + 1) // 25:
                tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(k, k + 1024) / 48000)).astype(np.float32)[None]
                af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                af.sample_rate, af.pts = 48000, k
                for p in a.encode(af):
                    c.mux(p)
                k += 1024
        for s in (v, a):
            for p in s.encode(None):
                c.mux(p)
    return path


def _packets(path, kind):
    """(seconds, payload) of each packet of a file's first stream of `kind`, in file order."""
    import av

    with av.open(str(path)) as c:
        s = getattr(c.streams, kind)[0]
        return [(float(p.pts * s.time_base), bytes(p)) for p in c.demux(s) if p.size and p.pts is not None]


def test_mpeg_ts_aac_is_copied_and_recordings_joined_end_to_end_run_on(tmp_path):
    # AAC from MPEG-TS carries ADTS headers, which the MP4 does not take: every .ts with AAC sound
    # failed with `error: PermissionError: [Errno 1] Operation not permitted` before 2026-12-05.
    part = _transport_stream(tmp_path / "a.ts")
    _copy(part, tmp_path / "a.mp4")
    src, out = _packets(part, "audio"), _packets(tmp_path / "a.mp4", "audio")
    assert [body for _, body in out] == [body[7:] for _, body in src]  # copied: the same AAC, its ADTS header off
    # two recordings joined as `cat a.ts b.ts > c.ts` joins them: the timestamps go back to 0 halfway
    joined = tmp_path / "c.ts"
    joined.write_bytes(part.read_bytes() + _transport_stream(tmp_path / "b.ts", shade=200).read_bytes())
    _copy(joined, tmp_path / "c.mp4")
    video, audio = _packets(tmp_path / "c.mp4", "video"), _packets(tmp_path / "c.mp4", "audio")
    times = sorted(t for t, _ in video)
    assert len(times) == 100 and np.allclose(np.diff(times), 0.04)  # every frame, one after another
    assert len(audio) == 2 * len(src) and abs(audio[-1][0] - times[-1]) < 0.1  # the sound runs on with them
    assert all(b[0] > a[0] for a, b in zip(audio, audio[1:]))


def test_reencoded_audio_keeps_its_start(tmp_path):
    # PCM that starts a second after the picture (a camcorder's .mov) came out at 0: a second early
    import av

    src = tmp_path / "late.mov"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=48000, layout="mono")
        for i in range(75):
            f = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")
            f.pts, f.time_base = i, Fraction(1, 25)
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        for k in range(48000, 3 * 48000, 960):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.int16), format="s16", layout="mono")
            af.sample_rate, af.pts, af.time_base = 48000, k, Fraction(1, 48000)
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    _copy(src, tmp_path / "out.mp4")
    first = min(t for t, _ in _packets(tmp_path / "out.mp4", "audio"))
    assert _audio_of(tmp_path / "out.mp4")[0] == "aac" and 0.95 < first <= 1.0  # AAC's priming just before it


def test_timestamps_that_go_back_run_on_after_the_last_frame_with_their_spacing(tmp_path):
    pts = [0, 1, 3, 4, 0, 2, 3]  # a variable-rate recording joined to another: back to 0 after 4
    with VideoWriter(tmp_path / "o.mp4", Fraction(25), 64, 48, time_base=Fraction(1, 25)) as w:
        for p in pts:
            w.write(np.zeros((48, 64, 3), np.uint8), p)
    info = probe(tmp_path / "o.mp4")
    assert [round(float(x * info["tb"]) * 25) for x in info["pts"]] == [0, 1, 3, 4, 5, 7, 8]


def test_a_run_that_fails_writes_the_sound_up_to_its_last_frame(tmp_path):
    src = make_video(tmp_path / "in.mp4", n=100, fps=25, audio=True)  # 4 s of picture and sound
    with pytest.raises(RuntimeError):
        with VideoFile(src) as v, VideoWriter(tmp_path / "o.mp4", v.fps, v.width, v.height, v.time_base,
                                              tracks_from=src) as w:
            for f in v:
                if f.index == 25:
                    raise RuntimeError("the model failed")
                w.write(f.image, f.pts)
    audio = _packets(tmp_path / "o.mp4", "audio")
    assert probe(tmp_path / "o.mp4")["frames"] == 25 and 0.9 < audio[-1][0] < 1.05  # one second, not four


def _video_with_subtitles(tmp_path):
    """Two seconds of 64x48 video at 25 FPS in an MKV, as a film's: an English SubRip track (in
    italics), a French ASS one (styled, two lines) and a German one in Blu-ray's PGS (pictures;
    segments made by hand, enough for FFmpeg to know the codec)."""
    import struct

    import av

    (tmp_path / "en.srt").write_text("1\n00:00:00,200 --> 00:00:00,800\n<i>Hello</i> there\n\n"
                                     "2\n00:00:01,200 --> 00:00:01,900\nSecond cue\n\n"
                                     "3\n00:00:01,200 --> 00:00:01,900\nOther speaker\n")  # two at once
    (tmp_path / "fr.ass").write_text(
        "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, "
        "SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, "
        "Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\nStyle: Default,Arial,20,"
        "&H00FFFFFF,&H000000FF,&H0,&H0,0,0,0,0,100,100,0,0,1,2,2,2,10,10,10,1\n\n[Events]\nFormat: Layer, Start, End, "
        "Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,0:00:00.30,0:00:00.90,Default,,0,0,0,,{\\i1}Bonjour{\\i0}, toi\\Nligne deux\n")
    (tmp_path / "de.sup").write_bytes(b"".join(b"PG" + struct.pack(">II", t, t) + b"\x80\0\0" for t in (9000, 90000)))
    path = tmp_path / "film.mkv"
    inputs = [av.open(str(tmp_path / name)) for name in ("en.srt", "fr.ass", "de.sup")]
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        tracks = []
        for src, lang in zip(inputs, ("eng", "fra", "deu")):
            tracks.append(c.add_stream_from_template(src.streams.subtitles[0]))
            tracks[-1].metadata["language"] = lang
        mux_black_frames(c, v, 50)
        for src, track in zip(inputs, tracks):
            for p in src.demux(src.streams.subtitles[0]):
                if p.size:
                    p.stream = track
                    c.mux(p)
    for src in inputs:
        src.close()
    return path


def _cues(path):
    """Each subtitle track of an MP4: (language, [(start s, end s, text), ...]), cues with text only."""
    import av

    tracks = []
    with av.open(str(path)) as c:
        for s in c.streams.subtitles:
            assert s.codec_context.name == "mov_text"
            tracks.append((s.metadata.get("language"), []))
        for p in c.demux(c.streams.subtitles):
            data = bytes(p)
            if len(data) > 2:
                tb = p.time_base
                tracks[p.stream.index - 1][1].append((float(p.pts * tb), float((p.pts + p.duration) * tb),
                                                      data[2:2 + int.from_bytes(data[:2], "big")].decode()))
    return tracks


def test_text_subtitles_are_kept_as_the_mp4s_own_and_picture_ones_said(tmp_path, caplog):
    """A film's subtitles reach the output: SubRip and ASS become the MP4's text subtitles (their
    text, times and language; markup off, which players would show as it is; two speakers at
    once shown together, where the MP4 shows one cue at a time); Blu-ray's PGS
    (pictures) cannot go in an MP4 and is said. An MP4's own come through again unchanged. Before
    2026-12-05 every subtitle track was dropped, without a word."""
    src = _video_with_subtitles(tmp_path)
    with caplog.at_level("WARNING"):
        _copy(src, tmp_path / "out.mp4")
    expected = [("eng", [(0.2, 0.8, "Hello there"), (1.2, 1.9, "Second cue\nOther speaker")]),
                ("fra", [(0.3, 0.9, "Bonjour, toi\nligne deux")])]
    assert _cues(tmp_path / "out.mp4") == expected
    assert probe(tmp_path / "out.mp4")["frames"] == 50
    assert "subtitle track 3 of 'film.mkv' cannot be kept (hdmv_pgs_subtitle subtitles are pictures" in caplog.text
    _copy(tmp_path / "out.mp4", tmp_path / "again.mp4")
    assert _cues(tmp_path / "again.mp4") == expected


def test_a_run_stopped_early_keeps_the_subtitles_up_to_its_last_frame(tmp_path):
    src = _video_with_subtitles(tmp_path)
    with VideoFile(src) as v, VideoWriter(tmp_path / "o.mp4", v.fps, v.width, v.height, v.time_base,
                                          tracks_from=src) as w:
        for f in v:
            if f.index == 25:  # one second in: Ctrl-C, q in the window
                w.stop_sound_with_picture()
                break
            w.write(f.image, f.pts)
    assert [cues for _, cues in _cues(tmp_path / "o.mp4")] == [[(0.2, 0.8, "Hello there")],
                                                               [(0.3, 0.9, "Bonjour, toi\nligne deux")]]


def test_overlapping_cues_are_shown_together_one_text_at_a_time():
    """An MP4 shows one text at a time: cues that overlap become stretches showing each cue then
    running, in the order they came (hand-computed). Without this, the MP4 muxer gave the first
    of two cues at one time a duration of 0 (never shown) and moved a cue that overlapped the
    one before to its end."""
    timeline = CueTimeline()
    done = []
    for start, end, text in [(200, 800, "one"), (200, 800, "two"), (500, 1500, "three"), (2000, 2500, "four")]:
        done += timeline.add(start, end, text)
    assert done == [(200, 500, "one\ntwo"), (500, 800, "one\ntwo\nthree"), (800, 1500, "three")]  # over at 2000
    assert timeline.flush() == [(2000, 2500, "four")]


def test_a_live_stream_sends_each_frame_as_it_comes():
    """`webcam --out - | ffplay -`: each frame its own fragment, flushed at once, so a player
    shows the stream as it comes; a file's fragments (one per keyframe, every 2 s) would hold
    60 frames back at 30 FPS."""
    import fcntl
    import os
    from pathlib import Path

    def fragments_after_each_frame(live: bool) -> list[int]:
        r, w = os.pipe()
        fcntl.fcntl(r, fcntl.F_SETFL, os.O_NONBLOCK)
        fcntl.fcntl(r, 1031, 1 << 20)  # F_SETPIPE_SZ: room for the whole stream
        got, counts = b"", []
        try:
            with VideoWriter(Path("-"), Fraction(30), 160, 120, time_base=Fraction(1, 1000), fd=w, live=live) as vw:
                for i in range(12):
                    vw.write(np.full((120, 160, 3), i * 20, np.uint8), pts=i * 33)
                    try:
                        while True:
                            got += os.read(r, 1 << 20)
                    except BlockingIOError:
                        pass
                    counts.append(got.count(b"moof"))
        finally:
            os.close(r)
            os.close(w)
        return counts

    live = fragments_after_each_frame(True)
    assert all(n >= i - 1 for i, n in enumerate(live)), live  # at most two frames behind (encoder, muxer)
    assert fragments_after_each_frame(False) == [0] * 12


def test_stdout_is_kept_for_the_video(capfd):
    """`--out -`: while the video goes to standard output, whatever else is printed there (the
    summary line, a library's print) goes to standard error, or it would corrupt the MP4."""
    import os

    from lipparse_rt.sinks import stdout_kept

    with stdout_kept() as fd:
        os.write(fd, b"VIDEO")
        print("a line", flush=True)
        os.write(1, b"C-level\n")
    print("after", flush=True)
    out, err = capfd.readouterr()
    assert out == "VIDEOafter\n" and err == "a line\nC-level\n"


def test_a_live_stream_with_sound_keeps_all_of_it(tmp_path):
    """A live writer with a sound track (`video in.mkv --out - | ffplay -`) cuts its fragments by
    time: FFmpeg's own fragment per frame ('frag_every_frame') lost a third of a clip's sound."""
    import av

    src = make_video(tmp_path / "in.mp4", n=50, audio=True)
    with VideoFile(src) as v, VideoWriter(tmp_path / "o.mp4", v.fps, v.width, v.height, v.time_base,
                                          tracks_from=src, live=True) as w:
        for f in v:
            w.write(f.image, f.pts)

    def samples(path) -> int:
        with av.open(str(path)) as c:
            return sum(f.samples for f in c.decode(audio=0))

    assert samples(tmp_path / "o.mp4") >= samples(src) - 1024  # the encoder's last frame at most
