"""Data layouts: the one table that says what kind of folder a path is, how to list its samples and load one.

Every part of himbench that is handed a folder (``evaluate --gt``, ``predict``, ``bench``, the foreground sources of
``build-dataset``) asks :func:`find_layout` / :func:`detect_layout` instead of looking for sub-folders itself, so a new
benchmark is one entry in :data:`LAYOUTS`. Each entry says what it looks for (for the error a folder that fits no
layout gets), which roles it can play, and, for the classic single-matte benchmarks, where the photo, matte and
trimap of a sample live. The layouts of the released benchmarks are read from the authors' repositories; see
``docs/layouts.md`` for each one and its source.

=================  =======================================================================  =========================
name               looks for                                                                sample stem
=================  =======================================================================  =========================
``shards``         ``data/*.parquet`` (``himbench build-dataset``)                          the row's ``id``
``him2k``          ``alphas/<split>/<stem>/<k>.png`` [+ ``images/<split>/<stem>.jpg``]     the folder name
``P3M-500-P``      ``blurred_image/<stem>.jpg`` + ``mask/<stem>.png`` [+ ``trimap/``]        the file stem
``P3M-500-NP``     ``original_image/<stem>.jpg`` + ``mask/<stem>.png`` [+ ``trimap/``]       the file stem
``AIM-500``        ``original/<stem>.jpg`` + ``mask/<stem>.png`` [+ ``trimap/``]             the file stem
``PPM-100``        ``image/<name>`` + ``matte/<name>`` (same file name, JPEG mattes)        the file stem
``Composition-1k`` ``merged/<fg>_<i>.png`` + ``alpha_copy/<fg>_<i>.png`` (or ``alpha/<fg>.png``)  ``<fg>_<i>``
                   + ``trimaps/<fg>_<i>.png``
``image-alpha``    ``original/`` + ``alpha/`` (the P3M/AIM demo folders)                     the file stem
``fg-alpha``       ``fg/`` + ``alpha/`` (foreground colours; a synthesis source only)        the file stem
=================  =======================================================================  =========================

The single-matte layouts have one split, ``test``; one matte per photo (one instance, or one merged foreground).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from himbench.io import (
    IMAGE_SUFFIXES,
    LAYOUT_MATTE_SUFFIXES,
    InputError,
    Problem,
    decode_raw,
    max_pixels,
    read_alpha,
    read_file_bytes,
    read_image_size,
)
from himbench.shards import DATA_DIR, ShardFolder

__all__ = [
    "LAYOUTS",
    "ROLES",
    "SINGLE_SPLIT",
    "Layout",
    "SingleMatteItem",
    "describe",
    "detect_layout",
    "find_layout",
    "get_layout",
    "layout_names",
    "list_samples",
    "load_sample",
    "read_trimap",
]

# What a folder is handed to: "ground_truth" (evaluate --gt), "images" (predict), "bench" (bench --data),
# "foreground" (build-dataset --fg-source).
ROLES = ("ground_truth", "images", "bench", "foreground")
SINGLE_SPLIT = "test"  # the one split of a single-matte benchmark folder
_COPY_SUFFIX = re.compile(r"^(?P<fg>.+)_(?P<bg>\d+)$")  # Composition-1k: <fg>_<background index>

_ALL = frozenset(ROLES)
_EVAL = frozenset(("ground_truth", "images", "bench"))


@dataclass(frozen=True)
class Layout:
    """One data layout. ``required``: sub-folders that must all exist; ``any_of``: at least one of these must too.

    Single-matte layouts (``single``) also say where a sample's files are: the photo in ``image_dir``, the matte in
    the first of ``alpha_dirs`` that holds it (``shared_alpha``: ``<fg>_<i>`` may use the matte ``<fg>`` of
    ``alpha/``, as Composition-1k ships it), the trimap in ``trimap_dir`` when the folder has one. ``convention``:
    the benchmark's error convention (:data:`himbench.metrics.classic.CONVENTIONS`)."""

    name: str
    looks_for: str
    source: str
    roles: frozenset[str]
    required: tuple[str, ...]
    any_of: tuple[str, ...] = ()
    single: bool = False
    image_dir: str = ""
    alpha_dirs: tuple[str, ...] = ()
    trimap_dir: str = ""
    convention: str = ""
    shared_alpha: bool = False

    def detect(self, path: str | os.PathLike) -> bool:
        """True when ``path`` has every required sub-folder (and one of ``any_of``)."""
        root = Path(path)
        if not all((root / name).is_dir() for name in self.required):
            return False
        return not self.any_of or any((root / name).is_dir() for name in self.any_of)

    def missing(self, path: str | os.PathLike) -> list[str]:
        """The sub-folders ``path`` lacks for this layout (for messages)."""
        root = Path(path)
        lacks = [f"{name}/" for name in self.required if not (root / name).is_dir()]
        if self.any_of and not any((root / name).is_dir() for name in self.any_of):
            lacks.append(" or ".join(f"{name}/" for name in self.any_of))
        return lacks

    def splits(self, path: str | os.PathLike) -> list[str]:
        """The splits of a folder in this layout."""
        root = Path(path)
        if self.name == "shards":
            return ShardFolder(root).splits()
        if self.name == "him2k":
            return sorted(entry.name for entry in os.scandir(root / "alphas") if entry.is_dir())
        return [SINGLE_SPLIT]

    def alpha_dir(self, path: str | os.PathLike) -> Path:
        """The matte folder a single-matte folder has (the first of ``alpha_dirs`` present)."""
        root = Path(path)
        return next((root / name for name in self.alpha_dirs if (root / name).is_dir()), root / self.alpha_dirs[0])


def _entry(name: str, looks_for: str, source: str, required: tuple[str, ...], **fields) -> Layout:
    return Layout(name=name, looks_for=looks_for, source=source, required=required, **fields)


LAYOUTS: tuple[Layout, ...] = (
    _entry("shards", "data/*.parquet (a folder built by `himbench build-dataset`)", "himbench (SPEC s.4)",
           (DATA_DIR,), roles=_EVAL),
    _entry("him2k", "alphas/<split>/<stem>/<k>.png [+ images/<split>/<stem>.jpg]",
           "nowsyn/InstMatt README (HIM-2K)", ("alphas",), roles=_EVAL),
    _entry("P3M-500-P", "blurred_image/ + mask/ [+ trimap/]", "JizhiziLi/P3M core/config.py, core/test.py",
           ("blurred_image", "mask"), roles=_ALL, single=True, image_dir="blurred_image", alpha_dirs=("mask",),
           trimap_dir="trimap", convention="p3m"),
    _entry("P3M-500-NP", "original_image/ + mask/ [+ trimap/]", "JizhiziLi/P3M core/config.py, core/test.py",
           ("original_image", "mask"), roles=_ALL, single=True, image_dir="original_image", alpha_dirs=("mask",),
           trimap_dir="trimap", convention="p3m"),
    _entry("AIM-500", "original/ + mask/ [+ trimap/]", "JizhiziLi/AIM core/config.py, core/README.md",
           ("original", "mask"), roles=_ALL, single=True, image_dir="original", alpha_dirs=("mask",),
           trimap_dir="trimap", convention="p3m"),
    _entry("PPM-100", "image/ + matte/ (same file names)", "ZHKKKe/MODNet src/eval.py, src/matting_dataset.py",
           ("image", "matte"), roles=_ALL, single=True, image_dir="image", alpha_dirs=("matte",), convention="p3m"),
    _entry("Composition-1k", "merged/ + trimaps/ + alpha_copy/ (or alpha/<fg>.png)",
           "Yaoyi-Li/GCA-Matting config/gca-dist-all-data.toml, copy_testing_alpha.sh, Composition_code.py",
           ("merged", "trimaps"), any_of=("alpha_copy", "alpha"), roles=_EVAL, single=True, image_dir="merged",
           alpha_dirs=("alpha_copy", "alpha"), trimap_dir="trimaps", convention="dim", shared_alpha=True),
    _entry("fg-alpha", "fg/ + alpha/ (foreground colours, Composition-1k/AM-2K training style)",
           "Yaoyi-Li/GCA-Matting Composition_code.py", ("fg", "alpha"), roles=frozenset(("foreground",)),
           image_dir="fg", alpha_dirs=("alpha",)),
    _entry("image-alpha", "original/ + alpha/ (P3M and AIM demo folders)", "JizhiziLi/P3M demo/imgs",
           ("original", "alpha"), roles=_ALL, single=True, image_dir="original", alpha_dirs=("alpha",),
           convention="p3m"),
)


def layout_names(role: str | None = None) -> list[str]:
    """Names of the layouts that can play ``role`` (all when None)."""
    return [layout.name for layout in LAYOUTS if role is None or role in layout.roles]


def get_layout(name: str) -> Layout:
    """The layout called ``name`` (case-insensitive); KeyError listing the names otherwise."""
    for layout in LAYOUTS:
        if layout.name.lower() == str(name).lower():
            return layout
    raise KeyError(f"unknown layout {name!r}; layouts: {', '.join(layout_names())}")


def find_layout(path: str | os.PathLike, role: str | None = None) -> Layout | None:
    """The first layout (table order) that can play ``role`` and that ``path`` fits, or None."""
    if not Path(path).is_dir():
        return None
    return next((lay for lay in LAYOUTS if (role is None or role in lay.roles) and lay.detect(path)), None)


def _found(path: Path, limit: int = 8) -> str:
    try:
        names = sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(path) if not e.name.startswith("."))
    except OSError as err:
        return f"cannot list it ({err.strerror or err})"
    if not names:
        return "nothing (empty folder)"
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def detect_layout(path: str | os.PathLike, role: str | None = None, name: str | None = None) -> Layout:
    """The layout of ``path`` (``name`` forces one, checked to fit); :class:`InputError` listing the layouts and what
    was found when none fits."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(root, "no such folder")
    if name:
        try:
            layout = get_layout(name)
        except KeyError as err:
            raise InputError(root, str(err.args[0])) from err
        if role is not None and role not in layout.roles:
            raise InputError(root, f"layout {layout.name} cannot be used here (it is for: "
                                   f"{', '.join(sorted(layout.roles))})")
        lacks = layout.missing(root)
        if lacks:
            raise InputError(root, f"does not fit layout {layout.name} ({layout.looks_for}): no "
                                   f"{', '.join(lacks)}; found: {_found(root)}")
        return layout
    layout = find_layout(root, role)
    if layout is None:
        expected = "; ".join(f"{lay.name}: {lay.looks_for}" for lay in LAYOUTS if role is None or role in lay.roles)
        what = {"ground_truth": "a ground-truth", "foreground": "a foreground-source"}.get(str(role), "a data")
        raise InputError(root, f"not {what} folder: it fits no known data layout (found: {_found(root)}). "
                               f"Layouts: {expected}. Pass --layout NAME to force one")
    return layout


# ------------------------------------------------------------------------------------------------ single-matte
@dataclass(frozen=True)
class SingleMatteItem:
    """One sample of a single-matte benchmark: photo, matte and (optional) trimap paths; picklable, decoded lazily.

    :meth:`load` returns the (1, H, W) float32 matte and the problems found, as the other ground-truth items do."""

    stem: str
    alpha_path: str
    image_path: str | None
    trimap_path: str | None = None
    convention: str = "p3m"

    @property
    def alpha_paths(self) -> tuple[str, ...]:
        return (self.alpha_path,)

    def load(self, limit: int | None = None) -> tuple[np.ndarray | None, list]:
        limit = max_pixels() if limit is None else limit
        try:
            matte = read_alpha(self.alpha_path, None, limit)
        except InputError as err:
            return None, [Problem(err.source, f"ground truth: {err.problem}")]
        problems = []
        if self.image_path:
            try:
                if read_image_size(self.image_path) != matte.shape:
                    h, w = read_image_size(self.image_path)
                    problems.append(Problem(self.image_path, f"ground truth image is {w}x{h}, its matte "
                                                             f"{matte.shape[1]}x{matte.shape[0]}"))
            except InputError as err:
                problems.append(Problem(err.source, f"ground truth image: {err.problem}"))
        return matte[None], problems

    def load_trimap(self, shape: tuple[int, int], limit: int | None = None) -> tuple[np.ndarray | None, list]:
        """The uint8 trimap (None when the benchmark ships none for this sample) and problems."""
        if not self.trimap_path:
            return None, []
        try:
            return read_trimap(self.trimap_path, shape, limit), []
        except InputError as err:
            return None, [Problem(err.source, f"ground truth trimap: {err.problem}; trimap-region errors left out")]


def read_trimap(path: str | os.PathLike, shape: tuple[int, int] | None = None, limit: int | None = None) -> np.ndarray:
    """A trimap as uint8 HxW (0 background, 128 unknown, 255 foreground), size checked before decoding; a grey
    image stored as RGB is accepted (first channel, as P3M's and AIM's test code do)."""
    raw, _ = decode_raw(read_file_bytes(path), str(path), shape, limit, "trimap")
    if raw.ndim == 3:
        raw = raw[:, :, 0]
    if raw.dtype == np.uint16:
        raw = (raw // 257).astype(np.uint8)
    if raw.dtype != np.uint8:
        raise InputError(path, f"unsupported trimap pixel type {raw.dtype}")
    return raw


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> tuple[dict[str, Path], list[Path]]:
    """{stem: file} of the files of ``folder`` with one of ``suffixes`` (sorted; hidden files skipped), plus the
    files whose stem was already taken (a.jpg and a.png)."""
    found: dict[str, Path] = {}
    duplicates = []
    if not folder.is_dir():
        return found, duplicates
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.name.startswith(".") or not entry.is_file() or path.suffix.lower() not in suffixes:
            continue
        if path.stem in found:
            duplicates.append(path)
            continue
        found[path.stem] = path
    return found, duplicates


def _matte_for(layout: Layout, root: Path, stem: str, mattes: dict[str, dict[str, Path]]) -> Path | None:
    for name in layout.alpha_dirs:
        by_stem = mattes.get(name, {})
        if stem in by_stem:
            return by_stem[stem]
        match = _COPY_SUFFIX.match(stem) if layout.shared_alpha and name == "alpha" else None
        if match and match["fg"] in by_stem:
            return by_stem[match["fg"]]
    return None


def list_samples(layout: Layout, path: str | os.PathLike) -> tuple[list[SingleMatteItem], list]:
    """The samples of a single-matte folder, sorted by stem, and the problems found while listing (a photo without
    a matte, a matte without a photo, two photos with one stem): those samples are left out and reported."""
    if not layout.single:
        raise ValueError(f"layout {layout.name} is not a single-matte layout")
    root = Path(path)
    images, duplicates = _files_by_stem(root / layout.image_dir, IMAGE_SUFFIXES)
    problems = [Problem(str(p), "ground truth: another photo has the same name; the first is used")
                for p in duplicates]
    mattes = {name: _files_by_stem(root / name, LAYOUT_MATTE_SUFFIXES)[0] for name in layout.alpha_dirs}
    trimaps = _files_by_stem(root / layout.trimap_dir, LAYOUT_MATTE_SUFFIXES)[0] if layout.trimap_dir else {}
    items, used = [], set()
    for stem, image in images.items():
        matte = _matte_for(layout, root, stem, mattes)
        if matte is None:
            problems.append(Problem(str(image), f"ground truth: photo without a matte in "
                                                f"{' or '.join(d + '/' for d in layout.alpha_dirs)}; not scored"))
            continue
        used.add(matte)
        trimap = trimaps.get(stem)
        items.append(SingleMatteItem(stem, str(matte), str(image), str(trimap) if trimap else None,
                                     layout.convention or "p3m"))
    if not layout.shared_alpha:
        for stem, matte in mattes[layout.alpha_dirs[0]].items():
            if matte not in used and stem not in images:
                problems.append(Problem(str(matte), f"ground truth: matte without a photo in {layout.image_dir}/; "
                                                    "not scored"))
    return items, problems


def load_sample(item: SingleMatteItem, limit: int | None = None) -> tuple[np.ndarray, list[np.ndarray],
                                                                            np.ndarray | None]:
    """(RGB uint8 image, [matte], uint8 trimap or None) of one sample; :class:`InputError` on a bad file."""
    from himbench.io import read_image

    if not item.image_path:
        raise InputError(item.alpha_path, "no photo for this matte")
    image = read_image(item.image_path, limit)
    matte = read_alpha(item.alpha_path, image.shape[:2], limit)
    trimap = read_trimap(item.trimap_path, image.shape[:2], limit) if item.trimap_path else None
    return image, [matte], trimap


def describe(layouts: Iterable[Layout] = LAYOUTS) -> str:
    """One line per layout: name, what it looks for, where it was read from (for ``--help`` texts and docs)."""
    return "\n".join(f"{lay.name}: {lay.looks_for} (from {lay.source})" for lay in layouts)
