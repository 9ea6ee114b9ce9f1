"""Typed errors for vcodec.

Every error a user can trigger is a :class:`VcodecError`.  Where a builtin
exception already describes the category (a bad value, a missing file), the
vcodec error also subclasses that builtin, so ``except ValueError`` keeps
working for callers that do not know about vcodec (the same idea as PyAV's
``av.error``).  Messages name the file, unit or option at fault and say what
to do about it; the CLI prints them as one line.
"""

from __future__ import annotations

__all__ = [
    "VcodecError",
    "BitstreamError",
    "InputError",
    "ConfigError",
    "EncoderError",
    "CodecUnavailableError",
    "ModelError",
    "WeightsError",
    "WeightsMismatchError",
    "RegistryError",
    "OutputError",
]


class VcodecError(Exception):
    """Base class of every error vcodec raises on purpose."""

    #: process exit code the CLI uses for this error (1 = data error, 2 = usage)
    exit_code: int = 1


class BitstreamError(VcodecError, ValueError):
    """A stream is malformed: bad magic, truncation, CRC mismatch, bad length...

    ``offset`` is the byte offset (from the start of the stream) where the
    problem was found, ``unit`` a short description of the unit being read
    (or ``None`` for the stream preamble) and ``frame`` the frame index when
    known.
    """

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        unit: str | None = None,
        frame: int | None = None,
        source: str | None = None,
    ) -> None:
        self.offset = offset
        self.unit = unit
        self.frame = frame
        self.source = source
        parts = []
        if source:
            parts.append(source)
        if offset is not None:
            parts.append(f"byte {offset}")
        if unit:
            parts.append(unit)
        if frame is not None:
            parts.append(f"frame {frame}")
        where = ", ".join(parts)
        super().__init__(f"{where}: {message}" if where else message)


class InputError(VcodecError, ValueError):
    """An input file or frame cannot be used (unknown raw size, odd dimensions...)."""


class ConfigError(VcodecError, ValueError):
    """An option or parameter is out of range or inconsistent."""

    exit_code = 2


class EncoderError(VcodecError, RuntimeError):
    """A conventional encoder/decoder (through PyAV) failed."""


class CodecUnavailableError(EncoderError, ConfigError):
    """The requested conventional codec is not in this PyAV/FFmpeg build."""

    exit_code = 2


class ModelError(VcodecError, RuntimeError):
    """A learned model cannot be built or run."""


class WeightsError(ModelError, ValueError):
    """A weights file is missing, unreadable, of the wrong architecture or incomplete."""


class WeightsMismatchError(WeightsError):
    """A stream was made with weights other than the ones available to decode it."""


class RegistryError(VcodecError, KeyError):
    """Unknown name in a registry, or a duplicate registration."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class OutputError(VcodecError, OSError):
    """An output path cannot be written."""
