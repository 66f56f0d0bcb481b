"""Building a dataset: plan shards, make them in parallel, resume after a crash, report bad sources.

Each shard is one unit of deterministic work (:func:`build_shard`): the same config and sources give byte-identical
shards whichever process makes them, so a build can use 1 or N workers (or another engine) with identical output.
A shard is written atomically; on restart, shards whose footer carries this build's fingerprint and the right row
count are kept and everything else is redone.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from himbench.engines import map_tasks
from himbench.io import InputError
from himbench.io.atomic import atomic_write_text
from himbench.shards import read_shard_metadata, shard_name, write_shard
from himbench.synthesis.config import BuildConfig
from himbench.synthesis.sources import BackgroundRef, ForegroundRef, scan_backgrounds, scan_foregrounds

__all__ = [
    "BuildReport",
    "ShardReport",
    "ShardTask",
    "build_dataset",
    "build_shard",
    "plan_shards",
    "shard_is_complete",
]

FINGERPRINT_KEY = "himbench_fingerprint"


@dataclass(frozen=True)
class ShardTask:
    split: str
    index: int
    total: int
    start: int  # first image index of the split in this shard
    stop: int

    @property
    def filename(self) -> str:
        return shard_name(self.split, self.index, self.total)


@dataclass
class ShardReport:
    split: str
    index: int
    path: str
    num_images: int
    resumed: bool = False  # True when an existing complete shard was kept
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class BuildReport:
    out_dir: str
    shards: list[ShardReport]
    listing_problems: list[str]

    @property
    def problems(self) -> list[str]:
        seen = dict.fromkeys(self.listing_problems)
        for shard in self.shards:
            seen.update(dict.fromkeys(shard.problems))
        return list(seen)

    @property
    def num_images(self) -> int:
        return sum(s.num_images for s in self.shards)

    def to_dict(self) -> dict:
        return {
            "out_dir": self.out_dir,
            "num_images": self.num_images,
            "num_shards": len(self.shards),
            "resumed_shards": sum(s.resumed for s in self.shards),
            "skipped_sources": len(self.problems),
            "problems": self.problems,
            "seconds": dict(sum((Counter(s.seconds) for s in self.shards), Counter())),
            "shards": [asdict(s) for s in self.shards],
        }


def plan_shards(config: BuildConfig) -> list[ShardTask]:
    tasks = []
    for split, count in config.splits.items():
        total = config.num_shards(split)
        for index in range(total):
            start = index * config.images_per_shard
            tasks.append(ShardTask(split, index, total, start, min(start + config.images_per_shard, int(count))))
    return tasks


def shard_is_complete(path: Path, task: ShardTask, config: BuildConfig) -> bool:
    """True when ``path`` is a finished shard of this very build (right fingerprint and row count)."""
    if not path.is_file():
        return False
    try:
        rows, meta = read_shard_metadata(path)
    except Exception:  # a truncated file from a crash is simply redone
        return False
    return rows == task.stop - task.start and meta.get(FINGERPRINT_KEY) == config.fingerprint()


# Per-process memory of sources that failed to load, so a bad file is tried (and reported) once per worker.
_BAD_SOURCES: set = set()


def build_shard(
    config: BuildConfig,
    task: ShardTask,
    out_dir: str | os.PathLike,
    fg_refs: list[ForegroundRef],
    bg_refs: list[BackgroundRef],
) -> ShardReport:
    """Make and atomically write one shard. Pure function of its arguments (plus the files the refs name)."""
    import cv2

    from himbench.synthesis.sampler import synthesize_image

    cv2.setNumThreads(1)  # parallelism comes from processes; threads inside would oversubscribe the cores
    path = Path(out_dir) / "data" / task.filename
    rows, problems, seconds = [], [], Counter()
    for index in range(task.start, task.stop):
        result = synthesize_image(config, task.split, index, fg_refs, bg_refs, _BAD_SOURCES)
        rows.append(result.row)
        problems += result.problems
        seconds.update(result.seconds)
    tic = time.perf_counter()
    write_shard(rows, path, metadata={FINGERPRINT_KEY: config.fingerprint()})
    seconds["write"] += time.perf_counter() - tic
    return ShardReport(task.split, task.index, str(path), len(rows), False, problems, dict(seconds))


def _check_or_write_config(config: BuildConfig, out_dir: Path, overwrite: bool) -> None:
    config_path = out_dir / "build_config.json"
    if config_path.exists() and not overwrite:
        try:
            existing = BuildConfig.from_dict(json.loads(config_path.read_text()))
        except (ValueError, TypeError) as err:
            raise InputError(config_path, f"cannot parse the existing build config ({err}); use --overwrite") from err
        if existing.fingerprint() != config.fingerprint():
            raise InputError(
                out_dir,
                "holds a build with a different configuration; choose another --out or pass --overwrite to replace it",
            )
    if overwrite and (out_dir / "data").is_dir():
        for stale in (out_dir / "data").glob("*.parquet"):
            stale.unlink()
    atomic_write_text(config_path, json.dumps(config.to_dict(), indent=2) + "\n")


def build_dataset(
    config: BuildConfig,
    out_dir: str | os.PathLike,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    write_card: bool = True,
    engine: str = "local",
    address: str | None = None,
) -> BuildReport:
    """Build (or resume) a dataset into ``out_dir``; returns what was done. See the module docstring.

    ``engine`` is ``"local"`` (process pool with ``workers`` processes) or ``"ray"`` (``address`` of a cluster, or a
    local Ray with ``workers`` CPUs); both give byte-identical shards.
    """
    out_dir = Path(out_dir)
    (out_dir / "data").mkdir(parents=True, exist_ok=True)
    _check_or_write_config(config, out_dir, overwrite)
    _remove_partial_writes(out_dir / "data")  # of a crashed earlier run
    fg_refs, listing_problems = scan_foregrounds(config.fg_sources)
    bg_refs = scan_backgrounds(config.bg_sources)
    tasks = plan_shards(config)
    expected = {task.filename for task in tasks}
    for path in (out_dir / "data").glob("*.parquet"):
        if path.name not in expected:  # shards of another split size cannot belong to this build
            path.unlink()

    reports: list[ShardReport] = []
    todo = []
    for task in tasks:
        path = out_dir / "data" / task.filename
        if shard_is_complete(path, task, config):
            reports.append(ShardReport(task.split, task.index, str(path), task.stop - task.start, resumed=True))
        else:
            todo.append(task)

    bar = _progress(total=sum(t.stop - t.start for t in tasks), enabled=progress)
    bar.update(sum(r.num_images for r in reports))
    items = [(config, task, str(out_dir), fg_refs, bg_refs) for task in todo]
    for _, report in map_tasks(build_shard, items, engine=engine, workers=workers, address=address):
        reports.append(report)
        bar.update(report.num_images)
    bar.close()
    _remove_partial_writes(out_dir / "data")  # of workers killed mid-write (their shards were redone)
    reports.sort(key=lambda r: (list(config.splits).index(r.split), r.index))
    report = BuildReport(str(out_dir), reports, listing_problems)
    atomic_write_text(out_dir / "build_report.json", json.dumps(report.to_dict(), indent=2) + "\n")
    if write_card:
        from himbench.synthesis.card import write_dataset_card

        write_dataset_card(out_dir, config, report)
    return report


def _remove_partial_writes(data_dir: Path) -> None:
    for leftover in data_dir.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc="build", disable=not enabled or None)
