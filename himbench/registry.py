"""The one model registry of himbench (timm-style): every trainable or benchmarked model is created by name.

Registering
    Decorate a factory with ``@register_model("name")``. The factory takes keyword overrides of the model's config
    (nested dataclass fields may be given as dicts; :func:`apply_overrides` resolves them) and returns an
    ``nn.Module``. Registration is import-driven: :func:`create_model` / :func:`list_models` import the provider
    packages ``e2ehim`` and ``baselines`` (the latter is optional: if it is missing or fails to import, a warning says
    so and only its models are absent).

The training protocol every registered model follows (``himbench.training`` relies on it, and nothing else)
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
import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "ModelInfo",
    "apply_overrides",
    "config_to_dict",
    "count_parameters",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]

PROVIDERS: tuple[str, ...] = ("e2ehim", "baselines")
_OPTIONAL_PROVIDERS = frozenset({"baselines"})

_FACTORIES: dict[str, Callable[..., Any]] = {}
_imported = False

T = TypeVar("T")


def register_model(name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: register ``factory(**overrides) -> nn.Module`` under ``name``."""

    def decorate(factory: Callable[..., T]) -> Callable[..., T]:
        existing = _FACTORIES.get(name)
        if existing is not None and existing is not factory and existing.__qualname__ != factory.__qualname__:
            raise ValueError(f"model name {name!r} is already registered by {existing.__module__}")
        _FACTORIES[name] = factory
        return factory

    return decorate


def _import_providers() -> None:
    global _imported
    if _imported:
        return
    _imported = True
    for module in PROVIDERS:
        try:
            importlib.import_module(module)
        except Exception as err:
            if module not in _OPTIONAL_PROVIDERS:
                _imported = False
                raise
            if not (isinstance(err, ModuleNotFoundError) and err.name == module):
                warnings.warn(f"{module} failed to import ({err!r}); its models are not registered", stacklevel=3)


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of registered models; ``pattern`` is an ``fnmatch`` filter such as ``"e2ehim-*"``."""
    import fnmatch

    _import_providers()
    names = sorted(_FACTORIES)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def create_model(name: str, /, **overrides: Any):
    """Build the registered model ``name`` with config overrides (nested fields as dicts)."""
    _import_providers()
    if name not in _FACTORIES:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_FACTORIES)) or 'none'}")
    return _FACTORIES[name](**overrides)


@dataclass
class ModelInfo:
    name: str
    module: str
    description: str
    num_params: int
    input_size: int | None
    config: dict


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
