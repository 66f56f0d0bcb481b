"""HIM shards: the Parquet files the synthesis engine writes and everything else reads.

Layout of a built dataset folder (loadable with no script by ``datasets.load_dataset(DIR)``)::

    DIR/README.md                              dataset card with YAML ``configs:``
    DIR/data/<split>-00000-of-00004.parquet    one row per composite image
    DIR/build_config.json                      the resolved build configuration

Columns (Hugging Face feature types in brackets): ``id`` (string), ``seed`` (int64), ``image`` (Image, PNG bytes,
lossless so the compositing equation holds exactly), ``alphas`` (List of Image: 8-bit PNG visible mattes, back to
front), ``boxes`` (List of [x0, y0, x1, y1], exclusive end, of each visible matte > 0), ``depth_order`` (List of int:
depth rank of each instance, 0 = furthest back), ``fg_sources`` (List of string), ``bg_source`` (string),
``width``/``height``/``num_instances`` (int32).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from himbench.io import InputError, decode_alpha, decode_image
from himbench.io.atomic import atomic_write_bytes

__all__ = [
    "HIMSample",
    "arrow_schema",
    "boxes_from_alphas",
    "list_shards",
    "read_shard",
    "read_split",
    "shard_name",
    "splits_in",
    "write_shard",
]

_SHARD_RE = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.parquet$")


@dataclass
class HIMSample:
    """One composite image with its instance mattes (visible mattes, SPEC s.1), decoded into arrays."""

    id: str
    image: np.ndarray  # uint8 HxWx3 RGB
    alphas: np.ndarray  # float32 NxHxW in [0, 1], visible mattes
    boxes: np.ndarray  # int32 Nx4 [x0, y0, x1, y1), exclusive end
    seed: int = 0
    depth_order: list[int] = field(default_factory=list)
    fg_sources: list[str] = field(default_factory=list)
    bg_source: str = ""

    @property
    def num_instances(self) -> int:
        return int(self.alphas.shape[0])


def shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def boxes_from_alphas(alphas: np.ndarray) -> np.ndarray:
    """Tight [x0, y0, x1, y1) boxes of ``alpha > 0`` per instance; an empty matte gives [0, 0, 0, 0]."""
    boxes = np.zeros((len(alphas), 4), dtype=np.int32)
    for k, alpha in enumerate(alphas):
        ys = np.flatnonzero(alpha.any(axis=1))
        xs = np.flatnonzero(alpha.any(axis=0))
        if ys.size:
            boxes[k] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def _features():
    from datasets import Features, Image, List, Value

    return Features(
        {
            "id": Value("string"),
            "seed": Value("int64"),
            "image": Image(),
            "alphas": List(Image()),
            "boxes": List(List(Value("int32"))),
            "depth_order": List(Value("int32")),
            "fg_sources": List(Value("string")),
            "bg_source": Value("string"),
            "width": Value("int32"),
            "height": Value("int32"),
            "num_instances": Value("int32"),
        }
    )


def arrow_schema():
    """The pyarrow schema, carrying the Hugging Face feature metadata so ``datasets`` decodes Image columns."""
    return _features().arrow_schema


def write_shard(rows: list[dict], path: str | Path) -> Path:
    """Write encoded rows (see module docstring; images as PNG bytes) to a Parquet shard, atomically.

    Each row holds ``image`` and ``alphas`` as raw PNG bytes; they are wrapped in ``{"bytes", "path"}`` structs
    here. Output bytes depend only on ``rows`` (no timestamps), so equal inputs give byte-identical shards.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table_rows = []
    for row in rows:
        encoded = dict(row)
        encoded["image"] = {"bytes": row["image"], "path": None}
        encoded["alphas"] = [{"bytes": data, "path": None} for data in row["alphas"]]
        encoded["boxes"] = [list(map(int, box)) for box in row["boxes"]]
        table_rows.append(encoded)
    table = pa.Table.from_pylist(table_rows, schema=arrow_schema())
    sink = io.BytesIO()
    # Small row groups keep random access cheap for training; no dictionary for the (unique) PNG bytes.
    pq.write_table(table, sink, row_group_size=64, compression="zstd", use_dictionary=["id", "bg_source"])
    return atomic_write_bytes(path, sink.getvalue())


def list_shards(root: str | Path, split: str | None = None) -> list[Path]:
    """Shard files of ``root/data`` (optionally of one split), sorted by split then index."""
    data_dir = Path(root) / "data"
    if not data_dir.is_dir():
        raise InputError(root, "not a himbench shard folder (no data/ sub-folder)")
    shards = []
    for path in sorted(data_dir.glob("*.parquet")):
        match = _SHARD_RE.match(path.name)
        if match and (split is None or match["split"] == split):
            shards.append(path)
    return shards


def splits_in(root: str | Path) -> list[str]:
    return sorted({_SHARD_RE.match(p.name)["split"] for p in list_shards(root)})


def _decode_row(row: dict, source: str) -> HIMSample:
    rid = row["id"]
    image = decode_image(row["image"]["bytes"], f"{source}#{rid}/image")
    shape = image.shape[:2]
    if row["alphas"]:
        alphas = np.stack(
            [decode_alpha(a["bytes"], f"{source}#{rid}/alpha{k:02d}", shape) for k, a in enumerate(row["alphas"])]
        )
    else:
        alphas = np.zeros((0, *shape), dtype=np.float32)
    boxes = np.asarray(row["boxes"], dtype=np.int32).reshape(-1, 4)
    return HIMSample(
        id=rid,
        image=image,
        alphas=alphas,
        boxes=boxes,
        seed=int(row["seed"]),
        depth_order=list(row["depth_order"]),
        fg_sources=list(row["fg_sources"]),
        bg_source=row["bg_source"],
    )


def read_shard(path: str | Path) -> Iterator[HIMSample]:
    """Decode every row of one shard."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise InputError(path, f"cannot read Parquet shard ({err})") from err
    for batch in parquet.iter_batches(batch_size=16):
        for row in batch.to_pylist():
            yield _decode_row(row, str(path))


def read_split(root: str | Path, split: str) -> Iterator[HIMSample]:
    """Decode every sample of one split of a built dataset folder, in shard order."""
    shards = list_shards(root, split)
    if not shards:
        raise InputError(root, f"no shards for split {split!r} (found splits: {splits_in(root) or 'none'})")
    for path in shards:
        yield from read_shard(path)
