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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

try:
    import ray
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("the 'ray' engine needs Ray: pip install 'himbench[ray]'") from err

__all__ = ["DEFAULT_MAX_RETRIES", "LOCAL_HOST", "local_ray_options", "map_ray", "start_local_ray"]

DEFAULT_MAX_RETRIES = 3
# Scalars are cheap to send with every task; anything else shared by several items is put in the object store once.
_INLINE_TYPES = (str, bytes, int, float, bool, type(None))


def _call(fn: Callable, *args: Any) -> Any:
    try:
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


def _connect(workers: int, address: str | None) -> bool:
    """Make sure this process is connected to Ray; True when this call did the connecting (and must disconnect)."""
    if ray.is_initialized():
        return False
    # RAY_ADDRESS (set by `ray job submit` and by users of `ray start`) means: use that cluster, as ray.init does.
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    else:
        start_local_ray(workers)
    return True


def _share_repeated_args(items: Sequence[tuple]) -> dict[int, Any]:
    """Object-store references for non-scalar arguments passed (as the same object) to more than one item, such as
    the source lists every shard needs: they are serialised once instead of once per task."""
    seen: dict[int, int] = {}
    objects: dict[int, Any] = {}
    for args in items:
        for value in args:
            if not isinstance(value, _INLINE_TYPES):
                seen[id(value)] = seen.get(id(value), 0) + 1
                objects[id(value)] = value
    return {key: ray.put(objects[key]) for key, count in seen.items() if count > 1}


def _result(ref: ray.ObjectRef) -> Any:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        # Re-raise the work function's own exception (e.g. InputError naming the bad file), as the local engine does.
        if isinstance(err.cause, Exception):
            raise err.cause from err
        raise


def map_ray(
    fn: Callable,
    items: Sequence[tuple],
    workers: int | None = None,
    address: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> Iterator[tuple[int, Any]]:
    """Call ``fn(*args)`` for every ``args`` in ``items`` as Ray tasks; yield ``(position in items, result)`` as each
    finishes.

    Uses the Ray this process is already connected to; otherwise connects to ``address`` (or ``$RAY_ADDRESS``) or
    starts a local Ray with ``workers`` CPUs, and disconnects (shuts that Ray down) when done. A task whose worker
    dies is rerun up to ``max_retries`` times; an exception raised by ``fn`` is not retried and is raised here.
    """
    workers = max(1, workers or os.cpu_count() or 1)
    if not items:
        return
    started = _connect(workers, address)
    pending: dict[ray.ObjectRef, int] = {}
    try:
        remote = _remote_call.options(num_cpus=1, max_retries=max_retries, retry_exceptions=False)
        shared = _share_repeated_args(items)
        fn_ref = ray.put(fn)
        cpus = int(ray.cluster_resources().get("CPU", workers))
        # Bounded submission: a 100K-image build is thousands of tasks; keep a few per CPU queued, not all of them.
        window = max(2, 2 * cpus)
        next_item = 0
        while next_item < len(items) or pending:
            while next_item < len(items) and len(pending) < window:
                args = [shared.get(id(value), value) for value in items[next_item]]
                pending[remote.remote(fn_ref, *args)] = next_item
                next_item += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(done[0])
            yield index, _result(done[0])
    finally:
        for ref in pending:  # the caller stopped early or a task failed: do not leave work running
            ray.cancel(ref)
        if started:
            ray.shutdown()
