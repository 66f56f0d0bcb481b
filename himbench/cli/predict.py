"""`himbench predict`: run a registered model over images into the HIM-2K prediction layout (SPEC s.4)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command", "collect_inputs"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def collect_inputs(inputs: tuple[str, ...], split: str | None) -> list[tuple[str, str, object]]:
    """Expand IMAGES into (split, stem, source) items; source is a Path or a shard dataset index.

    Files are taken as they are; a folder contributes its image files (sorted, not recursive); a built shard folder
    (one with data/*.parquet) contributes every sample of ``split`` (or of all its splits), named by sample id.
    """
    from himbench.shards import list_shards, splits_in

    items: list[tuple[str, str, object]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir() and (path / "data").is_dir() and list_shards(path):
            from himbench.data import HIMShardDataset

            for shard_split in [split] if split else splits_in(path):
                dataset = HIMShardDataset(path, shard_split)
                items.extend((shard_split, "", (dataset, index)) for index in range(len(dataset)))
        elif path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            items.extend((split or "test", p.stem, p) for p in files)
        elif path.is_file():
            items.append((split or "test", path.stem, path))
        else:
            raise click.BadParameter(f"{raw}: no such file or folder", param_hint="IMAGES")
    return items


@click.command("predict")
@click.option(
    "--model",
    "model_name",
    default=None,
    help="Registered model name; default: the one recorded in the checkpoint's config.json.",
)
@click.option(
    "--checkpoint",
    required=True,
    help="Checkpoint folder (model.safetensors + config.json), a .safetensors file, or a Hugging Face Hub "
    "model id (owner/name[@revision]). Pickle files are refused.",
)
@click.argument("images", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Prediction folder; writes OUT/<split>/<stem>/<k>.png (8-bit mattes) and scores.json per image.",
)
@click.option(
    "--split",
    default=None,
    help="For shard folders: the split to predict (default: all). For image files/folders: the split "
    "folder name to write under OUT (default: test).",
)
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(min=1), help="Images per forward pass.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--score-threshold", default=None, type=float, help="Override the model's person-score threshold.")
def command(model_name, checkpoint, images, out_dir, split, batch_size, device, threads, score_threshold) -> None:
    """Predict instance mattes for IMAGES (files, folders of images, or built shard folders) with a trained model.
    Any input size; mattes are written at the original size. A bad image is reported and skipped; the rest go on."""
    import json

    import numpy as np
    import torch
    from tqdm import tqdm

    from himbench.checkpoints import load_model
    from himbench.io import InputError, read_image, write_alpha_png
    from himbench.io.atomic import atomic_write_text

    if threads:
        torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    overrides = {"score_threshold": score_threshold} if score_threshold is not None else {}
    try:
        model = load_model(checkpoint, model_name, device=device, **overrides)
    except (InputError, KeyError) as err:
        raise click.ClickException(str(err)) from err
    items = collect_inputs(images, split)
    out = Path(out_dir)
    failures: list[str] = []
    written = 0

    def load(item):
        item_split, stem, source = item
        if isinstance(source, tuple):
            dataset, index = source
            sample_id, image, _ = dataset.read_raw(index)
            return item_split, sample_id, image, None
        return item_split, stem, read_image(source), None

    def flush(batch):
        nonlocal written
        if not batch:
            return
        images_ = [entry[2] for entry in batch]
        with torch.no_grad():
            if hasattr(model, "predict_batch"):
                results = model.predict_batch(images_, [entry[3] for entry in batch])
            else:
                results = [model.predict_instances(img, entry[3]) for img, entry in zip(images_, batch, strict=True)]
        for (item_split, stem, _, _), (alphas, scores) in zip(batch, results, strict=True):
            folder = out / item_split / stem
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob("*.png"):  # a re-run must not leave mattes of an earlier run behind
                stale.unlink()
            for k, alpha in enumerate(alphas):
                write_alpha_png(folder / f"{k:02d}.png", alpha)
            scores_map = {f"{k:02d}": float(s) for k, s in enumerate(np.asarray(scores, dtype=np.float64))}
            atomic_write_text(folder / "scores.json", json.dumps(scores_map, indent=1) + "\n")
            written += 1

    pending = []
    for item in tqdm(items, desc="predict", unit="img"):
        try:
            pending.append(load(item))
        except InputError as err:
            failures.append(str(err))
            click.echo(f"skipped: {err}", err=True)
            continue
        if len(pending) >= batch_size:
            flush(pending)
            pending = []
    flush(pending)
    click.echo(f"wrote predictions for {written} image(s) to {out}" + (f"; {len(failures)} failed" if failures else ""))
    if failures and not written:
        raise SystemExit(1)
