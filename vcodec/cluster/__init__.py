"""Scale out on Ray: GOP-parallel encoding, fleet encoding and distributed evaluation.

Ray is optional (``pip install 'vcodec[ray]'``); every ``import ray`` lives in
:mod:`vcodec.cluster.ray_backend`, so this package imports without it and
asking for ``--workers``/``--ray`` without Ray is a one-line usage error.

* :mod:`vcodec.cluster.plan`: the dataclasses that cross process lines
  (encoder options, input, one GOP task, its result);
* :mod:`vcodec.cluster.gop`: a worker codes one GOP with the standard
  :class:`~vcodec.codec.Encoder` (closed GOPs, ``first_frame``) into a buffer;
* :mod:`vcodec.cluster.merge`: GOP unit runs are concatenated through the
  stream writer, so INDEX, END and offsets are the writer's own;
* :mod:`vcodec.cluster.parallel`: ``encode_parallel`` (what ``vcodec encode
  --workers/--ray`` runs);
* :mod:`vcodec.cluster.ray_backend`: the executor (local Ray with N workers,
  or an existing cluster), retries and error naming.
"""

from __future__ import annotations

from vcodec.cluster.plan import EncodeOptions, GopResult, GopTask, InputSpec, plan_gops

__all__ = ["EncodeOptions", "GopResult", "GopTask", "InputSpec", "plan_gops"]
