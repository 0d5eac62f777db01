"""The README's Python example runs as written."""
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from lipparse_rt.classes import NAMES

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_from_python_example_runs_on_the_shipped_weights(tmp_path):
    section = README.read_text().split("## From Python", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    photo = np.full((300, 200, 3), 200, np.uint8)
    cv2.rectangle(photo, (60, 40), (140, 280), (40, 60, 160), -1)  # something to parse; any classes do
    cv2.imwrite(str(tmp_path / "photo.jpg"), photo)
    env = {k: v for k, v in os.environ.items() if k != "LIPPARSE_WEIGHTS"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    shares = dict(line.rsplit(": ", 1) for line in r.stdout.splitlines())
    assert shares and set(shares) <= set(NAMES)
    assert abs(sum(float(v.rstrip("%")) for v in shares.values()) - 100) < 0.1 * len(shares)
    out = cv2.imread(str(tmp_path / "photo-parsed.jpg"))
    assert out is not None and out.shape == photo.shape


def test_table_cells_keep_their_pipes_escaped():
    """A '|' in a table row ends the cell, inside a code span too (GitHub's tables): the README's
    rows for `webcam`, `video` and `image` showed `... URL ` and the rest of the row as new cells
    before 2026-12-05. Every shell pipe in a table is written `\\|`."""
    root = README.parent
    for doc in [README, root / "BENCHMARKS.md", root / "weights" / "MODEL_CARD.md", *sorted((root / "docs").glob("*.md"))]:
        fenced = False
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            fenced ^= line.startswith("```")
            if fenced or not line.startswith("|"):
                continue
            for span in re.findall(r"`[^`]*`", line):
                assert not re.search(r"(?<!\\)\|", span), f"{doc.name}:{n}: unescaped '|' in {span}"
