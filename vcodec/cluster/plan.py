"""What crosses process (and machine) lines in a cluster encode: plain dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vcodec.codec.stats import FrameStats
from vcodec.errors import ConfigError
from vcodec.io.frame import VideoInfo
from vcodec.io.readers.base import ReadOptions

__all__ = ["EncodeOptions", "InputSpec", "GopTask", "GopResult", "plan_gops", "FAULT_ENV"]

#: test hook read by the driver (never by workers): ``crash-once:GOP:MARKER`` kills the worker
#: process the first time it codes GOP (the marker file records that it did); ``fail:GOP`` makes
#: that GOP raise on every attempt
FAULT_ENV = "VCODEC_CLUSTER_FAULT"


@dataclass(frozen=True)
class EncodeOptions:
    """The :class:`~vcodec.codec.Encoder` settings every GOP of one stream shares."""

    base_model: str | None = None
    base_quality: float | None = None  # None: the base model's default
    base_size: int | None = None
    base_effort: str = "fast"
    base_p_offset: float | None = None
    base_deadzone: float | None = None
    base_tune: str = "default"
    enh_codec: str = "libx265"
    enh_qp: int | None = None
    enh_crf: float | None = None
    preset: str | None = None
    intra_period: int = 32
    low_delay: bool = False
    lossless: bool = False
    roi: bool = False
    threads: int = 0
    psnr: bool = False
    detector_weights: str | None = None
    inter_layer: bool | str = "auto"

    def encoder_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~vcodec.codec.Encoder` (``base_model`` included)."""
        return asdict(self)

    @property
    def constant_qp(self) -> bool:
        """Whether the enhancement rate is fixed per frame (byte identity with the serial encode)."""
        return self.enh_qp is not None or self.lossless


@dataclass(frozen=True)
class InputSpec:
    """How a worker opens the input itself (a path or URL every node can reach).

    ``options`` are the caller's reading options (size, fps, bit depth, matrix, ``start`` = the
    first input frame of the stream); each GOP opens its own window of frames from them."""

    path: str
    options: ReadOptions = field(default_factory=ReadOptions)

    def open(self, first: int, frames: int | None) -> Any:
        from vcodec.io import open_video

        o = self.options
        return open_video(self.path, size=o.size, fps=o.fps, bit_depth=o.bit_depth, matrix=o.matrix,
                          start=o.start + first, frames=frames)


@dataclass(frozen=True)
class GopTask:
    """One GOP: frames ``first_frame .. first_frame + frames - 1`` of the stream."""

    gop: int
    first_frame: int
    frames: int
    input: InputSpec
    info: VideoInfo  # the driver's: the sequence header (frame count, source name) of the whole stream
    options: EncodeOptions
    fault: str | None = None  # test hook (FAULT_ENV)

    def describe(self) -> str:
        return f"GOP {self.gop} (frames {self.first_frame}..{self.first_frame + self.frames - 1})"


@dataclass
class GopResult:
    """A worker's answer: the GOP as a small stream written by the standard writer, and its stats."""

    gop: int
    first_frame: int
    frames: int
    stream: bytes
    stats: list[FrameStats] = field(default_factory=list)
    seconds: float = 0.0
    setup_seconds: float = 0.0
    worker: str = ""
    summary_extra: dict[str, Any] = field(default_factory=dict)
    #: base weights loads in the worker process so far (1: loaded once, reused for its later GOPs)
    weight_loads: int = 0


def plan_gops(num_frames: int, intra_period: int, *, group: int = 1) -> list[tuple[int, int]]:
    """(first frame, frame count) of each task: ``group`` intra periods per task."""
    if num_frames <= 0:
        raise ConfigError("GOP-parallel encoding needs the frame count; give --frames N for this input")
    step = intra_period * max(1, group)
    return [(s, min(step, num_frames - s)) for s in range(0, num_frames, step)]
