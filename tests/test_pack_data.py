import importlib.util
from pathlib import Path

import cv2
import numpy as np

from conftest import make_lip_folder
from lipparse_rt.data import find_pairs

_spec = importlib.util.spec_from_file_location("pack_data", Path(__file__).parents[1] / "tools" / "pack_data.py")
pack_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pack_data)


def test_pack_shrinks_images_keeps_label_ids_and_layout(tmp_path):
    src = make_lip_folder(tmp_path / "src", range(4), (200, 100), labels="labels_a",
                          splits={"train": ["0", "1", "2"]})
    n = pack_data.pack(src, tmp_path / "out", ["labels_a:train"], long_side=50, every=2, quality=90)
    assert n == 2  # every second pair of the three in train.txt
    pairs = find_pairs(tmp_path / "out", "train", labels="labels_a")
    assert [p.stem for p, _ in pairs] == ["0", "2"]
    for img_path, lab_path in pairs:
        img = cv2.imread(str(img_path))
        lab = cv2.imread(str(lab_path), cv2.IMREAD_UNCHANGED)
        assert img.shape == (50, 25, 3) and lab.shape == (50, 25)
        assert set(np.unique(lab)) <= {0, 5, 14} and (lab == 5).any()  # nearest neighbour: no new ids
