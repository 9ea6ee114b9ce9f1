"""Per-GOP inter-layer records (``ENH_GOP`` units, stream format 1.1).

A stream whose layer-1 ``LAYER_CONFIG`` has kind ``per-gop`` chooses, for
every intra period (GOP), whether layer 1 codes the residual over the base
picture or the frames themselves.  Each GOP's choice is one ``ENH_GOP`` unit
of layer 1, written right after the base unit of the GOP's first (intra)
frame and before any enhancement packet of that GOP::

    ENH_GOP payload (version 1, 2 bytes)
      0  1  version   1
      1  1  mode      0 = residual (x - x_base), 1 = full-frame (x)

The layer configuration then holds one encoder configuration per mode
(``params["modes"][mode] = {"config": {...}, "extradata": "<hex>"}``) and
``params["version"] = 2``, which readers of format 1.0 refuse as an unknown
enhancement configuration version: they cannot misread the layer, and they
still read the base layer (they skip the unknown unit type of a newer minor).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from vcodec.errors import BitstreamError, ConfigError

__all__ = [
    "GopRecord", "GOP_MODES", "RESIDUAL", "FULL_FRAME", "PER_GOP_KIND", "PER_GOP_CONFIG_VERSION",
    "PER_GOP_MINOR", "per_gop_params", "lane_configs",
]

RESIDUAL = "residual"
FULL_FRAME = "full-frame"
#: mode byte <-> name
GOP_MODES: tuple[str, ...] = (RESIDUAL, FULL_FRAME)
#: LAYER_CONFIG kind of an enhancement layer that picks its mode per GOP
PER_GOP_KIND = "per-gop"
#: params["version"] of that layer (plain enhancement configurations are version 1)
PER_GOP_CONFIG_VERSION = 2
#: the minor format version a per-GOP stream is written with (1.0 readers skip ENH_GOP units)
PER_GOP_MINOR = 1
GOP_PAYLOAD_VERSION = 1
_PAYLOAD = struct.Struct(">BB")


@dataclass(frozen=True)
class GopRecord:
    """What layer 1 codes in the GOP that starts at ``frame``."""

    frame: int
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in GOP_MODES:
            raise ConfigError(f"GOP mode {self.mode!r} is invalid; use one of {', '.join(GOP_MODES)}")

    @property
    def predicts(self) -> bool:
        """True when the GOP's enhancement is added to the base picture."""
        return self.mode == RESIDUAL

    def to_payload(self) -> bytes:
        return _PAYLOAD.pack(GOP_PAYLOAD_VERSION, GOP_MODES.index(self.mode))

    @classmethod
    def from_payload(cls, frame: int, payload: bytes) -> GopRecord:
        if len(payload) != _PAYLOAD.size:
            raise BitstreamError(f"ENH_GOP payload is {len(payload)} bytes, expected {_PAYLOAD.size}",
                                 unit="ENH_GOP", frame=frame)
        version, mode = _PAYLOAD.unpack(payload)
        if version != GOP_PAYLOAD_VERSION:
            raise BitstreamError(f"ENH_GOP payload version {version} is not supported (this vcodec reads "
                                 f"{GOP_PAYLOAD_VERSION}); upgrade vcodec", unit="ENH_GOP", frame=frame)
        if mode >= len(GOP_MODES):
            raise BitstreamError(f"ENH_GOP mode {mode} is unknown (0 residual, 1 full-frame)", unit="ENH_GOP",
                                 frame=frame)
        return cls(frame, GOP_MODES[mode])


def per_gop_params(lanes: dict[str, tuple[dict[str, Any], bytes]], **extra: Any) -> dict[str, Any]:
    """Layer-1 parameters of a per-GOP layer: one encoder configuration and extradata per mode."""
    modes = {m: {"config": dict(cfg), "extradata": bytes(ext).hex()} for m, (cfg, ext) in lanes.items()}
    return {"version": PER_GOP_CONFIG_VERSION, "modes": modes, **extra}


def lane_configs(params: dict[str, Any]) -> dict[str, tuple[dict[str, Any], bytes]]:
    """The inverse of :func:`per_gop_params`; a malformed record raises :class:`BitstreamError`."""
    if params.get("version") != PER_GOP_CONFIG_VERSION:
        raise BitstreamError(f"per-GOP enhancement configuration version {params.get('version')!r} is not "
                             f"supported (this vcodec reads {PER_GOP_CONFIG_VERSION})", unit="LAYER_CONFIG")
    modes = params.get("modes")
    out: dict[str, tuple[dict[str, Any], bytes]] = {}
    try:
        for m in GOP_MODES:
            entry = modes[m]  # type: ignore[index]
            if not isinstance(entry["config"], dict):
                raise TypeError("config is not an object")
            out[m] = (entry["config"], bytes.fromhex(entry["extradata"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BitstreamError(f"per-GOP enhancement configuration is incomplete or malformed ({exc!r})",
                             unit="LAYER_CONFIG") from None
    return out
