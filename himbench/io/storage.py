"""Where a dataset lives: a local folder or an fsspec URL (``s3://bucket/prefix``, ``gs://``, ``memory://``).

A :class:`Location` is a URL plus its storage options (credentials, endpoint), both plain data: it pickles, so a
worker on another machine receives the location, never a path on the driver's disk. Its operations give what the
local folder gives:

- :meth:`Location.put_file` / :meth:`Location.put_bytes`: atomic. An object store has no rename; an object appears
  whole or not at all when it is sent in one put of a finished local file, which is what these do (a local
  location writes a temporary file and renames it, as :mod:`himbench.io.atomic`).
- :meth:`Location.create`: create-if-absent, the base of the build lock's lease (:func:`lease_lock`). S3 does it
  with a conditional put (``If-None-Match: *``, s3fs ``mode="create"``); ``memory://`` in-process. A store that
  cannot do it is refused with :class:`InputError` (a lock that two builds can both take is no lock).
- :meth:`Location.replace_if` / :meth:`Location.delete_if`: a put or delete that happens only while the object still
  has a given ETag (S3 ``If-Match``), so the lease is renewed, taken over and released only by the build that holds
  it (:meth:`Location.conditional_writes` says whether the store honours it).
- names below the location are checked with :func:`~himbench.io.paths.safe_name`: ids are never paths.

Readers that need a local folder (evaluation, bench, export, push-to-hub) copy a remote folder into a cache with
:func:`stage` (``$HIMBENCH_STORAGE_CACHE``, default ``~/.cache/himbench/storage/<hash of the URL>``) and read that.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from himbench.io.atomic import atomic_write_bytes
from himbench.io.images import InputError
from himbench.io.paths import safe_name

__all__ = [
    "CLAIM_S",
    "CREATE_PROTOCOLS",
    "DEFAULT_LEASE_S",
    "Lease",
    "Location",
    "is_claim",
    "is_url",
    "lease_lock",
    "parse_storage_options",
    "stage",
    "stage_cache_dir",
    "stage_listing",
    "take_over_stale",
]

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$")
# Stores where Location.create is atomic (a conditional put, or one process's memory).
CREATE_PROTOCOLS = frozenset({"s3", "s3a", "memory"})
DEFAULT_LEASE_S = 600.0  # a lock object's lifetime; the holder renews it every third of this
CLAIM_S = 60.0  # a takeover claim's lifetime: a takeover takes a read and a delete
_CLAIM = ".takeover-"  # <lock name>.takeover-<digest of the stale lock's bytes>: who may remove that lock
_PROBE = ".probe-"  # <lock name>.probe-<random>: the object that tests whether the store honours If-Match
_IF_MATCH_PROTOCOLS = frozenset({"s3", "s3a"})
_conditional: dict[tuple[str, str], bool] = {}  # (bucket URL, options): does the store honour If-Match?
MAX_STAGE_BYTES = 64 << 30  # a remote folder staged for reading: at most this much in all ...
MAX_STAGE_FILE_BYTES = 8 << 30  # ... and per file (override with $HIMBENCH_MAX_STAGE_BYTES)


def is_url(text: object) -> bool:
    """True for ``protocol://...`` other than ``file://`` (a local path written as a URL)."""
    match = _URL.match(str(text)) if isinstance(text, (str, os.PathLike)) else None
    return bool(match) and match.group(1).lower() not in ("file", "local")


def parse_storage_options(text: str | None, source: str = "--storage-options") -> dict:
    """``text`` (JSON) as a dict of storage options; {} for None/empty. Anything but a JSON object with string keys
    is an :class:`InputError` naming ``source`` and the problem."""
    if text is None or not str(text).strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as err:
        raise InputError(source, f"is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise InputError(source, f"must be a JSON object such as '{{\"anon\": false}}', got {type(value).__name__}")
    return value


def _filesystem(protocol: str, options_json: str):
    # fsspec caches instances itself, per process (a forked worker gets its own, not the parent's event loop).
    import fsspec

    try:
        return fsspec.filesystem(protocol, **json.loads(options_json))
    except (ImportError, ValueError) as err:
        extra = " (pip install himbench[s3])" if protocol in ("s3", "s3a") else ""
        raise InputError(f"{protocol}://", f"cannot open this storage{extra}: {err}") from None
    except TypeError as err:
        raise InputError("--storage-options", f"not accepted by the {protocol}:// filesystem: {err}") from None


@dataclass(frozen=True)
class Location:
    """A folder: ``url`` (``s3://bucket/prefix`` or a local path) and ``options_json`` (storage options as JSON)."""

    url: str
    options_json: str = "{}"

    @classmethod
    def parse(cls, text: str | os.PathLike, options: dict | None = None) -> Location:
        text = os.fspath(text)
        match = _URL.match(text)
        if match and match.group(1).lower() in ("file", "local"):
            text = match.group(2)
        if not is_url(text):
            return cls(str(Path(text)), json.dumps(options or {}, sort_keys=True))
        return cls(text.rstrip("/"), json.dumps(options or {}, sort_keys=True))

    @property
    def is_local(self) -> bool:
        return not is_url(self.url)

    @property
    def protocol(self) -> str:
        return _URL.match(self.url).group(1).lower() if not self.is_local else "file"

    @property
    def options(self) -> dict:
        return json.loads(self.options_json)

    @property
    def fs(self):
        if self.is_local:
            from fsspec.implementations.local import LocalFileSystem

            return LocalFileSystem()
        return _filesystem(self.protocol, self.options_json)

    @property
    def root(self) -> str:
        """The folder as the filesystem names it (no protocol)."""
        return str(Path(self.url).absolute()) if self.is_local else self.fs._strip_protocol(self.url).rstrip("/")

    def path(self, *names: str) -> str:
        """The filesystem path of ``names`` below the folder, each checked with safe_name."""
        parts = [safe_name(name, f"{self.url}/{name}") for name in names]
        return "/".join([self.root, *parts])

    def url_of(self, *names: str) -> str:
        if self.is_local:
            return str(Path(self.url, *names))
        return "/".join([self.url, *[safe_name(n, f"{self.url}/{n}") for n in names]])

    def exists(self, *names: str) -> bool:
        self._fresh(*names)
        return self.fs.isfile(self.path(*names))

    def _fresh(self, *names: str) -> None:
        # Workers in other processes write here: a listing cached by this process's filesystem may be stale.
        if not self.is_local:
            self.fs.invalidate_cache(self.path(*names))

    def read_bytes(self, *names: str, max_bytes: int = 256 << 20) -> bytes:
        """The object's bytes; InputError when larger than ``max_bytes`` (checked before reading)."""
        info = self.info(*names)
        if info["size"] > max_bytes:
            raise InputError(self.url_of(*names), f"is {info['size']} bytes, over the {max_bytes}-byte limit")
        return self.fs.cat_file(self.path(*names))

    def info(self, *names: str) -> dict:
        """``size``, ``mtime`` (seconds, or None) and ``etag`` (or None) of a file; FileNotFoundError if absent."""
        self._fresh(*names)
        raw = self.fs.info(self.path(*names))
        mtime = raw.get("LastModified") or raw.get("mtime") or raw.get("created")
        if hasattr(mtime, "timestamp"):
            mtime = mtime.timestamp()
        etag = raw.get("ETag") or raw.get("etag")
        return {"size": int(raw.get("size") or 0), "mtime": mtime, "etag": etag.strip('"') if etag else None}

    def list(self, *names: str) -> list[str]:
        """Names of the plain files directly in the folder (or its sub-folder ``names``), sorted; [] if absent."""
        self._fresh(*names)
        try:
            entries = self.fs.ls(self.path(*names), detail=True)
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            if entry.get("type") != "file" or entry.get("islink"):
                continue
            name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
            found.append(name)
        return sorted(found)

    def list_dirs(self) -> list[str]:
        self._fresh()
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return []
        return sorted(str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory")

    def delete(self, *names: str) -> None:
        """Remove one file (absent: nothing to do). Callers delete only names a build writes."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(*names))

    def put_file(self, local: str | os.PathLike, *names: str) -> None:
        """Copy a finished local file to ``names`` atomically (one put; a local rename)."""
        if self.is_local:
            target = Path(self.path(*names))
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            try:
                self.fs.cp_file(os.fspath(local), tmp)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return
        self.fs.put_file(os.fspath(local), self.path(*names))
        self.fs.invalidate_cache()

    def put_bytes(self, data: bytes, *names: str) -> None:
        if self.is_local:
            atomic_write_bytes(self.path(*names), data)
            return
        self.fs.pipe_file(self.path(*names), data)  # one put of the whole object
        self.fs.invalidate_cache()

    def create(self, data: bytes, *names: str) -> bool:
        """Write ``names`` only if absent, atomically; False when it exists. InputError where the store cannot."""
        if self.is_local:
            path = Path(self.path(*names))
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return True
        if self.protocol not in CREATE_PROTOCOLS:
            raise InputError(self.url, f"{self.protocol}:// cannot create an object only if it is absent here, so "
                                       "a build lock cannot be held; build to s3:// or a local folder")
        try:
            self.fs.pipe_file(self.path(*names), data, mode="create")
        except FileExistsError:
            return False
        except OSError as err:  # s3fs maps 412 Precondition Failed to EINVAL outside mode="create"
            if "Precondition" in str(err) or "412" in str(err):
                return False
            raise
        finally:
            self.fs.invalidate_cache()
        return True

    def _s3_call(self, method: str, *names: str, **kwargs) -> dict:
        bucket, key, _ = self.fs.split_path(self.path(*names))
        try:
            return self.fs.call_s3(method, Bucket=bucket, Key=key, **kwargs)
        finally:
            self.fs.invalidate_cache()

    def replace_if(self, data: bytes, etag: str, *names: str) -> str | None:
        """Put ``data`` at ``names`` only while that object has the ETag ``etag`` (S3 ``If-Match``), in one put.
        Returns the new object's ETag, or None when the object has another ETag or is absent (nothing written).
        Only where :meth:`conditional_writes` is True: a store that ignores ``If-Match`` would put unconditionally."""
        try:
            out = self._s3_call("put_object", *names, Body=data, IfMatch=f'"{etag}"')
        except FileNotFoundError:
            return None
        except OSError as err:
            if _precondition_failed(err):
                return None
            raise
        return str(out.get("ETag") or "").strip('"')

    def delete_if(self, etag: str, *names: str) -> bool:
        """Delete ``names`` only while it has the ETag ``etag`` (S3 ``If-Match``); False when it has another or is
        absent. Only where :meth:`conditional_writes` is True."""
        try:
            self._s3_call("delete_object", *names, IfMatch=f'"{etag}"')
        except FileNotFoundError:
            return False
        except OSError as err:
            if _precondition_failed(err):
                return False
            raise
        return True

    def conditional_writes(self, probe: str) -> bool:
        """Whether the store honours ``If-Match`` on puts (S3 since 2024, moto 5.x, MinIO). Asked once per bucket
        and options in a process, with a put of ``probe`` (a new name) on condition of an ETag no object has: a
        store that honours it refuses (404 or 412) and writes nothing; one that ignores it writes the object,
        which is deleted again (it is ours) and the answer is False; one that rejects the header also gives False."""
        if self.protocol not in _IF_MATCH_PROTOCOLS:
            return False
        key = ("/".join(self.url.split("/")[:3]), self.options_json)
        if key not in _conditional:
            try:
                self._s3_call("put_object", probe, Body=b"", IfMatch='"' + "0" * 32 + '"')
            except FileNotFoundError:
                _conditional[key] = True
            except OSError as err:
                _conditional[key] = _precondition_failed(err)
            else:
                self.delete(probe)
                _conditional[key] = False
        return _conditional[key]


def _precondition_failed(err: BaseException) -> bool:
    """True when ``err`` (s3fs's translation of a botocore error) is S3's 412 Precondition Failed."""
    response = getattr(err.__cause__, "response", None) or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    code = (response.get("Error") or {}).get("Code")
    if status == 412 or code == "PreconditionFailed":
        return True
    text = str(err).lower()
    return "precondition" in text or "pre-condition" in text


def _read_lease(location: Location, name: str) -> dict | None:
    raw = _read_raw_lease(location, name)
    return None if raw is None else _parse_lease(raw)


def _read_raw_lease(location: Location, name: str) -> bytes | None:
    try:
        return location.read_bytes(name, max_bytes=1 << 16)
    except FileNotFoundError:
        return None
    except InputError:  # over the size limit: not a lease this module wrote
        return b""


def _parse_lease(raw: bytes) -> dict:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def is_claim(entry: str, name: str) -> bool:
    """True when ``entry`` is a takeover claim of the lock ``name`` (:func:`take_over_stale`) or its If-Match probe
    (:meth:`Location.conditional_writes`): objects of the lock, not of someone else."""
    return entry.startswith(name + _CLAIM) or entry.startswith(name + _PROBE)


def take_over_stale(location: Location, name: str, stale: bytes) -> None:
    """Remove the stale lock object ``name`` if it still holds ``stale``, as the one taker of that very lock.

    Two builds that both read the same stale lock must not both delete-and-create: the second would delete the lock
    the first just took. So a taker first creates (only if absent) a claim object named after the stale lock's
    digest; only the build that creates it may delete the lock, and only while the lock still holds those bytes (a
    lock taken meanwhile holds other bytes and stays). Losers retry and meet the new holder. A claim left by a taker
    that died mid-takeover expires after :data:`CLAIM_S` and is then removed by the next taker."""
    claim = f"{name}{_CLAIM}{hashlib.sha256(stale).hexdigest()[:16]}"
    if not location.create(json.dumps({"expires": time.time() + CLAIM_S}).encode(), claim):
        raw = _read_raw_lease(location, claim)
        expires = _parse_lease(raw).get("expires") if raw else None
        if raw is not None and not (isinstance(expires, (int, float)) and expires > time.time()):
            if _read_raw_lease(location, claim) == raw:
                location.delete(claim)  # its taker died; the caller retries
        return  # another build is taking this lock over
    try:
        if _read_raw_lease(location, name) == stale:
            location.delete(name)
    finally:
        location.delete(claim)


class Lease(dict):
    """The holder's record of a lease (``owner``, ``host``, ``pid``), yielded by :func:`lease_lock`."""

    def __init__(self, owner: dict, location: Location, name: str) -> None:
        super().__init__(owner)
        self.location, self.name = location, name
        self.lost: str | None = None  # why the lease is no longer ours, once it is not
        self.expires = 0.0  # the expiry this holder last wrote

    def check(self) -> None:
        """Raise :class:`InputError` naming the lock when the lease is no longer this build's: another build took
        it over (its renewal was refused), or it expired unrenewed. A build calls this before each write."""
        if self.lost is None and time.time() >= self.expires:
            self.lost = "it expired before it could be renewed"
        if self.lost is not None:
            raise InputError(self.location.url, f"lost the build lock {self.location.url_of(self.name)} "
                                                f"({self.lost}); stopped before writing more. Is another build "
                                                "writing here? Run again once it has finished")


@contextlib.contextmanager
def lease_lock(location: Location, name: str, lease_s: float = DEFAULT_LEASE_S) -> Iterator[Lease]:
    """Hold the lock object ``name`` in ``location``: created only if absent, holding an owner id and an expiry
    ``lease_s`` ahead, renewed by a thread while held. A lock whose expiry has passed (its build died) is taken
    over by one build only; a live one is an :class:`InputError` naming its holder. Released (deleted if still
    ours) at the end. Yields a :class:`Lease`: call its ``check()`` before each write.

    Where the store honours ``If-Match`` (:meth:`Location.conditional_writes`), every later write is keyed on the
    ETag of the lock as last read or written: a takeover replaces the stale lock in one put on condition of its
    ETag (of two takers exactly one succeeds), a renewal puts on condition of the ETag this holder wrote (so a
    holder that stalled past its lease and wakes up after a takeover is refused, and ``check()`` then raises), and
    the release deletes on that condition. Elsewhere (``memory://``, a store that ignores ``If-Match``) the
    takeover goes through a claim object (:func:`take_over_stale`) and a renewal is a read, then a put."""
    lease = Lease({"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}, location, name)
    owner = {key: lease[key] for key in ("owner", "host", "pid")}
    conditional = location.conditional_writes(f"{name}{_PROBE}{owner['owner']}")
    etag: str | None = None  # the lock's ETag as this holder wrote it (conditional stores)

    pending = [0.0]  # the expiry in the payload last made; the lease's own once that payload is written

    def payload() -> bytes:
        pending[0] = time.time() + lease_s
        return json.dumps({**owner, "expires": pending[0]}).encode() + b"\n"

    for _ in range(3):
        if location.create(payload(), name):
            if conditional:
                with contextlib.suppress(FileNotFoundError):
                    etag = location.info(name)["etag"]
            break
        # ETag first, then bytes: a takeover keyed on this ETag can only replace the very object judged stale.
        try:
            seen = location.info(name)["etag"] if conditional else None
        except FileNotFoundError:
            continue  # released meanwhile
        raw = _read_raw_lease(location, name)
        if raw is None:
            continue  # released meanwhile
        held = _parse_lease(raw)
        expires = held.get("expires")
        if isinstance(expires, (int, float)) and expires > time.time():
            left = int(expires - time.time())
            raise InputError(location.url, f"another build (pid {held.get('pid')} on {held.get('host')}) holds "
                                           f"{location.url_of(name)}, lease valid {left} s more; wait for it, or "
                                           "delete that object if no build is running")
        # Stale (expired or unreadable): its build died, or stalled past its lease.
        if conditional and seen:
            etag = location.replace_if(payload(), seen, name)
            if etag is not None:
                break  # ours: the stale lock was replaced in one put; losers retry and meet this lease
        else:
            take_over_stale(location, name, raw)
    else:
        raise InputError(location.url, f"could not take the build lock {location.url_of(name)}; another build?")
    # Belt and braces: the object must be ours.
    if (_read_lease(location, name) or {}).get("owner") != owner["owner"]:
        raise InputError(location.url, f"another build took the build lock {location.url_of(name)} first")
    lease.expires = pending[0]
    stop = threading.Event()

    def renew() -> None:
        nonlocal etag
        while not stop.wait(lease_s / 3):
            try:
                if conditional and etag:
                    etag = location.replace_if(payload(), etag, name)
                    if etag is None:
                        lease.lost = "another build took it over; this build's renewal was refused"
                        return
                    lease.expires = pending[0]
                elif (_read_lease(location, name) or {}).get("owner") == owner["owner"]:
                    location.put_bytes(payload(), name)
                    lease.expires = pending[0]
                else:
                    lease.lost = "another build took it over"
                    return
            except OSError:
                continue  # a passing network error: try again next time (check() refuses once it expires)

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join()
        if conditional and etag:
            location.delete_if(etag, name)  # only while it is still the lock this build wrote
        elif (_read_lease(location, name) or {}).get("owner") == owner["owner"]:
            location.delete(name)


def _fetch_capped(fs, key: str, local: str, size: int, url: str) -> None:
    """Copy object ``key`` into the file ``local``, reading at most ``size + 1`` bytes: the listed size is the cap
    (checked against the staging limits), so an object that is larger than its listing said is refused after one
    extra byte, not downloaded whole."""
    got = 0
    with fs.open(key, "rb") as source, open(local, "wb") as target:
        while got <= size:
            chunk = source.read(min(1 << 20, size + 1 - got))
            if not chunk:
                break
            got += len(chunk)
            target.write(chunk)
    if got != size:
        raise InputError(url, f"changed while it was being copied (listed {size} bytes); try again")


def stage_cache_dir(url: str) -> Path:
    """The cache folder of ``url`` for :func:`stage`: ``$HIMBENCH_STORAGE_CACHE`` (default
    ``~/.cache/himbench/storage``) / first 16 hex digits of the URL's SHA-256; the files go to its sub-folder named
    as the URL's last part."""
    base = Path(os.environ.get("HIMBENCH_STORAGE_CACHE") or Path.home() / ".cache" / "himbench" / "storage")
    return base.expanduser() / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def _stage_limits() -> tuple[int, int]:
    total = int(os.environ.get("HIMBENCH_MAX_STAGE_BYTES") or MAX_STAGE_BYTES)
    return total, min(total, MAX_STAGE_FILE_BYTES)


def stage(text: str | os.PathLike, options: dict | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local folder of :func:`stage_listing` (``text`` itself when local)."""
    if not is_url(text):
        return Path(Location.parse(text).url)
    return stage_listing(text, options, cache_dir)[0]


@contextlib.contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache folder ``cache`` (a lock file in it): processes of one machine that stage
    the same URL at once (a build's workers) take turns, so none reads a file another is replacing or removing."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".himbench-stage.lock", "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): one process per cache there
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def stage_listing(text: str | os.PathLike, options: dict | None = None, cache_dir: str | os.PathLike | None = None,
                  expect: Callable[[dict[str, dict]], None] | None = None) -> tuple[Path, dict[str, dict]]:
    """The remote folder ``text`` staged (:func:`stage`, under a lock on its cache folder) and the listing it was
    staged from: ``{relative posix name: {"size", "tag"}}`` (tag: the ETag, else the modification time).
    ``expect(listing)`` is called once the listing passed its checks and before anything is written; what it raises
    leaves the cache as it was (a worker that finds the source changed must not change the copy others read)."""
    location = Location.parse(text, options)
    if location.is_local:
        raise InputError(location.url, "is a local folder, not a URL to stage")
    cache = Path(cache_dir) if cache_dir is not None else stage_cache_dir(location.url)
    return _stage(location, cache, expect)


def _stage(location: Location, cache: Path, expect: Callable | None = None) -> tuple[Path, dict[str, dict]]:
    """A copy of the remote folder ``location`` in ``cache`` (files whose size and ETag/mtime are unchanged are not
    fetched again; files the remote no longer has are removed from the cache). Every relative name is checked with
    safe_name, sizes are checked before any byte is fetched, and nothing is written outside the cache folder."""
    fs = location.fs
    root = location.root
    fs.invalidate_cache(root)
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        found = {}
    if not found:
        raise InputError(location.url, "holds no files (or cannot be listed with these storage options)")
    total_cap, file_cap = _stage_limits()
    files: dict[tuple[str, ...], dict] = {}
    keys: dict[tuple[str, ...], str] = {}  # the object each staged file is fetched from, as listed
    for name, info in sorted(found.items()):
        if info.get("type") != "file":
            continue
        name = str(name)
        if not name.startswith(root + "/"):
            raise InputError(location.url, f"listed {name!r}, which is not below the folder; refusing to stage it")
        rel = name[len(root) + 1:]
        size = int(info.get("size") or 0)
        if rel.endswith("/"):
            if size == 0:
                continue  # an empty "folder marker" object (consoles make them): no file
            raise InputError(f"{location.url}/{rel}", "is an object whose name ends in '/'; it cannot be a file")
        parts = tuple(safe_name(part, f"{location.url}/{rel}") for part in rel.split("/"))
        if size > file_cap:
            raise InputError(f"{location.url}/{rel}", f"is {size} bytes, over the {file_cap}-byte staging limit")
        files[parts] = {"size": size, "tag": str(info.get("ETag") or info.get("LastModified") or info.get("mtime"))}
        keys[parts] = name
    folders = {parts[:k] for parts in files for k in range(1, len(parts))}
    for parts in files:
        if parts in folders:  # "a" and "a/b" both exist on a store; a folder cannot be both
            raise InputError(f"{location.url}/{'/'.join(parts)}", "is both an object and a folder of objects; "
                                                                  "it cannot be staged as a local folder")
    if sum(f["size"] for f in files.values()) > total_cap:
        raise InputError(location.url, f"holds more than {total_cap} bytes, over the staging limit "
                                       "($HIMBENCH_MAX_STAGE_BYTES)")
    if expect is not None:
        expect({"/".join(parts): meta for parts, meta in sorted(files.items())})
    with _cache_lock(cache):  # made here, after every check: a refused listing leaves no folder
        return _write_stage(location, cache, files, keys)


def _write_stage(location: Location, cache: Path, files: dict, keys: dict) -> tuple[Path, dict[str, dict]]:
    """Fetch ``files`` (listed, checked) into ``cache``, holding its lock."""
    fs = location.fs
    manifest_path = cache / ".himbench-stage.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    except ValueError:
        manifest = {}
    if not isinstance(manifest, dict):
        manifest = {}
    # Every name about to be fetched is recorded first, with no metadata (so it is fetched again next time): a copy
    # that dies half-way leaves no file the manifest does not know, so a later stage removes what the remote dropped.
    manifest = {**manifest, **{"/".join(p): {} for p, meta in files.items() if manifest.get("/".join(p)) != meta}}
    atomic_write_bytes(manifest_path, json.dumps(manifest, sort_keys=True).encode())
    # The folder keeps the URL's last name (bench and evaluate name results after it).
    data = cache / safe_name(location.url.rsplit("/", 1)[-1] or location.protocol, location.url, "folder name")
    new_manifest = {}
    for parts, meta in files.items():
        key = "/".join(parts)
        target = data.joinpath(*parts)
        if manifest.get(key) == meta and target.is_file() and not target.is_symlink() \
                and target.stat().st_size == meta["size"]:
            new_manifest[key] = meta
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{parts[-1]}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            _fetch_capped(fs, keys[parts], tmp, meta["size"], f"{location.url}/{key}")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        new_manifest[key] = meta
    # Files staged before that the remote folder no longer holds (the cache is ours: nothing else lives there).
    for key in set(manifest) - set(new_manifest):
        parts = str(key).split("/")
        if not all(part and part not in (".", "..") and "\\" not in part for part in parts):
            continue  # not a name this function wrote
        old = data.joinpath(*parts)
        if old.is_file() and not old.is_symlink():
            old.unlink()
    atomic_write_bytes(manifest_path, json.dumps(new_manifest, sort_keys=True).encode())
    return data, dict(sorted(new_manifest.items()))
