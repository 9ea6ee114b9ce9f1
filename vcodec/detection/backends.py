"""Back ends adapted to a base model's decoded features.

A learned base layer hands the detector ``T(y_hat)``, an approximation of the
clean split features ``F(x)``; its errors are structured (coarse at low
quality, blocks copied from the previous frame in P-frames), unlike anything
the detector saw in training.  An *adapted back end* is a copy of the
detector's back end (for YOLOX-Nano: dark4, dark5, PAFPN neck and head)
fine-tuned by distillation so that, on ``T(y_hat)``, it reproduces what the
clean detector outputs on ``F(x)`` (``tools/train_backend.py``).

It ships beside the base model's weights as ``vcodec/weights/backend-<base
model id>.pt`` with a record ``backend-<base model id>.json`` (sha256, the
base model's id and weights sha256, the sha256 of the clean detector weights it
was made from, training record).  It is used automatically for base-layer
analytics (:meth:`vcodec.codec.base_layer.LearnedBase.detect` calls
:func:`for_base_layer`) when the base model's weights and the detector's
weights are the ones it was made for; the detector itself is never changed,
so pixels keep the clean back end.

The file name does not start with ``base-``: the base-model registry picks up
every ``base-*.json`` in the weights folder.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vcodec.detection.shipped import WEIGHTS_DIR, load_tagged_state
from vcodec.errors import ConfigError, WeightsError

__all__ = [
    "BACKEND_FORMAT", "AdaptedBackend", "backend_name", "find_backend", "adapted_detector", "for_base_layer",
]

#: ``format`` of an adapted back end ``.pt`` (a dict holding ``state_dict``: back-end tensors only)
BACKEND_FORMAT = "vcodec-backend-weights"
_REQUIRED = (
    "name", "detector", "base_model", "base_sha256", "detector_weights_sha256", "sha256", "weights_file",
)


def backend_name(base_model_id: str) -> str:
    """File stem of the back end adapted to base model ``base_model_id``."""
    return f"backend-{base_model_id}"


@dataclass(frozen=True)
class AdaptedBackend:
    """The record of an adapted back end (``backend-<base model>.json``)."""

    name: str
    #: registry name of the detector whose back end was adapted
    detector: str
    base_model: str
    #: sha256 of the base model weights whose T(y_hat) it was trained on
    base_sha256: str
    #: ``weights_sha256`` of the clean detector it was made from (the teacher)
    detector_weights_sha256: str
    #: sha256 of the ``.pt``
    sha256: str
    path: Path
    record: dict[str, Any] = field(compare=False, repr=False)

    @classmethod
    def from_json(cls, path: str | Path) -> AdaptedBackend:
        js = Path(path)
        try:
            rec = json.loads(js.read_text())
        except (OSError, ValueError) as exc:
            raise WeightsError(f"adapted back-end record {js} is unreadable ({exc}); "
                               f"reinstall vcodec") from None
        missing = [k for k in _REQUIRED if k not in rec]
        if missing:
            raise WeightsError(f"adapted back-end record {js} lacks {', '.join(missing)}; "
                               f"regenerate it with tools/train_backend.py --ship")
        return cls(rec["name"], rec["detector"], rec["base_model"], rec["base_sha256"],
                   rec["detector_weights_sha256"], rec["sha256"], js.parent / rec["weights_file"], rec)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The back-end tensors, after checking the file against the record's sha256."""
        from vcodec.hashing import file_sha256

        if not self.path.is_file():
            raise WeightsError(f"adapted back end {self.path} is missing; reinstall vcodec")
        digest = file_sha256(self.path)
        if digest != self.sha256:
            raise WeightsError(f"{self.path} has sha256 {digest[:16]}... but its record says "
                               f"{self.sha256[:16]}...; the package is corrupted, reinstall vcodec")
        return load_tagged_state(self.path, BACKEND_FORMAT,
                                 "regenerate it with tools/train_backend.py --ship")


def find_backend(base_model_id: str, base_sha256: str, weights_dir: Path | None = None
                 ) -> AdaptedBackend | None:
    """The back end adapted to these exact base weights, or None (then the plain back end is right)."""
    js = (WEIGHTS_DIR if weights_dir is None else Path(weights_dir)) / f"{backend_name(base_model_id)}.json"
    if not js.is_file():
        return None
    backend = AdaptedBackend.from_json(js)
    # the same id with other weights (a retrained model) decodes other features: no adaptation
    return backend if backend.base_sha256 == base_sha256 else None


def adapted_detector(detector: Any, backend: AdaptedBackend) -> Any:
    """A copy of ``detector`` with the adapted back end; ``detector`` itself is left unchanged.

    Raises ConfigError when ``detector`` is not the one the back end was made from.
    """
    from vcodec.detection.yolox import FRONT_PREFIXES

    if detector.name != backend.detector or detector.weights_sha256 != backend.detector_weights_sha256:
        raise ConfigError(
            f"adapted back end {backend.name} was made for {backend.detector} weights "
            f"{backend.detector_weights_sha256[:12]}..., not {detector.name} weights "
            f"{(detector.weights_sha256 or 'random')[:12]}; use the shipped detector"
        )
    state = backend.state_dict()
    own = detector.state_dict()
    back_keys = {k for k in own if not k.startswith(FRONT_PREFIXES)}
    if set(state) != back_keys or any(state[k].shape != own[k].shape for k in back_keys):
        odd = sorted(set(state) ^ back_keys)[:3]
        odd = odd or [k for k in back_keys if state[k].shape != own[k].shape][:3]
        raise WeightsError(f"{backend.path} does not fit the back end of {detector.name} "
                           f"(e.g. {', '.join(odd)}); regenerate it with tools/train_backend.py --ship")
    out = copy.deepcopy(detector)
    out.load_state_dict({**{k: v for k, v in own.items() if k.startswith(FRONT_PREFIXES)}, **state})
    out.backend = backend.name
    return out.eval()


def for_base_layer(detector: Any, base_model_id: str, base_sha256: str, served: str) -> Any:
    """The detector to run on the decoded features of base model ``base_model_id``.

    ``served`` is the detector the base model was trained for; any other raises
    ConfigError naming both.  When ``detector`` carries the clean weights an
    adapted back end was made from (for these base weights), an adapted copy is
    returned; otherwise ``detector`` itself (e.g. the user's own weights).
    """
    name = getattr(detector, "name", None)
    if name != served:
        raise ConfigError(
            f"base model {base_model_id!r} serves detector {served!r}, but detector {name!r} was asked for; "
            f"its features are {served}'s split features: omit --detector/--weights to use {served}"
        )
    backend = find_backend(base_model_id, base_sha256)
    if backend is None or backend.detector_weights_sha256 != getattr(detector, "weights_sha256", ""):
        return detector
    return adapted_detector(detector, backend)
