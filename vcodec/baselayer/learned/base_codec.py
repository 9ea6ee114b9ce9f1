"""The learned base layer's codec object (layer 0): a loaded model and what it does with latents.

One base *unit* per frame carries a payload whose layout (versions 1, 2 and 3)
is defined in :mod:`vcodec.baselayer.learned.payload`.  Version 2 adds the coding tools
of a video coder: P-frames reuse the hyperprior of their intra frame, skip
blocks copy y_hat(t-1) for a flag (:mod:`vcodec.baselayer.learned.skipmap`), and the
encoder chooses symbols and skips by rate-distortion cost
(:mod:`vcodec.baselayer.learned.rdo`; the decoder does not depend on those choices).
Version 3 adds motion-compensated prediction: P-frames predict from y_hat(t-1) warped
by a block motion field (:mod:`vcodec.baselayer.learned.motion`).

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
leaves the decoder is thread-independent too: x_base from a float64 g_s rounded
to 8-bit samples; T(y_hat), rounded to 2**-12, and :meth:`BaseCodec.detect`'s back
end from float32 copies whose every layer gives the same bits at any thread count
(:mod:`vcodec.detection.exact`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vcodec.baselayer.learned.base_net import BaseNet, BaseNetConfig
from vcodec.baselayer.learned.coder import BaseDecoder, BaseEncoder
from vcodec.baselayer.learned.entropy import EntropyPath
from vcodec.baselayer.learned.geometry import (
    MIN_LONG_SIDE,
    PAD_VALUE,
    BaseGeometry,
    check_long_side,
    frame_to_tensor,
    tensor_to_frame,
)
from vcodec.baselayer.learned.payload import PAYLOAD_VERSION, BasePayload, quality_code
from vcodec.baselayer.learned.tools import EFFORTS, SKIP_MODES, Z_REFRESH, CodingTools, FrameReport
from vcodec.errors import ConfigError
from vcodec.hashing import file_sha256
from vcodec.io.frame import Frame

# names that lived here before the split into geometry/entropy/tools/coder/weights (shims, one release)
__all__ = [
    "PAYLOAD_VERSION",
    "BaseGeometry",
    "BaseCodec",
    "BaseEncoder",
    "BaseDecoder",
    "BasePayload",
    "CodingTools",
    "FrameReport",
    "BASE_MODELS",
    "EFFORTS",
    "MIN_LONG_SIDE",
    "PAD_VALUE",
    "SKIP_MODES",
    "WEIGHTS_DIR",
    "Z_REFRESH",
    "check_long_side",
    "frame_to_tensor",
    "tensor_to_frame",
    "load_base_model",
    "save_base_weights",
    "file_sha256",
    "quality_code",
]


class BaseCodec:
    """A loaded base-layer model: the networks plus id, sha256 and config."""

    def __init__(self, net: BaseNet, model_id: str = "untrained", sha256: str = "",
                 record: dict[str, Any] | None = None, default_quality: float = 0.5) -> None:
        self.net = net.eval()
        #: the quality encoders use when none is given (the model descriptor's ``default_quality``)
        self.default_quality = default_quality
        for p in self.net.parameters():
            p.requires_grad_(False)
        # the analysis transform's weights in channels-last layout (see analyse)
        for name in ("front_enc", "g_a_pix", "g_a_head", "g_a_seq"):
            part = getattr(self.net, name, None)
            if part is not None:
                part.to(memory_format=torch.channels_last)
        self.model_id = model_id
        self.sha256 = sha256
        self.record = record or {}
        self._path = EntropyPath(self.net)
        # The analytics path (T, the detector's back end) runs as a float32 copy whose layers give
        # the same bits whatever the thread count (vcodec.detection.exact); g_s, whose 8-bit
        # x_base the enhancement layer predicts from, as a float64 one (16.7 -> 14.0 ms per
        # 416x240 frame at 2 threads against PyTorch's float64 layers: tools/bench_exact.py).
        # Imported here: vcodec.detection's package pulls in OpenCV.
        from vcodec.detection.exact import to_float32_exact, to_float64

        self._T32 = to_float32_exact(self.net.T)
        self._gs64 = to_float64(self.net.g_s)
        self._analytics_back: dict[int, tuple[Any, Any]] = {}

    # -- loading -------------------------------------------------------------
    @classmethod
    def from_weights(cls, path_or_id: str | Path, sha256: str | None = None) -> BaseCodec:
        """Load from a ``.pt``/``.json`` path or a registered model id (see :func:`load_base_model`)."""
        p = Path(path_or_id)
        if p.suffix in (".pt", ".json") and p.exists():
            return load_files(p.with_suffix(".json"), sha256)
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
        size = int(long_side or self.cfg.max_long_side)
        return BaseGeometry.for_size(width, height, size, self.cfg.multiple)

    def encoder(self, quality: float = 0.5, intra_period: int = 32, tools: CodingTools | None = None,
                long_side: int | None = None) -> BaseEncoder:
        return BaseEncoder(self, quality, intra_period, tools, long_side)

    def decoder(self, long_side: int | None = None) -> BaseDecoder:
        return BaseDecoder(self, long_side)

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """g_a(x): the latent y (N x M x H/16 x W/16, contiguous) of a picture tensor.

        Runs on channels-last tensors, whose oneDNN convolutions are ~30 % faster (17.6 -> 12.7
        ms per 416x240 frame at 2 threads).  Encoder only: g_a decides which symbols are sent,
        never how a stream decodes.
        """
        with torch.no_grad():
            return self.net.g_a(x.contiguous(memory_format=torch.channels_last)).contiguous()

    # -- decoding-side transforms --------------------------------------------------
    def features(self, y_hat: torch.Tensor) -> torch.Tensor:
        """T(y_hat): the detector's split features (N x C x H/8 x W/8 of the padded picture).

        Computed by T's thread-independent float32 copy and rounded to a 2**-12 grid (the grid
        the model's features were always served on; the rounding is exact in float32).
        """
        with torch.no_grad():
            f = self._T32(y_hat.float())
            return torch.round(f * 4096.0) / 4096.0

    def detect(self, y_hat: torch.Tensor, detector: Any, geometry: BaseGeometry) -> Any:
        """Base-only analytics: the detector's back end on T(y_hat); boxes in source pixels."""
        if int(detector.split_channels) != self.cfg.split_channels:
            raise ConfigError(f"detector {getattr(detector, 'name', detector)!r} splits at "
                              f"{detector.split_channels} channels but base model {self.model_id!r} was "
                              f"trained for {self.cfg.detector!r} ({self.cfg.split_channels} channels)")
        with torch.no_grad():
            back = self.exact_detector(detector)
            return back.back(self.features(y_hat), geometry.to_detector())[0]

    def exact_detector(self, detector: Any) -> Any:
        """The detector as a thread-independent float32 copy (cached; one detector at a time).

        Made by :func:`vcodec.detection.exact.to_float32_exact`: PyTorch's own float32 layers
        gave different detections with 1 and 2 threads even on identical features.
        """
        hit = self._analytics_back.get(id(detector))
        if hit is None or hit[0] is not detector:
            from vcodec.detection.exact import to_float32_exact

            hit = (detector, to_float32_exact(detector))
            self._analytics_back = {id(detector): hit}
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


# the weights module builds BaseCodec objects: imported after the class exists
from vcodec.baselayer.learned.weights import (  # noqa: E402
    BASE_MODELS,
    WEIGHTS_DIR,
    load_base_model,
    load_files,
    save_base_weights,
)
