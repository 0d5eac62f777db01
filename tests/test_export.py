import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from lipparse_rt.export import Deployable, export_onnx  # noqa: E402
from lipparse_rt.model import LipNet, LipNetConfig  # noqa: E402


@pytest.mark.parametrize("stride", [8, 4])
def test_onnx_matches_torch(tmp_path, stride):
    torch.manual_seed(0)
    net = LipNet(LipNetConfig(decoder_stride=stride)).eval()
    # non-trivial BN statistics so the check means something
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    path = export_onnx(net, tmp_path / "m.onnx", 128, with_logits=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (1, 96, 128, 3), dtype=np.uint8)  # not the export size: dynamic axes
    ids, logits = sess.run(["ids", "logits"], {"bgr": frame})
    with torch.no_grad():
        t_ids, t_logits = Deployable(net, with_logits=True)(torch.from_numpy(frame))
    assert ids.dtype == np.uint8 and ids.shape == (1, 96, 128)
    assert logits.shape == (1, 96, 128, 20)  # channels-last: the argmax reads adjacent floats
    assert np.allclose(logits, t_logits.permute(0, 2, 3, 1).numpy(), atol=1e-3, rtol=1e-3)
    assert (ids == t_ids.numpy()).mean() >= 0.999


def test_metadata_carries_names_and_size(tmp_path):
    import json

    path = export_onnx(LipNet(), tmp_path / "m.onnx", 192, {"training_data": "x"})
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert len(json.loads(meta["names"])) == 20 and meta["input_size"] == "192" and meta["training_data"] == "x"


def test_files_that_are_not_checkpoints_or_onnx_are_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from lipparse_rt.cli import app

    runner = CliRunner()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x04not a pickle at all" * 10)
    for args in (["export", str(junk), "--out", str(tmp_path / "e.onnx")],
                 ["average", str(junk), str(junk), "--out", str(tmp_path / "s.pt")]):
        r = runner.invoke(app, args)
        assert r.exit_code == 4, r.output
        assert r.stderr.strip().splitlines()[-1].startswith(f"error: cannot load checkpoint '{junk}': not a PyTorch checkpoint")
    r = runner.invoke(app, ["quantize", str(junk), "--out", str(tmp_path / "q.onnx"), "--calib", str(tmp_path)])
    assert r.exit_code == 4 and f"cannot read weights '{junk}': not a valid ONNX model" in r.stderr, r.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = runner.invoke(app, ["export", str(junk), "--out", str(blocker / "sub" / "e.onnx")])
    assert r.exit_code == 3 and "cannot create folder" in r.stderr, r.output  # before the checkpoint is read
