"""Bit-exact base-layer coding (layer 0): encoder, decoder, payload, weights.

One base *unit* per frame carries a payload whose layout (versions 1 and 2)
is defined in :mod:`vcodec.models.payload`.  Version 2 adds the coding tools
of a video coder: P-frames reuse the hyperprior of their intra frame, skip
blocks copy y_hat(t-1) for a flag (:mod:`vcodec.models.skipmap`), and the
encoder chooses symbols and skips by rate-distortion cost
(:mod:`vcodec.models.rdo`; the decoder does not depend on those choices).

Geometry: a W x H frame whose long side exceeds ``max_long_side`` (832) is
first downscaled (area filter) so that it fits -- spatial scalability: the
base layer serves analytics at <= 832 pixels, the enhancement layer codes
the difference to the upscaled x_base.  The (possibly scaled) picture is
padded at the bottom and right with grey 114 to a multiple of 64, the same
geometry as the detector's ``prepare(frame, mode="pad", multiple=64)``, so
the stride-16 latent and the detector's stride-8 features line up.

Determinism: the entropy parameters (hyper synthesis, temporal context,
entropy-parameter heads) run in float64 on a private copy of the weights;
means are rounded to a 1/128 grid, scales are turned into CompressAI
scale-table indexes, the reconstruction offsets are a per-index table rounded
to 1/1024, and gain and hyperlatent step are rounded to fixed grids.  A
float64 result would have to fall within ~1e-13 of a rounding boundary for a
different reduction order (thread count, BLAS) to change a symbol, CDF or
y_hat.  y_hat itself is computed element-wise from integers and these
rounded values, so encoder and decoder hold bit-identical references.  What
leaves the decoder is made thread-independent the same way: T(y_hat) in
float64 rounded to 2**-12, x_base from a float64 g_s rounded to 8-bit samples,
and :meth:`BaseCodec.detect` runs the detector's back end on a float64 copy.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyBottleneckVbr, GaussianConditional
from vcodec.errors import (
    BitstreamError,
    ConfigError,
    InputError,
    WeightsError,
    WeightsMismatchError,
)
from vcodec.hashing import file_sha256
from vcodec.io.frame import Frame
from vcodec.models import rdo, refine
from vcodec.models.base_net import SCALE_TABLE, BaseNet, BaseNetConfig
from vcodec.models.payload import PAYLOAD_VERSION, SKIP_BLOCK_SIZES, BasePayload
from vcodec.models.skipmap import (
    BINARY_CDF_LENGTHS,
    BINARY_CDFS,
    BINARY_OFFSETS,
    SkipContextModel,
    block_grid,
    expand_blocks,
    flag_bits_estimate,
)
from vcodec.registry import Registry

__all__ = [
    "PAYLOAD_VERSION",
    "BaseGeometry",
    "BaseCodec",
    "BaseEncoder",
    "BaseDecoder",
    "BasePayload",
    "CodingTools",
    "BASE_MODELS",
    "WEIGHTS_DIR",
    "load_base_model",
    "save_base_weights",
    "file_sha256",
    "quality_code",
]

PAD_VALUE = 114  # the detector's letterbox/pad grey, so padded regions look alike to both

#: shipped weights live here as base-<detector>-v<N>.pt + .json
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

#: base model id -> path of its .json descriptor
BASE_MODELS: Registry[Path] = Registry("base model")


#: smallest working size: one padded 64 x 64 block
MIN_LONG_SIDE = 64


def check_long_side(long_side: int | None) -> None:
    if long_side is None:
        return
    if isinstance(long_side, bool) or not isinstance(long_side, int) or not MIN_LONG_SIDE <= long_side <= 0xFFFF:
        raise ConfigError(f"base working size {long_side!r} is invalid; use a long side in pixels of at least "
                          f"{MIN_LONG_SIDE} (e.g. 416, 640 or 832)")


def quality_code(quality: float) -> int:
    """Quality in [0, 1] -> the uint16 code written in every payload."""
    if not isinstance(quality, (int, float)) or not 0.0 <= float(quality) <= 1.0:
        raise ConfigError(f"base quality {quality!r} is out of range; use a number in [0, 1]")
    return int(round(float(quality) * 65535))


# -- geometry ------------------------------------------------------------------
@dataclass(frozen=True)
class BaseGeometry:
    """How a source frame maps onto the coded picture (scale, then pad bottom/right)."""

    width: int  # source frame
    height: int
    coded_width: int  # after downscale (== width when not scaled)
    coded_height: int
    padded_width: int  # after padding to the multiple
    padded_height: int

    @property
    def scale(self) -> float:
        """coded / source size (1.0 when the base is coded at full resolution)."""
        return self.coded_width / self.width

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.padded_height // 16, self.padded_width // 16

    def to_detector(self) -> Any:
        """The equivalent :class:`vcodec.detection.base.Geometry` (boxes back to source pixels)."""
        from vcodec.detection.base import Geometry

        return Geometry(self.width, self.height, self.padded_width, self.padded_height, self.scale,
                        0, 0, self.padded_width - self.coded_width, self.padded_height - self.coded_height,
                        "pad")

    @classmethod
    def for_size(cls, width: int, height: int, max_long_side: int = 832, multiple: int = 64) -> BaseGeometry:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise InputError(f"frame size {width}x{height} is not a positive even size")
        long_side = max(width, height)
        if long_side > max_long_side:
            s = max_long_side / long_side
            cw = max(2, int(round(width * s / 2)) * 2)
            ch = max(2, int(round(height * s / 2)) * 2)
        else:
            cw, ch = width, height
        pw = -(-cw // multiple) * multiple
        ph = -(-ch // multiple) * multiple
        return cls(width, height, cw, ch, pw, ph)


def frame_to_tensor(frame: Frame, geom: BaseGeometry) -> torch.Tensor:
    """1 x 3 x Hp x Wp float32 RGB in [0, 1], scaled and padded per ``geom``."""
    rgb = frame.to_rgb()
    if (geom.coded_width, geom.coded_height) != (frame.width, frame.height):
        import cv2

        rgb = cv2.resize(rgb, (geom.coded_width, geom.coded_height), interpolation=cv2.INTER_AREA)
    out = np.full((geom.padded_height, geom.padded_width, 3), PAD_VALUE, dtype=np.uint8)
    out[: geom.coded_height, : geom.coded_width] = rgb
    return torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def tensor_to_frame(x: torch.Tensor, geom: BaseGeometry, bit_depth: int = 8, matrix: str | None = None,
                    index: int = 0) -> Frame:
    """Inverse of :func:`frame_to_tensor`: crop the padding, upscale to the source size."""
    img = x[0, :, : geom.coded_height, : geom.coded_width].clamp(0, 1).mul(255.0).round()
    rgb = img.to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    if (geom.coded_width, geom.coded_height) != (geom.width, geom.height):
        import cv2

        rgb = cv2.resize(rgb, (geom.width, geom.height), interpolation=cv2.INTER_LINEAR)
    return Frame.from_rgb(rgb, bit_depth=bit_depth, matrix=matrix, index=index)


# -- the deterministic entropy-parameter path ------------------------------------------
#: how P-frame blocks may be skipped (see CodingTools)
SKIP_MODES = ("zero", "rd")
#: when P-frames send z (see CodingTools)
Z_REFRESH = ("auto", "never", "always")
#: encoder effort presets (see CodingTools)
EFFORTS = ("fast", "slow")

#: rANS strings of version-2 payloads end with this many padding symbols (P(0) = 1/2), unread
_MIN_RANS_SYMBOLS = 4
_PAD_CDF = len(BINARY_CDFS) // 2


class _EntropyPath:
    """Float64 copy of the parameter networks plus all rounding rules (see module docstring)."""

    def __init__(self, net: BaseNet) -> None:
        cfg = net.cfg
        self.cfg = cfg
        with torch.no_grad():
            self.h_s = copy.deepcopy(net.h_s).double().eval()
            self.ctx = copy.deepcopy(net.ctx).double().eval()
            self.ep_i = copy.deepcopy(net.ep_i).double().eval()
            self.ep_p = copy.deepcopy(net.ep_p).double().eval()
            self.quant_offset = copy.deepcopy(net.quant_offset).double().eval()
            self.gain2zqstep = copy.deepcopy(net.gain2zqstep).double().eval()
            self.gains = net.gain.detach().double().abs().clamp_min(1e-3).clone()
            eb = copy.deepcopy(net.entropy_bottleneck).double().eval()
        self._eb_proto = eb
        self.table = SCALE_TABLE.clone()
        self.gc = GaussianConditional(None)
        self.gc.update_scale_table(self.table.float())
        self._per_q: dict[int, tuple[float, float, torch.Tensor, EntropyBottleneckVbr]] = {}
        self._tables: tuple[list[list[int]], list[int], list[int]] | None = None
        self._ctx_of: tuple[torch.Tensor, torch.Tensor] | None = None
        #: encoder-side bit estimates per (scale index, symbol)
        self.symbol_costs = rdo.SymbolCosts(self.table.numpy())

    @staticmethod
    def _grid(x: torch.Tensor | float, grid: int) -> torch.Tensor:
        return torch.round(torch.as_tensor(x, dtype=torch.float64) * grid) / grid

    def for_quality(self, qcode: int) -> tuple[float, float, torch.Tensor, EntropyBottleneckVbr]:
        """(gain, z step, offset table per scale index, entropy bottleneck with CDFs) for a code."""
        hit = self._per_q.get(qcode)
        if hit is not None:
            return hit
        levels = self.gains.numel()
        pos = qcode / 65535 * (levels - 1)
        lo = min(int(pos), levels - 2)
        frac = pos - lo
        lg = float(torch.log(self.gains[lo])) * (1 - frac) + float(torch.log(self.gains[lo + 1])) * frac
        gain = float(self._grid(float(np.exp(lg)), 1 << 16))
        with torch.no_grad():
            zq = self.gain2zqstep(torch.tensor([[1.0 / gain]], dtype=torch.float64)).clamp_min(0.5)
            zstep = float(self._grid(float(zq), self.cfg.offset_grid))
            inp = torch.stack([self.table, torch.full_like(self.table, gain)], dim=-1)
            off = self._grid(-self.quant_offset(inp).squeeze(-1), self.cfg.offset_grid)
            eb = copy.deepcopy(self._eb_proto)
            eb.update_variable(force=True, qs=torch.tensor(zstep, dtype=torch.float64))
        hit = (gain, zstep, off, eb)
        self._per_q[qcode] = hit
        return hit

    def hyper(self, z_hat: torch.Tensor) -> torch.Tensor:
        """h_s(z_hat) in float64 (kept by version-2 coders for P-frames that reuse it)."""
        with torch.no_grad():
            return self.h_s(z_hat.double())

    def params(self, z_hat: torch.Tensor, prev: torch.Tensor | None, gain: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(rounded means, scale indexes) for y, all in float64 / int32."""
        return self.params_from_hyper(self.hyper(z_hat), prev, gain)

    def params_from_hyper(self, hyper: torch.Tensor, prev: torch.Tensor | None, gain: float
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            if prev is None:
                means, scales = self.ep_i(hyper).chunk(2, 1)
            else:
                p = prev.double()
                # one reference, one context: the encoder's z-refresh check asks twice per frame
                if self._ctx_of is None or self._ctx_of[0] is not prev:
                    self._ctx_of = (prev, self.ctx(p))
                dm, scales = self.ep_p(torch.cat([hyper, self._ctx_of[1]], dim=1)).chunk(2, 1)
                means = p + dm
            means = self._grid(means, self.cfg.mean_grid)
            s = F.softplus(scales) * gain
            # CompressAI's build_indexes rule (count of table entries below s), in float64
            idx = torch.bucketize(s, self.table[:-1]).to(torch.int32)
        return means, idx

    def coder_tables(self) -> tuple[list[list[int]], list[int], list[int]]:
        """The Gaussian CDFs as the rANS coder takes them (converted once)."""
        if self._tables is None:
            self._tables = (self.gc._quantized_cdf.tolist(), self.gc._cdf_length.reshape(-1).int().tolist(),
                            self.gc._offset.reshape(-1).int().tolist())
        return self._tables

    def reconstruct(self, sym: torch.Tensor, means: torch.Tensor, idx: torch.Tensor, gain: float,
                    off: torch.Tensor) -> torch.Tensor:
        """y_hat from integer symbols: element-wise float64, stored as float32."""
        s = sym.double()
        o = off[idx.long()] * (s != 0)
        y = torch.sign(s) * (s.abs() + o) / gain + means
        return y.float()


# -- codec, encoder, decoder ---------------------------------------------------------
class BaseCodec:
    """A loaded base-layer model: the networks plus id, sha256 and config."""

    def __init__(self, net: BaseNet, model_id: str = "untrained", sha256: str = "",
                 record: dict[str, Any] | None = None) -> None:
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.model_id = model_id
        self.sha256 = sha256
        self.record = record or {}
        self._path = _EntropyPath(self.net)
        with torch.no_grad():
            self._T64 = copy.deepcopy(self.net.T).double().eval()
            self._gs64 = copy.deepcopy(self.net.g_s).double().eval()
        self._det64: dict[int, tuple[Any, Any]] = {}

    # -- loading -------------------------------------------------------------
    @classmethod
    def from_weights(cls, path_or_id: str | Path, sha256: str | None = None) -> BaseCodec:
        """Load from a ``.pt``/``.json`` path or a registered model id (see :func:`load_base_model`)."""
        p = Path(path_or_id)
        if p.suffix in (".pt", ".json") and p.exists():
            return _load_files(p.with_suffix(".json"), sha256)
        return load_base_model(str(path_or_id), sha256)

    @property
    def cfg(self) -> BaseNetConfig:
        return self.net.cfg

    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable architecture config (what the weights were built with)."""
        return self.cfg.to_dict()

    @property
    def detector(self) -> str:
        return self.cfg.detector

    def objective_weights(self) -> tuple[float, float]:
        """(lam_f, feat_var) of the training objective, from the model's record (8, 1 if absent)."""
        import re

        m = re.search(r"([0-9.]+)\*Df", str(self.record.get("loss", "")))
        feat_var = self.record.get("feat_var", 1.0)
        return (float(m.group(1)) if m else 8.0,
                float(feat_var) if isinstance(feat_var, (int, float)) and feat_var > 0 else 1.0)

    def layer_config(self, quality: float, intra_period: int, tools: CodingTools | None = None,
                     long_side: int | None = None) -> dict[str, Any]:
        """Coding parameters for the stream's per-layer configuration record.

        ``max_long_side`` is the working size the decoder must use (``long_side`` or the model's).
        """
        record = {"model_id": self.model_id, "weights_sha256": self.sha256,
                  "base_quality": quality, "intra_period": intra_period,
                  "max_long_side": int(long_side or self.cfg.max_long_side), "multiple": self.cfg.multiple}
        record.update((tools or CodingTools()).to_dict())
        return record

    def geometry(self, width: int, height: int, long_side: int | None = None) -> BaseGeometry:
        """Scale to the working size (``long_side``, default the model's ``max_long_side``), pad."""
        return BaseGeometry.for_size(width, height, int(long_side or self.cfg.max_long_side), self.cfg.multiple)

    def encoder(self, quality: float = 0.5, intra_period: int = 32, tools: CodingTools | None = None,
                long_side: int | None = None) -> BaseEncoder:
        return BaseEncoder(self, quality, intra_period, tools, long_side)

    def decoder(self, long_side: int | None = None) -> BaseDecoder:
        return BaseDecoder(self, long_side)

    # -- decoding-side transforms --------------------------------------------------
    def features(self, y_hat: torch.Tensor) -> torch.Tensor:
        """T(y_hat): the detector's split features (N x C x H/8 x W/8 of the padded picture).

        Computed in float64 and rounded to a 2**-12 grid: float32 convolutions give
        thread-count-dependent last bits, and analytics results must not depend on
        the machine that decodes.
        """
        with torch.no_grad():
            f = self._T64(y_hat.double())
            return (torch.round(f * 4096.0) / 4096.0).float()

    def detect(self, y_hat: torch.Tensor, detector: Any, geometry: BaseGeometry) -> Any:
        """Base-only analytics: the detector's back end on T(y_hat); boxes in source pixels."""
        if int(detector.split_channels) != self.cfg.split_channels:
            raise ConfigError(f"detector {getattr(detector, 'name', detector)!r} splits at "
                              f"{detector.split_channels} channels but base model {self.model_id!r} was "
                              f"trained for {self.cfg.detector!r} ({self.cfg.split_channels} channels)")
        with torch.no_grad():
            back = self._double_detector(detector)
            return back.back(self.features(y_hat).double(), geometry.to_detector())[0]

    def _double_detector(self, detector: Any) -> Any:
        """A float64 copy of the detector (cached): its float32 head gives thread-dependent bits."""
        hit = self._det64.get(id(detector))
        if hit is None or hit[0] is not detector:
            hit = (detector, copy.deepcopy(detector).double().eval())
            self._det64 = {id(detector): hit}  # keep one: a codec serves one detector at a time
        return hit[1]

    def reconstruct_tensor(self, y_hat: torch.Tensor) -> torch.Tensor:
        """g_s(y_hat) in float64 (clamped to [0, 1]).

        float64 because x_base is rounded to 8-bit samples and the enhancement layer
        codes x - x_base: float32 convolutions would flip a few roundings per frame
        between machines/thread counts, so the viewer's picture would not be
        bit-exact.
        """
        with torch.no_grad():
            return self._gs64(y_hat.double()).clamp_(0, 1)

    def reconstruct(self, y_hat: torch.Tensor, geometry: BaseGeometry, bit_depth: int = 8,
                    matrix: str | None = None, index: int = 0) -> Frame:
        """x_base as a Frame at the source size (g_s, crop, upscale when the base was scaled)."""
        return tensor_to_frame(self.reconstruct_tensor(y_hat), geometry, bit_depth, matrix, index)


@dataclass(frozen=True)
class CodingTools:
    """Encoder choices of the version-2 payload (recorded in LAYER_CONFIG; the decoder needs none).

    ``skip_block``: B of the B x B skip blocks of P-frames (0 = no skip map);
    ``skip_mode``: ``"zero"`` skips only blocks whose symbols all round to 0 (what the
    block would have coded anyway, minus the predictor's drift) when copying is also the
    cheaper by rate-distortion cost; ``"rd"`` lets the cost decide for every block (lossy:
    cheaper P-frames, but measured to lose small objects, see docs/BASE_LAYER.md);
    ``z_refresh``: when a P-frame sends a fresh hyperlatent z: ``"never"`` (it reuses the
    last hyperprior, normally the intra frame's), ``"always"`` (every frame, as payload
    version 1 did) or ``"auto"`` (when z's bits plus the latent's estimated bits under the
    fresh parameters undercut the latent's estimated bits under the reused ones);
    ``rdo_lambda``: bits per squared quantisation step (weighted, see :mod:`vcodec.models.rdo`)
    of the skip decisions and RDOQ; 0 means never skip;
    ``rdoq``: choose symbols by rate-distortion cost (else plain rounding; off by default:
    measured to cost detections at every lambda tried);
    ``effort``: ``"fast"`` codes g_a's latent; ``"slow"`` refines each intra frame's latent
    first (:mod:`vcodec.models.refine`: gradient steps on the training objective);
    ``payload_version``: 2, or 1 to write streams that vcodec 0.1 reads (no tools).
    """

    skip_block: int = 2
    skip_mode: str = "zero"
    z_refresh: str = "auto"
    rdo_lambda: float = 16.0
    rdoq: bool = False
    effort: str = "fast"
    payload_version: int = PAYLOAD_VERSION

    def __post_init__(self) -> None:
        if self.payload_version not in (1, 2):
            raise ConfigError(f"base payload version {self.payload_version!r} cannot be written; use 1 or 2")
        if self.skip_block and self.skip_block not in SKIP_BLOCK_SIZES:
            raise ConfigError(f"skip block size {self.skip_block!r} is invalid; use 0 (off) or one of "
                              f"{', '.join(map(str, SKIP_BLOCK_SIZES))}")
        if self.effort not in EFFORTS:
            raise ConfigError(f"base effort {self.effort!r} is invalid; use one of {', '.join(EFFORTS)}")
        if self.skip_mode not in SKIP_MODES:
            raise ConfigError(f"skip mode {self.skip_mode!r} is invalid; use one of {', '.join(SKIP_MODES)}")
        if not (isinstance(self.rdo_lambda, (int, float)) and 0 <= float(self.rdo_lambda) < 1e6):
            raise ConfigError(f"RDO lambda {self.rdo_lambda!r} is invalid; use a number >= 0 (0 = off)")
        if self.z_refresh not in Z_REFRESH:
            raise ConfigError(f"z refresh {self.z_refresh!r} is invalid; use one of {', '.join(Z_REFRESH)}")
        if self.payload_version == 1 and (self.skip_block or self.z_refresh != "always" or self.rdoq):
            raise ConfigError("payload version 1 has no coding tools; use CodingTools.version1()")

    @classmethod
    def version1(cls) -> CodingTools:
        return cls(skip_block=0, z_refresh="always", rdo_lambda=0.0, rdoq=False, payload_version=1)

    @property
    def skips(self) -> bool:
        return self.payload_version == 2 and self.skip_block > 0

    def to_dict(self) -> dict[str, Any]:
        return {"skip_block": self.skip_block, "skip_mode": self.skip_mode, "z_refresh": self.z_refresh,
                "rdo_lambda": float(self.rdo_lambda), "rdoq": self.rdoq, "effort": self.effort,
                "payload_version": self.payload_version}


@dataclass
class FrameReport:
    """What the encoder decided for the frame just coded (bits from the real payload)."""

    intra: bool
    payload_bits: int
    z_bits: int
    blocks: int = 0
    skipped_blocks: int = 0
    changed_by_rdoq: int = 0


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
        self.intra_period = intra_period
        self.tools = tools or CodingTools()
        self.reference: torch.Tensor | None = None
        self.reference_hyper: torch.Tensor | None = None
        self.frame_count = 0
        self.last_y_hat: torch.Tensor | None = None
        self.last_geometry: BaseGeometry | None = None
        self.last_report: FrameReport | None = None
        self._skip_model = SkipContextModel()
        self.last_refinement: dict[str, float] | None = None
        self._weights: np.ndarray | None = None
        self._last_skip_share = 0.5

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
        codec, net, path = self.codec, self.codec.net, self.codec._path
        geom = codec.geometry(frame.width, frame.height, self.long_side)
        prev = None if intra else self.reference
        if prev is not None and tuple(prev.shape[-2:]) != geom.latent_size:
            raise InputError(f"frame {frame.index} is {frame.width}x{frame.height} but the reference "
                             f"is for another size; start a new intra frame")
        gain, zstep, off, eb = path.for_quality(self.qcode)
        x = frame_to_tensor(frame, geom)
        with torch.no_grad():
            y = net.g_a(x)
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
        gain, zstep, off, eb = self.codec._path.for_quality(self.qcode)
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
        gain, zstep, off, eb = path.for_quality(self.qcode)
        z_string, z_hat = self._code_z(y)
        means, idx = path.params(z_hat, prev, gain)
        sym = torch.round((y.double() - means) * gain)
        y_strings = path.gc.compress(sym.float(), idx)
        y_hat = path.reconstruct(sym, means, idx, gain, off)
        lh, lw = geom.latent_size
        payload = BasePayload(intra, self.qcode, frame.width, frame.height, lh, lw, z_string, y_strings[0],
                              version=1).to_bytes()
        self.last_report = FrameReport(intra, 8 * len(payload), 8 * len(z_string))
        return payload, y_hat

    def _code_v2(self, y: torch.Tensor, prev: torch.Tensor | None, intra: bool, geom: BaseGeometry,
                 frame: Frame, x: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        path, tools = self.codec._path, self.tools
        gain, zstep, off, eb = path.for_quality(self.qcode)
        z_string: bytes | None = None
        if intra or tools.z_refresh == "always" or self.reference_hyper is None:
            z_string, z_hat = self._code_z(y)
            self.reference_hyper = path.hyper(z_hat)
        means, idx = path.params_from_hyper(self.reference_hyper, prev, gain)
        if not intra and z_string is None and tools.z_refresh == "auto":
            fresh, fresh_z_hat = self._code_z(y)
            fresh_hyper = path.hyper(fresh_z_hat)
            fresh_means, fresh_idx = path.params_from_hyper(fresh_hyper, prev, gain)

            def latent_bits(m: torch.Tensor, i: torch.Tensor) -> float:
                return float(path.symbol_costs(np.round(((y - m) * gain).numpy()), i.numpy()).sum())

            if 8 * len(fresh) + latent_bits(fresh_means, fresh_idx) < latent_bits(means, idx):
                z_string, means, idx, self.reference_hyper = fresh, fresh_means, fresh_idx, fresh_hyper
        if self._weights is None and tools.rdo_lambda > 0:
            self._weights = rdo.channel_weights(self.codec._T64, y, 1.0 / gain)
        weights = self._weights if self._weights is not None else np.ones(y.shape[1])
        idx_np = idx.numpy()
        sigma = path.table.numpy()[idx_np]
        offset = off.numpy()[idx_np]
        self.last_refinement = None
        if intra and tools.effort == "slow":
            y, self.last_refinement = self._refine(y, x, means, sigma, offset, gain)
        residual = ((y - means) * gain).numpy()
        sym, bits, dist = rdo.rdoq(residual, lambda s: path.symbol_costs(s, idx_np), offset, weights,
                                   float(tools.rdo_lambda) if tools.rdoq else 0.0)
        changed = int(np.count_nonzero(sym != np.round(residual)))
        lh, lw = geom.latent_size
        skip_pos = np.zeros((lh, lw), dtype=bool)
        flags: np.ndarray | None = None
        enc = BufferedRansEncoder()
        symbols_written = False  # CompressAI's coder aborts the process on empty input: never give it one
        if intra:
            self._skip_model.reset()
        elif tools.skip_block:
            grid = block_grid(lh, lw, tools.skip_block)
            self._skip_model.check_previous(grid)
            copy_dist = weights.reshape(1, -1, 1, 1) * (((y - prev.double()) * gain).numpy()) ** 2
            allowed = None if tools.skip_mode == "rd" else rdo.zero_blocks(sym, tools.skip_block)
            decision = rdo.decide_skip(bits, dist, copy_dist, tools.skip_block, float(tools.rdo_lambda),
                                       flag_bits_estimate(self._last_skip_share), allowed)
            flags = decision.skip if tools.rdo_lambda > 0 else np.zeros((grid.rows, grid.cols), np.uint8)
            enc.encode_with_indexes(flags.reshape(-1).astype(np.int64).tolist(), self._skip_model.indexes(flags),
                                    BINARY_CDFS, BINARY_CDF_LENGTHS, BINARY_OFFSETS)
            symbols_written = True
            self._skip_model.finish_frame(flags)
            self._last_skip_share = float(flags.mean())
            skip_pos = expand_blocks(flags, grid, lh, lw)
        else:
            self._skip_model.previous = None
        coded = np.broadcast_to(~skip_pos, sym.shape[1:])[None]
        cdfs, lengths, offsets = path.coder_tables()
        if coded.any():
            enc.encode_with_indexes(sym[coded].astype(np.int64).tolist(),
                                    idx_np[coded].astype(np.int64).tolist(), cdfs, lengths, offsets)
            symbols_written = True
        if symbols_written:
            # CompressAI's flush sizes its output by the symbol count and overruns it for fewer than
            # four symbols; padding symbols after the last due one are never read by a decoder
            enc.encode_with_indexes([0] * _MIN_RANS_SYMBOLS, [_PAD_CDF] * _MIN_RANS_SYMBOLS,
                                    BINARY_CDFS, BINARY_CDF_LENGTHS, BINARY_OFFSETS)
        y_string = enc.flush() if symbols_written else b""
        sym_t = torch.from_numpy(np.where(coded, sym, 0.0))
        y_hat = path.reconstruct(sym_t, means, idx, gain, off)
        if flags is not None and prev is not None:
            y_hat = torch.where(torch.from_numpy(skip_pos)[None, None], prev, y_hat)
        payload = BasePayload(intra, self.qcode, frame.width if intra else 0, frame.height if intra else 0,
                              lh if intra else 0, lw if intra else 0, z_string, y_string,
                              skip_block=tools.skip_block if flags is not None else 0).to_bytes()
        blocks = 0 if flags is None else int(flags.size)
        self.last_report = FrameReport(intra, 8 * len(payload), 8 * len(z_string or b""), blocks,
                                       0 if flags is None else int(flags.sum()), changed)
        return payload, y_hat

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
        self._skip_model.reset()


class BaseDecoder:
    """Decodes payloads in order; holds the reference y_hat(t-1), its hyperprior and skip map."""

    def __init__(self, codec: BaseCodec, long_side: int | None = None) -> None:
        check_long_side(long_side)
        self.codec = codec
        self.long_side = long_side
        self.reference: torch.Tensor | None = None
        self.reference_hyper: torch.Tensor | None = None
        self.last_geometry: BaseGeometry | None = None
        self.last_payload: BasePayload | None = None
        self.last_skip: np.ndarray | None = None
        self._skip_model = SkipContextModel()

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
            means, idx = path.params_from_hyper(hyper, prev, gain)
            if tuple(idx.shape) != (1, self.codec.cfg.m, lh, lw):
                raise BitstreamError("base payload shape does not match the model", unit="base payload")
            if p.version == 1:
                sym = path.gc.decompress([p.y_string], idx).double()
                skip_pos = None
            else:
                sym, skip_pos = self._decode_symbols(p, idx, lh, lw)
        except (ValueError, RuntimeError) as exc:
            if isinstance(exc, BitstreamError):
                raise
            raise BitstreamError(f"base payload cannot be entropy-decoded: {exc}", unit="base payload") from exc
        y_hat = path.reconstruct(sym, means, idx, gain, off)
        if skip_pos is not None and prev is not None:
            y_hat = torch.where(torch.from_numpy(skip_pos)[None, None], prev, y_hat)
        self.reference = y_hat
        self.reference_hyper = hyper
        self.last_geometry = geom
        self.last_payload = p
        return y_hat

    def _decode_symbols(self, p: BasePayload, idx: torch.Tensor, lh: int, lw: int
                        ) -> tuple[torch.Tensor, np.ndarray | None]:
        dec = RansDecoder()
        if p.y_string:
            # CompressAI's decoder does not bounds-check its reads: a damaged string could make it read
            # past the end. Zero guard words keep every read inside our buffer (at most one 32-bit read
            # per symbol) and end any escape-code loop (a zero chunk terminates it).
            guard = 4 * (idx.numel() + (lh * lw if p.skip_block else 0) + 16)
            dec.set_stream(p.y_string + bytes(guard))
        elif p.skip_block or p.intra:  # flags (or a whole intra latent) to read from nothing
            raise BitstreamError("base payload has an empty y string where symbols are due", unit="base payload")
        skip_pos: np.ndarray | None = None
        if p.intra:
            self._skip_model.reset()
        if p.skip_block:
            grid = block_grid(lh, lw, p.skip_block)
            model = self._skip_model
            model.check_previous(grid)
            flags = np.zeros((grid.rows, grid.cols), dtype=np.uint8)
            for r in range(grid.rows):
                for c in range(grid.cols):
                    i, ctx = model.next_index(flags, r, c)
                    bit = dec.decode_stream([i], BINARY_CDFS, BINARY_CDF_LENGTHS, BINARY_OFFSETS)[0]
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
            cdfs, lengths, offsets = self.codec._path.coder_tables()
            values = dec.decode_stream(idx_np[coded].astype(np.int64).tolist(), cdfs, lengths, offsets)
            sym[coded] = np.asarray(values, dtype=np.float64)
        return torch.from_numpy(sym), skip_pos

    def reset(self) -> None:
        self.reference = None
        self.reference_hyper = None
        self._skip_model.reset()


# -- weights files and the registry ---------------------------------------------
_RUNTIME_BUFFERS = ("_quantized_cdf", "_cdf_length", "_offset", "scale_table", "scale_bound")


def _trainable_state(net: BaseNet) -> dict[str, torch.Tensor]:
    # CDF tables are rebuilt deterministically at load time; do not ship them
    return {k: v.detach().clone() for k, v in net.state_dict().items()
            if not k.split(".")[-1] in _RUNTIME_BUFFERS}


def save_base_weights(net: BaseNet, model_id: str, out_dir: Path,
                      record: dict[str, Any] | None = None) -> Path:
    """Write ``<model_id>.pt`` and ``<model_id>.json`` (config, sha256, training record)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pt = out_dir / f"{model_id}.pt"
    state = _trainable_state(net)
    torch.save({"format": "vcodec-base-weights", "version": 1, "state_dict": state}, pt)
    sha = file_sha256(pt)
    desc = {"model_id": model_id, "kind": "base", "config": net.cfg.to_dict(), "sha256": sha,
            "weights_file": pt.name, "training": record or {}}
    (out_dir / f"{model_id}.json").write_text(json.dumps(desc, indent=2, sort_keys=True) + "\n")
    return pt


def _load_files(json_path: Path, expect_sha: str | None) -> BaseCodec:
    try:
        desc = json.loads(Path(json_path).read_text())
    except FileNotFoundError:
        raise WeightsError(f"base model descriptor {json_path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise WeightsError(f"base model descriptor {json_path} is unreadable: {exc}") from exc
    for key in ("model_id", "config", "sha256", "weights_file"):
        if key not in desc:
            raise WeightsError(f"base model descriptor {json_path} lacks {key!r}; regenerate it with "
                               f"tools/train_base.py")
    pt = Path(json_path).parent / desc["weights_file"]
    if not pt.exists():
        raise WeightsError(f"weights file {pt} named by {json_path} does not exist")
    actual = file_sha256(pt)
    if actual != desc["sha256"]:
        raise WeightsError(f"weights file {pt} has sha256 {actual} but {json_path} records "
                           f"{desc['sha256']}; the file is corrupt or was replaced")
    if expect_sha is not None and expect_sha != actual:
        raise WeightsMismatchError(
            f"stream needs base model {desc['model_id']!r} with weights sha256 {expect_sha}, but the "
            f"available weights {pt} have sha256 {actual}; install the weights the stream was made with")
    cfg = BaseNetConfig.from_dict(desc["config"])
    net = BaseNet(cfg)
    try:
        blob = torch.load(pt, map_location="cpu", weights_only=True)
        state = blob["state_dict"]
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsError(f"weights file {pt} cannot be read: {exc}") from exc
    missing, unexpected = net.load_state_dict({k: v.float() if v.is_floating_point() else v
                                               for k, v in state.items()}, strict=False)
    missing = [k for k in missing if k.split(".")[-1] not in _RUNTIME_BUFFERS]
    if missing or unexpected:
        raise WeightsError(f"weights file {pt} does not fit the architecture in {json_path}: "
                           f"missing {missing[:5]}, unexpected {list(unexpected)[:5]}")
    return BaseCodec(net, desc["model_id"], actual, desc.get("training", {}))


def _register_shipped() -> None:
    if not WEIGHTS_DIR.is_dir():
        return
    for js in sorted(WEIGHTS_DIR.glob("base-*.json")):
        if js.stem not in BASE_MODELS:
            BASE_MODELS.register(js.stem, js)


_register_shipped()


def load_base_model(model_id: str, sha256: str | None = None) -> BaseCodec:
    """Load a registered base model by id; refuse weights whose sha256 differs from ``sha256``."""
    path = BASE_MODELS.get(model_id)
    return _load_files(path, sha256)
