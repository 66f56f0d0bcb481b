"""`himbench export-him2k`: shards -> HIM-2K folder layout."""

from __future__ import annotations

import click

from himbench.cli.errors import Command
from himbench.cli.options import PathOrURL, no_progress_option, staged, storage_options_option

__all__ = ["command"]


@click.command("export-him2k", cls=Command)
@click.argument("shard_dir", type=PathOrURL(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--split", "splits", multiple=True, help="Split(s) to export (default: all).")
@click.option("--image-format", type=click.Choice(["png", "jpg"]), default="png", show_default=True,
              help="png keeps the composite lossless; jpg matches how HIM-2K ships its images.")
@no_progress_option()
@storage_options_option()
def command(shard_dir, out_dir, splits, image_format, no_progress, storage_options) -> None:
    """Write SHARD_DIR as images/<split>/<id>.<ext> + alphas/<split>/<id>/<k>.png under OUT_DIR.

    This is the layout `himbench evaluate --gt` accepts and that HIM-2K tools expect. OUT_DIR must be new or empty;
    sample ids that are not plain file names (e.g. '../x') are refused before anything is written.
    """
    from himbench.synthesis.export import export_him2k

    shard_dir = staged(shard_dir, storage_options)  # a URL is copied into the local cache first (docs/storage.md)
    counts = export_him2k(shard_dir, out_dir, list(splits) or None, image_format, progress=not no_progress)
    for split, n in counts.items():
        click.echo(f"{split}: {n} images -> {out_dir}")
