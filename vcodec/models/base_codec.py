"""Bit-exact base-layer coding (layer 0): encoder, decoder, payload, weights.

One base *unit* per frame carries an opaque payload whose layout is defined
here (all integers little-endian)::

    offset  size  field
    0       1     payload version (1)
    1       1     flags: bit 0 = intra (I-frame); other bits 0
    2       2     quality code q (uint16); base quality = q / 65535
    4       2     source frame width  (before any downscale or padding)
    6       2     source frame height
    8       2     latent height Hy (= coded height / 16)
    10      2     latent width  Wy (= coded width  / 16)
    12      4     Lz = length of the hyperlatent string (uint32)
    16      Lz    z string: CompressAI EntropyBottleneck (rANS), Nz x Hy/4 x Wy/4 symbols
    16+Lz   4     Ly = length of the latent string (uint32)
    20+Lz   Ly    y string: CompressAI GaussianConditional (rANS), M x Hy x Wy symbols

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
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
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
from vcodec.models.base_net import SCALE_TABLE, BaseNet, BaseNetConfig
from vcodec.registry import Registry

__all__ = [
    "PAYLOAD_VERSION",
    "BaseGeometry",
    "BaseCodec",
    "BaseEncoder",
    "BaseDecoder",
    "BasePayload",
    "BASE_MODELS",
    "WEIGHTS_DIR",
    "load_base_model",
    "save_base_weights",
    "file_sha256",
    "quality_code",
]

PAYLOAD_VERSION = 1
_HEAD = struct.Struct("<BBHHHHH")
_LEN = struct.Struct("<I")
PAD_VALUE = 114  # the detector's letterbox/pad grey, so padded regions look alike to both

#: shipped weights live here as base-<detector>-v<N>.pt + .json
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

#: base model id -> path of its .json descriptor
BASE_MODELS: Registry[Path] = Registry("base model")


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


# -- payload ---------------------------------------------------------------------
@dataclass
class BasePayload:
    intra: bool
    qcode: int
    width: int
    height: int
    latent_h: int
    latent_w: int
    z_string: bytes
    y_string: bytes

    def to_bytes(self) -> bytes:
        head = _HEAD.pack(PAYLOAD_VERSION, 1 if self.intra else 0, self.qcode, self.width,
                          self.height, self.latent_h, self.latent_w)
        return b"".join([head, _LEN.pack(len(self.z_string)), self.z_string,
                         _LEN.pack(len(self.y_string)), self.y_string])

    @classmethod
    def from_bytes(cls, data: bytes) -> BasePayload:
        data = bytes(data)
        if len(data) < _HEAD.size + 8:
            raise BitstreamError(f"base payload of {len(data)} bytes is shorter than its "
                                 f"{_HEAD.size + 8}-byte header", unit="base payload")
        ver, flags, qcode, w, h, lh, lw = _HEAD.unpack_from(data, 0)
        if ver != PAYLOAD_VERSION:
            raise BitstreamError(f"base payload version {ver} is not supported (this decoder reads "
                                 f"version {PAYLOAD_VERSION}); upgrade vcodec", offset=0, unit="base payload")
        if flags & ~1:
            raise BitstreamError(f"base payload has reserved flag bits set (0x{flags:02x})", offset=1,
                                 unit="base payload")
        pos = _HEAD.size
        strings = []
        for name in ("z", "y"):
            if pos + 4 > len(data):
                raise BitstreamError(f"base payload truncated before the {name} length", offset=pos,
                                     unit="base payload")
            (n,) = _LEN.unpack_from(data, pos)
            pos += 4
            if pos + n > len(data):
                raise BitstreamError(f"base payload truncated: {name} string needs {n} bytes, "
                                     f"{len(data) - pos} left", offset=pos, unit="base payload")
            strings.append(data[pos: pos + n])
            pos += n
        if pos != len(data):
            raise BitstreamError(f"base payload has {len(data) - pos} trailing bytes", offset=pos,
                                 unit="base payload")
        if lh == 0 or lw == 0 or lh % 4 or lw % 4:
            raise BitstreamError(f"base payload latent size {lh}x{lw} is not a positive multiple of 4",
                                 offset=8, unit="base payload")
        return cls(bool(flags & 1), qcode, w, h, lh, lw, strings[0], strings[1])


# -- the deterministic entropy-parameter path ------------------------------------------
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

    def params(self, z_hat: torch.Tensor, prev: torch.Tensor | None, gain: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(rounded means, scale indexes) for y, all in float64 / int32."""
        with torch.no_grad():
            hyper = self.h_s(z_hat.double())
            if prev is None:
                means, scales = self.ep_i(hyper).chunk(2, 1)
            else:
                p = prev.double()
                dm, scales = self.ep_p(torch.cat([hyper, self.ctx(p)], dim=1)).chunk(2, 1)
                means = p + dm
            means = self._grid(means, self.cfg.mean_grid)
            s = F.softplus(scales) * gain
            # CompressAI's build_indexes rule (count of table entries below s), in float64
            idx = torch.bucketize(s, self.table[:-1]).to(torch.int32)
        return means, idx

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

    def layer_config(self, quality: float, intra_period: int) -> dict[str, Any]:
        """Coding parameters for the stream's per-layer configuration record."""
        return {"model_id": self.model_id, "weights_sha256": self.sha256,
                "base_quality": quality, "intra_period": intra_period,
                "payload_version": PAYLOAD_VERSION, "max_long_side": self.cfg.max_long_side,
                "multiple": self.cfg.multiple}

    def geometry(self, width: int, height: int) -> BaseGeometry:
        return BaseGeometry.for_size(width, height, self.cfg.max_long_side, self.cfg.multiple)

    def encoder(self, quality: float = 0.5, intra_period: int = 32) -> BaseEncoder:
        return BaseEncoder(self, quality, intra_period)

    def decoder(self) -> BaseDecoder:
        return BaseDecoder(self)

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


class BaseEncoder:
    """Encodes frames in order; holds the reference y_hat(t-1) explicitly."""

    def __init__(self, codec: BaseCodec, quality: float = 0.5, intra_period: int = 32) -> None:
        if not isinstance(intra_period, int) or intra_period < 1:
            raise ConfigError(f"intra period {intra_period!r} is invalid; use an integer >= 1 (32 is usual)")
        self.codec = codec
        self.qcode = quality_code(quality)
        self.intra_period = intra_period
        self.reference: torch.Tensor | None = None
        self.frame_count = 0
        self.last_y_hat: torch.Tensor | None = None
        self.last_geometry: BaseGeometry | None = None

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
        geom = codec.geometry(frame.width, frame.height)
        prev = None if intra else self.reference
        if prev is not None and tuple(prev.shape[-2:]) != geom.latent_size:
            raise InputError(f"frame {frame.index} is {frame.width}x{frame.height} but the reference "
                             f"is for another size; start a new intra frame")
        gain, zstep, off, eb = path.for_quality(self.qcode)
        x = frame_to_tensor(frame, geom)
        with torch.no_grad():
            y = net.g_a(x)
            z = net.h_a(y).double()
            z_strings = eb.compress(z, qs=torch.tensor(zstep, dtype=torch.float64))
            z_hat = eb.decompress(z_strings, z.shape[-2:], qs=torch.tensor(zstep, dtype=torch.float64))
            means, idx = path.params(z_hat, prev, gain)
            sym = torch.round((y.double() - means) * gain)
            y_strings = path.gc.compress(sym.float(), idx)
            y_hat = path.reconstruct(sym, means, idx, gain, off)
        lh, lw = geom.latent_size
        payload = BasePayload(intra, self.qcode, frame.width, frame.height, lh, lw,
                              z_strings[0], y_strings[0]).to_bytes()
        self.reference = y_hat
        self.last_y_hat = y_hat
        self.last_geometry = geom
        self.frame_count = 1 if intra else self.frame_count + 1
        x_base = None
        if reconstruct:
            x_base = codec.reconstruct(y_hat, geom, frame.bit_depth, frame.matrix, frame.index)
        return payload, x_base

    def reset(self) -> None:
        self.reference = None
        self.frame_count = 0


class BaseDecoder:
    """Decodes payloads in order; holds the reference y_hat(t-1) explicitly."""

    def __init__(self, codec: BaseCodec) -> None:
        self.codec = codec
        self.reference: torch.Tensor | None = None
        self.last_geometry: BaseGeometry | None = None
        self.last_payload: BasePayload | None = None

    def decode_frame(self, payload: bytes, intra: bool | None = None) -> torch.Tensor:
        """Payload -> y_hat (1 x M x Hy x Wy float32). ``intra`` (from the unit) must agree."""
        p = BasePayload.from_bytes(payload)
        if intra is not None and bool(intra) != p.intra:
            raise BitstreamError(f"unit says intra={bool(intra)} but its base payload says "
                                 f"intra={p.intra}", unit="base payload")
        geom = self.codec.geometry(p.width, p.height)
        if geom.latent_size != (p.latent_h, p.latent_w):
            raise BitstreamError(f"base payload latent {p.latent_h}x{p.latent_w} does not match frame "
                                 f"{p.width}x{p.height} (expected {geom.latent_size})", offset=8,
                                 unit="base payload")
        if not p.intra:
            if self.reference is None:
                raise BitstreamError("P-frame without a reference: decoding must start at an intra "
                                     "frame", unit="base payload")
            if tuple(self.reference.shape[-2:]) != geom.latent_size:
                raise BitstreamError("P-frame size differs from its reference frame", unit="base payload")
        path = self.codec._path
        gain, zstep, off, eb = path.for_quality(p.qcode)
        m = self.codec.cfg.m
        qs = torch.tensor(zstep, dtype=torch.float64)
        try:
            z_hat = eb.decompress([p.z_string], (p.latent_h // 4, p.latent_w // 4), qs=qs)
            means, idx = path.params(z_hat, None if p.intra else self.reference, gain)
            if tuple(idx.shape) != (1, m, p.latent_h, p.latent_w):
                raise BitstreamError("base payload shape does not match the model", unit="base payload")
            sym = path.gc.decompress([p.y_string], idx).double()
        except (ValueError, RuntimeError) as exc:
            if isinstance(exc, BitstreamError):
                raise
            raise BitstreamError(f"base payload cannot be entropy-decoded: {exc}", unit="base payload") from exc
        y_hat = path.reconstruct(sym, means, idx, gain, off)
        self.reference = y_hat
        self.last_geometry = geom
        self.last_payload = p
        return y_hat

    def reset(self) -> None:
        self.reference = None


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
