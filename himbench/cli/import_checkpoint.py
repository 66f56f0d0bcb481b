"""`himbench import-checkpoint`: turn the authors' released weights into a himbench checkpoint folder."""

from __future__ import annotations

import click

from himbench.cli.errors import Command

__all__ = ["command"]


@click.command("import-checkpoint", cls=Command)
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--model",
    "model_name",
    required=True,
    help="Registered model the weights belong to: e2ehim-official (aipixel/E2E-HIM swintiny.ckpt) or mgm "
    "(MGMatting .pth); any registered model works.",
)
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Import even when keys are missing, unexpected or of another shape (they are listed in config.json and "
    "the missing ones keep random values: outputs will not be the authors').",
)
def command(source: str, out: str, model_name: str, allow_partial: bool) -> None:
    """Convert the authors' checkpoint SOURCE (.ckpt/.pth, or .safetensors) for --model into the himbench
    checkpoint folder OUT (model.safetensors + config.json with the source's SHA-256 and licence note).

    The file is read with torch.load(weights_only=True): a pickle that would run code is refused before anything
    in it runs. Key names are checked against the model: missing or unexpected keys stop the import (with the
    list) unless --allow-partial. OUT must be new or empty; a failed import writes nothing.

    \b
    Example:
      himbench import-checkpoint swintiny.ckpt weights/e2ehim-official --model e2ehim-official
      himbench predict --checkpoint weights/e2ehim-official photos/ -o preds/
    """
    from himbench.authors_checkpoints import import_authors_checkpoint

    report = import_authors_checkpoint(source, out, model_name, allow_partial=allow_partial)
    click.echo(f"imported {report.loaded_keys} tensors of {report.source} (sha256 {report.sha256[:16]}...) "
               f"for {report.model_name} into {report.out}")
    for note in report.notes:
        click.echo(f"  {note}")
    if allow_partial and any(report.comparison.values()):
        click.echo("  partial import: " + "; ".join(f"{len(v)} {k}" for k, v in report.comparison.items() if v))
    click.echo(f"  licence of the weights: {report.license}")
