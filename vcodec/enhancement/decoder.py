"""The enhancement decoder: :class:`EnhancementPacket` s back into :class:`Residual` pictures.

Frames come out in presentation order with their indexes; the sequence
header's codec name, :class:`~vcodec.enhancement.config.EnhancementConfig` and
extradata set it up.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any, cast

import av
import numpy as np

from vcodec.enhancement.avframes import avframe_to_planes
from vcodec.enhancement.codecs import CODECS, decoder_for, pix_fmt_for
from vcodec.enhancement.config import EnhancementConfig, time_base
from vcodec.enhancement.mapping import Residual, unmap_residual
from vcodec.enhancement.packet import EnhancementPacket
from vcodec.errors import BitstreamError, ConfigError

__all__ = ["EnhancementDecoder", "decode_sequence"]


class EnhancementDecoder:
    """Decodes enhancement packets into :class:`Residual` pictures.

    ``codec_name``, ``config`` and ``extradata`` are what the sequence header
    carries (see :class:`EnhancementEncoder`).
    """

    def __init__(
        self, codec_name: str, config: dict[str, Any], extradata: bytes, *, threads: int = 0
    ) -> None:
        if codec_name not in CODECS:
            raise ConfigError(
                f"enhancement codec {codec_name!r} is unknown; this vcodec reads {', '.join(CODECS)}"
            )
        cfg = EnhancementConfig.from_dict(config, codec_name)
        self.settings = cfg
        self.width, self.height, self.anchor = cfg.width, cfg.height, cfg.anchor
        self.bit_depth, self.coded_depth, self.offset = cfg.bit_depth, cfg.coded_bit_depth, cfg.offset
        self.codec_name = codec_name
        self.pix_fmt = pix_fmt_for(self.coded_depth)
        self._time_base = time_base(cfg.fps)
        self._decoder_name = decoder_for(CODECS[codec_name])
        # a video decoder: PyAV types create() by codec name only for literal names
        cc = cast("av.VideoCodecContext", av.CodecContext.create(self._decoder_name, "r"))
        if extradata:
            cc.extradata = bytes(extradata)
        cc.thread_count = threads
        self._cc = cc
        self._flushed = False
        self._next = 0  # fallback numbering if a decoder drops timestamps

    def decode(self, packet: EnhancementPacket | None) -> list[tuple[int, Residual]]:
        """Feed one packet (``None`` = flush); returns the pictures now ready, in presentation order."""
        if self._flushed:
            raise BitstreamError("enhancement decoder already flushed", unit="enhancement")
        if packet is None:
            avp = None
            where = None
        else:
            avp = av.Packet(packet.data)
            avp.pts = packet.frame_index
            avp.dts = packet.dts
            avp.time_base = self._time_base
            where = packet.frame_index
        try:
            frames = self._cc.decode(avp)
        except av.FFmpegError as exc:
            raise BitstreamError(f"{self._decoder_name} cannot decode the packet: {exc}",
                                 unit="enhancement", frame=where) from exc
        if packet is None:
            self._flushed = True
        return [self._convert(f) for f in frames]

    def flush(self) -> list[tuple[int, Residual]]:
        """Drain the decoder's delayed pictures."""
        if self._flushed:
            return []
        return self.decode(None)

    def close(self) -> None:
        self._flushed = True
        self._cc = None  # type: ignore[assignment]

    def __enter__(self) -> EnhancementDecoder:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _convert(self, f: av.VideoFrame) -> tuple[int, Residual]:
        idx = int(f.pts) if f.pts is not None else self._next
        self._next = idx + 1
        if f.format.name != self.pix_fmt or (f.width, f.height) != (self.width, self.height):
            raise BitstreamError(
                f"decoded picture is {f.width}x{f.height} {f.format.name}, the header promised "
                f"{self.width}x{self.height} {self.pix_fmt}",
                unit="enhancement", frame=idx,
            )
        planes = avframe_to_planes(f)
        if self.anchor:
            signed = [p.astype(np.int32) for p in planes]
        else:
            signed = unmap_residual(tuple(planes), self.coded_depth)
        key = bool(f.key_frame)
        y, u, v = signed  # the three planes of the 4:2:0 format checked above
        return idx, Residual(y, u, v, bit_depth=self.bit_depth, anchor=self.anchor, keyframe=key)


def decode_sequence(
    codec_name: str, config: dict[str, Any], extradata: bytes, packets: Iterable[EnhancementPacket]
) -> list[tuple[int, Residual]]:
    """Convenience: decode all packets (and flush)."""
    with EnhancementDecoder(codec_name, config, extradata) as dec:
        out: list[tuple[int, Residual]] = []
        for p in packets:
            out += dec.decode(p)
        out += dec.flush()
        return out
