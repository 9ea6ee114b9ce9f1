"""Region-of-interest enhancement and quality measurement.

In ROI mode the enhancement residual is kept only inside the given boxes
(typically the detector's output): a weight mask is 1 inside every box, falls
linearly to 0 over ``margin`` pixels outside it (the feather avoids a hard
edge the encoder would spend bits on), and is 0 elsewhere.  The residual is
multiplied by the mask and rounded, so outside the regions the full decode is
(almost exactly) the base picture and the encoder spends next to nothing there.

:func:`roi_report` measures what that buys: PSNR inside and outside the boxes
and the bits spent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from vcodec.errors import InputError
from vcodec.io.frame import Frame

__all__ = ["Box", "roi_mask", "apply_roi", "psnr", "frame_psnr", "RoiReport", "roi_report"]

#: (x0, y0, x1, y1) in luma pixels, x1/y1 exclusive
Box = tuple[float, float, float, float]


def _check_boxes(boxes: Sequence[Sequence[float]], width: int, height: int) -> list[Box]:
    out: list[Box] = []
    for i, b in enumerate(boxes):
        if len(b) != 4:
            raise InputError(f"ROI box {i} is {b!r}; a box is (x0, y0, x1, y1) in pixels")
        x0, y0, x1, y1 = (float(v) for v in b)
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
            raise InputError(f"ROI box {i} is {b!r}; need finite x0 <= x1 and y0 <= y1 (pixels)")
        out.append((x0, y0, x1, y1))
    return out


def roi_mask(boxes: Sequence[Sequence[float]], width: int, height: int, margin: float = 8.0) -> np.ndarray:
    """A ``height x width`` float32 weight in [0, 1]: 1 in the boxes, a linear feather of ``margin`` px.

    Boxes are clipped to the picture; an empty list gives an all-zero mask.
    """
    if margin < 0:
        raise InputError(f"ROI margin {margin} is negative; use a margin >= 0 pixels")
    mask = np.zeros((height, width), np.float32)
    # distances are measured from pixel centres to the box edges
    xs = np.arange(width, dtype=np.float32) + 0.5
    ys = np.arange(height, dtype=np.float32) + 0.5
    for x0, y0, x1, y1 in _check_boxes(boxes, width, height):
        dx = np.maximum(np.maximum(x0 - xs, xs - x1), 0.0)
        dy = np.maximum(np.maximum(y0 - ys, ys - y1), 0.0)
        dist = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
        if margin > 0:
            w = np.clip(1.0 - dist / margin, 0.0, 1.0)
        else:
            w = (dist == 0).astype(np.float32)
        np.maximum(mask, w, out=mask)
    return mask


def apply_roi(
    residual: tuple[np.ndarray, np.ndarray, np.ndarray], boxes: Sequence[Sequence[float]], margin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weight signed residual planes by the ROI mask (chroma at half resolution), rounding to integers."""
    y, u, v = residual
    h, w = y.shape
    my = roi_mask(boxes, w, h, margin)
    # the chroma mask is the mean of each 2x2 luma block so chroma follows luma
    mc = my.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return (
        np.rint(y * my).astype(np.int32),
        np.rint(u * mc).astype(np.int32),
        np.rint(v * mc).astype(np.int32),
    )


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    """PSNR in dB between two sample arrays (``inf`` when equal, ``nan`` when empty)."""
    if a.size == 0:
        return float("nan")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def frame_psnr(x: Frame, x_hat: Frame) -> tuple[float, float]:
    """(PSNR-Y, PSNR-YUV) where PSNR-YUV weights Y:U:V as 6:1:1 (the MPEG convention)."""
    peak = float(x.max_value)
    py = psnr(x.y, x_hat.y, peak)
    pu = psnr(x.u, x_hat.u, peak)
    pv = psnr(x.v, x_hat.v, peak)
    if math.inf in (py, pu, pv):
        # combine MSEs rather than dB so an exact plane does not give inf overall
        mses = [
            float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
            for a, b in zip(x.planes, x_hat.planes, strict=True)
        ]
        mse = (6 * mses[0] + mses[1] + mses[2]) / 8
        return py, float("inf") if mse == 0 else 10 * math.log10(peak * peak / mse)
    return py, (6 * py + pu + pv) / 8


@dataclass
class RoiReport:
    """Quality inside and outside the regions of interest, and the bits spent."""

    psnr_y_inside: float
    psnr_y_outside: float
    inside_fraction: float  # fraction of luma pixels inside (mask == 1)
    bits: int | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def roi_report(
    x: Frame | Sequence[Frame],
    x_hat: Frame | Sequence[Frame],
    boxes: Sequence[Sequence[float]] | Sequence[Sequence[Sequence[float]]],
    *,
    bits: int | None = None,
) -> RoiReport:
    """PSNR-Y inside the boxes and outside them, over one frame or a sequence.

    ``boxes`` is one list of boxes for a single frame, or one list per frame
    for a sequence.  ``bits`` (e.g. the sum of the enhancement packets' sizes
    times 8) is carried into the report.  Squared errors are pooled over all
    frames before converting to dB.
    """
    xs = [x] if isinstance(x, Frame) else list(x)
    hs = [x_hat] if isinstance(x_hat, Frame) else list(x_hat)
    per_frame = [boxes] if isinstance(x, Frame) else list(boxes)
    if not (len(xs) == len(hs) == len(per_frame)):
        raise InputError(
            f"roi_report got {len(xs)} frames, {len(hs)} reconstructions and {len(per_frame)} box lists; "
            "pass one of each per frame"
        )
    if not xs:
        raise InputError("roi_report needs at least one frame")
    se_in = se_out = 0.0
    n_in = n_out = 0
    for a, b, bx in zip(xs, hs, per_frame, strict=True):
        if (a.width, a.height) != (b.width, b.height):
            raise InputError(f"reconstruction is {b.width}x{b.height} but the frame is {a.width}x{a.height}")
        inside = roi_mask(bx, a.width, a.height, margin=0.0) >= 1.0  # type: ignore[arg-type]
        d2 = (a.y.astype(np.float64) - b.y.astype(np.float64)) ** 2
        se_in += float(d2[inside].sum())
        se_out += float(d2[~inside].sum())
        n_in += int(inside.sum())
        n_out += int((~inside).sum())
    peak = float(xs[0].max_value)

    def db(se: float, n: int) -> float:
        if n == 0:
            return float("nan")
        return float("inf") if se == 0 else 10 * math.log10(peak * peak * n / se)

    return RoiReport(db(se_in, n_in), db(se_out, n_out), n_in / (n_in + n_out), bits)
