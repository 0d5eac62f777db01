"""The `lipparse-rt` command: parse arguments, build the pieces, call the pipeline, map errors."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import __version__
from .errors import DisplayError, InputError, Interrupted, LipParseError, ModelError, OutputError
from .heap import limit_arenas
from .progress import progress

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Real-time human parsing into the 20 LIP classes with LIP-Net on ONNX Runtime.",
)
err = Console(stderr=True, markup=False)  # file names are shown as they are: "clip [red].mp4"
out = Console(soft_wrap=True, markup=False)
_state = {"debug": False}

# Options shared by the commands that run the model.
Weights = Annotated[Optional[Path], typer.Option(
    "--weights", "-w", readable=False,  # unreadable weights: the engine's one line, not a usage box
    help="ONNX weights (default: the shipped weights/lipnet.onnx, or $LIPPARSE_WEIGHTS).")]
Size = Annotated[int, typer.Option(
    "--size", help="Model input: the long side in pixels, a multiple of 16 up to 2048 (0 = the size stored in the weights).")]
Provider = Annotated[str, typer.Option(
    "--provider", help="Execution provider: auto (TensorRT -> CUDA -> CPU), tensorrt, cuda or cpu.")]
Alpha = Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="Overlay opacity.")]
Int8 = Annotated[Optional[bool], typer.Option(
    "--int8/--float", help="Which shipped weights: INT8 (weights/lipnet-int8.onnx) or float (weights/lipnet.onnx). "
                           "Default: INT8 on the CPU provider (1.1-1.3x the end-to-end speed, 0.2-0.3 mIoU less), "
                           "float on a GPU.", show_default=False)]
Flip = Annotated[bool, typer.Option(
    "--flip", help="Quality mode: parse each frame and its mirror and average them (flip test-time augmentation; "
                   "about half the speed; more accurate, with fewer wrong sides: the README's accuracy table).")]
Scales = Annotated[str, typer.Option(
    "--scales", help="Test-time scales, multiples of --size, e.g. 1.125,1.375: each image parsed at each, the class "
                     "probabilities averaged. Better on full-length street photos, worse on close-ups (README, "
                     "\"The shipped model\"); 1: one scale.")]
Face = Annotated[int, typer.Option(
    "--face", min=0, help="Scale by the face: where the first parse's faces are shorter than this many model "
                          "pixels, parse again enlarged until they reach it (at most 1.5x) and average the two; "
                          "close-ups stay as they are. 0: off.")]
ZoomOpt = Annotated[bool, typer.Option(
    "--zoom", help="Person zoom: parse a crop around the people (found in the last result) with the model pixels of "
                   "the whole frame, so people far from the camera are parsed at the size the model knows; the whole "
                   "frame is searched again every 30 frames, every 10 while nobody is followed (BENCHMARKS.md, "
                   "\"Person zoom\").")]


def _on_signal(signum: int, frame: object) -> None:
    """SIGTERM, SIGINT and SIGHUP (the terminal closed, an SSH session dropped) stop a run with
    the shell's code for them (143, 130, 129): what was done is finished and kept. For SIGINT, not
    KeyboardInterrupt: typer turns that into a silent exit 130 wherever a command does not catch
    it itself (eval, quantize, bench...), and the user is told nothing."""
    raise Interrupted(128 + signum)


def _stop_signals() -> list[int]:
    """SIGTERM, and SIGHUP where the system has it, unless ignored (`nohup` ignores SIGHUP: then
    the run goes on, as asked)."""
    sigs = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    return [sig for sig in sigs if signal.getsignal(sig) is not signal.SIG_IGN]


def _print_version(value: bool) -> None:
    """`--version`: eager, so that it needs no command after it."""
    if value:
        out.print(__version__)
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Real-time human parsing into the 20 LIP classes with LIP-Net on ONNX Runtime."""
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_time=False, show_path=debug)],
        force=True,
    )
    try:
        for sig in _stop_signals():
            signal.signal(sig, _on_signal)
    except ValueError:  # not the main thread (an embedding host); keep its handlers
        pass


def _fail(exc: BaseException) -> None:
    """Print one line (a traceback with --debug) and exit with the error's code."""
    if _state["debug"]:
        err.print_exception()
    code = getattr(exc, "exit_code", 1)
    msg = str(exc) if isinstance(exc, LipParseError) else f"{type(exc).__name__}: {exc}"
    err.print(f"[bold red]error:[/] {escape(msg)}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


STILL_FACE = 40  # image's --face: full-length street photos' faces are mostly under it at 256, close-ups' not
DEFAULT_SCALE = "0.5,2"  # train's and average's --scale: AugmentConfig.scale, written for the command line


def _scale_range(text: str) -> tuple[float, float]:
    """'LO,HI' -> (LO, HI) with 0 < LO <= HI."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--scale takes LO,HI (e.g. 0.5,2), not {text!r}") from None
    if not 0 < lo <= hi:
        raise InputError(f"--scale needs 0 < LO <= HI, not {text!r}")
    return lo, hi


def _scales(text: str) -> tuple[float, ...]:
    """'1.125,1.375' -> (1.125, 1.375); '' or '1' -> () (one scale)."""
    try:
        scales = tuple(float(v) for v in text.split(",")) if text.strip() else ()
    except ValueError:
        raise InputError(f"--scales takes numbers separated by commas (e.g. 1.125,1.375), not {text!r}") from None
    return () if scales == (1.0,) else scales


def _clock_option(text: str | None, flag: str = "--start") -> float:
    """`video --start` (or `--end`): seconds from '90', '1:30', '1:02:03.5'; 0 where not given."""
    from .sources import parse_clock

    if text is None:
        return 0.0
    try:
        return parse_clock(text)
    except ValueError:
        raise InputError(f"{flag} takes seconds or [H:]M:SS (e.g. 90 or 1:30), not {text!r}") from None


def _resolution(text: str | None) -> tuple[int, int] | None:
    """'1280x720' -> (1280, 720); None -> None."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--resolution takes WIDTHxHEIGHT (e.g. 1280x720), not {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise InputError(f"--resolution needs a width and height from 16 to 8192, not {text!r}")
    return w, h


def _engine(weights: Optional[Path], provider: str, size: int, threads: int = 0, flip: Optional[bool] = False,
            int8: Optional[bool] = None, spinning: bool = True, scales: tuple[float, ...] = (), face: int = 0):
    """The engine for the model commands. int8 None: the app's default weights for where it runs
    (the shipped INT8 copy on the CPU provider, the float weights on a GPU; $LIPPARSE_WEIGHTS or
    --weights: those on any provider)."""
    from .engine import Engine, EngineConfig, default_weights, int8_weights

    if int8 is not None and weights is not None:
        raise InputError(f"give --weights or --{'int8' if int8 else 'float'}, not both")
    if int8 is not None:
        weights = int8_weights() if int8 else default_weights()
    return Engine(EngineConfig(weights=weights, provider=provider, input_size=size, threads=threads, flip=flip,
                               spinning=spinning, scales=scales, face=face))  # weights None: the app's default


def _scoring_engines(weights: Optional[Path], int8: Optional[bool], against: Optional[Path], provider: str, size: int,
                     scales: tuple[float, ...] = (), face: int = 0) -> list:
    """`eval`'s engines: the model scored, then `--against`'s. Both load before any scoring, so a bad
    --against fails before the first pass; with two alive, idle threads must not spin (the one not
    scoring would slow the other)."""
    alone = against is None
    return [_engine(weights, provider, size, int8=int8, spinning=alone, scales=scales, face=face)] + \
        ([] if alone else [_engine(against, provider, size, spinning=False, scales=scales, face=face)])


def _how(engine, flip: bool, zoom: bool) -> str:
    """`eval`'s words for how the images were parsed: ', flip TTA, scales 1.125/1.375, face 40px, person zoom'."""
    return "".join(", " + w for w in ["flip TTA"] * flip + engine.rescaling + ["person zoom"] * zoom)


def _frames(n: int) -> str:
    """'1 frame', '0 frames', '30 frames'."""
    return f"{n} frame" + "s" * (n != 1)


def _summary(stats, label: str, which: str = "", to: Console | None = None) -> None:
    """The run's line: frames, time, end-to-end and model-only FPS (on `to`, stdout by default)."""
    line = (f"{label}: {which}{_frames(stats.frames_out)} in {stats.wall_s:.1f} s, end-to-end {stats.fps:.1f} FPS, "
            f"model-only {stats.model_fps:.1f} FPS ({stats.model_ms_median:.1f} ms/frame)")
    if stats.dropped:
        line += f", {stats.dropped} stale frame{'s' * (stats.dropped != 1)} dropped"
    (to or out).print(line, highlight=False, soft_wrap=True)


def _video_jobs(inputs: list[Path], out_path: Optional[Path], masks: Optional[Path],
                force: bool) -> list[tuple[Path, Optional[Path], Optional[Path]]]:
    """Each video the inputs name (files, folders, patterns) with its output and masks folder,
    checked before anything is parsed. `--out` a folder: FOLDER/<input's name>.mp4; several
    videos (or a folder's, a pattern's) need one (made where missing), and their frame masks go to
    a folder each, MASKS/<input's name>/."""
    from .fetch import is_pipe, same_stems, stem_of
    from .sinks import MP4_SUFFIXES, check_output, clear_frame_masks, output_folder, output_name
    from .sources import video_files

    given = inputs
    inputs = video_files(given)
    several = len(inputs) > 1 or any(p.is_dir() or p not in inputs for p in given)  # a folder, a pattern: a batch
    if several and out_path is not None and is_pipe(out_path):
        raise OutputError(f"cannot write {len(inputs)} videos to {output_name(out_path)}: give --out a folder")
    if several and (out_path is not None or masks is not None):
        _refuse_same_names(same_stems(inputs), "videos", str)
    if several and out_path is not None and not out_path.is_dir():
        if out_path.suffix.lower() in MP4_SUFFIXES or out_path.exists():
            raise OutputError(f"cannot write {len(inputs)} videos to '{out_path}': give --out a folder")
        output_folder(out_path, "videos")
    jobs = []
    for path in inputs:
        stem = stem_of(path)  # '-': stdin
        out = out_path / f"{stem}.mp4" if out_path is not None and out_path.is_dir() else out_path
        frame_masks = masks / stem if several and masks is not None else masks
        if out is not None:
            check_output(out, force, tuple(inputs))
        if frame_masks is not None:
            clear_frame_masks(frame_masks, force)
        jobs.append((path, out, frame_masks))
    return jobs


def _refuse_same_names(groups: list[list[Path]], what: str, shown: Callable[[Path], str]) -> None:
    """InputError for the first group of inputs whose outputs would have one name."""
    from .fetch import stem_of

    if groups:
        group = groups[0]
        raise InputError(f"{len(group)} {what} share the name '{stem_of(group[0])}' "
                         f"({', '.join(map(shown, group))}): their outputs would overwrite each other")


@app.command()
def video(
    inputs: list[Path] = typer.Argument(..., readable=False, show_default=False,
                                        help="Video files (anything FFmpeg reads), folders of videos, or patterns "
                                             "such as 'clips/*.mp4' ('-': standard input, parsed as it comes; "
                                             "an http(s) URL: parsed as it downloads); "
                                             "several are parsed one after another, the model loaded once, and "
                                             "--out is then a folder."),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Output MP4 (H.264; the input's sound, every track, its text subtitles, and its date and place tags kept), or a folder: FOLDER/<input's name>.mp4 (made for several inputs), or '-': standard output, a fragment per frame (`| ffplay -`; every line then goes to stderr)."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Also write one index PNG of LIP ids per frame here (for several inputs, in a folder for each: MASKS/<input's name>/)."),
    show: bool = typer.Option(False, "--show", help="Also show the result live in a window (q or Esc stops the run; what was parsed is kept)."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output, and an earlier run's frame masks in --masks."),
    weights: Weights = None,
    int8: Int8 = None,
    size: Size = 0,
    flip: Flip = False,
    zoom: ZoomOpt = False,
    provider: Provider = "auto",
    alpha: Alpha = 0.5,
    preset: str = typer.Option("superfast", "--preset", help="x264 preset: ultrafast..veryslow (slower = smaller file)."),
    streams: int = typer.Option(0, "--streams", min=0, help="Frames parsed at once, one per core by default (0)."),
    start: Optional[str] = typer.Option(None, "--start", help="Begin this far into each video: seconds or [H:]M:SS (e.g. 1:30); its sound and subtitles begin there too."),
    end: Optional[str] = typer.Option(None, "--end", help="Stop this far into each video (seconds or [H:]M:SS; with --start, the scene between them); its sound and subtitles end there too."),
    max_frames: int = typer.Option(0, "--max-frames", min=0, help="Parse only the first this many frames of each video (from --start), its sound and subtitles cut with them (a preview; 0 = every frame)."),
) -> None:
    """Parse every frame of a video, or of several, and write an overlay video (and/or masks)."""
    from .engine import plan_streams
    from .fetch import PIPE, copy_error
    from .sinks import X264_PRESETS, Window, stdout_kept
    from .sources import clock

    engine = window = None
    unreadable: list[str] = []
    damaged_any = False
    frames_total, wall_total, parsed = 0, 0.0, 0
    try:
        if out_path is None and masks is None and not show:
            raise InputError("nothing to do: give --out FILE, --masks DIR or --show")
        if preset not in X264_PRESETS:
            raise InputError(f"unknown preset '{preset}': use one of {', '.join(X264_PRESETS)}")
        start_s = _clock_option(start)
        end_s = None if end is None else _clock_option(end, "--end")
        if end_s is not None and end_s <= start_s:
            raise InputError(f"--end ({clock(end_s)}) must come after --start ({clock(start_s)})")
        jobs = _video_jobs(inputs, out_path, masks, force)
        with ExitStack() as run_stack, _between_videos(len(jobs), lambda: parsed):
            # `--out -`: standard output kept for the video from here on, every line sent to stderr
            fd = run_stack.enter_context(stdout_kept()) if str(out_path) == PIPE else None
            for k, (input, out_file, frame_masks) in enumerate(jobs):
                with ExitStack() as stack:
                    try:
                        path, src = _opened(stack, input, start_s, end_s)
                    except InputError as exc:
                        if len(jobs) == 1:
                            raise
                        unreadable.append(str(exc))  # the others are parsed; the exit code says it at the end
                        err.print(f"warning: {exc}; skipped", highlight=False, soft_wrap=True)
                        continue
                    if engine is None:  # loaded once, after the first input proved readable
                        streams, threads = plan_streams(streams)
                        engine = _engine(weights, provider, size, threads, flip, int8)
                    if show and window is None:
                        window = run_stack.enter_context(Window())
                    title = "parsing" if len(jobs) == 1 else f"parsing {k + 1}/{len(jobs)}"
                    stats, cut = _parse_video(stack, src, input, path, out_file, frame_masks, engine, window, title,
                                              alpha=alpha, preset=preset, streams=streams, zoom=zoom,
                                              max_frames=max_frames, fd=fd)
                    broke = copy_error(path)  # a download cut off, a full disk: after what came was parsed
                parsed += 1
                frames_total += stats.frames_out
                wall_total += stats.wall_s
                left = len(jobs) - k - 1
                damaged_any |= _video_outcome(stats, src, input, out_file, window, left, cut, broke)
    except LipParseError as exc:
        _fail(exc)
    if len(jobs) > 1:
        where = f", written to {out_path}" if out_path is not None else ""
        out.print(f"{parsed} of {len(jobs)} videos parsed: {_frames(frames_total)} in {wall_total:.1f} s{where}",
                  highlight=False, soft_wrap=True)
    if unreadable:
        err.print(f"warning: {len(unreadable)} of {len(jobs)} videos could not be read (listed above)", highlight=False)
    if damaged_any or unreadable:
        raise typer.Exit(2)


def _parse_video(stack: ExitStack, src, input: Path, path: Path, out_file: Optional[Path], frame_masks: Optional[Path],
                 engine, window, title: str, *, alpha: float, preset: str, streams: int, zoom: bool,
                 max_frames: int, fd: Optional[int] = None) -> tuple:
    """One video of `video`: its writers (on `stack`), a status line, the run with its progress.
    `path` holds the video (a pipe's copy, where `input` is a pipe); `fd`: the output goes there
    (standard output's copy). Return the run's stats and whether --max-frames or --end cut it
    short."""
    from .fetch import is_pipe, pipe_name
    from .pipeline import queue_depth, run_file, search_workers
    from .sinks import MaskWriter, VideoWriter
    from .sources import clock
    from .zoom import Zoom

    writer = None
    if out_file is not None:
        writer = stack.enter_context(VideoWriter(
            out_file, src.fps, src.width, src.height, src.time_base, preset=preset, metadata=src.metadata,
            tracks_from=path if src.has_audio or src.has_subtitles else None, start=bool(src.start), fd=fd,
            live=is_pipe(out_file)))  # a stream (`--out -`, a named pipe): its reader plays it as it comes
    mask_writer = stack.enter_context(MaskWriter(frame_masks)) if frame_masks is not None else None
    mh, mw = engine.model_shape(src.height, src.width)
    err.print(f"{pipe_name(input)}: {src.describe()} @ {float(src.fps):.2f} FPS -> model {mw}x{mh} on {engine.mode}"
              + (", person zoom" if zoom else "") + (f", from {clock(src.start)}" if src.start else "")
              + (f", to {clock(src.end)}" if src.end is not None else ""), highlight=False)
    # the search in line: no frame is late in a file, and the search frame gets the enlarged parse
    # (BENCHMARKS.md, "zoom"); its strips at once up to 1080p
    zoomer = Zoom(engine, workers=search_workers(src.width, src.height, streams)) if zoom else None
    with progress(err, TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[fps]:>6.1f} frames/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                  unit="frames", transient=False) as bar:
        expected = min(src.expected_frames, max_frames or src.expected_frames)
        task = bar.add_task(title, total=expected or max_frames or None, fps=0.0)
        t0 = time.perf_counter()

        def on_frame(n: int) -> None:
            dt = time.perf_counter() - t0
            bar.update(task, completed=n, fps=n / dt if dt > 0 else 0.0)

        try:
            stats = run_file(src, engine, writer, mask_writer, window, alpha, on_frame,
                             depth=queue_depth(src.width, src.height), streams=streams, zoom=zoomer,
                             max_frames=max_frames)
        except ModelError as exc:  # what was written is kept (the writer closes on the way out)
            kept = f"; {_frames(writer.frames)} written to {writer.name}" if writer is not None else ""
            raise ModelError(f"{exc}{kept}") from exc
        bar.update(task, total=stats.frames_out)
    cut = bool(max_frames) and stats.frames_in == max_frames or src.cut  # a preview, --end: what follows not read
    if writer is not None and (stats.interrupted or stats.stopped or cut):
        writer.stop_sound_with_picture()  # not the rest of the input's sound after the last frame
    return stats, cut


def _opened(stack: ExitStack, input: Path, start: float, end: Optional[float]) -> tuple:
    """`video`'s input opened on `stack`: (the file that holds it, its `VideoFile`). A pipe's
    stream or a download is copied into a temporary file and parsed as it comes (`fetch.spooled`,
    followed); a line says so, and a byte count runs while the video opens (an MP4 whose index
    comes last, as yt-dlp sends it, opens only once it is all in)."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from .fetch import copied_first, given_as, interruption, pipe_name, spooled, web_url
    from .sources import VideoFile

    if not copied_first(input):
        return input, stack.enter_context(VideoFile(input, shown=given_as(input), start=start, end=end))
    url = web_url(input)
    err.print(f"downloading {url}" if url else f"reading {pipe_name(input)} (a pipe) as it comes", highlight=False,
              soft_wrap=True)
    with progress(err, TextColumn("[progress.description]{task.description}"), DownloadColumn(),
                  TransferSpeedColumn(), unit="bytes") as bar:
        task = bar.add_task(f"{'downloading' if url else 'reading'} {url or pipe_name(input)}", total=None)
        counting = threading.Event()  # the count stops with the bar: the parse's own progress follows
        counting.set()
        path = stack.enter_context(spooled(input, lambda n: counting.is_set() and bar.update(task, completed=n),
                                           follow=True))
        try:
            return path, stack.enter_context(VideoFile(path, shown=given_as(input), start=start, end=end))
        finally:
            counting.clear()
            stopped = interruption(path)  # Ctrl-C or SIGTERM while FFmpeg waited for the stream
            if stopped is not None:
                raise stopped


@contextmanager
def _between_videos(total: int, parsed: Callable[[], int]) -> Iterator[None]:
    """Ctrl-C or SIGTERM between two of several videos (opening one, loading the model) stops the
    rest, and says how many were parsed; within a video the run handles it itself."""
    try:
        yield
    except (KeyboardInterrupt, Interrupted) as exc:
        if total == 1:
            raise
        err.print(f"interrupted: {parsed()} of {total} videos parsed", highlight=False)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None


def _video_outcome(stats, src, input: Path, out_path: Optional[Path], window, left: int, cut: bool = False,
                   broke: Optional[LipParseError] = None) -> bool:
    """Say how one video's run ended: its summary (`cut`: the first frames only, --max-frames), a
    damaged file's warning (`broke`: the input's copy ended short, a download cut off), an
    interruption or a stop in the window (with the inputs `left` not parsed), exiting where the
    run ends here. Return whether the file was damaged."""
    from .fetch import pipe_name
    from .sinks import output_name

    _summary(stats, pipe_name(input), "the first " if cut and not src.cut else "")  # --max-frames, not --end
    damaged = stats.source_error
    if not (damaged or broke) and not (stats.interrupted or stats.stopped or cut) and \
            src.declared_frames > stats.frames_out:
        damaged = f"only {stats.frames_out} of the {src.declared_frames} frames its header announces could be decoded"
    if broke is not None and not stats.interrupted:
        err.print(f"warning: {broke}; {_frames(stats.frames_out)} written", highlight=False, soft_wrap=True)
    elif damaged:
        err.print(f"warning: {input}: {damaged} (truncated or damaged file); {_frames(stats.frames_out)} written",
                  highlight=False)
    rest = f"; {left} more video{'s' * (left != 1)} not parsed" if left else ""
    if stats.interrupted:
        to = f" to {output_name(out_path)}" if out_path else ""
        err.print(f"interrupted: {_frames(stats.frames_out)} written{to}{rest}", highlight=False, soft_wrap=True)
        raise typer.Exit(stats.interrupted)
    if stats.stopped:  # q, Esc or the window closed: the user's choice, so no error, but said
        of = f" of {src.declared_frames}" if src.declared_frames > stats.frames_out else ""
        parsed = f"{stats.frames_out}{of} frames" if of else _frames(stats.frames_out)
        kept = f"{parsed} parsed" + (f" and written to {output_name(out_path)}" if out_path else "") + rest
        if getattr(window, "lost", False):  # not the user's choice: an error, with what was kept
            err.print(f"error: the display was lost (its X connection broke): {kept}", highlight=False, soft_wrap=True)
            raise typer.Exit(DisplayError.exit_code)
        err.print(f"stopped in the window: {kept}", highlight=False, soft_wrap=True)
        raise typer.Exit(2 if damaged else 0)
    return bool(damaged or broke)


@app.command()
def webcam(
    camera: str = typer.Option("0", "--camera", "-c", help="Camera index, device path, stream URL, a live stream piped in ('-' or a named pipe: `rpicam-vid -t 0 --inline -o - | lipparse-rt webcam --camera -`), or a video file played at its own rate."),
    mirror: bool = typer.Option(True, "--mirror/--no-mirror", help="Mirror the display (the model always sees the camera's own frame)."),
    show: bool = typer.Option(True, "--show/--no-show", help="Open a window (q or Esc quits)."),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Also record what is shown to this MP4 (or, in "
                                            "an existing folder, to lipparse-<date>-<time>.mp4; '-': to standard "
                                            "output, a fragment per frame, for `| ffplay -`)."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing recording."),
    weights: Weights = None,
    int8: Int8 = None,
    size: Size = 0,
    flip: Flip = False,
    zoom: ZoomOpt = False,
    provider: Provider = "auto",
    alpha: Alpha = 0.5,
    max_frames: int = typer.Option(0, "--max-frames", help="Stop after this many frames (0 = until q or the source ends)."),
    snapshots: Optional[Path] = typer.Option(None, "--snapshots", show_default=False,
                                             help="Where the s key saves the picture shown (without the HUD) and its "
                                                  "class map. Default: the current folder."),
    resolution: Optional[str] = typer.Option(None, "--resolution", show_default=False,
                                             help="Ask the camera for this frame size, WIDTHxHEIGHT (e.g. 1280x720); "
                                                  "it picks its nearest mode, and the status line says what it gives. "
                                                  "Default: the camera's own."),
) -> None:
    """Parse a live camera: overlay, legend and a HUD with FPS and latency.

    Keys in the window: q or Esc quit, s snapshot, + and - overlay opacity;
    on and off: f flip, z person zoom, h HUD, m mirror.
    """
    from fractions import Fraction

    from .fetch import PIPE, is_pipe
    from .pipeline import LiveView, run_live
    from .sinks import Snapshots, VideoWriter, Window, check_output, has_display, stdout_kept
    from .sources import Camera
    from .zoom import Zoom

    try:
        if show and not has_display():
            raise DisplayError("cannot open a window: no display (set DISPLAY, or use --no-show with --out FILE)")
        if not show and out_path is None:
            raise InputError("nothing to do: with --no-show give --out FILE")
        wanted = _resolution(resolution)
        if out_path is not None and out_path.is_dir():  # a folder: a recording named by when it starts
            out_path = out_path / f"lipparse-{time.strftime('%Y%m%d-%H%M%S')}.mp4"
        if out_path is not None:
            check_output(out_path, force)
        shots = Snapshots(snapshots or Path(".")) if show else None
        if shots is not None and snapshots is not None:
            shots.check()  # a folder named is checked before anything starts; the default one at the first s
        with ExitStack() as stack:
            # `--out -`: standard output kept for the recording from here on, every line sent to stderr
            fd = stack.enter_context(stdout_kept()) if str(out_path) == PIPE else None
            engine = _engine(weights, provider, size, flip=flip, int8=int8)
            cam = stack.enter_context(Camera(camera, size=wanted))
            if wanted and (cam.is_file or cam.network or cam.pipe):
                comes = "plays" if cam.recording else "comes"
                err.print(f"warning: --resolution is for cameras: '{camera}' {comes} at its own size", highlight=False,
                          soft_wrap=True)
            elif wanted and cam.width and (cam.width, cam.height) != wanted:
                err.print(f"warning: camera {camera} gives {cam.width}x{cam.height}, not the {wanted[0]}x{wanted[1]} "
                          "asked for (its nearest mode)", highlight=False, soft_wrap=True)
            window = stack.enter_context(Window(f"lipparse-rt   keys: {LiveView.KEYS}")) if show else None
            writer = None
            if out_path is not None:
                frame = None
                while frame is None:  # the recording's size is the camera's (its first frame, then recorded)
                    try:
                        frame = cam.peek(timeout=1.0)
                    except StopIteration:
                        raise InputError(f"camera '{camera}' gave no frames") from None
                h, w = frame.image.shape[:2]
                writer = stack.enter_context(VideoWriter(out_path, Fraction(round(cam.fps * 1000), 1000), w, h,
                                                         time_base=Fraction(1, 1000), fd=fd,
                                                         live=is_pipe(out_path)))
            # a live stream's rate is FFmpeg's guess (25 for MJPEG over HTTP): not said; the HUD measures it
            rate = "" if (cam.network or cam.pipe) and not cam.recording else f", {cam.fps:g} FPS"
            shape = f" ({cam.width}x{cam.height}{rate})" if cam.width else ""
            err.print(f"camera {camera}{shape} on {engine.mode}, model long side {engine.input_size}"
                      + (", person zoom" if zoom else ""), highlight=False)
            if show:
                err.print(f"keys: {LiveView.KEYS}", highlight=False)
            stats = run_live(cam, engine, window, writer, LiveView(alpha, mirror), max_frames=max_frames,
                             zoom=Zoom(engine, background=True), zoom_on=zoom, snapshots=shots)
    except LipParseError as exc:
        _fail(exc)
    said = err if str(out_path) == PIPE else out  # standard output carried the recording
    _summary(stats, f"camera {camera}", to=said)
    p50, p95 = stats.latency(50), stats.latency(95)
    if p50 is not None:
        said.print(f"capture-to-display latency p50 {p50:.1f} ms, p95 {p95:.1f} ms", highlight=False)
    if stats.interrupted:
        raise typer.Exit(stats.interrupted)
    if getattr(window, "lost", False):
        kept = f": {_frames(writer.frames)} recorded to {writer.name}" if writer is not None else ""
        err.print(f"error: the display was lost (its X connection broke){kept}", highlight=False, soft_wrap=True)
        raise typer.Exit(DisplayError.exit_code)


@app.command()
def image(
    paths: list[Path] = typer.Argument(..., readable=False, show_default=False,
                                       help="Images, folders of images, or patterns such as 'photos/*.jpg' ('-': standard input; an http(s) URL: downloaded first)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Write overlays here (PNG, named by the input's stem; one of that name is replaced, an input image never); '-': one image's to standard output."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Write masks here: one 8-bit PNG of LIP ids per image, full size, named by stem; '-': one image's to standard output."),
    weights: Weights = None,
    int8: Int8 = None,
    size: Size = 0,
    flip: Optional[bool] = typer.Option(
        None, "--flip/--no-flip", show_default=False,
        help="Parse each image and its mirror and average them (flip test-time augmentation). Default: on, "
             "where the weights allow it: a still is not a stream (CCP val 45.0 mIoU against 43.1, fewer wrong "
             "sides; README, \"The shipped model\"). --no-flip: one pass, as video parses."),
    scales: Scales = "1",
    face: Face = STILL_FACE,
    zoom: ZoomOpt = False,
    provider: Provider = "auto",
    alpha: Alpha = 0.5,
) -> None:
    """Parse images: overlays and/or masks (masks are what accuracy is scored on)."""
    import cv2

    from .pipeline import render_frame
    from .fetch import PIPE, copied_first, stem_of
    from .sinks import MaskWriter, check_image_outputs, output_folder, stdout_kept, write_png
    from .sources import Images
    from .zoom import Zoom

    try:
        if out_dir is None and masks is None:
            raise InputError("nothing to do: give --out DIR and/or --masks DIR")
        unreadable: list[str] = []

        def skip(exc: InputError) -> None:
            unreadable.append(str(exc))
            err.print(f"warning: {exc}; skipped", highlight=False, soft_wrap=True)

        one_file = len(paths) == 1 and (paths[0].is_file() or copied_first(paths[0]))
        images = Images(paths, on_unreadable=None if one_file else skip)  # one file: an error
        _refuse_same_names(images.same_names(), "images", lambda p: p.name)
        check_image_outputs(images.files, out_dir, masks)
        piped = PIPE in (str(out_dir), str(masks))  # one image's PNG to standard output
        mask_writer = MaskWriter(masks) if masks is not None and str(masks) != PIPE else None
        if out_dir is not None and str(out_dir) != PIPE:
            output_folder(out_dir, "overlays")
        where = "".join(f", {what} {'to standard output' if str(at) == PIPE else f'in {at}'}"
                        for what, at in (("masks", masks), ("overlays", out_dir)) if at is not None)
        with ExitStack() as stack:
            fd = stack.enter_context(stdout_kept()) if piped else None  # every line to stderr meanwhile
            engine = _engine(weights, provider, size, flip=flip, int8=int8, scales=_scales(scales), face=face)
            zoomer = Zoom(engine) if zoom else None
            n = 0
            try:
                with progress(err, TextColumn("parsing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                              unit="images") as bar:
                    task = bar.add_task("parsing", total=len(images))
                    for img_path, bgr in images:
                        ids = zoomer.run_still(bgr) if zoomer else engine.run(bgr)
                        if mask_writer is not None:
                            mask_writer.write(ids, stem_of(img_path))
                        elif masks is not None:
                            write_png(fd, ids, "mask")
                        if out_dir is not None and str(out_dir) == PIPE:
                            write_png(fd, render_frame(bgr, ids, alpha), "overlay")
                        elif out_dir is not None:
                            target = out_dir / f"{stem_of(img_path)}.png"
                            if not cv2.imwrite(str(target), render_frame(bgr, ids, alpha)):
                                raise OutputError(f"cannot write overlay '{target}'")
                        n += 1
                        bar.advance(task)
            except (KeyboardInterrupt, Interrupted) as exc:  # Ctrl-C, SIGTERM: what is done is kept, and said
                err.print(f"interrupted: {n} of {len(images)} image(s) parsed{where}", highlight=False,
                          soft_wrap=True)
                raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    except LipParseError as exc:
        _fail(exc)
    (err if piped else out).print(f"{n} image(s) parsed on {engine.mode}{where}", highlight=False)
    if unreadable:
        err.print(f"warning: {len(unreadable)} of {len(images)} image(s) could not be read (listed above)",
                  highlight=False)
        raise typer.Exit(2)


@app.command()
def info(
    weights: Weights = None,
    provider: Provider = "auto",
    int8: Int8 = None,
) -> None:
    """Print version, weights and their metadata, ONNX Runtime and its providers, and what reads video."""
    import json

    import av
    import cv2
    import onnxruntime as ort

    from .devices import cameras_here
    from .sources import heif_reader

    try:
        engine = _engine(weights, provider, 0, int8=int8)
    except LipParseError as exc:
        _fail(exc)
    meta = engine.meta
    out.print(f"lipparse-rt {__version__}")
    out.print(f"weights: {engine.weights}")
    out.print(f"  parameters: {int(meta.get('num_params', 0)):,}")
    out.print(f"  input size (long side): {meta.get('input_size')}")
    for key in ("training_data", "iterations", "trained_at", "miou"):
        if key in meta:
            out.print(f"  {key.replace('_', ' ')}: {meta[key]}")
    out.print(f"  classes: {len(json.loads(meta.get('names', '[]')))}")
    out.print(f"onnxruntime {ort.__version__}; available providers: {', '.join(ort.get_available_providers())}")
    fused = f" ({engine.fused} SE gates kept in ONNX Runtime's blocked layout)" if engine.fused else ""
    out.print(f"provider in use: {engine.provider}{fused}")
    out.print(f"HEIC photos: {heif_reader() or 'not readable (pip install pillow-heif)'}")
    # what decodes and encodes video here: a file that plays elsewhere and not here depends on it
    ffmpeg = getattr(av, "ffmpeg_version_info", "?")
    out.print(f"video: PyAV {av.__version__} (FFmpeg {ffmpeg}), OpenCV {cv2.__version__}")
    if sys.platform.startswith("linux"):  # which index `webcam --camera` wants: a UVC camera has two nodes
        out.print("cameras (webcam --camera N): " + cameras_here().replace("cameras here: ", ""))


@app.command()
def train(
    data: list[str] = typer.Option(..., "--data", "-d", help="ROOT[:split=S][:labels=L][:ratio=R][:repeat=T][:white][:anyshoe] (repeatable). repeat=T draws label maps with classes in fewer than a share T of the maps more often (LVIS repeat-factor sampling); anyshoe trains shoes with the partial label (either side) instead of their sides."),
    out_dir: Path = typer.Option(Path("runs/lipnet"), "--out", "-o", help="Run folder: last.pt and log.csv."),
    iters: int = typer.Option(20000, "--iters", help="Total iterations (the poly schedule's length)."),
    size: int = typer.Option(256, "--size", help="Training crop size (square)."),
    batch: int = typer.Option(4, "--batch", help="Mini-batch size."),
    lr: float = typer.Option(0.005, "--lr", help="Adam base learning rate."),
    ckpt_every: int = typer.Option(200, "--ckpt-every", help="Checkpoint every N iterations."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
    val: Optional[str] = typer.Option(None, "--val", help="Validation set, same syntax as --data, scored with the ccp protocol."),
    val_every: int = typer.Option(1000, "--val-every", help="Validate every N iterations (at a checkpoint)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from these weights (a checkpoint), e.g. for a second schedule."),
    lovasz: float = typer.Option(0.0, "--lovasz", min=0.0, help="Add the Lovasz-softmax loss (a surrogate of 1 - IoU per class) with this weight; 0: cross-entropy only."),
    scale: str = typer.Option(DEFAULT_SCALE, "--scale", help="Random scale range LO,HI (log-uniform), relative to the image with its long side at --size. Crops of large scales hold more labelled pixels, so 0.5,2 trains on people about 1.2x larger than the app sees; 0.5,1.5 centres the pixels on the app's scale; the shipped model's last two schedules used 0.7,1.2 (one run 0.8,1.25). The BatchNorm re-estimation at the end draws at the same range."),
    grey: float = typer.Option(0.0, "--grey", min=0.0, max=1.0, help="Share of training samples turned to grey (low-light webcams)."),
    paste: float = typer.Option(0.0, "--paste", min=0.0, max=1.0, help="Share of training samples given a hat, sunglasses, scarf, jumpsuit or socks cut from a street photo and placed by body part (copy-paste)."),
    empty: float = typer.Option(0.0, "--empty", min=0.0, max=1.0, help="Share of training samples with the person taken out (filled in from the surroundings, its pixels ignored) and the rest labelled background: scenes with nobody in them, so empty rooms stay background."),
    recolour: float = typer.Option(0.0, "--recolour", min=0.0, max=1.0, help="Share of training samples whose garments get new colours (hue turned, lightness inverted or darkened; labels kept), so dark, printed and vivid clothes are not left background."),
    distill: float = typer.Option(0.0, "--distill", min=0.0, help="Add a KL term with this weight pulling the model towards a frozen teacher's flip-averaged class probabilities (self-distillation of flip TTA); needs --teacher."),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="Checkpoint of the frozen teacher for --distill (e.g. weights/lipnet.pt)."),
    teacher_scale: float = typer.Option(1.0, "--teacher-scale", min=0.5, max=2.0, help="With --distill: the teacher sees each crop and its mirror enlarged by this factor (1.25: a 256 crop at 320, what --flip --size 320 gives at inference) and its probabilities are brought back to the crop's size."),
    device: str = typer.Option("cpu", "--device", help="torch device to train on: cpu or cuda."),
    workers: int = typer.Option(0, "--workers", min=0, help="Processes that draw and augment samples (0: in the training process; a GPU needs several)."),
    snapshot_every: int = typer.Option(0, "--snapshot-every", min=0, help="Also keep the model weights every N iterations (OUT/snap_NNNNNN.pt, for `lipparse-rt average`); 0: off."),
    decoder_stride: int = typer.Option(4, "--decoder-stride", help="Where the decoder joins S3: 4 (before its pooling, the shipped model) or 8 (after it: coarser edges, ~10% less CPU time). --init weights of either fit; --resume keeps the run's own."),
    bn_batches: int = typer.Option(100, "--bn-batches", min=0, help="When the schedule ends, re-estimate every BatchNorm's statistics on this many batches of 16 training crops (the running averages of small batches are noisy); 0: off."),
) -> None:
    """Train LIP-Net on LIP-format folders (needs torch: the "train" extra)."""
    try:
        from .model import DECODER_STRIDES, LipNetConfig
        from .train import DatasetSpec, TrainConfig, train as run_train
    except ImportError as exc:
        _fail(InputError(f"training needs torch: pip install 'lipparse-rt[train]' ({exc})"))
    if decoder_stride not in DECODER_STRIDES:
        _fail(InputError(f"--decoder-stride must be {' or '.join(map(str, DECODER_STRIDES))}, not {decoder_stride}"))
    try:
        scale_range = _scale_range(scale)
        cfg = TrainConfig(datasets=tuple(DatasetSpec.parse(d) for d in data), out=str(out_dir), iters=iters,
                          batch=batch, lr=lr, size=size, seed=seed, ckpt_every=ckpt_every, threads=threads,
                          val=DatasetSpec.parse(val) if val else None, val_every=val_every, lovasz=lovasz,
                          grey=grey, scale=scale_range, paste=paste, empty=empty, recolour=recolour, distill=distill, teacher=str(teacher or ""), teacher_scale=teacher_scale, device=device,
                          workers=workers, snapshot_every=snapshot_every, bn_batches=bn_batches,
                          model=LipNetConfig(decoder_stride=decoder_stride))
        import threading

        stop = threading.Event()  # Ctrl-C, SIGTERM, SIGHUP: finish the step, write a checkpoint, end
        for sig in [signal.SIGINT, *_stop_signals()]:
            signal.signal(sig, lambda *_: stop.set())
        path = run_train(cfg, resume=resume, init=init, should_stop=stop.is_set)
    except LipParseError as exc:
        _fail(exc)
    out.print(f"checkpoint: {path}")
    if stop.is_set():
        err.print(f"stopped: continue with the same command and --resume (from {path})")
        raise typer.Exit(130)


@app.command()
def average(
    checkpoints: list[Path] = typer.Argument(..., help="Checkpoints of one architecture (runs from one start, or one run's snapshots)."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Checkpoint to write (then `lipparse-rt export` it)."),
    bn_data: list[str] = typer.Option([], "--bn-data", help="Training data to re-estimate BatchNorm statistics on, same syntax as train's --data (repeatable); none: the statistics are averaged too."),
    bn_batches: int = typer.Option(100, "--bn-batches", min=1, help="Batches for the BatchNorm statistics."),
    batch: int = typer.Option(16, "--batch", min=1, help="Samples per BatchNorm batch."),
    size: int = typer.Option(256, "--size", help="Crop size of those samples (square)."),
    scale: str = typer.Option(DEFAULT_SCALE, "--scale", help="Random scale range LO,HI of those samples, as train's --scale (use the range the runs trained at)."),
    empty: float = typer.Option(0.0, "--empty", min=0.0, max=1.0, help="Share of those samples with the person taken out, as train's --empty (use the share the runs trained at)."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads."),
) -> None:
    """Average the weights of several checkpoints (a "model soup"), re-estimating BatchNorm (needs torch)."""
    from .sinks import check_writable

    try:
        from .train import DatasetSpec, average_checkpoints
    except ImportError as exc:
        _fail(InputError(f"averaging needs torch: pip install 'lipparse-rt[train]' ({exc})"))
    try:
        scale_range = _scale_range(scale)
        for path in checkpoints:
            if not path.is_file():
                raise InputError(f"cannot read checkpoint '{path}': no such file")
        check_writable(out_path)
        specs = tuple(DatasetSpec.parse(d) for d in bn_data)
        with err.status(f"averaging {len(checkpoints)} checkpoints" + (f", BatchNorm over {bn_batches} batches" if specs else "")):
            path = average_checkpoints(checkpoints, out_path, specs, bn_batches, batch, size, seed, threads,
                                       scale_range, empty)
    except LipParseError as exc:
        _fail(exc)
    what = f"the mean of {len(checkpoints)} checkpoints" if len(checkpoints) > 1 else "one checkpoint"
    out.print(f"wrote {path} ({what}{', BatchNorm re-estimated' if specs else ''})")


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="Training checkpoint (last.pt)."),
    out_path: Path = typer.Option(Path("weights/lipnet.onnx"), "--out", "-o", help="ONNX file to write."),
    size: int = typer.Option(256, "--size", help="Default input long side stored in the model."),
    data_note: str = typer.Option("", "--data-note", help="Training data description stored in the metadata."),
) -> None:
    """Export a checkpoint to ONNX: uint8 BGR in, uint8 LIP ids out (needs torch)."""
    from .sinks import check_writable

    try:
        from .export import export_onnx, iterations, load_checkpoint
    except ImportError as exc:
        _fail(InputError(f"export needs torch and onnx: pip install 'lipparse-rt[train]' ({exc})"))
    try:
        if not checkpoint.is_file():
            raise InputError(f"cannot read checkpoint '{checkpoint}': no such file")
        check_writable(out_path)
        net, ckpt = load_checkpoint(checkpoint)
        meta = {"iterations": str(iterations(ckpt))}
        if data_note:
            meta["training_data"] = data_note
        export_onnx(net, out_path, size, meta)
    except LipParseError as exc:
        _fail(exc)
    out.print(f"wrote {out_path} ({net.num_params():,} parameters)")


@app.command()
def quantize(
    model: Path = typer.Argument(..., help="Float ONNX weights to quantise."),
    out_path: Path = typer.Option(..., "--out", "-o", help="INT8 ONNX file to write."),
    calib: list[str] = typer.Option(..., "--calib", help="Folder of calibration images, or ROOT:split=S for a LIP-format folder's split (repeatable)."),
    count: int = typer.Option(128, "--count", help="Calibration images to use."),
    size: Size = 256,
    float_stages: int = typer.Option(3, "--float-stages", min=0, max=6,
                                     help="Encoder stages left float (the full-resolution ones are faster in float)."),
    percentile: float = typer.Option(99.999, "--percentile", min=90.0, max=100.0,
                                     help="Each activation's range: this percentile of its calibration histogram "
                                          "(100: min/max; BENCHMARKS.md, \"INT8\")."),
) -> None:
    """INT8 static quantisation for the CPU, calibrated on real photos (no torch needed)."""
    from .quantize import calibration_images, check_weights, quantize as run_quantize
    from .sinks import check_writable

    try:
        check_weights(model)
        check_writable(out_path)
        images = calibration_images(calib, count)
        with progress(err, TextColumn("calibrating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      unit="images") as bar:
            task = bar.add_task("calibrating", total=len(images))
            run_quantize(model, out_path, images, size, float_stages,
                         on_image=lambda i, n: bar.update(task, completed=i), percentile=percentile)
    except LipParseError as exc:
        _fail(exc)
    out.print(f"wrote {out_path}")


@app.command("eval")
def eval_cmd(
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Labelled folder (images + index PNGs)."),
    split: Optional[str] = typer.Option(None, "--split", help="Restrict to the stems in DATA/SPLIT.txt."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Label sub-folder (default: found)."),
    protocol: str = typer.Option("lip", "--protocol", help="lip (20 classes) or ccp (merged skin/shoe, 255 ignored)."),
    weights: Weights = None,
    int8: Int8 = None,
    size: Size = 0,
    provider: Provider = "auto",
    limit: int = typer.Option(0, "--limit", help="Score only the first N images (0 = all)."),
    flip: bool = typer.Option(False, "--flip", help="Flip test-time augmentation (mirror, swap left/right, average)."),
    scales: Scales = "1",
    face: Face = 0,
    zoom: bool = typer.Option(False, "--zoom", help="Parse each image as `image --zoom` does: searched whole, then cropped around "
                              "its people (up to twice); with --empty, the frames as `video --zoom` does; the --against model too."),
    confusion: Optional[Path] = typer.Option(None, "--confusion", help="Write the confusion matrix as a PNG here."),
    worst: int = typer.Option(0, "--worst", min=0, help="Also list the N images with the most wrong-side pixels (lip protocol)."),
    against: Optional[Path] = typer.Option(None, "--against", help="Also score these weights on the same images and "
                                           "report the difference with a 95% paired-bootstrap interval."),
    rounds: int = typer.Option(1000, "--rounds", min=100, help="Bootstrap rounds for --against."),
    empty: Optional[Path] = typer.Option(None, "--empty", help="Instead of --data: a video (or --frames of one) or a folder of "
                                         "pictures with nobody in them; reports the share of pixels given a person class."),
    frames: Optional[str] = typer.Option(None, "--frames", help="With --empty: the frame ranges that hold nobody, e.g. 0-50,210-225 "
                                         "(default: every frame; a folder's pictures count from 0 in name order)."),
) -> None:
    """Score the model on a labelled split through the app's engine: mIoU, per-class IoU, pixel accuracy.

    With --empty, score it on frames with nobody in them instead: the share of pixels it calls a person.
    """
    from .data import find_pairs
    from .evaluate import confusion_png, evaluate
    from .metrics import PROTOCOLS, markdown_table, person_scores, side_report
    from .sinks import check_writable

    if (data is None) == (empty is None):
        _fail(InputError("give --data (a labelled folder) or --empty (pictures or a video with nobody in them), one of them"))
    if empty is not None:
        given = [name for name, v in (("--split", split), ("--labels", labels), ("--protocol", protocol != "lip"),
                                      ("--limit", limit), ("--confusion", confusion), ("--worst", worst)) if v]
        if given:
            _fail(InputError(f"{', '.join(given)} go{'es' if len(given) == 1 else ''} with --data, not --empty"))
        return _eval_empty(empty, frames, weights, int8, size, provider, flip, against, zoom, scales, face)
    if frames is not None:
        _fail(InputError("--frames goes with --empty"))
    try:
        if protocol not in PROTOCOLS:
            raise InputError(f"unknown protocol '{protocol}': use lip or ccp")
        done = [0, 0]  # images scored, of how many: what an interruption says

        def score(eng, title: str):
            def on_image(i: int, n: int) -> None:
                done[:] = i, n
                bar.update(task, completed=i, total=n)

            with progress(err, TextColumn(title), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          unit="images") as bar:
                task = bar.add_task(title, total=None)
                return evaluate(eng, data, split, labels, protocol, limit, on_image=on_image, flip_tta=flip, zoom=zoom)

        find_pairs(data, split, labels=labels)  # a missing folder or split says so before any model loads
        if confusion is not None:
            check_writable(confusion)
        engine, *other = _scoring_engines(weights, int8, against, provider, size, _scales(scales), face)
        result = score(engine, "scoring")
        if confusion is not None:
            confusion_png(result.confusion, result.names, confusion)
        baseline = score(other[0], f"scoring {against.name}") if other else None
    except LipParseError as exc:
        _fail(exc)
    except (KeyboardInterrupt, Interrupted) as exc:  # Ctrl-C, SIGTERM: scores need the whole split
        err.print(f"interrupted: {done[0]} of {done[1] or '?'} images scored; no scores (they need every image)",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    out.print(f"{data} ({split or 'all'}, {result.images} image{'s' * (result.images != 1)}, protocol {protocol}, "
              f"size {engine.input_size}{_how(engine, flip, zoom)}; {engine.weights.name} on {engine.provider})",
              highlight=False)
    out.print(markdown_table(result.scores, result.names, images=result.images_per_class()), highlight=False)
    iou, recall, precision = person_scores(result.confusion)
    out.print(f"person vs background (all person classes merged): IoU {100 * iou:.1f}, recall {100 * recall:.1f}, "
              f"precision {100 * precision:.1f}", highlight=False)
    if result.side_error is not None:
        out.print(f"wrong side (arms/legs/shoes): {side_report(result.confusion)}", highlight=False)
        if worst:
            ranked, share = result.worst_sides(worst)
            listed = ", ".join(f"{stem} {wrong}/{same}" for stem, wrong, same in ranked)
            out.print(f"the {len(ranked)} images with the most wrong-side pixels hold {100 * share:.0f}% of them"
                      f" (wrong/same-part pixels): {listed}", highlight=False)
    if baseline is not None:
        _print_comparison(result, baseline, against, rounds)


def _eval_empty(source: Path, frames: Optional[str], weights: Optional[Path], int8: Optional[bool], size: int, provider: str,
                flip: bool, against: Optional[Path], zoom: bool = False, scales: str = "1", face: int = 0) -> None:
    """`eval --empty`: how much of pictures with nobody in them the model (and `against`) calls a person."""
    from .evaluate import empty_scenes, parse_ranges

    def line(result, name: str) -> str:
        top = ", ".join(f"{cls} {100 * share:.1f}%" for cls, share in result.top())
        text = f"{name}: person classes on {100 * result.share:.1f}% of pixels (0 is right)" + (f"; most: {top}" if top else "")
        if ranges and len(ranges) > 1:
            text += "; per range: " + ", ".join(f"{lo}-{hi} {100 * result.in_range(lo, hi):.1f}%" for lo, hi in ranges)
        return text

    try:
        ranges = parse_ranges(frames) if frames is not None else None
        results = []
        for engine in _scoring_engines(weights, int8, against, provider, size, _scales(scales), face):
            with progress(err, TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), unit="frames") as bar:
                task = bar.add_task("scoring", total=sum(hi - lo + 1 for lo, hi in ranges) if ranges else None)
                results.append((engine, empty_scenes(engine, source, ranges, flip_tta=flip, zoom=zoom,
                                                     on_frame=lambda i: bar.update(task, completed=i))))
    except LipParseError as exc:
        _fail(exc)
    engine, first = results[0]
    out.print(f"{source} ({first.frames} pictures with nobody in them{', ' + frames if frames else ''}, size {engine.input_size}"
              f"{_how(engine, flip, zoom)})", highlight=False)
    out.print(line(first, str(engine.weights)), highlight=False, soft_wrap=True)
    if against:
        other = results[1][1]
        out.print(line(other, str(against)), highlight=False, soft_wrap=True)
        out.print(f"difference: {100 * (first.share - other.share):+.1f} points", highlight=False)


def _print_comparison(result, baseline, against: Path, rounds: int) -> None:
    """The `eval --against` lines: each figure's difference and its paired-bootstrap interval."""
    from .metrics import miou_of, paired_bootstrap, wrong_side_of

    out.print(f"\nagainst {against} (this model minus it; 95% paired bootstrap over the {result.images} images, "
              f"{rounds} rounds):", highlight=False)
    stats = [("mIoU", miou_of, result.scores.miou, baseline.scores.miou)]
    if result.side_error is not None and baseline.side_error is not None:
        stats.append(("wrong side", wrong_side_of, result.side_error, baseline.side_error))
    for name, stat, mine, theirs in stats:
        d = paired_bootstrap(result.per_image, baseline.per_image, stat, rounds)
        out.print(f"{name}: {100 * mine:.2f} vs {100 * theirs:.2f}, difference {100 * d.diff:+.2f} points "
                  f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}]: {d.verdict}",
                  highlight=False)


@app.command()
def bench(
    section: str = typer.Argument("pipeline", help="table1, variants, profile, pipeline, sizes, zoom, latency, memory, flicker, "
                                  "providers (the engine on each provider this machine can make) or gpu (torch on a CUDA GPU)."),
    video: Optional[Path] = typer.Option(None, "--video", help="A 640x480 clip (default: ../shared/data/videos/yes.mkv)."),
    weights: Weights = None,
    size: Size = 0,
    threads: int = typer.Option(2, "--threads", help="Intra-op threads for table1 (and pipeline when set)."),
    runs: int = typer.Option(5, "--runs", help="Timed runs per model in table1 (LIP-Net gets 10x as many)."),
    write: Optional[Path] = typer.Option(None, "--write", help="Also put the table into this Markdown file (e.g. BENCHMARKS.md)."),
    provider: str = typer.Option("cpu", "--provider", help="pipeline: the provider to run it on (cpu, cuda or tensorrt); "
                                 "providers: one to time beside the CPU (default: every GPU provider listed)."),
) -> None:
    """Measure speed: print a Markdown table (see BENCHMARKS.md)."""
    import shlex

    from . import bench as b
    from .data import default_data_root
    from .engine import app_cpu_weights, default_weights, int8_weights
    from .sinks import check_writable

    data = default_data_root()
    clip = video or data / "videos" / "yes.mkv"
    street = data / "videos" / "one-by-one-person-detection.mp4"  # people far from the camera
    w = weights or default_weights()
    # what the app runs by default: the INT8 copy on the CPU, the float weights on a GPU
    app_w = weights or (app_cpu_weights() if provider == "cpu" else None) or w
    try:
        if provider not in ("cpu", "cuda", "tensorrt"):
            raise InputError(f"unknown provider '{provider}' for bench: use cpu, cuda or tensorrt")
        if write is not None:
            check_writable(write)  # before minutes of timing, not after
        if provider != "cpu" and section not in ("pipeline", "providers"):
            raise InputError(f"bench {section} runs on the CPU provider: --provider is for pipeline and providers")
        if section in ("pipeline", "sizes", "latency", "memory", "providers") and not clip.is_file():
            raise InputError(f"cannot read video '{clip}': no such file (give --video)")
        if section == "table1":
            body = b.table1(runs=runs, threads=threads)
        elif section == "variants":
            files = [(f"shipped weights, float (`{w.name}`)", w), ("shipped weights, INT8 (`--int8`: stages 3-5 and ASPP "
                                                                   "convolutions int8)", int8_weights())]
            body = b.variants(threads=threads, files=[(n, f) for n, f in files if f.is_file()])
        elif section == "profile":
            body = b.profile(w)
        elif section == "pipeline":
            body = b.pipeline(clip, app_w, size, threads=threads, provider=provider)
        elif section == "providers":
            from .bench_providers import gpu_providers, providers_table

            first = b.clip_frames(clip, 1)[1][0]
            body = providers_table(w, first, gpu_providers() if provider == "cpu" else (provider, "cpu"), runs=runs * 60)
        elif section == "sizes":
            body = b.sizes_table(app_w, clip, data / "ccp")
        elif section == "latency":
            body = b.latency(app_w, clip)
        elif section == "zoom":
            if not street.is_file():
                raise InputError(f"cannot read video '{street}': no such file")
            body = b.zoom_table(app_w, data, street, clip if clip.is_file() else None)
        elif section == "memory":
            body = b.memory(clip, app_w, zoom_video=street if street.is_file() else None)
        elif section == "flicker":
            clips = [c for c in dict.fromkeys((clip, street)) if c.is_file()]
            if not clips:
                raise InputError(f"cannot read video '{clip}': no such file (give --video)")
            runs_ = [(w.name, w, False), (f"{w.name}, --flip", w, True), (int8_weights().name, int8_weights(), False)]
            body = b.flicker([b.clip_frames(c, 120) for c in clips], runs_)
        elif section == "gpu":
            try:
                from .bench_gpu import gpu_table
            except ImportError as exc:
                raise InputError(f"bench gpu needs torch: pip install 'lipparse-rt[train]' ({exc})") from None
            pt = w.with_suffix(".pt")  # the checkpoint beside the ONNX file, if any (speed needs no weights)
            frame = b.clip_frames(clip, 1)[1][0] if clip.is_file() else None  # to compare fp16's ids with fp32's
            body = gpu_table(pt if pt.is_file() else None, runs=runs * 60, frame=frame)
        else:
            raise InputError(f"unknown section '{section}': use table1, variants, profile, pipeline, sizes, zoom, latency, "
                             "memory, flicker, providers or gpu")
    except LipParseError as exc:
        _fail(exc)
    if section in ("pipeline", "sizes", "latency", "memory", "zoom"):
        body = f"Weights `{app_w.name}` on the {'CPU' if provider == 'cpu' else provider} provider.\n\n" + body
    out.print(body, highlight=False)
    if write is not None:
        cmd = "lipparse-rt bench " + " ".join(shlex.quote(a) for a in sys.argv[2:] if a)
        name = section if provider == "cpu" or section == "providers" else f"{section}-{provider}"  # keeps the CPU's
        b.write_section(write, name, body, cmd.replace(f" --write {write}", ""))


def run() -> None:
    """Console-script entry point: anything unexpected is one line too (a traceback with --debug)."""
    limit_arenas()  # before any thread allocates a frame (see heap.py)
    before = signal.getsignal(signal.SIGINT)
    if before is signal.default_int_handler:  # not where SIGINT is ignored (a job started with `&`)
        signal.signal(signal.SIGINT, _on_signal)
    try:
        app(prog_name="lipparse-rt")  # also under `python -m lipparse_rt`
    except (KeyboardInterrupt, Interrupted) as exc:  # outside a run's own handling (a second signal in its clean-up)
        err.print("interrupted")
        sys.exit(getattr(exc, "exit_code", 130))
    except Exception as exc:  # the last guard: no traceback for users unless they ask
        if "--debug" in sys.argv:
            raise
        err.print(f"[bold red]error:[/] {escape(f'{type(exc).__name__}: {exc}')} (run with --debug for details)",
                  markup=True, highlight=False, soft_wrap=True)
        sys.exit(1)
    finally:
        if before is signal.default_int_handler:
            signal.signal(signal.SIGINT, before)


if __name__ == "__main__":
    run()
