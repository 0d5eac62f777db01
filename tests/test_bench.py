"""The benchmark code runs and reports what it measured (speed itself is not asserted here)."""

import numpy as np
import pytest

from lipparse_rt import bench

from conftest import make_lip_folder, make_video


def test_pipeline_table_has_both_resolutions_and_settings(tmp_path, tiny_weights):
    clip = make_video(tmp_path / "c.mp4", n=12, size=(160, 120))
    table = bench.pipeline(clip, tiny_weights, limit=20, repeats=1)  # the clip is looped up to 20 frames
    rows = [l for l in table.splitlines() if l.startswith("| ") and "x" in l.split("|")[1]]
    assert [r.split("|")[1].split(" (")[0].strip() for r in rows] == ["160x120", "160x120", "1280x720", "1280x720"]
    assert all("20 frames" in r for r in rows)
    assert "(app)" in rows[1] and "1 frame at once" in rows[0]
    eff = [float(r.split("|")[-4].strip().rstrip("%")) for r in rows]
    assert all(0 < e for e in eff)
    import os

    cores = os.cpu_count() or 1
    for r in rows:  # the cap follows from the row's own stage figures
        cells = [c.strip() for c in r.split("|")]
        decode, model, render, encode = (float(cells[i]) for i in (3, 4, 5, 6))
        slowest = min(decode, model, render, encode)
        cap = min(slowest, cores / (cores / model + 1 / decode + 1 / render + 1 / encode)) / slowest
        assert float(cells[-3].rstrip("%")) == pytest.approx(100 * cap, abs=1.5)


def test_latency_with_fake_camera(tmp_path, tiny_weights):
    clip = make_video(tmp_path / "c.mp4", n=10, size=(160, 120))
    row = bench.latency(tiny_weights, clip, seconds=1.0, fps=30).splitlines()[-1].split("|")
    offered, shown, dropped = int(row[2]), int(row[3]), int(row[4])
    assert offered == 30 and shown + dropped == offered and shown > 0


def test_variants_lists_every_decoder_reading():
    pytest.importorskip("torch")
    table = bench.variants(hw=(64, 64), runs=2, threads=1)
    assert table.count("| S3") == len(bench.VARIANTS) and "1.00x" in table


def test_variants_times_given_weight_files_in_the_same_rounds(tiny_weights):
    pytest.importorskip("torch")
    table = bench.variants(hw=(64, 64), runs=2, threads=1, files=[("tiny file", tiny_weights)])
    rows = [l for l in table.splitlines() if l.startswith("| ") and "x |" in l]
    assert len(rows) == len(bench.VARIANTS) + 1 and rows[-1].startswith("| tiny file |")


def test_io_binding_runner_returns_the_ids_of_session_run(tiny_weights):
    x = np.random.default_rng(3).integers(0, 255, (1, 48, 64, 3), dtype=np.uint8)
    sess = bench._session(tiny_weights, 1)
    bound = bench._runner(sess, x, iobinding=True)
    first, second = bound(), bound()
    want = sess.run(["ids"], {"bgr": x})[0]
    assert first.shape == want.shape == (1, 48, 64) and first is not second
    np.testing.assert_array_equal(first, want)
    np.testing.assert_array_equal(second, want)


def test_write_section_replaces_in_place(tmp_path):
    md = tmp_path / "B.md"
    bench.write_section(md, "a", "first", "cmd a")
    bench.write_section(md, "b", "other", "cmd b")
    bench.write_section(md, "a", "second", "cmd a")
    text = md.read_text()
    assert "second" in text and "first" not in text and text.index("## a") < text.index("## b")


def test_memory_reports_peak_rss_of_a_real_run(tmp_path, tiny_weights):
    clip = make_video(tmp_path / "c.mp4", n=5, size=(160, 120))
    far = make_video(tmp_path / "far.mp4", n=5, size=(192, 108))
    table = bench.memory(clip, tiny_weights, sizes=((96, 64), (320, 240)), frames=6, zoom_video=far, zoom_sizes=((384, 216),))
    rows = [l.split("|") for l in table.splitlines() if l.startswith("| ") and l.split("|")[2].strip().isdigit()]
    assert [r[1].strip() for r in rows] == ["96x64", "320x240", "384x216, `--zoom`, `far.mp4`"]
    assert all(30 < float(r[3]) < 2000 for r in rows)  # MB: a real process, not zero


def test_profile_shows_the_se_gates_moving_into_the_blocked_layout(tiny_weights):
    # every op type gets its own row: on a busy machine a small op's share can fall under any threshold
    table = bench.profile(tiny_weights, hw=(48, 64), runs=3, min_share=0.0)
    rows = {r.split("|")[1].strip(): r.split("|")[2:4] for r in table.splitlines() if r.startswith("| ") and "%" in r}
    assert "GlobalAveragePool" in rows and not any(r.startswith("other ops") for r in rows)
    plain = float(rows["GlobalAveragePool"][0].strip().rstrip("%"))
    assert plain == 0.0  # the gates' means: ReduceMean (NCHW) -> NCHWc GlobalAveragePool, in the fused graph only
    # shares of time, not op counts: only an op that is absent is reliably 0 on a busy machine; the small
    # ops are summed into one row, so each column adds up to 100 whatever the machine's timings
    slack = 0.05 * len(rows) + 0.01  # each share is rounded to 0.1
    assert all(abs(sum(float(r[i].strip().rstrip("%")) for r in rows.values()) - 100) <= slack for i in (0, 1))
    assert "all kernels, ms per run" in table


def test_flicker_is_zero_on_a_still_clip_and_not_on_a_moving_one(tmp_path, tiny_weights):
    still = [np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)] * 6
    moving = bench.clip_frames(make_video(tmp_path / "moving.mp4", n=6, size=(128, 96)), 100)
    assert moving[0] == "moving.mp4 (128x96)" and len(moving[1]) == 6  # no more frames than the clip has
    table = bench.flicker([("still", still), moving], [("plain", tiny_weights, False), ("flip", tiny_weights, True)])
    rows = [[c.strip() for c in l.split("|")[1:-1]] for l in table.splitlines() if l.startswith("| ") and "%" in l]
    assert [(r[0].split(" ")[0], r[1], r[2]) for r in rows] == [
        ("still", "plain", "6"), ("still", "flip", "6"), ("moving.mp4", "plain", "6"), ("moving.mp4", "flip", "6")]
    means = [float(r[3].rstrip("%")) for r in rows]
    assert means[0] == means[1] == 0.0 and means[2] > 0  # (a random tiny net is flat after the flip average)


def test_sizes_table_times_every_size_and_scores_it_like_eval(tmp_path, tiny_weights):
    from lipparse_rt.engine import Engine, EngineConfig
    from lipparse_rt.evaluate import evaluate

    clip = make_video(tmp_path / "c.mp4", n=4, size=(160, 120))
    ccp = make_lip_folder(tmp_path / "ccp", ["a", "b"], labels="labels_lip", splits={"val": ["a", "b"]})
    table = bench.sizes_table(tiny_weights, clip, ccp, sizes=(64, 96), rounds=2, runs=2)
    rows = [[c.strip() for c in l.split("|")[1:-1]] for l in table.splitlines() if l[2:3].isdigit()]
    assert [(r[0], r[1]) for r in rows] == [("64", "64x48"), ("96", "96x80")]  # padded to multiples of 16
    for r in rows:
        assert float(r[2]) > 0 and float(r[3]) > 0
        eng = Engine(EngineConfig(weights=tiny_weights, provider="cpu", input_size=int(r[0])))
        assert r[4] == f"{100 * evaluate(eng, ccp, 'val', 'labels_lip', 'ccp').scores.miou:.1f}"
    assert rows[1][5] == "+0.0"  # against the largest size when 512 is not among them
    assert abs(float(rows[0][5]) - (float(rows[0][4]) - float(rows[1][4]))) <= 0.11


def test_zoom_table_scores_both_ways_like_eval_and_times_both(tmp_path, tiny_weights):
    import shutil

    from lipparse_rt.engine import Engine, EngineConfig
    from lipparse_rt.evaluate import evaluate

    data = tmp_path / "data"
    ccp = make_lip_folder(data / "ccp", ["a", "b", "c"], hw=(96, 64), labels="labels_lip", splits={"val": ["a", "b"]})
    shutil.copytree(ccp / "labels_lip", ccp / "labels_lip_sided")
    make_lip_folder(data / "viton" / "test", ["v1", "v2", "v3"], hw=(64, 48))
    street = make_video(tmp_path / "street.mp4", n=24, size=(192, 108))
    close = make_video(tmp_path / "close.mp4", n=8, size=(160, 120))
    table = bench.zoom_table(tiny_weights, data, street, close, viton=2, frames=24, runs=4, walkers=2, walk_frames=3,
                             walk_vary=1)
    rows = [[c.strip() for c in l.split("|")[1:-1]] for l in table.splitlines() if l.startswith("| ") and "(" in l]
    assert [r[0] for r in rows[:7]] == ["CCP val, `ccp` protocol (2)", "CCP val, 20 classes vs `labels_lip_sided` (2)",
                                        "VITON test, first 2 photos (2)", "CCP val at 80% of a 1280x720 frame's height, `ccp` (2)",
                                        "CCP val at 50% of a 1280x720 frame's height, `ccp` (2)",
                                        "CCP val at 80% of a 1280x720 frame's height, `ccp`, searched as a video frame (3x) (2)",
                                        "CCP val at 50% of a 1280x720 frame's height, `ccp`, searched as a video frame (3x) (2)"]
    apart = "two CCP val photos apart, each at 50% of a 1280x720 frame's height, `ccp`"
    assert [r[0] for r in rows[7:9]] == [f"{apart} (2)", f"{apart}, one crop around both (no tiles) (2)"]
    walk = "CCP val walking across the room at {}% of the frame's height, 2-4 frames each, `ccp`, {} (2)"
    ways = ("`video`", "`webcam`", "`video`, searched every 30 frames even with nobody followed")
    assert [r[0] for r in rows[9:15]] == [walk.format(h, way) for h in (80, 50) for way in ways]
    assert rows[5][1] == rows[3][1] and rows[6][1] == rows[4][1] and rows[8][1] == rows[7][1]  # the same photos parsed whole
    assert rows[10][1] == rows[9][1] == rows[11][1] and rows[13][1] == rows[12][1] == rows[14][1]
    engine = Engine(EngineConfig(weights=tiny_weights, provider="cpu"))
    for row, kw in ((rows[0], dict(root=ccp, split="val", labels="labels_lip", protocol="ccp")),
                    (rows[2], dict(root=data / "viton" / "test", limit=2))):
        assert row[1] == f"{100 * evaluate(engine, **kw).scores.miou:.1f}"
        assert row[2] == f"{100 * evaluate(engine, zoom=True, **kw).scores.miou:.1f}"
        assert abs(float(row[3].split()[0]) - (float(row[2]) - float(row[1]))) <= 0.11
    clips = rows[15:]
    assert [r[0] for r in clips] == ["`street.mp4` (192x108, 24 frames)",  # too short to be beside itself 600 later
                                     "`street.mp4` beside itself 0 frames later (384x108, 24 frames)",
                                     "`close.mp4` (160x120, 8 frames)"]
    for r, frame_side in zip(clips, (192, 384, 160)):
        whole, zoomed = float(r[1]), float(r[2])
        ratio = float(r[3].rstrip("x"))  # of the unrounded times: within the rounding of the two shown
        assert whole > 0 and zoomed > 0 and (zoomed - 0.05) / (whole + 0.05) - 0.01 <= ratio <= (zoomed + 0.05) / (whole - 0.05) + 0.01
        assert r[4].endswith(f"(long side {min(192, frame_side)})")  # 3x the tiny weights' 64, at most the frame's
        assert all(0 <= float(c.rstrip("%")) <= 100 for c in r[5:9])
        frames = int(r[0].split(", ")[1].split()[0])
        assert 0 <= int(r[9]) <= frames  # frames as tiles, of the clip's frames
        assert 0 <= int(r[10]) <= frames  # enlarged searches (none where the people fill the frame)


def test_table1_ratios_are_measured_and_per_round():
    pytest.importorskip("torch")
    table = bench.table1(sizes=((64, 64),), runs=3, threads=1)
    rows = {r[0]: r for r in ([c.strip() for c in l.split("|")[1:-1]] for l in table.splitlines())
            if r and r[0] in ("FCN-8s", "SegNet", "DeepLab v2", "LIP-Net")}
    assert list(rows) == ["FCN-8s", "SegNet", "DeepLab v2", "LIP-Net"]
    assert abs(float(rows["LIP-Net"][1]) - 3.98) < 0.02 and float(rows["FCN-8s"][1]) > 100  # params, measured
    lip_fps = float(rows["LIP-Net"][5])
    for name in ("FCN-8s", "SegNet", "DeepLab v2"):
        r = rows[name]
        # the ratio of the medians, of the unrounded FPS: within the rounding of the two FPS shown
        fps, ratio = float(r[5]), float(r[6].rstrip("x"))
        assert (lip_fps - 0.005) / (fps + 0.005) - 0.05 <= ratio <= (lip_fps + 0.005) / (fps - 0.005) + 0.05
        med, lo, hi = (float(x) for x in __import__("re").findall(r"([\d.]+)x \(([\d.]+)-([\d.]+)\)", r[7])[0])
        assert lo <= med <= hi
    assert rows["LIP-Net"][7] == "-" and rows["FCN-8s"][8] == "24.5x"
