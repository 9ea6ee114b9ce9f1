"""The executor: Ray tasks on a local Ray (``--workers N``) or an existing cluster (``--ray ADDRESS``).

Every ``import ray`` of vcodec is in this module, so vcodec runs without Ray;
asking for it then is a usage error (exit 2) that says how to install it.

Tasks are retried once (``max_retries=1`` for a worker process that dies,
``retry_exceptions=True`` for an error raised by the task); a task that fails
twice stops the run with a :class:`ClusterTaskError` naming the task (a GOP,
an input, an evaluation unit) and its cause, in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from vcodec.errors import ConfigError, EncoderError, VcodecError

__all__ = ["INSTALL_HINT", "ClusterTaskError", "RayExecutor", "require_ray", "ray_available"]

T = TypeVar("T")
R = TypeVar("R")

#: how to get the optional extra (the version pin is in setup.cfg, extras ``ray``)
INSTALL_HINT = "pip install 'vcodec[ray]'"
#: attempts per task: the first run and one retry
ATTEMPTS = 2


class ClusterTaskError(EncoderError):
    """A task failed on the workers twice (the first run and its retry)."""


def require_ray() -> Any:
    """The ``ray`` module, or a usage error (exit 2) saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--workers/--ray need Ray, which is not installed; install the extra with "
                          f"{INSTALL_HINT} (or use the serial commands without --workers/--ray)") from None
    return ray


def ray_available() -> bool:
    try:
        require_ray()
    except ConfigError:
        return False
    return True


def _cause(exc: BaseException) -> str:
    """One line: the task's own error when Ray wraps it, else Ray's first line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    if isinstance(exc, VcodecError):
        return str(exc)
    name = type(exc).__name__
    if name in ("WorkerCrashedError", "NodeDiedError", "ActorDiedError", "OutOfMemoryError"):
        return f"the worker process died ({name})"
    text = str(exc).strip().splitlines()
    return f"{name}: {text[-1] if text else ''}".strip()


class RayExecutor:
    """Run a function over items as Ray tasks, one CPU each.

    ``workers``: start a private local Ray with that many CPUs (never an existing
    one); ``address``: connect to a running cluster (``ray start --head`` prints it).
    """

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        if (workers is None) == (address is None):
            raise ConfigError("give --workers N (local Ray) or --ray ADDRESS (an existing cluster), not both")
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise ConfigError(f"--workers {workers} is invalid; give a positive number of worker processes")
        self.workers = workers
        self.address = address
        self._ray: Any = None
        self._own = False

    def __enter__(self) -> RayExecutor:
        ray = require_ray()
        self._ray = ray
        if ray.is_initialized():
            return self  # the caller's session (tests, notebooks)
        kw: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False)
        try:
            if self.address is not None:
                ray.init(address=self.address, **kw)
            else:
                # "local": a private instance even when `ray start` runs on this machine
                ray.init(address="local", num_cpus=self.workers, **kw)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise ConfigError(f"cannot start or reach {where}: {str(exc).strip().splitlines()[0]} "
                              "(is `ray start --head` running there, and is this the address it printed?)"
                              ) from None
        self._own = True
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._own:
            self._ray.shutdown()
            self._own = False

    @property
    def parallelism(self) -> int:
        """CPUs the cluster offers (what tasks can run at once)."""
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T], describe: Callable[[T], str],
                      *, keep_going: bool = False) -> Iterator[tuple[int, R | ClusterTaskError]]:
        """``(i, fn(items[i]))`` as tasks finish; a task failing twice raises :class:`ClusterTaskError`
        (``keep_going``: is yielded as ``(i, error)`` and the other tasks go on)."""
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=ATTEMPTS - 1, retry_exceptions=True)(fn)
        refs = {remote.remote(item): i for i, item in enumerate(items)}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    i = refs[ref]
                    try:
                        value = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - Ray wraps the task's error
                        err = ClusterTaskError(f"{describe(items[i])} failed twice (run and retry): "
                                               f"{_cause(exc)}")
                        if not keep_going:
                            raise err from None
                        yield i, err
                        continue
                    yield i, value
        finally:
            for ref in pending:  # stop the rest: an error, or the caller stopped iterating
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass
