"""Model checkpoints: safetensors weights with the resolved config as JSON beside them (a Hugging Face Hub layout).

A checkpoint is a folder::

    model.safetensors   the state dict (tensors only: safetensors never runs code when loaded)
    config.json         {"format": "himbench-checkpoint-v1", "model_name": NAME, "config": {...resolved config...}}

:func:`load_model` accepts that folder, the ``.safetensors`` file inside it (config.json is read from beside it), or a
Hugging Face Hub model id (``owner/name``, optionally ``owner/name@revision``), which is fetched with
``huggingface_hub.snapshot_download`` restricted to ``*.safetensors`` and ``*.json``. Pickle-based files (.pt, .pth,
.bin, .ckpt) are refused as model weights. Optimizer state for resuming training is a separate file written by
:mod:`himbench.training` and read back with ``torch.load(weights_only=True)``.

The weights policy lives here too, beside :class:`ReleasedWeights`: :func:`load_registered_model` takes the given
checkpoint, else the one shipped with the model's registration, else random weights, except for a model whose
``released_weights`` say random weights are useless (:func:`refuse_random_weights`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from himbench.io import InputError, read_json
from himbench.io.atomic import atomic_write_bytes, atomic_write_text

__all__ = [
    "CONFIG_NAME",
    "FORMAT",
    "ReleasedWeights",
    "WEIGHTS_NAME",
    "load_model",
    "load_registered_model",
    "load_weights",
    "missing_weights_message",
    "read_checkpoint_config",
    "refuse_random_weights",
    "resolve_checkpoint",
    "save_checkpoint",
]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT = "himbench-checkpoint-v1"
_PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl"}


@dataclass(frozen=True)
class ReleasedWeights:
    """Where the authors of a published model release its weights, and under which terms.

    A model class that re-implements a published network sets ``released_weights = ReleasedWeights(...)``; the host
    uses it to say where to download the weights when none are given, and records it beside imported checkpoints.
    ``requires_weights`` means random weights are useless for this model (never benchmark it without a checkpoint).
    """

    paper: str
    code: str  # the authors' repository
    download: str  # where the checkpoint file is published
    filename: str  # the released file's name, e.g. "swintiny.ckpt"
    license: str
    requires_weights: bool = True


def missing_weights_message(model: str, released: ReleasedWeights) -> str:
    """Where to get the authors' weights of ``model`` and how to import them (for a missing-checkpoint error)."""
    return (
        f"{model} re-implements a published network and needs the authors' weights: random weights give "
        f"meaningless outputs. Download {released.filename} from {released.download} (code: {released.code}; "
        f"licence: {released.license}), then run `himbench import-checkpoint {released.filename} "
        f"weights/{model} --model {model}` and pass `checkpoint=weights/{model}` (CLI: --checkpoint / "
        f"--option {model}.checkpoint=weights/{model})."
    )


def refuse_random_weights(model: str) -> None:
    """:class:`InputError` saying where to get the weights when registered ``model`` re-implements a published
    network whose ``released_weights`` say random weights are useless. Reads the class's traits: nothing is built.
    ``KeyError`` for an unknown model."""
    from himbench.registry import model_traits

    released = model_traits(model).released_weights
    if released is not None and released.requires_weights:
        raise InputError(model, missing_weights_message(model, released))


def load_registered_model(model: str, checkpoint: str | Path | None, device: str):
    """Create registered ``model`` with the weights of ``checkpoint`` (a checkpoint folder, its
    ``model.safetensors``, or a Hub id); with no checkpoint, the one shipped with the model's registration
    (:func:`himbench.registry.default_checkpoint`) if any, else random weights (an :class:`InputError` for models
    whose ``released_weights`` say random weights are useless). Returns ``(module in eval mode on device, checkpoint
    used or None)``."""
    from himbench.registry import create_model, default_checkpoint

    if checkpoint is None:
        checkpoint = default_checkpoint(model)
    if checkpoint is None:
        refuse_random_weights(model)  # before building: a paper-size network costs seconds
        return create_model(model).to(device).eval(), None
    return load_model(checkpoint, model_name=model, device=device), str(checkpoint)


def save_checkpoint(model, folder: str | Path, model_name: str, extra: dict[str, Any] | None = None) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/config.json`` (atomically); returns the folder."""
    from safetensors.torch import save

    from himbench.registry import config_to_dict

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS_NAME, save(state, metadata={"format": "pt", "model_name": model_name}))
    record = {"format": FORMAT, "model_name": model_name, "config": config_to_dict(model.config)}
    if extra:
        record.update(extra)
    atomic_write_text(folder / CONFIG_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return folder


def resolve_checkpoint(path_or_id: str | Path, revision: str | None = None) -> Path:
    """A local checkpoint folder or weights file, or a Hub model id downloaded to the local cache."""
    path = Path(path_or_id)
    if path.exists():
        if path.is_file() and path.suffix in _PICKLE_SUFFIXES:
            raise InputError(path, "pickle-based weights are not loaded (unsafe); convert them to model.safetensors")
        if path.is_dir() and not (path / WEIGHTS_NAME).is_file():
            raise InputError(path, f"checkpoint folder has no {WEIGHTS_NAME}")
        return path
    text = str(path_or_id)
    if text.count("/") != 1 or text.startswith((".", "/")):
        raise InputError(text, "no such checkpoint file or folder (and not a Hub model id of the form owner/name)")
    if "@" in text and revision is None:
        text, revision = text.split("@", 1)
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(repo_id=text, revision=revision, allow_patterns=["*.safetensors", "*.json"])
    except Exception as err:  # offline, missing repo, auth: all end the same way for the user
        raise InputError(
            text, f"no such local file or folder, and cannot fetch it from the Hugging Face Hub ({err})"
        ) from err
    return resolve_checkpoint(local)


def _weights_and_config(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        return path / WEIGHTS_NAME, path / CONFIG_NAME
    return path, path.parent / CONFIG_NAME


def _read_record(config_path: Path) -> dict[str, Any]:
    """A checkpoint's config.json, checked for shape: an object whose ``model_name`` (if any) is a string and whose
    ``config`` (if any) is an object. A config.json comes from anyone: ``[]`` or ``{"config": "abc"}`` must be a
    one-line error naming the file, not a traceback. The values inside ``config`` are checked by the model's own
    config dataclass when it is built."""
    try:
        record = read_json(config_path)
    except (OSError, ValueError) as err:
        raise InputError(config_path, f"cannot read checkpoint config ({err})") from err
    if not isinstance(record, dict):
        raise InputError(config_path, f"checkpoint config must be a JSON object, found {type(record).__name__}")
    for key, expected, kind in (("model_name", str, "a string"), ("format", str, "a string"),
                                ("config", dict, "an object of config fields")):
        if key in record and not isinstance(record[key], expected):
            raise InputError(config_path, f"checkpoint config: {key!r} must be {kind}, found "
                             f"{type(record[key]).__name__} {str(record[key])[:60]!r}")
    return record


def read_checkpoint_config(path_or_id: str | Path) -> dict[str, Any]:
    """The config.json of a checkpoint (``{}`` when a bare weights file has none beside it); :class:`InputError`
    naming the file when it is not an object with a string ``model_name`` and an object ``config``."""
    _, config_path = _weights_and_config(resolve_checkpoint(path_or_id))
    if not config_path.is_file():
        return {}
    return _read_record(config_path)


def load_weights(model, weights_path: str | Path, strict: bool = True) -> None:
    """Load a safetensors state dict into ``model`` (shapes and names must match when ``strict``)."""
    from safetensors.torch import load_file

    weights_path = Path(weights_path)
    try:
        state = load_file(str(weights_path))
    except Exception as err:
        raise InputError(weights_path, f"cannot read safetensors weights ({err})") from err
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise InputError(weights_path, f"weights do not fit the model ({err})") from err


def load_model(
    path_or_id: str | Path,
    model_name: str | None = None,
    device: str = "cpu",
    revision: str | None = None,
    **overrides: Any,
):
    """Rebuild a registered model from a checkpoint and load its weights; returns the model in eval mode.

    ``model_name`` defaults to the one stored in config.json (given both, they must agree); the stored config is
    applied, then ``overrides`` (e.g. ``score_threshold=0.3``). A config.json of the wrong shape, or whose values
    the model's config refuses (types, ranges, NaN, the memory the sizes imply together), raises
    :class:`InputError` naming the file before any weight is allocated.
    """
    from himbench.registry import create_model

    path = resolve_checkpoint(path_or_id, revision)
    weights_path, config_path = _weights_and_config(path)
    record = _read_record(config_path) if config_path.is_file() else {}
    stored_name = record.get("model_name")
    if model_name is None:
        model_name = stored_name
    elif stored_name is not None and stored_name != model_name:
        raise InputError(config_path, f"checkpoint is for model {stored_name!r}, not {model_name!r}")
    if model_name is None:
        raise InputError(path, "no config.json with a model_name beside the weights; pass the model name")
    config = dict(record.get("config", {}))
    config.update(overrides)
    try:
        model = create_model(model_name, **config)
    # A config.json from someone else: typos, wrong types, sizes whose product is absurd (the model's config
    # dataclass refuses those before allocating: ValueError); the rest for what a plugin's own checks raise.
    except (KeyError, ValueError, TypeError, ZeroDivisionError, AssertionError) as err:
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        given = f" with {', '.join(f'{k}={v!r}' for k, v in overrides.items())}" if overrides else ""
        raise InputError(config_path, f"checkpoint config{given} does not build {model_name!r}: {message}") from err
    load_weights(model, weights_path)
    return model.to(device).eval()
