"""Settings of one ``vcodec eval`` run and the names of the single-layer anchors it can code."""

from __future__ import annotations

from dataclasses import dataclass, field

from vcodec.errors import ConfigError

__all__ = ["ANCHOR_NAMES", "EvalConfig", "base_tools"]

#: single-layer anchor system name -> encoder
ANCHOR_NAMES: dict[str, str] = {"x265": "libx265", "x264": "libx264"}


@dataclass
class EvalConfig:
    """Settings of one evaluation run (see ``vcodec eval --help``)."""

    input: str
    output: str
    frames: int | None = None
    start: int = 0
    size: tuple[int, int] | None = None
    gt: str | None = None
    gt_format: str | None = None
    gt_stem: str | None = None
    detector: str | None = None
    detector_weights: str | None = None
    base_model: str | None = None
    #: the base layer's working size (long side); None = the base model's max_long_side
    base_size: int | None = None
    #: the base encoder's tools, as ``vcodec encode`` takes them (None: the tune's or effort's value);
    #: checked where the base layer is built (the run's first step), as the encoder checks them
    base_effort: str = "fast"
    base_tune: str = "default"
    base_p_offset: float | None = None
    base_deadzone: float | None = None
    #: also score the anchors with the detector at this long side (labelled ``x265@N``)
    anchor_size: int | None = None
    base_qualities: list[float] = field(default_factory=lambda: [0.15, 0.4, 0.65, 0.9])
    enh_qps: list[int] = field(default_factory=lambda: [27, 32, 37, 42])
    anchor_qps: list[int] = field(default_factory=lambda: [22, 27, 32, 37, 42, 47])
    anchors: list[str] = field(default_factory=lambda: ["x265", "x264"])
    enh_codec: str = "libx265"
    #: vcodec-full: per GOP ("auto", the codec's default), residual ("on"), full frames ("off")
    inter_layer: str = "auto"
    preset: str = "medium"
    intra_period: int | None = None
    gt_min_score: float = 0.3
    #: mAP averages the classes with at least this many ground-truth objects in the evaluated
    #: frames (None: 5 for pseudo ground truth, 1 = every class for labelled ground truth)
    min_class_objects: int | None = None
    score_threshold: float = 0.01
    #: 95 % interval of every point's mAP@0.5 over this many frame resamples (0: none)
    bootstrap: int = 0
    track_min_score: float = 0.3
    full_detect: bool = True
    jobs: int = 1
    threads: int = 1
    progress: bool = True
    #: run the work units as Ray tasks: on a local Ray with this many workers, or on the cluster at
    #: ``ray_address`` (vcodec.cluster.ray_backend); results and cache are the same as serial
    workers: int | None = None
    ray_address: str | None = None

    def check(self) -> None:
        if not self.base_qualities and not self.anchors:
            raise ConfigError("nothing to evaluate: give base qualities or anchors")
        for q in self.base_qualities:
            if not 0.0 <= q <= 1.0:
                raise ConfigError(f"base quality {q} is out of range; use numbers in [0, 1]")
        for qp in [*self.enh_qps, *self.anchor_qps]:
            if not 0 <= qp <= 51:
                raise ConfigError(f"QP {qp} is out of range; x264/x265 QPs are 0..51")
        for a in self.anchors:
            if a not in ANCHOR_NAMES:
                raise ConfigError(f"unknown anchor {a!r}; use {', '.join(ANCHOR_NAMES)}")
        if self.inter_layer not in ("on", "off", "auto"):
            raise ConfigError(f"inter_layer {self.inter_layer!r} is invalid; use on, off or auto")
        if self.workers is not None or self.ray_address is not None:
            from vcodec.cluster.ray_backend import require_ray

            require_ray()  # usage error (exit 2) with how to install, before any work
            if self.jobs > 1:
                raise ConfigError(
                    "give --jobs (processes on this machine) or --workers/--ray (Ray), not both"
                )
            if self.workers is not None and self.ray_address is not None:
                raise ConfigError("give --workers N (local Ray) or --ray ADDRESS (a cluster), not both")
            if self.workers is not None and self.workers < 1:
                raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.jobs < 1 or self.threads < 1:
            raise ConfigError(f"jobs and threads must be >= 1, got {self.jobs} and {self.threads}")
        for name, v in (("base_size", self.base_size), ("anchor_size", self.anchor_size)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 64 <= v <= 0xFFFF):
                raise ConfigError(
                    f"{name} {v!r} is invalid; use a long side in pixels of at least 64 "
                    "(e.g. 416, 640 or 832)"
                )
        if self.min_class_objects is not None and (
                isinstance(self.min_class_objects, bool) or not isinstance(self.min_class_objects, int)
                or self.min_class_objects < 1):
            raise ConfigError(f"min_class_objects {self.min_class_objects!r} is invalid; use an integer >= 1 "
                              "(1 = every class counts)")
        if isinstance(self.bootstrap, bool) or not isinstance(self.bootstrap, int) \
                or not 0 <= self.bootstrap <= 100_000:
            raise ConfigError(f"bootstrap {self.bootstrap!r} is invalid; use 0 (off) or a number of "
                              "resamples up to 100000 (e.g. 200)")
        if self.frames is not None and self.frames <= 0:
            raise ConfigError(f"frames must be positive, got {self.frames}")
        if not 0.0 <= self.score_threshold <= self.gt_min_score <= 1.0:
            raise ConfigError(
                "need 0 <= score_threshold <= gt_min_score <= 1 (predictions are ranked "
                "below the pseudo-ground-truth threshold)"
            )


def base_tools(cfg: EvalConfig) -> dict[str, object]:
    """The base encoder's options of a run, as points and provenance.json record them."""
    return {"effort": cfg.base_effort, "tune": cfg.base_tune, "p_offset": cfg.base_p_offset,
            "deadzone": cfg.base_deadzone}
