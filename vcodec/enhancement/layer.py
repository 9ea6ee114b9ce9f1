"""Where the enhancement layer's names lived until it was split; kept for one release.

The layer is now :mod:`vcodec.enhancement.packet` (the unit payload),
:mod:`vcodec.enhancement.config` (the stored settings),
:mod:`vcodec.enhancement.chroma` (chroma-QP tables),
:mod:`vcodec.enhancement.encoder` and :mod:`vcodec.enhancement.decoder`.
Import from those, or from :mod:`vcodec.enhancement`.
"""

from vcodec.enhancement.config import CONFIG_VERSION, EnhancementConfig
from vcodec.enhancement.decoder import EnhancementDecoder, decode_sequence
from vcodec.enhancement.encoder import DEFAULT_CRF, EnhancementEncoder, encode_sequence
from vcodec.enhancement.packet import PAYLOAD_VERSION, EnhancementPacket

__all__ = [
    "EnhancementPacket",
    "EnhancementEncoder",
    "EnhancementDecoder",
    "EnhancementConfig",
    "PAYLOAD_VERSION",
    "DEFAULT_CRF",
    "CONFIG_VERSION",
    "encode_sequence",
    "decode_sequence",
]
