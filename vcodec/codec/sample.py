"""Where the bundled sequences are found: the synthetic test clip and the real demo clip.

``demo_person_768x432.mp4`` (:func:`demo_clip`) is what ``vcodec demo`` runs on: 36 frames of
a real camera, a person walking into a room (CC BY 4.0, Intel; attribution beside it, made by
``tools/make_demo_clip.py``). It is looked up like the synthetic clip below (``$VCODEC_DEMO_CLIP``
first) but cannot be generated; without it the demo falls back to the synthetic clip.

The synthetic ``synthetic_416x240_30.y4m`` (tests, benchmarks) is found as follows.

Looked up, in order: ``$VCODEC_SEQUENCE`` (a file), package data
``vcodec/data/sequences/`` (wheels), the source tree's ``sequences/`` (editable
installs, checkouts), and a copy generated earlier into the user's cache
(``$XDG_CACHE_HOME/vcodec``, else ``~/.cache/vcodec``).  If none exists, the sequence
is generated into the cache by :mod:`vcodec.io.synthetic` (bit-identical: the
generator is integer-only and seeded).
"""

from __future__ import annotations

import os
from pathlib import Path

from vcodec.errors import InputError

__all__ = ["SEQUENCE_NAME", "DEMO_CLIP_NAME", "bundled_sequence", "demo_clip", "sequence_candidates"]

SEQUENCE_NAME = "synthetic_416x240_30.y4m"
DEMO_CLIP_NAME = "demo_person_768x432.mp4"
_PACKAGE = Path(__file__).resolve().parents[1]  # .../vcodec
_TREE = _PACKAGE.parent  # checkout root for editable installs


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vcodec"


def sequence_candidates() -> list[Path]:
    """Places searched for the bundled sequence, in order."""
    out = []
    env = os.environ.get("VCODEC_SEQUENCE")
    if env:
        out.append(Path(env))
    out += [
        _PACKAGE / "data" / "sequences" / SEQUENCE_NAME,
        _TREE / "sequences" / SEQUENCE_NAME,
        _cache_dir() / SEQUENCE_NAME,
    ]
    return out


def _generate(target: Path) -> Path:
    from vcodec.io.synthetic import write

    target.parent.mkdir(parents=True, exist_ok=True)
    write(target)
    return target


def bundled_sequence() -> Path:
    """Path of the demo sequence (generating it into the cache if it is missing)."""
    for p in sequence_candidates():
        if p.is_file():
            return p
    try:
        made = _generate(_cache_dir() / SEQUENCE_NAME)
    except OSError as exc:
        raise InputError(f"the bundled sequence {SEQUENCE_NAME} is missing and cannot be generated into "
                         f"{_cache_dir()} ({exc.strerror or exc}); give a clip: vcodec demo CLIP") from None
    return made


def demo_clip() -> Path | None:
    """Path of the real demo clip, or None where it is not installed (a wheel without it)."""
    env = os.environ.get("VCODEC_DEMO_CLIP")
    candidates = [Path(env)] if env else []
    candidates += [_PACKAGE / "data" / "sequences" / DEMO_CLIP_NAME, _TREE / "sequences" / DEMO_CLIP_NAME]
    return next((p for p in candidates if p.is_file()), None)
