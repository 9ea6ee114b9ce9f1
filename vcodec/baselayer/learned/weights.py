"""Weights files of learned base models and the registry of shipped ones.

``vcodec/weights/base-<detector>-v<N>.pt`` holds the state dict without the
CDF tables (rebuilt deterministically at load); ``.json`` beside it holds the
model id, the architecture config, the sha256 of the ``.pt`` and the training
record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from vcodec._atomic import atomic_output
from vcodec.baselayer.learned.base_codec import BaseCodec
from vcodec.baselayer.learned.base_net import BaseNet, BaseNetConfig
from vcodec.errors import WeightsError, WeightsMismatchError
from vcodec.hashing import file_sha256
from vcodec.registry import Registry

__all__ = ["BASE_MODELS", "WEIGHTS_DIR", "load_base_model", "load_files", "save_base_weights"]

#: shipped weights live here as base-<detector>-v<N>.pt + .json
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"

#: base model id -> path of its .json descriptor
BASE_MODELS: Registry[Path] = Registry("base model")


_RUNTIME_BUFFERS = ("_quantized_cdf", "_cdf_length", "_offset", "scale_table", "scale_bound")


def _trainable_state(net: BaseNet) -> dict[str, torch.Tensor]:
    # CDF tables are rebuilt deterministically at load time; do not ship them
    return {k: v.detach().clone() for k, v in net.state_dict().items()
            if k.split(".")[-1] not in _RUNTIME_BUFFERS}


def save_base_weights(net: BaseNet, model_id: str, out_dir: Path,
                      record: dict[str, Any] | None = None) -> Path:
    """Write ``<model_id>.pt`` and ``<model_id>.json`` (config, sha256, training record)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pt = out_dir / f"{model_id}.pt"
    state = _trainable_state(net)
    # through the one atomic writer: a killed training run leaves no half-written .pt or .json
    # (a file object, not the temporary's path: torch names the archive inside after the path)
    with atomic_output(pt, what="base weights") as f:
        torch.save({"format": "vcodec-base-weights", "version": 1, "state_dict": state}, f)
    sha = file_sha256(pt)
    desc = {"model_id": model_id, "kind": "base", "config": net.cfg.to_dict(), "sha256": sha,
            "weights_file": pt.name, "training": record or {}}
    with atomic_output(out_dir / f"{model_id}.json", what="base model descriptor") as f:
        f.write((json.dumps(desc, indent=2, sort_keys=True) + "\n").encode())
    return pt


def load_files(json_path: Path, expect_sha: str | None) -> BaseCodec:
    try:
        desc = json.loads(Path(json_path).read_text())
    except FileNotFoundError:
        raise WeightsError(f"base model descriptor {json_path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise WeightsError(f"base model descriptor {json_path} is unreadable: {exc}") from exc
    for key in ("model_id", "config", "sha256", "weights_file"):
        if key not in desc:
            raise WeightsError(f"base model descriptor {json_path} lacks {key!r}; regenerate it with "
                               f"tools/train_base.py")
    pt = Path(json_path).parent / desc["weights_file"]
    if not pt.exists():
        raise WeightsError(f"weights file {pt} named by {json_path} does not exist")
    actual = file_sha256(pt)
    if actual != desc["sha256"]:
        raise WeightsError(f"weights file {pt} has sha256 {actual} but {json_path} records "
                           f"{desc['sha256']}; the file is corrupt or was replaced")
    if expect_sha is not None and expect_sha != actual:
        raise WeightsMismatchError(
            f"stream needs base model {desc['model_id']!r} with weights sha256 {expect_sha}, but the "
            f"available weights {pt} have sha256 {actual}; install the weights the stream was made with")
    cfg = BaseNetConfig.from_dict(desc["config"])
    net = BaseNet(cfg)
    try:
        blob = torch.load(pt, map_location="cpu", weights_only=True)
        state = blob["state_dict"]
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsError(f"weights file {pt} cannot be read: {exc}") from exc
    missing, unexpected = net.load_state_dict({k: v.float() if v.is_floating_point() else v
                                               for k, v in state.items()}, strict=False)
    missing = [k for k in missing if k.split(".")[-1] not in _RUNTIME_BUFFERS]
    if missing or unexpected:
        raise WeightsError(f"weights file {pt} does not fit the architecture in {json_path}: "
                           f"missing {missing[:5]}, unexpected {list(unexpected)[:5]}")
    default_quality = desc.get("default_quality", 0.5)
    if isinstance(default_quality, bool) or not isinstance(default_quality, (int, float)) \
            or not 0.0 <= default_quality <= 1.0:
        raise WeightsError(f"base model descriptor {json_path} has default_quality {default_quality!r}; "
                           "it must be a number in [0, 1]")
    return BaseCodec(net, desc["model_id"], actual, desc.get("training", {}), float(default_quality))


def _register_shipped() -> None:
    if not WEIGHTS_DIR.is_dir():
        return
    for js in sorted(WEIGHTS_DIR.glob("base-*.json")):
        if js.stem not in BASE_MODELS:
            BASE_MODELS.register(js.stem, js)


_register_shipped()


def load_base_model(model_id: str, sha256: str | None = None) -> BaseCodec:
    """Load a registered base model by id; refuse weights whose sha256 differs from ``sha256``."""
    path = BASE_MODELS.get(model_id)
    return load_files(path, sha256)
