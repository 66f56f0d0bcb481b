"""Options that several commands share, declared once: each is a decorator that adds the option to a command.

The name, type and default of a shared option are the same everywhere; only the help sentence may say what the
option does in that command (what the workers or Ray tasks process). The Ray cluster's address is ``--ray-address``
on the command line and ``ray_address`` in code, down to :func:`himbench.engines.map_tasks`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import click

from himbench.engines import ENGINES  # the standard library only: option modules stay light

__all__ = [
    "PathOrURL",
    "given_on_command_line",
    "device_option",
    "engine_option",
    "no_progress_option",
    "ray_address_option",
    "staged",
    "storage_options_option",
    "threads_option",
    "workers_option",
]

F = TypeVar("F", bound=Callable)


def given_on_command_line(ctx: click.Context, name: str) -> bool:
    """Whether option ``name`` was typed on the command line (not its default, nor a preset's value)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def engine_option(ray_does: str) -> Callable[[F], F]:
    """``--engine local|ray``; ``ray_does`` says what the Ray engine runs as tasks (e.g. "score images as Ray
    tasks")."""
    return click.option(
        "--engine",
        type=click.Choice(list(ENGINES)),
        default="local",
        show_default=True,
        help=f"local: a process pool on this machine. ray: {ray_does} (pip install himbench[ray]).",
    )


def ray_address_option() -> Callable[[F], F]:
    """``--ray-address`` (the ``ray_address`` parameter): the Ray cluster of ``--engine ray``."""
    return click.option(
        "--ray-address",
        "ray_address",
        default=None,
        help="Ray cluster address (default: start a local Ray with --workers CPUs).",
    )


def workers_option(help: str, short: bool = False) -> Callable[[F], F]:
    """``--workers`` (``-j`` when ``short``): worker processes, at least 1; default None (all cores)."""
    names = ("--workers", "-j") if short else ("--workers",)
    return click.option(*names, "workers", type=click.IntRange(min=1), default=None, help=help)


def device_option(default: str = "auto", help: str = "auto, cpu, cuda or cuda:N.") -> Callable[[F], F]:
    """``--device`` (a torch device name, or ``auto``: cuda when available)."""
    return click.option("--device", default=default, show_default=True, help=help)


def threads_option(help: str = "CPU threads for torch.") -> Callable[[F], F]:
    """``--threads``: torch CPU threads, at least 1; default None (torch's choice)."""
    return click.option("--threads", type=click.IntRange(min=1), default=None, help=help)


def no_progress_option(help: str = "Hide the progress bar.") -> Callable[[F], F]:
    """``--no-progress``: no progress bar on the terminal."""
    return click.option("--no-progress", is_flag=True, help=help)


_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class PathOrURL(click.Path):
    """A local path (checked as click.Path does) or an fsspec URL such as ``s3://bucket/prefix``, passed on as a
    string unchecked: the storage library checks it when it is read (see docs/storage.md)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and _URL.match(value) and not value.lower().startswith("file://"):
            return value
        return super().convert(value, param, ctx)


def _parse_storage_options(ctx: click.Context, param: click.Parameter, value: str | None) -> dict:
    from himbench.io import InputError
    from himbench.io.storage import parse_storage_options

    try:
        return parse_storage_options(value)
    except InputError as err:
        raise click.BadParameter(err.problem, ctx=ctx, param=param) from None


def storage_options_option() -> Callable[[F], F]:
    """``--storage-options JSON`` (the ``storage_options`` parameter, parsed to a dict): fsspec options of the URLs
    the command reads or writes (credentials, ``endpoint_url``...); a value that is not a JSON object exits 2."""
    return click.option(
        "--storage-options",
        "storage_options",
        default=None,
        metavar="JSON",
        callback=_parse_storage_options,
        help="fsspec storage options for s3:// (or other URL) paths, as a JSON object, e.g. "
        "'{\"endpoint_url\": \"http://127.0.0.1:9000\"}'. Credentials also come from the usual environment and "
        "config files. See docs/storage.md.",
    )


def staged(value, storage_options: dict | None, path_type: type | None = None):
    """``value`` when local; for a URL, the local folder it is staged into (``himbench.io.storage.stage``)."""
    if value is None or not (isinstance(value, str) and _URL.match(value)):
        return value
    from himbench.io.storage import stage

    local = stage(value, storage_options)
    return local if path_type is None else path_type(local)
