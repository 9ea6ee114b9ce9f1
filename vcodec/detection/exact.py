"""Thread-count-independent copies of a network (float64 or float32) whose convolutions, pools
and activations run fast and deterministically.

Why: analytics results and x_base must be bit-exact whatever the machine's thread count, and
PyTorch's own CPU kernels are not: oneDNN's float32 convolutions pick their reduction order by
thread count, and every element-wise kernel splits its range between threads, each part
running a vectorised body and a scalar tail, which for ``exp``-based activations (SiLU,
sigmoid) round differently (measured: 4 % of SiLU outputs differ between the two paths, in
float32 and float64 alike).  PyTorch's float64 kernels are also the generic slow ones (a
depthwise convolution runs one channel at a time, ``max_pool2d`` is a scalar loop, a
transposed convolution pays a zero-filled col2im).  :func:`to_exact` swaps those layers for
equivalents built from ops whose results do not depend on the thread count:

* depthwise convolutions: a fixed-order sum of ``k * k`` shifted products (each tap one
  multiply and one add, both element-wise and correctly rounded, never fused: ``addcmul``
  was measured to fuse in its vectorised body only, so its result would follow where the
  thread split puts the scalar tail);
* stride-1 max pools: a separable max over -inf padding, windows built by doubling (max
  is exact and order-free, so the result is bit-identical to ``max_pool2d``);
* transposed convolutions: one regular convolution per sub-pixel phase, interleaved
  (the same products as the transposed convolution, summed in another order);
* 1x1 convolutions: one matrix product; dense stride-1 convolutions: one matrix product
  per tap on a shifted window of the flattened padded input, accumulated by the gemm (no
  k*k-sized im2col); the BLAS gemm (MKL here) partitions its output, never a dot product,
  between threads (tests/test_exact.py checks 1-4 threads on real frames);
* integer nearest-neighbour upsampling: one broadcast copy (bit-identical);
* SiLU: applied to fixed slices of at most :data:`SERIAL_ELEMENTS` elements, each of which
  PyTorch runs on one thread, so the scalar tails sit at the same places whatever the
  thread count (:func:`serial_elementwise`; the YOLOX decoder's sigmoid and exp use it too).

In float64 the results differ from a plain ``copy.deepcopy(net).double()`` only by
summation order (~1e-16 relative per layer; tests/test_exact.py bounds it at 1e-12 on the
shipped models).  The float32 copy (:func:`to_float32_exact`) runs the analytics back end at
about twice the float64 speed with results that are still independent of the thread count.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "EXACT_VERSION", "SERIAL_ELEMENTS", "serial_elementwise", "to_exact", "to_float32_exact", "to_float64",
    "SerialSiLU",
    "DenseConvExact", "DepthwiseConvExact", "NearestUpsampleExact", "PointwiseConvExact",
    "SeparableMaxPoolExact", "SubPixelConvTransposeExact",
]


#: bump when what the exact copies compute changes (eval cache keys of base-layer points carry it;
#: 2: the analytics path moved from float64 to float32)
EXACT_VERSION = 2
#: below PyTorch's parallel grain (32768 elements) an element-wise op runs on one thread
SERIAL_ELEMENTS = 16384


def serial_elementwise(fn_: Callable[[Tensor], object], x: Tensor) -> Tensor:
    """An in-place element-wise op (``torch.sigmoid_``, ``F.silu(.., inplace=True)``, ...) applied
    slice by slice, so that its bits do not follow the thread count; returns the result.

    Each slice is small enough for PyTorch to run on one thread: its vectorised body and
    scalar tail fall on the same elements whatever ``torch.get_num_threads()`` says.
    ``x`` itself is modified when it is contiguous (else a contiguous copy is).
    """
    out = x.contiguous()
    flat = out.view(-1)
    for start in range(0, flat.numel(), SERIAL_ELEMENTS):
        # narrow, not split: autograd lets a single view be modified in place
        fn_(flat.narrow(0, start, min(SERIAL_ELEMENTS, flat.numel() - start)))
    return out


def _silu_(x: Tensor) -> None:
    F.silu(x, inplace=True)


class SerialSiLU(nn.Module):
    """``nn.SiLU`` through :func:`serial_elementwise` (in place only when the original was)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return serial_elementwise(_silu_, x if self.inplace else x.clone())


def _flat_padded(x: Tensor, left: int, right: int, top: int, bottom: int) -> tuple[Tensor, int]:
    """``x`` (N x C x H x W) zero-padded and flattened to N x C x (rows * Wp), plus Wp.

    One spare row at the bottom: a window that starts on the last output row reads up to
    ``k - 1`` elements past it, which must be zeros, not the end of the buffer.
    """
    xp = F.pad(x, (left, right, top, bottom + 1))
    return xp.reshape(x.shape[0], x.shape[1], -1), int(xp.shape[-1])


def _batch(images: list[Tensor]) -> Tensor:
    """Per-image results as one batch (one image: a view, not a copy)."""
    return images[0].unsqueeze(0) if len(images) == 1 else torch.stack(images)


def _shifted_matmul(flat: Tensor, taps: list[tuple[int, Tensor]], length: int,
                    bias: Tensor | None = None) -> Tensor:
    """``bias`` plus the sum over taps of ``weight @ flat[:, offset:offset + length]``, in that order.

    A stride-1 convolution on a flattened padded picture: each tap is a plain matrix product
    on a shifted window (a strided view BLAS reads in place), accumulated by the gemm itself
    (beta = 1) -- no im2col buffer k*k times the input's size, no separate pass for the bias.
    """
    (off, w), rest = taps[0], taps[1:]
    first = flat[:, off:off + length]
    out = torch.mm(w, first) if bias is None else torch.addmm(bias, w, first)
    for off, w in rest:
        out.addmm_(w, flat[:, off:off + length])
    return out


class DenseConvExact(nn.Module):
    """``nn.Conv2d`` with one group, stride 1 and a k x k kernel (k > 1) as shifted matrix products."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        kh, kw = (int(k) for k in conv.kernel_size)
        pad = conv.padding
        assert not isinstance(pad, str)  # to_exact only converts numeric padding
        self.kernel, self.padding = (kh, kw), (int(pad[0]), int(pad[1]))
        w = conv.weight.detach()
        self.taps = [(i, j, w[:, :, i, j].clone()) for i in range(kh) for j in range(kw)]
        self.bias = None if conv.bias is None else conv.bias.detach().reshape(-1, 1).clone()

    def forward(self, x: Tensor) -> Tensor:
        (kh, kw), (ph, pw) = self.kernel, self.padding
        flat, wp = _flat_padded(x, pw, pw, ph, ph)
        ho, wo = x.shape[-2] + 2 * ph - kh + 1, x.shape[-1] + 2 * pw - kw + 1
        taps = [(i * wp + j, w) for i, j, w in self.taps]
        outs = []
        for b in range(x.shape[0]):
            out = _shifted_matmul(flat[b], taps, ho * wp, self.bias)
            outs.append(out.view(-1, ho, wp)[:, :, :wo])
        return _batch(outs)


class DepthwiseConvExact(nn.Module):
    """``nn.Conv2d`` with ``groups == in_channels == out_channels`` as shifted products."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        kh, kw = conv.kernel_size
        self.kernel = (int(kh), int(kw))
        self.stride = (int(conv.stride[0]), int(conv.stride[1]))
        pad = conv.padding
        assert not isinstance(pad, str)  # to_exact only converts numeric padding
        self.padding = (int(pad[0]), int(pad[1]))
        # one per-channel weight per tap, row-major: the order the taps are summed in
        w = conv.weight.detach()
        self.taps = [w[:, 0, i, j].reshape(-1, 1).clone() for i in range(kh) for j in range(kw)]
        self.bias = None if conv.bias is None else conv.bias.detach().reshape(-1, 1).clone()

    def forward(self, x: Tensor) -> Tensor:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        ho = (x.shape[-2] + 2 * ph - kh) // sh + 1
        wo = (x.shape[-1] + 2 * pw - kw) // sw + 1
        if (sh, sw) == (1, 1):
            # flattened padded picture: every tap reads one contiguous window
            flat, wp = _flat_padded(x, pw, pw, ph, ph)
            n = ho * wp
            windows = [flat[..., i * wp + j:i * wp + j + n] for i in range(kh) for j in range(kw)]
            shape: tuple[int, ...] = (x.shape[0], x.shape[1], n)
            taps, bias = self.taps, self.bias
        else:
            # strided views, read in place (a reshape would copy each one)
            xp = F.pad(x, (pw, pw, ph, ph))
            windows = [xp[..., i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
                       for i in range(kh) for j in range(kw)]
            shape = (x.shape[0], x.shape[1], ho, wo)
            taps = [w.unsqueeze(-1) for w in self.taps]
            bias = None if self.bias is None else self.bias.unsqueeze(-1)
        out = torch.empty(shape, dtype=x.dtype, device=x.device)
        tmp = torch.empty_like(out)
        for t, (win, w) in enumerate(zip(windows, taps, strict=True)):
            # separate mul and add: a fused multiply-add could round differently in the
            # vectorised body and the scalar tail, whose split follows the thread count
            torch.mul(win, w, out=out if t == 0 else tmp)
            if t:
                out.add_(tmp)
        if bias is not None:
            out.add_(bias)
        if (sh, sw) == (1, 1):
            return out.view(x.shape[0], x.shape[1], ho, -1)[..., :wo]
        return out


class PointwiseConvExact(nn.Module):
    """``nn.Conv2d`` 1x1, stride 1, no padding, one group: a matrix product per image."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        w = conv.weight.detach()
        self.weight = w.reshape(conv.out_channels, conv.in_channels).clone()
        self.bias = None if conv.bias is None else conv.bias.detach().reshape(-1, 1).clone()

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        flat = x.reshape(n, c, h * w)
        outs = []
        for b in range(n):
            out = _shifted_matmul(flat[b], [(0, self.weight)], h * w, self.bias)
            outs.append(out.view(-1, h, w))
        return _batch(outs)


def _window_max(x: Tensor, k: int, dim: int) -> Tensor:
    """Max over every window of ``k`` consecutive elements along ``dim`` (length n - k + 1).

    Windows double (2, 4, 8, ...) and the last step joins two overlapping ones; max is exact
    and idempotent, so overlaps and order cannot change a bit.
    """
    w, p = x, 1
    while 2 * p <= k:
        n = w.shape[dim] - p
        w = torch.maximum(w.narrow(dim, 0, n), w.narrow(dim, p, n))
        p *= 2
    if p < k:
        n = w.shape[dim] - (k - p)
        w = torch.maximum(w.narrow(dim, 0, n), w.narrow(dim, k - p, n))
    return w


class SeparableMaxPoolExact(nn.Module):
    """``nn.MaxPool2d(k, stride=1, padding=k // 2)`` (odd k) as a row max then a column max."""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        k = pool.kernel_size
        self.kernel = int(k if isinstance(k, int) else k[0])

    def forward(self, x: Tensor) -> Tensor:
        k, p = self.kernel, self.kernel // 2
        # -inf padding is what max_pool2d's implicit padding means
        xp = F.pad(x, (p, p, p, p), value=float("-inf"))
        return _window_max(_window_max(xp, k, -1), k, -2)


class NearestUpsampleExact(nn.Module):
    """``nn.Upsample(scale_factor=s, mode="nearest")`` with an integer ``s``: one broadcast copy."""

    def __init__(self, up: nn.Upsample) -> None:
        super().__init__()
        self.scale = _integer_scale(up)
        assert self.scale  # to_exact only converts integer nearest-neighbour upsampling

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        s = self.scale
        return x[:, :, :, None, :, None].expand(n, c, h, s, w, s).reshape(n, c, h * s, w * s)


class SubPixelConvTransposeExact(nn.Module):
    """``nn.ConvTranspose2d`` (one group, no dilation) as one convolution per output phase.

    Output pixel ``o = s * m + r`` receives input ``i = m - d`` through tap ``s * d + r + p``;
    for a fixed phase ``r`` those taps form a small stride-1 convolution on the input, so the
    transposed convolution is ``s * s`` such convolutions (shifted matrix products on one
    padded copy of the input), interleaved.
    """

    def __init__(self, conv: nn.ConvTranspose2d) -> None:
        super().__init__()
        self.stride = (int(conv.stride[0]), int(conv.stride[1]))
        self.padding = (int(conv.padding[0]), int(conv.padding[1]))
        self.output_padding = (int(conv.output_padding[0]), int(conv.output_padding[1]))
        self.kernel = (int(conv.kernel_size[0]), int(conv.kernel_size[1]))
        self.out_channels = int(conv.out_channels)
        w = conv.weight.detach()  # Cin x Cout x kh x kw
        axes = [self._phase_offsets(self.kernel[a], self.stride[a], self.padding[a]) for a in range(2)]
        # the input is padded by the largest offset d of any phase: index m - d + pad >= 0
        self.pad_before = tuple(max([0] + [d for ds in axes[a] for d, _ in ds]) for a in range(2))
        self.min_offset = tuple(min([0] + [d for ds in axes[a] for d, _ in ds]) for a in range(2))
        # per phase (r0, r1): [(d0, d1, Cout x Cin weight)], row-major over the kernel
        self.phases: list[tuple[int, int, list[tuple[int, int, Tensor]]]] = []
        for r0, taps0 in enumerate(axes[0]):
            for r1, taps1 in enumerate(axes[1]):
                taps = [(d0, d1, w[:, :, k0, k1].t().contiguous())
                        for d0, k0 in sorted(taps0, key=lambda t: t[1])
                        for d1, k1 in sorted(taps1, key=lambda t: t[1])]
                if taps:  # a phase without taps (stride > kernel) holds the bias alone
                    self.phases.append((r0, r1, taps))
        self.bias = None if conv.bias is None else conv.bias.detach().clone()
        # few output channels (g_s's last layer: 3 x 32, 25 taps): one gemm of every tap's weights
        # reads the input once instead of once per tap, then each phase sums its taps' shifted
        # rows in the same order (that layer: 7.6 -> 4.9 ms per 416x240 frame at 2 threads)
        rows = sum(len(t) for _, _, t in self.phases) * self.out_channels
        self.stacked = (torch.cat([wt for _, _, taps in self.phases for _, _, wt in taps])
                        if rows <= self.STACKED_ROWS else None)

    #: at most this many stacked weight rows (taps x output channels) take the one-gemm path
    STACKED_ROWS = 96

    @staticmethod
    def _phase_offsets(k: int, s: int, p: int) -> list[list[tuple[int, int]]]:
        """Per phase r: the (input offset d, kernel tap s*d + r + p) pairs with a tap in the kernel."""
        return [[(d, s * d + r + p) for d in range(-k - p - s, k + s) if 0 <= s * d + r + p < k]
                for r in range(s)]

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        (s0, s1), (p0, p1), (o0, o1) = self.stride, self.padding, self.output_padding
        kh, kw = self.kernel
        ho, wo = (h - 1) * s0 - 2 * p0 + kh + o0, (w - 1) * s1 - 2 * p1 + kw + o1
        m0, m1 = -(-ho // s0), -(-wo // s1)  # outputs per phase, at most
        (a0, a1), (b0, b1) = self.pad_before, self.min_offset
        # after the phase's last output m - 1 the window still reads index m - 1 - min_offset
        flat, wp = _flat_padded(x, a1, max(0, m1 - b1 - w), a0, max(0, m0 - b0 - h))
        out = torch.zeros(n, self.out_channels, ho, wo, dtype=x.dtype, device=x.device)
        products = [] if self.stacked is None else [torch.mm(self.stacked, flat[b]) for b in range(n)]
        row = 0
        for r0, r1, taps in self.phases:
            c0, c1 = len(range(r0, ho, s0)), len(range(r1, wo, s1))  # outputs of this phase
            first_row, row = row, row + len(taps) * self.out_channels
            if not c0 or not c1:
                continue
            shifted = [((a0 - d0) * wp + (a1 - d1), wt) for d0, d1, wt in taps]
            for b in range(n):
                if products:
                    res = self._sum_taps(products[b], first_row, [off for off, _ in shifted], c0 * wp)
                else:
                    res = _shifted_matmul(flat[b], shifted, c0 * wp)
                out[b, :, r0::s0, r1::s1] = res.view(-1, c0, wp)[:, :, :c1]
        if self.bias is not None:
            out.add_(self.bias.reshape(1, -1, 1, 1))
        return out

    def _sum_taps(self, products: Tensor, first_row: int, offsets: list[int], length: int) -> Tensor:
        """One phase from the stacked products: its taps' rows, shifted, summed in tap order."""
        c = self.out_channels
        out = products[first_row:first_row + c, offsets[0]:offsets[0] + length].clone()
        for t, off in enumerate(offsets[1:], 1):
            out.add_(products[first_row + t * c:first_row + (t + 1) * c, off:off + length])
        return out


def _integer_scale(up: nn.Upsample) -> int:
    """The integer factor of a nearest-neighbour upsampling by the same factor on both axes, else 0."""
    f = up.scale_factor
    if up.mode != "nearest" or up.size is not None or f is None:
        return 0
    factors = [f, f] if isinstance(f, (int, float)) else list(f)
    ok = len(factors) == 2 and factors[0] == factors[1] and float(factors[0]).is_integer() and factors[0] >= 1
    return int(factors[0]) if ok else 0


def _replacement(child: nn.Module) -> nn.Module | None:
    """The fast exact equivalent of ``child``, or None to keep it."""
    if type(child) is nn.SiLU:
        return SerialSiLU(child.inplace)
    if type(child) is nn.Conv2d and child.padding_mode == "zeros" and not isinstance(child.padding, str) \
            and tuple(child.dilation) == (1, 1):
        if child.groups > 1 and child.groups == child.in_channels == child.out_channels:
            return DepthwiseConvExact(child)
        if child.groups == 1 and tuple(child.stride) == (1, 1):
            if tuple(child.kernel_size) == (1, 1) and tuple(child.padding) == (0, 0):
                return PointwiseConvExact(child)
            return DenseConvExact(child)
    if type(child) is nn.MaxPool2d:
        k, s, p, d = (child.kernel_size, child.stride, child.padding, child.dilation)
        if isinstance(k, int) and k % 2 == 1 and s in (1, (1, 1)) and p == k // 2 and d == 1 \
                and not child.ceil_mode and not child.return_indices:
            return SeparableMaxPoolExact(child)
    if type(child) is nn.Upsample and _integer_scale(child):
        return NearestUpsampleExact(child)
    if type(child) is nn.ConvTranspose2d and child.groups == 1 and tuple(child.dilation) == (1, 1) \
            and child.padding_mode == "zeros":
        return SubPixelConvTransposeExact(child)
    return None


def to_exact(module: nn.Module, dtype: torch.dtype = torch.float64) -> nn.Module:
    """A ``dtype`` deep copy of ``module`` (eval mode, no gradients) with the layers above replaced.

    The caller's module is untouched.  Layers this module does not know run as PyTorch's
    kernels (whose results may follow the thread count in float32: check what is left).
    """
    net = copy.deepcopy(module).to(dtype).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        top = _replacement(net)
        if top is not None:
            return top
        _convert(net)
    return net


def to_float64(module: nn.Module) -> nn.Module:
    """:func:`to_exact` in float64 (what x_base and the encoder's decisions use)."""
    return to_exact(module, torch.float64)


def to_float32_exact(module: nn.Module) -> nn.Module:
    """:func:`to_exact` in float32 (what the analytics path runs: T and the detector's back end)."""
    return to_exact(module, torch.float32)


def _convert(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        new = _replacement(child)
        if new is None:
            _convert(child)
        else:
            setattr(module, name, new)
