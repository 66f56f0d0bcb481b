"""Every command ends an input error the same way: one ``Error: <file>: <problem>`` line and exit status 2, no
traceback (himbench.cli.errors). Each case feeds one command one bad input that is refused before any real work."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from himbench.cli import COMMANDS, main
from himbench.io import InputError

BAD_CSV = "method,data,split,environment\na,d,s,e\nb,d,s,e,extra\n"  # line 3: one field too many


def _empty(tmp: Path, name: str = "empty") -> Path:
    folder = tmp / name
    folder.mkdir()
    return folder


def _file(tmp: Path, name: str, text: str = "not what it should be\n") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


# command -> (arguments made from tmp_path, text the one error line must hold: the file or value at fault)
CASES = {
    "demo": (lambda t: ["demo", "--out", str(_file(t, "a-file") / "demo"), "--images", "1", "--workers", "1"],
             "a-file"),
    "build-dataset": (lambda t: ["build-dataset", "--out", str(_file(t, "a-file") / "b"), "--splits", "test=1",
                                 "--size", "64", "--workers", "1", "--no-progress", "--no-fg-cache"], "a-file"),
    "export-him2k": (lambda t: ["export-him2k", str(_empty(t)), str(t / "out"), "--no-progress"], "empty"),
    "export-vhim": (lambda t: ["export-vhim", str(_empty(t)), str(t / "out")], "empty"),
    "evaluate": (lambda t: ["evaluate", str(_empty(t, "pred")), "--gt", str(_empty(t, "gt")), "--quiet",
                            "--out", str(t / "eval")], "gt"),
    "compare": (lambda t: ["compare", str(_empty(t, "eval-a")), str(_empty(t, "eval-b"))], "per_image.json"),
    "models": (lambda t: [], None),  # reads no input: a pattern that matches nothing lists nothing
    "train": (lambda t: ["train", "--data", str(_empty(t, "no-shards")), "--out", str(t / "run"), "--steps", "1"],
              "no-shards"),
    "import-checkpoint": (lambda t: ["import-checkpoint", str(_file(t, "w.ckpt")), str(t / "out"), "--model",
                                     "no-such-model"], "no-such-model"),
    "predict": (lambda t: ["predict", "--checkpoint", str(_file(t, "w.safetensors")), str(_empty(t, "images")),
                           "-o", str(t / "pred"), "--device", "cpu"], "w.safetensors"),
    "bench": (lambda t: ["bench", "-m", "mask-only", "--data", str(_empty(t, "data")), "--leaderboard",
                         str(_file(t, "results.csv", BAD_CSV)), "--out", str(t / "bench"), "--device", "cpu"],
              "results.csv:3:"),
    "leaderboard": (lambda t: ["leaderboard", "--csv", str(_file(t, "results.csv", BAD_CSV)), "--out",
                               str(t / "lb"), "--no-qualitative"], "results.csv:3:"),
    "push-to-hub": (lambda t: ["push-to-hub", str(t / "nothing"), "me/data", "--dry-run"], "nothing: not a folder"),
}


def test_every_command_has_a_case():
    assert set(CASES) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(n for n, (_, needle) in CASES.items() if needle is not None))
def test_an_input_error_is_one_line_and_exit_2(name, tmp_path):
    make_args, needle = CASES[name]
    result = CliRunner().invoke(main, make_args(tmp_path))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output
    assert "Usage:" not in result.output  # the command's own refusal, not one of click's option checks
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and needle in errors[0], result.output
    assert result.output.rstrip("\n").splitlines()[-1] == errors[0]  # the message is one line, and the last one


def test_a_command_maps_input_errors_on_its_own_too(tmp_path):
    from himbench.cli.export_him2k import command  # invoked without the himbench group, as tests and scripts do

    result = CliRunner().invoke(command, [str(_empty(tmp_path)), str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert result.output.startswith("Error: ") and "empty" in result.output


def _plugin_command(error: Exception) -> click.Command:
    @click.command("boom")  # a plain click command (not himbench's Command class), as a plugin might write
    def command() -> None:
        raise error

    return command


@pytest.mark.parametrize("error, exit_code", [(InputError("photo.jpg", "not a JPEG"), 2),
                                              (ValueError("a bug, not an input error"), 1)])
def test_the_group_maps_input_errors_of_any_command_and_nothing_else(monkeypatch, error, exit_code):
    module = types.ModuleType("himbench.cli._boom")
    module.command = _plugin_command(error)
    monkeypatch.setitem(sys.modules, "himbench.cli._boom", module)
    monkeypatch.setitem(COMMANDS, "boom", ("_boom", "raises"))
    result = CliRunner().invoke(main, ["boom"])
    assert result.exit_code == exit_code, result.output
    if exit_code == 2:
        assert result.output == "Error: photo.jpg: not a JPEG\n"
    else:
        assert result.exception is error  # a bug keeps its exception (and its traceback on a terminal)
