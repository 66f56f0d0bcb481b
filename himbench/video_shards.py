"""Video HIM shards: one Parquet row per clip, as :func:`himbench.synthesis.video.build_video_dataset` writes them.

Layout of a built video folder (loadable with no script by ``datasets.load_dataset(DIR)``, or
``load_dataset("parquet", data_files=...)``, streaming included)::

    DIR/README.md                               dataset card with YAML ``configs:``
    DIR/data/<split>-00000-of-00002.parquet     one row per clip
    DIR/video_config.json                       the resolved video build configuration
    DIR/build_report.json                       what the build did

Columns (Hugging Face feature types in brackets): ``id`` (string, a plain file name), ``seed`` (int64), ``frames``
(List of Image: the T composites, PNG, or JPEG in a ``--image-format jpg`` build), ``alphas`` (List of List of
Image: per person, back to front, its T 8-bit PNG visible mattes; person k is the same person in every frame),
``boxes`` (List of List of [x0, y0, x1, y1): per person, per frame, the box of its visible matte > 0, [0, 0, 0, 0]
where it is empty), ``occlusion`` (List of List of float32: per person, per frame, the hidden fraction of its own
in-frame alpha), ``depth_order`` (List of int), ``fg_sources`` (List of string), ``bg_source`` (string),
``width``/``height``/``num_frames``/``num_instances`` (int32).

Reading is guarded as for image shards: every cell's type and every list's length is checked against the row's
``num_frames``/``num_instances`` before anything is decoded, each image's header is checked against the row's size
before decoding, and a bad row is an :class:`~himbench.io.InputError` naming the file, the row and the problem.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from himbench.io import InputError, decode_alpha, safe_name
from himbench.io.atomic import atomic_write_bytes
from himbench.io.images import decode_raw

__all__ = [
    "MAX_CLIP_PEOPLE",
    "MAX_CLIP_PIXELS",
    "VIDEO_CONFIG_FILE",
    "VideoSample",
    "read_video_shard",
    "read_video_split",
    "video_arrow_schema",
    "video_features",
    "video_row_problem",
    "write_video_shard",
]

VIDEO_CONFIG_FILE = "video_config.json"
# Frames x pixels of one clip decoded at once: 30 frames of 2048x2048. A row claiming more is refused before
# decoding (its arrays alone would take gigabytes per person).
MAX_CLIP_PIXELS = 30 * 2048 * 2048
# People of one clip row: a build holds at most 20 (build_config.MAX_INSTANCES). The mattes are people x frames x
# pixels float32, so without this bound a small file of well-compressed empty PNGs could ask for hundreds of GB.
MAX_CLIP_PEOPLE = 20
_BATCH_ROWS = 2  # rows read from Arrow at a time (a clip holds tens of images)


@dataclass
class VideoSample:
    """One clip decoded into arrays."""

    id: str
    frames: np.ndarray  # uint8 (T, H, W, 3) RGB
    alphas: np.ndarray  # float32 (N, T, H, W) visible mattes in [0, 1]
    boxes: np.ndarray  # int32 (N, T, 4)
    occlusion: np.ndarray  # float32 (N, T)
    seed: int = 0
    fg_sources: list[str] = field(default_factory=list)
    bg_source: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_instances(self) -> int:
        return int(self.alphas.shape[0])


@functools.cache
def video_features():
    """The ``datasets`` Features of a video row."""
    from datasets import Features, Image, List, Value

    return Features({
        "id": Value("string"),
        "seed": Value("int64"),
        "frames": List(Image()),
        "alphas": List(List(Image())),
        "boxes": List(List(List(Value("int32")))),
        "occlusion": List(List(Value("float32"))),
        "depth_order": List(Value("int32")),
        "fg_sources": List(Value("string")),
        "bg_source": Value("string"),
        "width": Value("int32"),
        "height": Value("int32"),
        "num_frames": Value("int32"),
        "num_instances": Value("int32"),
    })


def video_arrow_schema(metadata: dict[str, str] | None = None):
    """The pyarrow schema, with the Hugging Face feature metadata so ``datasets`` decodes the Image cells."""
    from himbench.shards import schema_of

    return schema_of(video_features(), metadata)


def write_video_shard(rows: list[dict], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write encoded clip rows (images as PNG/JPEG bytes) to a Parquet shard, atomically; equal rows give equal
    bytes (no timestamps)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = video_features()
    encoded = [features.encode_example(row) for row in rows]
    table = pa.Table.from_pylist(encoded, schema=video_arrow_schema(metadata))
    sink = io.BytesIO()
    # One clip is tens of images: small row groups keep random access and streaming memory bounded.
    pq.write_table(table, sink, row_group_size=4, compression="zstd", use_dictionary=["id", "bg_source"])
    return atomic_write_bytes(path, sink.getvalue())


# ----------------------------------------------------------------------------------------------- reading
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _image_cell_ok(cell) -> bool:
    return isinstance(cell, dict) and isinstance(cell.get("bytes"), bytes)


def video_row_problem(row: dict) -> str | None:
    """Why a row (as Arrow gives it back) is not a video row, naming the column; None for a good row. Checked
    before anything is decoded."""
    for name in ("id", "bg_source"):
        if not isinstance(row.get(name), str):
            return f"{name} is {row.get(name)!r}, not a string"
    for name in ("width", "height", "num_frames", "num_instances"):
        value = row.get(name)
        if not _is_int(value) or value < (0 if name == "num_instances" else 1):
            return f"{name} is {value!r}, not a {'non-negative' if name == 'num_instances' else 'positive'} integer"
    frames, people = row["num_frames"], row["num_instances"]
    if people > MAX_CLIP_PEOPLE:
        return f"num_instances {people} is over the limit of {MAX_CLIP_PEOPLE} people per clip"
    if frames * row["width"] * row["height"] > MAX_CLIP_PIXELS:
        return (f"{frames} frames of {row['width']}x{row['height']} px are over the limit of {MAX_CLIP_PIXELS:,} "
                "pixels per clip")
    cells = row.get("frames")
    if not isinstance(cells, list) or len(cells) != frames:
        return f"frames holds {_count(cells)} images, not num_frames = {frames}"
    if not all(_image_cell_ok(c) for c in cells):
        return "frames holds a cell with no image bytes"
    for name in ("alphas", "boxes", "occlusion"):
        value = row.get(name)
        if not isinstance(value, list) or len(value) != people:
            return f"{name} holds {_count(value)} people, not num_instances = {people}"
        for k, per_person in enumerate(value):
            if not isinstance(per_person, list) or len(per_person) != frames:
                return f"{name}[{k}] holds {_count(per_person)} frames, not num_frames = {frames}"
    if not all(_image_cell_ok(c) for person in row["alphas"] for c in person):
        return "alphas holds a cell with no PNG bytes"
    for k, person in enumerate(row["boxes"]):
        for t, box in enumerate(person):
            if not isinstance(box, list) or len(box) != 4 or not all(_is_int(v) for v in box):
                return f"boxes[{k}][{t}] is {box!r}, not four integers"
    for k, person in enumerate(row["occlusion"]):
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1 for v in person):
            return f"occlusion[{k}] holds a value outside [0, 1]"
    return None


def _count(value) -> str:
    return str(len(value)) if isinstance(value, list) else repr(value)


def _decode_row(row: dict, path: Path, where: str) -> VideoSample:
    problem = video_row_problem(row)
    label = f"{where} (id {row['id']!r})" if isinstance(row.get("id"), str) else where
    if problem is not None:
        raise InputError(path, f"{label}: {problem}")
    sample_id = safe_name(row["id"], f"{path}#{row['id']!r}", "clip id")
    shape = (row["height"], row["width"])
    source = f"{path}#{sample_id}"
    frames = []
    for t, cell in enumerate(row["frames"]):
        raw, _ = decode_raw(cell["bytes"], f"{source}/frame{t:05d}", shape)
        if raw.ndim != 3 or raw.shape[2] != 3 or raw.dtype != np.uint8:
            raise InputError(f"{source}/frame{t:05d}", "expected an 8-bit RGB frame")
        frames.append(raw[:, :, ::-1])
    people, count = row["num_instances"], row["num_frames"]
    alphas = np.zeros((people, count, *shape), np.float32)
    for k, person in enumerate(row["alphas"]):
        for t, cell in enumerate(person):
            alphas[k, t] = decode_alpha(cell["bytes"], f"{source}/alpha{k:02d}/frame{t:05d}", shape)
    return VideoSample(
        id=sample_id,
        frames=np.stack(frames) if frames else np.zeros((0, *shape, 3), np.uint8),
        alphas=alphas,
        boxes=np.asarray(row["boxes"], np.int32).reshape(people, count, 4),
        occlusion=np.asarray(row["occlusion"], np.float32).reshape(people, count),
        seed=int(row.get("seed") or 0),
        fg_sources=list(row.get("fg_sources") or []),
        bg_source=row["bg_source"],
    )


def read_video_shard(path: str | Path, problems: list | None = None) -> Iterator[VideoSample]:
    """Decode every clip of one shard, one at a time; InputError naming the file and row for a bad one, or, with
    ``problems``, that row appended there as a :class:`~himbench.io.Problem` and skipped (an evaluation scores the
    other clips). An unreadable file is always an InputError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from himbench.io import Problem

    path = Path(path)
    try:
        handle = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as err:
        raise InputError(path, f"not a readable Parquet file ({err})") from err
    index = 0
    try:
        batches = handle.iter_batches(batch_size=_BATCH_ROWS)
        for batch in batches:
            for row in batch.to_pylist():
                try:
                    sample = _decode_row(row, path, f"row {index}")
                except InputError as err:
                    if problems is None:
                        raise
                    # named by shard and row even when a frame's bytes were the bad part
                    where = "" if str(err.source) == str(path) else f"row {index}: {err.source}: "
                    problems.append(Problem(str(path), f"ground truth: {where}{err.problem}; clip left out"))
                    sample = None
                index += 1
                if sample is not None:
                    yield sample
    except pa.ArrowException as err:
        raise InputError(path, f"row {index}: unreadable ({err})") from err


def read_video_split(root: str | Path, split: str) -> Iterator[VideoSample]:
    """Decode every clip of one split of a built video folder, in shard order."""
    from himbench.shards import ShardFolder

    for path in ShardFolder(root).shards(split):
        yield from read_video_shard(path)
