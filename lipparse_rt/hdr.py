"""HDR video (PQ or HLG transfer, BT.2020 colours) made SDR, as an SDR screen should show it.

Phones record HDR: a Samsung's "HDR10+" video is PQ, an iPhone's is HLG. Decoded
as if it were SDR, as a plain conversion to BGR does, PQ comes out dim and grey and BT.2020's
colours washed out, in the overlay video and in what the model sees. `ToSdr` maps each decoded
frame through a 3D lookup table (FFmpeg's lut3d filter, tetrahedral interpolation) that this
module computes:

1. the signal to light: PQ's EOTF (SMPTE ST 2084), or HLG's inverse OETF and its system gamma
   for a 1,000-nit display (ITU-R BT.2100);
2. light to SDR: HDR's reference white (203 nits, ITU-R BT.2408) becomes SDR's white; luminance
   up to 0.75 of it is kept as it is and above it rolled off smoothly towards white (highlights
   compressed, mid-tones untouched), the colour's hue kept;
3. BT.2020 primaries to BT.709's (the 3x3 matrix in linear light), out-of-gamut colours clipped;
4. light to the SDR signal (BT.1886's gamma 2.4, inverted).

No model here; numpy, and PyAV for the filter.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

PQ, HLG = 16, 18  # FFmpeg's AVColorTransferCharacteristic for SMPTE ST 2084 and ARIB STD-B67
SDR_WHITE = 203.0  # nits: HDR's reference (diffuse) white, ITU-R BT.2408
HLG_PEAK = 1000.0  # nits: the display HLG is shown on (BT.2100's reference)
KNEE = 0.75  # of SDR white: luminance below it is kept, above it rolled off towards white
LUT_SIZE = 33  # points per axis of the 3D table
WHOLE_UP_TO = 1920 * 1088  # pixels: larger frames are made SDR in strips (`ToSdr.bgr`)
STRIP_ROWS = 256
MAX_GRAPHS = 8  # filter graphs `ToSdr` keeps, one per frame size
SIMD_WIDTH = 16  # lut3d is given rows of a multiple of this many pixels (see `ToSdr.bgr`)
CUBE_VERSION = 2  # raise when the mapping changes: the table files are named by it

# SMPTE ST 2084's constants
PQ_M1, PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
PQ_C1, PQ_C2, PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32

BT2020_LUMA = np.array([0.2627, 0.6780, 0.0593])
BT2020_TO_BT709 = np.array([[1.660491, -0.587641, -0.072850],  # ITU-R BT.2087, linear light
                            [-0.124550, 1.132900, -0.008349],
                            [-0.018151, -0.100579, 1.118730]])


def pq_to_nits(signal: NDArray) -> NDArray:
    """SMPTE ST 2084's EOTF: a PQ signal in [0, 1] -> light in nits (cd/m^2)."""
    p = np.power(np.clip(signal, 0, 1), 1 / PQ_M2)
    return 10000 * np.power(np.maximum(p - PQ_C1, 0) / (PQ_C2 - PQ_C3 * p), 1 / PQ_M1)


def nits_to_pq(nits: NDArray) -> NDArray:
    """PQ's inverse EOTF: light in nits -> a signal in [0, 1]."""
    y = np.power(np.clip(nits / 10000, 0, 1), PQ_M1)
    return np.power((PQ_C1 + PQ_C2 * y) / (1 + PQ_C3 * y), PQ_M2)


def hlg_to_nits(rgb_signal: NDArray) -> NDArray:
    """HLG (BT.2100) on a 1,000-nit display: the inverse OETF per channel (scene light), then
    the OOTF (system gamma 1.2 on the scene luminance). `rgb_signal`: ... x 3 in [0, 1]."""
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    e = np.clip(rgb_signal, 0, 1)
    scene = np.where(e <= 0.5, e * e / 3, (np.exp((e - c) / a) + b) / 12)
    ys = scene @ BT2020_LUMA
    return HLG_PEAK * np.power(np.maximum(ys, 1e-12), 0.2)[..., None] * scene


def roll_off(luminance: NDArray) -> NDArray:
    """Luminance relative to SDR white -> [0, 1): kept below KNEE, above it an exponential
    roll-off with slope 1 at the knee, reaching white only at infinite light."""
    over = np.maximum(luminance - KNEE, 0)
    return np.where(luminance <= KNEE, luminance, KNEE + (1 - KNEE) * (1 - np.exp(-over / (1 - KNEE))))


def to_sdr(rgb_signal: NDArray, transfer: int) -> NDArray:
    """HDR R'G'B' signal (BT.2020, ... x 3 in [0, 1]) -> SDR R'G'B' signal (BT.709, [0, 1])."""
    nits = pq_to_nits(rgb_signal) if transfer == PQ else hlg_to_nits(rgb_signal)
    light = nits / SDR_WHITE
    y = light @ BT2020_LUMA
    light = light * (roll_off(y) / np.maximum(y, 1e-12))[..., None]  # the hue kept
    bt709 = np.clip(light @ BT2020_TO_BT709.T, 0, 1)
    return np.power(bt709, 1 / 2.4)


def pq_frame(sdr_bgr: NDArray[np.uint8]):
    """An SDR picture as an HDR camera would store the same scene (its SDR levels at HDR's
    reference white, BT.2020, PQ): a PyAV 10-bit frame, limited range, tagged so. For tests and
    trials: `to_sdr` maps what lies below the knee back exactly."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    light = (sdr_bgr[..., ::-1] / 255.0) ** 2.4 @ np.linalg.inv(BT2020_TO_BT709).T
    rgb48 = np.round(nits_to_pq(np.clip(light, 0, None) * SDR_WHITE) * 65535).astype(np.uint16)
    frame = av.VideoFrame.from_ndarray(rgb48, format="rgb48le").reformat(
        format="yuv420p10le", src_colorspace=Colorspace.BT2020, dst_colorspace=Colorspace.BT2020,
        src_color_range=ColorRange.JPEG, dst_color_range=ColorRange.MPEG)
    frame.color_trc, frame.colorspace, frame.color_primaries = PQ, 9, 9
    return frame


def write_pq_video(path: Path, sdr_bgr: NDArray[np.uint8], frames: int, options: dict[str, str]) -> Path:
    """A still PQ (HDR10) H.264 video of an SDR picture (`pq_frame`), 10-bit, tagged as HDR10 is:
    `frames` frames at 25 FPS, x264 `options` (crf, preset). For tests and trials."""
    import av

    h, w = sdr_bgr.shape[:2]
    frame = pq_frame(sdr_bgr)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p10le"
        ctx = s.codec_context
        ctx.color_trc, ctx.color_primaries, ctx.colorspace, ctx.color_range = PQ, 9, 9, 1
        s.options = options
        for i in range(frames):
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return Path(path)


def sdr_lut(transfer: int, size: int = LUT_SIZE) -> NDArray[np.float32]:
    """The 3D table of `to_sdr`: size^3 x 3, red varying fastest (the .cube order)."""
    axis = np.linspace(0, 1, size)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    return to_sdr(np.stack([r, g, b], -1).reshape(-1, 3), transfer).astype(np.float32)


def cube_file(transfer: int) -> Path:
    """The table written as an Adobe .cube file for lut3d (in the temporary folder, ~1 MB), once
    per transfer and version of the mapping."""
    name = f"lipparse-rt-{CUBE_VERSION}-sdr-{'pq' if transfer == PQ else 'hlg'}-{LUT_SIZE}.cube"
    path = Path(tempfile.gettempdir()) / name
    if not path.exists():  # the same table for every run of this version: made once, shared
        table = sdr_lut(transfer)
        body = "\n".join(f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in table)
        part = path.with_name(f"{name}.{os.getpid()}.part")
        part.write_text(f"LUT_3D_SIZE {LUT_SIZE}\n{body}\n")
        part.replace(path)  # atomic: a run beside this one reads a whole table or makes its own
    return path


class ToSdr:
    """Decoded HDR frames (PQ or HLG, BT.2020) -> BGR frames for SDR, through FFmpeg's lut3d.

    Frames are converted to float RGB with BT.2020's matrix first (swscale), so the table sees
    the signal at its full depth; lut3d's SIMD path is for float planes (its 16-bit RGB path was
    several times slower in a throwaway check)."""

    def __init__(self, transfer: int) -> None:
        self.transfer = transfer
        # one filter graph per frame size, kept: a 4K frame's strips come in three sizes (first,
        # middle, last), and each new graph parses the 1 MB table again
        self._graphs: dict[tuple[int, int], object] = {}

    def _graph(self, width: int, height: int):
        import av

        if (width, height) in self._graphs:
            return self._graphs[width, height]
        if len(self._graphs) >= MAX_GRAPHS:  # a stream that keeps changing size: start over
            self._graphs.clear()
        graph = av.filter.Graph()
        graph.threads = 1  # the pipeline's own threads keep the cores busy
        src = graph.add_buffer(width=width, height=height, format="gbrpf32le", time_base=1)
        lut = graph.add("lut3d", f"file={cube_file(self.transfer)}:interp=tetrahedral")
        sink = graph.add("buffersink")
        src.link_to(lut)
        lut.link_to(sink)
        graph.configure()
        self._graphs[width, height] = graph
        return graph

    def bgr(self, frame) -> NDArray[np.uint8]:
        """One decoded frame (PyAV's) -> HxWx3 uint8 BGR, made SDR.

        Frames past 1080p in planar YUV are made SDR STRIP_ROWS rows at a time: a 4K frame's
        float copies take ~200 MB whole (`lipparse-rt video` on 4K HDR peaked at 623-716 MB,
        past the 600 MB it keeps to), ~25 MB in strips. Each strip is converted with two rows
        more on either side, so that the chroma's interpolation sees its neighbours as it would
        in the whole frame."""
        h, w = frame.height, frame.width
        if w * h <= WHOLE_UP_TO or not _planar_yuv(frame):
            return self._bgr(frame)
        out = np.empty((h, w, 3), np.uint8)
        for y0 in range(0, h, STRIP_ROWS):
            y1 = min(h, y0 + STRIP_ROWS)
            a, b = max(0, y0 - 2), min(h, y1 + 2)
            out[y0:y1] = self._bgr(_rows(frame, a, b))[y0 - a: y1 - a]
        return out

    def _bgr(self, frame) -> NDArray[np.uint8]:
        import av
        from av.video.reformatter import ColorRange, Colorspace

        rgb = frame.reformat(format="gbrpf32le", src_colorspace=Colorspace.BT2020, dst_colorspace=Colorspace.BT2020,
                             src_color_range=frame.color_range or ColorRange.MPEG, dst_color_range=ColorRange.JPEG,
                             threads=1)
        width = rgb.width
        if width % SIMD_WIDTH:
            # lut3d's SIMD path for float planes crashes (a segmentation fault, FFmpeg 8.1) on rows
            # that are not a whole number of its vectors: such frames are padded on the right
            planes = rgb.to_ndarray()
            planes = np.pad(planes, ((0, 0), (0, -width % SIMD_WIDTH), (0, 0)), mode="edge")
            rgb = av.VideoFrame.from_ndarray(planes, format="gbrpf32le")
        graph = self._graph(rgb.width, rgb.height)
        rgb.pts = None
        graph.push(rgb)
        out = graph.pull()
        return out.to_ndarray(format="bgr24", threads=1)[:, :width]


def _planar_yuv(frame) -> bool:
    """Three planes of YUV whose chroma rows, if halved, pair whole luma rows (even height)."""
    return frame.format.name.startswith("yuv") and len(frame.planes) == 3 and frame.height % 2 == 0


def _rows(frame, top: int, bottom: int):
    """Rows top..bottom (even) of a planar YUV frame, as a frame of their own (its colour tags kept)."""
    import av

    part = av.VideoFrame(frame.width, bottom - top, frame.format.name)
    for src, dst in zip(frame.planes, part.planes):
        step = frame.height // src.height  # 2 for 4:2:0's chroma, else 1
        rows = np.frombuffer(src, np.uint8).reshape(src.height, src.line_size)[top // step: top // step + dst.height]
        out = np.ndarray((dst.height, dst.line_size), np.uint8, buffer=memoryview(dst))
        n = min(src.line_size, dst.line_size)
        out[:, :n] = rows[:, :n]
    part.color_range, part.colorspace = frame.color_range, frame.colorspace
    return part
