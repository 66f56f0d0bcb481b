"""CSV cells that a spreadsheet will not run: the OWASP rule against formula (CSV) injection, and its inverse.

A spreadsheet opening a CSV treats a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
as a formula, so a method name, file name or problem message copied from a stranger's files could run one
(``=HYPERLINK(...)``, ``=cmd|...``). :func:`escape_cell` prefixes such a *text* cell with a single quote, which
spreadsheets show as text; numbers, negative ones included, are written unchanged (``-1.5``, ``-inf``, ``1e-05``).

So that himbench's own readers get back exactly what was written, a text cell that already begins with a quote
followed by a trigger or another quote gets one more quote too, and :func:`unescape_cell` removes exactly one
leading quote from a cell that begins with a quote followed by a trigger or a quote. ``unescape_cell(escape_cell(x))
== str(x)`` for every string ``x``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["FORMULA_TRIGGERS", "escape_cell", "escape_row", "unescape_cell", "unescape_row"]

FORMULA_TRIGGERS = frozenset("=+-@\t\r")
_QUOTE = "'"
# A plain decimal number, as str(float)/format() and hand-written CSVs spell it: left alone even when negative.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def escape_cell(value: Any) -> str:
    """``value`` as CSV cell text that no spreadsheet runs as a formula (see the module docstring)."""
    text = _text(value)
    if not text:
        return text
    first = text[0]
    if first in FORMULA_TRIGGERS and not _NUMBER.fullmatch(text):
        return _QUOTE + text
    if first == _QUOTE and len(text) > 1 and (text[1] in FORMULA_TRIGGERS or text[1] == _QUOTE):
        return _QUOTE + text  # keeps unescape_cell exact for text that itself starts with a quote
    return text


def unescape_cell(text: str) -> str:
    """The inverse of :func:`escape_cell` for text it wrote."""
    if len(text) > 1 and text[0] == _QUOTE and (text[1] in FORMULA_TRIGGERS or text[1] == _QUOTE):
        return text[1:]
    return text


def escape_row(row: Mapping[str, Any]) -> dict[str, str]:
    """:func:`escape_cell` on every value of ``row`` (keys unchanged: column names are himbench's own)."""
    return {key: escape_cell(value) for key, value in row.items()}


def unescape_row(row: Mapping[str, str]) -> dict[str, str]:
    """:func:`unescape_cell` on every value of ``row``."""
    return {key: unescape_cell(value) for key, value in row.items()}
