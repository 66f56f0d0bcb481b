"""Execution engines: the one way himbench runs independent, deterministic work items (dataset shards, evaluation
images) in parallel.

:func:`map_tasks` calls ``fn(*args)`` for every ``args`` of an iterable and yields ``(index, result)`` pairs, in
input order or as they finish. The local engine is a process pool (the default, no extra dependency); ``engine="ray"``
schedules the same calls on a Ray cluster (:mod:`himbench.engines.ray_engine`, optional extra ``himbench[ray]``). Both
stream their input with a bounded number of tasks in flight, so a 100K-image job never sits in memory at once. Work
items must be pure functions of their arguments and write their outputs atomically, so any engine and any number of
workers give identical bytes, and a rerun after a crash loses nothing.
"""

from __future__ import annotations

import multiprocessing
import os
import reprlib
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from itertools import chain, islice
from multiprocessing.context import BaseContext
from typing import Any

__all__ = ["ENGINES", "WINDOW_PER_WORKER", "add_item_context", "iter_or_none", "map_tasks"]

ENGINES = ("local", "ray")
# Tasks in flight per worker (per Ray CPU) by default: enough that a worker finds its next task queued when it
# finishes one, few enough that memory stays flat whatever the number of items.
WINDOW_PER_WORKER = 4

_ARGS_REPR = reprlib.Repr()
_ARGS_REPR.maxother = _ARGS_REPR.maxstring = 80  # a shard's arguments hold whole source lists: name them, not list them
_ARGS_REPR.maxlist = 3


def map_tasks(
    fn: Callable[..., Any],
    items: Iterable[tuple],
    *,
    workers: int | None = None,
    ordered: bool = True,
    window: int | None = None,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
    on_crash: Callable[..., Any] | None = None,
    engine: str = "local",
    ray_address: str | None = None,
) -> Iterator[tuple[int, Any]]:
    """Call ``fn(*args)`` for every ``args`` in ``items``; yield ``(index, result)``, ``index`` being the position of
    ``args`` in ``items``.

    ``ordered=True`` yields in input order; ``ordered=False`` as the tasks finish (lowest index first among those
    done), which keeps every worker busy when one task is slow. ``items`` may be any iterable, a generator included:
    it is read lazily, at most ``window`` tasks (default :data:`WINDOW_PER_WORKER` per worker or Ray CPU) being
    submitted and not yet yielded.

    ``workers``: processes of the local engine (default: all cores), CPUs of a local Ray; ``workers <= 1`` runs the
    local engine in this process, with the same results. ``initializer(*initargs)`` prepares each worker process
    before its first task (e.g. one OpenCV thread per process); it does not run in this process. An exception of
    ``fn`` is raised here with its own type and message, plus a note naming the item, after the workers stop.

    A worker that dies (killed for memory, a crash in native code) loses no finished result: the local engine reruns
    each unfinished task alone in a fresh process, Ray reruns the task (``max_retries``). When a task kills that
    process too, ``on_crash(*args)`` is its result; without ``on_crash`` the crash error (``BrokenProcessPool`` or
    Ray's) is raised. ``ray_address``: a Ray cluster (default ``$RAY_ADDRESS``, else a local Ray on 127.0.0.1).

    The local pool starts workers with ``forkserver`` (``spawn`` where it does not exist), so a script calling this
    with ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if window is not None and window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    workers = max(1, int(os.cpu_count() or 1 if workers is None else workers))
    if isinstance(items, Sized):  # no more workers than tasks; a single task runs here, with no pool to start
        workers = min(workers, max(1, len(items)))
    if engine == "ray":
        from himbench.engines.ray_engine import map_ray

        return map_ray(fn, items, workers=workers, ordered=ordered, window=window, initializer=initializer,
                       initargs=initargs, on_crash=on_crash, ray_address=ray_address)
    if workers == 1:
        return _map_here(fn, items)
    return _map_pool(fn, items, workers, ordered, window or WINDOW_PER_WORKER * workers, initializer, initargs,
                     on_crash)


# ------------------------------------------------------------------------------------------- shared by the engines
# Public for the engines' own modules (himbench.engines.ray_engine): every engine reports a failed item and an empty
# input the same way.
def add_item_context(err: BaseException, fn: Callable[..., Any], index: int, args: tuple) -> None:
    """Note on ``err`` which item failed, keeping its type and message (callers catch e.g. InputError by type)."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    text = f"raised by {name} on item {index} of map_tasks, arguments {_ARGS_REPR.repr(tuple(args))}"
    if hasattr(err, "add_note"):
        err.add_note(text)
    else:  # Python 3.10: kept on the exception for callers, though tracebacks do not print it
        err.__notes__ = [*getattr(err, "__notes__", []), text]


def iter_or_none(items: Iterable[tuple]) -> Iterator[tuple] | None:
    """``items`` as an iterator, or None when it is empty, so that an empty input starts no pool and no Ray."""
    iterator = iter(items)
    for first in iterator:
        return chain((first,), iterator)
    return None


# ----------------------------------------------------------------------------------------------- local engine
def _map_here(fn: Callable[..., Any], items: Iterable[tuple]) -> Iterator[tuple[int, Any]]:
    for index, args in enumerate(items):
        try:
            result = fn(*args)
        except Exception as err:
            add_item_context(err, fn, index, args)
            raise
        yield index, result


def _context(*functions: Callable[..., Any] | None) -> BaseContext:
    # The one choice of start method. Never plain fork: a parent that already ran OpenCV/BLAS/torch holds thread
    # pools whose locks a forked child inherits locked, which deadlocks the child. forkserver forks each worker from
    # a clean single-threaded server that has imported the task's modules once (cheap per worker, also for the
    # fresh processes that rerun tasks after a crash); spawn (a fresh interpreter per worker) where forkserver does
    # not exist (Windows).
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    modules = {getattr(function, "__module__", None) or "" for function in functions}
    preload = sorted(module for module in modules if module.startswith("himbench."))
    if preload:  # only takes effect when the server starts, i.e. for the first pool of this process
        context.set_forkserver_preload(preload)
    return context


def _start_worker(environ: dict[str, str], initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    # A forkserver child inherits the server's environment, fixed when the server started (maybe for an earlier call
    # under other settings, e.g. another HIMBENCH_CACHE): take this call's, as a spawned child would.
    for key in set(os.environ) - set(environ):
        del os.environ[key]
    os.environ.update(environ)
    if initializer is not None:
        initializer(*initargs)


class _Pool:
    """The local engine's process pool for one call: the tasks in flight, and the recovery from a dead worker."""

    def __init__(self, fn: Callable[..., Any], workers: int, initializer: Callable[..., Any] | None,
                 initargs: tuple, on_crash: Callable[..., Any] | None) -> None:
        self.fn, self.workers, self.on_crash = fn, workers, on_crash
        self.setup = (dict(os.environ), initializer, tuple(initargs))
        self.context = _context(fn, initializer)
        self.pending: dict[int, tuple[tuple, Future]] = {}  # by index, in submission (= input) order
        self.executor = self._executor(workers)

    def _executor(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=self.context, initializer=_start_worker,
                                   initargs=self.setup)

    def submit(self, index: int, args: tuple) -> None:
        try:
            future = self.executor.submit(self.fn, *args)
        except BrokenProcessPool as err:  # broke since the last result was taken: recovered when its turn comes
            future = Future()
            future.set_exception(err)
        self.pending[index] = (args, future)

    def next_index(self, ordered: bool) -> int:
        """The index of the next result to yield (waiting, when unordered, until some task is done)."""
        if ordered:
            return next(iter(self.pending))
        owner = {future: index for index, (_, future) in self.pending.items()}
        done, _ = wait(owner, return_when=FIRST_COMPLETED)
        return min(owner[future] for future in done)

    def take(self, index: int) -> Any:
        """The result of task ``index`` (waiting for it), or its exception with the item noted."""
        if isinstance(self.pending[index][1].exception(), BrokenProcessPool):
            self._recover()
        args, future = self.pending.pop(index)
        try:
            return future.result()
        except Exception as err:
            add_item_context(err, self.fn, index, args)
            raise

    def _recover(self) -> None:
        """A dead worker breaks the whole pool: keep the results that finished, rerun every other task in flight
        alone in a fresh process (so the one that killed its worker is found), then go on with a new pool."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        for index, (args, future) in list(self.pending.items()):
            if future.cancelled() or isinstance(future.exception(), BrokenProcessPool):
                self.pending[index] = (args, self._run_alone(args))
        self.executor = self._executor(self.workers)

    def _run_alone(self, args: tuple) -> Future:
        executor = self._executor(1)
        try:
            future = executor.submit(self.fn, *args)
            crashed = isinstance(future.exception(), BrokenProcessPool)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        if crashed and self.on_crash is not None:
            future = Future()
            future.set_result(self.on_crash(*args))
        return future

    def close(self) -> None:
        # Also when the caller stops early or a task failed: queued tasks are dropped, running ones finish.
        self.executor.shutdown(wait=True, cancel_futures=True)


def _map_pool(fn: Callable[..., Any], items: Iterable[tuple], workers: int, ordered: bool, window: int,
              initializer: Callable[..., Any] | None, initargs: tuple,
              on_crash: Callable[..., Any] | None) -> Iterator[tuple[int, Any]]:
    iterator = iter_or_none(items)
    if iterator is None:
        return
    indexed = enumerate(iterator)
    pool = _Pool(fn, workers, initializer, initargs, on_crash)
    try:
        while True:
            for index, args in islice(indexed, window - len(pool.pending)):  # pull only as many as fit the window
                pool.submit(index, args)
            if not pool.pending:
                return
            index = pool.next_index(ordered)
            yield index, pool.take(index)
    finally:
        pool.close()
