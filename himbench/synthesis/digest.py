"""What a build's source folders held when it started, so that a resume can prove it draws from the same files.

The build config names source folders by path; their contents can change between an interrupted run and its resume
(an image added to ``--bg``), and shards kept from the first run would then mix with shards made from other files.
Each ``--fg``/``--bg`` folder is recorded as a listing of its image files: relative name, size and modification time
in nanoseconds (a stat per file, no reading). ``"embedded"`` sources need no listing: they are versioned by the code
(``ENGINE_VERSION`` in the fingerprint). A URL source (``s3://bucket/people``) is recorded by its URL with the listing
it was staged from: relative name, size and ETag (else the object's modification time).

The listing covers every image file under the folder, recursively (a superset of what a foreground scan reads), so a
change anywhere among them refuses a resume; a file touched without change (``touch``, a copy that resets times)
refuses it too, which errs on the safe side.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from himbench.build_config import BuildConfig
from himbench.io import IMAGE_SUFFIXES

__all__ = ["SOURCES_RECORD_VERSION", "compare_listings", "folder_listing", "listing_digest", "source_listings",
           "url_listing"]

SOURCES_RECORD_VERSION = 1
_SHOWN = 3  # file names quoted per kind of change in a message


def folder_listing(folder: str | os.PathLike) -> dict[str, list[int]]:
    """``{relative posix name: [size, mtime_ns]}`` of the image files under ``folder`` (recursive, sorted)."""
    root = Path(folder)
    listing = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            stat = path.stat()  # follows a file link: what the build reads is the target
        except OSError:  # a dangling link or a file removed while listing: not a source the build can read
            continue
        if path.is_file():
            listing[path.relative_to(root).as_posix()] = [int(stat.st_size), int(stat.st_mtime_ns)]
    return listing


def listing_digest(listing: dict[str, list]) -> str:
    """A short digest of a listing (:func:`folder_listing` or :func:`url_listing`)."""
    return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:16]


def url_listing(staged: dict[str, dict]) -> dict[str, list]:
    """``{relative posix name: [size, ETag or modification time]}`` of the image files of a URL source, from the
    listing it was staged from (:func:`himbench.io.storage.stage_listing`)."""
    return {name: [int(meta["size"]), str(meta["tag"])] for name, meta in sorted(staged.items())
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES}


def source_listings(config: BuildConfig, remote: dict[str, dict] | None = None) -> dict:
    """The record of ``config``'s source folders: ``{"version", "sources": [{role, spec, digest, files}]}``.
    ``remote``: the listing of each URL source (:func:`url_listing`); a local folder is listed here."""
    sources = []
    for role, specs in (("fg", config.fg_sources), ("bg", config.bg_sources)):
        for spec in dict.fromkeys(specs):
            if spec == "embedded":
                continue
            files = (remote or {}).get(spec)
            if files is None:
                files = folder_listing(spec)
            sources.append({"role": role, "spec": spec, "digest": listing_digest(files), "files": files})
    return {"version": SOURCES_RECORD_VERSION, "sources": sources}


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _change(old: dict, new: dict) -> str:
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(name for name in set(old) & set(new) if list(old[name]) != list(new[name]))
    parts = []
    for names, what in ((added, "added"), (removed, "removed"), (changed, "changed (size or time)")):
        if names:
            parts.append(f"{len(names)} file{'s' if len(names) > 1 else ''} {what} ({_names(names)})")
    return ", ".join(parts)


def compare_listings(recorded: object, current: dict) -> list[str]:
    """What differs between the ``recorded`` listings (as read back from JSON) and the ``current`` ones, one line per
    changed source ("bg folder X: 1 file added (new.jpg)"); empty when they match. A record that is not one this
    module writes counts as a difference (the sources cannot be proven unchanged)."""
    if not isinstance(recorded, dict) or recorded.get("version") != SOURCES_RECORD_VERSION:
        folders = ", ".join(f"{source['role']} folder {source['spec']}" for source in current["sources"])
        return [f"no readable record of what its sources ({folders}) held when it started (a build by an older "
                "himbench, or a damaged record), so they cannot be proven unchanged"]
    old = {}
    for source in recorded.get("sources", []) if isinstance(recorded.get("sources"), list) else []:
        if isinstance(source, dict) and isinstance(source.get("files"), dict):
            old[(source.get("role"), source.get("spec"))] = source
    differences = []
    for source in current["sources"]:  # "changed since this build started: bg folder X: 1 file added (new.jpg)"
        key = (source["role"], source["spec"])
        where = f"changed since this build started: {source['role']} folder {source['spec']}"
        before = old.get(key)
        if before is None:
            differences.append(f"{where}: not in the record of the earlier run")
        elif before.get("digest") != source["digest"] or before["files"] != source["files"]:
            differences.append(f"{where}: {_change(before['files'], source['files']) or 'listing differs'}")
    return differences
