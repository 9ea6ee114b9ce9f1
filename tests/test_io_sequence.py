"""The bundled clip is reproducible: tools/make_sequence.py regenerates it bit for bit.

Set GENERATE_EXPECTED=1 to rewrite tests/expected/sequence.md5 after an
intended change to the generator (then regenerate sequences/ and commit both).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from vcodec.io import open_video, synthetic

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "sequences" / "synthetic_416x240_30.y4m"
EXPECTED = ROOT / "tests" / "expected" / "sequence.md5"


def test_regenerated_clip_matches_golden_md5_and_committed_file(tmp_path: Path) -> None:
    out = tmp_path / CLIP.name
    digest = synthetic.write(out)
    if os.environ.get("GENERATE_EXPECTED") == "1":
        EXPECTED.parent.mkdir(parents=True, exist_ok=True)
        EXPECTED.write_text(f"{digest}  {CLIP.name}\n")
    golden = EXPECTED.read_text().split()[0]
    assert digest == golden, "generator output changed; see the module docstring"
    assert hashlib.md5(CLIP.read_bytes()).hexdigest() == golden, "sequences/ is stale: rerun the tool"


def test_bundled_clip_properties() -> None:
    with open_video(CLIP) as r:
        i = r.info
        got = (i.width, i.height, i.fps, i.bit_depth, i.num_frames, i.matrix)
        assert got == (416, 240, 30, 8, 30, "bt601")
        frames = list(r)
    assert len(frames) == 30
    y = np.stack([f.y for f in frames]).astype(np.int16)
    assert 16 <= y.min() and y.max() <= 235  # limited range
    # things move: consecutive frames differ well beyond the noise
    moving = (np.abs(y[1:] - y[:-1]) > 20).mean(axis=(1, 2))
    assert moving.min() > 0.005
    # textured, not flat: plenty of spatial detail in every frame
    assert float(np.abs(np.diff(y, axis=2)).mean()) > 2.0
    # noise: a static background pixel is not constant over time
    assert float(y[:, 230:236, 4:10].std(axis=0).mean()) > 0.5
