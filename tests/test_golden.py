"""Committed golden streams still decode bit-exactly (docs/FORMAT.md, "Golden streams").

``tests/golden/*.vcs`` were written by an earlier vcodec (``tools/make_golden.py``)
and are never re-encoded by the suite: every expectation here is an md5 in
``tests/golden/manifest.json``, so a silent change of the decoder's output, of
the detections it serves, or of layer extraction fails, and so does a decoder
that no longer reads streams of format 1.x.

``GENERATE_EXPECTED=1`` rewrites the manifest's digests from the committed
streams on purpose (the tests then report a skip, never a silent pass); to
re-encode the streams themselves, run ``python tools/make_golden.py``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import GENERATE_EXPECTED, REPO

GOLDEN = REPO / "tests" / "golden"
MANIFEST = GOLDEN / "manifest.json"


def _load_tool() -> ModuleType:
    """tools/ is not a package: load the generator by path (it owns the digest definitions)."""
    spec = importlib.util.spec_from_file_location("make_golden", REPO / "tools" / "make_golden.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while it executes
    spec.loader.exec_module(mod)
    return mod


make_golden = _load_tool()


def _entries() -> list[dict[str, Any]]:
    return json.loads(MANIFEST.read_text())["streams"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: Iterator[None]) -> None:
    """Decode with one torch thread like the generator (results must not depend on it anyway)."""


def test_manifest_covers_every_base_mode_and_enhancement_codec() -> None:
    entries = _entries()
    assert {e["base_kind"] for e in entries} == {"learned-base", "feature-base"}
    assert {e["case"]["enh_codec"] for e in entries} == {"libx265", "libx264", "libsvtav1", "libvpx-vp9"}
    # the learned streams use the shipped model: decoding them needs nothing from ../shared
    assert {e["base_codec"] for e in entries if e["base_kind"] == "learned-base"} == {"base-vcodec-det-v2",
                                                                                     "base-yolox-nano-v2"}
    # every learned base payload version an encoder ever wrote is decoded
    assert {e["base_payload_version"] for e in entries if e["base_kind"] == "learned-base"} == {1, 2, 3, 4}
    # every manifest entry has its file, and no stray stream escapes the test
    assert sorted(e["file"] for e in entries) == sorted(p.name for p in GOLDEN.glob("*.vcs"))
    assert {e["case"]["name"] for e in entries} == {c.name for c in make_golden.CASES}


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e["case"]["name"])
def test_golden_stream_decodes_bit_exactly(entry: dict[str, Any]) -> None:
    path = GOLDEN / entry["file"]
    data = path.read_bytes()
    # the committed bytes themselves: a re-encoded or edited file is not the old stream any more
    assert hashlib.md5(data).hexdigest() == entry["stream_md5"], (
        f"{path.name} changed; golden streams are regenerated only on purpose (tools/make_golden.py)")
    assert data[:5] == b"VCDC\x01", "golden streams are format major version 1"
    got = make_golden.digests(path)
    if GENERATE_EXPECTED:
        manifest = json.loads(MANIFEST.read_text())
        for e in manifest["streams"]:
            if e["file"] == entry["file"]:
                e.update(got)
        make_golden.write_manifest(manifest)
        pytest.skip(f"GENERATE_EXPECTED=1: rewrote the digests of {path.name} in {MANIFEST.name}")
    # compare field by field so a failure names what drifted
    for key in ("format_version", "base_kind", "base_codec", "base_payload_version", "full_frames",
                "full_md5", "base_md5", "detections", "detections_md5", "extracted_md5"):
        assert got[key] == entry[key], f"{path.name}: {key} is {got[key]!r}, the manifest says {entry[key]!r}"
    # frame count and order: intra period 2 over 4 frames decodes an I and a P of each GOP
    assert entry["full_frames"] == list(range(entry["case"]["frames"]))
    assert entry["detections"] > 0, "a golden stream without detections pins nothing down"


def test_every_enhancement_payload_version_is_decoded() -> None:
    """Version 1 (4-byte dts) and version 2 (one byte) ENH_PACKET payloads both sit in golden streams."""
    from vcodec.bitstream import StreamReader
    from vcodec.bitstream.format import UnitType

    seen: dict[str, set[int]] = {}
    for entry in _entries():
        firsts = {u.payload[0] for u in StreamReader((GOLDEN / entry["file"]).read_bytes())
                  if u.type == UnitType.ENH_PACKET}
        seen[entry["case"]["name"]] = {2 if b & 0x80 else b for b in firsts}
    assert seen["learned-x265"] == {1} and seen["learned-x265-pk2"] == {2} and seen["learned-v4-x265"] == {2}
    assert set().union(*seen.values()) == {1, 2}


def test_digests_see_a_one_sample_change(tmp_path: Path) -> None:
    """The md5 of decoded pictures covers every plane: flipping one chroma sample changes it."""
    from vcodec.io import Frame

    frames, _ = make_golden.source_frames(make_golden.CASES[0])
    before, _ = make_golden.frames_md5(frames)
    v = frames[-1].v.copy()
    v[-1, -1] ^= 1
    frames[-1] = Frame(frames[-1].y, frames[-1].u, v, bit_depth=8, index=frames[-1].index)
    after, _ = make_golden.frames_md5(frames)
    assert before != after
