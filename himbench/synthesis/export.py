"""Export built shards to the HIM-2K folder layout, for tools that expect files on disk.

Layout: ``images/<split>/<id>.<ext>`` and ``alphas/<split>/<id>/<k>.png`` (k = 00, 01, ...), the same layout
``himbench evaluate --gt`` reads. Mattes are copied byte for byte from the shards (no re-encoding).
"""

from __future__ import annotations

from pathlib import Path

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
    """
    import cv2
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from himbench.io import decode_image
    from himbench.io.atomic import atomic_write_bytes
    from himbench.shards import list_shards, splits_in

    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    out_dir = Path(out_dir)
    counts: dict[str, int] = {}
    for split in splits or splits_in(shard_dir):
        shards = list_shards(shard_dir, split)
        total = sum(pq.read_metadata(p).num_rows for p in shards)
        with tqdm(total=total, desc=f"export {split}", unit="img", disable=not progress or None) as bar:
            for path in shards:
                table = pq.read_table(path, columns=["id", "image", "alphas"])
                for row in table.to_pylist():
                    stem = row["id"]
                    image_bytes = row["image"]["bytes"]
                    if image_format == "jpg":
                        rgb = decode_image(image_bytes, f"{path}#{stem}")
                        ok, buffer = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                        image_bytes = buffer.tobytes()
                    atomic_write_bytes(out_dir / "images" / split / f"{stem}.{image_format}", image_bytes)
                    for k, alpha in enumerate(row["alphas"]):
                        atomic_write_bytes(out_dir / "alphas" / split / stem / f"{k:02d}.png", alpha["bytes"])
                    bar.update(1)
        counts[split] = total
    return counts
