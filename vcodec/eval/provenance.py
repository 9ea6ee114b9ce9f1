"""What a run's numbers rest on: the provenance record, the cache keys of points, the detector geometry."""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict
from typing import Any

import numpy as np

from vcodec.eval.config import EvalConfig
from vcodec.eval.geometry import WorkingSize
from vcodec.hashing import file_sha256 as _sha256_file

__all__ = ["POINT_VERSION", "cache_key", "geometry_json", "provenance"]

#: part of every point's cache key: bump it when a code change alters what a point measures
#: (2: residuals coded without psy-rd; anchor keys no longer carry the base model;
#: 3: the detector on pixels works at the base layer's working geometry, not 416/native)
POINT_VERSION = 3


def provenance(cfg: EvalConfig, detector: Any) -> dict[str, Any]:
    """Versions, weights hashes and settings every output records."""
    import av
    import torch

    from vcodec import __version__

    def version(mod: str) -> str:
        try:
            from importlib.metadata import version as v

            return v(mod)
        except Exception:  # noqa: BLE001 - a missing distribution is just "unknown"
            return "unknown"

    det_sha = ""
    if cfg.detector_weights:
        det_sha = _sha256_file(cfg.detector_weights)
    else:
        from vcodec.detection import DEFAULT_DETECTOR
        from vcodec.detection.shipped import has_shipped_weights, shipped_weights

        # the weights that ship with vcodec for this detector (YOLOX-Nano by default)
        name = cfg.detector or DEFAULT_DETECTOR
        if has_shipped_weights(name):
            det_sha = shipped_weights(name).sha256
    encoders = {}
    for name in ("libx265", "libx264"):
        try:
            encoders[name] = av.codec.Codec(name, "w").long_name
        except Exception:  # noqa: BLE001 - an encoder absent from this build
            encoders[name] = "unavailable"
    settings = asdict(cfg)
    for how in ("progress", "workers", "ray_address"):  # how it ran, not what it computed
        settings.pop(how, None)
    return {
        "vcodec_version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pyav": av.__version__,
        "libavcodec": ".".join(str(v) for v in av.library_versions.get("libavcodec", ())),
        "encoders": encoders,
        "pycocotools": version("pycocotools"),
        "motmetrics": version("motmetrics"),
        "pytorch_msssim": version("pytorch-msssim"),
        "detector": {
            "name": detector.name,
            "weights": cfg.detector_weights or "shipped",
            "sha256": det_sha,
            "score_threshold": cfg.score_threshold,
        },
        "settings": settings,
    }


def cache_key(
    cfg: EvalConfig,
    unit_point: dict[str, Any],
    input_sig: dict[str, Any],
    model_sig: str,
    det_sig: str,
    geometry: list[int] | None = None,
) -> str:
    """A stored point's cache key: what it measured (``unit_point``) and all it depends on.

    ``geometry``: the working size's key (long side, multiple) every detection on pixels uses."""
    from vcodec import __version__

    d = {
        "v": POINT_VERSION,
        "base_size": cfg.base_size,
        "geometry": geometry,
        "vcodec": __version__,
        "input": input_sig,
        "frames": cfg.frames,
        "start": cfg.start,
        "detector": det_sig,
        "score": cfg.score_threshold,
        "model": model_sig,
        "preset": cfg.preset,
        "intra": cfg.intra_period,
        "enh_codec": cfg.enh_codec,
        "full_detect": cfg.full_detect,
        **unit_point,
    }
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:20]


def geometry_json(working: WorkingSize, width: int, height: int, anchor_size: int | None) -> dict[str, Any]:
    """The detector geometry record of results.json (see :mod:`vcodec.eval.geometry`)."""
    g = working.geometry(width, height)
    return {
        "long_side": working.long_side,
        "multiple": working.multiple,
        "source": working.source,
        "scaled": [g.coded_width, g.coded_height],
        "padded": [g.padded_width, g.padded_height],
        "description": working.describe(width, height),
        "anchor_size": anchor_size,
    }
