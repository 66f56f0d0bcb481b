"""``predictions.json``: what made a prediction folder, and which ground truth it belongs to.

``himbench predict`` writes this manifest at the top of its output folder, so that ``himbench evaluate PRED_DIR``
knows the ground truth without ``--gt`` and a leaderboard row can be traced back to the model, weights and options
that produced the files it scored::

    {
      "format": "himbench-predictions-v1",
      "source": {"kind": "shards", "path": "../data/him-test",      # relative to the manifest when possible
                 "build_fingerprint": "3f2a...", "shards_digest": "9c1e..."},
      "splits": ["test"],
      "model": "e2ehim-tiny",
      "checkpoint": {"path": "...", "sha256": "..."},
      "options": {...resolved predict options...},
      "versions": {"himbench": "0.1.0", "torch": "2.13.0"},
      "created": "2026-11-25T22:00:00+00:00"
    }

``source.kind`` is ``shards`` (a built shard folder: ground truth known), ``hub`` (a Hub dataset id and revision) or
``images`` (image files: no ground truth, unless ``inputs`` is one benchmark folder and ``layouts`` the one layout
of :mod:`himbench.layouts` it was read as, e.g. P3M-500-NP: then that folder is the ground truth). The ground truth
is checked when it is used: a folder that moved, that no longer fits its layout, or that now holds a different build
(its fingerprint or its shard files changed), is an :class:`InputError`, never a silent score against other data.
Predicting several splits into one folder merges their names into ``splits``; a second
model or another source into the same folder is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from himbench.io import InputError, read_json, sha256_file
from himbench.io.atomic import atomic_write_text
from himbench.shards import ShardFolder

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "PredictionManifest",
    "ground_truth_of",
    "merged_manifest",
    "new_manifest",
    "read_manifest",
    "shard_folder_identity",
    "shard_source",
    "write_manifest",
]

MANIFEST_NAME = "predictions.json"
FORMAT = "himbench-predictions-v1"
_FORMAT_PREFIX = "himbench-predictions-v"
_MAX_BYTES = 1 << 20  # a manifest is a few KB; refuse to parse anything large
_FOOTER_BYTES = 1 << 16


@dataclass
class PredictionManifest:
    source: dict[str, Any]
    splits: list[str]
    model: str
    checkpoint: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT

    def provenance(self) -> dict[str, Any]:
        """The facts a report or leaderboard row records about what made the predictions."""
        return {
            "model": self.model,
            "checkpoint": self.checkpoint.get("path"),
            "checkpoint_sha256": self.checkpoint.get("sha256"),
            "options": self.options,
            "source": self.source.get("path") or self.source.get("hub_id"),
            "created": self.created,
        }


def shard_folder_identity(folder: str | Path) -> dict[str, str]:
    """``build_fingerprint`` (from build_config.json, when there is one) and ``shards_digest`` (names, sizes and
    footers of data/*.parquet) of a built shard folder: what must still hold when its predictions are scored.
    Raises :class:`InputError` naming the folder when it has no ``data/`` (not a shard folder)."""
    shards = ShardFolder(folder)
    identity: dict[str, str] = {}
    if shards.config_path.is_file():
        identity["build_fingerprint"] = shards.config().fingerprint()
    # Name, size and the Parquet footer (row-group offsets and column statistics) of every shard: any rebuild that
    # changes a row changes the footer, and reading 64 KiB per shard keeps this instant on large datasets.
    digest = hashlib.sha256()
    for shard in shards.parquet_files():
        size = shard.stat().st_size
        digest.update(f"{shard.name}\0{size}\n".encode())
        with open(shard, "rb") as handle:
            handle.seek(max(0, size - _FOOTER_BYTES))
            digest.update(handle.read(_FOOTER_BYTES))
    identity["shards_digest"] = digest.hexdigest()[:16]
    return identity


def _relative(target: Path, start: Path) -> str:
    try:
        return os.path.relpath(target.resolve(), start.resolve())
    except ValueError:  # another drive on Windows: no relative path exists
        return str(target.resolve())


def shard_source(folder: str | Path, manifest_dir: str | Path) -> dict[str, Any]:
    """The ``source`` record of a built shard folder, its path relative to the manifest's folder."""
    return {"kind": "shards", "path": _relative(Path(folder), Path(manifest_dir)), **shard_folder_identity(folder)}


def new_manifest(
    source: dict[str, Any], splits: list[str], model: str, checkpoint: str | Path, options: dict[str, Any]
) -> PredictionManifest:
    """A manifest for predictions just made (versions and date filled in; the weights file is hashed)."""
    import torch

    from himbench import __version__
    from himbench.checkpoints import WEIGHTS_NAME

    path = Path(checkpoint)
    weights = path / WEIGHTS_NAME if path.is_dir() else path
    sha = sha256_file(weights) if weights.is_file() else None  # None: a Hub id (its files sit in the Hub cache)
    return PredictionManifest(
        source=source,
        splits=sorted(set(splits)),
        model=model,
        checkpoint={"path": str(checkpoint), "sha256": sha},
        options=options,
        versions={"himbench": __version__, "torch": torch.__version__.split("+")[0]},
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    )


def read_manifest(pred_dir: str | Path) -> PredictionManifest | None:
    """The manifest of a prediction folder, or None when it has none (predictions made elsewhere)."""
    path = Path(pred_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        record = read_json(path, max_bytes=_MAX_BYTES, max_depth=8)
    except InputError as err:
        raise InputError(path, f"prediction manifest: {err.problem}; pass --gt to score anyway") from err
    if not isinstance(record, dict):
        raise InputError(path, "prediction manifest must be a JSON object")
    version = str(record.get("format", ""))
    if version != FORMAT:
        if version.startswith(_FORMAT_PREFIX):
            raise InputError(
                path, f"written by a newer himbench (format {version!r}; this one reads {FORMAT!r}): upgrade "
                "himbench, or pass --gt to score against ground truth you name"
            )
        raise InputError(path, f"not a himbench prediction manifest (format {version!r})")
    known = {f for f in PredictionManifest.__dataclass_fields__}
    missing = sorted(name for name in ("source", "splits", "model", "checkpoint") if name not in record)
    if missing:
        raise InputError(path, f"prediction manifest lacks the field(s) {', '.join(map(repr, missing))}")
    problem = _field_problem(record)
    if problem is not None:
        raise InputError(path, f"prediction manifest: {problem}; `himbench evaluate --gt` scores without it")
    return PredictionManifest(**{k: v for k, v in record.items() if k in known})


def _kind(value: Any) -> str:
    text = json.dumps(value)
    return f"{'null' if value is None else type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and "\0" not in value  # a NUL would fail later as a path


# The type of every field: a manifest is read from a folder anyone may have handed over, and every later use
# (merging, provenance, the ground-truth lookup) relies on these.
_OBJECT_FIELDS = ("source", "checkpoint", "options", "versions")
_TEXT_FIELDS = ("model", "created", "format")
_OPTIONAL_TEXT = {"source": ("kind", "path", "hub_id", "revision", "build_fingerprint", "shards_digest"),
                  "checkpoint": ("path", "sha256")}


def _field_problem(record: dict[str, Any]) -> str | None:
    """Why a manifest's fields do not have the types :class:`PredictionManifest` needs; None when they do."""
    for name in _OBJECT_FIELDS:
        if name in record and not isinstance(record[name], dict):
            return f"{name!r} must be an object, not {_kind(record[name])}"
    for name in _TEXT_FIELDS:
        if name in record and not _is_text(record[name]):
            return f"{name!r} must be a string, not {_kind(record[name])}"
    splits = record.get("splits")
    if not isinstance(splits, list) or not all(_is_text(split) for split in splits):
        return f"'splits' must be a list of strings, not {_kind(splits)}"
    for name, keys in _OPTIONAL_TEXT.items():
        for key in keys:
            value = record[name].get(key)
            if value is not None and not _is_text(value):
                return f"'{name}.{key}' must be a string or null, not {_kind(value)}"
    source = record["source"]
    if not isinstance(source.get("kind"), str):
        return f"'source.kind' must be a string, not {_kind(source.get('kind'))}"
    if source["kind"] == "mixed":
        sources = source.get("sources")
        if not isinstance(sources, list) or not all(isinstance(item, dict) for item in sources):
            return f"'source.sources' must be a list of objects, not {_kind(sources)}"
    return None


def merged_manifest(pred_dir: str | Path, manifest: PredictionManifest) -> PredictionManifest:
    """``manifest`` merged with the one already in ``pred_dir`` (if any): the splits are joined; predictions from
    another source make the source ``mixed`` (no single ground truth: ``evaluate`` then needs ``--gt``). Predictions
    of another model or other weights are refused: one folder, one model. Call before predicting, so a refusal
    writes nothing."""
    path = Path(pred_dir) / MANIFEST_NAME
    existing = read_manifest(pred_dir) if path.is_file() else None
    if existing is None:
        return manifest
    if existing.model != manifest.model or existing.checkpoint.get("sha256") != manifest.checkpoint.get("sha256"):
        raise InputError(
            path, f"this folder holds predictions of {existing.model} (weights sha256 "
            f"{str(existing.checkpoint.get('sha256'))[:12]}); write predictions of another model or other weights "
            "into a new folder"
        )
    merged = PredictionManifest(**asdict(manifest))
    merged.splits = sorted(set(existing.splits) | set(manifest.splits))
    if existing.source != manifest.source:
        sources = [*_sources(existing.source), *_sources(manifest.source)]
        unique = {json.dumps(source, sort_keys=True): source for source in sources}
        merged.source = {"kind": "mixed", "sources": list(unique.values())}
    return merged


def _sources(source: dict[str, Any]) -> list[dict[str, Any]]:
    return list(source.get("sources", [])) if source.get("kind") == "mixed" else [source]


def write_manifest(pred_dir: str | Path, manifest: PredictionManifest) -> Path:
    """Write the manifest of ``pred_dir`` atomically, merged with an existing one (:func:`merged_manifest`)."""
    path = Path(pred_dir) / MANIFEST_NAME
    manifest = merged_manifest(pred_dir, manifest)
    Path(pred_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n")
    return path


def ground_truth_of(pred_dir: str | Path, manifest: PredictionManifest) -> Path:
    """The ground-truth folder the manifest names, checked to be the same data the predictions were made from."""
    pred_dir = Path(pred_dir)
    where = pred_dir / MANIFEST_NAME
    kind = manifest.source.get("kind")
    layout_folder = _layout_folder(where, manifest.source) if kind == "images" else None
    if layout_folder is not None:
        return layout_folder
    if kind != "shards":
        what = {"hub": "a Hub dataset", "mixed": "several sources"}.get(str(kind), "image files without ground truth")
        raise InputError(
            where, f"the predictions were made from {what}; pass --gt (a shard folder or a HIM-2K folder)"
        )
    recorded = str(manifest.source.get("path", ""))
    folder = Path(recorded) if Path(recorded).is_absolute() else (pred_dir / recorded)
    if not ShardFolder.is_shard_folder(folder):
        raise InputError(
            where, f"the ground truth it names ({recorded}, i.e. {folder.resolve()}) is not a shard folder any more "
            "(moved or deleted?); pass --gt with its new location"
        )
    now = shard_folder_identity(folder)
    for key in ("build_fingerprint", "shards_digest"):
        before = manifest.source.get(key)
        if before is not None and now.get(key) != before:
            raise InputError(
                where, f"the ground truth at {folder.resolve()} changed since the predictions were made ({key} "
                f"{before} then, {now.get(key)} now): it was rebuilt or replaced. Predict again, or pass --gt "
                "to score against it anyway"
            )
    return folder.resolve()


def _layout_folder(where: Path, source: dict[str, Any]) -> Path | None:
    """The benchmark folder ``himbench predict`` read (``source.inputs`` = one folder, ``source.layouts`` = the one
    layout of :mod:`himbench.layouts` it was read as), checked to still fit that layout; None when the predictions
    were not made from exactly one benchmark folder (then there is no ground truth to name)."""
    inputs, layouts = source.get("inputs"), source.get("layouts")
    if not (isinstance(inputs, list) and isinstance(layouts, list) and len(inputs) == 1 and len(layouts) == 1
            and _is_text(inputs[0]) and _is_text(layouts[0])):
        return None
    from himbench.layouts import detect_layout, get_layout

    try:
        layout = get_layout(layouts[0])
    except KeyError:
        raise InputError(where, f"the predictions name an unknown data layout {layouts[0]!r}; pass --gt") from None
    if "ground_truth" not in layout.roles:
        return None
    folder = Path(inputs[0])
    if not folder.is_dir():
        raise InputError(where, f"the ground truth it names ({folder}, a {layout.name} folder) is not there any more "
                                "(moved or deleted?); pass --gt with its new location")
    try:
        detect_layout(folder, "ground_truth", layout.name)
    except InputError as err:
        raise InputError(where, f"the ground truth it names no longer fits layout {layout.name}: {err.problem}; "
                                "pass --gt") from err
    return folder.resolve()
