"""Layer 1 inside the end-to-end encoder: the running enhancement encoder and its packets' units.

One :class:`EnhancementLane` per :class:`~vcodec.codec.Encoder`.  It (re)opens
the enhancement encoder for a mode (residual over the base picture, or full
frames) at a frame of the stream, gives the encoder's packets stream frame
numbers, writes them as ``ENH_PACKET`` units (repairing the dts values libx265
leaves unset on very short runs) and, with ``psnr``, decodes them again to
measure the full picture.
"""

from __future__ import annotations

from typing import Any

from vcodec.bitstream import ENHANCEMENT_LAYER, StreamWriter, UnitType
from vcodec.enhancement import EnhancementDecoder, EnhancementEncoder, EnhancementPacket
from vcodec.errors import EncoderError
from vcodec.io.frame import Frame

__all__ = ["EnhancementLane"]


class EnhancementLane:
    """The enhancement encoder that is running, and what it has written.

    ``enh_kwargs``: :class:`~vcodec.enhancement.EnhancementEncoder` settings (all but the size and
    ``anchor``).  ``psnr``: keep a decoder beside the encoder and record the full picture's
    (PSNR-Y, PSNR-YUV) per frame in :attr:`psnr_full`.
    """

    def __init__(self, width: int, height: int, enh_kwargs: dict[str, Any], psnr: bool) -> None:
        self.width, self.height = width, height
        self.enh_kwargs = dict(enh_kwargs)
        self.psnr = bool(psnr)
        #: the running encoder (None before the first GOP of a per-GOP stream)
        self.enc: EnhancementEncoder | None = None
        #: whether it codes the residual over x_base (True) or full frames (False)
        self.predict = False
        self._start = 0  # stream index of its first frame (it numbers its own frames from 0)
        self._last_dts: int | None = None
        self._dec: EnhancementDecoder | None = None
        self._pending: dict[int, tuple[Frame, Frame | None]] = {}
        #: stream index -> (PSNR-Y, PSNR-YUV) of the full picture (with ``psnr``)
        self.psnr_full: dict[int, tuple[float, float]] = {}

    def configs(self, predict: bool) -> tuple[dict[str, Any], bytes]:
        """(config, extradata) of an encoder for that mode, as the sequence header stores them."""
        with EnhancementEncoder(self.width, self.height, anchor=not predict, **self.enh_kwargs) as enc:
            return enc.config(), enc.extradata

    def config(self) -> dict[str, Any]:
        """The running encoder's settings (the sequence header's JSON object)."""
        return dict(self._running().config())

    @property
    def extradata(self) -> bytes:
        return self._running().extradata

    def _running(self) -> EnhancementEncoder:
        if self.enc is None:
            raise EncoderError("no enhancement encoder is open (the lane was closed)")
        return self.enc

    def open(self, predict: bool, start: int) -> None:
        """A new encoder for ``predict`` whose first frame is stream frame ``start``.

        The old one must have been :meth:`finish` ed (its last frames written) first.
        """
        self.close()
        self.predict = predict
        self.enc = EnhancementEncoder(self.width, self.height, anchor=not predict, **self.enh_kwargs)
        self._start = start
        if self.psnr:
            self._dec = EnhancementDecoder(self.enc.codec_name, self.enc.config(), self.enc.extradata)

    def restart(self, writer: StreamWriter, predict: bool, start: int) -> None:
        """The old encoder's last frames go out, a new one starts at ``start`` (a closed GOP)."""
        self.finish(writer)
        self.open(predict, start)
        self._last_dts = None  # nothing carries over from the previous GOP

    def encode(self, index: int, frame: Frame, x_base: Frame | None,
               boxes: list[tuple[float, ...]] | None = None) -> list[EnhancementPacket]:
        """Code stream frame ``index`` (``x_base`` is ignored in full-frame mode); packets carry stream
        indexes.  NumPy and PyAV only, so it may run in a thread beside the base layer."""
        enc = self._running()
        base = x_base if self.predict else None
        if self.psnr:
            self._pending[index] = (frame, base)
        return self._renumber(enc.encode(frame, base, boxes=boxes))

    def finish(self, writer: StreamWriter) -> None:
        """Flush the running encoder into the stream (its last frames) and release it."""
        if self.enc is None:
            return
        self.write(writer, self._renumber(self.enc.flush()), final=True)
        self.close()

    def _renumber(self, packets: list[EnhancementPacket]) -> list[EnhancementPacket]:
        if self._start:
            for p in packets:
                p.frame_index += self._start
                if -(2**31) <= p.dts < 2**31:  # out-of-range values are fixed in write()
                    p.dts += self._start
        return packets

    def write(self, writer: StreamWriter, packets: list[EnhancementPacket], final: bool = False) -> int:
        """Write the packets as ENH_PACKET units; returns their payload bytes (measures with ``psnr``)."""
        n = 0
        for p in packets:
            if not -(2**31) <= p.dts < 2**31:
                # measured: libx265 through libav hands out uninitialised dts values for clips
                # shorter than its reorder depth (1-2 frames); decoders order by pts, so a
                # monotone stand-in keeps the stream valid
                p.dts = self._last_dts + 1 if self._last_dts is not None else p.frame_index - 2
            self._last_dts = p.dts
            payload = p.to_payload()
            writer.write_frame_unit(UnitType.ENH_PACKET, ENHANCEMENT_LAYER, frame=p.frame_index,
                                    payload=payload, intra=p.keyframe)
            n += len(payload)
        if self.psnr:
            self._measure(packets, final)
        return n

    def _measure(self, packets: list[EnhancementPacket], final: bool) -> None:
        from vcodec.enhancement import frame_psnr, reconstruct

        out: list[tuple[int, Any]] = []
        if self._dec is None:
            raise EncoderError("the PSNR decoder is closed; measure before finish()")
        for p in packets:
            out += self._dec.decode(p)
        if final:
            out += self._dec.flush()
        for idx, residual in out:  # packets carry stream indexes already (_renumber)
            x, x_base = self._pending.pop(idx)
            self.psnr_full[idx] = frame_psnr(x, reconstruct(x_base, residual, index=idx))

    def close(self) -> None:
        """Release the encoder and the PSNR decoder (frames not flushed are lost)."""
        if self.enc is not None:
            self.enc.close()
            self.enc = None
        if self._dec is not None:
            self._dec.close()
            self._dec = None
