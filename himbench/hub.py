"""Publishing a built dataset on the Hugging Face Hub: which files go, a card that names the repo, the upload.

Only the dataset itself is sent: ``data/*.parquet`` (the shards), ``README.md`` (the card), ``build_config.json`` and
``build_report.json``. Caches (``.cache/``), temp files of interrupted writes (``.*.tmp``) and anything else in the
folder stay local.

The card written by ``build-dataset`` shows ``load_dataset("<local folder>")``; the published card must show the
repo id. The built folder is left untouched: the files are hard-linked (copied where links are impossible) into a
staging folder ``<dataset>/.cache/himbench-push/`` next to a re-rendered ``README.md``, and that staging folder is
uploaded. The staging folder is kept between runs, so the library's resumable upload finds its own progress records
there when an interrupted push is run again.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from himbench.io import InputError, read_json
from himbench.io.atomic import atomic_write_text

__all__ = ["STAGING_DIR", "card_for_repo", "plan_upload", "push_to_hub", "stage_upload"]

STAGING_DIR = Path(".cache") / "himbench-push"
_METADATA_FILES = ("build_config.json", "build_report.json")


def _read_config(root: Path):
    from himbench.synthesis.config import BuildConfig

    config_path = root / "build_config.json"
    if not config_path.is_file():
        raise InputError(root, "no build_config.json: not a folder written by `himbench build-dataset`")
    try:
        return BuildConfig.from_dict(read_json(config_path))
    except (ValueError, TypeError) as err:
        raise InputError(config_path, f"cannot read the build config ({err})") from err


def plan_upload(dataset_dir: str | os.PathLike) -> list[tuple[Path, str]]:
    """The files to publish, as ``(local path, path in the repo)``: the build's shards (sorted), then the card and
    the build's JSON files. Raises :class:`InputError` naming the folder when it has no shards, no card, or an
    unfinished build (a planned shard missing or not from this build's config: run `build-dataset` again first)."""
    from himbench.synthesis.build import plan_shards, shard_is_complete

    root = Path(dataset_dir)
    if not root.is_dir():
        raise InputError(root, "not a folder")
    if not any(p.is_file() and not p.name.startswith(".") for p in (root / "data").glob("*.parquet")):
        raise InputError(root, "no shards to upload (expected data/*.parquet; build it with `himbench build-dataset`)")
    card = root / "README.md"
    if not card.is_file():
        raise InputError(root, "no dataset card README.md (rerun `himbench build-dataset` to write one)")
    config = _read_config(root)
    tasks = plan_shards(config)
    unfinished = [t.filename for t in tasks if not shard_is_complete(root / "data" / t.filename, t, config)]
    if unfinished:
        raise InputError(
            root,
            f"unfinished build: {len(unfinished)} of {len(tasks)} shards missing or from another config "
            f"(first: data/{unfinished[0]}); rerun the same `himbench build-dataset` command to finish it",
        )
    plan = [(root / "data" / name, f"data/{name}") for name in sorted(t.filename for t in tasks)]
    plan.append((card, "README.md"))
    plan += [(root / name, name) for name in _METADATA_FILES if (root / name).is_file()]
    return plan


def card_for_repo(dataset_dir: str | os.PathLike, repo_id: str) -> str:
    """The dataset card re-rendered from the build's config, report and shards, loading from ``repo_id``."""
    from himbench.synthesis.card import card_statistics, command_line, render_dataset_card

    root = Path(dataset_dir)
    config = _read_config(root)
    report_path = root / "build_report.json"
    num_problems = 0
    if report_path.is_file():
        try:
            report = read_json(report_path)
            num_problems = int(report.get("skipped_sources", 0))
            # build_config.json is written with sorted keys; the report lists shards in the build's split order,
            # which the card (first split, YAML order, command line) follows.
            order = list(dict.fromkeys(shard["split"] for shard in report.get("shards", [])))
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            raise InputError(report_path, f"cannot read the build report ({err})") from err
        ordered = [s for s in order if s in config.splits] + [s for s in config.splits if s not in order]
        config = replace(config, splits={s: config.splits[s] for s in ordered})
    stats = card_statistics(root)
    return render_dataset_card(config, stats, num_problems, command_line(config), load_path=repo_id)


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        if os.path.samefile(source, target):
            return  # already linked to the current file (a rebuilt shard is a new file and gets relinked)
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not supported
        shutil.copy2(source, target)


def stage_upload(dataset_dir: str | os.PathLike, repo_id: str) -> list[tuple[Path, str]]:
    """Fill ``<dataset>/.cache/himbench-push/`` with the planned files and the card for ``repo_id``; returns the plan
    with the staged local paths. Files staged by an earlier push that are no longer planned are removed."""
    root = Path(dataset_dir)
    plan = plan_upload(root)
    card = card_for_repo(root, repo_id)
    staging = root / STAGING_DIR
    staged = []
    for local, in_repo in plan:
        target = staging / in_repo
        if in_repo == "README.md":
            atomic_write_text(target, card)
        else:
            _link_or_copy(local, target)
        staged.append((target, in_repo))
    wanted = {in_repo for _, in_repo in plan}
    for path in staging.rglob("*"):
        relative = path.relative_to(staging).as_posix()
        if path.is_file() and not relative.startswith(".cache/") and relative not in wanted:
            path.unlink()  # e.g. a shard of an earlier, larger build
    return staged


def push_to_hub(
    dataset_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    dry_run: bool = False,
    token: str | None = None,
) -> list[tuple[Path, str]]:
    """Upload a built dataset to the Hub dataset repo ``repo_id`` (created if needed); returns the file plan.

    ``dry_run``: check everything (files, config, card) and return the plan without writing or contacting the Hub.
    The upload is the library's resumable large-folder upload (``HfApi.upload_large_folder``; on huggingface-hub
    versions where that was folded into ``HfApi.upload_folder``, that one): run the same command again to resume.
    """
    from huggingface_hub.utils import validate_repo_id

    validate_repo_id(repo_id)
    if dry_run:
        plan = plan_upload(dataset_dir)
        card_for_repo(dataset_dir, repo_id)  # fail now, not after a long upload, if the card cannot be rendered
        return plan

    from huggingface_hub import HfApi

    plan = stage_upload(dataset_dir, repo_id)
    staging = Path(dataset_dir) / STAGING_DIR
    allow_patterns = [in_repo for _, in_repo in plan]
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
    if hasattr(api, "upload_large_folder"):
        api.upload_large_folder(
            repo_id=repo_id, folder_path=str(staging), repo_type="dataset", allow_patterns=allow_patterns
        )
    else:
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(staging),
            repo_type="dataset",
            allow_patterns=allow_patterns,
            commit_message="Upload dataset with himbench push-to-hub",
        )
    return plan
