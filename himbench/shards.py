"""HIM shards: the Parquet files the synthesis engine writes and everything else reads.

Layout of a built dataset folder (loadable with no script by ``datasets.load_dataset(DIR)``)::

    DIR/README.md                              dataset card with YAML ``configs:``
    DIR/data/<split>-00000-of-00004.parquet    one row per composite image
    DIR/build_config.json                      the resolved build configuration
    DIR/build_report.json                      what the build did (shards, skipped sources, fingerprint)

Columns (Hugging Face feature types in brackets): ``id`` (string; a plain file name, since it names files and folders
downstream: :func:`read_shard` refuses ``../x`` or ``/abs``), ``seed`` (int64), ``image`` (Image, PNG bytes, lossless
so the compositing equation holds exactly; JPEG in a ``--image-format jpg`` build), ``alphas`` (List of Image: 8-bit
PNG visible mattes, back to front), ``boxes`` (List of [x0, y0, x1, y1], exclusive end, of each visible matte > 0),
``depth_order`` (List of int: depth rank of each instance, 0 = furthest back), ``fg_sources`` (List of string),
``bg_source`` (string), ``width``/``height``/``num_instances`` (int32), ``unknown_fraction`` (float32: share of the
people's pixels that are soft, 0 < alpha < 1), ``occlusion`` (List of float32: per person, the fraction of its own
in-frame alpha hidden by the people in front; null in shards written before it existed). Builds made with
``--store-layers`` add ``foregrounds`` (List of Image: each person's colours on the canvas), ``background`` (Image)
and ``amodal_alphas`` (List of Image: each person's own 8-bit alpha, hidden parts included), so the compositing
equation and the occlusion can be re-checked exactly.

:class:`ShardFolder` is the one reader of such a folder (layout, splits, the shard files, the two JSON files, column
subsets of a row group, id lookup): no other reader builds the path of ``data/`` or reads ``build_config.json``
itself. The writer (:mod:`himbench.synthesis.build`) places its files with :func:`shard_dir`, :func:`shard_name`,
:data:`CONFIG_FILE` and :data:`REPORT_FILE` from here (and reads back its own config and report only to decide
whether an interrupted build may resume). The schema of ``build_config.json`` is
:class:`himbench.build_config.BuildConfig` (a standard-library module below this one). Rows are encoded by
:func:`write_shard` and unwrapped on reading through the same ``datasets`` Features, so Image cells come back as plain
PNG bytes and no other module knows their Arrow layout.
"""

from __future__ import annotations

import functools
import io
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from himbench.build_config import BuildConfig
from himbench.io import InputError, decode_alpha, decode_image, read_json, safe_name
from himbench.io.atomic import atomic_write_bytes

__all__ = [
    "CONFIG_FILE",
    "DATA_DIR",
    "REPORT_FILE",
    "HIMSample",
    "RowGroup",
    "RowLocation",
    "ShardFolder",
    "arrow_schema",
    "boxes_from_alphas",
    "check_sample_id",
    "decode_alpha_list",
    "decode_mattes",
    "is_shard_name",
    "list_shards",
    "read_shard",
    "read_shard_metadata",
    "read_split",
    "row_problem",
    "schema_of",
    "shard_dir",
    "shard_name",
    "splits_in",
    "write_shard",
]

DATA_DIR = "data"  # the sub-folder of the shards, as the Hub's own Parquet datasets name it
CONFIG_FILE = "build_config.json"
REPORT_FILE = "build_report.json"
# Five digits or more: names are zero-padded to five (as the Hub's own shards), and a split of 100,000 shards or more
# simply gets longer numbers; the order of shards is numeric (see ShardFolder.shards), not by name.
_SHARD_RE = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5,})-of-(?P<total>\d{5,})\.parquet$")
_BATCH_ROWS = 16  # rows decoded from Arrow at a time when streaming a shard (a row can hold megabytes of PNG)
_OPEN_FILES = 32  # Parquet handles kept open for random access; bounded so a folder of thousands of shards fits
# the default limit of open files


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
    occlusion: list[float] | None = None  # hidden fraction per person; None in shards made before the column

    @property
    def num_instances(self) -> int:
        return int(self.alphas.shape[0])


class RowLocation(NamedTuple):
    """Where one row lives: shard file, row group in it, row in that group."""

    path: Path
    group: int
    row: int


def shard_dir(root: str | os.PathLike) -> Path:
    """The folder of the shards of the shard folder ``root`` (``root/data``), whether or not it exists yet: the
    build creates it; readers open the folder with :class:`ShardFolder`."""
    return Path(root) / DATA_DIR


def shard_name(split: str, index: int, total: int) -> str:
    """``<split>-<index>-of-<total>.parquet``, each number zero-padded to at least five digits."""
    if index < 0 or total < 1:
        raise ValueError(f"shard {index} of {total}: the index must be >= 0 and the total >= 1")
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


# --------------------------------------------------------------------------------------------- the row format
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
        "occlusion": List(Value("float32")),
    }
    if with_layers:
        # Optional (--store-layers): each person's foreground colours and the background, for exact re-compositing.
        columns["foregrounds"] = List(Image())
        columns["background"] = Image()
        columns["amodal_alphas"] = List(Image())
    return Features(columns)


@functools.cache
def _image_columns() -> tuple[frozenset[str], frozenset[str]]:
    """(columns holding one Image, columns holding a List of Image), read off the Features."""
    from datasets import Image, List

    single, lists = set(), set()
    for name, feature in _features(with_layers=True).items():
        if isinstance(feature, Image):
            single.add(name)
        elif isinstance(feature, List) and isinstance(feature.feature, Image):
            lists.add(name)
    return frozenset(single), frozenset(lists)


def arrow_schema(with_layers: bool = False, metadata: dict[str, str] | None = None):
    """The pyarrow schema, carrying the Hugging Face feature metadata so ``datasets`` decodes Image columns."""
    return schema_of(_features(with_layers), metadata)


def schema_of(features, metadata: dict[str, str] | None = None):
    """The pyarrow schema of ``datasets`` Features, with its feature metadata and ``metadata`` (str -> str) added:
    how every himbench Parquet file (image shards, clip shards) records what it holds."""
    schema = features.arrow_schema
    if metadata:
        schema = schema.with_metadata({**schema.metadata, **{k.encode(): v.encode() for k, v in metadata.items()}})
    return schema


def _image_bytes(cell: Any, source: str, name: str) -> bytes:
    # datasets may store an Image as a path with no bytes; a shard must be self-contained, so that is refused here
    # rather than failing later as a TypeError deep in a decoder.
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not isinstance(data, bytes):
        raise InputError(source, f"column {name!r} holds no PNG bytes")
    return data


def _plain_cell(name: str, value: Any, source: str) -> Any:
    """One cell as read from Arrow, an Image as its PNG bytes and a List of Image as a list of them (the inverse
    of the Features' encoding); other columns as they are."""
    single, lists = _image_columns()
    if name in single:
        return _image_bytes(value, source, name)
    if name in lists:
        if not isinstance(value, list):
            raise InputError(source, f"column {name!r} holds no list of images")
        return [_image_bytes(cell, source, name) for cell in value]
    return value


# null in a row stored without layers; occlusion (and the layers' amodal_alphas) are null in shards written before
# those columns or by another tool: the row is still scored, occlusion is then "not available".
_OPTIONAL_COLUMNS = frozenset({"foregrounds", "background", "occlusion", "amodal_alphas"})
_POSITIVE_COLUMNS = frozenset({"width", "height"})


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _cell_problem(name: str, value: Any, feature: Any) -> str | None:
    """Why ``value`` (as Arrow gives it back) does not fit ``feature``, the column's declared type; None when it
    does. Checked before any cell is used, so that a row written by another tool says what is wrong with it."""
    from datasets import Image, List, Value

    if value is None:
        return f"{name} is null"
    if isinstance(feature, Image):
        if not isinstance(value, dict) or not isinstance(value.get("bytes"), bytes):
            # datasets may store an Image as a path with no bytes; a shard must be self-contained.
            column, _, item = name.partition("[")
            return f"column {column!r} holds no PNG bytes{' in [' + item if item else ''} ({_describe(value)})"
        return None
    if isinstance(feature, List):
        if not isinstance(value, list):
            return f"{name} is {_describe(value)}, not a list"
        for k, item in enumerate(value):
            problem = _cell_problem(f"{name}[{k}]", item, feature.feature)
            if problem is not None:
                return problem
        return None
    if isinstance(feature, Value):
        dtype = str(feature.dtype)
        if dtype == "string":
            ok, wanted = isinstance(value, str), "a string"
        elif dtype.startswith(("int", "uint")):
            # A whole float (a column another tool wrote as float64) is accepted: only its value matters.
            ok = (isinstance(value, int) and not isinstance(value, bool)) or (
                isinstance(value, float) and value.is_integer()
            )
            wanted = "an integer"
        elif dtype.startswith("float"):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            wanted = "a number"
        else:
            ok, wanted = True, ""
        if not ok:
            return f"{name} is {_describe(value)}, not {wanted}"
    return None


@functools.cache
def _row_features():
    return _features(with_layers=True)


def row_problem(row: dict) -> str | None:
    """Why one row (as read from Arrow, any subset of the columns) does not fit the shard format, naming the column
    and the value (``alphas is null``, ``height is float 40.5, not an integer``); None for a good row."""
    features = _row_features()
    for name, value in row.items():
        feature = features.get(name)
        if feature is None or (value is None and name in _OPTIONAL_COLUMNS):
            continue  # a column this project does not write, or no layers stored
        problem = _cell_problem(name, value, feature)
        if problem is None and name in _POSITIVE_COLUMNS and value < 1:
            problem = f"{name} is {value}, not a positive integer"
        if problem is not None:
            return problem
    return None


def _row_label(row: dict, where: str) -> str:
    return f"{where} (id {row['id']!r})" if "id" in row else where


def _plain_row(row: dict, path: str | os.PathLike, where: str = "row") -> dict:
    """The row with Image cells as PNG bytes; :class:`InputError` naming the shard, the row (``where``, e.g.
    ``row 3``), its id and the problem when a cell does not fit the format."""
    problem = row_problem(row)
    if problem is not None:
        raise InputError(path, f"{_row_label(row, where)}: {problem}")
    source = f"{path}#{row['id']!r}" if isinstance(row.get("id"), str) else str(path)
    return {name: _plain_cell(name, value, source) for name, value in row.items()}


def check_sample_id(value: object, path: str | os.PathLike) -> str:
    """``value`` when it is a usable sample id (a plain file name: ids name files and folders downstream);
    else :class:`InputError` naming the shard and the id."""
    return safe_name(value, f"{path}#{value!r}", "sample id")


def decode_alpha_list(items: list[bytes], source: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode a row's ``alphas`` (list of PNG bytes) into float32 (N, H, W), checking each size before decoding."""
    if not items:
        return np.zeros((0, *shape), dtype=np.float32)
    return np.stack([decode_alpha(data, f"{source}/alpha{k:02d}", shape) for k, data in enumerate(items)])


def decode_mattes(row: dict, path: str | os.PathLike) -> tuple[str, np.ndarray, np.ndarray]:
    """(checked id, uint8 HxWx3 image, float32 NxHxW alphas) of a row read with at least ``id``/``image``/``alphas``.

    Raises :class:`InputError` naming the shard when the id is not a plain file name or an image is bad, over the
    pixel limit, or (for a matte) not the image's size; sizes are checked from the PNG headers before decoding."""
    rid = check_sample_id(row["id"], path)
    source = f"{path}#{rid}"
    image = decode_image(row["image"], f"{source}/image")
    return rid, image, decode_alpha_list(row["alphas"], source, image.shape[:2])


_SAMPLE_COLUMNS = ("id", "seed", "image", "alphas", "boxes", "depth_order", "fg_sources", "bg_source")


def _decode_row(row: dict, path: str | os.PathLike) -> HIMSample:
    missing = [name for name in _SAMPLE_COLUMNS if name not in row]
    if missing:
        raise InputError(path, f"{_row_label(row, 'row')}: no column {', '.join(map(repr, missing))}")
    rid, image, alphas = decode_mattes(row, path)
    source, shape = f"{path}#{rid}", image.shape[:2]
    boxes = np.asarray(row["boxes"], dtype=np.int32).reshape(-1, 4)
    foregrounds = background = None
    if row.get("foregrounds") is not None:
        foregrounds = (
            np.stack([decode_image(data, f"{source}/fg{k:02d}") for k, data in enumerate(row["foregrounds"])])
            if row["foregrounds"]
            else np.zeros((0, *shape, 3), np.uint8)
        )
        background = decode_image(row["background"], f"{source}/background")
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
        occlusion=None if row.get("occlusion") is None else [float(v) for v in row["occlusion"]],
    )


# ------------------------------------------------------------------------------------------- one Parquet file
def _open(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise InputError(path, f"cannot read Parquet shard ({err})") from err


def _columns(columns: Iterable[str] | None) -> list[str] | None:
    return None if columns is None else list(columns)


def _iter_checked(path: Path, columns: Iterable[str] | None = None) -> Iterator[tuple[dict, InputError | None]]:
    """(row, None) for each good row of one shard (only ``columns``, default all; Image cells as PNG bytes), and
    (row as stored, the InputError saying what is wrong) for a row that does not fit the format, so that the
    reading goes on past it. A file that cannot be read raises InputError. A few rows are decoded at a time."""
    parquet = _open(path)
    try:
        batches = parquet.iter_batches(batch_size=_BATCH_ROWS, columns=_columns(columns))
        index = 0
        while True:
            try:
                batch = next(batches, None)
                rows = [] if batch is None else batch.to_pylist()
            except Exception as err:  # a corrupt page deep in the file
                raise InputError(path, f"cannot read Parquet shard past row {index} ({err})") from err
            if batch is None:
                return
            for row in rows:
                try:
                    yield _plain_row(row, path, f"row {index}"), None
                except InputError as err:
                    yield row, err
                index += 1
    finally:
        parquet.close()


def _iter_rows(path: Path, columns: Iterable[str] | None = None) -> Iterator[dict]:
    """Rows of one shard (only ``columns``, default all), Image cells as PNG bytes; InputError at a bad row."""
    for row, error in _iter_checked(path, columns):
        if error is not None:
            raise error
        yield row


class RowGroup:
    """A subset of the columns of one row group, read once; rows are turned into Python objects one at a time."""

    def __init__(self, path: Path, group: int, table: Any) -> None:
        self.path = path
        self.group = group
        self._table = table

    def __len__(self) -> int:
        return self._table.num_rows

    def row(self, index: int) -> dict:
        """Row ``index`` of the group (Image cells as PNG bytes)."""
        try:
            record = self._table.slice(index, 1).to_pylist()[0]
        except Exception as err:  # pyarrow raises several types for corrupt data
            raise InputError(self.path, f"cannot read row group {self.group} ({err})") from err
        return _plain_row(record, self.path, f"row {index} of row group {self.group}")

    def __iter__(self) -> Iterator[dict]:
        return (self.row(index) for index in range(len(self)))


# ------------------------------------------------------------------------------------------------ the folder
class ShardFolder:
    """A built shard folder: ``root/data/<split>-NNNNN-of-NNNNN.parquet``, ``build_config.json``,
    ``build_report.json``. Every read of the folder goes through here (see the module docstring).

    Raises :class:`InputError` naming the folder when ``root/data`` is missing; every unreadable file is an
    InputError naming that file. Picklable (open file handles stay with the process that opened them).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.data_dir = shard_dir(self.root)
        if not self.data_dir.is_dir():
            raise InputError(root, "not a himbench shard folder (no data/ sub-folder)")
        self._files: OrderedDict[Path, Any] = OrderedDict()
        self._ids: dict[str | None, dict[str, RowLocation]] = {}

    def __repr__(self) -> str:
        return f"ShardFolder({str(self.root)!r})"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_files"] = OrderedDict()
        return state

    @staticmethod
    def is_shard_folder(root: str | os.PathLike) -> bool:
        """True when ``root`` has the ``data/`` sub-folder that makes it a shard folder (what the constructor
        requires), without opening anything."""
        return shard_dir(root).is_dir()

    # ----------------------------------------------------------------------------------------------- layout
    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def report_path(self) -> Path:
        return self.root / REPORT_FILE

    def shards(self, split: str | None = None, required: bool = False) -> list[Path]:
        """Shard files (of one ``split``, else all), sorted by split then index. ``required``: raise
        :class:`InputError` naming the folder and the splits it has when there is none."""
        if split is not None:
            safe_name(split, self.root, "split name")
        found = []
        for path in self.data_dir.glob("*.parquet"):
            match = _SHARD_RE.match(path.name)
            if match and (split is None or match["split"] == split):
                found.append((match["split"], int(match["index"]), int(match["total"]), path.name, path))
        # Numeric order: past 99,999 shards the names grow a digit, and "100000" sorts before "99999" as text.
        found = [entry[-1] for entry in sorted(found)]
        if required and not found:
            raise InputError(self.root, f"no shards for split {split!r} (found splits: {self.splits() or 'none'})")
        return found

    def parquet_files(self) -> list[Path]:
        """Every ``data/*.parquet`` entry, sorted by path, whatever its name (hidden files and names that are not
        shard names included): what the upload check and the folder's identity digest (the prediction manifest)
        have always covered. Readers of samples use :meth:`shards`."""
        return sorted(self.data_dir.glob("*.parquet"))

    def splits(self) -> list[str]:
        """Names of the splits that have shards, sorted."""
        return sorted({self.split_of(path) for path in self.shards()})

    @staticmethod
    def split_of(path: str | os.PathLike) -> str:
        """The split a shard file belongs to, from its name."""
        match = _SHARD_RE.match(Path(path).name)
        if match is None:
            raise InputError(path, "not a shard file name (<split>-NNNNN-of-NNNNN.parquet)")
        return match["split"]

    def shard_path(self, split: str, index: int, total: int) -> Path:
        """Where shard ``index`` of ``total`` of ``split`` lives (the split name checked to be a plain name)."""
        name = shard_name(safe_name(split, self.root, "split name"), index, total)
        if not is_shard_name(name):
            raise InputError(self.root, f"split name {split!r} must be letters, digits and underscores")
        return self.data_dir / name

    # ------------------------------------------------------------------------------------ build_*.json
    def config(self) -> BuildConfig:
        """The build's configuration (``build_config.json``, size- and depth-limited)."""
        if not self.config_path.is_file():
            raise InputError(self.root, f"no {CONFIG_FILE}: not a folder written by `himbench build-dataset`")
        data = read_json(self.config_path)
        try:
            return BuildConfig.from_dict(data)
        except (AttributeError, ValueError, TypeError) as err:
            raise InputError(self.config_path, f"cannot read the build config ({err})") from err

    def report(self) -> dict:
        """The build's report (``build_report.json``, size- and depth-limited) as a dict."""
        if not self.report_path.is_file():
            raise InputError(self.root, f"no {REPORT_FILE} (a build writes it when it finishes)")
        data = read_json(self.report_path)
        if not isinstance(data, dict):
            raise InputError(self.report_path, "the build report is not a JSON object")
        return data

    # ------------------------------------------------------------------------------------------ reading
    def row_group_sizes(self, path: str | os.PathLike) -> list[int]:
        """Rows in each row group of one shard, from its footer."""
        path = Path(path)
        parquet = _open(path)
        try:
            metadata = parquet.metadata
            return [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
        except Exception as err:  # a footer that parses but lies
            raise InputError(path, f"cannot read Parquet shard ({err})") from err
        finally:
            parquet.close()

    def num_rows(self, split: str | None = None) -> int:
        """Rows of one split (else of all), from the footers only."""
        return sum(sum(self.row_group_sizes(path)) for path in self.shards(split))

    def _file(self, path: Path):
        parquet = self._files.pop(path, None)
        if parquet is None:
            parquet = _open(path)
        self._files[path] = parquet
        while len(self._files) > _OPEN_FILES:
            self._files.popitem(last=False)[1].close()
        return parquet

    def read_row_group(self, path: str | os.PathLike, group: int, columns: Iterable[str] | None = None) -> RowGroup:
        """``columns`` (default all) of row group ``group`` of one shard; the file handle is kept for the next call."""
        path = Path(path)
        parquet = self._file(path)
        try:
            table = parquet.read_row_group(group, columns=_columns(columns))
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise InputError(path, f"cannot read row group {group} ({err})") from err
        return RowGroup(path, group, table)

    def read_columns(self, path: str | os.PathLike, columns: Iterable[str]) -> dict[str, list]:
        """Whole ``columns`` of one shard, as lists (Image cells as PNG bytes)."""
        path = Path(path)
        parquet = _open(path)
        try:
            table = parquet.read(columns=_columns(columns))
            values = {name: table.column(name).to_pylist() for name in table.column_names}
        except Exception as err:  # pyarrow raises several types for corrupt files (or a missing column)
            raise InputError(path, f"cannot read Parquet shard ({err})") from err
        finally:
            parquet.close()
        return {name: [_plain_cell(name, cell, str(path)) for cell in cells] for name, cells in values.items()}

    def ids(self, path: str | os.PathLike) -> list[Any]:
        """The ``id`` column of one shard, as stored (not checked: see :func:`check_sample_id`)."""
        return self.read_columns(path, ["id"])["id"]

    def rows(self, path: str | os.PathLike, columns: Iterable[str] | None = None) -> Iterator[dict]:
        """Stream the rows of one shard (only ``columns``, default all), Image cells as PNG bytes. A row that does
        not fit the format raises :class:`InputError` naming the shard, the row and what is wrong."""
        return _iter_rows(Path(path), columns)

    def checked_rows(
        self, path: str | os.PathLike, columns: Iterable[str] | None = None
    ) -> Iterator[tuple[dict, InputError | None]]:
        """Stream the rows of one shard as (row, None), or (row as stored, InputError) for a row that does not fit
        the format, so that one bad row costs only itself. A file that cannot be read still raises."""
        return _iter_checked(Path(path), columns)

    def samples(self, split: str) -> Iterator[HIMSample]:
        """Decode every sample of ``split``, in shard order (InputError when the split has no shards)."""
        for path in self.shards(split, required=True):
            for row in _iter_rows(path):
                yield _decode_row(row, path)

    # -------------------------------------------------------------------------------------------- lookup
    def _id_index(self, split: str | None) -> dict[str, RowLocation]:
        index = self._ids.get(split)
        if index is None:
            index = {}
            for path in self.shards(split):
                sizes = self.row_group_sizes(path)
                ids = self.ids(path)
                if len(ids) != sum(sizes):
                    raise InputError(path, f"footer says {sum(sizes)} rows, the id column has {len(ids)}")
                ids_left = iter(ids)
                for group, size in enumerate(sizes):
                    for row in range(size):
                        # Ids are unique in a build; elsewhere the first row wins, as in evaluation.
                        index.setdefault(next(ids_left), RowLocation(path, group, row))
            self._ids[split] = index
        return index

    def locate(self, sample_id: str, split: str | None = None) -> RowLocation:
        """Where the row of ``sample_id`` is (in ``split``, else in any split; the first row when repeated).
        Raises :class:`InputError` naming the folder when there is no such id."""
        location = self._id_index(split).get(sample_id)
        if location is None:
            where = f"split {split!r}" if split is not None else "any split"
            raise InputError(self.root, f"no sample with id {sample_id!r} in {where}")
        return location

    def read_row(self, location: RowLocation, columns: Iterable[str] | None = None) -> dict:
        """``columns`` (default all) of the row at ``location``, Image cells as PNG bytes."""
        return self.read_row_group(location.path, location.group, columns).row(location.row)

    def sample(self, sample_id: str, split: str | None = None) -> HIMSample:
        """The decoded sample with id ``sample_id``."""
        location = self.locate(sample_id, split)
        return _decode_row(self.read_row(location), location.path)


# ----------------------------------------------------------------------------------------------- writing
def write_shard(rows: list[dict], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write encoded rows (see module docstring; images as PNG bytes) to a Parquet shard, atomically.

    Each row holds ``image`` and ``alphas`` (and optionally ``foregrounds``/``background``) as raw PNG bytes; the
    ``datasets`` Features encode them as ``{"bytes", "path"}`` structs. ``metadata`` (keys starting with
    ``himbench``) goes into the file footer. Output bytes depend only on the inputs (no timestamps), so equal inputs
    give byte-identical shards.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with_layers = bool(rows) and "foregrounds" in rows[0]
    features = _features(with_layers)
    encoded = []
    for row in rows:
        # Columns added later default to empty (null), so rows made by older callers still encode.
        defaults = {"unknown_fraction": 0.0, "occlusion": None, **({"amodal_alphas": None} if with_layers else {})}
        row = {**defaults, **row, "boxes": [list(map(int, box)) for box in row["boxes"]]}
        encoded.append(features.encode_example(row))
    table = pa.Table.from_pylist(encoded, schema=arrow_schema(with_layers, metadata))
    sink = io.BytesIO()
    # Small row groups keep random access cheap for training; no dictionary for the (unique) PNG bytes.
    pq.write_table(table, sink, row_group_size=64, compression="zstd", use_dictionary=["id", "bg_source"])
    return atomic_write_bytes(path, sink.getvalue())


def read_shard_metadata(path: str | Path) -> tuple[int, dict[str, str]]:
    """(number of rows, himbench key/value metadata) of a shard, reading only its footer."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    extra = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items() if k.decode().startswith("himbench")}
    return meta.num_rows, extra


# --------------------------------------------------------------------------- functions kept for callers
def list_shards(root: str | Path, split: str | None = None) -> list[Path]:
    """Shard files of ``root/data`` (optionally of one split), sorted by split then index."""
    return ShardFolder(root).shards(split)


def splits_in(root: str | Path) -> list[str]:
    return ShardFolder(root).splits()


def read_shard(path: str | Path) -> Iterator[HIMSample]:
    """Decode every row of one shard."""
    path = Path(path)
    for row in _iter_rows(path):
        yield _decode_row(row, path)


def read_split(root: str | Path, split: str) -> Iterator[HIMSample]:
    """Decode every sample of one split of a built dataset folder, in shard order."""
    yield from ShardFolder(root).samples(split)
