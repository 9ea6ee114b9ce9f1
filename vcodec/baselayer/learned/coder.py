"""Base-layer encoder and decoder: frames in order, explicit reference buffers.

Each holds the reference latent y_hat(t-1), the hyperprior of the last frame
that carried z, and the skip flags' context state; everything they decode or
predict from comes from those buffers and the payload (:mod:`vcodec.baselayer.learned.payload`).
The encoder's choices (skip blocks, hyperprior refresh, RDOQ, latent refinement)
live in :mod:`vcodec.baselayer.learned.rdo` and :mod:`vcodec.baselayer.learned.refine`; the decoder never
depends on how they were made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from vcodec._compressai import BufferedRansEncoder, RansDecoder
from vcodec.baselayer.learned import motion, rdo, refine
from vcodec.baselayer.learned.entropy import MIN_RANS_SYMBOLS, PAD_CDF
from vcodec.baselayer.learned.geometry import BaseGeometry, check_long_side, frame_to_tensor
from vcodec.baselayer.learned.payload import BasePayload, HeaderMemory, quality_code
from vcodec.baselayer.learned.skipmap import (
    BINARY_CDF_LENGTHS,
    BINARY_CDFS,
    BINARY_OFFSETS,
    SkipContextModel,
    block_grid,
    expand_blocks,
    flag_bits_estimate,
)
from vcodec.baselayer.learned.tools import CodingTools, FrameDetail, FrameReport
from vcodec.errors import BitstreamError, ConfigError, InputError
from vcodec.io.frame import Frame

if TYPE_CHECKING:
    from vcodec.baselayer.learned.base_codec import BaseCodec

__all__ = ["BaseDecoder", "BaseEncoder"]


#: each binary CDF as a one-entry table, (cdfs, lengths, offsets), for decoding one flag
_BINARY_TABLES = [([cdf], [length], [offset]) for cdf, length, offset
                  in zip(BINARY_CDFS, BINARY_CDF_LENGTHS, BINARY_OFFSETS, strict=True)]


class BaseEncoder:
    """Encodes frames in order; holds the reference y_hat(t-1) and its hyperprior explicitly."""

    def __init__(self, codec: BaseCodec, quality: float = 0.5, intra_period: int = 32,
                 tools: CodingTools | None = None, long_side: int | None = None) -> None:
        if not isinstance(intra_period, int) or intra_period < 1:
            raise ConfigError(f"intra period {intra_period!r} is invalid; use an integer >= 1 (32 is usual)")
        check_long_side(long_side)
        self.codec = codec
        self.long_side = long_side
        self.qcode = quality_code(quality)
        self._frame_qcode = self.qcode  # the code of the frame being coded (P-frames may differ)
        self.intra_period = intra_period
        self.tools = tools or CodingTools()
        self.reference: torch.Tensor | None = None
        self.reference_hyper: torch.Tensor | None = None
        self.frame_count = 0
        self._headers = HeaderMemory()  # what version-4 P-frame headers leave out
        self.last_y_hat: torch.Tensor | None = None
        self.last_geometry: BaseGeometry | None = None
        self.last_report: FrameReport | None = None
        #: keep the frame's arrays in last_detail (analyses such as tools/bench_pbits.py; off: memory)
        self.keep_detail = False
        self.last_detail: FrameDetail | None = None
        self._skip_model = SkipContextModel()
        self._motion_coder = motion.MotionCoder()
        self.last_motion: motion.MotionField | None = None
        self.last_refinement: dict[str, float] | None = None
        self._weights: np.ndarray | None = None
        self._last_skip_share = 0.5
        #: change gate: per pixel, the source picture its latent position was last coded from
        self._gate_source: np.ndarray | None = None
        self._roi_detector: Any = None  # float64 copy of the shipped detector (CodingTools.p_roi)

    @property
    def quality(self) -> float:
        return self.qcode / 65535

    def set_quality(self, quality: float) -> None:
        self.qcode = quality_code(quality)

    def next_is_intra(self) -> bool:
        return self.reference is None or self.frame_count % self.intra_period == 0

    def encode_frame(self, frame: Frame, intra: bool | None = None, reconstruct: bool = True
                     ) -> tuple[bytes, Frame | None]:
        """Code one frame; ``intra=None`` follows the intra period. Returns (payload, x_base)."""
        if intra is None:
            intra = self.next_is_intra()
        if not intra and self.reference is None:
            raise ConfigError("the first frame (or the first after a reset) must be intra; "
                              "pass intra=True or intra=None")
        codec = self.codec
        geom = codec.geometry(frame.width, frame.height, self.long_side)
        prev = None if intra else self.reference
        if prev is not None and tuple(prev.shape[-2:]) != geom.latent_size:
            raise InputError(f"frame {frame.index} is {frame.width}x{frame.height} but the reference "
                             f"is for another size; start a new intra frame")
        self._frame_qcode = self.qcode
        if not intra and self.tools.p_quality_offset:
            q = min(max(self.qcode / 65535 + self.tools.p_quality_offset, 0.0), 1.0)
            self._frame_qcode = quality_code(q)
        x = frame_to_tensor(frame, geom)
        y = codec.analyse(x)
        if self.tools.payload_version == 1:
            payload, y_hat = self._code_v1(y, prev, intra, geom, frame)
        else:
            payload, y_hat = self._code_v2(y.double(), prev, intra, geom, frame, x)
        self.reference = y_hat
        self.last_y_hat = y_hat
        self.last_geometry = geom
        self.frame_count = 1 if intra else self.frame_count + 1
        x_base = None
        if reconstruct:
            x_base = codec.reconstruct(y_hat, geom, frame.bit_depth, frame.matrix, frame.index)
        return payload, x_base

    def _code_z(self, y: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        gain, zstep, off, eb = self.codec._path.for_quality(self._frame_qcode)
        qs = torch.tensor(zstep, dtype=torch.float64)
        with torch.no_grad():
            z = self.codec.net.h_a(y.float()).double()
            z_strings = eb.compress(z, qs=qs)
            z_hat = eb.decompress(z_strings, z.shape[-2:], qs=qs)
        return z_strings[0], z_hat

    def _code_v1(self, y: torch.Tensor, prev: torch.Tensor | None, intra: bool, geom: BaseGeometry,
                 frame: Frame) -> tuple[bytes, torch.Tensor]:
        """vcodec 0.1's coding: z on every frame, plain rounding, no skip."""
        path = self.codec._path
        gain, zstep, off, eb = path.for_quality(self._frame_qcode)
        z_string, z_hat = self._code_z(y)
        means, idx = path.params(z_hat, prev, gain)
        sym = torch.round((y.double() - means) * gain)
        y_strings = path.gc.compress(sym.float(), idx)
        y_hat = path.reconstruct(sym, means, idx, gain, off)
        lh, lw = geom.latent_size
        payload = BasePayload(intra, self._frame_qcode, frame.width, frame.height, lh, lw, z_string,
                              y_strings[0],
                              version=1).to_bytes()
        self.last_report = FrameReport(intra, 8 * len(payload), 8 * len(z_string))
        return payload, y_hat

    def _code_v2(self, y: torch.Tensor, prev: torch.Tensor | None, intra: bool, geom: BaseGeometry,
                 frame: Frame, x: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        path, tools = self.codec._path, self.tools
        gain, zstep, off, eb = path.for_quality(self._frame_qcode)
        z_string: bytes | None = None
        if intra or tools.z_refresh == "always" or self.reference_hyper is None:
            z_string, z_hat = self._code_z(y)
            self.reference_hyper = path.hyper(z_hat)
        if self._weights is None and tools.rdo_lambda > 0:
            self._weights = rdo.channel_weights(self.codec._T32, y, 1.0 / gain)
        field: motion.MotionField | None = None
        if prev is not None and tools.motion:
            # from here on the frame predicts from the warped reference: means, skips, dead zone
            field, prev = self._choose_motion(y, prev, gain)
        self.last_motion = field
        means, idx = path.params_from_hyper(self.reference_hyper, prev, gain)
        if not intra and z_string is None and tools.z_refresh == "auto":
            fresh, fresh_z_hat = self._code_z(y)
            fresh_hyper = path.hyper(fresh_z_hat)
            fresh_means, fresh_idx = path.params_from_hyper(fresh_hyper, prev, gain)

            def latent_bits(m: torch.Tensor, i: torch.Tensor) -> float:
                return float(path.symbol_costs(np.round(((y - m) * gain).numpy()), i.numpy()).sum())

            if 8 * len(fresh) + latent_bits(fresh_means, fresh_idx) < latent_bits(means, idx):
                z_string, means, idx, self.reference_hyper = fresh, fresh_means, fresh_idx, fresh_hyper
        weights = self._weights if self._weights is not None else np.ones(y.shape[1])
        idx_np = idx.numpy()
        offset = off.numpy()[idx_np]
        self.last_refinement = None
        if intra and tools.effort == "slow":
            y, self.last_refinement = self._refine(y, x, means, path.table.numpy()[idx_np], offset, gain)
        residual = ((y - means) * gain).numpy()

        def bits_of(s: np.ndarray) -> np.ndarray:
            return path.symbol_costs(s, idx_np)

        sym, bits, dist = rdo.rdoq(residual, bits_of, offset, weights,
                                   float(tools.rdo_lambda) if tools.rdoq else 0.0)
        pixels = x[0].numpy()
        moved: np.ndarray | None = None  # Hy x Wy positions the change gate saw change (P-frames only)
        if tools.p_gate > 0 and prev is not None and self._gate_source is not None \
                and self._gate_source.shape == pixels.shape:
            moved = rdo.changed_positions(rdo.pixel_change(self._gate_source, pixels), float(tools.p_gate))
        if tools.p_roi > 0 and prev is not None:
            objects = self._object_positions(x, geom, float(tools.p_roi))
            moved = objects if moved is None else moved | objects
        if prev is not None and tools.p_deadzone > 0:
            prev_residual = ((prev.double() - means) * gain).numpy()
            sym, bits, dist = rdo.hold_stable(residual, prev_residual, sym, bits, dist, bits_of, offset,
                                              weights, float(tools.p_deadzone),
                                              None if moved is None else ~moved)
        changed = int(np.count_nonzero(sym != np.round(residual)))
        lh, lw = geom.latent_size
        skip_pos = np.zeros((lh, lw), dtype=bool)
        flags: np.ndarray | None = None
        flag_indexes: list[int] = []
        enc = BufferedRansEncoder()
        symbols_written = False  # CompressAI's coder aborts the process on empty input: never give it one
        if intra:
            self._motion_coder.reset()
        elif tools.motion:
            if field is None:
                self._motion_coder.no_field()
            else:
                self._motion_coder.write(enc, field, tools.motion)
                symbols_written = True
        if intra:
            self._skip_model.reset()
        elif tools.skip_block:
            grid = block_grid(lh, lw, tools.skip_block)
            self._skip_model.check_previous(grid)
            flags = np.zeros((grid.rows, grid.cols), np.uint8)  # lambda 0: distortion is free, never copy
            if tools.rdo_lambda > 0:
                # a P-frame: encode_frame() refused one without a reference
                ref = cast(torch.Tensor, prev)
                copy_dist = weights.reshape(1, -1, 1, 1) * (((y - ref.double()) * gain).numpy()) ** 2
                allowed = None
                if tools.skip_mode == "zero" or moved is not None:
                    allowed = rdo.zero_blocks(sym, tools.skip_block)
                    if moved is not None:  # lossy copies only where nothing changed
                        allowed |= ~rdo.block_any(moved, tools.skip_block)
                flags = rdo.decide_skip(bits, dist, copy_dist, tools.skip_block, float(tools.rdo_lambda),
                                        flag_bits_estimate(self._last_skip_share), allowed).skip
            flag_indexes = self._skip_model.indexes(flags)
            enc.encode_with_indexes(flags.reshape(-1).astype(np.int64).tolist(), flag_indexes,
                                    BINARY_CDFS, BINARY_CDF_LENGTHS, BINARY_OFFSETS)
            symbols_written = True
            self._skip_model.finish_frame(flags)
            self._last_skip_share = float(flags.mean())
            skip_pos = expand_blocks(flags, grid, lh, lw)
        else:
            self._skip_model.previous = None
        coded = np.broadcast_to(~skip_pos, sym.shape[1:])[None]
        if coded.any():
            enc.encode_with_indexes(sym[coded].astype(np.int64).tolist(),
                                    *path.coder_tables_for(idx_np[coded].astype(np.int64)))
            symbols_written = True
        if symbols_written:
            # CompressAI's flush sizes its output by the symbol count and overruns it for fewer than
            # four symbols; padding symbols after the last due one are never read by a decoder
            enc.encode_with_indexes([0] * MIN_RANS_SYMBOLS, [0] * MIN_RANS_SYMBOLS, *_BINARY_TABLES[PAD_CDF])
        y_string = enc.flush() if symbols_written else b""
        sym_t = torch.from_numpy(np.where(coded, sym, 0.0))
        y_hat = path.reconstruct(sym_t, means, idx, gain, off)
        if flags is not None and prev is not None:
            y_hat = torch.where(torch.from_numpy(skip_pos)[None, None], prev, y_hat)
        if tools.p_gate > 0:
            # intra frame (or the gate has no picture of this size yet): every position is coded now
            if intra or self._gate_source is None or self._gate_source.shape != pixels.shape:
                self._gate_source = pixels.copy()
            else:
                assert self._gate_source is not None
                stride = rdo.LATENT_STRIDE
                renewed = np.repeat(np.repeat(~skip_pos, stride, axis=0), stride, axis=1)
                self._gate_source[:, renewed] = pixels[:, renewed]
        payload = self._headers.compact(BasePayload(
            intra, self._frame_qcode, frame.width if intra else 0, frame.height if intra else 0,
            lh if intra else 0, lw if intra else 0, z_string, y_string, version=tools.payload_version,
            skip_block=tools.skip_block if flags is not None else 0,
            motion_block=field.block if field is not None else 0,
            motion_range=tools.motion if field is not None else 0)).to_bytes()
        blocks = 0 if flags is None else int(flags.size)
        self.last_detail = None if not self.keep_detail else FrameDetail(
            y.numpy(), None if prev is None else prev.double().numpy(), means.numpy(), float(gain), sym,
            idx_np, ~skip_pos, flags, tuple(flag_indexes))
        self.last_report = FrameReport(intra, 8 * len(payload), 8 * len(z_string or b""), blocks,
                                       0 if flags is None else int(flags.sum()), changed,
                                       0 if field is None else int(field.moved.size),
                                       0 if field is None else int(field.moved.sum()))
        return payload, y_hat

    #: estimated bits of a moved block's flag and vector (the encoder's decision only)
    MOTION_VECTOR_BITS = 12.0
    #: latent positions the temporal context model reads around each one (two 3x3 convolutions)
    CONTEXT_REACH = 2

    def _choose_motion(self, y: torch.Tensor, prev: torch.Tensor, gain: float
                       ) -> tuple[motion.MotionField | None, torch.Tensor]:
        """Each block's vector (nearest warped reference on the latent), kept where it saves bits;
        returns the field (None when no block moves) and the reference warped by it.

        The saving is estimated per block from the entropy model's own costs of the rounded
        residual under the warped and the co-located reference; a moved block must save more
        than its vector costs.
        """
        tools, path = self.tools, self.codec._path
        source = y[0].numpy()
        reference = prev[0].double().numpy()
        weights = self._weights if self._weights is not None else np.ones(source.shape[0])
        found = motion.search(source, reference, weights, tools.motion_block, tools.motion,
                              tools.motion_precision)
        vectors = found.vectors
        candidate = motion.MotionField(tools.motion_block, vectors)
        if not candidate.moved.any():
            return None, prev
        hyper = self.reference_hyper
        assert hyper is not None
        # only the moved blocks' bits are compared: evaluate the entropy model on the rows and
        # columns of blocks that hold them, plus the context model's reach (two 3x3 layers), so a
        # few moving objects do not cost two whole-frame passes
        b = tools.motion_block
        lh, lw = y.shape[-2:]
        rows, cols = np.nonzero(candidate.moved)
        r0, r1 = int(rows.min()) * b, min(int(rows.max() + 1) * b, lh)
        c0, c1 = int(cols.min()) * b, min(int(cols.max() + 1) * b, lw)
        m = self.CONTEXT_REACH
        t0, t1, u0, u1 = max(r0 - m, 0), min(r1 + m, lh), max(c0 - m, 0), min(c1 + m, lw)
        crop_y = y[..., t0:t1, u0:u1]
        crop_hyper = hyper[..., t0:t1, u0:u1]

        def block_bits(ref: torch.Tensor) -> np.ndarray:
            means, idx = path.params_from_hyper(crop_hyper, ref[..., t0:t1, u0:u1], gain)
            bits = path.symbol_costs(np.round(((crop_y - means) * gain).numpy()), idx.numpy())[0].sum(axis=0)
            return motion.block_sums(bits[r0 - t0:r1 - t0, c0 - u0:c1 - u0], b)

        warped = motion.compensate(prev, candidate)
        saving = np.zeros(candidate.moved.shape)
        saving[r0 // b:-(-r1 // b), c0 // b:-(-c1 // b)] = block_bits(prev) - block_bits(warped)
        keep = candidate.moved & (saving > self.MOTION_VECTOR_BITS)
        if not keep.any():
            return None, prev
        if keep.sum() == candidate.moved.sum():
            return candidate, warped  # the same tensor: the context model's output is reused
        field = motion.MotionField(tools.motion_block, np.where(keep[..., None], vectors, 0))
        return field, motion.compensate(prev, field)

    def _object_positions(self, x: torch.Tensor, geom: BaseGeometry, min_score: float) -> np.ndarray:
        """Latent positions under the objects the detector finds on the source (score >= min_score)."""
        net = self.codec.net
        if net.front_enc is None:
            raise ConfigError("P-frame object protection needs a base model that carries its detector's "
                              "front end; use p_roi=0")
        if self._roi_detector is None:
            from vcodec.detection import get_detector
            from vcodec.detection.exact import to_float64

            self._roi_detector = to_float64(get_detector(self.codec.detector))
        with torch.no_grad():
            feats = net.front_enc(x.flip(1) * 255.0)  # F(x): the detector's own split features (BGR)
            # on a 2**-12 grid, then float64: the boxes must not depend on the thread count
            feats = torch.round(feats.double() * 4096.0) / 4096.0
            dets = self._roi_detector.back(feats, geom.to_detector())[0]
        keep = dets.scores >= min_score
        return rdo.box_positions(dets.boxes[keep], geom.scale, geom.latent_size)

    def _refine(self, y: torch.Tensor, x: torch.Tensor, means: torch.Tensor, sigma: np.ndarray,
                offset: np.ndarray, gain: float) -> tuple[torch.Tensor, dict[str, float]]:
        net = self.codec.net
        with torch.no_grad():
            # F(x): the detector's own split features when the model carries its front end
            target = net.front_enc(x.flip(1) * 255.0) if net.front_enc is not None else net.T(y.float())
        lam_f, feat_var = self.codec.objective_weights()
        return refine.refine_latent(y, means, torch.from_numpy(sigma), torch.from_numpy(offset), gain, net.T,
                                    target, int(x.shape[-1] * x.shape[-2]),
                                    refine.RefineSettings(lam_f=lam_f, feat_var=feat_var))

    def reset(self) -> None:
        self.reference = None
        self.reference_hyper = None
        self.frame_count = 0
        self._headers = HeaderMemory()
        self._gate_source = None
        self._skip_model.reset()
        self._motion_coder.reset()


class BaseDecoder:
    """Decodes payloads in order; holds the reference y_hat(t-1), its hyperprior and skip map."""

    def __init__(self, codec: BaseCodec, long_side: int | None = None) -> None:
        check_long_side(long_side)
        self.codec = codec
        self.long_side = long_side
        self.reference: torch.Tensor | None = None
        self.reference_hyper: torch.Tensor | None = None
        self.last_geometry: BaseGeometry | None = None
        self._headers = HeaderMemory()
        self.last_payload: BasePayload | None = None
        self.last_skip: np.ndarray | None = None
        self.last_motion: motion.MotionField | None = None
        self._skip_model = SkipContextModel()
        self._motion_coder = motion.MotionCoder()

    def _geometry(self, p: BasePayload) -> BaseGeometry:
        if p.has_size:
            geom = self.codec.geometry(p.width, p.height, self.long_side)
            if geom.latent_size != (p.latent_h, p.latent_w):
                raise BitstreamError(f"base payload latent {p.latent_h}x{p.latent_w} does not match frame "
                                     f"{p.width}x{p.height} (expected {geom.latent_size})", offset=8,
                                     unit="base payload")
        if not p.intra:
            if self.reference is None or self.last_geometry is None:
                raise BitstreamError("P-frame without a reference: decoding must start at an intra "
                                     "frame", unit="base payload")
            if p.has_size and tuple(self.reference.shape[-2:]) != geom.latent_size:
                raise BitstreamError("P-frame size differs from its reference frame", unit="base payload")
            if not p.has_size:
                return self.last_geometry
        return geom

    def decode_frame(self, payload: bytes, intra: bool | None = None) -> torch.Tensor:
        """Payload -> y_hat (1 x M x Hy x Wy float32). ``intra`` (from the unit) must agree."""
        p = BasePayload.from_bytes(payload)
        if intra is not None and bool(intra) != p.intra:
            raise BitstreamError(f"unit says intra={bool(intra)} but its base payload says "
                                 f"intra={p.intra}", unit="base payload")
        p = self._headers.expand(p)
        geom = self._geometry(p)
        path = self.codec._path
        gain, zstep, off, eb = path.for_quality(p.qcode)
        lh, lw = geom.latent_size
        prev = None if p.intra else self.reference
        try:
            hyper = self.reference_hyper
            if p.z_string is not None:
                qs = torch.tensor(zstep, dtype=torch.float64)
                hyper = path.hyper(eb.decompress([p.z_string], (lh // 4, lw // 4), qs=qs))
            elif hyper is None:
                raise BitstreamError("P-frame reuses a hyperprior but none was decoded: decoding must "
                                     "start at an intra frame", unit="base payload")
            dec = self._open_string(p, lh, lw)
            if p.intra:
                self._motion_coder.reset()
                self._skip_model.reset()
            elif p.version >= 3:
                field = self._decode_motion(p, dec, lh, lw)
                self.last_motion = field
                assert prev is not None  # a P-frame: _geometry() refused one without a reference
                prev = motion.compensate(prev, field)
            means, idx = path.params_from_hyper(hyper, prev, gain)
            if tuple(idx.shape) != (1, self.codec.cfg.m, lh, lw):
                raise BitstreamError("base payload shape does not match the model", unit="base payload")
            if p.version == 1:
                sym = path.gc.decompress([p.y_string], idx).double()
                skip_pos = None
            else:
                sym, skip_pos = self._decode_symbols(p, dec, idx, lh, lw)
        except (ValueError, RuntimeError) as exc:
            if isinstance(exc, BitstreamError):
                raise
            raise BitstreamError(f"base payload cannot be entropy-decoded: {exc}",
                                 unit="base payload") from exc
        y_hat = path.reconstruct(sym, means, idx, gain, off)
        if skip_pos is not None and prev is not None:
            y_hat = torch.where(torch.from_numpy(skip_pos)[None, None], prev, y_hat)
        self.reference = y_hat
        self.reference_hyper = hyper
        self.last_geometry = geom
        self.last_payload = p
        return y_hat

    def _open_string(self, p: BasePayload, lh: int, lw: int) -> RansDecoder | None:
        """The y string's rANS decoder (None for version 1, which CompressAI's own call reads)."""
        if p.version == 1:
            return None
        dec = RansDecoder()
        if p.y_string:
            # CompressAI's decoder does not bounds-check its reads: a damaged string could make it read
            # past the end. Zero guard words keep every read inside our buffer (at most one 32-bit read
            # per symbol) and end any escape-code loop (a zero chunk terminates it).
            symbols = self.codec.cfg.m * lh * lw + (lh * lw if p.skip_block else 0) \
                + (3 * lh * lw if p.motion_block else 0)
            dec.set_stream(p.y_string + bytes(4 * (symbols + 16)))
        elif p.skip_block or p.motion_block or p.intra:  # flags (or a whole intra latent) to read
            raise BitstreamError("base payload has an empty y string where symbols are due",
                                 unit="base payload")
        return dec

    def _decode_motion(self, p: BasePayload, dec: RansDecoder | None, lh: int, lw: int
                       ) -> motion.MotionField | None:
        if not p.motion_block:
            self._motion_coder.no_field()
            return None
        assert dec is not None

        def read(cdf: list[int]) -> int:
            return int(dec.decode_stream([0], [cdf], [len(cdf)], [0])[0])

        grid = block_grid(lh, lw, p.motion_block)
        try:
            return self._motion_coder.decode(read, grid.rows, grid.cols, p.motion_block, p.motion_range)
        except ValueError as exc:
            raise BitstreamError(f"base payload motion field is damaged: {exc}", unit="base payload") from exc

    def _decode_symbols(self, p: BasePayload, dec: RansDecoder | None, idx: torch.Tensor, lh: int, lw: int
                        ) -> tuple[torch.Tensor, np.ndarray | None]:
        assert dec is not None
        skip_pos: np.ndarray | None = None
        if p.skip_block:
            grid = block_grid(lh, lw, p.skip_block)
            model = self._skip_model
            model.check_previous(grid)
            flags = np.zeros((grid.rows, grid.cols), dtype=np.uint8)
            for r in range(grid.rows):
                for c in range(grid.cols):
                    i, ctx = model.next_index(flags, r, c)
                    # one flag at a time (the next context needs it); hand over only its own table:
                    # passing all 63 makes pybind convert every one of them on each call (12x slower)
                    bit = dec.decode_stream([0], *_BINARY_TABLES[i])[0]
                    if bit not in (0, 1):
                        raise BitstreamError(f"skip flag ({r}, {c}) decodes to {bit}: the payload is damaged",
                                             unit="base payload")
                    flags[r, c] = bit
                    model.update(ctx, bit)
            model.finish_frame(flags)
            skip_pos = expand_blocks(flags, grid, lh, lw)
            self.last_skip = flags
        else:
            if not p.intra:
                self._skip_model.previous = None
            self.last_skip = None
        idx_np = idx.numpy()
        coded = np.ones(idx_np.shape, dtype=bool) if skip_pos is None else \
            np.broadcast_to(~skip_pos, idx_np.shape[1:])[None]
        sym = np.zeros(idx_np.shape, dtype=np.float64)
        if coded.any():
            if not p.y_string:
                raise BitstreamError("base payload has an empty y string where symbols are due",
                                     unit="base payload")
            values = dec.decode_stream(*self.codec._path.coder_tables_for(idx_np[coded].astype(np.int64)))
            sym[coded] = np.asarray(values, dtype=np.float64)
        return torch.from_numpy(sym), skip_pos

    def reset(self) -> None:
        self.reference = None
        self.reference_hyper = None
        self._headers = HeaderMemory()
        self._skip_model.reset()
        self._motion_coder.reset()
