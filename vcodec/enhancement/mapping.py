"""Residual mapping: signed differences <-> unsigned encoder samples.

For an input picture ``x`` of ``B`` bits and the base reconstruction
``x_base`` of the same size and depth, the residual ``r = x - x_base`` lies in
``[-(2**B - 1), 2**B - 1]`` on every plane.  It is coded by a conventional
encoder at a *container* depth ``C`` (chosen per encoder, see
:mod:`vcodec.enhancement.codecs`) as::

    s = clip(r, -2**(C-1), 2**(C-1) - 1) + 2**(C-1)        # e.g. 512 + r at C = 10

so zero residual is mid-grey ``2**(C-1)``.  With ``C = B + 1`` (8-bit input in
a 10-bit container, 10-bit input in a 12-bit one) the clip never bites: for
8-bit input ``s`` stays in ``[257, 767]`` and the mapping is exact.  Where the
encoder cannot code ``B + 1`` bits the residual is clipped (counted, and
reported as a :class:`ResidualClippedWarning`): a good base keeps ``|r|``
well below the limit.  The decoder computes ``r' = s' - 2**(C-1)`` and
``x_hat = clip(x_base + r', 0, 2**B - 1)``.

The single-layer *anchor* codes ``x`` itself at its own depth (no offset).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from vcodec.errors import InputError
from vcodec.io.frame import Frame, Planes420, default_matrix, require_same_format

__all__ = [
    "Residual",
    "ResidualClippedWarning",
    "check_pair",
    "compute_residual",
    "map_residual",
    "unmap_residual",
    "reconstruct",
]


class ResidualClippedWarning(UserWarning):
    """Part of a residual did not fit the encoder's sample range and was clipped."""


@dataclass
class Residual(Planes420):
    """A decoded enhancement picture.

    ``anchor`` False: ``y``/``u``/``v`` are signed ``int32`` differences to add
    to the base.  ``anchor`` True: they are the samples of the full picture
    (single-layer anchor) and no base is used.  ``bit_depth`` is the depth of
    the picture the residual belongs to.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bit_depth: int
    anchor: bool = False
    #: the decoder reported this picture as a key (IDR / intra) frame
    keyframe: bool = False


def check_pair(x: Frame, x_base: Frame) -> None:
    """Raise :class:`InputError` unless ``x`` and ``x_base`` have the same size and depth."""
    require_same_format(x_base, "base picture", x, "the input frame is",
                        size_fix="the base reconstruction must have the input's size",
                        depth_fix="convert one with Frame.with_bit_depth()")


def compute_residual(x: Frame, x_base: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x - x_base`` per plane, as signed ``int32``."""
    check_pair(x, x_base)
    return tuple(  # type: ignore[return-value]
        a.astype(np.int32) - b.astype(np.int32) for a, b in zip(x.planes, x_base.planes, strict=True)
    )


def map_residual(
    planes: tuple[np.ndarray, ...], container_depth: int, *, warn: bool = True
) -> tuple[list[np.ndarray], int]:
    """Map signed residual planes to unsigned samples of ``container_depth`` bits.

    Returns the planes (``uint8`` at 8 bits, ``uint16`` above) and the number of
    samples that had to be clipped.
    """
    offset = 1 << (container_depth - 1)
    dtype = np.uint8 if container_depth == 8 else np.uint16
    out: list[np.ndarray] = []
    clipped = 0
    for r in planes:
        s = r.astype(np.int32) + offset
        bad = int(np.count_nonzero((s < 0) | (s > 2 * offset - 1)))
        if bad:
            clipped += bad
            s = np.clip(s, 0, 2 * offset - 1)
        out.append(s.astype(dtype))
    if clipped and warn:
        total = sum(p.size for p in planes)
        warnings.warn(
            f"{clipped} of {total} residual samples exceed the {container_depth}-bit range "
            f"[-{offset}, {offset - 1}] and were clipped; the full decode will not be exact there "
            "(use libx265 for an exact mapping, or a better base layer)",
            ResidualClippedWarning,
            stacklevel=3,
        )
    return out, clipped


def unmap_residual(planes: tuple[np.ndarray, ...], container_depth: int) -> list[np.ndarray]:
    """Inverse of :func:`map_residual` (without the clip): signed ``int32`` planes."""
    offset = 1 << (container_depth - 1)
    return [p.astype(np.int32) - offset for p in planes]


def reconstruct(x_base: Frame | None, residual: Residual, *, index: int | None = None) -> Frame:
    """The full picture ``clip(x_base + residual)``, or the anchor picture itself.

    ``x_base`` must be ``None`` for an anchor residual and a frame of the
    residual's size and depth otherwise.
    """
    top = (1 << residual.bit_depth) - 1
    dtype = np.uint8 if residual.bit_depth == 8 else np.uint16
    if residual.anchor:
        if x_base is not None:
            raise InputError(
                "this enhancement picture is a single-layer anchor; reconstruct it with x_base=None"
            )
        y, u, v = (np.clip(p, 0, top).astype(dtype) for p in residual.planes)
        return Frame(y, u, v, bit_depth=residual.bit_depth, index=index or 0,
                     matrix=default_matrix(residual.width, residual.height))
    if x_base is None:
        raise InputError("a residual needs the base picture: pass the base layer's reconstruction as x_base")
    require_same_format(x_base, "base picture", residual, "the residual is")
    y, u, v = (
        np.clip(b.astype(np.int32) + r, 0, top).astype(dtype)
        for b, r in zip(x_base.planes, residual.planes, strict=False)
    )
    return Frame(y, u, v, bit_depth=residual.bit_depth, index=x_base.index if index is None else index,
                 matrix=x_base.matrix)

