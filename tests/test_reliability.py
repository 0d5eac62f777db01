"""Bad input, interruptions and kills: clear one-line errors, and nothing written is lost."""

import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from lipparse_rt.cli import app

from conftest import make_video, mux_black_frames, probe

runner = CliRunner()


def _default_sigint() -> None:
    # As in a terminal: a test runner started in the background (`cmd &` in a script) passes on
    # an ignored SIGINT, and Python keeps it ignored, so Ctrl-C could not be tested.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args, env_weights):
    env = dict(os.environ, LIPPARSE_WEIGHTS=str(env_weights))
    return subprocess.Popen([sys.executable, "-m", "lipparse_rt.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def _decodable_frames(path) -> int:
    import av

    n = 0
    try:
        with av.open(str(path)) as c:
            for _ in c.decode(video=0):
                n += 1
    except av.FFmpegError:
        pass
    return n


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("long") / "long.mp4", n=3000, size=(160, 120), fps=25, audio=True)


def _wait_for_frames(path, proc, min_frames=60, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and _decodable_frames(path) >= min_frames:
            return
        time.sleep(0.3)
    raise AssertionError("the run wrote no frames in time: " + (proc.stderr.read() if proc.poll() is not None else ""))


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_interrupt_finalises_output(tmp_path, long_video, tiny_weights, sig, code):
    # SIGHUP: the terminal closed or the SSH session dropped; before 2026-12-05 it killed the
    # process (the MP4 played to its last fragment, without the rest of its sound)
    out = tmp_path / "o.mp4"
    proc = _cli("video", long_video, "--out", out, env_weights=tiny_weights)
    _wait_for_frames(out, proc)
    proc.send_signal(sig)
    rc = proc.wait(timeout=30)
    stderr = proc.stderr.read()
    assert rc == code, stderr
    written = int(stderr.split("interrupted: ")[1].split(" frames")[0])
    assert 60 <= written < 3000
    assert probe(out)["frames"] == written  # finalised: every frame written plays
    # the sound ends with the picture, not two minutes on at the input's end (before 2026-12-05)
    import av

    ends: dict[str, float] = {}
    with av.open(str(out)) as c:
        for p in c.demux():
            if p.pts is not None:
                kind = p.stream.type
                ends[kind] = max(ends.get(kind, 0.0), float(p.pts * p.time_base))
    assert abs(ends["audio"] - ends["video"]) < 0.1, ends


def test_a_hangup_stops_training_with_a_checkpoint_and_nohup_keeps_it_going(tmp_path):
    """The SSH session that started a long `train` drops: SIGHUP finishes the step and writes the
    checkpoint that --resume continues from (before 2026-12-05 it killed the run since its last
    checkpoint). Under `nohup` (SIGHUP ignored) no stop signal is taken over."""
    pytest.importorskip("torch")
    from conftest import make_lip_folder

    from lipparse_rt.cli import _stop_signals

    data = make_lip_folder(tmp_path / "d", range(4))
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "lipparse_rt.cli", "train", "--data", str(data), "--iters",
                             "100000", "--size", "32", "--batch", "2", "--out", str(run), "--ckpt-every", "100000",
                             "--bn-batches", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "log.csv").exists():  # the training loop has started
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else "slow"
        time.sleep(0.2)
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped: continue with the same command and --resume" in err and (run / "last.pt").is_file()
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert signal.SIGHUP not in _stop_signals() and signal.SIGTERM in _stop_signals()
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_sigterm_outside_a_run_is_interrupted_not_an_error(tmp_path, monkeypatch, capsys):
    import sys

    from lipparse_rt import cli
    from lipparse_rt.errors import Interrupted

    def signal_while_loading(*args, **kwargs):  # SIGTERM while the model loads (or a second one, as
        raise Interrupted()  # `timeout` sends to the process and its group, while a run stops its threads)

    monkeypatch.setattr(cli, "_engine", signal_while_loading)
    monkeypatch.setattr(sys, "argv", ["lipparse-rt", "video", str(make_video(tmp_path / "in.mp4", n=3)),
                                      "--out", str(tmp_path / "o.mp4")])
    with pytest.raises(SystemExit) as exc:
        cli.run()
    assert exc.value.code == 143
    said = capsys.readouterr().err
    assert "interrupted" in said and "error" not in said


def test_ctrl_c_in_eval_says_how_far_scoring_got(tmp_path, tiny_weights, monkeypatch, capsys):
    # Before 2026-12-05 typer turned Ctrl-C in a command with no handling of its own (eval,
    # quantize, bench) into a silent exit 130: a blank line, nothing said.
    from conftest import make_lip_folder

    from lipparse_rt import cli
    import lipparse_rt.evaluate as ev

    real = ev.evaluate

    def press_ctrl_c_at_the_second_image(*args, on_image, **kwargs):
        def on(i, n):
            on_image(i, n)
            if i == 2:
                os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT, handled as a terminal's Ctrl-C is
                time.sleep(5)
                raise AssertionError("the SIGINT did not stop the run")
        return real(*args, on_image=on, **kwargs)

    monkeypatch.setattr(ev, "evaluate", press_ctrl_c_at_the_second_image)
    data = make_lip_folder(tmp_path / "d", range(4))
    monkeypatch.setattr(sys, "argv", ["lipparse-rt", "eval", "--data", str(data), "--weights", str(tiny_weights)])
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal starts it
    try:
        with pytest.raises(SystemExit) as exc:
            cli.run()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back after the run
    finally:
        signal.signal(signal.SIGINT, before)
    assert exc.value.code == 130
    said = capsys.readouterr()
    assert said.err.strip().splitlines()[-1] == "interrupted: 2 of 4 images scored; no scores (they need every image)"
    assert "mIoU" not in said.out


def test_kill_9_leaves_a_playable_file(tmp_path, long_video, tiny_weights):
    out = tmp_path / "o.mp4"
    proc = _cli("video", long_video, "--out", out, env_weights=tiny_weights)
    _wait_for_frames(out, proc, min_frames=100)
    proc.kill()
    proc.wait(timeout=10)
    assert _decodable_frames(out) >= 100


def test_truncated_video_writes_what_decodes_and_says_so(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    src = make_video(tmp_path / "t.mp4", n=60, options={"movflags": "faststart"})
    data = src.read_bytes()
    src.write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "o.mp4"
    r = runner.invoke(app, ["video", str(src), "--out", str(out)])
    assert r.exit_code == 2, r.output
    n = probe(out)["frames"]
    assert 0 < n < 60
    assert "of the 60 frames" in r.stderr and f"{n} frames written" in r.stderr


def test_a_trimmed_video_is_not_taken_for_a_damaged_one(tmp_path, tiny_weights, monkeypatch):
    # An MP4 trimmed without re-encoding (an edit list: its track holds 125 frames, it shows the
    # last 75) was reported as "only 75 of the 125 frames ... could be decoded (truncated or
    # damaged file)", exit 2, before 2026-12-05
    import av

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    # the first two seconds trimmed away: the muxer's edit list skips the frames before 0
    src = make_video(tmp_path / "trimmed.mp4", n=125, fps=25, pts=list(range(-50, 75)))
    with av.open(str(src)) as c:
        assert c.streams.video[0].frames == 125  # what the header holds
    r = runner.invoke(app, ["video", str(src), "--out", str(tmp_path / "o.mp4")])
    assert r.exit_code == 0 and "damaged" not in r.output, r.output
    assert probe(tmp_path / "o.mp4")["frames"] == 75


def test_video_with_no_frames(tmp_path, tiny_weights, monkeypatch):
    import av

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height = 64, 48
    out = tmp_path / "o.mp4"
    r = runner.invoke(app, ["video", str(empty), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().splitlines()[-1].startswith("error:")
    assert not out.exists()


def test_video_whose_picture_cannot_be_decoded(tmp_path, tiny_weights, monkeypatch):
    """A video stream whose data its decoder refuses from the first packet (an animated WebP,
    which FFmpeg reads as a 0x0 stream; a damaged MJPEG recording): one line naming the codec,
    exit 2 and no output. Before 2026-12-05 the run started: the WebP ended in `error:
    ArgumentError: ... avcodec_open2("libx264")` (exit 1, the writer opened at 0x0), this file in
    a summary of 0 frames and a warning of a `truncated or damaged file`."""
    import av

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    bad = tmp_path / "bad.mkv"
    rng = np.random.default_rng(0)
    with av.open(str(bad), "w") as c:
        s = c.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        for i in range(5):
            p = av.Packet(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
            p.stream, p.pts, p.dts, p.time_base, p.is_keyframe = s, i, i, Fraction(1, 25), True
            c.mux(p)
    out = tmp_path / "o.mp4"
    r = runner.invoke(app, ["video", str(bad), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().splitlines()[-1].startswith("error: cannot read video")
    assert "picture (mjpeg) cannot be decoded" in r.stderr
    assert not out.exists()


def test_a_url_is_downloaded_then_parsed(tmp_path, tiny_weights, monkeypatch):
    """`video https://.../clip.mp4` and `image https://.../a.jpg`: before 2026-12-05 one line said
    to download it first (and before 2026-12-05 again, `no such file` about 'https:/...', one
    slash: Path folds them). Now the file is downloaded into a temporary folder, parsed, and the
    copy removed; a page, a missing file or a server that does not answer is one line."""
    import tempfile

    from conftest import served_folder

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    site = tmp_path / "site"
    site.mkdir()
    make_video(site / "clip.mp4", n=12, audio=True)
    ok, jpg = cv2.imencode(".jpg", np.full((90, 60, 3), 128, np.uint8))
    (site / "a.jpg").write_bytes(jpg.tobytes())
    (site / "watch.html").write_text("<!doctype html><title>a video site</title>")
    (tmp_path / "out").mkdir()
    with served_folder(site) as base:
        r = runner.invoke(app, ["video", f"{base}/clip.mp4?download=1", "--out", str(tmp_path / "out")])
        assert r.exit_code == 0, r.output
        got = probe(tmp_path / "out" / "clip.mp4")  # named after the URL's file, its query left out
        assert got["frames"] == 12 and got["types"] == ["video", "audio"]
        r = runner.invoke(app, ["image", f"{base}/a.jpg", "--masks", str(tmp_path / "m")])
        assert r.exit_code == 0, r.output
        assert cv2.imread(str(tmp_path / "m" / "a.png"), cv2.IMREAD_UNCHANGED).shape == (90, 60)
        assert not any((tmp_path / "tmp").iterdir())  # the copies removed
        r = runner.invoke(app, ["video", f"{base}/gone.mp4", "--out", str(tmp_path / "o.mp4")])
        assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1] == (
            f"error: cannot read video '{base}/gone.mp4': the server answered 404 File not found")
        r = runner.invoke(app, ["video", f"{base}/watch.html", "--out", str(tmp_path / "o.mp4")])
        assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1] == (
            f"error: cannot read video '{base}/watch.html': it is a web page, not a video (for a video site: "
            "yt-dlp -o - URL | lipparse-rt video - ...)")
    r = runner.invoke(app, ["video", "rtsp://127.0.0.1:9/live", "--out", str(tmp_path / "o.mp4")])
    assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1] == (
        "error: cannot read video 'rtsp://127.0.0.1:9/live': it is a URL of a kind this does not download; "
        "`webcam --camera URL` parses a stream live")
    r = runner.invoke(app, ["image", "c:/nowhere/a.jpg", "--out", str(tmp_path / "o")])  # a drive, not a URL
    assert r.exit_code == 2 and r.stderr.strip().endswith("no such file or folder")
    assert not (tmp_path / "o.mp4").exists()

def test_a_video_from_a_pipe_is_read_to_its_end_then_parsed_with_its_sound(tmp_path, tiny_weights, monkeypatch):
    """`yt-dlp -o - URL | lipparse-rt video - --out o.mp4`, `ffmpeg ... -f matroska - | ...`, a
    named pipe, a shell's `<(...)`. Before 2026-12-05 `-` was refused ('give a file'), and a named
    pipe hung or ended in `InvalidDataError`: FFmpeg reads a video more than once."""
    import tempfile
    import threading

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    src = make_video(tmp_path / "in.mp4", n=12, audio=True)  # an MP4's index comes last: unreadable as it streams
    r = runner.invoke(app, ["video", "-", "--out", str(tmp_path / "o.mp4")], input=src.read_bytes())
    assert r.exit_code == 0, r.output
    assert "stdin: 12 frames" in r.stdout
    got = probe(tmp_path / "o.mp4")
    assert got["frames"] == 12 and got["types"] == ["video", "audio"]
    assert not any((tmp_path / "tmp").iterdir())  # the stream's copy is removed
    fifo = tmp_path / "cam"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(src.read_bytes()), daemon=True)
    writer.start()  # another process's end of the pipe
    r = runner.invoke(app, ["video", str(fifo), "--out", str(tmp_path)])  # a folder: named after the pipe
    writer.join(10)
    assert r.exit_code == 0, r.output
    assert probe(tmp_path / "cam.mp4")["frames"] == 12
    r = runner.invoke(app, ["video", "-", "--out", str(tmp_path / "e.mp4")], input=b"")
    assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1] == "error: cannot read video '-': the pipe gave nothing"
    assert not (tmp_path / "e.mp4").exists()


def test_a_name_with_a_colon_is_a_file(tmp_path, tiny_weights, monkeypatch):
    """`take:1.mp4` (a camera's or a script's name) given as a relative path: FFmpeg reads the part
    before the colon as a protocol. Before 2026-12-05: `cannot read video 'take:1.mp4': not a video
    file`, and an output of such a name could not be written."""
    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "take:1.mp4", n=6, audio=True)
    r = runner.invoke(app, ["video", "take:1.mp4", "--out", "parsed:1.mp4"])
    assert r.exit_code == 0, r.output
    info = probe(tmp_path / "parsed:1.mp4")
    assert info["frames"] == 6 and info["types"] == ["video", "audio"]


def test_a_song_with_a_cover_picture_is_not_a_video(tmp_path, tiny_weights, monkeypatch):
    """An MP3 (or a podcast's M4A) holds its cover as a one-picture video stream: before 2026-12-05
    `video song.mp3` parsed the cover as one frame "@ 90000.00 FPS" and wrote it with the song."""
    import av

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    song = tmp_path / "song.mp3"
    with av.open(str(song), "w") as c:
        a = c.add_stream("libmp3lame", rate=44100, layout="mono")
        v = c.add_stream("mjpeg", rate=1)
        v.width, v.height, v.pix_fmt = 64, 64, "yuvj420p"
        v.disposition = av.stream.Disposition.attached_pic
        cover = av.Packet(cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes())
        cover.stream, cover.pts, cover.dts, cover.time_base, cover.is_keyframe = v, 0, 0, Fraction(1, 1), True
        c.mux(cover)
        for k in range(0, 44100, 1152):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 44100, k
            for p in a.encode(f):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    out = tmp_path / "o.mp4"
    r = runner.invoke(app, ["video", str(song), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().splitlines()[-1] == (f"error: cannot read video '{song}': it has no video stream, "
                                                 "only a cover picture")
    assert not out.exists()


def test_portrait_video_is_upright(tmp_path, tiny_weights, monkeypatch):
    import av

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    src = tmp_path / "portrait.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        s.set_display_rotation(90)  # a phone held upright
        mux_black_frames(c, s, 5)
    r = runner.invoke(app, ["video", str(src), "--out", str(tmp_path / "o.mp4")])
    assert r.exit_code == 0, r.output
    info = probe(tmp_path / "o.mp4")
    assert info["size"] == (96, 160) and info["frames"] == 5


def test_video_of_non_square_pixels_is_written_as_it_is_shown(tmp_path, tiny_weights, monkeypatch):
    import av

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    src = make_video(tmp_path / "dvd.mp4", n=5, size=(120, 80), pixel_aspect=Fraction(32, 27))  # 16:9 DVD's
    r = runner.invoke(app, ["video", str(src), "--out", str(tmp_path / "o.mp4")])
    assert r.exit_code == 0, r.output
    assert "142x80 (stored 120x80, pixel aspect 32:27)" in r.stderr
    info = probe(tmp_path / "o.mp4")
    assert info["size"] == (142, 80) and info["frames"] == 5
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert c.streams.video[0].sample_aspect_ratio in (None, 1)  # square pixels, no flag to honour


def test_interlaced_video_is_written_deinterlaced_frame_for_frame(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    src = make_video(tmp_path / "tv.mp4", n=6, size=(96, 64), interlaced=True)
    r = runner.invoke(app, ["video", str(src), "--out", str(tmp_path / "o.mp4")])
    assert r.exit_code == 0, r.output
    assert "96x64 (interlaced: deinterlaced)" in r.stderr
    assert probe(tmp_path / "o.mp4")["pts"] == [round(t * 90000 / 25) for t in range(6)]


def test_4k_video_works(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    src = make_video(tmp_path / "4k.mp4", n=4, size=(3840, 2160))
    r = runner.invoke(app, ["video", str(src), "--out", str(tmp_path / "o.mp4")])
    assert r.exit_code == 0, r.output
    assert probe(tmp_path / "o.mp4")["size"] == (3840, 2160)


def test_unwritable_output_folder(tmp_path, video10, tiny_weights, monkeypatch):
    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = runner.invoke(app, ["video", str(video10), "--out", str(blocker / "sub" / "o.mp4")])
    assert r.exit_code == 3 and "cannot create folder" in r.stderr


def _without_root(args, weights):
    """Run the CLI where file permissions hold: as this user, or, as root (who reads and writes
    anything), without root's two capabilities over files (util-linux's `setpriv`)."""
    cmd = [sys.executable, "-m", "lipparse_rt.cli", *map(str, args)]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *cmd]
    env = dict(os.environ, LIPPARSE_WEIGHTS=str(weights))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_unreadable_inputs_are_one_line(tmp_path, video10, tiny_weights):
    """A video, an image or weights the user may not read: `permission denied`, not `not a video
    file` (the webcam's file camera), `not an image file` or `not a valid ONNX model`; an image in
    a folder is skipped with a warning, and the overlay folder is named as such. Before 2026-12-05
    the video and a single image were a usage box, and an image in a folder `PermissionError`."""
    locked = tmp_path / "locked.mp4"
    locked.write_bytes(video10.read_bytes())
    weights = tmp_path / "w.onnx"
    weights.write_bytes(tiny_weights.read_bytes())
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(photos / name), np.full((32, 24, 3), 90, np.uint8))
    for path in (locked, weights, photos / "b.png"):
        path.chmod(0)
    probe_run = _without_root(["video", locked, "--out", tmp_path / "o.mp4"], tiny_weights)
    assert probe_run.returncode == 2, probe_run.stderr
    assert probe_run.stderr.strip().splitlines()[-1] == f"error: cannot read video '{locked}': permission denied"
    r = _without_root(["webcam", "--camera", locked, "--no-show", "--out", tmp_path / "w.mp4"], tiny_weights)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].endswith("permission denied"), r.stderr
    r = _without_root(["image", photos / "b.png", "--out", tmp_path / "one"], tiny_weights)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].endswith("b.png': permission denied"), r.stderr
    r = _without_root(["image", photos, "--out", tmp_path / "all"], tiny_weights)
    assert r.returncode == 2, r.stderr
    assert "permission denied; skipped" in r.stderr and (tmp_path / "all" / "a.png").exists()
    r = _without_root(["image", photos / "a.png", "--out", tmp_path / "w", "--weights", weights], tiny_weights)
    assert r.returncode == 4 and r.stderr.strip().splitlines()[-1] == \
        f"error: cannot read weights '{weights}': permission denied", r.stderr
    shut = tmp_path / "shut"
    shut.mkdir(mode=0o555)
    r = _without_root(["image", photos / "a.png", "--out", shut], tiny_weights)
    assert r.returncode == 3 and r.stderr.strip().splitlines()[-1] == \
        f"error: cannot write overlays to '{shut}': not writable", r.stderr


def test_video_out_a_folder_writes_the_inputs_name_in_it(tmp_path, video10, tiny_weights, monkeypatch):
    """`for f in clips/*.mkv; do lipparse-rt video "$f" --out parsed; done`: an existing folder
    takes the input's name (before 2026-12-05: `the output is an H.264 MP4; name it .mp4 ...`);
    the input's own folder would replace the input: refused."""
    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    (tmp_path / "parsed").mkdir()
    r = runner.invoke(app, ["video", str(video10), "--out", str(tmp_path / "parsed")])
    assert r.exit_code == 0, r.output
    assert probe(tmp_path / "parsed" / f"{video10.stem}.mp4")["frames"] == 10
    r = runner.invoke(app, ["video", str(video10), "--out", str(video10.parent), "--force"])
    assert r.exit_code == 3 and "is the input" in r.stderr and probe(video10)["frames"] == 10


def test_output_equal_to_input_is_refused(tmp_path, video10, tiny_weights, monkeypatch):
    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    r = runner.invoke(app, ["video", str(video10), "--out", str(video10), "--force"])
    assert r.exit_code == 3 and "is the input" in r.stderr
    assert probe(video10)["frames"] == 10


def test_a_stream_that_does_not_answer_is_one_line_without_ffmpegs_own(tmp_path, tiny_weights):
    """OpenCV's FFmpeg printed its own lines for a stream URL that does not answer, and again for
    each retry of a lost one (`[tcp @ 0x...] Connection to tcp://... failed: Connection refused`),
    before 2026-12-05; what the user sees is the app's one line."""
    import socket

    with socket.socket() as sock:  # a local port with nobody listening: refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    env["LIPPARSE_WEIGHTS"] = str(tiny_weights)
    r = subprocess.run([sys.executable, "-m", "lipparse_rt.cli", "webcam", "--camera", f"http://127.0.0.1:{port}/video",
                        "--no-show", "--out", str(tmp_path / "o.mp4")], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 5
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith((" ", "INFO"))]
    assert lines == [f"error: cannot open stream 'http://127.0.0.1:{port}/video': nothing answers there, or it is "
                     "not a video stream"], r.stderr


def test_absent_camera_is_one_line(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    r = runner.invoke(app, ["webcam", "--camera", "63", "--no-show", "--out", str(tmp_path / "o.mp4")])
    assert r.exit_code == 5, r.output
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "camera" in last
    assert "WARN" not in r.stderr and "Traceback" not in r.stderr  # OpenCV's own noise is kept quiet


def test_image_with_wrong_extension_and_cmyk(tmp_path, tiny_weights, monkeypatch):
    import cv2

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "png_named.jpg"), np.full((30, 20, 3), 90, np.uint8))  # PNG bytes, .jpg name
    ok, buf = cv2.imencode(".png", np.full((30, 20, 3), 90, np.uint8))
    (d / "real.png").write_bytes(buf.tobytes())
    from PIL import Image  # noqa: F401  (only to write a CMYK JPEG)

    Image.new("CMYK", (24, 16), (0, 128, 0, 0)).save(d / "cmyk.jpg")
    r = runner.invoke(app, ["image", str(d), "--masks", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert cv2.imread(str(tmp_path / "m" / "cmyk.png"), cv2.IMREAD_UNCHANGED).shape == (16, 24)
    assert cv2.imread(str(tmp_path / "m" / "png_named.png"), cv2.IMREAD_UNCHANGED).shape == (30, 20)


def test_an_unreadable_image_in_a_folder_is_skipped_and_the_rest_parsed(tmp_path, tiny_weights, monkeypatch):
    import cv2

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), np.full((30, 20, 3), 90, np.uint8))
    (d / "b.jpg").write_bytes(b"not a jpeg")  # sorted between the two good ones
    cv2.imwrite(str(d / "c.png"), np.full((24, 16, 3), 90, np.uint8))
    r = runner.invoke(app, ["image", str(d), "--masks", str(tmp_path / "m")])
    assert r.exit_code == 2, r.output
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["a.png", "c.png"]
    assert "b.jpg" in r.output and "1 of 3" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["image", str(d / "b.jpg"), "--masks", str(tmp_path / "m2")])
    assert r.exit_code != 0 and r.output.strip().splitlines()[-1].startswith("error:")


def test_image_takes_several_paths_and_patterns(tmp_path, tiny_weights, monkeypatch):
    # `lipparse-rt image photos/*.jpg` (the shell passes each file) was
    # "Got unexpected extra argument(s)" before 2026-12-05.
    import cv2

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    d = tmp_path / "imgs"
    (d / "more").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.png", "more/d.png"):
        cv2.imwrite(str(d / name), np.full((30, 20, 3), 90, np.uint8))
    written = lambda m: sorted(p.name for p in m.iterdir())
    r = runner.invoke(app, ["image", str(d / "a.jpg"), str(d / "b.jpg"), str(d / "more"), "--masks", str(tmp_path / "m1")])
    assert r.exit_code == 0, r.output
    assert written(tmp_path / "m1") == ["a.png", "b.png", "d.png"] and "3 image(s) parsed" in r.stdout
    # a pattern the shell did not expand (quoted, or a shell that does not), and an image given twice
    r = runner.invoke(app, ["image", str(d / "*.jpg"), str(d / "a.jpg"), "--masks", str(tmp_path / "m2")])
    assert r.exit_code == 0, r.output
    assert written(tmp_path / "m2") == ["a.png", "b.png"]
    r = runner.invoke(app, ["image", str(d / "*.gif"), "--masks", str(tmp_path / "m3")])
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1] == f"error: cannot read images '{d / '*.gif'}': no image matches it"
    # of several images given, an unreadable one is skipped, as in a folder
    (d / "bad.jpg").write_bytes(b"not a jpeg")
    r = runner.invoke(app, ["image", str(d / "a.jpg"), str(d / "bad.jpg"), "--masks", str(tmp_path / "m4")])
    assert r.exit_code == 2 and written(tmp_path / "m4") == ["a.png"] and "1 of 2 image(s) could not be read" in r.output
    # an album of folders (before 2026-12-05 a plain `the folder has no images`, and '**' matched one level)
    (tmp_path / "album" / "2024" / "summer").mkdir(parents=True)
    (tmp_path / "album" / "2023").mkdir()
    for name in ("2024/summer/e.jpg", "2023/f.jpg"):
        cv2.imwrite(str(tmp_path / "album" / name), np.full((30, 20, 3), 90, np.uint8))
    r = runner.invoke(app, ["image", str(tmp_path / "album"), "--masks", str(tmp_path / "m5")])
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1] == (
        f"error: cannot read images '{tmp_path / 'album'}': the folder has no images (it holds 2 folders: give "
        f"them, or a pattern such as '{tmp_path / 'album' / '**' / '*.jpg'}')")
    r = runner.invoke(app, ["image", str(tmp_path / "album" / "**" / "*.jpg"), "--masks", str(tmp_path / "m5")])
    assert r.exit_code == 0 and written(tmp_path / "m5") == ["e.png", "f.png"], r.output


def test_images_sharing_a_name_are_refused_before_anything_is_written(tmp_path, tiny_weights, monkeypatch):
    import cv2

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "photo.png"), np.full((30, 20, 3), 90, np.uint8))
    cv2.imwrite(str(d / "photo.jpg"), np.full((30, 20, 3), 200, np.uint8))
    r = runner.invoke(app, ["image", str(d), "--masks", str(tmp_path / "m")])
    assert r.exit_code != 0
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("error:") and "photo.jpg" in last and "photo.png" in last
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


@pytest.mark.parametrize("kind", ["cfr", "vfr", "audio", "vfr+audio"])
def test_every_frame_and_timestamp_survives(tmp_path, tiny_weights, monkeypatch, kind):
    from fractions import Fraction

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    pts = [0, 2, 3, 7, 8, 9, 15, 16, 20, 21, 22, 30] if "vfr" in kind else None
    src = make_video(tmp_path / "in.mp4", n=12, fps=30, pts=pts, audio="audio" in kind)
    out = tmp_path / "out.mp4"
    r = runner.invoke(app, ["video", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    a, b = probe(src), probe(out)
    secs = lambda p: [round(float(Fraction(x) * p["tb"]), 3) for x in p["pts"]]
    assert b["frames"] == a["frames"] == 12 and secs(b) == secs(a)
    assert ("audio" in b["types"]) == ("audio" in kind)


def test_writer_failure_stops_cleanly_and_keeps_what_was_written(tmp_path, video10, tiny_weights):
    from lipparse_rt.engine import Engine, EngineConfig
    from lipparse_rt.errors import OutputError
    from lipparse_rt.pipeline import run_file
    from lipparse_rt.sinks import VideoWriter
    from lipparse_rt.sources import VideoFile
    import threading

    class DiskFull:
        def __init__(self, inner, after):
            self.inner, self.after = inner, after

        def write(self, bgr, pts=None):
            if self.inner.frames >= self.after:
                raise OutputError("cannot write 'o.mp4': No space left on device")
            self.inner.write(bgr, pts)

    engine = Engine(EngineConfig(weights=tiny_weights, provider="cpu", threads=1))
    before = threading.active_count()
    out = tmp_path / "o.mp4"
    with VideoFile(video10) as src, VideoWriter(out, src.fps, src.width, src.height, src.time_base) as w:
        with pytest.raises(OutputError, match="No space"):
            run_file(src, engine, DiskFull(w, after=6))
    assert threading.active_count() == before  # every stage joined
    assert probe(out)["frames"] == 6


class _FailsAfter:
    """A session that runs `n` times, then fails as ONNX Runtime's CUDA provider did (BENCHMARKS.md)."""

    def __init__(self, inner, n):
        self.inner, self.left = inner, n

    def run(self, names, feeds):
        self.left -= 1
        if self.left < 0:
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : CUDA failure 700: an illegal memory access was "
                               "encountered ; GPU=0 ; hostname=vm ; file=gpu_data_transfer.cc ; line=96 ; expr=x;")
        return self.inner.run(names, feeds)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_model_failure_mid_video_is_one_line_and_keeps_what_was_written(tmp_path, tiny_weights, monkeypatch):
    from lipparse_rt.engine import Engine

    real_init = Engine.__init__

    def init(self, config):
        real_init(self, config)
        self.session = _FailsAfter(self.session, 8)

    monkeypatch.setattr(Engine, "__init__", init)
    src = make_video(tmp_path / "in.mp4", n=30)
    out = tmp_path / "o.mp4"
    r = runner.invoke(app, ["video", str(src), "--out", str(out), "--weights", str(tiny_weights), "--provider", "cpu"])
    assert r.exit_code == 7, r.output
    line = [l for l in r.output.splitlines() if l.startswith("error:")]
    assert len(line) == 1 and "Traceback" not in r.output
    assert "the model failed on cpu: CUDA failure 700: an illegal memory access was encountered;" in line[0]
    assert "GPU=0" not in line[0]  # ONNX Runtime's details stay out of the line
    written = int(line[0].split("; ")[-1].split()[0])
    assert 0 < written <= 8 and f"frames written to {out}" in line[0]
    assert probe(out)["frames"] == written  # what was written plays


def test_image_outputs_never_replace_an_input(tmp_path, tiny_weights, monkeypatch):
    import cv2

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    d = tmp_path / "photos"
    d.mkdir()
    cv2.imwrite(str(d / "a.jpg"), np.full((30, 20, 3), 90, np.uint8))
    cv2.imwrite(str(d / "b.png"), np.full((30, 20, 3), 200, np.uint8))  # its overlay would be d/b.png
    before = (d / "b.png").read_bytes()
    for args, flag in ((["--out", str(d)], "--out"), (["--masks", str(d)], "--masks")):
        for path in (d, d / "b.png"):
            r = runner.invoke(app, ["image", str(path), *args])
            assert r.exit_code == 3, r.output
            assert r.stderr.strip().splitlines()[-1] == f"error: cannot write '{d / 'b.png'}': it is an input image; choose another {flag}"
    assert (d / "b.png").read_bytes() == before and sorted(p.name for p in d.iterdir()) == ["a.jpg", "b.png"]
    r = runner.invoke(app, ["image", str(d), "--out", str(tmp_path / "o"), "--masks", str(tmp_path / "o")])
    assert r.exit_code == 3 and "overlays and masks both to" in r.stderr and not (tmp_path / "o").exists()
    r = runner.invoke(app, ["image", str(d / "a.jpg"), "--out", str(d)])  # a.png is no input: written
    assert r.exit_code == 0 and (d / "a.png").is_file()


def test_an_overlay_that_cannot_be_written_is_an_output_error(tmp_path, tiny_weights, monkeypatch):
    import cv2

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((30, 20, 3), 90, np.uint8))
    (tmp_path / "o" / "a.png").mkdir(parents=True)  # where the overlay would go
    r = runner.invoke(app, ["image", str(tmp_path / "a.jpg"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 3 and r.stderr.strip().splitlines()[-1].startswith("error: cannot write overlay"), r.output


def test_a_sigterm_while_the_model_runs_stops_image_as_an_interruption(tmp_path, tiny_weights, monkeypatch):
    """`image` runs the model on the main thread, where the SIGTERM handler raises: the engine's
    wrapper around ONNX Runtime's errors must let it through (before 2026-12-04: 'the model
    failed on cpu: Interrupted', exit 7), and what was parsed is said."""
    import cv2
    import onnxruntime as ort

    from lipparse_rt.errors import Interrupted

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    d = tmp_path / "imgs"
    d.mkdir()
    for name, (h, w) in {"a.png": (30, 20), "b.png": (20, 60), "c.png": (30, 20)}.items():
        cv2.imwrite(str(d / name), np.full((h, w, 3), 90, np.uint8))
    real = ort.InferenceSession.run

    def run(self, names, feeds, *args, **kwargs):  # the signal lands inside ONNX Runtime's call on b.png (3:1)
        batch = next(iter(feeds.values()))
        if batch.ndim == 4 and batch.shape[2] >= 1.9 * batch.shape[1]:
            raise Interrupted()
        return real(self, names, feeds, *args, **kwargs)

    monkeypatch.setattr(ort.InferenceSession, "run", run)
    r = runner.invoke(app, ["image", str(d), "--masks", str(tmp_path / "m")])
    assert r.exit_code == 143, r.output
    assert r.stderr.strip().splitlines()[-1] == f"interrupted: 1 of 3 image(s) parsed, masks in {tmp_path / 'm'}"
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["a.png"]


def test_an_image_from_a_pipe_is_parsed_as_stdin(tmp_path, tiny_weights, monkeypatch):
    """`curl -s URL | lipparse-rt image - --out o`: before 2026-12-05 `no such file or folder`."""
    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    photo = np.full((90, 60, 3), 128, np.uint8)
    ok, data = cv2.imencode(".jpg", photo)
    r = runner.invoke(app, ["image", "-", "--out", str(tmp_path / "o"), "--masks", str(tmp_path / "m")],
                      input=data.tobytes())
    assert r.exit_code == 0, r.output
    assert cv2.imread(str(tmp_path / "o" / "stdin.png")).shape == (90, 60, 3)
    assert cv2.imread(str(tmp_path / "m" / "stdin.png"), cv2.IMREAD_UNCHANGED).shape == (90, 60)
    r = runner.invoke(app, ["image", "-", "--out", str(tmp_path / "o2")], input=b"hello")
    assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1] == "error: cannot read image '-': not an image file"


def test_an_image_written_to_standard_output(tmp_path, tiny_weights):
    """`curl -s URL | lipparse-rt image - --masks - > ids.png` (a web service's, a script's): one
    image's PNG to standard output, every line to standard error. Before 2026-12-05: a folder
    named '-' was made and `-/stdin.png` written there."""
    import pty

    env = dict(os.environ, LIPPARSE_WEIGHTS=str(tiny_weights))
    cmd = [sys.executable, "-m", "lipparse_rt", "image"]
    rng = np.random.default_rng(1)
    photo = cv2.GaussianBlur(rng.integers(0, 255, (90, 60, 3), np.uint8), (9, 9), 3)
    cv2.imwrite(str(tmp_path / "p.png"), photo)
    done = subprocess.run(cmd + ["-", "--masks", "-", "--no-flip"], input=(tmp_path / "p.png").read_bytes(), env=env,
                          capture_output=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    ids = cv2.imdecode(np.frombuffer(done.stdout, np.uint8), cv2.IMREAD_UNCHANGED)  # the PNG alone
    assert b"1 image(s) parsed" in done.stderr and not (tmp_path / "-").exists()
    done = subprocess.run(cmd + [str(tmp_path / "p.png"), "--masks", str(tmp_path / "m"), "--out", "-", "--no-flip"],
                          env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(ids, cv2.imread(str(tmp_path / "m" / "p.png"), cv2.IMREAD_UNCHANGED))  # as a folder gets it
    overlay = cv2.imdecode(np.frombuffer(done.stdout, np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape == (90, 60, 3) and not np.array_equal(overlay, photo)
    # two images, both outputs, a terminal: refused, nothing written
    cv2.imwrite(str(tmp_path / "q.png"), photo)
    for args, line in (([str(tmp_path / "p.png"), str(tmp_path / "q.png"), "--out", "-"],
                        b"error: cannot write 2 images to standard output (one PNG): give --out a folder"),
                       ([str(tmp_path / "p.png"), "--out", "-", "--masks", "-"],
                        b"error: cannot write overlays and masks both to standard output: give one of them a folder")):
        done = subprocess.run(cmd + args, env=env, capture_output=True, timeout=120)
        assert done.returncode == 3 and done.stdout == b"" and done.stderr.strip().splitlines()[-1] == line
    main, term = pty.openpty()
    done = subprocess.run(cmd + [str(tmp_path / "p.png"), "--out", "-"], env=env, stdout=term, stderr=subprocess.PIPE,
                          timeout=120)
    os.close(term)
    os.close(main)
    assert done.returncode == 3 and done.stderr.strip().splitlines()[-1].endswith(
        b"cannot write the image to standard output: it is a terminal (pipe it, as in '| display -', or redirect "
        b"it, '> o.png')")


def _noise_video(path: Path, n: int, size: tuple[int, int]) -> Path:
    """`n` frames of noise at 25 FPS, H.264: frames that do not compress, so bytes go with frames."""
    import av

    w, h = size
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (h, w, 3), np.uint8), format="bgr24")
            f.pts = i
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    return path


def test_a_video_written_to_standard_output(tmp_path, tiny_weights):
    """`lipparse-rt video in.mkv --out - | ffplay -` (or `| ffmpeg -i - ...`, `> o.mp4`): the MP4
    goes to standard output, with its sound, and every line to standard error. Before 2026-12-05:
    `cannot write '-': the output is an H.264 MP4; name it .mp4, .m4v or .mov`."""
    import pty

    env = dict(os.environ, LIPPARSE_WEIGHTS=str(tiny_weights))
    cmd = [sys.executable, "-m", "lipparse_rt", "video"]
    src = make_video(tmp_path / "in.mkv", n=40, audio=True)
    done = subprocess.run(cmd + [str(src), "--out", "-"], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout[4:8] == b"ftyp"  # the MP4 alone
    assert done.stdout.count(b"moof") >= 40  # a fragment per frame: a player downstream shows each as it comes
    assert b"in.mkv: 40 frames in" in done.stderr  # the summary with the other lines
    (tmp_path / "o.mp4").write_bytes(done.stdout)
    got = probe(tmp_path / "o.mp4")
    assert got["frames"] == 40 and got["types"] == ["video", "audio"]
    # the reader stops early (`| head -c`, a player closed): one line, exit 3
    noise = _noise_video(tmp_path / "noise.mkv", 30, (320, 240))  # more than a pipe holds
    reader = subprocess.Popen(cmd + [str(noise), "--out", "-"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    reader.stdout.read(2000)
    reader.stdout.close()
    _, stderr = reader.communicate(timeout=120)
    assert reader.returncode == 3, stderr
    assert re.fullmatch(rb"error: cannot write standard output: the program reading it closed it "
                        rb"\(after \d+ frames?\)", stderr.strip().splitlines()[-1]), stderr
    # a terminal: not sent there
    main, term = pty.openpty()
    done = subprocess.run(cmd + [str(src), "--out", "-"], env=env, stdout=term, stderr=subprocess.PIPE, timeout=120)
    os.close(term)
    os.close(main)
    assert done.returncode == 3 and done.stderr.strip().splitlines()[-1].endswith(
        b"cannot write the video to standard output: it is a terminal (pipe it, as in '| ffplay -', or redirect "
        b"it, '> o.mp4')")
    # several videos cannot share it
    done = subprocess.run(cmd + [str(src), str(make_video(tmp_path / "b.mp4", n=3)), "--out", "-"], env=env,
                          capture_output=True, timeout=120)
    assert done.returncode == 3 and done.stdout == b""
    assert done.stderr.strip().splitlines()[-1] == b"error: cannot write 2 videos to standard output: give --out a folder"


def test_a_video_written_into_a_named_pipe(tmp_path, tiny_weights, monkeypatch):
    """`mkfifo p; ffplay p & lipparse-rt video in.mp4 --out p`: a pipe takes the MP4 under any
    name, and is not removed. Before 2026-12-05: `name it .mp4, .m4v or .mov`."""
    import threading

    import av

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    fifo = tmp_path / "player"
    os.mkfifo(fifo)
    frames = []

    def play() -> None:
        with av.open(str(fifo)) as c:
            frames.extend(c.decode(video=0))

    reader = threading.Thread(target=play, daemon=True)
    reader.start()
    r = runner.invoke(app, ["video", str(make_video(tmp_path / "in.mp4", n=15)), "--out", str(fifo)])
    reader.join(30)
    assert r.exit_code == 0, r.output
    assert len(frames) == 15 and fifo.exists()


def _hls(folder, src, seconds: int = 1):
    """`src` cut into an HLS playlist of MPEG-TS segments (`folder/index.m3u8`), as sites serve video."""
    import av

    folder.mkdir()
    with av.open(str(src)) as inp, av.open(str(folder / "index.m3u8"), "w", format="hls", options={
            "hls_time": str(seconds), "hls_playlist_type": "vod"}) as out:
        to = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for p in inp.demux():
            if p.dts is not None:
                p.stream = to[p.stream.index]
                out.mux(p)
    return folder / "index.m3u8"


def test_an_hls_playlist_url_is_fetched_at_its_best_quality(tmp_path, tiny_weights, monkeypatch):
    """`video https://site/master.m3u8` (HLS, as many sites serve video): before 2026-12-05 the
    playlist's text was downloaded and refused as `not a video file`. Its segments are joined into
    one file, the largest picture of the qualities it offers with its sound; the other qualities'
    segments are not fetched."""
    from conftest import QuietHandler, served_folder

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    site = tmp_path / "site"
    site.mkdir()
    _hls(site / "lo", make_video(tmp_path / "lo.mp4", n=50, size=(160, 120), audio=True))
    _hls(site / "hi", make_video(tmp_path / "hi.mp4", n=50, size=(320, 240), audio=True))
    (site / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=160x120\nlo/index.m3u8\n"
                                      "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=320x240\nhi/index.m3u8\n")
    asked = []

    class Handler(QuietHandler):
        def log_message(self, *args) -> None:
            asked.append(self.path)

    out = tmp_path / "out"
    out.mkdir()
    with served_folder(site, Handler) as base:
        r = runner.invoke(app, ["video", f"{base}/master.m3u8", "--out", str(out)])
        assert r.exit_code == 0, r.output
        got = probe(out / "master.mp4")
        assert got["frames"] == 50 and got["size"] == (320, 240) and got["types"] == ["video", "audio"]
        hi = sorted(p.name for p in (site / "hi").glob("*.ts"))
        assert len(hi) >= 2 and all(f"/hi/{n}" in asked for n in hi)
        assert sum(p.startswith("/lo/") and p.endswith(".ts") for p in asked) <= 1  # looked at, not fetched


def test_a_folder_of_the_other_kind_says_which_command_reads_it(tmp_path):
    """A frame sequence given to `video` (a dataset's, a render's), a folder of clips given to
    `image`: before 2026-12-05 a plain `the folder has no videos`, which did not say what it holds."""
    seq = tmp_path / "seq"
    seq.mkdir()
    for i in range(3):
        cv2.imwrite(str(seq / f"{i:04d}.png"), np.zeros((8, 8, 3), np.uint8))
    r = runner.invoke(app, ["video", str(seq), "--out", str(tmp_path / "o.mp4")])
    assert r.exit_code == 2 and " ".join(r.stderr.split()) == (
        f"error: cannot read videos '{seq}': the folder has no videos (it holds 3 images: lipparse-rt image "
        f"'{seq}' parses them)")
    r = runner.invoke(app, ["video", str(seq / "*.png"), "--out", str(tmp_path / "o.mp4")])
    assert r.exit_code == 2 and " ".join(r.stderr.split()).endswith(
        f"no video matches it (it matches 3 images: lipparse-rt image '{seq / '*.png'}' parses them)")
    clips = tmp_path / "clips"
    clips.mkdir()
    make_video(clips / "a.mp4", n=2)
    r = runner.invoke(app, ["image", str(clips), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and " ".join(r.stderr.split()).endswith(
        f"the folder has no images (it holds 1 video: lipparse-rt video '{clips}' parses it)")


LIVE_PIPE = Path(__file__).resolve().parents[1] / "tools" / "live_pipe.py"  # a live MPEG-TS on stdout


def _appears(path: Path, seconds: float) -> bool:
    """Wait up to `seconds` for `path` (a frame's mask: the run has parsed that far); whether it came."""
    deadline = time.time() + seconds
    while not path.exists() and time.time() < deadline:
        time.sleep(0.05)
    return path.exists()


def test_a_live_stream_piped_to_video_is_parsed_as_it_comes(tmp_path, tiny_weights):
    """`ffmpeg -i rtsp://cam/live -f mpegts - | lipparse-rt video - --out rec.mp4`: the stream is
    parsed as it comes, with its sound; Ctrl-C finalises what was written. Before 2026-12-05 the
    stream was read to its end first: a live one was never parsed, and a stream that ends was
    parsed only then."""
    env = dict(os.environ, LIPPARSE_WEIGHTS=str(tiny_weights))
    masks = tmp_path / "m"
    producer = subprocess.Popen([sys.executable, str(LIVE_PIPE), "produce", "60", "--wait-for",
                                 str(masks / "000009.png")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = subprocess.run([sys.executable, "-m", "lipparse_rt", "video", "-", "--out", str(tmp_path / "o.mp4"),
                           "--masks", str(masks)], stdin=producer.stdout, env=env, capture_output=True, timeout=120)
    producer.stdout.close()
    said = producer.communicate(timeout=60)[1].decode()
    assert done.returncode == 0, done.stderr
    assert "parsed while the stream was open" in said, said
    got = probe(tmp_path / "o.mp4")
    assert got["frames"] == 60 and got["types"] == ["video", "audio"]
    # an endless stream: Ctrl-C ends the run, the MP4 finalised (and the thread still reading the
    # pipe does not hold the exit up: it aborted the interpreter, "could not acquire lock for <stdin>")
    producer = subprocess.Popen([sys.executable, str(LIVE_PIPE), "produce", "100000"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    run = subprocess.Popen([sys.executable, "-m", "lipparse_rt", "video", "-", "--out", str(tmp_path / "r.mp4"),
                            "--masks", str(tmp_path / "m2")], stdin=producer.stdout, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint)
    producer.stdout.close()
    try:
        _appears(tmp_path / "m2" / "000020.png", 60)
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
    finally:
        producer.kill()
        producer.wait()
    assert run.returncode == 130, stderr
    line = stderr.decode().strip().splitlines()[-1]
    assert re.fullmatch(rf"interrupted: \d+ frames written to {re.escape(str(tmp_path / 'r.mp4'))}", line), line
    assert probe(tmp_path / "r.mp4")["frames"] >= 20


@pytest.mark.parametrize("name,options", [("clip.mkv", None), ("clip.mp4", {"movflags": "faststart"})])
def test_a_download_is_parsed_while_it_downloads(tmp_path, tiny_weights, monkeypatch, name, options):
    """`video https://host/clip.mp4`: parsing begins with the first frames that arrive, so a slow
    download and the parse overlap (an MP4 whose index comes first, as web videos are made: its
    demuxer is told the size the server announced, or it looks past the media for more boxes and
    waits for the end). Before 2026-12-05 the whole file was downloaded first."""
    import threading

    from conftest import QuietHandler, _serving

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    data = make_video(tmp_path / name, n=100, audio=True, options=options).read_bytes()
    masks = tmp_path / "m"
    seen = threading.Event()

    class Slow(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/x-matroska")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            half = len(data) // 2
            self.wfile.write(data[:half])
            self.wfile.flush()
            if _appears(masks / "000009.png", 20):  # the rest once some frames were parsed (or 20 s)
                seen.set()
            self.wfile.write(data[half:])

    with _serving(Slow) as base:
        r = runner.invoke(app, ["video", f"{base}/{name}", "--out", str(tmp_path / "o.mp4"), "--masks", str(masks)])
    assert r.exit_code == 0, r.output
    assert seen.is_set()  # parsed while half of it was still to come
    got = probe(tmp_path / "o.mp4")
    assert got["frames"] == 100 and got["types"] == ["video", "audio"]


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_while_a_piped_mp4_is_awaited_stops_the_run(tmp_path, tiny_weights, sig, code):
    """`yt-dlp -o - URL | lipparse-rt video - ...` on a slow link: an MP4 whose index comes last is
    opened only once it is all in, FFmpeg waiting for its bytes meanwhile. Ctrl-C or SIGTERM there
    came inside FFmpeg's read and was lost (the run went on until the stream ended, exit 0)."""
    src = make_video(tmp_path / "in.mp4", n=300, size=(320, 240))  # its index ('moov') written last
    slow = ("import sys, time\ndata = open(sys.argv[1], 'rb').read()\nstep = len(data) // 100 + 1\n"
            "for i in range(0, len(data), step):\n"
            "    sys.stdout.buffer.write(data[i:i + step]); sys.stdout.buffer.flush(); time.sleep(0.1)\n")  # 10 s
    producer = subprocess.Popen([sys.executable, "-c", slow, str(src)], stdout=subprocess.PIPE)
    env = dict(os.environ, LIPPARSE_WEIGHTS=str(tiny_weights))
    run = subprocess.Popen([sys.executable, "-m", "lipparse_rt", "video", "-", "--out", str(tmp_path / "o.mp4")],
                           stdin=producer.stdout, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           preexec_fn=_default_sigint)
    producer.stdout.close()
    try:
        time.sleep(3)  # the stream takes some 10 s to come
        assert run.poll() is None
        run.send_signal(sig)
        _, stderr = run.communicate(timeout=10)
    finally:
        producer.kill()
        producer.wait()
    assert run.returncode == code, stderr
    assert stderr.decode().strip().splitlines()[-1] == "interrupted"


def test_ctrl_c_while_a_live_stream_stalls_stops_the_run(tmp_path, tiny_weights):
    """A live stream piped to `video` that stops sending (a camera's network gone, `cat x.ts; sleep`):
    Ctrl-C ends the run and finalises the output. The reader, waiting for the stream's next bytes,
    could not be joined: the run hung until the stream went on."""
    env = dict(os.environ, LIPPARSE_WEIGHTS=str(tiny_weights))
    masks = tmp_path / "m"
    # after 40 frames the stream stalls for 20 s (it waits for a file that never comes)
    producer = subprocess.Popen([sys.executable, str(LIVE_PIPE), "produce", "60", "--wait-for",
                                 str(tmp_path / "never")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    run = subprocess.Popen([sys.executable, "-m", "lipparse_rt", "video", "-", "--out", str(tmp_path / "o.mp4"),
                            "--masks", str(masks)], stdin=producer.stdout, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, preexec_fn=_default_sigint)
    producer.stdout.close()
    try:
        _appears(masks / "000030.png", 60)
        time.sleep(1)  # well into the stall
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=10)
    finally:
        producer.kill()
        producer.wait()
    assert run.returncode == 130, stderr
    assert re.fullmatch(r"interrupted: \d+ frames written to .*o\.mp4", stderr.decode().strip().splitlines()[-1])
    got = probe(tmp_path / "o.mp4")
    assert got["frames"] >= 30 and got["types"] == ["video", "audio"]


def test_a_download_cut_off_is_said_after_what_came_is_parsed(tmp_path, tiny_weights, monkeypatch):
    """A server that closes the connection halfway (a dropped link, a server restarted): the
    frames that came are parsed and written, then `warning: cannot read video '...': it broke off
    after N of its M bytes; K frames written`, exit 2. Before 2026-12-05 the half was taken for the
    whole video (exit 0, no word) where the container says no frame count (Matroska)."""
    from conftest import QuietHandler, _serving

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    data = _noise_video(tmp_path / "clip.mkv", 60, (160, 120)).read_bytes()  # half the bytes: half the frames

    class Cut(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.close_connection = True

    with _serving(Cut) as base:
        r = runner.invoke(app, ["video", f"{base}/clip.mkv", "--out", str(tmp_path / "o.mp4")])
    assert r.exit_code == 2, r.output
    n = probe(tmp_path / "o.mp4")["frames"]
    assert 10 <= n < 60
    assert " ".join(r.stderr.split()).endswith(
        f"warning: cannot read video '{base}/clip.mkv': it broke off after {len(data) // 2:,} of its {len(data):,} "
        f"bytes; {n} frames written")


def test_a_live_hls_playlist_is_parsed_as_it_grows_until_ctrl_c(tmp_path, tiny_weights):
    """`video https://cam/live.m3u8` (a camera's, a broadcast's: a playlist that gains a segment
    every few seconds and has no end) is parsed as its segments come, until Ctrl-C finalises the
    output. Before 2026-12-05 it was refused (`it is a live stream`): copied whole first, it would
    never have ended."""
    from conftest import QuietHandler, served_folder

    site = tmp_path / "site"
    vod = _hls(site, make_video(tmp_path / "v.mp4", n=250, size=(160, 120), audio=True)).read_text()
    head = [line for line in vod.splitlines() if line.startswith("#EXT") and not line.startswith(
        ("#EXTINF", "#EXT-X-ENDLIST", "#EXT-X-PLAYLIST-TYPE"))]
    entries = [line for line in vod.splitlines() if not line.startswith("#") or line.startswith("#EXTINF")]
    segments = list(zip(entries[0::2], entries[1::2]))  # (#EXTINF, name), shown one more a second
    assert len(segments) >= 4
    t0 = time.time()

    class Live(QuietHandler):
        def do_GET(self) -> None:
            if not self.path.endswith("live.m3u8"):
                return super().do_GET()
            shown = segments[:min(len(segments), 1 + int(time.time() - t0))]  # a segment more each second
            body = "\n".join(head + [x for pair in shown for x in pair]) + "\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.apple.mpegurl")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

    with served_folder(site, Live) as base:
        run = subprocess.Popen([sys.executable, "-m", "lipparse_rt", "video", f"{base}/live.m3u8", "--out",
                                str(tmp_path / "l.mp4"), "--masks", str(tmp_path / "m")],
                               env=dict(os.environ, LIPPARSE_WEIGHTS=str(tiny_weights)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, preexec_fn=_default_sigint)
        try:
            assert _appears(tmp_path / "m" / "000100.png", 60)  # past the first segment (65 frames): it grew
            assert run.poll() is None
            run.send_signal(signal.SIGINT)
            _, stderr = run.communicate(timeout=20)
        finally:
            run.kill()
    assert run.returncode == 130, stderr
    line = stderr.decode().strip().splitlines()[-1]
    assert re.fullmatch(rf"interrupted: \d+ frames written to {re.escape(str(tmp_path / 'l.mp4'))}", line), line
    got = probe(tmp_path / "l.mp4")
    assert got["frames"] > 100 and got["types"] == ["video", "audio"]


def test_an_hls_playlist_is_parsed_as_its_segments_come(tmp_path, tiny_weights, monkeypatch):
    """`video https://site/index.m3u8`: its first segments are parsed while the later ones
    download. Before 2026-12-05 every segment was fetched and joined first."""
    import threading

    from conftest import QuietHandler, served_folder

    monkeypatch.setenv("LIPPARSE_WEIGHTS", str(tiny_weights))
    site = tmp_path / "site"
    playlist = _hls(site, make_video(tmp_path / "v.mp4", n=100, size=(160, 120), audio=True))
    segments = sorted(p.name for p in site.glob("*.ts"))
    assert len(segments) >= 2
    masks = tmp_path / "m"
    seen = threading.Event()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            if self.path.endswith(segments[-1]):  # the last segment once some frames were parsed (or 20 s)
                if _appears(masks / "000009.png", 20):
                    seen.set()
            super().do_GET()

    with served_folder(site, Handler) as base:
        r = runner.invoke(app, ["video", f"{base}/{playlist.name}", "--out", str(tmp_path / "o.mp4"), "--masks",
                                str(masks)])
    assert r.exit_code == 0, r.output
    assert seen.is_set()  # parsed while a segment was still to come
    got = probe(tmp_path / "o.mp4")
    assert got["frames"] == 100 and got["types"] == ["video", "audio"]
