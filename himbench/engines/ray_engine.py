"""The Ray engine: the same pure work items as the local engine, scheduled on a Ray cluster or a local Ray.

Each item becomes one Ray task. A task whose worker process dies (killed, out of memory, node lost) is a *system*
failure and Ray reschedules it (``max_retries``); an ordinary exception raised by the work function is *not* retried
(``retry_exceptions=False``), so bad input surfaces at once with its own exception type and message, as with the
local engine. Work items write their outputs atomically, so a task killed half-way leaves no partial output behind
under the final name, and its retry writes the same bytes.

Needs the optional extra ``pip install 'himbench[ray]'``. Work functions and their arguments are pickled to the
workers, so they must be module-level functions and plain data (dataclasses, paths), and himbench must be importable
on every node of a cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from himbench.engines import WINDOW_PER_WORKER, add_item_context, iter_or_none

try:
    import ray
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("the 'ray' engine needs Ray: pip install 'himbench[ray]'") from err

__all__ = ["DEFAULT_MAX_RETRIES", "LOCAL_HOST", "connect", "local_ray_options", "map_ray", "start_local_ray"]

DEFAULT_MAX_RETRIES = 3
# Scalars are cheap to send with every task; anything else shared by several items is put in the object store once.
_INLINE_TYPES = (str, bytes, int, float, bool, type(None))
# How Ray reports a task whose process (or node) died, after its retries: the local engine's BrokenProcessPool.
_CRASHES = (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError, ray.exceptions.NodeDiedError)

_initialized: set[tuple[str, str, str]] = set()  # the initializers this Ray worker process has run


def _call(fn: Callable, setup: tuple[Callable, tuple] | None, *args: Any) -> Any:
    try:
        if setup is not None:
            # Ray workers are pooled processes with no start hook per call: run the initializer before the first
            # task of this kind that the process runs, as a local worker would at its start.
            initializer, initargs = setup
            key = (getattr(initializer, "__module__", ""), getattr(initializer, "__qualname__", ""), repr(initargs))
            if key not in _initialized:
                initializer(*initargs)
                _initialized.add(key)
        return fn(*args)
    except Exception as err:
        try:
            ray.cloudpickle.loads(ray.cloudpickle.dumps(err))
        except Exception:
            # An exception that cannot be rebuilt on the driver would reach it only as Ray's "failed to deserialize";
            # keep at least its type and message.
            raise RuntimeError(f"{type(err).__name__}: {err}") from None
        raise


_remote_call = ray.remote(_call)


LOCAL_HOST = "127.0.0.1"


def local_ray_options(num_cpus: int) -> dict[str, Any]:
    """The ``ray.init`` keyword arguments of a local Ray: ``num_cpus`` CPUs, no GPU, bound to the loopback address
    (:data:`LOCAL_HOST`, so no port of it is reachable from the network), no dashboard, no worker logs echoed."""
    return {
        "num_cpus": num_cpus,
        "num_gpus": 0,
        "include_dashboard": False,
        "_node_ip_address": LOCAL_HOST,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
    }


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """On Linux Ray replaces a loopback node address by the machine's network address (so that other nodes could
    join); Ray's single-machine mode (its default on macOS and Windows, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) keeps
    127.0.0.1. Switch that mode on while a local Ray starts (its processes inherit the variable), then restore both."""
    from ray._private import ray_constants

    variable = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved_env, saved_flag = os.environ.get(variable), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[variable] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = saved_env


def start_local_ray(num_cpus: int) -> None:
    """Start a quiet local Ray with ``num_cpus`` CPUs on 127.0.0.1: no dashboard, no worker logs echoed, no usage
    reporting (:func:`local_ray_options`)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with _loopback_only():
        ray.init(**local_ray_options(num_cpus))


def connect(workers: int, ray_address: str | None) -> bool:
    """Make sure this process is connected to Ray (``ray_address``, else ``$RAY_ADDRESS``, else a local Ray with
    ``workers`` CPUs); True when this call did the connecting (and must disconnect). Public for the cluster checks
    (:mod:`himbench.engines.cluster`), which connect once for a whole build."""
    if ray.is_initialized():
        return False
    # RAY_ADDRESS (set by `ray job submit` and by users of `ray start`) means: use that cluster, as ray.init does.
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    else:
        start_local_ray(workers)
    return True




class _SharedArgs:
    """Object-store references for non-scalar arguments passed (as the same object) to several items, such as the
    source lists every shard needs: serialised once (twice at most) instead of once per task.

    The input is streamed, so an object counts as shared when it comes again within the last ``recent`` arguments
    seen. Those are held here, so that their ids, the keys, cannot be reused by new objects meanwhile."""

    def __init__(self, recent: int = 256) -> None:
        self.recent = recent
        self.seen: OrderedDict[int, Any] = OrderedDict()
        self.shared: dict[int, tuple[Any, ray.ObjectRef]] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, _INLINE_TYPES):
            return value
        key = id(value)
        if key in self.shared:
            return self.shared[key][1]
        if self.seen.pop(key, None) is None:
            self.seen[key] = value
            if len(self.seen) > self.recent:
                self.seen.popitem(last=False)
            return value
        ref = ray.put(value)  # a top-level ObjectRef argument reaches the task as its value
        self.shared[key] = (value, ref)
        return ref


def _result(ref: ray.ObjectRef, fn: Callable, index: int, args: tuple, on_crash: Callable | None) -> Any:
    try:
        return ray.get(ref)
    except _CRASHES as err:
        if on_crash is not None:
            return on_crash(*args)
        add_item_context(err, fn, index, args)
        raise
    except ray.exceptions.RayTaskError as err:
        # Re-raise the work function's own exception (e.g. InputError naming the bad file), as the local engine does.
        cause = err.cause if isinstance(err.cause, Exception) else err
        add_item_context(cause, fn, index, args)
        if cause is err:
            raise
        raise cause from err


def map_ray(
    fn: Callable,
    items: Iterable[tuple],
    *,
    workers: int | None = None,
    ordered: bool = True,
    window: int | None = None,
    initializer: Callable | None = None,
    initargs: tuple = (),
    on_crash: Callable | None = None,
    ray_address: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> Iterator[tuple[int, Any]]:
    """The Ray engine of :func:`himbench.engines.map_tasks` (see there for the arguments): one Ray task per item,
    ``(index, result)`` yielded in input order or, ``ordered=False``, as they finish.

    Uses the Ray this process is already connected to; otherwise connects to ``ray_address`` (or ``$RAY_ADDRESS``) or
    starts a local Ray with ``workers`` CPUs, and disconnects (shuts that Ray down) when done. A task whose worker
    dies is rerun up to ``max_retries`` times; an exception raised by ``fn`` is not retried and is raised here.
    """
    workers = max(1, workers or os.cpu_count() or 1)
    iterator = iter_or_none(items)
    if iterator is None:
        return
    started = connect(workers, ray_address)
    pending: dict[ray.ObjectRef, tuple[int, tuple]] = {}  # in submission (= input) order
    try:
        remote = _remote_call.options(num_cpus=1, max_retries=max_retries, retry_exceptions=False)
        share = _SharedArgs()
        fn_ref = ray.put(fn)
        setup = None if initializer is None else ray.put((initializer, tuple(initargs)))
        if window is None:  # per CPU of the cluster, which may be far more than this machine's
            window = WINDOW_PER_WORKER * max(1, int(ray.cluster_resources().get("CPU", workers)))
        indexed = enumerate(iterator)
        while True:
            for index, args in islice(indexed, window - len(pending)):  # pull only as many as fit the window
                pending[remote.remote(fn_ref, setup, *(share(value) for value in args))] = (index, args)
            if not pending:
                return
            ref = next(iter(pending)) if ordered else ray.wait(list(pending), num_returns=1)[0][0]
            index, args = pending.pop(ref)
            yield index, _result(ref, fn, index, args, on_crash)
    finally:
        for ref in pending:  # the caller stopped early or a task failed: do not leave work running
            ray.cancel(ref)
        if started:
            ray.shutdown()
