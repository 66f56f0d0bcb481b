"""Execution engines: run independent, deterministic work items (shards, evaluation chunks) in parallel.

``map_tasks(fn, items, engine="local", workers=N)`` yields ``(index, result)`` as items finish. The local engine is
a process pool (the default, no extra dependency); ``engine="ray"`` schedules the same calls on a Ray cluster
(:mod:`himbench.engines.ray_engine`, optional extra ``himbench[ray]``). Work items must be pure functions of their
arguments and write their outputs atomically, so any engine gives identical bytes and a rerun after a crash loses
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

__all__ = ["ENGINES", "map_tasks"]

ENGINES = ("local", "ray")


def _map_local(fn: Callable, items: Sequence[tuple], workers: int) -> Iterator[tuple[int, Any]]:
    if workers <= 1 or len(items) <= 1:
        for index, args in enumerate(items):
            yield index, fn(*args)
        return
    # spawn, not fork: OpenCV/numba/torch thread pools do not survive fork reliably.
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(fn, *args): index for index, args in enumerate(items)}
        for future in as_completed(futures):
            yield futures[future], future.result()


def map_tasks(
    fn: Callable,
    items: Sequence[tuple],
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
) -> Iterator[tuple[int, Any]]:
    """Call ``fn(*args)`` for every ``args`` in ``items``; yield ``(position in items, result)`` as each finishes.

    ``workers``: processes for the local engine, CPUs for a local Ray instance. ``address``: a Ray cluster address
    (``ray.init(address=...)``), or None for a local Ray started with ``workers`` CPUs.
    """
    import os

    workers = workers or os.cpu_count() or 1
    if engine == "local":
        yield from _map_local(fn, items, workers)
    elif engine == "ray":
        from himbench.engines.ray_engine import map_ray

        yield from map_ray(fn, items, workers=workers, address=address)
    else:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
