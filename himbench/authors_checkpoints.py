"""Import checkpoints released by a model's authors (``.ckpt`` / ``.pth``) into himbench checkpoints.

Authors publish PyTorch pickles. A pickle can run any code when it is loaded, and checkpoints come from other
people, so this module reads them with ``torch.load(..., weights_only=True)`` only: tensors, containers and numbers
load; anything else (a class, a function call hidden in ``__reduce__``) stops the load before it runs, and the user
gets an :class:`~himbench.io.InputError` saying so. The result is a safetensors checkpoint (:mod:`himbench.checkpoints`)
that never needs unpickling again.

Steps of :func:`import_authors_checkpoint`:

1. read the file safely (``.safetensors`` files are read with safetensors), hash it (SHA-256);
2. unwrap the authors' container: ``{'state_dict': ...}`` (MGMatting's trainer, PyTorch Lightning) or
   ``{'model': ...}``; keep only tensors;
3. strip a ``module.`` prefix (weights saved from ``DataParallel`` / ``DistributedDataParallel``);
4. map the authors' key names to the model's: the model class may define
   ``convert_authors_state_dict(state) -> state``; without it the mapping is the identity (``e2ehim-official`` and
   ``mgm`` use the authors' names, so their mapping is the identity, tested against the authors' key manifests);
5. compare with the model's own state dict: missing keys, unexpected keys and shape mismatches are listed and the
   import refused, unless ``allow_partial`` (then they are recorded in ``config.json``);
6. write ``model.safetensors`` + ``config.json`` (the source file's name, size and SHA-256, the licence of the
   released weights) into a fresh folder: the files are written into a temporary folder beside ``out`` and renamed
   into place, so a failed import leaves nothing behind, and an existing non-empty ``out`` is never overwritten.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from himbench.io import InputError, require_empty_folder, sha256_file

__all__ = [
    "ImportReport",
    "KeyComparison",
    "compare_state_dicts",
    "import_authors_checkpoint",
    "read_authors_state_dict",
    "unwrap_state_dict",
]

_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "generator")
_LIST_LIMIT = 20  # keys shown in an error message; the rest are counted


def read_authors_state_dict(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file without running code: safetensors, or a torch pickle with ``weights_only=True``.

    Raises :class:`InputError` naming the file for a missing, empty, truncated or unsafe file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such checkpoint file")
    if path.stat().st_size == 0:
        raise InputError(path, "checkpoint file is empty")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as err:
            raise InputError(path, f"cannot read safetensors file ({err})") from err
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses before executing: nothing in the file has run.
        raise InputError(
            path,
            "refused: the file holds Python objects other than tensors (a pickle that could run code when loaded); "
            f"nothing in it was executed. Detail: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
        ) from err
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise InputError(path, f"cannot read checkpoint (truncated or not a PyTorch checkpoint: {err})") from err
    if not isinstance(loaded, dict):
        raise InputError(path, f"expected a state dict (a mapping of names to tensors), found {type(loaded).__name__}")
    return loaded


def unwrap_state_dict(loaded: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The tensors of an authors' checkpoint with container and ``module.`` prefix removed.

    Returns ``(state, notes)``; ``notes`` says what was unwrapped or dropped, for the import record.
    """
    import torch

    notes: list[str] = []
    state = loaded
    while True:
        inner = next((k for k in _CONTAINER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None or any(isinstance(v, torch.Tensor) for v in state.values()):
            break
        notes.append(f"unwrapped {inner!r}")
        state = state[inner]
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    dropped = sorted(set(state) - set(tensors))
    if dropped:
        notes.append(f"dropped {len(dropped)} non-tensor entries: {', '.join(map(str, dropped[:_LIST_LIMIT]))}")
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
        notes.append("stripped 'module.' prefix")
    return tensors, notes


@dataclass
class KeyComparison:
    """How a state dict fits a model: keys the model has but the file lacks, and the reverse, and shape clashes."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)  # "key: file (a, b) vs model (c, d)"

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def describe(self) -> str:
        def listed(title: str, items: list[str]) -> str:
            more = f" ... and {len(items) - _LIST_LIMIT} more" if len(items) > _LIST_LIMIT else ""
            return f"{len(items)} {title}: {', '.join(items[:_LIST_LIMIT])}{more}"

        parts = [
            listed(title, items)
            for title, items in (
                ("missing keys", self.missing),
                ("unexpected keys", self.unexpected),
                ("shape mismatches", self.shape_mismatch),
            )
            if items
        ]
        return "; ".join(parts) if parts else "all keys and shapes match"


def compare_state_dicts(model_state: dict[str, Any], file_state: dict[str, Any]) -> KeyComparison:
    """Compare a model's ``state_dict()`` with a state dict read from a file."""
    comparison = KeyComparison(
        missing=sorted(set(model_state) - set(file_state)),
        unexpected=sorted(set(file_state) - set(model_state)),
    )
    for key in sorted(set(model_state) & set(file_state)):
        want, got = tuple(model_state[key].shape), tuple(file_state[key].shape)
        if want != got:
            comparison.shape_mismatch.append(f"{key}: file {got} vs model {want}")
    return comparison


@dataclass
class ImportReport:
    """What :func:`import_authors_checkpoint` did (also saved in the checkpoint's ``config.json``)."""

    model_name: str
    source: str
    sha256: str
    size_bytes: int
    out: str
    loaded_keys: int
    notes: list[str]
    comparison: dict[str, list[str]]
    license: str


def import_authors_checkpoint(
    source: str | Path, out: str | Path, model_name: str, allow_partial: bool = False
) -> ImportReport:
    """Convert the authors' checkpoint ``source`` for registered model ``model_name`` into a himbench checkpoint
    folder ``out`` (``model.safetensors`` + ``config.json``). See the module docstring for the steps."""
    import torch

    from himbench.checkpoints import save_checkpoint
    from himbench.registry import authors_state_dict_converter, create_model, traits_of

    source, out = Path(source), Path(out)
    require_empty_folder(out, "output is not an empty folder; choose a new folder (nothing was written)")
    try:
        model = create_model(model_name)
    except KeyError as err:
        raise InputError(model_name, str(err.args[0])) from err
    loaded = read_authors_state_dict(source)
    state, notes = unwrap_state_dict(loaded)
    if not state:
        raise InputError(source, "the checkpoint holds no tensors")
    convert = authors_state_dict_converter(model)
    if convert is not None:
        state = convert(state)
        notes.append(f"keys mapped by {type(model).__name__}.convert_authors_state_dict")
    own = model.state_dict()
    comparison = compare_state_dicts(own, state)
    if not comparison.exact and not allow_partial:
        matched = len(set(own) & set(state))
        raise InputError(
            source,
            f"does not fit model {model_name!r} ({matched} of {len(own)} keys match; {comparison.describe()}). "
            "Is this the right --model? Pass --allow-partial to import the matching keys anyway (the rest keep "
            "random values and the outputs will not be the authors').",
        )
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    with torch.no_grad():
        model.load_state_dict(usable, strict=not allow_partial)
    released = traits_of(type(model)).released_weights
    report = ImportReport(
        model_name=model_name,
        source=source.name,
        sha256=sha256_file(source),
        size_bytes=source.stat().st_size,
        out=str(out),
        loaded_keys=len(usable),
        notes=notes,
        comparison=asdict(comparison),
        license=released.license if released is not None else "unknown: check the source of the weights",
    )
    record = {
        "imported_from": {k: v for k, v in asdict(report).items() if k != "out"},
        "released_weights": asdict(released) if released is not None else None,
        "partial": not comparison.exact,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_checkpoint(model, staging, model_name, extra=record)
        if out.is_dir():  # empty (checked above): replace it by the finished folder in one rename
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report
