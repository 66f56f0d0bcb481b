"""Names that come from data (shard ids, split names, folder entries) are names, never paths.

A shard from the Hub or a submitted folder is untrusted: an ``id`` of ``../../x`` or ``/abs/dir`` used as a path
component would read or write outside the folder it belongs to. :func:`safe_name` refuses such names and
:func:`resolve_inside` asserts that a path built from them (symbolic links resolved) stays inside its root.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from himbench.io.images import InputError

__all__ = ["MAX_NAME_BYTES", "is_inside", "require_empty_folder", "resolve_inside", "safe_name", "sha256_file"]

MAX_NAME_BYTES = 200  # file systems allow 255; room is left for suffixes such as ".png" and temp-file names


def safe_name(text: object, source: str | os.PathLike = "<name>", what: str = "name") -> str:
    """``text`` when it is usable as one path component; else :class:`InputError` naming ``source``.

    Refused: non-strings, empty, ``.``/``..``, any ``/`` or ``\\``, NUL and other control characters, a Windows drive
    (``c:``), and names over :data:`MAX_NAME_BYTES` bytes in UTF-8.
    """
    if not isinstance(text, str):
        raise InputError(source, f"{what} must be a string, got {type(text).__name__}")
    problem = None
    if not text:
        problem = "is empty"
    elif text in (".", ".."):
        problem = "is a relative folder reference"
    elif "/" in text or "\\" in text:
        problem = "contains a path separator"
    elif any(ord(c) < 32 or ord(c) == 127 for c in text):
        problem = "contains a control character"
    elif len(text) >= 2 and text[1] == ":" and text[0].isalpha():
        problem = "starts with a drive letter"
    elif len(text.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        problem = f"is longer than {MAX_NAME_BYTES} bytes"
    if problem:
        raise InputError(source, f"{what} {text[:80]!r} {problem}; it must be a plain file name, not a path")
    return text


def is_inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """True when ``path``, with every symbolic link resolved, is ``root`` or lies under it (``root`` resolved too)."""
    root_resolved = Path(root).resolve()
    target = Path(path).resolve()
    return target == root_resolved or root_resolved in target.parents


def resolve_inside(root: str | os.PathLike, *parts: str) -> Path:
    """``root / part / ...`` after checking each part with :func:`safe_name` and that the result (symbolic links
    resolved) stays inside ``root``; raises :class:`InputError` otherwise. The returned path is not resolved, so
    messages show it as the user wrote it."""
    path = Path(root)
    for part in parts:
        path = path / safe_name(part, path / str(part))
    if not is_inside(root, path):
        raise InputError(path, f"resolves to {Path(path).resolve()}, outside {Path(root).resolve()}")
    return path


def require_empty_folder(path: str | os.PathLike, problem_if_not_empty: str) -> None:
    """Refuse ``path`` unless it is absent or an empty folder (outputs never mix with files someone else wrote);
    ``problem_if_not_empty`` is the message of the :class:`InputError` raised for a non-empty folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(path, "exists and is not a folder")
    if path.is_dir() and any(True for _ in os.scandir(path)):
        raise InputError(path, problem_if_not_empty)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20, opener: Callable[..., IO[bytes]] = open) -> str:
    """Hex SHA-256 of a file, read in chunks (checkpoints are hundreds of MB, shards tens). ``opener``: how to
    open ``path`` for reading bytes (an fsspec filesystem's ``open`` for an object in a store)."""
    import hashlib

    digest = hashlib.sha256()
    with opener(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
