"""`himbench push-to-hub`: publish a built dataset (shards + card) as a Hugging Face Hub dataset repo."""

from __future__ import annotations

import click

from himbench.cli.errors import Command, UserError
from himbench.cli.options import PathOrURL, staged, storage_options_option

__all__ = ["command"]


def _size(num_bytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    raise AssertionError("unreachable")


@click.command("push-to-hub", cls=Command)
@click.argument("dataset_dir", type=PathOrURL(file_okay=False))
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="Create the repo as private (only when it does not exist yet).")
@click.option("--dry-run", is_flag=True, help="List the files that would be sent, with sizes; upload nothing.")
@click.option(
    "--token",
    default=None,
    envvar="HF_TOKEN",
    help="Hugging Face access token with write access (default: $HF_TOKEN or the token saved by `hf auth login`).",
)
@storage_options_option()
def command(dataset_dir, repo_id, private, dry_run, token, storage_options) -> None:
    """Upload the dataset built in DATASET_DIR to the Hub dataset repo REPO_ID (namespace/name).

    Sends the Parquet shards (data/*.parquet), the dataset card (README.md, re-rendered so its example loads
    REPO_ID) and build_config.json / build_report.json; caches and temp files stay local. The upload is resumable:
    if it is interrupted, run the same command again.

    \b
    Examples:
      himbench push-to-hub data/him-embedded me/him-synthetic --dry-run
      himbench push-to-hub data/him-embedded me/him-synthetic --private
    """
    from himbench.hub import PushError, push_to_hub

    dataset_dir = staged(dataset_dir, storage_options)  # a URL is copied into the local cache first
    try:
        plan = push_to_hub(dataset_dir, repo_id, private=private, dry_run=dry_run, token=token)
    except (ValueError, PushError) as err:  # InputError and the Hub's repo-id check are ValueErrors
        raise UserError(" ".join(str(err).split())) from err
    sizes = [local.stat().st_size for local, _ in plan]
    if dry_run:
        click.echo(f"would upload {len(plan)} files ({_size(sum(sizes))}) to dataset repo {repo_id}:")
        for (_, in_repo), size in zip(plan, sizes, strict=True):
            note = "  (re-rendered to load from the repo)" if in_repo == "README.md" else ""
            click.echo(f"  {_size(size):>10}  {in_repo}{note}")
    else:
        click.echo(
            f"uploaded {len(plan)} files ({_size(sum(sizes))}) to https://huggingface.co/datasets/{repo_id}"
        )
