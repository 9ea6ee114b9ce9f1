"""Reading detector weight files with typed errors that name the file.

Two sources: PyTorch checkpoints (``.pth``/``.pt``: a state dict, or a dict
holding one under ``model``/``state_dict``) and ONNX exports (``.onnx``:
the graph's initializers).  Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vcodec.errors import WeightsError
from vcodec.hashing import file_sha256 as sha256_of

__all__ = ["read_state_dict", "load_state_dict_strict", "sha256_of", "require_file"]


def require_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{what} weights file {str(p)!r} does not exist or is not a file")
    return p


def read_state_dict(path: str | Path, what: str) -> dict[str, Tensor]:
    """Load a checkpoint and return its tensors (``model``/``state_dict`` unwrapped)."""
    p = require_file(path, what)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        raise WeightsError(
            f"{str(p)!r} is not a readable PyTorch checkpoint for {what} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); pass a .pth/.pt state dict or an .onnx export"
        ) from None
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(
            f"{str(p)!r} does not hold a state dict of tensors for {what}; "
            f"expected a dict of parameter names to tensors (optionally under 'model')"
        )
    # checkpoints saved from DataParallel prefix every key with "module."
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def load_state_dict_strict(module: nn.Module, state: dict[str, Tensor], path: str | Path, what: str) -> None:
    """``module.load_state_dict`` with errors that say which keys and which file."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing and len(missing) == len(own):
        raise WeightsError(
            f"{str(path)!r} has none of the parameters of {what} (first keys in file: "
            f"{', '.join(list(state)[:3])}); it is weights for another architecture"
        )
    if missing:
        raise WeightsError(
            f"{str(path)!r} is missing {len(missing)} parameter(s) of {what}, e.g. "
            f"{', '.join(missing[:3])}; the file is incomplete or for another variant"
        )
    if unexpected:
        raise WeightsError(
            f"{str(path)!r} has {len(unexpected)} parameter(s) that {what} does not have, e.g. "
            f"{', '.join(unexpected[:3])}; it is weights for another architecture or variant"
        )
    bad = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items() if state[k].shape != v.shape]
    if bad:
        k, got, want = bad[0]
        raise WeightsError(
            f"{str(path)!r} does not fit {what}: {len(bad)} tensor(s) have the wrong shape, e.g. "
            f"{k} is {got} in the file but {want} in the model (another variant, e.g. nano vs tiny?)"
        )
    module.load_state_dict(state, strict=True)
