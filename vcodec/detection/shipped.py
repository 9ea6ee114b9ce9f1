"""Detector weights shipped inside the package: ``vcodec/weights/<name>.pt`` plus ``<name>.json``.

The record (``.json``) holds the file's sha256 (checked on every load), the
format, and for third-party weights the origin, licence and sha256 of the file
they were converted from.  YOLOX-Nano (Megvii, Apache-2.0; see
``vcodec/weights/NOTICE``) ships converted from its ONNX export into the
project's own format: the state dict of :class:`vcodec.detection.yolox.YOLOX`
with every BatchNorm folded into its convolution (``tools/ship_yolox_nano.py``).
Nothing is downloaded at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vcodec.errors import WeightsError

__all__ = [
    "WEIGHTS_DIR",
    "DETECTOR_FORMAT",
    "SHIPPED_DETECTORS",
    "ShippedWeights",
    "shipped_weights",
    "has_shipped_weights",
    "load_shipped_yolox",
    "identify_weights",
]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
#: ``format`` of a shipped detector ``.pt`` (a dict holding ``state_dict``)
DETECTOR_FORMAT = "vcodec-detector-weights"
#: registry names whose weights ship with vcodec (``get_detector(name)`` needs no file)
SHIPPED_DETECTORS: tuple[str, ...] = ("yolox-nano", "vcodec-det")


@dataclass(frozen=True)
class ShippedWeights:
    """A shipped weights file and its record, sha256 already checked."""

    name: str
    path: Path
    sha256: str
    #: sha256 of the file the weights were converted from ("" when trained here)
    source_sha256: str
    record: dict[str, Any] = field(compare=False, repr=False)


def shipped_weights(name: str, weights_dir: Path | None = None) -> ShippedWeights:
    """The record of shipped detector ``name``; WeightsError when missing or tampered with."""
    from vcodec.hashing import file_sha256

    d = WEIGHTS_DIR if weights_dir is None else Path(weights_dir)
    pt, js = d / f"{name}.pt", d / f"{name}.json"
    if not pt.is_file() or not js.is_file():
        raise WeightsError(f"the shipped {name} weights are missing ({pt}); "
                           f"reinstall vcodec or pass --weights FILE")
    try:
        record = json.loads(js.read_text())
    except ValueError as exc:
        raise WeightsError(f"{js} is not valid JSON ({exc}); reinstall vcodec") from None
    digest = file_sha256(pt)
    if record.get("sha256") != digest:
        raise WeightsError(
            f"{pt} has sha256 {digest[:16]}... but {js.name} records {str(record.get('sha256'))[:16]}...; "
            f"the package is corrupted, reinstall vcodec"
        )
    source = record.get("source") or {}
    return ShippedWeights(name, pt, digest, str(source.get("sha256", "")), record)


def has_shipped_weights(name: str) -> bool:
    """Whether ``get_detector(name)`` without a weights file gives a trained detector."""
    return name in SHIPPED_DETECTORS and (WEIGHTS_DIR / f"{name}.pt").is_file()


def load_tagged_state(path: Path, fmt: str, remedy: str) -> dict[str, torch.Tensor]:
    """The state dict of a vcodec weights file whose ``format`` tag must be ``fmt``.

    WeightsError (naming the file and ``remedy`` for a wrong tag) for a damaged or foreign file.
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise WeightsError(f"{path} cannot be read ({type(exc).__name__}); reinstall vcodec") from None
    if not isinstance(blob, dict) or blob.get("format") != fmt or "state_dict" not in blob:
        raise WeightsError(f"{path} is not a {fmt} file; {remedy}")
    return dict(blob["state_dict"])


def load_shipped_yolox(variant: str = "nano", weights_dir: Path | None = None, **kw: Any) -> Any:
    """YOLOX with the weights shipped in the package (BatchNorm folded), sha256 checked."""
    from vcodec.detection.weights import load_state_dict_strict
    from vcodec.detection.yolox import YOLOX

    shipped = shipped_weights(f"yolox-{variant}", weights_dir)
    state = load_tagged_state(shipped.path, DETECTOR_FORMAT, "reinstall vcodec")
    model = YOLOX(variant, **kw).fuse()
    load_state_dict_strict(model, state, shipped.path, f"YOLOX-{variant}")
    # the identity of the weights is the file they were converted from: an adapted back end
    # made against the ONNX export applies to this conversion too
    model.weights_sha256 = shipped.source_sha256 or shipped.sha256
    return model.eval()


def identify_weights(path: str | Path) -> str:
    """A few words on what a weights file holds, for errors ("yolox-nano weights", "an ONNX export")."""
    from vcodec.hashing import file_sha256

    p = Path(path)
    if not p.is_file():
        return "nothing (no such file)"
    digest = file_sha256(p)
    for name in SHIPPED_DETECTORS:
        js = WEIGHTS_DIR / f"{name}.json"
        try:
            rec = json.loads(js.read_text())
        except (OSError, ValueError):
            continue
        if digest in (rec.get("sha256"), (rec.get("source") or {}).get("sha256")):
            return f"{name} weights"
    with open(p, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return "a PyTorch checkpoint of another architecture"
    if p.suffix.lower() == ".onnx" or head[:1] == b"\x08":
        return "an ONNX export of another architecture"
    return "neither a PyTorch checkpoint nor an ONNX export"
