"""`himbench push-to-hub` without network: the exact file plan, the card for the repo, the library's upload call."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from huggingface_hub import HfApi
from huggingface_hub.utils import filter_repo_objects

from himbench.build_config import BuildConfig
from himbench.cli.push_to_hub import command as push_command
from himbench.hub import STAGING_DIR, plan_upload, push_to_hub, stage_upload
from himbench.io import InputError
from himbench.synthesis import build_dataset

REPO = "someone/him-tiny"
SHARDS = ["data/test-00000-of-00001.parquet", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
EXPECTED = [*SHARDS, "README.md", "build_config.json", "build_report.json"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "him-tiny"
    config = BuildConfig(splits={"train": 2, "test": 1}, width=96, height=96, images_per_shard=1)
    build_dataset(config, out, workers=1, progress=False)
    return out


@pytest.fixture
def dataset(built, tmp_path) -> Path:
    """A private copy of the build, with the junk a real folder collects."""
    root = tmp_path / "him-tiny"
    shutil.copytree(built, root)
    junk = [
        ".cache/datasets/him-tiny/train.arrow",  # a datasets cache from load_dataset(..., cache_dir=...)
        ".cache/huggingface/upload/README.md.metadata",
        "data/.train-00000-of-00002.parquet.x1y2.tmp",  # a write interrupted by a crash
        "data/notes.txt",
        "eval/report.json",
        "scratch.parquet",
        ".DS_Store",
    ]
    for name in junk:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"junk")
    return root


def _no_hub(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the Hub must not be contacted")

    for name in ("create_repo", "upload_folder", "create_commit"):
        monkeypatch.setattr(HfApi, name, refuse)
    monkeypatch.setattr(HfApi, "upload_large_folder", refuse, raising=False)


def test_plan_is_exactly_the_dataset(dataset):
    plan = plan_upload(dataset)
    assert [in_repo for _, in_repo in plan] == EXPECTED
    assert [local for local, _ in plan] == [dataset / name for name in EXPECTED]


def test_plan_fails_clearly(dataset, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no shards") as err:
        plan_upload(tmp_path / "empty")
    assert err.value.source == str(tmp_path / "empty")
    (dataset / "README.md").rename(dataset / "card.md")
    with pytest.raises(InputError, match="no dataset card") as err:
        plan_upload(dataset)
    assert err.value.source == str(dataset)
    (dataset / "card.md").rename(dataset / "README.md")
    (dataset / "data/train-00001-of-00002.parquet").unlink()  # an interrupted build
    with pytest.raises(InputError, match=r"unfinished build: 1 of 3 shards .* data/train-00001-of-00002\.parquet"):
        plan_upload(dataset)


def test_staged_card_names_the_repo(built, dataset):
    local_card = (dataset / "README.md").read_text()  # written by build_dataset into `built`, then copied
    assert f'load_dataset("{built}")' in local_card and REPO not in local_card
    staged = stage_upload(dataset, REPO)
    staging = dataset / STAGING_DIR
    assert staged == [(staging / name, name) for name in EXPECTED]

    card = (staging / "README.md").read_text()
    assert f'load_dataset("{REPO}")' in card
    # The same card as the build wrote, except that it loads from the repo.
    assert card == local_card.replace(str(built), REPO)
    front_matter = yaml.safe_load(card.split("---")[1])
    assert front_matter["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train-*.parquet"},
                {"split": "test", "path": "data/test-*.parquet"},
            ],
        }
    ]
    # Shards are hard links to the build's own files, byte for byte; the built folder's card is left as it was.
    for name in EXPECTED:
        if name != "README.md":
            assert os.path.samefile(staging / name, dataset / name) or (
                (staging / name).read_bytes() == (dataset / name).read_bytes()
            )
    assert (dataset / "README.md").read_text() == local_card
    # Staging again after the build changed drops what is no longer planned.
    (staging / "data/train-00009-of-00010.parquet").write_bytes(b"old")
    stage_upload(dataset, REPO)
    assert not (staging / "data/train-00009-of-00010.parquet").exists()


def test_dry_run_lists_files_and_sizes_without_the_hub(dataset, monkeypatch):
    _no_hub(monkeypatch)
    assert push_to_hub(dataset, REPO, dry_run=True) == [(dataset / name, name) for name in EXPECTED]
    result = CliRunner().invoke(push_command, [str(dataset), REPO, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert [line.split()[2] for line in result.output.splitlines()[1:]] == EXPECTED  # "  12.3 KB  data/..."
    assert "would upload 6 files" in result.output
    for name in SHARDS:
        size = (dataset / name).stat().st_size
        lines = result.output.splitlines()
        assert any(line.strip().endswith(name) and f"{size / 1024:.1f} KB" in line for line in lines)
    assert not (dataset / STAGING_DIR).exists()  # a dry run writes nothing


def test_dry_run_rejects_bad_repo_id_and_folder(dataset, tmp_path):
    result = CliRunner().invoke(push_command, [str(dataset), "a/b/c", "--dry-run"])
    assert result.exit_code != 0 and "a/b/c" in result.output
    result = CliRunner().invoke(push_command, [str(tmp_path / "nothing"), REPO, "--dry-run"])
    assert result.exit_code != 0 and "nothing: not a folder" in result.output


def _record(calls: list, name: str):
    def method(self, *args, **kwargs):
        calls.append((name, args, kwargs))

    return method


def test_push_uses_the_library_large_folder_upload(dataset, monkeypatch):
    calls: list = []
    _no_hub(monkeypatch)
    monkeypatch.setattr(HfApi, "create_repo", _record(calls, "create_repo"))
    monkeypatch.setattr(HfApi, "upload_large_folder", _record(calls, "upload_large_folder"), raising=False)
    result = CliRunner().invoke(push_command, [str(dataset), REPO, "--private", "--token", "hf_test"])
    assert result.exit_code == 0, result.output
    assert "uploaded 6 files" in result.output and f"https://huggingface.co/datasets/{REPO}" in result.output
    staging = dataset / STAGING_DIR
    assert calls == [
        ("create_repo", (REPO,), {"repo_type": "dataset", "exist_ok": True, "private": True}),
        (
            "upload_large_folder",
            (),
            {"repo_id": REPO, "folder_path": str(staging), "repo_type": "dataset", "allow_patterns": EXPECTED},
        ),
    ]
    # What the library's own pattern filter lets through from the staged folder is exactly the plan.
    staged_files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    assert sorted(filter_repo_objects(staged_files, allow_patterns=EXPECTED)) == sorted(EXPECTED)


def test_push_falls_back_to_upload_folder(dataset, monkeypatch):
    # huggingface-hub releases that folded the resumable large-folder upload into upload_folder.
    calls: list = []
    _no_hub(monkeypatch)
    monkeypatch.delattr(HfApi, "upload_large_folder")
    monkeypatch.setattr(HfApi, "create_repo", _record(calls, "create_repo"))
    monkeypatch.setattr(HfApi, "upload_folder", _record(calls, "upload_folder"))
    plan = push_to_hub(dataset, REPO)
    assert [name for _, name in plan] == EXPECTED
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[0][2]["private"] is False
    upload = calls[1][2]
    assert upload["repo_id"] == REPO and upload["repo_type"] == "dataset"
    assert upload["folder_path"] == str(dataset / STAGING_DIR) and upload["allow_patterns"] == EXPECTED
