"""Entropy coding of quantization indexes with CompressAI's rANS coder.

The coder (``compressai.ans``) takes, per symbol, the number of the integer
CDF table to use.  Tables are built here from *integer* histograms with
integer arithmetic only, so encoder and decoder hold identical tables on
every machine by construction (no floating point between the counts and the
coder).

CompressAI's table layout: for ``K`` symbols a table has ``K + 2`` entries,
``cdf[0] = 0 <= ... <= cdf[K + 1] = 2**16``; the extra symbol ``K`` is the
coder's escape (values outside the table, sent in bypass mode).  Our indexes
never escape, but the escape must keep a non-zero frequency, and so does
every real symbol (a zero-frequency symbol cannot be coded at all): each
of the ``K + 1`` slots gets at least 1.

Contexts (see :mod:`vcodec.baselayer.features.codec`): intra frames use one table per
channel; P-frames use one table per (channel group, previous decoded index
at the same position), i.e. the histogram is conditioned on the previous
frame's decoded feature.
"""

from __future__ import annotations

import numpy as np

from vcodec._compressai import RansDecoder, RansEncoder
from vcodec.errors import BitstreamError, ConfigError

__all__ = ["PRECISION", "quantized_cdf", "CdfTables", "encode_indexes", "decode_indexes"]

PRECISION = 16
_TOTAL = 1 << PRECISION


def quantized_cdf(counts: np.ndarray) -> np.ndarray:
    """Integer histogram of ``K`` symbols -> CompressAI CDF table of ``K + 2`` int32 entries.

    Every symbol and the escape get a frequency >= 1; the rest of the
    ``2**16`` total is shared in proportion to ``counts`` (floor division),
    and the remainder goes to the most frequent symbol.  Integers throughout.
    """
    c = np.asarray(counts, dtype=np.int64).ravel()
    k = c.size
    if k < 1 or k + 1 > _TOTAL // 2:
        raise ConfigError(f"a CDF table needs 1..{_TOTAL // 2 - 1} symbols, got {k}")
    if (c < 0).any():
        raise ConfigError("histogram counts must be >= 0")
    freq = np.ones(k + 1, dtype=np.int64)  # last slot: escape
    spare = _TOTAL - (k + 1)
    total = int(c.sum())
    if total > 0:
        freq[:k] += (c * spare) // total
    else:
        freq[:k] += spare // k
    freq[int(np.argmax(np.append(c, -1)))] += _TOTAL - int(freq.sum())
    cdf = np.zeros(k + 2, dtype=np.int64)
    cdf[1:] = np.cumsum(freq)
    assert cdf[-1] == _TOTAL
    return cdf.astype(np.int32)


class CdfTables:
    """A list of CDF tables of the same alphabet size, ready for the rANS coder."""

    def __init__(self, counts: np.ndarray) -> None:
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 2:
            raise ConfigError(f"CDF tables need a (tables x symbols) histogram, got shape {counts.shape}")
        self.counts = counts
        self.num_symbols = counts.shape[1]
        self.cdfs = [quantized_cdf(row).tolist() for row in counts]
        self.lengths = [self.num_symbols + 2] * len(self.cdfs)
        self.offsets = [0] * len(self.cdfs)
        freq = np.diff(np.asarray(self.cdfs, dtype=np.int64), axis=1)[:, : self.num_symbols]
        #: ideal code length (bits) of each symbol under each table
        self.bits = PRECISION - np.log2(freq.astype(np.float64))

    def __len__(self) -> int:
        return len(self.cdfs)


def encode_indexes(symbols: np.ndarray, tables: np.ndarray, cdf: CdfTables) -> bytes:
    """rANS-code integer ``symbols`` in [0, K), each with the table number in ``tables``."""
    s = np.asarray(symbols, dtype=np.int64).ravel()
    t = np.asarray(tables, dtype=np.int64).ravel()
    if s.size != t.size:
        raise ConfigError(f"{s.size} symbols but {t.size} table numbers")
    if s.size and (s.min() < 0 or s.max() >= cdf.num_symbols):
        raise ConfigError(f"symbols must lie in [0, {cdf.num_symbols}); got {s.min()}..{s.max()}")
    if t.size and (t.min() < 0 or t.max() >= len(cdf)):
        raise ConfigError(f"table numbers must lie in [0, {len(cdf)})")
    return RansEncoder().encode_with_indexes(s.tolist(), t.tolist(), cdf.cdfs, cdf.lengths, cdf.offsets)


def decode_indexes(data: bytes, tables: np.ndarray, cdf: CdfTables) -> np.ndarray:
    """Inverse of :func:`encode_indexes` (needs the same table numbers, in the same order)."""
    t = np.asarray(tables, dtype=np.int64).ravel()
    if t.size and (t.min() < 0 or t.max() >= len(cdf)):
        raise BitstreamError(f"table numbers must lie in [0, {len(cdf)})", unit="feature payload")
    try:
        out = RansDecoder().decode_with_indexes(bytes(data), t.tolist(), cdf.cdfs, cdf.lengths, cdf.offsets)
    except (ValueError, RuntimeError) as exc:
        raise BitstreamError(f"feature indexes cannot be entropy-decoded: {exc}",
                             unit="feature payload") from exc
    s = np.asarray(out, dtype=np.int64)
    # the escape symbol never appears in a valid stream; garbage input can produce it
    if s.size and (s.min() < 0 or s.max() >= cdf.num_symbols):
        raise BitstreamError("feature payload decodes to an index outside the quantizer "
                             "(corrupt data)", unit="feature payload")
    return s
