"""Building a dataset: plan shards, make them in parallel, resume after a crash, report bad sources.

Each shard is one unit of deterministic work (:func:`build_shard`): the same config and sources give byte-identical
shards whichever process makes them, so a build can use 1 or N workers (or another engine) with identical output.
A shard is written atomically; on restart, shards whose footer carries this build's fingerprint and the right row
count are kept and everything else is redone. The bad sources met by the shards of an earlier (interrupted) run are
kept in the report of the resumed run (``.himbench-build-progress.json`` records them as shards finish).

One driver (:func:`build_dataset`) builds into a :class:`~himbench.io.storage.Location`: a local folder or an
fsspec URL (``s3://bucket/prefix``). The few things a store does differently (how a shard is put, how its footer is
read, the lock, listings, clean-up, the card's statistics) are small functions of :mod:`himbench.synthesis.output`,
chosen by the location.

The output folder is someone's disk: a build never deletes or overwrites a file it did not write.

- An existing, non-empty ``out_dir`` without ``build_config.json`` is refused, unless ``overwrite``; then only the
  files a build writes (``data/<split>-NNNNN-of-NNNNN.parquet``, ``README.md``, ``build_config.json``,
  ``build_report.json``) are replaced and everything else is left alone. Shards are deleted only when their footer
  carries a himbench fingerprint; a file named like a shard that no himbench build wrote, and that this build does
  not replace, is refused (deleting it would delete someone's data; keeping it would mix it into the splits).
- A folder holding another configuration's build is refused unless ``overwrite``.
- ``.himbench-build.lock`` makes a second concurrent build into the same folder fail clearly: locally a file created
  exclusively, holding the pid; on a store an object created only if absent, holding a lease. A lock whose process
  is gone (or whose lease expired) is taken over by one build only (on S3 a put on condition of the stale lock's
  ETag; elsewhere :func:`himbench.io.storage.take_over_stale`). A build whose lease another build took over stops
  before it records or writes more (:func:`~himbench.synthesis.output.lock_still_held`).
- ``.himbench-build-sources.json`` records what the source folders held when the build started
  (:mod:`himbench.synthesis.digest`: names, sizes, modification times). A resume whose source folders differ is
  refused, naming the change (kept shards would mix files of the old and the new sources), unless ``overwrite``,
  which rebuilds every shard from the current sources.
- Everything that can be checked before writing is checked first (the config when it is made, the source folders
  and their listing before the output folder is created); a folder that cannot be written is an InputError.
- On Ray, every node must write the output location and read the sources, checked before any work
  (:func:`himbench.engines.cluster.preflight`); each shard's report names its writer and checksum, and every listed
  shard is verified before the report and the card (:func:`himbench.engines.cluster.verify_shards`).

Photo + alpha sources need their foreground colours estimated. Before the shards start, the build lists the ones its
images draw, looks each up in the on-disk cache (:mod:`himbench.synthesis.fgcache`, ``fg_cache``) and computes the
missing ones once, in parallel; a worker that meets one still missing (a redraw after a bad file) computes and
caches it itself. The cache never changes the output bytes, and its place is not part of the build's fingerprint.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from himbench.build_config import BuildConfig
from himbench.engines import cluster, map_tasks
from himbench.io import InputError
from himbench.io.storage import Location, is_url, stage_listing
from himbench.shards import CONFIG_FILE, DATA_DIR, REPORT_FILE, shard_name
from himbench.synthesis.digest import compare_listings, listing_digest, source_listings, url_listing
from himbench.synthesis.output import (
    FINGERPRINT_KEY,
    LOCK_FILE,
    PROGRESS_FILE,
    SOURCES_FILE,
    build_lock,
    exists,
    foreign_entries,
    local_footer,
    lock_still_held,
    make_folder,
    output_lock,
    put_card,
    put_shard,
    read_footer,
    read_json_at,
    refuse_foreign_shards,
    remove_own_shards,
    remove_partial_writes,
    storage_options_of,
)
from himbench.synthesis.sources import BackgroundRef, ForegroundRef, scan_backgrounds, scan_foregrounds

__all__ = [
    # names of the output location that callers import from here (they live in himbench.synthesis.output)
    "FINGERPRINT_KEY",
    "LOCK_FILE",
    "SOURCES_FILE",
    "BuildReport",
    "RemoteSource",
    "ShardReport",
    "ShardTask",
    "build_dataset",
    "build_lock",
    "build_shard",
    "build_shard_from_urls",
    "plan_shards",
    "prepare_foregrounds",
    "shard_is_complete",
    "stage_sources",
]



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
    sha256: str = ""  # of the shard's bytes as written; checked before the card is written
    etag: str = ""  # object stores: the ETag the store gave the object its writer put ("" on a local disk)


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
            "shards": [_shard_dict(s) for s in self.shards],
        }


def _shard_dict(shard: ShardReport) -> dict:
    # A local build's report has no "etag" (it has none), so its report keeps the same keys as before stores.
    data = asdict(shard)
    if not data["etag"]:
        del data["etag"]
    return data


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
    return _is_complete(functools.partial(local_footer, Path(path)), task, config)


def _is_complete(footer, task: ShardTask, config: BuildConfig) -> bool:
    """:func:`shard_is_complete` given ``footer()``, the (rows, metadata, columns) reader of one shard."""
    try:
        rows, meta, columns = footer()
    except Exception:  # absent, or a truncated file from a crash: simply redone
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
    ``out_dir``: a local folder or a :class:`~himbench.io.storage.Location` (what the driver hands out, so that a
    worker on another machine writes where the driver reads)."""
    import cv2

    from himbench.synthesis.sampler import synthesize_image

    cv2.setNumThreads(1)  # parallelism comes from processes; threads inside would oversubscribe the cores
    location = out_dir if isinstance(out_dir, Location) else Location.parse(out_dir)
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
    sha256, etag = put_shard(rows, location, task.filename, {FINGERPRINT_KEY: config.fingerprint()})
    seconds["write"] += time.perf_counter() - tic
    return ShardReport(task.split, task.index, location.url_of(DATA_DIR, task.filename), len(rows), False, problems,
                       dict(seconds), short, below_min, dict(sorted(dropped.items())), off_range,
                       node=cluster.writer_node(), sha256=sha256, etag=etag)


@dataclass(frozen=True)
class RemoteSource:
    """A URL source (``s3://bucket/people``) as the driver staged it: the refs name files below ``root`` (the
    driver's local copy); ``files`` is the listing it was staged from (:func:`~himbench.synthesis.digest.url_listing`)
    and ``digest`` that of everything staged, which every worker's own copy must match."""

    url: str
    options_json: str
    root: str
    label: str
    files: dict
    digest: str


def _url_label(url: str) -> str:
    # The two last parts, as a local folder's label (s3://bucket/people -> "bucket/people"): the same files give the
    # same labels, so the same bytes, from a URL or from a local folder of the same two last names.
    return "/".join(url.split("://", 1)[1].rstrip("/").split("/")[-2:])


def _staged_digest(staged: dict) -> str:
    return listing_digest({name: [meta["size"], meta["tag"]] for name, meta in staged.items()})


def stage_sources(config: BuildConfig, storage_options: dict | None) -> list[RemoteSource]:
    """Stage each URL source of ``config`` into this machine's cache (:func:`himbench.io.storage.stage_listing`)."""
    found = []
    for spec in dict.fromkeys((*config.fg_sources, *config.bg_sources)):
        if spec == "embedded" or not is_url(spec):
            continue
        root, staged = stage_listing(spec, storage_options)
        location = Location.parse(spec, storage_options)
        found.append(RemoteSource(spec, location.options_json, str(root),
                                  _url_label(spec), url_listing(staged), _staged_digest(staged)))
    return found


# Per process: (url, driver's digest) -> this node's copy, so a worker stages each source once (not per shard).
_STAGED: dict = {}


def _moved(path: str, moves: dict[str, str]) -> str:
    for old, new in moves.items():
        if path == old or path.startswith(old + os.sep):
            return new + path[len(old):]
    return path


def build_shard_from_urls(
    config: BuildConfig,
    task: ShardTask,
    out_dir: str | os.PathLike | Location,
    fg_refs: list[ForegroundRef],
    bg_refs: list[BackgroundRef],
    remote: tuple[RemoteSource, ...],
) -> ShardReport:
    """:func:`build_shard` on a worker whose node may not see the driver's cache: each URL source is staged into this
    node's own cache (once per process, under the cache's lock) and must list as the driver's copy did; the refs are
    then pointed at this copy. A copy that lists otherwise is an InputError naming the node and the source."""
    moves = {}
    for source in remote:
        key = (source.url, source.options_json, source.digest)
        if key not in _STAGED or not Path(_STAGED[key]).is_dir():  # a copy removed since: staged again
            def same(listing: dict, source: RemoteSource = source) -> None:
                # Checked before this node's copy is touched: other processes here may be reading it.
                if _staged_digest(listing) != source.digest:
                    raise InputError(source.url, f"node {cluster.writer_node()} lists other files in this source "
                                                 "(names, sizes or ETags) than the driver staged; did it change "
                                                 "during the build? Rerun it")

            _STAGED[key] = str(stage_listing(source.url, json.loads(source.options_json), expect=same)[0])
        if _STAGED[key] != source.root:
            moves[source.root] = _STAGED[key]
    if moves:
        fg_refs = [replace(ref, paths=tuple(_moved(p, moves) for p in ref.paths)) for ref in fg_refs]
        bg_refs = [replace(ref, path=_moved(ref.path, moves)) if ref.kind == "file" else ref for ref in bg_refs]
    return build_shard(config, task, out_dir, fg_refs, bg_refs)


def _prepare_out_dir(config: BuildConfig, location: Location, overwrite: bool, listings: dict) -> bool:
    """Check that ``location`` may receive this build and write its config and the listing of its sources
    (``listings``, :func:`~himbench.synthesis.digest.source_listings`); True when resuming the same build."""
    same = False
    if exists(location, CONFIG_FILE):
        config_url = location.url_of(CONFIG_FILE)
        try:
            existing = BuildConfig.from_dict(read_json_at(location, CONFIG_FILE, max_bytes=1 << 20))
            same = existing.fingerprint() == config.fingerprint()
        except (InputError, ValueError, TypeError) as err:
            if not overwrite:
                raise InputError(config_url, f"cannot parse the existing build config ({err}); choose another "
                                             "--out or pass --overwrite to replace that build") from err
        if not same and not overwrite:
            raise InputError(
                location.url,
                "holds a build with a different configuration; choose another --out or pass --overwrite to replace it",
            )
    else:
        foreign = foreign_entries(location)
        if foreign and not overwrite:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise InputError(
                location.url,
                f"is not empty ({shown}) and holds no himbench build ({CONFIG_FILE}); choose a new or empty --out, "
                "or pass --overwrite to write the build into it (only the files a build writes are replaced)",
            )
    if same:
        same = _same_sources(location, listings, overwrite)
    # Fresh or resumed, no file named like a shard that no himbench build wrote may sit among this build's shards.
    refuse_foreign_shards(location, {task.filename for task in plan_shards(config)})
    if not same:
        remove_own_shards(location, only_fingerprinted=True)
        location.delete(PROGRESS_FILE)
    # The listing goes first: a build_config.json without it would be one whose sources cannot be proven.
    location.put_bytes((json.dumps(listings) + "\n").encode(), SOURCES_FILE)
    location.put_bytes((json.dumps(config.to_dict(), indent=2) + "\n").encode(), CONFIG_FILE)
    return same


def _same_sources(location: Location, listings: dict, overwrite: bool) -> bool:
    """True when the source folders hold what they held when the build in ``location`` started; False when they
    differ and ``overwrite`` (the build is redone from the current sources); else InputError naming the change."""
    if not listings["sources"]:  # embedded sources only: versioned by the code, in the fingerprint
        return True
    try:
        recorded = read_json_at(location, SOURCES_FILE)
    except InputError:
        recorded = None
    differences = compare_listings(recorded, listings)
    if not differences:
        return True
    if overwrite:
        return False
    more = f" (and {len(differences) - 1} more changed source(s))" if len(differences) > 1 else ""
    raise InputError(
        location.url,
        f"cannot resume: {differences[0]}{more}; kept shards would mix old and new source files. Choose a new --out, "
        "remove this build, or pass --overwrite to rebuild it from the current sources",
    )


def _earlier_shards(location: Location, config: BuildConfig) -> dict[str, ShardReport]:
    """What each shard of an earlier run of this very build met (bad sources, people left out), by shard file name:
    the report of a resumed run keeps it for the shards it keeps."""
    found: dict[str, ShardReport] = {}
    for name in (REPORT_FILE, PROGRESS_FILE):
        try:
            data = read_json_at(location, name)
            if not isinstance(data, dict) or data.get("fingerprint") != config.fingerprint():
                continue
            for shard in data.get("shards", []):
                found[str(shard["path"]).replace("\\", "/").rsplit("/", 1)[-1]] = ShardReport(
                    str(shard["split"]), int(shard["index"]), str(shard["path"]), int(shard["num_images"]), True,
                    [str(p) for p in shard.get("problems", [])], {}, int(shard.get("short_images", 0)),
                    int(shard.get("below_min_images", 0)),
                    {str(k): int(v) for k, v in dict(shard.get("dropped", {})).items()},
                    int(shard.get("off_range_images", 0)),
                    node=str(shard.get("node", "")), sha256=str(shard.get("sha256", "")),
                    etag=str(shard.get("etag", "")),
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

    ``out_dir`` is a local folder or an fsspec URL (``s3://bucket/prefix``) reached with ``storage_options``
    (credentials, endpoint): one driver for both, with the same guarantees (docs/storage.md).

    ``engine`` is ``"local"`` (process pool with ``workers`` processes) or ``"ray"`` (``ray_address`` of a cluster, or a
    local Ray with ``workers`` CPUs); both give byte-identical shards. On Ray, every node must reach ``out_dir`` and
    the sources, which is checked before any work (:func:`himbench.engines.cluster.preflight`). ``fg_cache``: folder
    of the estimated-foreground cache (None: :func:`~himbench.synthesis.fgcache.default_fg_cache_dir`; False: no
    on-disk cache).
    """
    # Sources are listed before anything is written: a bad source leaves no folder behind.
    remote = stage_sources(config, storage_options)
    local = {source.url: source.root for source in remote}
    labels = {source.root: source.label for source in remote}
    fg_refs, listing_problems = scan_foregrounds([local.get(s, s) for s in config.fg_sources], labels)
    bg_refs = scan_backgrounds([local.get(s, s) for s in config.bg_sources], labels)
    listings = source_listings(config, {source.url: source.files for source in remote})
    location = Location.parse(out_dir, storage_options)
    if location.protocol == "memory" and (workers != 1 or engine != "local"):
        # Each worker process has its own memory: shards put there would never reach this process.
        raise InputError(location.url, "memory:// is one process's memory; build to it with --workers 1")
    make_folder(location)
    sources = (fg_refs, listing_problems, bg_refs, listings, tuple(remote))
    try:
        # On Ray, every node must write the output location and read the sources before any work starts (a URL
        # source: every node lists the URL itself).
        options = storage_options if remote else storage_options_of(location)
        with output_lock(location) as held, cluster.preflight(engine, workers, ray_address, location.url,
                                                [*config.fg_sources, *config.bg_sources], options):
            return _build_locked(
                config, location, sources, workers, overwrite, progress, write_card, engine, ray_address, fg_cache,
                held,
            )
    except OSError as err:  # a read-only or full disk, no bucket, denied: one line, not a traceback
        if not location.is_local:
            raise InputError(location.url, f"cannot write the build ({err})") from err
        raise InputError(
            err.filename or location.url,
            f"cannot write the build ({err.strerror or err}); is {location.url} writable?",
        ) from err


def _build_locked(
    config: BuildConfig,
    location: Location,
    sources: tuple,
    workers: int | None,
    overwrite: bool,
    progress: bool,
    write_card: bool,
    engine: str,
    ray_address: str | None,
    fg_cache: str | os.PathLike | bool | None,
    held: object = None,
) -> BuildReport:
    fg_refs, listing_problems, bg_refs, listings, remote = sources
    fg_refs = _with_fg_cache(fg_refs, fg_cache)
    same = _prepare_out_dir(config, location, overwrite, listings)
    lock_still_held(held)  # a lease taken over by another build: write and delete nothing more
    if location.is_local:
        Path(location.path(DATA_DIR)).mkdir(exist_ok=True)
    remove_partial_writes(location)  # of a crashed earlier run
    tasks = plan_shards(config)
    expected = {task.filename for task in tasks}
    # Shards of another split size cannot belong to this build (only shard files a build wrote are removed).
    remove_own_shards(location, keep=expected, only_fingerprinted=True)
    earlier = _earlier_shards(location, config) if same else {}

    reports: list[ShardReport] = []
    todo = []
    for task in tasks:
        url = location.url_of(DATA_DIR, task.filename)
        if _is_complete(functools.partial(read_footer, location, task.filename), task, config):
            kept = earlier.get(task.filename)
            if kept is None:  # no record of it (a damaged progress file): its bad sources are not known again
                kept = ShardReport(task.split, task.index, url, task.stop - task.start, True)
            kept = replace(kept, path=url, num_images=task.stop - task.start, resumed=True, seconds={})
            if not kept.sha256:  # a shard of a run before checksums were recorded
                kept = replace(kept, sha256=cluster.file_sha256(url, storage_options_of(location)))
            if not location.is_local and not kept.etag:
                kept = replace(kept, etag=location.info(DATA_DIR, task.filename)["etag"] or "")
            reports.append(kept)
        else:
            todo.append(task)

    estimates = prepare_foregrounds(config, todo, fg_refs, workers, progress)
    bar = _progress(total=sum(t.stop - t.start for t in tasks), enabled=progress)
    bar.update(sum(r.num_images for r in reports))
    lock_still_held(held)
    # Workers get the Location (URL and storage options), never a path on this machine's disk alone.
    items = [(config, task, location, fg_refs, bg_refs) for task in todo]
    task_fn = build_shard
    if remote:  # each worker stages the URL sources into its own node's cache first
        items = [(*item, remote) for item in items]
        task_fn = build_shard_from_urls
    shards = map_tasks(task_fn, items, workers=workers, ordered=False, engine=engine, ray_address=ray_address)
    for _, report in shards:
        reports.append(report)
        bar.update(report.num_images)
        lock_still_held(held)  # stop dispatching and recording once another build holds the lock
        # Record the skips as shards finish, so a resumed run still reports those of shards it keeps.
        partial = BuildReport(location.url, reports, listing_problems, config.fingerprint(), estimates)
        location.put_bytes((json.dumps(partial.to_dict()) + "\n").encode(), PROGRESS_FILE)
    bar.close()
    lock_still_held(held)
    remove_partial_writes(location)  # of workers killed mid-write (their shards were redone)
    # PROGRESS_FILE stays: it is the per-shard record of skips that a later resumed run reads back.
    reports.sort(key=lambda r: (list(config.splits).index(r.split), r.index))
    # Every listed shard must be where the driver reads, as its writer made it, before the report and the card.
    cluster.verify_shards(reports, storage_options_of(location))
    report = BuildReport(location.url, reports, listing_problems, config.fingerprint(), estimates)
    lock_still_held(held)
    location.put_bytes((json.dumps(report.to_dict(), indent=2) + "\n").encode(), REPORT_FILE)
    if write_card:
        put_card(location, config, report)
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


def _progress(total: int, enabled: bool, desc: str = "build", unit: str = "img"):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=desc, disable=not enabled or None)
