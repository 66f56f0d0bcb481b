"""Find the shell commands printed in README.md and check them against the real command line.

Used by ``tests/test_readme_commands.py``. Commands come from fenced shell blocks (continuation lines joined, ``&&``
chains split), from indented lines starting with ``himbench `` or ``python benchmarks/``, and (for option-name checks
only) from inline code spans. :func:`parse_himbench` parses a command with click's ``make_context`` on the real
``himbench`` group, so an unknown option, a renamed option or a missing required one fails exactly as it would for a
user; :func:`parse_benchmark` does the same for the argparse-based scripts in ``benchmarks/``.
"""

from __future__ import annotations

import argparse
import os
import re
import runpy
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import click

__all__ = [
    "ReadmeCommand",
    "code_blocks",
    "inline_spans",
    "option_names",
    "option_value",
    "parse_benchmark",
    "parse_himbench",
    "readme_commands",
    "resolve",
    "shell_commands",
]

SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
_OPERATORS = {"&&", "||", ";", "|", "&", "(", ")"}
_REDIRECTS = {">", ">>", "<", ">&", "<&"}
_INDENTED = re.compile(r"^(?: {4,}|\t)((?:himbench |python3? benchmarks/).*)$")


@dataclass(frozen=True)
class ReadmeCommand:
    """One command as the README prints it: where it starts, its code block, its text and its words."""

    line: int
    block: int  # README line of the opening fence; 0 for an indented line outside any block
    text: str
    argv: tuple[str, ...]

    @property
    def kind(self) -> str:
        """``himbench`` (a himbench sub-command), ``benchmark`` (a script in benchmarks/) or ``setup`` (anything
        else: venv, pip, apt-get, pytest)."""
        program = Path(self.argv[0]).name
        if program == "himbench":
            return "himbench"
        if program.startswith("python") and len(self.argv) > 1 and self.argv[1].startswith("benchmarks/"):
            return "benchmark"
        return "setup"

    @property
    def args(self) -> list[str]:
        """The words after the program name (for himbench: the sub-command and its arguments)."""
        return list(self.argv[1:])

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text}"


def code_blocks(markdown: str) -> Iterator[tuple[int, str, list[tuple[int, str]]]]:
    """Fenced blocks as (line of the opening fence, language, [(line, text)] of their lines)."""
    fence: tuple[int, str] | None = None
    body: list[tuple[int, str]] = []
    for number, line in enumerate(markdown.splitlines(), start=1):
        if line.startswith("```"):
            if fence is None:
                fence, body = (number, line[3:].strip().lower()), []
            else:
                yield fence[0], fence[1], body
                fence = None
        elif fence is not None:
            body.append((number, line))


def _logical_lines(lines: Sequence[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    # A trailing backslash continues the command on the next line, as in a shell.
    start, parts = 0, []
    for number, line in lines:
        if not parts:
            start = number
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        yield start, " ".join(part.strip() for part in parts)
        parts = []
    if parts:
        yield start, " ".join(part.strip() for part in parts)


def shell_commands(text: str) -> list[list[str]]:
    """The simple commands of one shell line: split at ``&&``, ``||``, ``;``, pipes and parentheses, with
    redirections and ``#`` comments dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    tokens = iter(lexer)
    for token in tokens:
        if token in _OPERATORS:
            commands.append([])
        elif token in _REDIRECTS:
            next(tokens, None)
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def readme_commands(path: Path) -> list[ReadmeCommand]:
    """Every command of the README's fenced shell blocks and indented command lines, in README order."""
    markdown = path.read_text(encoding="utf-8")
    found: list[ReadmeCommand] = []
    fenced: set[int] = set()
    for start, lang, lines in code_blocks(markdown):
        fenced.update(number for number, _ in lines)
        if lang not in SHELL_LANGS:
            continue
        for number, text in _logical_lines(lines):
            for argv in shell_commands(text):
                found.append(ReadmeCommand(number, start, shlex.join(argv), tuple(argv)))
    for number, line in enumerate(markdown.splitlines(), start=1):
        match = _INDENTED.match(line)
        if match and number not in fenced:
            for argv in shell_commands(match.group(1)):
                found.append(ReadmeCommand(number, 0, shlex.join(argv), tuple(argv)))
    return sorted(found, key=lambda command: command.line)


def inline_spans(markdown: str) -> list[tuple[int, str]]:
    """Inline code spans outside fenced blocks, as (line, text)."""
    fenced = {number for _, _, lines in code_blocks(markdown) for number, _ in lines}
    spans = []
    for number, line in enumerate(markdown.splitlines(), start=1):
        if number not in fenced and not line.startswith("```"):
            spans.extend((number, span) for span in re.findall(r"`([^`]+)`", line))
    return spans


def resolve(group: click.Group, args: Sequence[str]) -> tuple[click.Context, str, click.Command, list[str]]:
    """Parse ``args`` with the group as the console script does; returns (group context, sub-command name,
    sub-command, its arguments). A sub-command that does not exist is a click.UsageError."""
    ctx = group.make_context("himbench", list(args))
    name, command, rest = group.resolve_command(ctx, list(args))
    assert name is not None and command is not None
    return ctx, name, command, rest


def option_names(command: click.Command) -> set[str]:
    """Every spelling of every option of ``command`` (``--help`` included)."""
    ctx = click.Context(command)
    return {name for param in command.get_params(ctx) if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)}


def option_value(args: Sequence[str], *names: str) -> str | None:
    """The value given to the last of the options ``names`` in ``args`` (``--opt VALUE`` or ``--opt=VALUE``)."""
    value = None
    for i, word in enumerate(args):
        if word in names and i + 1 < len(args):
            value = args[i + 1]
        elif "=" in word and word.split("=", 1)[0] in names:
            value = word.split("=", 1)[1]
    return value


def parse_himbench(group: click.Group, args: Sequence[str], root: Path) -> dict:
    """Parse one himbench command line (without the program name) with click's ``make_context``, as a real run
    would; returns the sub-command's parameters. Paths that the command requires to exist are made as empty
    stand-ins under ``root`` (absolute README paths are moved under ``root`` first), so only the command line
    itself is judged. Raises click.UsageError (a subclass) for anything click would refuse."""
    args = [str(root / word.lstrip("/")) if word.startswith("/") else word for word in args]
    ctx, name, command, rest = resolve(group, args)
    with ctx:
        probe = click.Context(command, info_name=name, parent=ctx)
        raw, _, _ = command.make_parser(probe).parse_args(args=list(rest))
        for param in command.get_params(probe):
            kind = param.type
            if not (isinstance(kind, click.Path) and kind.exists) or raw.get(param.name) is None:
                continue
            values = raw[param.name] if isinstance(raw[param.name], (list, tuple)) else [raw[param.name]]
            for value in map(Path, values):
                target = value if value.is_absolute() else Path.cwd() / value
                if target.exists():
                    continue
                if kind.dir_okay and not (kind.file_okay and value.suffix):
                    target.mkdir(parents=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch()
        with command.make_context(name, list(rest), parent=ctx) as sub:
            return dict(sub.params)


class _Parsed(Exception):
    """Raised from inside a benchmark script right after its arguments were parsed, so nothing else runs."""


def parse_benchmark(repo: Path, argv: Sequence[str]) -> dict:
    """Run ``python benchmarks/X.py ARGS`` in this process only up to its ``ArgumentParser.parse_args`` call and
    return the parsed arguments; an unknown option or a bad value exits with argparse's usage error (SystemExit 2)."""
    script = repo / argv[1]
    if not script.is_file():
        raise FileNotFoundError(f"{argv[1]}: no such script in {repo}")
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    environment = dict(os.environ)  # some scripts set thread variables at import: keep them out of other tests
    try:
        with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop), \
                mock.patch.object(sys, "argv", [str(script), *argv[2:]]):
            runpy.run_path(str(script), run_name="__main__")
    except _Parsed as parsed:
        return vars(parsed.args[0])
    finally:
        os.environ.clear()
        os.environ.update(environment)
    raise AssertionError(f"{argv[1]} finished without calling ArgumentParser.parse_args")
