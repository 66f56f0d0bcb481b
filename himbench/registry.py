"""The one model registry of himbench (timm-style): every trainable or benchmarked model is created by name.

Registering
    Decorate a factory with ``@register_model("name", default_weights="checkpoints/name")``. The factory takes keyword
    overrides of the model's config (nested dataclass fields may be given as dicts; :func:`apply_overrides` resolves
    them) and returns an ``nn.Module``. ``default_weights`` (optional) is the checkpoint folder shipped with the
    model, relative to the folder of the registering module (an absolute path is kept as is); as timm ties pretrained
    weights to a registration, the weights travel with the model's own package and :func:`default_checkpoint` finds
    them without the host knowing any package by name.

Plugins
    himbench itself registers no model. Packages declare an entry point in the group ``himbench.plugins`` (see
    :data:`PLUGIN_GROUP`), e.g. in their ``pyproject.toml``::

        [project.entry-points."himbench.plugins"]
        my_models = "my_package"

    :func:`load_plugins` (called by :func:`create_model`, :func:`list_models` and the method registry of
    :mod:`himbench.methods`) imports every such module once; importing it runs its ``@register_model`` /
    ``@register_method`` decorators. A plugin that fails to import is reported in a warning naming it, and the
    others still load.

The training protocol every registered model follows (``himbench.training`` relies on it)
    ``model.config``
        A dataclass holding the whole resolved configuration. ``dataclasses.asdict(model.config)`` is saved as JSON
        beside every checkpoint; ``create_model(name, **that_dict)`` rebuilds the same architecture.
    ``model.config.input_size``
        The square training/inference size in pixels (the data loader resizes to it unless ``--size`` overrides).
    ``model.training_loss(batch) -> dict[str, Tensor]``
        ``batch`` is what :func:`himbench.data.collate_him` produces (see that module's docstring: ``image``
        Bx3xSxS float in [0, 1], ``alphas`` BxKxSxS float padded with zeros, ``valid`` BxK bool, ``boxes`` BxKx4,
        ``ids``). The dict holds key ``"loss"`` (the scalar to minimise) plus any scalar components for logging.
        It must work in train mode on CPU and, under autocast, on CUDA; everything it needs is on the model's device
        (the trainer moves the tensors of ``batch`` there first).
    ``model.predict_instances(image, masks=None) -> (alphas, scores)``
        ``image`` is uint8 HxWx3 RGB of any size; ``masks`` optional (N,H,W) guidance for two-stage refiners
        (end-to-end models ignore it). Returns float32 (N,H,W) alphas in [0, 1] at the original size and float32
        (N,) confidence scores. Called in eval mode under ``torch.no_grad``.
    Optional ``model.predict_batch(images, masks=None) -> list[(alphas, scores)]`` lets ``himbench predict`` batch.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_MAX_MODEL_BYTES",
    "MAX_MODEL_BYTES_ENV",
    "PLUGIN_GROUP",
    "ModelInfo",
    "apply_overrides",
    "check_fields",
    "check_model_memory",
    "config_to_dict",
    "count_parameters",
    "create_model",
    "default_checkpoint",
    "list_models",
    "load_plugins",
    "max_model_bytes",
    "model_class",
    "model_info",
    "register_model",
]

PLUGIN_GROUP = "himbench.plugins"

_FACTORIES: dict[str, Callable[..., Any]] = {}
_DEFAULT_WEIGHTS: dict[str, Path] = {}
_plugins_loaded = False

T = TypeVar("T")


def _module_folder(module_name: str) -> Path | None:
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    return Path(file).resolve().parent if file else None


def register_model(
    name: str, *, default_weights: str | Path | None = None
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: register ``factory(**overrides) -> nn.Module`` under ``name``.

    ``default_weights``: the checkpoint folder (``model.safetensors`` + ``config.json``) shipped with this model,
    relative to the folder of the module that registers it; used when no checkpoint is given and the folder exists.
    """

    def decorate(factory: Callable[..., T]) -> Callable[..., T]:
        existing = _FACTORIES.get(name)
        if existing is not None and existing is not factory and existing.__qualname__ != factory.__qualname__:
            raise ValueError(f"model name {name!r} is already registered by {existing.__module__}")
        _FACTORIES[name] = factory
        if default_weights is not None:
            path = Path(default_weights)
            folder = _module_folder(factory.__module__)
            _DEFAULT_WEIGHTS[name] = path if path.is_absolute() or folder is None else folder / path
        else:
            _DEFAULT_WEIGHTS.pop(name, None)
        return factory

    return decorate


def load_entry_points(entry_points: Iterable[importlib.metadata.EntryPoint]) -> list[str]:
    """Import the given plugin entry points; returns the names of those that loaded. A plugin that fails to import
    gives a warning naming it (its models and methods are then absent) and the others still load."""
    loaded: list[str] = []
    seen: set[tuple[str, str]] = set()
    for entry in entry_points:
        if (entry.name, entry.value) in seen:  # an editable install can list the same distribution twice
            continue
        seen.add((entry.name, entry.value))
        try:
            entry.load()
        except Exception as err:
            warnings.warn(
                f"himbench plugin {entry.name!r} ({entry.value}) failed to import ({type(err).__name__}: {err}); "
                "its models and methods are not registered",
                stacklevel=3,
            )
            continue
        loaded.append(entry.name)
    return loaded


def load_plugins() -> None:
    """Import every plugin declared in the entry-point group :data:`PLUGIN_GROUP` (once per process)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    load_entry_points(importlib.metadata.entry_points(group=PLUGIN_GROUP))


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of registered models; ``pattern`` is an ``fnmatch`` filter such as ``"e2ehim-*"``."""
    import fnmatch

    load_plugins()
    names = sorted(_FACTORIES)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def create_model(name: str, /, **overrides: Any):
    """Build the registered model ``name`` with config overrides (nested fields as dicts)."""
    load_plugins()
    if name not in _FACTORIES:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_FACTORIES)) or 'none'}")
    return _FACTORIES[name](**overrides)


def model_class(name: str) -> type | None:
    """The class registered model ``name``'s factory says it returns (its return annotation), without building it;
    None when the factory does not say. Lets the host read class attributes such as ``released_weights`` before
    spending seconds and hundreds of MB on a paper-size network."""
    import typing

    load_plugins()
    if name not in _FACTORIES:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_FACTORIES)) or 'none'}")
    try:
        returned = typing.get_type_hints(_FACTORIES[name]).get("return")
    except (NameError, TypeError):  # an annotation naming something the factory's module does not define
        return None
    return returned if isinstance(returned, type) else None


def default_checkpoint(name: str) -> Path | None:
    """The checkpoint folder shipped with model ``name`` (its registration's ``default_weights``), or None when the
    registration names none or the folder holds no ``model.safetensors``."""
    load_plugins()
    folder = _DEFAULT_WEIGHTS.get(name)
    if folder is None or not (folder / "model.safetensors").is_file():
        return None
    return folder


@dataclass
class ModelInfo:
    """What ``himbench models`` shows about a registered model (``num_params``: learned parameters; ``input_size``:
    square input side in pixels; ``default_weights``: shipped checkpoint folder or None; ``mask_guided``: the model
    needs guidance masks)."""

    name: str
    module: str
    description: str
    num_params: int
    input_size: int | None
    config: dict
    default_weights: str | None = None
    mask_guided: bool = False  # predict_instances needs guidance masks (a refiner)


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def model_info(name: str) -> ModelInfo:
    """Build ``name`` on CPU and describe it (parameter count, config, first docstring line of its factory)."""
    model = create_model(name)
    factory = _FACTORIES[name]
    doc = (factory.__doc__ or type(model).__doc__ or "").strip().splitlines()
    config = getattr(model, "config", None)
    return ModelInfo(
        name=name,
        module=factory.__module__,
        description=doc[0] if doc else "",
        num_params=count_parameters(model),
        input_size=getattr(config, "input_size", None),
        config=config_to_dict(config) if config is not None else {},
        default_weights=str(shipped) if (shipped := default_checkpoint(name)) is not None else None,
        mask_guided=bool(getattr(model, "mask_guided", False)),
    )


def config_to_dict(config: Any) -> dict:
    """``dataclasses.asdict`` with tuples turned into lists, so the result round-trips through JSON unchanged."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


_MAX_INT_OPTION = 1 << 20  # no size, count or width of a model config is this large; larger is a typo or an attack


def _check_type(owner: str, key: str, current: Any, value: Any) -> None:
    """Refuse a value whose type differs from the default's (configs come from other people's config.json files:
    ``num_queries=2e9`` must be an error, not a 768 GB allocation)."""

    def fail(why: str) -> None:
        raise ValueError(f"{owner}.{key}: {why} (got {value!r})")

    if value is None or current is None:
        return
    if dataclasses.is_dataclass(current):
        if type(value) is not type(current):  # apply_overrides turned a dict into the dataclass already
            fail(f"expected a mapping of {type(current).__name__} fields")
        return
    if isinstance(current, bool):
        if not isinstance(value, bool):
            fail("expected true or false")
    elif isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            fail("expected an integer")
        if abs(value) > _MAX_INT_OPTION:
            fail(f"integer beyond {_MAX_INT_OPTION}")
    elif isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail("expected a number")
        if not math.isfinite(value):  # NaN compares false with everything: a NaN threshold silently keeps nothing
            fail("expected a finite number")
    elif isinstance(current, str):
        if not isinstance(value, str):
            fail("expected a string")
    elif isinstance(current, tuple):
        if not isinstance(value, tuple):
            fail("expected a list")
        if current:
            for item in value:
                _check_type(owner, key, current[0], item)


def apply_overrides(config: T, overrides: dict[str, Any]) -> T:
    """A copy of dataclass ``config`` with ``overrides`` applied; nested dataclass fields accept dicts.

    Unknown keys raise ``KeyError`` naming the field, so a typo in a saved config or a CLI override never passes
    silently; a value of another type than the default (or an integer beyond 2**20) raises ``ValueError``. Lists
    given for tuple-typed defaults are turned back into tuples (JSON has no tuples).
    """
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    names = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise KeyError(f"{type(config).__name__} has no field {key!r} (fields: {', '.join(sorted(names))})")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            value = apply_overrides(current, value)
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        _check_type(type(config).__name__, key, current, value)
        changes[key] = value
    return dataclasses.replace(config, **changes)


# ---------------------------------------------------------------------------------------- what a config implies
MAX_MODEL_BYTES_ENV = "HIMBENCH_MAX_MODEL_BYTES"
# Each field of a config can be sane on its own while their product is not (embed_dim x window_size x input_size:
# terabytes). The paper-size models estimate at a few GB; 64 GiB is past any model this project runs, on any machine
# it targets, and far below what an attack asks for.
DEFAULT_MAX_MODEL_BYTES = 64 * 1024**3


def max_model_bytes() -> int:
    """The memory cap (bytes) a model config may imply: ``$HIMBENCH_MAX_MODEL_BYTES`` or the default (64 GiB)."""
    raw = os.environ.get(MAX_MODEL_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_MODEL_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"${MAX_MODEL_BYTES_ENV}={raw!r} is not a whole number of bytes") from None
    if value <= 0:
        raise ValueError(f"${MAX_MODEL_BYTES_ENV}={raw!r} must be positive")
    return value


def check_model_memory(owner: str, parameters: float, activations: float) -> None:
    """Refuse a config before anything is allocated when it implies more than :func:`max_model_bytes`.

    ``parameters``: the learned values the config creates; ``activations``: the largest feature values one
    ``input_size`` image makes a forward pass hold (an estimate: the big tensors, not every temporary). Both count
    float32 values. Raises ``ValueError`` naming ``owner``, the estimate and the cap.
    """
    cap = max_model_bytes()
    estimate = 4.0 * (float(parameters) + float(activations))
    if not estimate <= cap:  # also catches NaN and inf
        raise ValueError(
            f"{owner}: this config implies about {estimate / 1024**3:.3g} GiB "
            f"({float(parameters):.3g} parameters, {float(activations):.3g} activation values per image), "
            f"above the limit of {cap / 1024**3:.3g} GiB (set ${MAX_MODEL_BYTES_ENV} to raise it)"
        )


def check_fields(
    config: Any,
    *,
    positive: Iterable[str] = (),
    non_negative: Iterable[str] = (),
    unit_interval: Iterable[str] = (),
) -> None:
    """``ValueError`` naming the first field of dataclass ``config`` out of its range: ``positive`` fields (numbers
    or tuples of them) must be > 0, ``non_negative`` ones >= 0, ``unit_interval`` ones finite and in [0, 1]. Fields
    that are None are skipped (None means "off"). Meant for ``__post_init__`` of model configs."""
    owner = type(config).__name__

    def values(name: str) -> list:
        value = getattr(config, name)
        return [] if value is None else list(value) if isinstance(value, tuple | list) else [value]

    def fail(name: str, why: str) -> None:
        raise ValueError(f"{owner}.{name}: {why} (got {getattr(config, name)!r})")

    for name in positive:
        if not all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in values(name)):
            fail(name, "must be positive")
    for name in non_negative:
        if not all(isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in values(name)):
            fail(name, "must not be negative")
    for name in unit_interval:
        if not all(isinstance(v, int | float) and 0.0 <= v <= 1.0 for v in values(name)):  # NaN fails both
            fail(name, "must be a number in [0, 1]")
