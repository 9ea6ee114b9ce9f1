"""torchvision's NMS kernel without importing the torchvision package.

``import torchvision.ops`` imports ``torchvision.models`` and ``torchvision.ops.roi_align``,
which imports ``torch._dynamo``: about 1.5 s of CPU per process, before the first frame of
every command that detects or decodes, for two functions. This module loads torchvision's
compiled operator library (the same ``torch.ops.torchvision.nms`` kernel that
``torchvision.ops.nms`` calls) with :func:`torch.ops.load_library`, found the way
``torchvision.extension`` finds it, and restates ``batched_nms`` (torchvision 0.29's code,
BSD-3-Clause, same operations in the same order), so results are identical;
tests/test_startup.py compares them. Where torchvision is already imported, its functions
are used as they are.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import torch
from torch import Tensor

from vcodec.errors import ModelError

__all__ = ["nms", "batched_nms"]

_loaded = False


def _load_ops() -> None:
    global _loaded
    if _loaded or _has_nms():
        _loaded = True
        return
    spec = importlib.util.find_spec("torchvision")  # top-level: finds, does not execute
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("detection needs torchvision's NMS, and torchvision is not installed; "
                         "reinstall vcodec (pip install -e .)")
    finder = importlib.machinery.FileFinder(
        spec.submodule_search_locations[0],
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES))
    for name in ("_C_stable", "_C"):  # torchvision >= 0.26 names it _C_stable
        lib = finder.find_spec(name)
        if lib is not None and lib.origin and Path(lib.origin).is_file():
            try:
                torch.ops.load_library(lib.origin)
            except OSError as exc:
                raise ModelError(f"cannot load torchvision's operators from {lib.origin} ({exc}); "
                                 "reinstall torch and torchvision as a matching pair") from exc
            _loaded = True
            return
    raise ModelError("torchvision's compiled operators are missing; reinstall torchvision (pip install -e .)")


def _has_nms() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018 - resolving the op is the check
    except (AttributeError, RuntimeError):
        return False
    return True


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the boxes kept by greedy NMS, by decreasing score (``torchvision.ops.nms``)."""
    ops = sys.modules.get("torchvision.ops")
    if ops is not None:
        return ops.nms(boxes, scores, iou_threshold)
    _load_ops()
    return torch.ops.torchvision.nms(boxes, scores, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each class of ``idxs`` (``torchvision.ops.batched_nms``, same strategy choice)."""
    ops = sys.modules.get("torchvision.ops")
    if ops is not None:
        return ops.batched_nms(boxes, scores, idxs, iou_threshold)
    if boxes.numel() > (4000 if boxes.device.type == "cpu" else 100_000):
        return _batched_nms_vanilla(boxes, scores, idxs, iou_threshold)
    return _batched_nms_coordinate_trick(boxes, scores, idxs, iou_threshold)


def _batched_nms_coordinate_trick(boxes: Tensor, scores: Tensor, idxs: Tensor,
                                  iou_threshold: float) -> Tensor:
    # offset every class's boxes so far apart that boxes of two classes never overlap
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    boxes_for_nms = boxes + offsets[:, None]
    return nms(boxes_for_nms, scores, iou_threshold)


def _batched_nms_vanilla(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    keep_mask = torch.zeros_like(scores, dtype=torch.bool)
    for class_id in torch.unique(idxs):
        curr_indices = torch.where(idxs == class_id)[0]
        curr_keep_indices = nms(boxes[curr_indices], scores[curr_indices], iou_threshold)
        keep_mask[curr_indices[curr_keep_indices]] = True
    keep_indices = torch.where(keep_mask)[0]
    return keep_indices[scores[keep_indices].sort(descending=True)[1]]
