"""Learned models of vcodec: the base layer (layer 0).

* :mod:`vcodec.models.base_net` -- the trainable networks (g_a, g_s, hyperprior,
  temporal context, latent-space transform T, variable-rate parts);
* :mod:`vcodec.models.base_codec` -- bit-exact coding: payload layout,
  deterministic entropy parameters, encoder/decoder with explicit reference,
  weights files and the registry of base models by id.
"""

from vcodec.models.base_codec import (
    BASE_MODELS,
    PAYLOAD_VERSION,
    WEIGHTS_DIR,
    BaseCodec,
    BaseDecoder,
    BaseEncoder,
    BaseGeometry,
    BasePayload,
    CodingTools,
    file_sha256,
    load_base_model,
    quality_code,
    save_base_weights,
)
from vcodec.models.base_net import BaseNet, BaseNetConfig

__all__ = [
    "BASE_MODELS",
    "PAYLOAD_VERSION",
    "WEIGHTS_DIR",
    "BaseCodec",
    "BaseDecoder",
    "BaseEncoder",
    "BaseGeometry",
    "BaseNet",
    "BaseNetConfig",
    "BasePayload",
    "CodingTools",
    "file_sha256",
    "load_base_model",
    "quality_code",
    "save_base_weights",
]
