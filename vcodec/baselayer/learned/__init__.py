"""Learned models of vcodec: the base layer (layer 0).

* :mod:`~vcodec.baselayer.learned.base_net` -- the trainable networks (g_a, g_s, hyperprior,
  temporal context, latent-space transform T, variable rate);
* :mod:`~vcodec.baselayer.learned.base_codec` -- :class:`BaseCodec`, a loaded model: features,
  detection and pictures from latents, encoders and decoders;
* :mod:`~vcodec.baselayer.learned.coder` -- the encoder and decoder with explicit reference buffers;
* :mod:`~vcodec.baselayer.learned.payload` -- every read and write of the payload (versions 1 and 2);
* :mod:`~vcodec.baselayer.learned.entropy` -- the deterministic entropy-parameter path;
* :mod:`~vcodec.baselayer.learned.geometry` -- working size, scaling and padding;
* :mod:`~vcodec.baselayer.learned.skipmap`, :mod:`~vcodec.baselayer.learned.rdo`,
  :mod:`~vcodec.baselayer.learned.refine`, :mod:`~vcodec.baselayer.learned.tools` -- skip flags,
  encoder decisions, latent refinement, tool choices;
* :mod:`~vcodec.baselayer.learned.weights` -- weights files and the registry of base models by id.
"""

from vcodec.baselayer.learned.base_codec import (
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
from vcodec.baselayer.learned.base_net import BaseNet, BaseNetConfig

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
