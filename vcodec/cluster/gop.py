"""Worker side: code one GOP with the standard Encoder into a buffer.

The encoder is the serial one (:class:`~vcodec.codec.Encoder`) with
``closed_gops=True`` and ``first_frame`` at the GOP's first frame, so its
units are the ones the serial closed-GOP encoder writes for those frames.
The worker opens the input itself; the base model is loaded once per worker
process (:func:`base_layer`) and reused for every GOP it codes.
"""

from __future__ import annotations

import io
import os
import socket
import time
from pathlib import Path
from typing import Any

from vcodec.cluster.plan import EncodeOptions, GopResult, GopTask
from vcodec.errors import EncoderError, InputError, VcodecError

__all__ = ["encode_gop", "base_layer", "loads"]

_BASES: dict[tuple[Any, ...], Any] = {}
#: how many times this process loaded base weights (tests check "once per worker")
loads = 0


def base_layer(options: EncodeOptions) -> Any:
    """The base layer for ``options``, loaded once per process."""
    global loads
    from vcodec.codec.base_layer import get_base_factory, kind_for_mode

    key = (options.base_model, options.base_size, options.base_effort, options.base_p_offset,
           options.base_deadzone, options.base_tune)
    if key not in _BASES:
        _BASES[key] = get_base_factory(kind_for_mode("learned")).for_encoding(
            options.base_model, options.base_size, options.base_effort, p_offset=options.base_p_offset,
            p_deadzone=options.base_deadzone, tune=options.base_tune)
        loads += 1
    return _BASES[key]


def _inject_fault(task: GopTask) -> None:
    if not task.fault:
        return
    kind, _, rest = task.fault.partition(":")
    gop, _, marker = rest.partition(":")
    if not gop.isdigit() or int(gop) != task.gop:
        return
    if kind == "crash-once" and marker and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os._exit(17)  # the worker process dies mid-task, as a killed node would
    if kind == "fail":
        raise EncoderError(f"injected failure ({task.fault})")


def encode_gop(task: GopTask) -> GopResult:
    """Code one GOP; errors are :class:`VcodecError` naming the GOP."""
    from vcodec.codec import Encoder

    t0 = time.perf_counter()
    _inject_fault(task)
    where = f"{task.describe()} on {socket.gethostname()}"
    try:
        reader = task.input.open(task.first_frame, task.frames)
    except VcodecError as exc:
        raise InputError(f"{where}: cannot read the input: {exc} (inputs must be paths or URLs every node "
                         "can reach)") from None
    buf = io.BytesIO()
    base = base_layer(task.options)
    setup = time.perf_counter() - t0
    stats = []
    with reader:
        enc = Encoder(buf, task.info, **task.options.encoder_kwargs(), closed_gops=True,
                      first_frame=task.first_frame, base_layer=base)
        with enc:
            for frame in reader:
                stats.append(enc.encode(frame))
            if len(stats) != task.frames:
                raise InputError(f"{where}: the input gave {len(stats)} frames, expected {task.frames} "
                                 "(is it the same file on every node?)")
    summary = enc.summary()
    extra = {k: v for k, v in summary.extra.items() if k in ("gops", "probe_seconds")}
    extra["psnr_full_yuv"] = summary.psnr_full_yuv
    return GopResult(task.gop, task.first_frame, task.frames, buf.getvalue(), stats,
                     time.perf_counter() - t0, setup, f"{socket.gethostname()}:{os.getpid()}", extra, loads)
