"""Enhancement layer (layer 1): the residual ``x - x_base`` for human viewing.

Coded by a conventional encoder (libx265 by default, libx264, SVT-AV1 or
libvpx-vp9) through PyAV.  See :mod:`vcodec.enhancement.layer` for the stream
contract and payload layout, :mod:`vcodec.enhancement.mapping` for the sample
mapping, :mod:`vcodec.enhancement.roi` for region-of-interest mode and
``docs/ENHANCEMENT.md`` for the whole picture.
"""

from vcodec.enhancement.codecs import CODECS, DEFAULT_CODEC, available_encoders
from vcodec.enhancement.layer import (
    DEFAULT_CRF,
    EnhancementDecoder,
    EnhancementEncoder,
    EnhancementPacket,
    decode_sequence,
    encode_sequence,
)
from vcodec.enhancement.mapping import Residual, ResidualClippedWarning, reconstruct
from vcodec.enhancement.roi import RoiReport, frame_psnr, psnr, roi_mask, roi_report

__all__ = [
    "CODECS",
    "DEFAULT_CODEC",
    "DEFAULT_CRF",
    "available_encoders",
    "EnhancementEncoder",
    "EnhancementDecoder",
    "EnhancementPacket",
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
