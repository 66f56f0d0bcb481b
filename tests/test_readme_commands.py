"""README commands work as printed (issue 12).

Every ``himbench`` command of README.md's shell blocks is parsed by click's ``make_context`` on the real command group,
so a renamed, misspelt or removed option, or a missing required one, fails here. Options and sub-commands named in
inline code (``himbench evaluate --engine ray``, ``--no-fg-cache``) must exist too, and ``python benchmarks/...``
commands must parse with their script's own argparse parser.

The cheap commands then really run, block by block, each block in a fresh working folder, on tiny inputs: sizes,
counts and steps are shrunk (:func:`tiny`) and speed options appended, but every option the README prints is kept.
Commands that need a download, a GPU or the authors' weights are only parsed (:func:`parse_only_reason` says why);
training and the six-method benchmark run only with ``-m slow``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from readme_commands import (
    ReadmeCommand,
    inline_spans,
    option_names,
    option_value,
    parse_benchmark,
    parse_himbench,
    readme_commands,
    resolve,
)

from himbench.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
COMMANDS_IN_README = readme_commands(README)
HIMBENCH = [command for command in COMMANDS_IN_README if command.kind == "himbench"]
# Benchmark scripts are printed inline (the Benchmarks table) as well as in blocks; globs are checked separately.
BENCHMARKS = [command for command in COMMANDS_IN_README if command.kind == "benchmark"] + [
    ReadmeCommand(line, 0, span, tuple(span.split()))
    for line, span in inline_spans(README.read_text(encoding="utf-8"))
    if re.match(r"python3? benchmarks/[^*\s]+\.py", span)
]
BLOCKS = sorted({command.block for command in HIMBENCH})

# Shard folders the README's commands read but no README command builds: a tiny test-only build stands in
# (``evaluate`` needs a single split to choose from when no --split is given).
UNBUILT = ("data/him-test",)
TINY_SIZE = "96"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _id(command: ReadmeCommand) -> str:
    return f"L{command.line}-{command.args[0] if command.args else command.argv[0]}"


def parse_only_reason(command: ReadmeCommand, block: Sequence[ReadmeCommand]) -> str | None:
    """Why a README command is parsed but never run here, or None when it runs."""
    args = command.args
    if args[0] == "demo":
        return "the line installs packages first; the demo runs on tiny settings in tests/test_demo.py"
    if args[0] == "import-checkpoint":
        return "needs the authors' released weights (a download)"
    if any(word.startswith("weights/") or "=weights/" in word for word in args):
        return "needs the authors' weights, converted by import-checkpoint"
    if (option_value(args, "--device") or "").startswith("cuda"):
        return "needs a CUDA GPU"
    checkpoint = option_value(args, "--checkpoint")
    if checkpoint and re.fullmatch(r"[\w.-]+/[\w.-]+(@\S+)?", checkpoint) and not checkpoint.startswith("runs/"):
        return "downloads a checkpoint from the Hugging Face Hub"
    for earlier in block:
        if earlier is command:
            break
        written = option_value(earlier.args, "-o", "--out")
        if written and written in args and parse_only_reason(earlier, block):
            return f"reads {written}, written by a command that is only parsed"
    return None


def is_slow(command: ReadmeCommand) -> bool:
    """Training (even 2 steps) and benchmarking more than three methods take well over 20 s on 2 cores."""
    args = command.args
    if args[0] == "train":
        return True
    return args[0] == "bench" and len((option_value(args, "--methods", "-m") or "").split(",")) > 3


def _set(args: list[str], names: Sequence[str], value: str) -> list[str]:
    """Give the option ``names`` the value ``value``: in place where the README has it, appended where not."""
    for i, word in enumerate(args):
        if word in names and i + 1 < len(args):
            return [*args[: i + 1], value, *args[i + 2:]]
    return [*args, names[0], value]


def tiny(args: list[str]) -> list[str]:
    """The README command ``args`` on tiny inputs: same options, smaller sizes, counts and steps."""
    args = [str(REPO / word) if word.startswith("tests/") else word for word in args]
    if args[0] == "build-dataset":
        splits = option_value(args, "--splits") or "train=64,test=16"
        args = _set(args, ["--splits"], ",".join(f"{item.split('=')[0]}=2" for item in splits.split(",")))
        args = _set(args, ["--size"], TINY_SIZE)
        args = _set(args, ["-j", "--workers"], "1")  # worker processes would re-import torch: seconds each
    elif args[0] == "train":
        args = _set(args, ["--steps"], "3" if "--resume" in args else "2")
        args = _set(args, ["--batch-size"], "2")
        args = _set(args, ["--size"], "64")
    elif args[0] == "bench":
        for name, value in (("--latency-size", "64"), ("--latency-repeats", "1"), ("--warmup", "0"),
                            ("--max-instances", "2")):
            args = _set(args, [name], value)
        args.append("--no-progress")
    elif args[0] == "evaluate":
        args = _set(args, ["--workers"], "1")
    return args


def invoke(args: Sequence[str], command: object = "") -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, f"{command}\n  ran as: himbench {' '.join(args)}\n{result.output}"
    return result.output


def _photos(folder: Path, count: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for k in range(count):
        Image.fromarray((rng.random((72, 56 + 8 * k, 3)) * 255).astype(np.uint8)).save(folder / f"photo{k}.jpg")


def _him2k_folder(target: Path, split: str) -> None:
    """A HIM-2K folder holding, as ``split``, the test images that preds/ was predicted from (so the scores mean
    something), and preds/ mirrored to that split."""
    manifest = Path("preds/predictions.json")
    source = Path("preds", json.loads(manifest.read_text())["source"]["path"]) if manifest.is_file() else None
    invoke(["export-him2k", str(source or "data/him-embedded"), str(target), "--split", "test", "--no-progress"])
    for layer in ("images", "alphas"):
        (target / layer / "test").rename(target / layer / split)
    if Path("preds/test").is_dir() and not Path("preds", split).exists():
        shutil.copytree("preds/test", Path("preds", split))


# ------------------------------------------------------------------------------------------------ parsing (all)
def test_the_readme_has_the_commands_this_test_expects():
    # Guards the extraction itself: a broken parser would otherwise make every other test vacuous.
    assert len(HIMBENCH) >= 20, [str(c) for c in HIMBENCH]
    assert {c.args[0] for c in HIMBENCH} >= {"demo", "build-dataset", "predict", "evaluate", "train", "bench",
                                              "leaderboard", "import-checkpoint"}
    assert BENCHMARKS, "no `python benchmarks/...` command found in README.md"


@pytest.mark.parametrize("command", HIMBENCH, ids=_id)
def test_every_himbench_command_in_the_readme_parses(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        parse_himbench(main, command.args, tmp_path)
    except click.UsageError as err:
        pytest.fail(f"{command}\n  {type(err).__name__}: {err.format_message()}")


def test_inline_himbench_commands_name_real_subcommands_and_options():
    spans = inline_spans(README.read_text(encoding="utf-8"))
    every_option = set().union(*(option_names(resolve(main, [name])[2]) for name in COMMANDS))
    checked = 0
    for line, span in spans:
        words = span.split()
        if words[0] == "himbench" and len(words) > 1 and re.fullmatch(r"[a-z][a-z0-9-]*", words[1]):
            assert words[1] in COMMANDS, f"README.md:{line}: `{span}`: no sub-command {words[1]!r}"
            known = option_names(resolve(main, [words[1]])[2])
            unknown = [w.strip("[]") for w in words[2:] if w.strip("[]").startswith("-") and w.strip("[]") not in known]
            assert not unknown, f"README.md:{line}: `{span}`: himbench {words[1]} has no option {unknown}"
            checked += 1
        elif "$(which himbench)" in span:
            sub = span.split("$(which himbench)")[1].split()[0]
            assert sub in COMMANDS, f"README.md:{line}: `{span}`: no sub-command {sub!r}"
        elif words[0].startswith("--"):
            assert words[0] in every_option, f"README.md:{line}: `{span}`: no himbench command has {words[0]}"
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("command", BENCHMARKS, ids=lambda c: f"L{c.line}-{Path(c.argv[1]).stem}")
def test_every_benchmark_command_in_the_readme_parses(command):
    try:
        parse_benchmark(REPO, command.argv)
    except SystemExit as err:
        pytest.fail(f"{command}\n  argparse refused it (exit {err.code})")


def test_benchmark_globs_in_the_readme_match_scripts():
    for line, span in inline_spans(README.read_text(encoding="utf-8")):
        if re.match(r"python3? benchmarks/\S*\*", span):
            assert list(REPO.glob(span.split()[1])), f"README.md:{line}: `{span}` matches no script"


def test_the_ci_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    printed = [c for c in COMMANDS_IN_README if c.kind == "setup" and "pytest" in c.text]
    assert printed, "README.md no longer prints the test command"
    block = printed[0].block
    text = README.read_text(encoding="utf-8").splitlines()[block]  # the line after the opening fence
    assert text.strip() in ci, f"README.md:{block + 1} and .ci/run differ"


# ------------------------------------------------------------------------------------------- running (cheap ones)
@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A folder where every README build-dataset command has run (tiny), as the later blocks expect."""
    root = tmp_path_factory.mktemp("readme-built")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("HIMBENCH_CACHE", str(root.parent / "himbench-cache"))  # never ~/.cache from a test
        for command in (c for c in HIMBENCH if c.args[0] == "build-dataset"):
            background = option_value(command.args, "--bg")
            if background and background != "embedded" and not Path(background).exists():
                _photos(Path(background), count=3)  # a folder of photos stands in for BG-20K
            invoke(tiny(command.args), command)
            out = Path(option_value(command.args, "--out", "-o") or "")
            assert list((out / "data").glob("*.parquet")) and (out / "README.md").is_file(), command
        for folder in UNBUILT:
            if not Path(folder).exists():
                invoke(["build-dataset", "--out", folder, "--splits", "test=2", "--size", TINY_SIZE, "-j", "1"])
    return root


def _runnable(command: ReadmeCommand, with_slow: bool) -> bool:
    block = [c for c in HIMBENCH if c.block == command.block]
    return command.args[0] != "build-dataset" and not parse_only_reason(command, block) and (
        with_slow or not is_slow(command))


def run_command(command: ReadmeCommand, cwd: Path) -> None:
    """Run one README command in ``cwd`` on tiny inputs, first running the earlier README command that writes an
    input it lacks (``evaluate preds/`` needs the ``predict ... -o preds/`` above it)."""
    args = list(command.args)
    outputs = {option_value(args, "-o", "--out")}
    for word in args:
        if "/" in word and word not in outputs and not Path(word).exists():
            earlier = [c for c in HIMBENCH if c.line < command.line and _runnable(c, with_slow=False)
                       and option_value(c.args, "-o", "--out") == word]
            if earlier:
                run_command(earlier[-1], cwd)
    for i, word in enumerate(args):
        if word.startswith("/"):  # a folder on the user's disk (a HIM-2K copy): made under the working folder
            args[i] = str(cwd / word.lstrip("/"))
            _him2k_folder(Path(args[i]), option_value(args, "--split") or "test")
    if "photos/" in args:
        _photos(cwd / "photos")
    args = tiny(args)
    invoke(args, command)
    out = option_value(args, "-o", "--out")
    assert out is None or Path(out).exists(), f"{command}: wrote no {out}"


def run_block(block: int, cwd: Path, with_slow: bool) -> list[ReadmeCommand]:
    """Run the README block opened at line ``block`` in ``cwd`` (its builds come from :func:`built`); returns the
    commands that ran (or were run by the fixture)."""
    ran = []
    for command in (c for c in HIMBENCH if c.block == block):
        if command.args[0] == "build-dataset":
            ran.append(command)  # already run by the `built` fixture
        elif _runnable(command, with_slow):
            run_command(command, cwd)
            ran.append(command)
    return ran


def _blocks(slow: bool) -> list[int]:
    return [block for block in BLOCKS if any(
        _runnable(c, with_slow=slow) and is_slow(c) == slow for c in HIMBENCH if c.block == block)]


@pytest.mark.parametrize("block", _blocks(slow=False), ids=lambda b: f"block-L{b}")
def test_readme_block_runs_on_tiny_inputs(block, built, tmp_path, monkeypatch):
    shutil.copytree(built, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    ran = run_block(block, tmp_path, with_slow=False)
    assert ran
    if any(c.args[0] == "evaluate" for c in ran):
        for summary in Path("preds-eval").glob("*/summary.json"):
            assert json.loads(summary.read_text())["summary"]["num_images"] > 0, summary
    boards = [c for c in ran if c.args[0] == "leaderboard"]
    if boards:  # a video results CSV renders as video.md beside the image board's README.md
        page = "video.md" if any("leaderboard/video.csv" in c.args for c in boards) else "README.md"
        assert "mask-cf" in (Path("leaderboard") / page).read_text()


@pytest.mark.slow
@pytest.mark.parametrize("block", _blocks(slow=True), ids=lambda b: f"block-L{b}")
def test_readme_block_runs_with_its_slow_commands(block, built, tmp_path, monkeypatch):
    shutil.copytree(built, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    assert any(is_slow(c) for c in run_block(block, tmp_path, with_slow=True))


def test_models_and_a_dry_run_upload_run(built, monkeypatch):
    # Named only inline in the README: `himbench models` and `himbench push-to-hub DIR user/him-synthetic` + --dry-run.
    spans = {span for _, span in inline_spans(README.read_text(encoding="utf-8"))}
    assert "himbench models" in spans and "himbench push-to-hub DIR user/him-synthetic" in spans
    monkeypatch.chdir(built)
    assert "e2ehim-tiny" in invoke(["models"])
    assert "README.md" in invoke(["push-to-hub", "data/him-embedded", "user/him-synthetic", "--dry-run"])
