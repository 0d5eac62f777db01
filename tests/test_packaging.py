"""A regular install (a wheel, `pip install .`) carries the shipped weights and runs on them."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out, src = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("src")
    # built from a copy of the tracked files: setuptools would reuse a stale build/ in the checkout
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(src)], check=True, capture_output=True)
    (path,) = out.glob("lipparse_rt-*.whl")
    return path


def test_the_wheel_holds_the_shipped_onnx_weights_not_the_checkpoint(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("lipnet.onnx", "lipnet-int8.onnx"):
        packed = zipfile.ZipFile(wheel).getinfo(f"lipparse_rt/weights/{name}")
        assert packed.file_size == (ROOT / "weights" / name).stat().st_size
    assert not [n for n in names if n.endswith(".pt")]


def test_an_installed_wheel_finds_its_own_weights(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                    "--target", str(target), str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "LIPPARSE_WEIGHTS"}
    env["PYTHONPATH"] = str(target)  # before site-packages, where the checkout may be installed
    r = subprocess.run([sys.executable, "-m", "lipparse_rt", "info", "--provider", "cpu"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    weights = next(line for line in r.stdout.splitlines() if line.startswith("weights:")).split(": ", 1)[1]
    assert Path(weights).resolve() == (target / "lipparse_rt" / "weights" / "lipnet-int8.onnx").resolve()
    assert "classes: 20" in r.stdout
