"""The Ray engine: byte-identical shards and metrics against the local engine, worker death, error surfacing.

The first test lets the engine start (and stop) its own local Ray, as the CLI does; the others share one local Ray
with 2 CPUs. Helpers that run inside Ray workers live in this module, which is
pickled by value (the workers cannot import test modules).
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from himbench.build_config import BuildConfig  # noqa: E402
from himbench.engines import map_tasks  # noqa: E402
from himbench.io import write_alpha_png  # noqa: E402
from himbench.shards import list_shards, read_split  # noqa: E402
from himbench.synthesis import build as build_module  # noqa: E402
from himbench.synthesis import build_dataset  # noqa: E402

CONFIG = BuildConfig(splits={"train": 4}, width=128, height=96, images_per_shard=1, seed=5)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(folder)}


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    from himbench.engines.ray_engine import start_local_ray

    cache = tmp_path_factory.mktemp("ray-env")
    with pytest.MonkeyPatch.context() as patch:
        # Workers inherit the environment Ray starts with: keep their caches inside the test's temp folder.
        patch.setenv("HIMBENCH_CACHE", str(cache / "himbench-cache"))
        patch.setenv("HF_HOME", str(cache / "hf"))
        if ray.is_initialized():
            ray.shutdown()
        start_local_ray(2)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


@pytest.fixture(scope="module")
def reference_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    build_dataset(CONFIG, out, workers=1, progress=False)
    return out


# ------------------------------------------------------------------------------------------------ worker helpers
def _claim(marker: Path) -> bool:
    """True for exactly one caller across processes (O_EXCL): the attempt that is to die."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # a killed process its parent has not reaped yet is a zombie: dead too
    return not (stat.is_file() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def _kill_self(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def _dying_build_shard(marker_dir, config, task, out_dir, fg_refs, bg_refs):
    """``build_shard`` whose first attempt at shards 0 and 1 is killed: shard 0 after its images are made (before
    any byte is written), shard 1 in the middle of the atomic write (temp file complete, not yet renamed)."""
    from himbench.synthesis import build as build_in_worker
    from himbench.synthesis import output as output_in_worker

    if task.index in (0, 1) and _claim(Path(marker_dir) / f"{task.filename}.killed"):
        real_write = output_in_worker.write_shard

        def write_then_die(*args, **kwargs):
            os.replace = _kill_self  # this worker process is about to die; nothing else sees the patch
            return real_write(*args, **kwargs)

        output_in_worker.write_shard = _kill_self if task.index == 0 else write_then_die
    return build_in_worker.build_shard(config, task, out_dir, fg_refs, bg_refs)


class BadShardError(ValueError):
    pass


def _fail_and_count(counter_path, x):
    with open(counter_path, "a") as handle:
        handle.write(f"{x}\n")
    if x == 2:
        raise BadShardError(f"/data/bad-{x}.png: cannot decode image")
    return x * x


def _slow_square(x):
    import time

    time.sleep(0.05 * (x % 3 == 0))  # some early items finish last: input order and finishing order differ
    return x * x


def _mark_worker(value):
    os.environ["HIMBENCH_TEST_RAY_MARK"] = f"{value}:{os.getpid()}"


def _worker_mark(_x):
    return os.getpid(), os.environ.get("HIMBENCH_TEST_RAY_MARK")


def _raise_input_error(x):
    from himbench.io import InputError

    raise InputError(f"/data/img-{x}.png", "cannot decode image")


class TwoPartError(ValueError):
    """Pickled by its ``args`` (one string) but built from two: unpickling it raises TypeError."""

    def __init__(self, source, problem):
        super().__init__(f"{source}: {problem}")


def _raise_two_part_error(x):
    raise TwoPartError(f"/data/img-{x}.png", "cannot decode image")


# ---------------------------------------------------------------------------------------------------------- tests
def test_ray_build_is_byte_identical_to_local(reference_build, tmp_path):
    # First in the module, before the shared Ray exists: like the CLI, map_ray starts a local Ray with 2 CPUs
    # and shuts it down afterwards.
    if ray.is_initialized():
        ray.shutdown()
    report = build_dataset(CONFIG, tmp_path / "ray", workers=2, progress=False, engine="ray")
    assert not ray.is_initialized()
    assert report.num_images == 4 and not report.problems
    reference = _digest(reference_build)
    assert len(reference) == 4
    assert _digest(tmp_path / "ray") == reference


def test_local_ray_binds_to_loopback_without_dashboard(monkeypatch):
    """What start_local_ray asks ray.init for, checked without starting Ray."""
    from himbench.engines import ray_engine

    calls: list[dict] = []
    monkeypatch.setattr(ray_engine.ray, "init", lambda **kwargs: calls.append(kwargs))
    ray_engine.start_local_ray(3)
    assert len(calls) == 1 and "address" not in calls[0]
    assert calls[0]["_node_ip_address"] == "127.0.0.1" and calls[0]["include_dashboard"] is False
    assert calls[0]["num_cpus"] == 3


def test_started_local_ray_lives_on_loopback(ray_cluster):
    nodes = ray.nodes()
    assert [node["NodeManagerAddress"] for node in nodes] == ["127.0.0.1"]
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")


def test_killed_worker_loses_nothing(ray_cluster, reference_build, tmp_path, monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    out = tmp_path / "killed"
    monkeypatch.setattr(build_module, "build_shard", functools.partial(_dying_build_shard, str(markers)))
    report = build_dataset(CONFIG, out, workers=2, progress=False, engine="ray")
    assert report.num_images == 4
    assert ray.is_initialized()  # map_ray used the Ray it found running and left it alone

    killed = sorted(markers.iterdir())
    assert [p.name for p in killed] == ["train-00000-of-00004.parquet.killed", "train-00001-of-00004.parquet.killed"]
    for marker in killed:  # the first attempts really ran in a process that is now gone
        assert not _alive(int(marker.read_text()))
    assert _digest(out) == _digest(reference_build)
    data = sorted(p.name for p in (out / "data").iterdir())
    shards = [p for p in data if p.endswith(".parquet")]
    assert shards == sorted(_digest(reference_build))
    # Shard 1 died between writing its temp file and renaming it: the only other file can be that hidden temp file
    # (unless the build sweeps it), never a partial shard under a shard name; the next run removes it and keeps
    # every shard.
    leftovers = [p for p in data if p not in shards]
    assert len(leftovers) <= 1
    assert all(p.startswith(".train-00001-of-00004.parquet.") and p.endswith(".tmp") for p in leftovers)

    monkeypatch.undo()
    again = build_dataset(CONFIG, out, workers=2, progress=False, engine="ray")
    assert all(shard.resumed for shard in again.shards)
    assert sorted(p.name for p in (out / "data").iterdir()) == shards
    assert _digest(out) == _digest(reference_build)


def test_task_exception_surfaces_and_is_not_retried(ray_cluster, tmp_path):
    from himbench.engines.ray_engine import map_ray

    counter = tmp_path / "attempts.txt"
    items = [(str(counter), x) for x in range(4)]
    with pytest.raises(BadShardError, match=r"/data/bad-2\.png: cannot decode image"):
        dict(map_ray(_fail_and_count, items, workers=2))
    assert counter.read_text().split().count("2") == 1  # an ordinary exception is not retried

    assert sorted(map_ray(_fail_and_count, [(str(counter), x) for x in (0, 1, 3)], workers=2)) == [
        (0, 0),
        (1, 1),
        (2, 9),
    ]


def test_ray_streams_in_order_or_as_finished_within_the_window(ray_cluster):
    pulled = 0

    def source():
        nonlocal pulled
        for x in range(12):
            pulled += 1
            yield (x,)

    received = 0
    for index, result in map_tasks(_slow_square, source(), engine="ray", workers=2, window=3):
        assert (index, result) == (received, received * received)  # ordered: input order
        received += 1
        assert pulled <= received + 2  # the generator is read lazily: at most `window` tasks not yet yielded
    unordered = list(map_tasks(_slow_square, ((x,) for x in range(12)), engine="ray", workers=2, ordered=False))
    assert sorted(unordered) == [(x, x * x) for x in range(12)]

    marks = list(map_tasks(_worker_mark, [(x,) for x in range(6)], engine="ray", initializer=_mark_worker,
                           initargs=("ready",)))
    assert all(mark == f"ready:{pid}" for _, (pid, mark) in marks)  # the initializer ran in that worker process

    with pytest.raises(BadShardError) as err:
        list(map_tasks(_fail_and_count, ((os.devnull, x) for x in range(4)), engine="ray", ordered=False))
    assert "on item 2 of map_tasks" in " ".join(getattr(err.value, "__notes__", []))


def test_exception_crosses_as_itself_or_as_its_message(ray_cluster):
    from himbench.io import InputError

    # InputError rebuilds from both its fields (InputError.__reduce__): the driver gets the exception itself.
    assert pickle.loads(pickle.dumps(InputError("x", "y"))).problem == "y"
    with pytest.raises(InputError, match=r"/data/img-1\.png: cannot decode image") as err:
        list(map_tasks(_raise_input_error, [(1,)], engine="ray", workers=2))
    assert type(err.value) is InputError
    assert (err.value.source, err.value.problem) == ("/data/img-1.png", "cannot decode image")

    # One that cannot be rebuilt (TypeError on unpickling, as InputError had before its __reduce__) would reach the
    # driver only as Ray's "failed to deserialize": the engine sends a RuntimeError with its type and message.
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(TwoPartError("a", "b")))
    with pytest.raises(RuntimeError, match=r"TwoPartError: /data/img-2\.png: cannot decode image") as err:
        list(map_tasks(_raise_two_part_error, [(2,)], engine="ray", workers=2))
    assert type(err.value) is RuntimeError


# ---------------------------------------------------------------------------------------------------- evaluation
def _write_predictions(root: Path, pred: Path) -> None:
    """Imperfect predictions: blurred mattes, one person dropped from every other image."""
    import cv2

    for k, sample in enumerate(read_split(root, "train")):
        alphas = sample.alphas[:-1] if k % 2 and len(sample.alphas) > 1 else sample.alphas
        for i, alpha in enumerate(alphas[::-1]):
            blurred = cv2.GaussianBlur(alpha, (5, 5), 1.2)
            write_alpha_png(pred / "train" / sample.id / f"{i:02d}.png", np.round(blurred * 255) / 255)


def test_ray_evaluation_matches_local(ray_cluster, reference_build, tmp_path):
    from himbench.evaluation import evaluate_folder, evaluate_image

    pred = tmp_path / "pred"
    _write_predictions(reference_build, pred)
    local = evaluate_folder(pred, reference_build, split="train", workers=1, progress=False)
    assert local.summary["TP@0.5"] > 0 and local.summary["FN@0.5"] > 0

    # The per-image work items of evaluation, scheduled on Ray, give the same records.
    from himbench.evaluation import open_ground_truth

    truth = open_ground_truth(reference_build, "train")
    items = [(item, str(Path(local.config.pred_split_dir) / item.stem), local.config) for item in truth.items()]
    outcomes = dict(map_tasks(evaluate_image, items, engine="ray", workers=2))
    records = [outcomes[i].record for i in range(len(items))]
    assert records == local.records

    on_ray = evaluate_folder(pred, reference_build, split="train", workers=2, progress=False, engine="ray")
    assert on_ray.summary == local.summary
    assert on_ray.records == local.records

    # The command line: identical report files from both engines.
    from click.testing import CliRunner

    from himbench.cli.evaluate import command as evaluate_command

    reports = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"report-{engine}"
        args = [str(pred), "--gt", str(reference_build), "--split", "train", "--workers", "2", "--quiet"]
        result = CliRunner().invoke(evaluate_command, [*args, "--engine", engine, "--out", str(out)])
        assert result.exit_code == 0, result.output
        reports[engine] = {name: (out / name).read_bytes() for name in ("summary.json", "per_image.json")}
    assert reports["ray"] == reports["local"]
