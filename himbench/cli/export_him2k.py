"""`himbench export-him2k`: shards -> HIM-2K folder layout."""

from __future__ import annotations

import click

__all__ = ["command"]


class _UserError(click.ClickException):
    """A bad argument or a refused output folder: one line on stderr, exit status 2."""

    exit_code = 2


@click.command("export-him2k")
@click.argument("shard_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--split", "splits", multiple=True, help="Split(s) to export (default: all).")
@click.option("--image-format", type=click.Choice(["png", "jpg"]), default="png", show_default=True,
              help="png keeps the composite lossless; jpg matches how HIM-2K ships its images.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def command(shard_dir, out_dir, splits, image_format, no_progress) -> None:
    """Write SHARD_DIR as images/<split>/<id>.<ext> + alphas/<split>/<id>/<k>.png under OUT_DIR.

    This is the layout `himbench evaluate --gt` accepts and that HIM-2K tools expect. OUT_DIR must be new or empty;
    sample ids that are not plain file names (e.g. '../x') are refused before anything is written.
    """
    from himbench.io import InputError
    from himbench.synthesis.export import export_him2k

    try:
        counts = export_him2k(shard_dir, out_dir, list(splits) or None, image_format, progress=not no_progress)
    except InputError as err:
        raise _UserError(str(err)) from err
    for split, n in counts.items():
        click.echo(f"{split}: {n} images -> {out_dir}")
