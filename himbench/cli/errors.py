"""The one user-error path of the command line: every input error ends as one line on stderr and exit status 2.

Library code raises :class:`himbench.io.InputError` (it names the file and the problem); commands let it propagate.
:class:`Command` (the class of every himbench command) and the ``himbench`` group turn it into a :class:`UserError`,
so an InputError ends the same way whether a command runs under ``himbench`` or is invoked on its own (tests).
A command raises :class:`UserError` itself for a bad input the library does not see (two options that conflict).
Click's own usage errors (a bad option value) already exit 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["Command", "UserError", "as_user_error", "invoke_mapping_input_errors"]


class UserError(click.ClickException):
    """A bad argument, input file or output folder: one line on stderr (``Error: <message>``), exit status 2."""

    exit_code = 2


def as_user_error(err: BaseException) -> UserError | None:
    """The :class:`UserError` an input error ends as, or None for any other exception (a bug keeps its traceback)."""
    if not isinstance(err, ValueError):  # InputError is a ValueError; checked first so nothing is imported here
        return None
    from himbench.io import InputError  # already loaded: the error came from it (and `--help` stays light)

    return UserError(str(err)) if isinstance(err, InputError) else None


def invoke_mapping_input_errors(invoke: Callable[[click.Context], Any], ctx: click.Context) -> Any:
    """``invoke(ctx)``, with an input error raised as its :class:`UserError` (one line, exit 2); anything else keeps
    its traceback."""
    try:
        return invoke(ctx)
    except ValueError as err:
        user_error = as_user_error(err)
        if user_error is None:
            raise
        raise user_error from err


class Command(click.Command):
    """A click command whose :class:`~himbench.io.InputError` ends as a :class:`UserError` (exit 2)."""

    def invoke(self, ctx: click.Context) -> Any:
        return invoke_mapping_input_errors(super().invoke, ctx)
