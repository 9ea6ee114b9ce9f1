"""Learned models of vcodec: the base layer (layer 0).

* :mod:`~vcodec.models.base_net` -- the trainable networks (g_a, g_s, hyperprior,
  temporal context, latent-space transform T, variable rate);
* :mod:`~vcodec.models.base_codec` -- :class:`BaseCodec`, a loaded model: features,
  detection and pictures from latents, encoders and decoders;
* :mod:`~vcodec.models.coder` -- the encoder and decoder with explicit reference buffers;
* :mod:`~vcodec.models.payload` -- every read and write of the payload (versions 1 and 2);
* :mod:`~vcodec.models.entropy` -- the deterministic entropy-parameter path;
* :mod:`~vcodec.models.geometry` -- working size, scaling and padding;
* :mod:`~vcodec.models.skipmap`, :mod:`~vcodec.models.rdo`, :mod:`~vcodec.models.refine`,
  :mod:`~vcodec.models.tools` -- skip flags, encoder decisions, latent refinement, tool choices;
* :mod:`~vcodec.models.weights` -- weights files and the registry of base models by id.
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
