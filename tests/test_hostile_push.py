"""`himbench push-to-hub` on a dataset folder someone else prepared (issue 25, item 1 and item 5's last bullet).

A staging folder reached through a link must never be followed (the first probe's repro deleted files outside the
dataset), files of the upload plan that point outside the folder are refused by name, and a failed upload is one
line with exit code 2. No test touches the network: the Hub client is monkeypatched or offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import HfApi

from himbench.build_config import BuildConfig
from himbench.cli.push_to_hub import command as push_command
from himbench.hub import STAGING_DIR, PushError, plan_upload, push_to_hub, stage_upload
from himbench.io import InputError
from himbench.synthesis import build_dataset

REPO = "someone/him-tiny"
SHARD = "data/test-00000-of-00002.parquet"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "ds"
    build_dataset(BuildConfig(splits={"test": 2}, width=64, height=64, images_per_shard=1), out, workers=1,
                  progress=False)
    return out


@pytest.fixture
def dataset(built, tmp_path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(built, root)
    return root


def _victim(folder: Path) -> dict[str, bytes]:
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_bytes(b"x\n")
    (folder / "sub" / "thesis.tex").write_bytes(b"y\n")
    return _tree(folder)


def _tree(folder: Path) -> dict[str, bytes]:
    """Every entry under ``folder`` (links not followed) with its bytes; folders and links map to markers."""
    tree = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        if path.is_symlink():
            tree[key] = b"link:" + os.readlink(path).encode()
        elif path.is_dir():
            tree[key] = b"dir"
        else:
            tree[key] = path.read_bytes()
    return tree


def _no_hub(monkeypatch) -> list:
    """Record Hub calls instead of making them; the upload call succeeds."""
    calls: list = []

    def record(name):
        def method(self, *args, **kwargs):
            calls.append(name)

        return method

    for name in ("create_repo", "upload_folder", "create_commit"):
        monkeypatch.setattr(HfApi, name, record(name))
    monkeypatch.setattr(HfApi, "upload_large_folder", record("upload_large_folder"), raising=False)
    return calls


def _one_line_refusal(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, result.output)


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_staging_link_is_refused_and_its_target_untouched(dataset, tmp_path, monkeypatch, kind):
    # The repro: DATASET/.cache/himbench-push is a link to a victim folder (an absolute link), or a
    # received folder's `../..` link aiming at the folder that holds the dataset.
    if kind == "absolute":
        victim = tmp_path / "victim"
        before = _victim(victim)
        target = str(victim)
    else:
        victim = tmp_path  # ds/.cache/../.. is the dataset's parent
        _victim(victim / "victim")
        target = "../.."
    (dataset / ".cache").mkdir()
    (dataset / STAGING_DIR).symlink_to(target)
    before = _tree(victim)
    calls = _no_hub(monkeypatch)
    result = CliRunner().invoke(push_command, [str(dataset), REPO])
    _one_line_refusal(result, str(dataset / STAGING_DIR), "symbolic link", target)
    assert _tree(victim) == before  # notes.txt and sub/thesis.tex still there, nothing added
    assert (tmp_path / "victim" / "notes.txt").read_bytes() == b"x\n"
    assert (tmp_path / "victim" / "sub" / "thesis.tex").read_bytes() == b"y\n"
    assert calls == []  # refused before the Hub


def test_staging_link_is_refused_when_offline_in_a_fresh_process(dataset, tmp_path):
    # Exactly the command line of the repro, HF_HUB_OFFLINE=1 included.
    victim = tmp_path / "victim"
    before = _victim(victim)
    (dataset / ".cache").mkdir()
    (dataset / STAGING_DIR).symlink_to(victim)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    run = subprocess.run(
        [sys.executable, "-m", "himbench.cli", "push-to-hub", str(dataset), "me/x"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "symbolic link" in run.stderr
    assert _tree(victim) == before


@pytest.mark.parametrize(
    "where",
    [".cache", ".cache/himbench-push/data", ".cache/himbench-push/.cache", ".cache/himbench-push/data/x/y"],
)
def test_links_anywhere_on_the_staging_path_are_refused(dataset, tmp_path, monkeypatch, where):
    victim = tmp_path / "victim"
    before = _victim(victim)
    link = dataset / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim, target_is_directory=True)
    calls = _no_hub(monkeypatch)
    with pytest.raises(InputError, match="symbolic link") as err:
        stage_upload(dataset, REPO)
    assert err.value.source == str(link)
    with pytest.raises(InputError):
        push_to_hub(dataset, REPO)
    assert _tree(victim) == before and calls == []


def test_file_links_inside_staging_are_refused(dataset, tmp_path, monkeypatch):
    # A staged file replaced by a link: the card (written in place) or a shard (hard-linked or copied over it)
    # would land in the link's target.
    victim = tmp_path / "victim"
    before = _victim(victim)
    staging = dataset / STAGING_DIR
    (staging / "data").mkdir(parents=True)
    (staging / "README.md").symlink_to(victim / "notes.txt")
    (staging / SHARD).symlink_to(victim / "sub" / "thesis.tex")  # a dangling one would be created outside, too
    _no_hub(monkeypatch)
    result = CliRunner().invoke(push_command, [str(dataset), REPO])
    _one_line_refusal(result, "symbolic link", str(victim))
    assert _tree(victim) == before


def test_staging_path_that_is_a_file_is_refused(dataset):
    (dataset / ".cache").write_bytes(b"not a folder")
    with pytest.raises(InputError, match="not a folder") as err:
        stage_upload(dataset, REPO)
    assert err.value.source == str(dataset / ".cache")
    assert (dataset / ".cache").read_bytes() == b"not a folder"


def test_cleaning_removes_only_stale_staged_files(dataset, monkeypatch):
    _no_hub(monkeypatch)
    push_to_hub(dataset, REPO)
    staging = dataset / STAGING_DIR
    keep = {
        "notes.txt": b"mine",
        "data/mine.txt": b"mine",
        "data/sub/test-00000-of-00002.parquet": b"mine",  # a shard name, but not where himbench stages shards
        ".cache/huggingface/upload/README.md.metadata": b"the library's record",
    }
    for name, data in keep.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
    (staging / "data/test-00007-of-00009.parquet").write_bytes(b"stale shard of an earlier build")
    (dataset / "build_report.json").unlink()  # no longer planned: its staged copy goes
    plan = push_to_hub(dataset, REPO)
    assert "build_report.json" not in [name for _, name in plan]
    assert not (staging / "data/test-00007-of-00009.parquet").exists()
    assert not (staging / "build_report.json").exists()
    for name, data in keep.items():
        assert (staging / name).read_bytes() == data
    # The dataset's own files are untouched by staging and cleaning.
    assert (dataset / SHARD).is_file() and (dataset / "README.md").is_file()


@pytest.mark.parametrize("name", [SHARD, "README.md", "build_report.json", "build_config.json"])
def test_plan_files_pointing_outside_are_refused(dataset, tmp_path, monkeypatch, name):
    outside = tmp_path / "elsewhere" / Path(name).name
    outside.parent.mkdir()
    shutil.move(dataset / name, outside)
    (dataset / name).symlink_to(outside)
    calls = _no_hub(monkeypatch)
    for extra in (["--dry-run"], []):
        result = CliRunner().invoke(push_command, [str(dataset), REPO, *extra])
        _one_line_refusal(result, str(dataset / name), "outside the dataset folder")
    with pytest.raises(InputError, match="outside the dataset folder") as err:
        plan_upload(dataset)
    assert err.value.source == str(dataset / name)
    assert calls == [] and not (dataset / STAGING_DIR).exists()


def test_links_inside_the_folder_are_still_uploaded(dataset, monkeypatch):
    # A link that stays inside the dataset is not an escape: the plan keeps it.
    (dataset / "keep").mkdir()
    shutil.move(dataset / SHARD, dataset / "keep" / "shard.parquet")
    (dataset / SHARD).symlink_to(Path("..") / "keep" / "shard.parquet")
    calls = _no_hub(monkeypatch)
    assert SHARD in [name for _, name in push_to_hub(dataset, REPO)]
    assert calls == ["create_repo", "upload_large_folder"]


def _raise(error: BaseException):
    def method(self, *args, **kwargs):
        raise error

    return method


@pytest.mark.parametrize("failing", ["create_repo", "upload_large_folder"])
def test_network_failure_is_one_line_exit_2(dataset, monkeypatch, failing):
    from huggingface_hub.errors import OfflineModeIsEnabled

    _no_hub(monkeypatch)
    error = OfflineModeIsEnabled("Cannot reach https://huggingface.co/api/repos/create: offline mode is enabled.\n"
                                 "To disable it, please unset the `HF_HUB_OFFLINE` environment variable.")
    monkeypatch.setattr(HfApi, failing, _raise(error))
    result = CliRunner().invoke(push_command, [str(dataset), REPO])
    _one_line_refusal(result, REPO, "OfflineModeIsEnabled", "offline mode is enabled")
    with pytest.raises(PushError, match="run the same command again"):
        push_to_hub(dataset, REPO)


def test_connection_errors_of_any_kind_are_one_line(dataset, monkeypatch):
    httpx2 = pytest.importorskip("httpx2")
    from huggingface_hub.errors import HfHubHTTPError

    _no_hub(monkeypatch)
    response = httpx2.Response(401, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))
    http_error = HfHubHTTPError("401 Client Error: Unauthorized for url\nRequest ID: abc", response=response)
    for error in (ConnectionError("connection reset by peer"), TimeoutError("timed out"), http_error,
                  httpx2.ConnectError("name resolution failed")):
        monkeypatch.setattr(HfApi, "upload_large_folder", _raise(error))
        result = CliRunner().invoke(push_command, [str(dataset), REPO])
        _one_line_refusal(result, REPO, type(error).__name__)


def test_offline_library_gives_one_line(dataset, monkeypatch):
    # The library's own offline switch (HF_HUB_OFFLINE=1 is read into this constant at import).
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    result = CliRunner().invoke(push_command, [str(dataset), REPO, "--token", "hf_test"])
    _one_line_refusal(result, REPO, "upload to the Hugging Face Hub failed")
