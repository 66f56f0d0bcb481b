"""The one process pool (himbench.engines.map_tasks): order, lazy input, worker setup, in-process equivalence, errors.

Task functions live at module level so that worker processes can import them; each pool here is a few processes
running trivial tasks.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from himbench.engines import WINDOW_PER_WORKER, map_tasks

MARK = "HIMBENCH_TEST_ENGINE_MARK"


def _square(x: int) -> int:
    # Later items finish first, so "as they finish" and "in input order" really differ.
    time.sleep(0.02 * (x % 4 == 0))
    return x * x


def _mark_worker(value: str) -> None:
    os.environ[MARK] = f"{value}:{os.getpid()}"


def _worker_mark(_x: int) -> tuple[int, str | None]:
    return os.getpid(), os.environ.get(MARK)


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def _die_on_three(x: int) -> int:
    if x == 3:
        os._exit(9)  # as the kernel's OOM killer would
    return x


class _Counted:
    """An input generator that records how many items the consumer side pulled from it."""

    def __init__(self, count: int) -> None:
        self.count, self.pulled = count, 0

    def __iter__(self):
        for x in range(self.count):
            self.pulled += 1
            yield (x,)


def test_ordered_keeps_input_order_and_unordered_yields_the_same_pairs():
    items = [(x,) for x in range(12)]
    ordered = list(map_tasks(_square, items, workers=2))
    unordered = list(map_tasks(_square, items, workers=2, ordered=False))
    assert ordered == [(x, x * x) for x in range(12)]
    assert sorted(unordered) == ordered


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("ordered", [True, False])
def test_a_generator_is_read_lazily_within_the_window(workers, ordered):
    window = 3
    source = _Counted(20)
    received = 0
    for _ in map_tasks(_square, iter(source), workers=workers, ordered=ordered, window=window):
        received += 1
        assert source.pulled <= received + window - 1  # never more than `window` tasks submitted and not yielded
    assert received == source.pulled == 20


def test_default_window_is_bounded_too():
    source = _Counted(40)
    results = map_tasks(_square, iter(source), workers=2)
    next(results)
    assert source.pulled <= 2 * WINDOW_PER_WORKER
    results.close()


def test_initializer_runs_in_each_worker():
    results = list(map_tasks(_worker_mark, [(x,) for x in range(8)], workers=2, initializer=_mark_worker,
                             initargs=("ready",)))
    assert all(mark == f"ready:{pid}" for _, (pid, mark) in results)  # set by that very process
    assert all(pid != os.getpid() for _, (pid, _) in results)
    assert MARK not in os.environ  # it does not run in this process


def test_workers_see_this_calls_environment(monkeypatch):
    # forkserver workers would otherwise keep the environment of the first pool's server
    list(map_tasks(_worker_mark, [(0,), (1,)], workers=2))
    monkeypatch.setenv(MARK, "set later")
    assert {mark for _, (_, mark) in map_tasks(_worker_mark, [(0,), (1,)], workers=2)} == {"set later"}


def test_in_process_equals_pool():
    items = [(x,) for x in range(10)]
    here = list(map_tasks(_square, items, workers=1))
    assert here == list(map_tasks(_square, items, workers=2))
    for workers in (0, 1):
        assert {pid for _, (pid, _) in map_tasks(_worker_mark, items, workers=workers)} == {os.getpid()}
    assert list(map_tasks(_square, [], workers=2)) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_an_exception_names_the_failing_item_and_stops_the_pool(workers):
    with pytest.raises(ValueError, match="bad item 3") as err:
        list(map_tasks(_fail_on_three, ((x,) for x in range(8)), workers=workers, ordered=False))
    notes = " ".join(getattr(err.value, "__notes__", []))
    assert "_fail_on_three on item 3" in notes and "(3,)" in notes
    assert not multiprocessing.active_children()  # the pool was shut down, its workers joined


def test_stopping_early_stops_the_pool():
    results = map_tasks(_square, ((x,) for x in range(100)), workers=2)
    assert next(results) == (0, 0)
    results.close()
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("ordered", [True, False])
def test_a_dying_worker_loses_no_result(ordered):
    results = list(map_tasks(_die_on_three, [(x,) for x in range(6)], workers=2, ordered=ordered,
                             on_crash=lambda x: f"died:{x}"))
    assert sorted(results, key=lambda pair: pair[0]) == [(0, 0), (1, 1), (2, 2), (3, "died:3"), (4, 4), (5, 5)]


def test_unknown_engine_and_bad_window_are_refused_at_the_call():
    with pytest.raises(ValueError, match="unknown engine 'dask'"):
        map_tasks(_square, [(1,)], engine="dask")
    with pytest.raises(ValueError, match="window"):
        map_tasks(_square, [(1,)], window=0)
