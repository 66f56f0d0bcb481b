"""Building a dataset: plan shards, make them in parallel, resume after a crash, report bad sources.

Each shard is one unit of deterministic work (:func:`build_shard`): the same config and sources give byte-identical
shards whichever process makes them, so a build can use 1 or N workers (or another engine) with identical output.
A shard is written atomically; on restart, shards whose footer carries this build's fingerprint and the right row
count are kept and everything else is redone. The bad sources met by the shards of an earlier (interrupted) run are
kept in the report of the resumed run (``.himbench-build-progress.json`` records them as shards finish).

The output folder is someone's disk: a build never deletes or overwrites a file it did not write.

- An existing, non-empty ``out_dir`` without ``build_config.json`` is refused, unless ``overwrite``; then only the
  files a build writes (``data/<split>-NNNNN-of-NNNNN.parquet``, ``README.md``, ``build_config.json``,
  ``build_report.json``) are replaced and everything else is left alone.
- A folder holding another configuration's build is refused unless ``overwrite``.
- ``.himbench-build.lock`` (created exclusively, holding the pid) makes a second concurrent build into the same
  folder fail clearly; a lock left by a process that no longer exists is taken over.
- ``.himbench-build-sources.json`` records what the source folders held when the build started
  (:mod:`himbench.synthesis.digest`: names, sizes, modification times). A resume whose source folders differ is
  refused, naming the change (kept shards would mix files of the old and the new sources), unless ``overwrite``,
  which rebuilds every shard from the current sources.
- Everything that can be checked before writing is checked first (the config when it is made, the source folders
  and their listing before the output folder is created); a folder that cannot be written is an InputError.

Photo + alpha sources need their foreground colours estimated. Before the shards start, the build lists the ones its
images draw, looks each up in the on-disk cache (:mod:`himbench.synthesis.fgcache`, ``fg_cache``) and computes the
missing ones once, in parallel; a worker that meets one still missing (a redraw after a bad file) computes and
caches it itself. The cache never changes the output bytes, and its place is not part of the build's fingerprint.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from himbench.build_config import BuildConfig
from himbench.engines import cluster, map_tasks  # cluster (h-cluster): node checks, shard writers and checksums
from himbench.io import InputError, read_json
from himbench.io.atomic import atomic_write_text
from himbench.io.storage import Location, is_url
from himbench.shards import (
    CONFIG_FILE,
    DATA_DIR,
    REPORT_FILE,
    is_shard_name,
    read_shard_metadata,
    shard_dir,
    shard_name,
    write_shard,
)
from himbench.synthesis.digest import compare_listings, source_listings
from himbench.synthesis.sources import BackgroundRef, ForegroundRef, scan_backgrounds, scan_foregrounds

__all__ = [
    "BuildReport",
    "ShardReport",
    "ShardTask",
    "build_dataset",
    "build_lock",
    "build_shard",
    "plan_shards",
    "prepare_foregrounds",
    "shard_is_complete",
]

FINGERPRINT_KEY = "himbench_fingerprint"
LOCK_FILE = ".himbench-build.lock"
PROGRESS_FILE = ".himbench-build-progress.json"
SOURCES_FILE = ".himbench-build-sources.json"
CARD_FILE = "README.md"
_STALE_EMPTY_LOCK_S = 30.0  # a lock file with no pid yet is being written, unless older than this


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
    short_images: int = 0  # images with fewer people than were drawn for them
    below_min_images: int = 0  # ... of which with fewer than min_instances
    dropped: dict[str, int] = field(default_factory=dict)  # people left out, by reason (sampler.DROP_*)
    off_range_images: int = 0  # images whose most-hidden person missed config.occlusion_range (kept, counted)
    node: str = cluster.LOCAL_NODE  # who wrote it: a Ray node "<id> (<host>/<ip>)", or "local"
    sha256: str = ""  # of the shard file as written; checked before the card is written


@dataclass
class BuildReport:
    out_dir: str
    shards: list[ShardReport]
    listing_problems: list[str]
    fingerprint: str = ""
    # Foreground estimates this run needed before its shards, found in the cache, and computed (with the seconds).
    foreground_estimates: dict = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        seen = dict.fromkeys(self.listing_problems)
        for shard in self.shards:
            seen.update(dict.fromkeys(shard.problems))
        return list(seen)

    @property
    def num_images(self) -> int:
        return sum(s.num_images for s in self.shards)

    @property
    def fewer_people(self) -> dict:
        """How many images got fewer people than drawn for them (and fewer than min_instances), and why."""
        dropped = sum((Counter(s.dropped) for s in self.shards), Counter())
        return {
            "images": sum(s.short_images for s in self.shards),
            "below_min_instances": sum(s.below_min_images for s in self.shards),
            "people_dropped": dict(sorted(dropped.items())),
        }

    @property
    def occlusion_out_of_range(self) -> int:
        """Images whose most-hidden person is outside the build's occlusion range (none without a range)."""
        return sum(s.off_range_images for s in self.shards)

    def to_dict(self) -> dict:
        return {
            "out_dir": self.out_dir,
            "fingerprint": self.fingerprint,
            "num_images": self.num_images,
            "num_shards": len(self.shards),
            "resumed_shards": sum(s.resumed for s in self.shards),
            "skipped_sources": len(self.problems),
            "problems": self.problems,
            "fewer_people": self.fewer_people,
            "occlusion_out_of_range": self.occlusion_out_of_range,
            "seconds": dict(sum((Counter(s.seconds) for s in self.shards), Counter())),
            "foreground_estimates": self.foreground_estimates,
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
    """True when ``path`` is a finished shard of this very build (right fingerprint and row count) that has the
    ``occlusion`` column: a shard of the same build made before the column existed is redone, so that one folder
    never mixes two schemas (the other columns come out the same)."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return False
    try:
        rows, meta = read_shard_metadata(path)
        columns = pq.read_schema(path).names
    except Exception:  # a truncated file from a crash is simply redone
        return False
    return (rows == task.stop - task.start and meta.get(FINGERPRINT_KEY) == config.fingerprint()
            and "occlusion" in columns)


# Per-process memory of sources that failed to load (ref -> message), so a bad file is decoded once per worker; every
# image that draws it still reports it, so the report does not depend on which process made which shard.
_BAD_SOURCES: dict = {}


def build_shard(
    config: BuildConfig,
    task: ShardTask,
    out_dir: str | os.PathLike | Location,
    fg_refs: list[ForegroundRef],
    bg_refs: list[BackgroundRef],
) -> ShardReport:
    """Make and atomically write one shard. Pure function of its arguments (plus the files the refs name).
    ``out_dir`` a :class:`~himbench.io.storage.Location` (object storage): the shard is put there as one object."""
    import cv2

    from himbench.synthesis.sampler import synthesize_image

    cv2.setNumThreads(1)  # parallelism comes from processes; threads inside would oversubscribe the cores
    remote = isinstance(out_dir, Location)
    path = out_dir.url_of(DATA_DIR, task.filename) if remote else shard_dir(out_dir) / task.filename
    rows, problems, seconds, dropped = [], [], Counter(), Counter()
    short = below_min = off_range = 0
    for index in range(task.start, task.stop):
        result = synthesize_image(config, task.split, index, fg_refs, bg_refs, _BAD_SOURCES)
        rows.append(result.row)
        problems += [p for p in result.problems if p not in problems]
        seconds.update(result.seconds)
        people = result.row["num_instances"]
        short += people < result.asked
        below_min += people < config.min_instances
        dropped.update(result.dropped)
        off_range += not result.in_range
    tic = time.perf_counter()
    if remote:
        from himbench.synthesis.store_build import write_remote_shard

        write_remote_shard(rows, out_dir, task.filename, {FINGERPRINT_KEY: config.fingerprint()})
    else:
        write_shard(rows, path, metadata={FINGERPRINT_KEY: config.fingerprint()})
    seconds["write"] += time.perf_counter() - tic
    return ShardReport(task.split, task.index, str(path), len(rows), False, problems, dict(seconds), short, below_min,
                       dict(sorted(dropped.items())), off_range,
                       node=cluster.writer_node(), sha256=cluster.file_sha256(path))  # h-cluster


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def _lock_holder(path: Path) -> str | None:
    """Who holds the lock at ``path`` ("pid N on HOST"), or None when the lock is stale (its process is gone)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        return "an unknown process"
    try:
        holder = json.loads(text)
        pid, host = int(holder["pid"]), str(holder["host"])
    except (ValueError, TypeError, KeyError):
        return None if age > _STALE_EMPTY_LOCK_S else "a process that is starting"
    if host != socket.gethostname():
        return f"pid {pid} on {host}"  # cannot check another machine's processes
    return f"pid {pid}" if _pid_alive(pid) else None


@contextmanager
def build_lock(out_dir: Path) -> Iterator[Path]:
    """Hold ``out_dir/.himbench-build.lock`` (O_CREAT | O_EXCL) for the duration; raises InputError naming the
    folder when another live build holds it; takes over a lock whose process is gone."""
    path = out_dir / LOCK_FILE
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is not None:
                raise InputError(
                    out_dir,
                    f"another build ({holder}) is writing to this folder; wait for it to finish, or delete "
                    f"{path} if no build is running",
                ) from None
            path.unlink(missing_ok=True)  # stale: left by a build that was killed
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
        break
    else:
        raise InputError(out_dir, f"could not take the build lock {path}; is another build starting?")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _foreign_entries(out_dir: Path) -> list[str]:
    """Entries of ``out_dir`` that a build that never got to write its config cannot have left."""
    foreign = []
    for entry in sorted(os.scandir(out_dir), key=lambda e: e.name):
        if entry.name in (LOCK_FILE, PROGRESS_FILE, SOURCES_FILE):
            continue
        if entry.name == DATA_DIR and entry.is_dir(follow_symlinks=False) and not any(
            not name.startswith(".") for name in os.listdir(entry.path)
        ):
            continue
        foreign.append(entry.name)
    return foreign


def _remove_own_shards(out_dir: Path, keep: set[str] = frozenset(), only_fingerprinted: bool = False) -> None:
    """Delete the shard files (``data/<split>-NNNNN-of-NNNNN.parquet``) not in ``keep``; any other file stays.
    ``only_fingerprinted``: delete only shards whose footer says a himbench build wrote them."""
    data_dir = shard_dir(out_dir)
    if not data_dir.is_dir():
        return
    for path in data_dir.glob("*.parquet"):
        if not is_shard_name(path.name) or path.name in keep or path.is_symlink() or not path.is_file():
            continue
        if only_fingerprinted:
            try:
                _, meta = read_shard_metadata(path)
            except Exception:  # unreadable: not provably ours, leave it
                continue
            if FINGERPRINT_KEY not in meta:
                continue
        path.unlink()


def _prepare_out_dir(config: BuildConfig, out_dir: Path, overwrite: bool, listings: dict) -> bool:
    """Check that ``out_dir`` may receive this build and write its config and the listing of its sources
    (``listings``, :func:`~himbench.synthesis.digest.source_listings`); True when resuming the same build."""
    config_path = out_dir / CONFIG_FILE
    same = False
    if config_path.exists():
        try:
            existing = BuildConfig.from_dict(read_json(config_path, max_bytes=1 << 20))
            same = existing.fingerprint() == config.fingerprint()
        except (InputError, ValueError, TypeError) as err:
            if not overwrite:
                raise InputError(config_path, f"cannot parse the existing build config ({err}); choose another "
                                              "--out or pass --overwrite to replace that build") from err
        if not same and not overwrite:
            raise InputError(
                out_dir,
                "holds a build with a different configuration; choose another --out or pass --overwrite to replace it",
            )
    else:
        foreign = _foreign_entries(out_dir)
        if foreign and not overwrite:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise InputError(
                out_dir,
                f"is not empty ({shown}) and holds no himbench build ({CONFIG_FILE}); choose a new or empty --out, "
                "or pass --overwrite to write the build into it (only the files a build writes are replaced)",
            )
    if same:
        same = _same_sources(out_dir, listings, overwrite)
    if not same:
        _remove_own_shards(out_dir)
        (out_dir / PROGRESS_FILE).unlink(missing_ok=True)
    # The listing goes first: a build_config.json without it would be one whose sources cannot be proven.
    atomic_write_text(out_dir / SOURCES_FILE, json.dumps(listings) + "\n")
    atomic_write_text(config_path, json.dumps(config.to_dict(), indent=2) + "\n")
    return same


def _same_sources(out_dir: Path, listings: dict, overwrite: bool) -> bool:
    """True when the source folders hold what they held when the build in ``out_dir`` started; False when they
    differ and ``overwrite`` (the build is redone from the current sources); else InputError naming the change."""
    path = out_dir / SOURCES_FILE
    if not listings["sources"]:  # embedded sources only: versioned by the code, in the fingerprint
        return True
    try:
        recorded = read_json(path, max_bytes=256 << 20) if path.is_file() else None
    except InputError:
        recorded = None
    differences = compare_listings(recorded, listings)
    if not differences:
        return True
    if overwrite:
        return False
    more = f" (and {len(differences) - 1} more changed source(s))" if len(differences) > 1 else ""
    raise InputError(
        out_dir,
        f"cannot resume: {differences[0]}{more}; kept shards would mix old and new source files. Choose a new --out, "
        "remove this build, or pass --overwrite to rebuild it from the current sources",
    )


def _earlier_shards(out_dir: Path, config: BuildConfig) -> dict[str, ShardReport]:
    """What each shard of an earlier run of this very build met (bad sources, people left out), by shard file name:
    the report of a resumed run keeps it for the shards it keeps."""
    found: dict[str, ShardReport] = {}
    for name in (REPORT_FILE, PROGRESS_FILE):
        path = out_dir / name
        if not path.is_file():
            continue
        try:
            data = read_json(path)
            if data.get("fingerprint") != config.fingerprint():
                continue
            for shard in data.get("shards", []):
                found[Path(str(shard["path"])).name] = ShardReport(
                    str(shard["split"]), int(shard["index"]), str(shard["path"]), int(shard["num_images"]), True,
                    [str(p) for p in shard.get("problems", [])], {}, int(shard.get("short_images", 0)),
                    int(shard.get("below_min_images", 0)),
                    {str(k): int(v) for k, v in dict(shard.get("dropped", {})).items()},
                    int(shard.get("off_range_images", 0)),
                    node=str(shard.get("node", "")), sha256=str(shard.get("sha256", "")),  # h-cluster
                )
        except (InputError, AttributeError, KeyError, TypeError, ValueError):  # damaged: the skips are found again
            continue
    return found


def build_dataset(
    config: BuildConfig,
    out_dir: str | os.PathLike,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    write_card: bool = True,
    engine: str = "local",
    ray_address: str | None = None,
    fg_cache: str | os.PathLike | bool | None = None,
    storage_options: dict | None = None,
) -> BuildReport:
    """Build (or resume) a dataset into ``out_dir``; returns what was done. See the module docstring.

    ``out_dir`` may be an fsspec URL (``s3://bucket/prefix``) with its ``storage_options``: see
    :mod:`himbench.synthesis.store_build` (same guarantees, a lock object with a lease).

    ``engine`` is ``"local"`` (process pool with ``workers`` processes) or ``"ray"`` (``ray_address`` of a cluster, or a
    local Ray with ``workers`` CPUs); both give byte-identical shards. ``fg_cache``: folder of the estimated-
    foreground cache (None: :func:`~himbench.synthesis.fgcache.default_fg_cache_dir`; False: no on-disk cache).
    """
    # Sources are listed before anything is written: a bad source leaves no folder behind.
    fg_refs, listing_problems = scan_foregrounds(config.fg_sources)
    bg_refs = scan_backgrounds(config.bg_sources)
    listings = source_listings(config)
    if is_url(out_dir):
        from himbench.synthesis.store_build import build_to_store

        return build_to_store(config, Location.parse(out_dir, storage_options),
                              (fg_refs, listing_problems, bg_refs, listings), workers, overwrite, progress, write_card,
                              engine, ray_address, fg_cache)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(out_dir, f"cannot create the output folder ({err.strerror or err})") from err
    sources = (fg_refs, listing_problems, bg_refs, listings)
    try:
        with build_lock(out_dir), cluster.preflight(  # h-cluster: every Ray node sees --out and the sources
            engine, workers, ray_address, out_dir, [*config.fg_sources, *config.bg_sources]
        ):
            return _build_locked(
                config, out_dir, sources, workers, overwrite, progress, write_card, engine, ray_address, fg_cache
            )
    except OSError as err:  # a read-only or full disk, a folder made immutable: one line, not a traceback
        raise InputError(
            err.filename or out_dir, f"cannot write the build ({err.strerror or err}); is {out_dir} writable?"
        ) from err


def _build_locked(
    config: BuildConfig,
    out_dir: Path,
    sources: tuple,
    workers: int | None,
    overwrite: bool,
    progress: bool,
    write_card: bool,
    engine: str,
    ray_address: str | None,
    fg_cache: str | os.PathLike | bool | None,
) -> BuildReport:
    fg_refs, listing_problems, bg_refs, listings = sources
    fg_refs = _with_fg_cache(fg_refs, fg_cache)
    same = _prepare_out_dir(config, out_dir, overwrite, listings)
    shard_dir(out_dir).mkdir(exist_ok=True)
    _remove_partial_writes(shard_dir(out_dir))  # of a crashed earlier run
    tasks = plan_shards(config)
    expected = {task.filename for task in tasks}
    # Shards of another split size cannot belong to this build (only shard files a build wrote are removed).
    _remove_own_shards(out_dir, keep=expected, only_fingerprinted=True)
    earlier = _earlier_shards(out_dir, config) if same else {}

    reports: list[ShardReport] = []
    todo = []
    for task in tasks:
        path = shard_dir(out_dir) / task.filename
        if shard_is_complete(path, task, config):
            kept = earlier.get(task.filename)
            if kept is None:  # no record of it (a damaged progress file): its bad sources are not known again
                kept = ShardReport(task.split, task.index, str(path), task.stop - task.start, True)
            kept = replace(kept, path=str(path), num_images=task.stop - task.start, resumed=True, seconds={})
            if not kept.sha256:  # h-cluster: a shard of a run before checksums were recorded
                kept = replace(kept, sha256=cluster.file_sha256(path))
            reports.append(kept)
        else:
            todo.append(task)

    estimates = prepare_foregrounds(config, todo, fg_refs, workers, progress)
    bar = _progress(total=sum(t.stop - t.start for t in tasks), enabled=progress)
    bar.update(sum(r.num_images for r in reports))
    items = [(config, task, str(out_dir), fg_refs, bg_refs) for task in todo]
    shards = map_tasks(build_shard, items, workers=workers, ordered=False, engine=engine, ray_address=ray_address)
    for _, report in shards:
        reports.append(report)
        bar.update(report.num_images)
        # Record the skips as shards finish, so a resumed run still reports those of shards it keeps.
        partial = BuildReport(str(out_dir), reports, listing_problems, config.fingerprint(), estimates)
        atomic_write_text(out_dir / PROGRESS_FILE, json.dumps(partial.to_dict()) + "\n")
    bar.close()
    _remove_partial_writes(shard_dir(out_dir))  # of workers killed mid-write (their shards were redone)
    # PROGRESS_FILE stays: it is the per-shard record of skips that a later resumed run reads back.
    reports.sort(key=lambda r: (list(config.splits).index(r.split), r.index))
    cluster.verify_shards(reports)  # h-cluster: every listed shard is here with its checksum, before report and card
    report = BuildReport(str(out_dir), reports, listing_problems, config.fingerprint(), estimates)
    atomic_write_text(out_dir / REPORT_FILE, json.dumps(report.to_dict(), indent=2) + "\n")
    if write_card:
        from himbench.synthesis.card import write_dataset_card

        write_dataset_card(out_dir, config, report)
    return report


def _with_fg_cache(fg_refs: list[ForegroundRef], fg_cache: str | os.PathLike | bool | None) -> list[ForegroundRef]:
    """The refs whose colours are estimated, pointed at the on-disk cache (``False``: none)."""
    if fg_cache is False or not any(ref.kind == "image_alpha" for ref in fg_refs):
        return fg_refs
    from himbench.synthesis.fgcache import default_fg_cache_dir

    folder = str(Path(default_fg_cache_dir() if fg_cache in (None, True) else fg_cache).expanduser().absolute())
    return [replace(ref, fg_cache=folder) if ref.kind == "image_alpha" else ref for ref in fg_refs]


# Below this many estimates to compute, starting worker processes (each imports numpy, OpenCV and numba) costs more
# than computing them in this process.
_PARALLEL_ESTIMATES = 24


def prepare_foregrounds(
    config: BuildConfig, tasks: list[ShardTask], fg_refs: list[ForegroundRef], workers: int | None, progress: bool
) -> dict:
    """Estimate, once and in parallel, the foreground colours that the images of ``tasks`` draw and the cache lacks.

    Returns counts and seconds for the report. Nothing here decides output bytes: a ref left out (or a cache that
    cannot be written) is computed by the worker that draws it, with the same result."""
    from himbench.synthesis.sampler import foregrounds_drawn, prepared_cap
    from himbench.synthesis.sources import fg_cache_entry

    if not any(ref.kind == "image_alpha" and ref.fg_cache for ref in fg_refs):
        return {}
    tic = time.perf_counter()
    cap = prepared_cap(config)
    images = ((task.split, index) for task in tasks for index in range(task.start, task.stop))
    needed = foregrounds_drawn(config, images, fg_refs)
    missing = []
    for ref in needed:
        try:
            path = fg_cache_entry(ref, cap)
        except InputError:  # unreadable: the shard that draws it reports it
            continue
        if path is not None and not path.is_file():
            missing.append(ref)
    if missing:
        from himbench.synthesis.sources import prepare_estimates

        workers = workers or os.cpu_count() or 1
        if len(missing) < _PARALLEL_ESTIMATES:
            workers = 1
        chunks = [missing[k::workers] for k in range(min(workers, len(missing)))]
        bar = _progress(total=len(missing), enabled=progress, desc="estimate foregrounds", unit="cut-out")
        estimated = map_tasks(prepare_estimates, [(chunk, cap) for chunk in chunks], workers=workers, ordered=False)
        for index, _ in estimated:
            bar.update(len(chunks[index]))
        bar.close()
    return {
        "needed": len(needed),
        "cached": len(needed) - len(missing),
        "computed": len(missing),
        "seconds": round(time.perf_counter() - tic, 3),
        "cap": list(cap),
    }


def _remove_partial_writes(data_dir: Path) -> None:
    for leftover in data_dir.glob(".*.parquet.*.tmp"):  # atomic_write_bytes' temp files of shards
        leftover.unlink(missing_ok=True)


def _progress(total: int, enabled: bool, desc: str = "build", unit: str = "img"):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=desc, disable=not enabled or None)
