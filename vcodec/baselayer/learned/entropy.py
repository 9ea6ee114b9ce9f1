"""The deterministic entropy-parameter path of the learned base layer (encoder and decoder alike).

The entropy parameters (hyper synthesis, temporal context, entropy-parameter
heads) run in float64 on a private copy of the weights; means are rounded to a
1/128 grid, scales are turned into CompressAI scale-table indexes, the
reconstruction offsets are a per-index table rounded to 1/1024, and gain and
hyperlatent step are rounded to fixed grids.  A float64 result would have to
fall within ~1e-13 of a rounding boundary for a different reduction order
(thread count, BLAS) to change a symbol, CDF or y_hat.  y_hat itself is
computed element-wise from integers and these rounded values, so encoder and
decoder hold bit-identical references.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from vcodec._compressai import EntropyBottleneckVbr, GaussianConditional
from vcodec.baselayer.learned import rdo
from vcodec.baselayer.learned.base_net import SCALE_TABLE, BaseNet
from vcodec.baselayer.learned.skipmap import BINARY_CDFS

__all__ = ["EntropyPath", "MIN_RANS_SYMBOLS", "PAD_CDF"]

#: rANS strings of version-2 payloads end with this many padding symbols (P(0) = 1/2), unread
MIN_RANS_SYMBOLS = 4
PAD_CDF = len(BINARY_CDFS) // 2


class EntropyPath:
    """Float64 copy of the parameter networks plus all rounding rules (see module docstring)."""

    def __init__(self, net: BaseNet) -> None:
        cfg = net.cfg
        self.cfg = cfg
        with torch.no_grad():
            # the convolutions through the exact executor: PyTorch's float64 kernels are the slow
            # generic ones (same products; the sums' order moves results by ~1e-16, far below
            # the grids above).  Imported here: vcodec.detection's package pulls in OpenCV.
            from vcodec.detection.exact import to_float64

            self.h_s = to_float64(net.h_s)
            self.ctx = to_float64(net.ctx)
            self.ep_i = to_float64(net.ep_i)
            self.ep_p = to_float64(net.ep_p)
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

    def coder_tables_for(self, indexes: np.ndarray
                         ) -> tuple[list[int], list[list[int]], list[int], list[int]]:
        """``indexes`` renumbered over the tables they use, and only those tables, in index order.

        The rANS coder converts every table it is handed on every call (64 Gaussian CDFs of up to
        ~3,000 entries: ~1.8 ms), while a frame's symbols use a few of them; each symbol keeps its
        own CDF, so the coded bytes are the same.
        """
        cdfs, lengths, offsets = self.coder_tables()
        used = np.bincount(indexes.reshape(-1), minlength=len(cdfs)) > 0  # no sort: a frame has ~1e5
        renumber = np.cumsum(used) - 1
        keep = np.flatnonzero(used).tolist()
        return (renumber[indexes.reshape(-1)].tolist(), [cdfs[i] for i in keep], [lengths[i] for i in keep],
                [offsets[i] for i in keep])

    def reconstruct(self, sym: torch.Tensor, means: torch.Tensor, idx: torch.Tensor, gain: float,
                    off: torch.Tensor) -> torch.Tensor:
        """y_hat from integer symbols: element-wise float64, stored as float32."""
        s = sym.double()
        o = off[idx.long()] * (s != 0)
        y = torch.sign(s) * (s.abs() + o) / gain + means
        return y.float()
