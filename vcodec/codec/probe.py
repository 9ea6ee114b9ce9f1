"""The per-GOP inter-layer probe: a GOP's first frame coded as one intra picture both ways.

:class:`~vcodec.codec.Encoder` with ``inter_layer="auto"`` codes the first
frame of every intra period as a residual over the base picture and as a full
frame, each as one intra picture, and keeps the cheaper at equal PSNR-Y
(:func:`choose_inter_layer`, with :data:`PROBE_MARGIN`).  The two halves are
independent (the full-frame half needs no base picture), so the encoder may run
them in different threads; each measures the same bytes and PSNR either way.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from vcodec.io.frame import Frame

__all__ = ["DB_PER_RATE_DOUBLING", "PROBE_MARGIN", "ProbePicture", "choose_inter_layer", "probe_picture"]

#: PSNR-Y gained per doubling of the enhancement rate, used to compare the two probe
#: pictures at equal quality; measured with libx265 (QP 27 -> 37 on the shared clips:
#: 3.8-5.6 dB per doubling), so 5 dB is a middle value
DB_PER_RATE_DOUBLING = 5.0

#: the GOP's first frame, coded as one intra picture, understates what the residual costs over the
#: GOP: its inter frames also carry the base picture's frame-to-frame changes.  Measured on 16-frame
#: GOPs (docs/CODEC.md, tools/bench_inter_layer.py: 2 clips x 2 base qualities x 2 QPs) the
#: residual/full-frame byte ratio of the GOP was 1.5-2.4x that of the probe, so a GOP takes the
#: residual only when it wins the probe by the smallest of those factors
PROBE_MARGIN = 1.5


def choose_inter_layer(residual_bytes: int, residual_psnr: float, full_bytes: int, full_psnr: float,
                       margin: float = 1.0) -> bool:
    """True when the residual is the cheaper enhancement at equal PSNR-Y (ties go to the residual).

    Each picture's bytes are moved to a common quality with :data:`DB_PER_RATE_DOUBLING`:
    ``cost = bytes * 2 ** (-psnr / DB_PER_RATE_DOUBLING)``.  When a PSNR is infinite
    (lossless) only the bytes are compared.  ``margin``: the residual's cost is multiplied by it
    first (the encoder uses :data:`PROBE_MARGIN`).
    """
    if not (math.isfinite(residual_psnr) and math.isfinite(full_psnr)):
        return residual_bytes * margin <= full_bytes
    gap = (full_psnr - residual_psnr) / DB_PER_RATE_DOUBLING
    return residual_bytes * margin * 2.0 ** gap <= full_bytes


class ProbePicture(NamedTuple):
    """One probe picture: its coded bytes and the PSNR-Y of the picture a viewer would see."""

    bytes: int
    psnr_y: float


def probe_picture(frame: Frame, x_base: Frame | None, enh_kwargs: dict[str, Any]) -> ProbePicture:
    """Code ``frame`` as one intra picture: the residual over ``x_base``, or the full frame when None.

    ``enh_kwargs``: the layer's :class:`~vcodec.enhancement.EnhancementEncoder` settings (the
    intra period is replaced by 1).  Uses NumPy and PyAV only (no torch), so it may run in a
    thread beside the base layer.
    """
    from vcodec.enhancement import EnhancementDecoder, EnhancementEncoder, frame_psnr, reconstruct

    kw = enh_kwargs | {"intra_period": 1}
    predict = x_base is not None
    with EnhancementEncoder(frame.width, frame.height, anchor=not predict, **kw) as enc:
        packets = enc.encode(frame, x_base) + enc.flush()
        with EnhancementDecoder(enc.codec_name, enc.config(), enc.extradata) as dec:
            pics: dict[int, Any] = {}
            for p in packets:
                pics.update(dec.decode(p))
            pics.update(dec.flush())
    x_hat = reconstruct(x_base, pics[0], index=frame.index)
    return ProbePicture(sum(len(p.data) for p in packets), round(float(frame_psnr(frame, x_hat)[0]), 4))
