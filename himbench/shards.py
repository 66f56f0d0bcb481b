"""HIM shards: the Parquet files the synthesis engine writes and everything else reads.

Layout of a built dataset folder (loadable with no script by ``datasets.load_dataset(DIR)``)::

    DIR/README.md                              dataset card with YAML ``configs:``
    DIR/data/<split>-00000-of-00004.parquet    one row per composite image
    DIR/build_config.json                      the resolved build configuration

Columns (Hugging Face feature types in brackets): ``id`` (string; a plain file name, since it names files and
folders downstream: :func:`read_shard` refuses ``../x`` or ``/abs``), ``seed`` (int64), ``image`` (Image, PNG bytes,
lossless so the compositing equation holds exactly), ``alphas`` (List of Image: 8-bit PNG visible mattes, back to
front), ``boxes`` (List of [x0, y0, x1, y1], exclusive end, of each visible matte > 0), ``depth_order`` (List of int:
depth rank of each instance, 0 = furthest back), ``fg_sources`` (List of string), ``bg_source`` (string),
``width``/``height``/``num_instances`` (int32), ``unknown_fraction`` (float32: share of the people's pixels that
are soft, 0 < alpha < 1). Builds made with ``--store-layers`` add ``foregrounds`` (List of Image: each person's
colours on the canvas) and ``background`` (Image), so the compositing equation can be re-checked exactly.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from himbench.io import InputError, decode_alpha, decode_image, safe_name
from himbench.io.atomic import atomic_write_bytes

__all__ = [
    "HIMSample",
    "arrow_schema",
    "boxes_from_alphas",
    "decode_alpha_list",
    "is_shard_name",
    "list_shards",
    "read_shard",
    "read_shard_metadata",
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
    foregrounds: np.ndarray | None = None  # uint8 NxHxWx3, only in builds made with --store-layers
    background: np.ndarray | None = None  # uint8 HxWx3, only in builds made with --store-layers

    @property
    def num_instances(self) -> int:
        return int(self.alphas.shape[0])


def shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def is_shard_name(name: str) -> bool:
    """True for a file name this project writes as a shard (``<split>-00000-of-00004.parquet``)."""
    return _SHARD_RE.match(name) is not None


def boxes_from_alphas(alphas: np.ndarray) -> np.ndarray:
    """Tight [x0, y0, x1, y1) boxes of ``alpha > 0`` per instance; an empty matte gives [0, 0, 0, 0]."""
    boxes = np.zeros((len(alphas), 4), dtype=np.int32)
    for k, alpha in enumerate(alphas):
        ys = np.flatnonzero(alpha.any(axis=1))
        xs = np.flatnonzero(alpha.any(axis=0))
        if ys.size:
            boxes[k] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def _features(with_layers: bool = False):
    from datasets import Features, Image, List, Value

    columns = {
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
        "unknown_fraction": Value("float32"),
    }
    if with_layers:
        # Optional (--store-layers): each person's foreground colours and the background, for exact re-compositing.
        columns["foregrounds"] = List(Image())
        columns["background"] = Image()
    return Features(columns)


def arrow_schema(with_layers: bool = False, metadata: dict[str, str] | None = None):
    """The pyarrow schema, carrying the Hugging Face feature metadata so ``datasets`` decodes Image columns."""
    schema = _features(with_layers).arrow_schema
    if metadata:
        schema = schema.with_metadata({**schema.metadata, **{k.encode(): v.encode() for k, v in metadata.items()}})
    return schema


def read_shard_metadata(path: str | Path) -> tuple[int, dict[str, str]]:
    """(number of rows, himbench key/value metadata) of a shard, reading only its footer."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    extra = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items() if k.decode().startswith("himbench")}
    return meta.num_rows, extra


def write_shard(rows: list[dict], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write encoded rows (see module docstring; images as PNG bytes) to a Parquet shard, atomically.

    Each row holds ``image`` and ``alphas`` (and optionally ``foregrounds``/``background``) as raw PNG bytes; they are
    wrapped in ``{"bytes", "path"}`` structs here. ``metadata`` (keys starting with ``himbench``) goes into the file
    footer. Output bytes depend only on the inputs (no timestamps), so equal inputs give byte-identical shards.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with_layers = bool(rows) and "foregrounds" in rows[0]
    table_rows = []
    for row in rows:
        encoded = dict(row)
        encoded.setdefault("unknown_fraction", 0.0)
        encoded["image"] = {"bytes": row["image"], "path": None}
        encoded["alphas"] = [{"bytes": data, "path": None} for data in row["alphas"]]
        encoded["boxes"] = [list(map(int, box)) for box in row["boxes"]]
        if with_layers:
            encoded["foregrounds"] = [{"bytes": data, "path": None} for data in row["foregrounds"]]
            encoded["background"] = {"bytes": row["background"], "path": None}
        table_rows.append(encoded)
    table = pa.Table.from_pylist(table_rows, schema=arrow_schema(with_layers, metadata))
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


def decode_alpha_list(items: list[dict], source: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode a row's ``alphas`` cell (list of ``{"bytes", "path"}``) into float32 (N, H, W), checking each size."""
    if not items:
        return np.zeros((0, *shape), dtype=np.float32)
    return np.stack([decode_alpha(a["bytes"], f"{source}/alpha{k:02d}", shape) for k, a in enumerate(items)])


def _decode_row(row: dict, source: str) -> HIMSample:
    rid = safe_name(row["id"], f"{source}#{row['id']!r}", "sample id")  # ids become folder names downstream
    image = decode_image(row["image"]["bytes"], f"{source}#{rid}/image")
    shape = image.shape[:2]
    alphas = decode_alpha_list(row["alphas"], f"{source}#{rid}", shape)
    boxes = np.asarray(row["boxes"], dtype=np.int32).reshape(-1, 4)
    foregrounds = background = None
    if row.get("foregrounds") is not None:
        foregrounds = (
            np.stack([decode_image(f["bytes"], f"{source}#{rid}/fg{k:02d}") for k, f in enumerate(row["foregrounds"])])
            if row["foregrounds"]
            else np.zeros((0, *shape, 3), np.uint8)
        )
        background = decode_image(row["background"]["bytes"], f"{source}#{rid}/background")
    return HIMSample(
        id=rid,
        image=image,
        alphas=alphas,
        boxes=boxes,
        seed=int(row["seed"]),
        depth_order=list(row["depth_order"]),
        fg_sources=list(row["fg_sources"]),
        bg_source=row["bg_source"],
        foregrounds=foregrounds,
        background=background,
    )


def read_shard(path: str | Path) -> Iterator[HIMSample]:
    """Decode every row of one shard."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise InputError(path, f"cannot read Parquet shard ({err})") from err
    batches = parquet.iter_batches(batch_size=16)
    while True:
        try:
            batch = next(batches, None)
        except Exception as err:  # a corrupt page deep in the file
            raise InputError(path, f"cannot read Parquet shard ({err})") from err
        if batch is None:
            return
        for row in batch.to_pylist():
            yield _decode_row(row, str(path))


def read_split(root: str | Path, split: str) -> Iterator[HIMSample]:
    """Decode every sample of one split of a built dataset folder, in shard order."""
    shards = list_shards(root, split)
    if not shards:
        raise InputError(root, f"no shards for split {split!r} (found splits: {splits_in(root) or 'none'})")
    for path in shards:
        yield from read_shard(path)
