"""`himbench export-vhim`: a ``build-dataset --video`` folder -> MaGGIe's V-HIM folder layout."""

from __future__ import annotations

from pathlib import Path

import click

from himbench.cli.errors import Command

__all__ = ["command"]


@click.command("export-vhim", cls=Command)
@click.argument("build_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--split", "splits", multiple=True, help="Split(s) to export (default: every split of the build).")
@click.option("--masks", type=click.Choice(["none", "gt"]), default="none", show_default=True,
              help="gt: also write ORACLE guidance masks, the ground-truth mattes binarised at alpha > 0.5, as "
              "<split>/xmem/<video>/<frame>/<k>.png (where V-HIM60 ships its XMem masks).")
def command(build_dir: Path, out_dir: Path, splits: tuple[str, ...], masks: str) -> None:
    """Write the video build BUILD_DIR as OUT_DIR/<split>/fgr/<video>/<frame>.jpg and
    OUT_DIR/<split>/pha/<video>/<frame>/<k>.png (MaGGIe's V-HIM layout; person k keeps its index in every frame).

    `himbench evaluate PRED --gt OUT_DIR` reads it back. OUT_DIR/<split> must be new or empty; a split is renamed
    into place only when it is complete.
    """
    from himbench.io import InputError
    from himbench.shards import ShardFolder
    from himbench.video_export import export_video_build
    from himbench.video_shards import VIDEO_CONFIG_FILE

    if not (build_dir / VIDEO_CONFIG_FILE).is_file() or not ShardFolder.is_shard_folder(build_dir):
        raise InputError(build_dir, f"not a `build-dataset --video` folder (no {VIDEO_CONFIG_FILE} and data/)")
    chosen = list(splits) or ShardFolder(build_dir).splits()
    if not chosen:
        raise InputError(build_dir, "the video build has no clip shards in data/")
    for split in chosen:
        counts = export_video_build(build_dir, out_dir, split, masks=masks)
        extra = f", {counts['masks']} oracle masks" if counts["masks"] else ""
        click.echo(f"{split}: {counts['clips']} clips, {counts['frames']} frames, {counts['mattes']} mattes{extra} "
                   f"-> {out_dir / split}")
