"""Enhancement layer (layer 1): the residual ``x - x_base`` for human viewing.

Coded by a conventional encoder (libx265 by default, libx264, SVT-AV1 or
libvpx-vp9) through PyAV.  See :mod:`vcodec.enhancement.encoder` for the stream
contract, :mod:`vcodec.enhancement.packet` for the payload layout,
:mod:`vcodec.enhancement.config` for the stored settings,
:mod:`vcodec.enhancement.decoder`, :mod:`vcodec.enhancement.mapping` for the sample
mapping, :mod:`vcodec.enhancement.roi` for region-of-interest mode and
``docs/ENHANCEMENT.md`` for the whole picture.
"""

from vcodec.enhancement.codecs import CODECS, DEFAULT_CODEC, available_encoders
from vcodec.enhancement.config import EnhancementConfig
from vcodec.enhancement.decoder import EnhancementDecoder, decode_sequence
from vcodec.enhancement.encoder import DEFAULT_CRF, EnhancementEncoder, encode_sequence
from vcodec.enhancement.mapping import Residual, ResidualClippedWarning, reconstruct
from vcodec.enhancement.packet import EnhancementPacket
from vcodec.enhancement.roi import RoiReport, frame_psnr, psnr, roi_mask, roi_report

__all__ = [
    "CODECS",
    "DEFAULT_CODEC",
    "DEFAULT_CRF",
    "available_encoders",
    "EnhancementEncoder",
    "EnhancementDecoder",
    "EnhancementPacket",
    "EnhancementConfig",
    "encode_sequence",
    "decode_sequence",
    "Residual",
    "ResidualClippedWarning",
    "reconstruct",
    "RoiReport",
    "roi_report",
    "roi_mask",
    "frame_psnr",
    "psnr",
]
