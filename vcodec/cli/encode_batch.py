"""Encode many videos (a camera fleet, a day of footage): one stream and one JSON report per input.

  vcodec encode-batch cams.txt --out-dir out/ --workers 2            # LIST: one path per line
  vcodec encode-batch 'footage/*.mp4' --out-dir out/ --ray HEAD:6379  # GLOB, on a Ray cluster
  vcodec encode-batch a.y4m b.y4m --out-dir out/                      # serial, no Ray needed

Each input becomes DIR/<name>.vcs and DIR/<name>.json (the encode summary,
status "ok", or status "failed" with the error).  One task per input; with
--split-frames N inputs longer than N frames are cut into GOP tasks (closed
GOPs, as `vcodec encode --workers`) and merged into one stream.  Resumable:
an input whose stream exists, reads back whole (CRCs, END) and has an "ok"
report is skipped.  One progress bar counts all tasks.  A task that fails is
retried once; an input that fails twice is reported and the others go on
(exit code 1 at the end).

With --workers/--ray (pip install 'vcodec[ray]') the workers read the inputs
and write the outputs themselves: on a cluster, inputs and --out-dir must be
paths (or URLs, for inputs) every node can reach (docs/CLUSTER.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vcodec.cli._args import add_base_tool_arguments
from vcodec.cli.main import subcommand_main
from vcodec.errors import ConfigError, OutputError, VcodecError

HELP = "encode many inputs (LIST or GLOB) into one stream each, locally or on a Ray cluster"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vcodec.cli._args import parse_fps, parse_size
    from vcodec.enhancement import CODECS

    parser.add_argument("inputs", nargs="+", metavar="LIST|GLOB|PATH",
                        help="a .txt/.list file of paths (one per line), a quoted glob, or paths")
    parser.add_argument("--out-dir", required=True, metavar="DIR", help="where NAME.vcs and NAME.json go")
    g = parser.add_argument_group("parallel (optional extra: pip install 'vcodec[ray]')")
    g.add_argument("--workers", type=int, metavar="N", help="N local Ray worker processes")
    g.add_argument("--ray", metavar="ADDRESS", help="a running Ray cluster (`ray start --head` prints it)")
    g.add_argument("--split-frames", type=int, metavar="N",
                   help="with --workers/--ray: inputs longer than N frames are coded GOP-parallel")
    g = parser.add_argument_group("coding (as vcodec encode)")
    g.add_argument("--base-quality", type=float, default=None,
                   help="0..1, higher = more bits (default: the base model's own operating point, "
                        "0.25 for base-yolox-nano-v3, else 0.5)")
    g.add_argument("--base-model")
    g.add_argument("--base-size", type=int, metavar="PIXELS")
    add_base_tool_arguments(g)
    g.add_argument("--enh-codec", default="libx265", choices=list(CODECS))
    g.add_argument("--enh-qp", type=int)
    g.add_argument("--enh-crf", type=float)
    g.add_argument("--preset")
    g.add_argument("--lossless", action="store_true")
    g.add_argument("--inter-layer", choices=("on", "off", "auto"), default="auto")
    g.add_argument("--intra-period", type=int, default=32)
    g.add_argument("--low-delay", action="store_true")
    g.add_argument("--frames", type=int, help="at most N frames of each input")
    g.add_argument("--size", type=parse_size, help="WIDTHxHEIGHT of raw YUV inputs (else from the names)")
    g.add_argument("--fps", type=parse_fps)
    g.add_argument("--threads", type=int, default=0)
    g.add_argument("--psnr", action="store_true")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")


def _options(args: argparse.Namespace) -> Any:
    from vcodec.cli.encode_parallel import options_from_args

    if args.enh_qp is not None and args.enh_crf is not None:
        raise ConfigError("give --enh-qp or --enh-crf, not both")
    return options_from_args(args)  # no --roi or --detector-weights here: their defaults


def _resumable(item: Any) -> bool:
    from vcodec.cluster.batch import verify_stream

    if not (item.output.is_file() and item.report.is_file()):
        return False
    try:
        rep = json.loads(item.report.read_text())
        if rep.get("status") != "ok":
            return False
        item.frames = verify_stream(item.output, rep.get("frames"))
    except (ValueError, OSError, VcodecError):
        return False  # damaged or foreign: code it again
    return True


def _serial(tasks: list[Any]) -> Iterator[tuple[int, Any]]:
    """The same protocol as RayExecutor.map_unordered(keep_going=True), in this process, no retry."""
    from vcodec.cluster.batch import run_batch_task
    from vcodec.cluster.ray_backend import ClusterTaskError

    for i, t in enumerate(tasks):
        try:
            yield i, run_batch_task(t)
        except VcodecError as exc:
            yield i, ClusterTaskError(f"{t.describe()} failed: {exc}")


def run(args: argparse.Namespace) -> int:
    from vcodec._atomic import AtomicOutput
    from vcodec.cluster import InputSpec
    from vcodec.cluster.batch import FileTask, expand_inputs, plan_items, run_batch_task, write_report
    from vcodec.cluster.merge import GopMerger
    from vcodec.cluster.parallel import gop_tasks, summarize
    from vcodec.cluster.ray_backend import ClusterTaskError, RayExecutor, require_ray
    from vcodec.io import ReadOptions

    parallel = args.workers is not None or args.ray is not None
    if parallel:
        require_ray()
    if args.split_frames is not None and (not parallel or args.split_frames < 1):
        raise ConfigError("--split-frames N needs --workers/--ray and a positive N")
    options = _options(args)
    out_dir = Path(args.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create --out-dir {out_dir}: {exc.strerror or exc}") from None
    items = plan_items(expand_inputs(args.inputs), out_dir)
    skipped = [it for it in items if _resumable(it)]
    for it in skipped:
        it.status = "skipped"
    tasks: list[Any] = []
    owner: list[int] = []
    gop_counts: dict[int, int] = {}
    for k, it in enumerate(items):
        if it.status == "skipped":
            continue
        spec = InputSpec(it.input, ReadOptions(size=args.size, fps=args.fps))
        if args.split_frames is not None:
            from vcodec.io import open_video

            with open_video(it.input, size=args.size, fps=args.fps, frames=args.frames) as r:
                info = r.info  # the header only
            if info.num_frames and info.num_frames > args.split_frames:
                gts = gop_tasks(spec, info, options)
                tasks += gts
                owner += [k] * len(gts)
                gop_counts[k] = len(gts)
                it.frames = info.num_frames
                continue
        tasks.append(FileTask(spec, str(it.output), options, args.frames))
        owner.append(k)
    bar = None
    if not (args.quiet or args.no_progress):
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit="task", desc="encode-batch", file=sys.stderr, dynamic_ncols=True)
    mergers: dict[int, tuple[Any, Any, dict[int, Any], list[Any]]] = {}

    def fail(k: int, message: str) -> None:
        it = items[k]
        if it.status == "failed":
            return
        it.status = "failed"
        if k in mergers:
            mergers.pop(k)[0].abort()
        write_report(it, {"status": "failed", "input": it.input, "output": str(it.output), "error": message})

    def handle(i: int, value: Any) -> None:
        k = owner[i]
        it = items[k]
        if isinstance(value, ClusterTaskError):
            fail(k, str(value))
            return
        if it.status == "failed":
            return
        if isinstance(tasks[i], FileTask):
            it.status = "done"
            write_report(it, {"status": "ok", "input": it.input, "output": str(it.output), **value})
            return
        if k not in mergers:
            sink = AtomicOutput(it.output, what="encode-batch output")
            mergers[k] = (sink, GopMerger(sink.stream), {}, [])
        sink, merger, waiting, done = mergers[k]
        waiting[value.gop] = value
        done.append(value)
        try:
            while merger.gops in waiting:
                merger.add(waiting.pop(merger.gops))
            if merger.gops == gop_counts[k]:
                merger.close()
                sink.commit()
                mergers.pop(k)
                summary = summarize(done, merger, tasks[i].info, options, sum(r.seconds for r in done), 0)
                it.status = "done"
                write_report(it, {"status": "ok", "input": it.input, "output": str(it.output),
                                  **summary.as_dict()})
        except VcodecError as exc:
            fail(k, f"{it.input}: {exc}")

    try:
        if parallel and tasks:
            with RayExecutor(args.workers, args.ray) as ex:
                for i, value in ex.map_unordered(run_batch_task, tasks, lambda t: t.describe(),
                                                 keep_going=True):
                    handle(i, value)
                    if bar is not None:
                        bar.update(1)
        else:
            for i, value in _serial(tasks):
                handle(i, value)
                if bar is not None:
                    bar.update(1)
    finally:
        for sink, *_ in mergers.values():
            sink.abort()
        if bar is not None:
            bar.close()
    failed = [it for it in items if it.status == "failed"]
    if not args.quiet:
        done = sum(it.status == "done" for it in items)
        print(f"vcodec encode-batch: {done} encoded, {len(skipped)} skipped (already done), "
              f"{len(failed)} failed; "
              f"streams and reports in {out_dir}/", file=sys.stderr)
        for it in failed:
            print(f"  failed: {it.input} (see {it.report})", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    return subcommand_main("encode-batch", argv)


if __name__ == "__main__":
    sys.exit(main())
