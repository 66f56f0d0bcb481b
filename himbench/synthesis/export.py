"""Export built shards to the HIM-2K folder layout, for tools that expect files on disk.

Layout: ``images/<split>/<id>.<ext>`` and ``alphas/<split>/<id>/<k>.png`` (k = 00, 01, ...), the same layout
``himbench evaluate --gt`` reads. Mattes are copied byte for byte from the shards (no re-encoding), and so is the
composite when the shard already stores it in the requested format (a png build exported as png, a
``build-dataset --image-format jpg`` build exported as jpg); otherwise it is decoded and re-encoded.

Shards may come from anywhere (the Hub): every sample id is checked to be a plain file name before anything is
written (an id such as ``../../x`` or ``/abs`` is refused, naming the shard), every path written is checked to stay
inside ``out_dir``, and ``out_dir`` must be new or empty, so an export never mixes with stale files of another one.
"""

from __future__ import annotations

from pathlib import Path

from himbench.io import InputError, require_empty_folder

__all__ = ["export_him2k"]


def export_him2k(
    shard_dir: str | Path,
    out_dir: str | Path,
    splits: list[str] | None = None,
    image_format: str = "png",
    jpeg_quality: int = 95,
    progress: bool = True,
) -> dict[str, int]:
    """Write every sample of ``splits`` (default: all) to ``out_dir``; returns the number of images per split.

    ``image_format`` is ``"png"`` (lossless, exact ground truth) or ``"jpg"`` (as HIM-2K ships; lossy).
    ``jpeg_quality`` applies when a PNG composite is re-encoded as JPEG; a composite the shard already stores as JPEG
    is copied as it is (re-encoding would only lose more), and exporting it as png keeps its JPEG pixels. Raises
    :class:`InputError` (before writing anything) when ``out_dir`` is not empty, a split has no shards, or a sample
    id is not a plain file name or appears twice in a split.
    """

    from himbench.build_config import IMAGE_FORMATS
    from himbench.io import safe_name
    from himbench.shards import ShardFolder, check_sample_id

    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be 1 to 100, got {jpeg_quality!r}")
    out_dir = Path(out_dir)
    require_empty_folder(
        out_dir,
        "is not empty; export into a new or empty folder (an export never mixes with the files of an earlier one)",
    )
    folder = ShardFolder(shard_dir)
    chosen = list(splits or folder.splits())
    plan: dict[str, list[Path]] = {}
    for split in chosen:
        shards = folder.shards(split)
        if not shards:
            raise InputError(shard_dir, f"no shards for split {split!r} (found: {', '.join(folder.splits())})")
        seen: set[str] = set()
        for path in shards:
            for stem in folder.ids(path):
                check_sample_id(stem, path)
                safe_name(f"{stem}.{image_format}", f"{path}#{stem!r}", "sample id + suffix")
                if stem in seen:
                    raise InputError(f"{path}#{stem}", f"sample id appears twice in split {split!r}")
                seen.add(stem)
        plan[split] = shards
    try:
        return _write(folder, plan, out_dir, image_format, jpeg_quality, progress)
    except OSError as err:  # a read-only or full disk, a folder under a file: one line, not a traceback
        raise InputError(
            err.filename or out_dir, f"cannot write the export ({err.strerror or err}); is {out_dir} writable?"
        ) from err


def _write(folder, plan: dict, out_dir: Path, image_format: str, jpeg_quality: int, progress: bool) -> dict[str, int]:
    from tqdm.auto import tqdm

    from himbench.io import resolve_inside
    from himbench.io.atomic import atomic_write_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for split, shards in plan.items():
        total = folder.num_rows(split)
        with tqdm(total=total, desc=f"export {split}", unit="img", disable=not progress or None) as bar:
            for path in shards:
                for row in folder.rows(path, ("id", "image", "alphas")):
                    stem = row["id"]
                    image_bytes = _in_format(row["image"], image_format, jpeg_quality, f"{path}#{stem}")
                    atomic_write_bytes(resolve_inside(out_dir, "images", split, f"{stem}.{image_format}"), image_bytes)
                    for k, alpha in enumerate(row["alphas"]):
                        atomic_write_bytes(resolve_inside(out_dir, "alphas", split, stem, f"{k:02d}.png"), alpha)
                    bar.update(1)
        counts[split] = total
    return counts


def _in_format(data: bytes, image_format: str, jpeg_quality: int, source: str) -> bytes:
    """``data`` (a shard's composite) as ``image_format`` bytes: unchanged when it already is (its header says so),
    else decoded (guarded) and re-encoded."""
    from himbench.io import decode_image, encode_jpeg, encode_png, probe_image

    stored = probe_image(data, source).format
    if stored == {"png": "png", "jpg": "jpeg"}[image_format]:
        return data
    rgb = decode_image(data, source)
    return encode_jpeg(rgb, jpeg_quality) if image_format == "jpg" else encode_png(rgb)
