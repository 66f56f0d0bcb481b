"""Building a dataset into object storage (``build-dataset --out s3://bucket/prefix``): the driver side.

The same build as :func:`himbench.synthesis.build.build_dataset` into a local folder, with the same guarantees, on a
store reached through :class:`himbench.io.storage.Location`:

- the lock is an object, ``.himbench-build.lock``, created only if absent and holding a lease
  (:func:`himbench.io.storage.lease_lock`); a build that died leaves a lease that expires and is taken over;
- ``build_config.json``, the source listing, the progress record, the report and the card are each one put;
- workers receive the location (URL + storage options), make their shard in a local temporary file and put it as
  one object (:func:`himbench.synthesis.build.build_shard`): an object is whole or absent;
- a resume reads only the Parquet footer of each existing shard (a few ranged reads) to check its fingerprint;
- only names a build writes are deleted (shards whose footer carries a himbench fingerprint, the progress record).

The shard bytes are those of a local build: the same ``write_shard`` makes the file that is put.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

from himbench.build_config import BuildConfig
from himbench.engines import map_tasks
from himbench.io import InputError
from himbench.io.storage import Location, lease_lock
from himbench.shards import CONFIG_FILE, DATA_DIR, REPORT_FILE, is_shard_name
from himbench.synthesis.digest import compare_listings

__all__ = ["build_to_store", "remote_shard_is_complete", "write_remote_shard"]


def write_remote_shard(rows: list[dict], location: Location, filename: str, metadata: dict[str, str]) -> str:
    """Write one shard with :func:`himbench.shards.write_shard` into a local temporary file, then put it whole."""
    from himbench.shards import write_shard

    with tempfile.TemporaryDirectory(prefix="himbench-shard-") as tmp:
        local = Path(tmp) / filename
        write_shard(rows, local, metadata=metadata)
        location.put_file(local, DATA_DIR, filename)
    return location.url_of(DATA_DIR, filename)


def _footer(location: Location, filename: str):
    """(row count, key-value metadata, column names) of a shard object, from its footer only."""
    import pyarrow.parquet as pq

    with location.fs.open(location.path(DATA_DIR, filename), "rb") as handle:
        meta = pq.ParquetFile(handle).metadata
        kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
        return meta.num_rows, kv, meta.schema.to_arrow_schema().names


def remote_shard_is_complete(location: Location, task, config: BuildConfig) -> bool:
    from himbench.synthesis.build import FINGERPRINT_KEY

    try:
        rows, meta, columns = _footer(location, task.filename)
    except Exception:  # absent or not a Parquet file: redone
        return False
    return (rows == task.stop - task.start and meta.get(FINGERPRINT_KEY) == config.fingerprint()
            and "occlusion" in columns)


def _read_json(location: Location, name: str, max_bytes: int = 256 << 20):
    try:
        return json.loads(location.read_bytes(name, max_bytes=max_bytes))
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise InputError(location.url_of(name), f"is not valid JSON ({err})") from None


def _remove_own_shards(location: Location, keep: set[str] = frozenset(), only_fingerprinted: bool = False) -> None:
    from himbench.synthesis.build import FINGERPRINT_KEY

    for name in location.list(DATA_DIR):
        if not name.endswith(".parquet") or not is_shard_name(name) or name in keep:
            continue
        if only_fingerprinted:
            try:
                _, meta, _ = _footer(location, name)
            except Exception:  # unreadable: not provably ours, leave it
                continue
            if FINGERPRINT_KEY not in meta:
                continue
        location.delete(DATA_DIR, name)


def _prepare(config: BuildConfig, location: Location, overwrite: bool, listings: dict) -> bool:
    """As build._prepare_out_dir, on the store; True when resuming the same build."""
    from himbench.synthesis.build import LOCK_FILE, PROGRESS_FILE, SOURCES_FILE

    same = False
    if location.exists(CONFIG_FILE):
        try:
            existing = BuildConfig.from_dict(_read_json(location, CONFIG_FILE, 1 << 20))
            same = existing.fingerprint() == config.fingerprint()
        except (InputError, ValueError, TypeError) as err:
            if not overwrite:
                raise InputError(location.url_of(CONFIG_FILE), f"cannot parse the existing build config ({err}); "
                                 "choose another --out or pass --overwrite to replace that build") from err
        if not same and not overwrite:
            raise InputError(location.url, "holds a build with a different configuration; choose another --out or "
                                           "pass --overwrite to replace it")
    else:
        foreign = [n for n in location.list() if n not in (LOCK_FILE, PROGRESS_FILE, SOURCES_FILE)]
        foreign += [d for d in location.list_dirs() if d != DATA_DIR]
        foreign += [f"{DATA_DIR}/{n}" for n in location.list(DATA_DIR) if not n.startswith(".")]
        if foreign and not overwrite:
            shown = ", ".join(sorted(foreign)[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise InputError(location.url, f"is not empty ({shown}) and holds no himbench build ({CONFIG_FILE}); "
                                           "choose a new or empty --out, or pass --overwrite to write the build "
                                           "into it (only the files a build writes are replaced)")
    if same and listings["sources"]:
        try:
            recorded = _read_json(location, SOURCES_FILE)
        except InputError:
            recorded = None
        differences = compare_listings(recorded, listings)
        if differences and not overwrite:
            more = f" (and {len(differences) - 1} more changed source(s))" if len(differences) > 1 else ""
            raise InputError(location.url, f"cannot resume: {differences[0]}{more}; kept shards would mix old and "
                                           "new source files. Choose a new --out, remove this build, or pass "
                                           "--overwrite to rebuild it from the current sources")
        same = not differences
    if not same:
        _remove_own_shards(location)
        location.delete(PROGRESS_FILE)
    location.put_bytes((json.dumps(listings) + "\n").encode(), SOURCES_FILE)
    location.put_bytes((json.dumps(config.to_dict(), indent=2) + "\n").encode(), CONFIG_FILE)
    return same


def _earlier(location: Location, config: BuildConfig) -> dict:
    from himbench.synthesis.build import PROGRESS_FILE, ShardReport

    found = {}
    for name in (REPORT_FILE, PROGRESS_FILE):
        try:
            data = _read_json(location, name)
            if not isinstance(data, dict) or data.get("fingerprint") != config.fingerprint():
                continue
            for shard in data.get("shards", []):
                found[str(shard["path"]).rsplit("/", 1)[-1]] = ShardReport(
                    str(shard["split"]), int(shard["index"]), str(shard["path"]), int(shard["num_images"]), True,
                    [str(p) for p in shard.get("problems", [])], {}, int(shard.get("short_images", 0)),
                    int(shard.get("below_min_images", 0)),
                    {str(k): int(v) for k, v in dict(shard.get("dropped", {})).items()},
                    int(shard.get("off_range_images", 0)),
                )
        except (InputError, AttributeError, KeyError, TypeError, ValueError):
            continue
    return found


def build_to_store(config: BuildConfig, location: Location, sources: tuple, workers, overwrite: bool,
                   progress: bool, write_card: bool, engine: str, ray_address, fg_cache):
    """The build of :func:`himbench.synthesis.build.build_dataset` into ``location`` (an object store URL)."""
    from himbench.synthesis import build as b

    fg_refs, listing_problems, bg_refs, listings = sources
    if location.protocol == "memory" and (workers != 1 or engine != "local"):
        # Each worker process has its own memory: shards put there would never reach this process.
        raise InputError(location.url, "memory:// is one process's memory; build to it with --workers 1")
    try:
        with lease_lock(location, b.LOCK_FILE):
            fg_refs = b._with_fg_cache(fg_refs, fg_cache)
            same = _prepare(config, location, overwrite, listings)
            tasks = b.plan_shards(config)
            _remove_own_shards(location, keep={t.filename for t in tasks}, only_fingerprinted=True)
            earlier = _earlier(location, config) if same else {}
            reports, todo = [], []
            for task in tasks:
                url = location.url_of(DATA_DIR, task.filename)
                if remote_shard_is_complete(location, task, config):
                    kept = earlier.get(task.filename) or b.ShardReport(task.split, task.index, url,
                                                                       task.stop - task.start, True)
                    reports.append(replace(kept, path=url, num_images=task.stop - task.start, resumed=True,
                                           seconds={}))
                else:
                    todo.append(task)
            estimates = b.prepare_foregrounds(config, todo, fg_refs, workers, progress)
            bar = b._progress(total=sum(t.stop - t.start for t in tasks), enabled=progress)
            bar.update(sum(r.num_images for r in reports))
            items = [(config, task, location, fg_refs, bg_refs) for task in todo]
            for _, report in map_tasks(b.build_shard, items, workers=workers, ordered=False, engine=engine,
                                       ray_address=ray_address):
                reports.append(report)
                bar.update(report.num_images)
                partial = b.BuildReport(location.url, reports, listing_problems, config.fingerprint(), estimates)
                location.put_bytes((json.dumps(partial.to_dict()) + "\n").encode(), b.PROGRESS_FILE)
            bar.close()
            reports.sort(key=lambda r: (list(config.splits).index(r.split), r.index))
            report = b.BuildReport(location.url, reports, listing_problems, config.fingerprint(), estimates)
            location.put_bytes((json.dumps(report.to_dict(), indent=2) + "\n").encode(), REPORT_FILE)
            if write_card:
                _write_card(location, config, report)
            return report
    except OSError as err:  # no bucket, denied, unreachable endpoint: one line, not a traceback
        raise InputError(location.url, f"cannot write the build ({err})") from err


def _write_card(location: Location, config: BuildConfig, report) -> None:
    """The card's statistics come from the shards as stored (read into a temporary folder)."""
    from himbench.synthesis.build import CARD_FILE
    from himbench.synthesis.card import card_statistics, command_line, render_dataset_card, url_load_text

    with tempfile.TemporaryDirectory(prefix="himbench-card-") as tmp:
        data = Path(tmp) / DATA_DIR
        data.mkdir()
        for name in location.list(DATA_DIR):
            if is_shard_name(name):
                location.fs.get_file(location.path(DATA_DIR, name), str(data / name))
        stats = card_statistics(tmp)
    text = render_dataset_card(config, stats, len(report.problems), command_line(config), location.url)
    location.put_bytes(url_load_text(text, location.url, config).encode(), CARD_FILE)
