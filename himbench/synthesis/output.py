"""The output location of a build: everything a build does to where it builds, local folder or object store.

:func:`himbench.synthesis.build.build_dataset` is one driver; the few things a store does differently are small
functions here, chosen by the :class:`~himbench.io.storage.Location`: how a shard is put (:func:`put_shard`; local:
write then rename; store: one put of the finished local file), how its footer is read (:func:`read_footer`; a local
file, or ranged reads of an object), the build lock (:func:`output_lock`; an ``O_EXCL`` file holding a pid, or a lock
object with a lease, :func:`himbench.io.storage.lease_lock`), how the output is listed (:func:`shard_files`,
:func:`foreign_entries`), the clean-up of partial writes, and where the card reads its statistics.

The output folder is someone's disk: nothing here deletes a file a build did not write (:func:`remove_own_shards`
deletes only shard names, and only fingerprinted ones where asked; :func:`refuse_foreign_shards` refuses a
shard-named file no himbench build wrote).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from himbench.build_config import BuildConfig
from himbench.engines import cluster
from himbench.io import InputError, read_json
from himbench.io.storage import Lease, Location, is_claim, lease_lock, take_over_stale
from himbench.shards import DATA_DIR, is_shard_name, read_shard_metadata, write_shard

if TYPE_CHECKING:
    from himbench.synthesis.build import BuildReport

__all__ = [
    "CARD_FILE",
    "FINGERPRINT_KEY",
    "LOCK_FILE",
    "MAX_FOOTER_BYTES",
    "PROGRESS_FILE",
    "SOURCES_FILE",
    "build_lock",
    "exists",
    "foreign_entries",
    "local_footer",
    "make_folder",
    "lock_still_held",
    "output_lock",
    "put_card",
    "put_shard",
    "read_footer",
    "read_json_at",
    "refuse_foreign_shards",
    "remove_own_shards",
    "remove_partial_writes",
    "shard_files",
    "storage_options_of",
]

FINGERPRINT_KEY = "himbench_fingerprint"
LOCK_FILE = ".himbench-build.lock"
PROGRESS_FILE = ".himbench-build-progress.json"
SOURCES_FILE = ".himbench-build-sources.json"
CARD_FILE = "README.md"
MAX_FOOTER_BYTES = 16 << 20  # a shard's footer is a few KiB; a larger one is not read from an untrusted file
_STALE_EMPTY_LOCK_S = 30.0  # a lock file with no pid yet is being written, unless older than this




def put_shard(rows: list[dict], location: Location, filename: str, metadata: dict[str, str]) -> tuple[str, str]:
    """Write one shard atomically; (sha256 of its bytes, ETag of the object or "" on a local disk).

    Local: :func:`himbench.shards.write_shard` writes a temporary file and renames it. Object store: the same writer
    makes a local temporary file, whose sha256 is taken before it is put whole, in one put (an object is whole or
    absent); the ETag the store gives it is read back once, for :func:`himbench.engines.cluster.verify_shards`."""
    if location.is_local:
        path = write_shard(rows, location.path(DATA_DIR, filename), metadata=metadata)
        return cluster.file_sha256(path), ""
    with tempfile.TemporaryDirectory(prefix="himbench-shard-") as tmp:
        local = write_shard(rows, Path(tmp) / filename, metadata=metadata)
        sha256 = cluster.file_sha256(local)
        location.put_file(local, DATA_DIR, filename)
    return sha256, location.info(DATA_DIR, filename)["etag"] or ""


def read_footer(location: Location, filename: str) -> tuple[int, dict[str, str], list[str]]:
    """(row count, key-value metadata, column names) of a shard, from its footer only: a local file, or a few ranged
    reads of an object. FileNotFoundError when absent; InputError when its footer is over :data:`MAX_FOOTER_BYTES`
    (checked from the last 8 bytes before the footer is read: a file in the output folder is untrusted)."""
    import pyarrow.parquet as pq

    if location.is_local:
        return local_footer(Path(location.path(DATA_DIR, filename)))
    with location.fs.open(location.path(DATA_DIR, filename), "rb") as handle:
        _check_footer_size(handle, location.url_of(DATA_DIR, filename))
        meta = pq.ParquetFile(handle).metadata
        kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
        return meta.num_rows, kv, meta.schema.to_arrow_schema().names


def local_footer(path: Path) -> tuple[int, dict[str, str], list[str]]:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FileNotFoundError(path)
    with open(path, "rb") as handle:
        _check_footer_size(handle, path)
    rows, meta = read_shard_metadata(path)
    return rows, meta, pq.read_schema(path).names


def _check_footer_size(handle, source: str | os.PathLike) -> None:
    """InputError unless the Parquet file open in ``handle`` ends in a footer of at most :data:`MAX_FOOTER_BYTES`
    (its length is the 4 bytes before the closing ``PAR1``)."""
    size = handle.seek(0, os.SEEK_END)
    if size < 12:
        raise InputError(source, f"is {size} bytes, too short for a Parquet file")
    handle.seek(size - 8)
    tail = handle.read(8)
    length = int.from_bytes(tail[:4], "little")
    if tail[4:] != b"PAR1" or length > min(MAX_FOOTER_BYTES, size - 12):
        raise InputError(source, f"is not a Parquet file with a footer of at most {MAX_FOOTER_BYTES} bytes")
    handle.seek(0)


def shard_files(location: Location) -> list[str]:
    """Names of the plain shard files in ``data/`` (a local link is not a file of ours)."""
    if location.is_local:
        data_dir = Path(location.path(DATA_DIR))
        if not data_dir.is_dir():
            return []
        return sorted(p.name for p in data_dir.glob("*.parquet") if not p.is_symlink() and p.is_file()
                      and is_shard_name(p.name))
    return [name for name in location.list(DATA_DIR) if name.endswith(".parquet") and is_shard_name(name)]


def storage_options_of(location: Location) -> dict | None:
    """The storage options for fsspec calls: a local folder takes none."""
    return None if location.is_local else location.options


def exists(location: Location, name: str) -> bool:
    return Path(location.path(name)).exists() if location.is_local else location.exists(name)


def read_json_at(location: Location, name: str, max_bytes: int = 256 << 20):
    """The JSON object ``name`` (None when absent); InputError naming it when it is not JSON or too large."""
    if location.is_local:
        path = Path(location.url) / name
        return read_json(path, max_bytes=max_bytes) if path.is_file() else None
    try:
        data = location.read_bytes(name, max_bytes=max_bytes)
    except FileNotFoundError:
        return None
    try:
        return json.loads(data)
    except ValueError as err:
        raise InputError(location.url_of(name), f"is not valid JSON ({err})") from None


def make_folder(location: Location) -> None:
    """Create a local output folder (an object store has no folders to make)."""
    if not location.is_local:
        return
    out_dir = Path(location.url)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(out_dir, f"cannot create the output folder ({err.strerror or err})") from err


def output_lock(location: Location):
    """The build lock: an O_EXCL file holding a pid on a local disk, a lock object with a lease on a store."""
    return build_lock(Path(location.url)) if location.is_local else lease_lock(location, LOCK_FILE)


def lock_still_held(held: object) -> None:
    """Raise InputError naming the lock when ``held`` (what :func:`output_lock` yielded) is a lease this build no
    longer holds (another build took it over, or it expired unrenewed). A local lock (a pid file) has no lease."""
    if isinstance(held, Lease):
        held.check()


def foreign_entries(location: Location) -> list[str]:
    """Entries of the output location that a build that never got to write its config cannot have left."""
    ours = (LOCK_FILE, PROGRESS_FILE, SOURCES_FILE)
    if not location.is_local:
        foreign = [n for n in location.list() if n not in ours and not is_claim(n, LOCK_FILE)]
        foreign += [d for d in location.list_dirs() if d != DATA_DIR]
        foreign += [f"{DATA_DIR}/{n}" for n in location.list(DATA_DIR) if not n.startswith(".")]
        return sorted(foreign)
    foreign = []
    for entry in sorted(os.scandir(location.url), key=lambda e: e.name):
        if entry.name in ours or is_claim(entry.name, LOCK_FILE):
            continue
        if entry.name == DATA_DIR and entry.is_dir(follow_symlinks=False) and not any(
            not name.startswith(".") for name in os.listdir(entry.path)
        ):
            continue
        foreign.append(entry.name)
    return foreign


def remove_partial_writes(location: Location) -> None:
    """Temporary files of shards left by a crashed local write (an object store has none: a put is whole)."""
    if location.is_local:
        for leftover in Path(location.path(DATA_DIR)).glob(".*.parquet.*.tmp"):  # atomic_write_bytes' temp files
            leftover.unlink(missing_ok=True)


def put_card(location: Location, config: BuildConfig, report: BuildReport) -> None:
    from himbench.synthesis.card import (
        card_statistics,
        command_line,
        render_dataset_card,
        url_load_text,
        write_dataset_card,
    )

    if location.is_local:
        write_dataset_card(location.url, config, report)
        return
    # The statistics come from the shards as stored, read into a temporary folder.
    with tempfile.TemporaryDirectory(prefix="himbench-card-") as tmp:
        data = Path(tmp) / DATA_DIR
        data.mkdir()
        for name in shard_files(location):
            location.fs.get_file(location.path(DATA_DIR, name), str(data / name))
        stats = card_statistics(tmp)
    text = render_dataset_card(config, stats, len(report.problems), command_line(config), location.url)
    location.put_bytes(url_load_text(text, location.url, config).encode(), CARD_FILE)


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


def _lock_holder(path: Path, data: bytes) -> str | None:
    """Who holds the lock at ``path`` whose bytes are ``data`` ("pid N on HOST"), or None when the lock is stale (its
    process is gone)."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        return "an unknown process"
    try:
        holder = json.loads(data.decode("utf-8", errors="replace"))
        pid, host = int(holder["pid"]), str(holder["host"])
    except (ValueError, TypeError, KeyError):
        return None if age > _STALE_EMPTY_LOCK_S else "a process that is starting"
    if host != socket.gethostname():
        return f"pid {pid} on {host}"  # cannot check another machine's processes
    return f"pid {pid}" if _pid_alive(pid) else None


def _read_lock(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(1 << 16)  # a pid and a host name; more is not a lock this module wrote
    except FileNotFoundError:
        return None
    except OSError:
        return b""


@contextmanager
def build_lock(out_dir: Path) -> Iterator[Path]:
    """Hold ``out_dir/.himbench-build.lock`` (O_CREAT | O_EXCL) for the duration; raises InputError naming the
    folder when another live build holds it; takes over a lock whose process is gone, as the one build that claims
    that very lock (:func:`himbench.io.storage.take_over_stale`: two builds that both found it stale do not both
    delete-and-create)."""
    path = out_dir / LOCK_FILE
    mine = (json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n").encode()
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            stale = _read_lock(path)
            if stale is None:
                continue  # released meanwhile
            holder = _lock_holder(path, stale)
            if holder is not None:
                raise InputError(
                    out_dir,
                    f"another build ({holder}) is writing to this folder; wait for it to finish, or delete "
                    f"{path} if no build is running",
                ) from None
            take_over_stale(Location.parse(out_dir), LOCK_FILE, stale)  # left by a build that was killed
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(mine)
        break
    else:
        raise InputError(out_dir, f"could not take the build lock {path}; is another build starting?")
    try:
        yield path
    finally:
        if _read_lock(path) == mine:  # still ours (never delete a lock another build holds)
            path.unlink(missing_ok=True)


def remove_own_shards(location: Location, keep: set[str] = frozenset(), only_fingerprinted: bool = False) -> None:
    """Delete the shard files (``data/<split>-NNNNN-of-NNNNN.parquet``) not in ``keep``; any other file stays.
    ``only_fingerprinted``: delete only shards whose footer says a himbench build wrote them."""
    for name in shard_files(location):
        if name in keep:
            continue
        if only_fingerprinted:
            try:
                _, meta, _ = read_footer(location, name)
            except Exception:  # unreadable: not provably ours, leave it
                continue
            if FINGERPRINT_KEY not in meta:
                continue
        location.delete(DATA_DIR, name)


def refuse_foreign_shards(location: Location, planned: set[str]) -> None:
    """InputError naming a file in ``data/`` that is named like a shard this build will not write and that no himbench
    build wrote (no fingerprint in its footer): deleting it would delete someone's data, and keeping it would mix it
    into this build's splits (every reader globs ``data/<split>-*.parquet``)."""
    for name in shard_files(location):
        if name in planned:
            continue  # replaced by this build's shard of that name, as --overwrite says
        try:
            _, meta, _ = read_footer(location, name)
        except Exception:  # unreadable: not provably ours
            meta = {}
        if FINGERPRINT_KEY not in meta:
            raise InputError(location.url_of(DATA_DIR, name), "is named like a shard but no himbench build wrote it; "
                                                              "a build here would mix it into its splits. Move it "
                                                              "away or choose another --out")
