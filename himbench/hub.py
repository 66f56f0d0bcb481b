"""Publishing a built dataset on the Hugging Face Hub: which files go, a card that names the repo, the upload.

Only the dataset itself is sent: ``data/*.parquet`` (the shards), ``README.md`` (the card), ``build_config.json`` and
``build_report.json``. Caches (``.cache/``), temp files of interrupted writes (``.*.tmp``) and anything else in the
folder stay local.

The card written by ``build-dataset`` shows ``load_dataset("<local folder>")``; the published card must show the
repo id. The built folder is left untouched: the files are hard-linked (copied where links are impossible) into a
staging folder ``<dataset>/.cache/himbench-push/`` next to a re-rendered ``README.md``, and that staging folder is
uploaded. The staging folder is kept between runs, so the library's resumable upload finds its own progress records
there when an interrupted push is run again.

A dataset folder may come from someone else, so nothing in it is trusted:

- Every file of the upload plan must resolve (symbolic links followed) inside the dataset folder; a shard, card or
  JSON file that points outside is refused by name, in a dry run too, before anything is read or sent.
- ``.cache``, ``.cache/himbench-push`` and every folder below it must be real folders: a symbolic link (or a file)
  anywhere in that path or inside the staging folder is refused with an :class:`InputError` that names it, before
  anything is written or deleted. Refusing, rather than removing the link, is the safe choice: a link there was put
  by someone, and the user decides what to do with it (and with what it points to). Missing folders are created one
  at a time with ``mkdir`` (never through a link).
- Cleaning the staging folder removes only regular files at names himbench itself stages (``README.md``, the build's
  JSON files, ``data/<split>-NNNNN-of-NNNNN.parquet``) that the current plan no longer lists; nothing else in it
  (the library's records under ``.cache/``, anyone's other files) and nothing outside it is ever deleted.
- A failed upload (offline, refused token, HTTP or connection error) raises :class:`PushError`, one line naming the
  repo; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path

from himbench.build_config import BuildConfig
from himbench.io import InputError, is_inside
from himbench.io.atomic import atomic_write_text
from himbench.shards import CONFIG_FILE, DATA_DIR, REPORT_FILE, ShardFolder, is_shard_name

__all__ = ["STAGING_DIR", "PushError", "card_for_repo", "plan_upload", "push_to_hub", "stage_upload"]

STAGING_DIR = Path(".cache") / "himbench-push"
_METADATA_FILES = (CONFIG_FILE, REPORT_FILE)


class PushError(RuntimeError):
    """The Hub could not be reached or refused the upload; ``str(err)`` is one line naming the repo and the cause."""


def _require_inside(root: Path, path: Path) -> None:
    """Refuse a file of the dataset that resolves outside it (a symbolic link pointing out): it would be uploaded."""
    if not is_inside(root, path):
        raise InputError(
            path,
            f"resolves to {path.resolve()}, outside the dataset folder {root.resolve()}: a file pointing out of the "
            "folder is never uploaded (replace the link by the file itself)",
        )


def _read_config(folder: ShardFolder) -> BuildConfig:
    if folder.config_path.is_file():  # checked before it is read: a link out could point at anything
        _require_inside(folder.root, folder.config_path)
    return folder.config()


def plan_upload(dataset_dir: str | os.PathLike) -> list[tuple[Path, str]]:
    """The files to publish, as ``(local path, path in the repo)``: the build's shards (sorted), then the card and
    the build's JSON files. Raises :class:`InputError` naming the folder when it has no shards, no card, or an
    unfinished build (a planned shard missing or not from this build's config: run `build-dataset` again first)."""
    from himbench.synthesis.build import plan_shards, shard_is_complete

    root = Path(dataset_dir)
    if not root.is_dir():
        raise InputError(root, "not a folder")
    folder = ShardFolder(root) if ShardFolder.is_shard_folder(root) else None
    if folder is None or not any(p.is_file() and not p.name.startswith(".") for p in folder.parquet_files()):
        raise InputError(root, "no shards to upload (expected data/*.parquet; build it with `himbench build-dataset`)")
    card = root / "README.md"
    if not card.is_file():
        raise InputError(root, "no dataset card README.md (rerun `himbench build-dataset` to write one)")
    _require_inside(root, card)
    config = _read_config(folder)
    tasks = plan_shards(config)
    for task in tasks:  # before any shard is opened: a link out could point at anything (a device, a secret)
        shard = folder.data_dir / task.filename
        if shard.exists() or shard.is_symlink():
            _require_inside(root, shard)
    unfinished = [t.filename for t in tasks if not shard_is_complete(folder.data_dir / t.filename, t, config)]
    if unfinished:
        raise InputError(
            root,
            f"unfinished build: {len(unfinished)} of {len(tasks)} shards missing or from another config "
            f"(first: data/{unfinished[0]}); rerun the same `himbench build-dataset` command to finish it",
        )
    plan = [(folder.data_dir / name, f"{DATA_DIR}/{name}") for name in sorted(t.filename for t in tasks)]
    plan.append((card, "README.md"))
    plan += [(root / name, name) for name in _METADATA_FILES if (root / name).is_file()]
    for local, _ in plan:
        _require_inside(root, local)
    return plan


def card_for_repo(dataset_dir: str | os.PathLike, repo_id: str) -> str:
    """The dataset card re-rendered from the build's config, report and shards, loading from ``repo_id``."""
    from himbench.synthesis.card import card_statistics, command_line, render_dataset_card

    root = Path(dataset_dir)
    folder = ShardFolder(root)
    config = _read_config(folder)
    report_path = folder.report_path
    num_problems = 0
    if report_path.is_file():
        _require_inside(root, report_path)
        try:
            report = folder.report()
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
    # ``target`` is a regular file or absent, inside a staging folder checked by _checked_staging (no links).
    if target.exists():
        if os.path.samefile(source, target):
            return  # already linked to the current file (a rebuilt shard is a new file and gets relinked)
        target.unlink()
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not supported
        shutil.copy2(source, target)


_LINK_ADVICE = "himbench stages only into real folders and never follows a link out; remove it and run again"


def _real_folder(path: Path) -> Path:
    """``path`` as a real folder: created with one ``mkdir`` when absent; a link or a non-folder is refused."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path)  # not parents=True: every level above was checked the same way
        return path
    if stat.S_ISLNK(info.st_mode):
        raise InputError(path, f"is a symbolic link (to {os.readlink(path)}); {_LINK_ADVICE}")
    if not stat.S_ISDIR(info.st_mode):
        raise InputError(path, f"exists and is not a folder; {_LINK_ADVICE}")
    return path


def _checked_staging(root: Path) -> Path:
    """``<root>/.cache/himbench-push`` as a real folder tree holding only folders and regular files, or an
    :class:`InputError` naming the first link (or device, socket, FIFO) in the way. Nothing is written or deleted
    before this check passes."""
    staging = root
    for part in STAGING_DIR.parts:
        staging = _real_folder(staging / part)
    for folder, dirnames, filenames in os.walk(staging, followlinks=False):
        for name in dirnames + filenames:
            path = Path(folder) / name
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                raise InputError(path, f"is a symbolic link (to {os.readlink(path)}) inside the staging folder; "
                                 f"{_LINK_ADVICE}")
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise InputError(path, f"is not a regular file or folder; {_LINK_ADVICE}")
    if not is_inside(root, staging):  # e.g. a bind mount: the checks above cannot see it
        raise InputError(staging, f"resolves to {staging.resolve()}, outside {root.resolve()}; {_LINK_ADVICE}")
    return staging


def _is_staged_name(relative: str) -> bool:
    """A path (relative to the staging folder) at which himbench stages files; only such files are ever cleaned."""
    if relative == "README.md" or relative in _METADATA_FILES:
        return True
    folder, _, name = relative.partition("/")
    return folder == DATA_DIR and "/" not in name and is_shard_name(name)


def stage_upload(dataset_dir: str | os.PathLike, repo_id: str) -> list[tuple[Path, str]]:
    """Fill ``<dataset>/.cache/himbench-push/`` with the planned files and the card for ``repo_id``; returns the plan
    with the staged local paths. Staged files of an earlier push that are no longer planned are removed (only
    regular files at names himbench stages; see the module docstring for what is refused)."""
    root = Path(dataset_dir)
    plan = plan_upload(root)
    card = card_for_repo(root, repo_id)
    staging = _checked_staging(root)
    staged = []
    for local, in_repo in plan:
        target = staging / in_repo
        if target.parent != staging:
            _real_folder(target.parent)  # data/: checked (no link) by _checked_staging when it already existed
        if in_repo == "README.md":
            atomic_write_text(target, card)
        else:
            _link_or_copy(local, target)
        staged.append((target, in_repo))
    wanted = {in_repo for _, in_repo in plan}
    for folder, _, filenames in os.walk(staging, followlinks=False):
        for name in filenames:
            path = Path(folder) / name
            relative = path.relative_to(staging).as_posix()
            if relative not in wanted and _is_staged_name(relative) and stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink()  # e.g. a shard of an earlier, larger build
    return staged


def _network_errors() -> tuple[type[BaseException], ...]:
    """What the Hub client raises when the network or the Hub fails: OSError (its HTTP errors, offline mode, a
    missing token and connection errors derive from it) and the HTTP library's own base error."""
    errors: list[type[BaseException]] = [OSError]
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            errors.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


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
    try:
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
    except _network_errors() as err:
        # The library's messages run over several lines (request ids, URLs); the first one says what happened.
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = lines[0] if lines else "no message"
        raise PushError(
            f"{repo_id}: upload to the Hugging Face Hub failed ({type(err).__name__}: {reason}); "
            "nothing is lost: check the network and token, then run the same command again to resume"
        ) from err
    return plan
