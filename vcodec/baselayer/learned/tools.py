"""The encoder's coding-tool choices (payload versions 2 and 3) and its per-frame report."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vcodec.baselayer.learned.payload import (
    MAX_MOTION_RANGE,
    MOTION_BLOCK_SIZES,
    PAYLOAD_VERSION,
    SKIP_BLOCK_SIZES,
)
from vcodec.errors import ConfigError

__all__ = ["CodingTools", "EFFORTS", "FrameDetail", "FrameReport", "SKIP_MODES", "TUNES", "Z_REFRESH"]

#: how P-frame blocks may be skipped (see CodingTools)
SKIP_MODES = ("zero", "rd")
#: when P-frames send z (see CodingTools)
Z_REFRESH = ("auto", "never", "always")
#: encoder effort presets (see CodingTools.for_effort)
EFFORTS = ("faster", "fast", "slow")
#: what the encoder may assume about the camera, like x265's --tune (see CodingTools.tuned)
TUNES = ("default", "fixed-camera", "moving-camera")


@dataclass(frozen=True)
class CodingTools:
    """Encoder choices of payload versions 2 and 3 (recorded in LAYER_CONFIG; the decoder needs none).

    ``skip_block``: B of the B x B skip blocks of P-frames (0 = no skip map); 4 by default (2
    until the dead zone widened to 0.55): with motion compensation and the dead zone, P-frames
    are cheap enough that a flag per 2 x 2 positions is 6-8 % of them; against 2, BD-rate on
    (bits, feature PSNR) -8.3 to -15.9 % on the five static-camera windows, -1.1 % on
    CiscoVT2people, +3.2 % and +6.9 % where the camera or the whole scene moves (1080p dashcam,
    cars), which is why ``moving-camera`` keeps 2 (docs/BASE_LAYER.md, "Skip blocks of 4 x 4");
    ``skip_mode``: ``"zero"`` skips only blocks whose symbols all round to 0 (what the
    block would have coded anyway, minus the predictor's drift) when copying is also the
    cheaper by rate-distortion cost; ``"rd"`` lets the cost decide for every block (lossy:
    cheaper P-frames, but measured to lose small objects, see docs/BASE_LAYER.md);
    ``z_refresh``: when a P-frame sends a fresh hyperlatent z: ``"never"`` (it reuses the
    last hyperprior, normally the intra frame's), ``"always"`` (every frame, as payload
    version 1 did) or ``"auto"`` (when z's bits plus the latent's estimated bits under the
    fresh parameters undercut the latent's estimated bits under the reused ones);
    ``rdo_lambda``: bits per squared quantisation step (weighted, see :mod:`vcodec.baselayer.learned.rdo`)
    of the skip decisions and RDOQ; 0 means never skip;
    ``rdoq``: choose symbols by rate-distortion cost (else plain rounding; off by default:
    measured to cost detections at every lambda tried);
    ``effort``: ``"fast"`` codes g_a's latent; ``"slow"`` refines each intra frame's latent
    first (:mod:`vcodec.baselayer.learned.refine`: gradient steps on the training objective);
    ``"faster"`` is ``"fast"`` without the motion search (``motion=0``; see :meth:`for_effort`);
    ``p_quality_offset``: added to the quality of P-frames (clamped to [0, 1]; each payload
    carries its own quality code), like a conventional encoder's P-frame QP offset; -0.2 by
    default: against -0.1 (the default until vcodec 0.3), BD-rate on (bits, feature PSNR)
    -26.4 % on one-by-one, -14.9 % on car-detection, -7.3 % on bottle-detection (held-out
    frames), -2.4 % on cars (docs/BASE_LAYER.md), since skipped blocks and motion-compensated
    blocks keep the quality of the frames they come from;
    ``p_deadzone``: in P-frames, elements whose source latent moved by less than this many
    quantisation steps since the (motion-compensated) reference keep the reference's value (0 =
    off; see :func:`vcodec.baselayer.learned.rdo.hold_stable`); 0.55 by default (vcodec 0.3: off,
    then 0.5): most P-frame bits are +-1 symbols of elements just past half a step
    from the reference, where the reference's own rounding, not the scene, changed; against 0.5,
    BD-rate on (bits, feature PSNR) -2.3 to -14.3 % on all eight windows of six clips measured,
    on the adapted back end's mAP@0.5 -2.9 to -13.2 % on five windows and +11.5 % on the one
    where a person walks in (docs/BASE_LAYER.md, "How wide a dead zone"); wider zones cost
    detections where objects enter at the lowest qualities;
    ``p_gate``: a change gate for P-frames (0 = off): a latent position counts as changed when
    the mean absolute difference (8-bit levels) of the 16 x 16 source patch behind it, against
    the source it was last coded from, exceeds ``p_gate``, and so do its 8 neighbours (g_a sees
    beyond its own patch).  Blocks with a changed position are coded as without the gate
    (zero-skip only, no dead zone); the others may be copied whenever the rate-distortion cost
    says so (``rd`` skip) and take the dead zone, so the lossy decisions never touch a block
    where something moved (:func:`vcodec.baselayer.learned.rdo.pixel_change`); off by default:
    measured to save only 1-6 % of a P-frame at q 0.5 (the bits are where objects move,
    docs/BASE_LAYER.md);
    ``p_roi``: protect detected objects in P-frames (0 = off): the encoder runs the detector
    (shipped weights, float64 back end) on its own front-end features F(x) of the source, and
    positions under a box scoring at least ``p_roi`` (grown by one position) are treated like
    changed ones by the gate: coded, never copied lossily nor held by the dead zone; elsewhere
    the lossy decisions apply (``rd`` skip, ``p_deadzone``); off by default: with the dead zone at
    q 0.5 it cut car-detection's P-frames by 23 % but cost one-by-one 0.03 mAP@0.5
    (docs/BASE_LAYER.md);
    ``motion``: motion-compensated prediction of P-frames (:mod:`vcodec.baselayer.learned.motion`):
    the largest vector component in quarter latent positions (0 = off; 8 = two latent positions,
    32 pixels at the base geometry); the encoder searches each ``motion_block`` x ``motion_block``
    block's vector on the latent and keeps it where the estimated bits say it pays;
    ``payload_version``: 4 (P-frame headers inherit the quality code and block sizes); 3 the
    same stream with those bytes in every P-frame; 2 writes what vcodec 0.2 reads (no motion
    field), 1 what vcodec 0.1 reads (no tools).
    """

    skip_block: int = 4
    skip_mode: str = "zero"
    z_refresh: str = "auto"
    rdo_lambda: float = 16.0
    rdoq: bool = False
    effort: str = "fast"
    p_quality_offset: float = -0.2
    p_deadzone: float = 0.55
    payload_version: int = PAYLOAD_VERSION
    p_gate: float = 0.0
    p_roi: float = 0.0
    motion: int = 8
    motion_block: int = 4
    motion_precision: int = 4

    def __post_init__(self) -> None:
        if self.payload_version not in (1, 2, 3, 4):
            raise ConfigError(f"base payload version {self.payload_version!r} cannot be written; "
                              "use 1, 2, 3 or 4")
        if isinstance(self.motion, bool) or not isinstance(self.motion, int) \
                or not 0 <= self.motion <= MAX_MOTION_RANGE:
            raise ConfigError(f"motion range {self.motion!r} is invalid; use 0 (off) to {MAX_MOTION_RANGE} "
                              "quarter latent positions (e.g. 8)")
        if self.motion_precision not in (1, 2, 4):
            raise ConfigError(f"motion precision {self.motion_precision!r} is invalid; use 1 (whole latent "
                              "positions), 2 (halves) or 4 (quarters)")
        if self.motion_block not in MOTION_BLOCK_SIZES:
            raise ConfigError(f"motion block size {self.motion_block!r} is invalid; use one of "
                              f"{', '.join(map(str, MOTION_BLOCK_SIZES))}")
        if self.skip_block and self.skip_block not in SKIP_BLOCK_SIZES:
            raise ConfigError(f"skip block size {self.skip_block!r} is invalid; use 0 (off) or one of "
                              f"{', '.join(map(str, SKIP_BLOCK_SIZES))}")
        offset = self.p_quality_offset
        if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not -1.0 <= offset <= 1.0:
            raise ConfigError(f"P-frame quality offset {self.p_quality_offset!r} is invalid; use a number in "
                              "[-1, 1] (e.g. -0.1)")
        if isinstance(self.p_deadzone, bool) or not isinstance(self.p_deadzone, (int, float)) \
                or not 0.0 <= self.p_deadzone <= 4.0:
            raise ConfigError(f"P-frame dead zone {self.p_deadzone!r} is invalid; use 0 (off) to 4 "
                              "quantisation steps (e.g. 0.5)")
        if isinstance(self.p_gate, bool) or not isinstance(self.p_gate, (int, float)) \
                or not 0.0 <= self.p_gate <= 255.0:
            raise ConfigError(f"P-frame change gate {self.p_gate!r} is invalid; use 0 (off) to 255 "
                              "(8-bit levels of mean absolute difference, e.g. 8)")
        if isinstance(self.p_roi, bool) or not isinstance(self.p_roi, (int, float)) \
                or not 0.0 <= self.p_roi < 1.0:
            raise ConfigError(f"P-frame object protection {self.p_roi!r} is invalid; use 0 (off) or a "
                              "detection score in (0, 1) (e.g. 0.1)")
        if self.effort not in EFFORTS:
            raise ConfigError(f"base effort {self.effort!r} is invalid; use one of {', '.join(EFFORTS)}")
        if self.skip_mode not in SKIP_MODES:
            raise ConfigError(f"skip mode {self.skip_mode!r} is invalid; use one of {', '.join(SKIP_MODES)}")
        if not (isinstance(self.rdo_lambda, (int, float)) and 0 <= float(self.rdo_lambda) < 1e6):
            raise ConfigError(f"RDO lambda {self.rdo_lambda!r} is invalid; use a number >= 0 (0 = off)")
        if self.z_refresh not in Z_REFRESH:
            raise ConfigError(f"z refresh {self.z_refresh!r} is invalid; use one of {', '.join(Z_REFRESH)}")
        if self.payload_version == 1 and (self.skip_block or self.z_refresh != "always" or self.rdoq
                                          or self.p_quality_offset or self.p_deadzone or self.p_gate
                                          or self.p_roi or self.motion):
            raise ConfigError("payload version 1 has no coding tools; use CodingTools.version1()")
        if self.effort == "faster" and self.motion:
            raise ConfigError("effort 'faster' has no motion search; use motion=0 (CodingTools.for_effort)")
        if self.motion and self.payload_version < 3:
            raise ConfigError(f"payload version {self.payload_version} has no motion field; use motion=0 "
                              "or payload version 3 or 4")

    @classmethod
    def version1(cls) -> CodingTools:
        return cls(skip_block=0, z_refresh="always", rdo_lambda=0.0, rdoq=False, p_quality_offset=0.0,
                   payload_version=1, motion=0, p_deadzone=0.0)

    @classmethod
    def for_effort(cls, effort: str) -> CodingTools:
        """The preset of ``--base-effort``: faster (no motion search: payload version 2, which vcodec
        0.2 decodes), fast (the default tools) or slow (fast + intra latent refinement)."""
        if effort == "faster":
            # without motion compensation 2 x 2 skip blocks were measured the better size
            return cls(effort="faster", motion=0, payload_version=2, skip_block=2)
        return cls(effort=effort)

    def tuned(self, tune: str) -> CodingTools:
        """These tools under ``--base-tune`` (docs/BASE_LAYER.md, "The dead zone with motion
        compensation"). ``fixed-camera`` widens the temporal dead zone to 0.75 step: 11-45 % fewer
        bits for the same feature fidelity on the static-camera clips and P-frames at 4-7 % of an
        intra frame, but the adapted back end's mAP@0.5 at equal rate went both ways (-27 % to
        +21 %). ``moving-camera`` codes P-frames 0.1 below their intra frame instead of 0.2, turns
        the dead zone off and keeps skip blocks of 2 x 2: where little is carried over from the
        reference, all three cost detections or fidelity on the 1080p dashcam clip."""
        if tune not in TUNES:
            raise ConfigError(f"base tune {tune!r} is invalid; use one of {', '.join(TUNES)}")
        if tune == "fixed-camera":
            return replace(self, p_deadzone=0.75)
        if tune == "moving-camera":
            return replace(self, p_quality_offset=-0.1, p_deadzone=0.0, skip_block=2)
        return self

    @classmethod
    def version2(cls) -> CodingTools:
        """The defaults of vcodec 0.2: no motion field (streams that version reads), P-frames 0.1
        below their intra frame, no dead zone, skip blocks of 2 x 2."""
        return cls(motion=0, payload_version=2, p_quality_offset=-0.1, p_deadzone=0.0, skip_block=2)

    @property
    def skips(self) -> bool:
        return self.payload_version >= 2 and self.skip_block > 0

    def to_dict(self) -> dict[str, Any]:
        gate = {"p_gate": float(self.p_gate)} if self.p_gate else {}  # absent when off: records as before
        if self.p_roi:
            gate["p_roi"] = float(self.p_roi)
        if self.motion:
            gate["motion"] = self.motion
            gate["motion_block"] = self.motion_block
            gate["motion_precision"] = self.motion_precision
        return {"skip_block": self.skip_block, "skip_mode": self.skip_mode, "z_refresh": self.z_refresh,
                "rdo_lambda": float(self.rdo_lambda), "rdoq": self.rdoq, "effort": self.effort,
                "p_quality_offset": float(self.p_quality_offset), "p_deadzone": float(self.p_deadzone),
                "payload_version": self.payload_version, **gate}


@dataclass
class FrameReport:
    """What the encoder decided for the frame just coded (bits from the real payload)."""

    intra: bool
    payload_bits: int
    z_bits: int
    blocks: int = 0
    skipped_blocks: int = 0
    changed_by_rdoq: int = 0  # symbols other than plain rounding (RDOQ and the temporal dead zone)
    motion_blocks: int = 0
    moved_blocks: int = 0


@dataclass(frozen=True)
class FrameDetail:
    """The encoder's arrays for the frame just coded (``BaseEncoder.keep_detail``; for bit analyses).

    ``source`` is the source latent y and ``reference`` what the frame predicted from: y_hat(t-1),
    warped by the frame's motion field when it has one (None for intra frames), both
    1 x M x Hy x Wy float64; ``symbols`` the symbols chosen for every element (also where the
    block was skipped, where they were not sent), ``scale_index`` their scale-table indexes;
    ``coded`` (Hy x Wy) where symbols were sent; ``flag_indexes`` the skip flags' probability
    states in raster order (k - 1 for P(skip) = k / 64), empty without a skip map.
    """

    source: np.ndarray
    reference: np.ndarray | None
    means: np.ndarray
    gain: float
    symbols: np.ndarray
    scale_index: np.ndarray
    coded: np.ndarray
    flags: np.ndarray | None
    flag_indexes: tuple[int, ...]
