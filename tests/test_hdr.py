import numpy as np
import pytest

from lipparse_rt.hdr import (BT2020_TO_BT709, HLG, KNEE, PQ, SDR_WHITE, hlg_to_nits, nits_to_pq, pq_frame, pq_to_nits,
                             roll_off, to_sdr, write_pq_video)
from lipparse_rt.sources import VideoFile


def test_pq_matches_smpte_2084_at_known_points_and_inverts():
    nits = np.array([0.0, 100.0, 203.0, 1000.0, 10000.0])
    assert np.allclose(nits_to_pq(nits), [0.0, 0.5081, 0.5807, 0.7518, 1.0], atol=2e-4)  # 0 nits: 7e-7
    signal = np.linspace(0, 1, 101)
    assert np.allclose(nits_to_pq(pq_to_nits(signal)), signal, atol=1e-6)  # PQ's floor: c1^m2 = 7e-7


def test_hlg_reference_white_is_203_nits_on_a_1000_nit_display():
    # ITU-R BT.2408: HLG's 75% signal is the reference white, 203 nits on a 1,000-nit display
    assert hlg_to_nits(np.array([0.75, 0.75, 0.75])) == pytest.approx([203] * 3, abs=1)
    assert hlg_to_nits(np.array([1.0, 1.0, 1.0])) == pytest.approx([1000] * 3, rel=1e-3)


def test_roll_off_keeps_mid_tones_and_compresses_highlights_below_white():
    low = np.linspace(0, KNEE, 50)
    assert np.array_equal(roll_off(low), low)
    out = roll_off(np.linspace(KNEE, 4, 500))  # up to four times white (812 nits)
    assert np.all(np.diff(out) > 0) and out[-1] < 1  # rising, below white
    assert roll_off(np.array([60.0]))[0] <= 1
    assert (roll_off(np.array([KNEE + 1e-6]))[0] - KNEE) == pytest.approx(1e-6, rel=1e-3)  # slope 1 at the knee


def test_to_sdr_maps_hdr_greys_and_colours_where_sdr_has_them():
    half_white = nits_to_pq(np.full(3, SDR_WHITE / 2))  # grey at half of the reference white
    assert to_sdr(half_white, PQ) == pytest.approx([0.5 ** (1 / 2.4)] * 3, abs=1e-6)
    # a BT.709 red, carried in BT.2020 at half of white, comes back as that red
    red709 = np.array([0.5, 0.0, 0.0]) @ np.eye(3)
    red2020 = red709 @ np.linalg.inv(BT2020_TO_BT709).T
    back = to_sdr(nits_to_pq(red2020 * SDR_WHITE), PQ)
    assert back == pytest.approx([0.5 ** (1 / 2.4), 0, 0], abs=2e-3)
    assert np.all(to_sdr(np.ones(3), HLG) <= 1) and np.all(to_sdr(np.ones(3), PQ) <= 1)


def test_a_pq_video_is_shown_as_its_sdr_picture_not_dim_and_grey(tmp_path):
    import av

    rng = np.random.default_rng(0)
    picture = np.zeros((96, 128, 3), np.uint8)
    for y in range(0, 96, 16):  # flat patches of colour and grey, up to 0.85 of white
        for x in range(0, 128, 16):
            picture[y:y + 16, x:x + 16] = rng.integers(0, 200, 3)
    path = write_pq_video(tmp_path / "hdr10.mp4", picture, 3, {"crf": "4"})
    with av.open(str(path)) as c:  # what plain decoding gives: dim and grey
        plain = next(c.decode(video=0)).to_ndarray(format="bgr24").astype(int)
    with VideoFile(path) as v:
        assert v.hdr == "PQ" and "HDR (PQ): made SDR" in v.describe()
        frames = [f.image.astype(int) for f in v]
    assert len(frames) == 3
    inner = (slice(2, -2), slice(2, -2))  # inside the patches, away from chroma subsampling's edges
    err = lambda img: np.mean([np.abs(img[y:y + 16, x:x + 16][inner] - picture[y:y + 16, x:x + 16][inner]).mean()
                               for y in range(0, 96, 16) for x in range(0, 128, 16)])
    assert err(frames[0]) < 2.5 and err(plain) > 15


def test_an_sdr_video_is_decoded_as_before(tmp_path):
    from conftest import make_video

    with VideoFile(make_video(tmp_path / "sdr.mp4", n=2)) as v:
        assert v.hdr is None and "HDR" not in v.describe()


def test_frames_of_any_width_are_made_sdr_whole(tmp_path):
    # lut3d's SIMD path for float planes crashed the process (a segmentation fault, now and then)
    # on rows that are not a whole number of its vectors: 514 pixels wide, here
    from lipparse_rt.hdr import ToSdr

    rng = np.random.default_rng(1)
    to_sdr = ToSdr(PQ)
    for width in (514, 530, 512, 66) * 8:
        # stripes 16 rows tall of muted colours: 4:2:0's chroma keeps them, away from their edges
        tones = rng.integers(40, 160, (3, 1, 1)) + rng.integers(-20, 20, (3, 1, 3))
        picture = np.repeat(np.repeat(tones.astype(np.uint8), 16, axis=0), width, axis=1)
        out = to_sdr.bgr(pq_frame(picture))
        assert out.shape == picture.shape
        inner = np.concatenate([np.arange(16 * k + 4, 16 * k + 12) for k in range(3)])
        assert np.abs(out.astype(int) - picture)[inner].mean() < 2


def test_frames_past_1080p_are_made_sdr_in_strips_the_same_as_whole():
    # in strips, a 4K frame's float copies take ~25 MB instead of ~200 (peak RSS of a 4K HDR run:
    # 623-716 MB whole, 494-520 in strips)
    from lipparse_rt.hdr import WHOLE_UP_TO, ToSdr

    rng = np.random.default_rng(2)
    blocks = rng.integers(20, 200, (38, 64, 3), dtype=np.uint8)
    picture = np.repeat(np.repeat(blocks, 32, axis=0), 32, axis=1)[:1200, :2048]  # 2048x1200: past 1080p
    assert picture.shape[0] * picture.shape[1] > WHOLE_UP_TO
    frame, to_sdr = pq_frame(picture), ToSdr(PQ)
    assert np.array_equal(to_sdr.bgr(frame), to_sdr._bgr(frame))
    graphs = dict(to_sdr._graphs)  # one per strip size, and the whole frame's
    to_sdr.bgr(frame)
    assert to_sdr._graphs == graphs  # the next frame builds none (each build parses the table again)
