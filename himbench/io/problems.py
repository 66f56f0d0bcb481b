"""A bad input that is reported and left out while the rest of a run goes on.

:class:`himbench.io.InputError` stops what reads the file; a :class:`Problem` is the record of one such error (or any
other bad input) that a scoring run keeps, so that one bad file costs only itself. Ground truth, prediction folders
and data layouts all report through it.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Problem"]


class Problem(NamedTuple):
    """A bad input found during evaluation: the file (or folder) and what is wrong with it."""

    file: str
    message: str
