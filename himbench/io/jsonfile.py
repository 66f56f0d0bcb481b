"""Bounded JSON reading: a file over a size limit is refused before it is read, and nesting is limited, so a
``scores.json`` nested 200,000 levels deep is an :class:`InputError`, not a ``RecursionError`` traceback."""

from __future__ import annotations

import json
import os
from typing import Any

from himbench.io.images import InputError, read_file_bytes

__all__ = ["DEFAULT_MAX_JSON_BYTES", "DEFAULT_MAX_JSON_DEPTH", "parse_json", "read_json"]

DEFAULT_MAX_JSON_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 64


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_json(text: str | bytes, source: str | os.PathLike = "<json>", max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with every failure (syntax, encoding, nesting deeper than ``max_depth``) as InputError."""
    try:
        value = json.loads(text)
    except RecursionError as err:
        raise InputError(source, f"JSON nested too deeply (limit {max_depth} levels)") from err
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise InputError(source, f"not valid JSON ({err})") from err
    if _depth(value) > max_depth:
        raise InputError(source, f"JSON nested too deeply (limit {max_depth} levels)")
    return value


def read_json(
    path: str | os.PathLike,
    max_bytes: int = DEFAULT_MAX_JSON_BYTES,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
) -> Any:
    """Parse a JSON file of at most ``max_bytes`` bytes and ``max_depth`` levels; raises InputError naming it."""
    return parse_json(read_file_bytes(path, max_bytes), str(path), max_depth)
