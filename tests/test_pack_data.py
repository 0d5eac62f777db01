import importlib.util
from pathlib import Path

import cv2
import numpy as np

from lipparse_rt.data import find_pairs

_spec = importlib.util.spec_from_file_location("pack_data", Path(__file__).parents[1] / "tools" / "pack_data.py")
pack_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pack_data)


def test_pack_shrinks_images_keeps_label_ids_and_layout(tmp_path):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "labels_a").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(src / "images" / f"{i}.png"), rng.integers(0, 255, (200, 100, 3), dtype=np.uint8))
        lab = np.zeros((200, 100), np.uint8)
        lab[50:150, 20:80] = 5
        lab[60:70, 20:40] = 14
        cv2.imwrite(str(src / "labels_a" / f"{i}.png"), lab)
    (src / "train.txt").write_text("0\n1\n2\n")
    n = pack_data.pack(src, tmp_path / "out", ["labels_a:train"], long_side=50, every=2, quality=90)
    assert n == 2  # every second pair of the three in train.txt
    pairs = find_pairs(tmp_path / "out", "train", labels="labels_a")
    assert [p.stem for p, _ in pairs] == ["0", "2"]
    for img_path, lab_path in pairs:
        img = cv2.imread(str(img_path))
        lab = cv2.imread(str(lab_path), cv2.IMREAD_UNCHANGED)
        assert img.shape == (50, 25, 3) and lab.shape == (50, 25)
        assert set(np.unique(lab)) <= {0, 5, 14} and (lab == 5).any()  # nearest neighbour: no new ids
