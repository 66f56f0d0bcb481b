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

    :func:`load_plugins` (called by :func:`create_model`, :func:`list_models`, :func:`list_methods` and
    :func:`method_entry`) imports every such module once; importing it runs its ``@register_model`` /
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
    The required members are :class:`HIMModel`; the optional hooks and class-level traits are listed in
    :data:`MODEL_HOOKS` and :class:`ModelTraits`. The host reads them only through this module
    (:func:`model_traits`, :func:`traits_of`, :func:`batch_predictor`, :func:`no_weight_decay_names`,
    :func:`authors_state_dict_converter`), never by probing a model itself.

Two kinds of entries, one namespace
    *Models* (``@register_model``) are networks built by name. *Methods* (``@register_method``; see
    :mod:`himbench.methods` for the protocol) are what the benchmark runs: a method may run registered models
    (``MethodEntry.models``) or none (``mask-cf``). A name registered as both always runs that same model;
    any registered model that is not a method also works as one. :func:`entry_kind` tells which a name is.
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
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:  # annotations only: himbench.methods and himbench.checkpoints import this module
    from himbench.checkpoints import ReleasedWeights
    from himbench.methods import Method

__all__ = [
    "DEFAULT_MAX_MODEL_BYTES",
    "MAX_MODEL_BYTES_ENV",
    "MODEL_HOOKS",
    "PLUGIN_GROUP",
    "HIMModel",
    "MethodEntry",
    "ModelInfo",
    "ModelTraits",
    "apply_overrides",
    "authors_state_dict_converter",
    "batch_predictor",
    "check_fields",
    "check_model_memory",
    "config_to_dict",
    "count_parameters",
    "create_model",
    "default_checkpoint",
    "default_segmenter",
    "entry_kind",
    "is_mask_guided",
    "list_methods",
    "list_models",
    "load_entry_points",
    "load_plugins",
    "max_model_bytes",
    "method_entry",
    "model_class",
    "model_for",
    "model_info",
    "model_traits",
    "no_weight_decay_names",
    "register_method",
    "register_model",
    "traits_of",
]

PLUGIN_GROUP = "himbench.plugins"

_FACTORIES: dict[str, Callable[..., Any]] = {}
_DEFAULT_WEIGHTS: dict[str, Path] = {}
_plugins_loaded = False

T = TypeVar("T")


# ------------------------------------------------------------------------------------------- the model protocol
@runtime_checkable
class HIMModel(Protocol):
    """The members every registered model has (an ``nn.Module``; see the module docstring for the contracts).

    ``isinstance(model, HIMModel)`` checks that they are present. The optional members are in :data:`MODEL_HOOKS`
    (instance hooks) and :class:`ModelTraits` (class-level flags); read them with this module's functions."""

    config: Any  # a dataclass: the whole resolved config; its ``input_size`` is the square input side in pixels

    def training_loss(self, batch: dict[str, Any]) -> dict[str, Any]:
        """``{"loss": scalar tensor, ...logged scalar components}`` for a :func:`himbench.data.collate_him` batch."""
        ...

    def predict_instances(self, image: Any, masks: Any = None) -> tuple[Any, Any]:
        """``(alphas (N,H,W) float32 in [0, 1], scores (N,) float32)`` for a uint8 HxWx3 RGB image of any size."""
        ...


# Optional instance hooks: name -> what it does and who calls it. A model defines the ones it needs.
MODEL_HOOKS: dict[str, str] = {
    "predict_batch": "predict_batch(images, masks=None) -> list[(alphas, scores)]: several images in one forward "
                     "pass; `himbench predict` batches through it (see batch_predictor)",
    "no_weight_decay": "no_weight_decay() -> iterable of parameter names the optimizer must not decay beyond norms "
                       "and biases, timm-style (see no_weight_decay_names)",
    "convert_authors_state_dict": "convert_authors_state_dict(state) -> state, a static/class method: maps the "
                                  "authors' released key names onto the model's own for `himbench "
                                  "import-checkpoint` (see authors_state_dict_converter)",
}


@dataclass(frozen=True)
class ModelTraits:
    """Class-level flags of a registered model, read from its class without building the network.

    A model class declares a trait as a class attribute of the same name; an absent one takes the default here."""

    mask_guided: bool = False  # predict_instances needs guidance masks (a refiner): the host asks for --masks
    takes_trimap: bool = False  # predict_instances also accepts ``trimap=`` (a benchmark's own trimap)
    is_segmenter: bool = False  # finds the people itself; its hard masks (alpha >= 0.5) can guide a mask-guided model
    released_weights: ReleasedWeights | None = None  # a published network: where the authors release its weights
    find_unused_parameters: bool = True  # False: every parameter takes part in every loss (DDP skips its search)


_TRAIT_DEFAULTS = ModelTraits()


def traits_of(model_or_class: Any) -> ModelTraits:
    """The :class:`ModelTraits` a model instance or class declares (its attributes of the traits' names)."""
    return ModelTraits(**{
        field.name: getattr(model_or_class, field.name, getattr(_TRAIT_DEFAULTS, field.name))
        for field in dataclasses.fields(ModelTraits)
    })


def batch_predictor(model: Any) -> Callable[..., list] | None:
    """The model's ``predict_batch`` hook (see :data:`MODEL_HOOKS`), or None when it predicts one image at a time."""
    return getattr(model, "predict_batch", None)


def no_weight_decay_names(model: Any) -> set[str]:
    """Names of parameters the model says must not decay (its ``no_weight_decay`` hook); empty without the hook."""
    hook = getattr(model, "no_weight_decay", None)
    return set(hook()) if hook is not None else set()


def authors_state_dict_converter(model_or_class: Any) -> Callable[[dict], dict] | None:
    """The class's ``convert_authors_state_dict`` hook (authors' key names -> the model's), or None (identity)."""
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    return getattr(cls, "convert_authors_state_dict", None)


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


def model_traits(name: str) -> ModelTraits:
    """The :class:`ModelTraits` of registered model ``name``, read from the class its factory says it returns
    (:func:`model_class`), so no network is built. Only a factory without a return annotation costs a build (on
    the CPU); annotate factories (``def my_model(**overrides) -> MyModel``) to avoid it."""
    cls = model_class(name)
    return traits_of(cls if cls is not None else create_model(name))


def default_segmenter() -> str | None:
    """The registered model that finds people for a mask-guided one when no masks are given: among the models
    whose class sets ``is_segmenter = True``, the first (by name) that ships weights, else the first; None if none."""
    names = [name for name in list_models() if model_traits(name).is_segmenter]
    shipped = [name for name in names if default_checkpoint(name) is not None]
    return (shipped or names or [None])[0]


def default_checkpoint(name: str) -> Path | None:
    """The checkpoint folder shipped with model ``name`` (its registration's ``default_weights``), or None when the
    registration names none or the folder holds no ``model.safetensors``."""
    load_plugins()
    folder = _DEFAULT_WEIGHTS.get(name)
    if folder is None or not (folder / "model.safetensors").is_file():
        return None
    return folder


# ------------------------------------------------------------------------------------------------------ methods
@dataclass(frozen=True)
class MethodEntry:
    """One registered method: its factory, the registered models it runs by default (empty for methods without
    learned parts) and whether it takes guidance masks."""

    name: str
    factory: Callable[..., Method]
    models: tuple[str, ...] = ()
    mask_guided: bool = False

    @property
    def module(self) -> str:
        return self.factory.__module__

    @property
    def description(self) -> str:
        lines = (self.factory.__doc__ or "").strip().splitlines()
        return lines[0] if lines else ""


_METHODS: dict[str, MethodEntry] = {}


def register_method(
    name: str, *, models: tuple[str, ...] = (), mask_guided: bool = False
) -> Callable[[Callable[..., Method]], Callable[..., Method]]:
    """Decorator: register ``factory(**kwargs) -> Method`` (:class:`himbench.methods.Method`) under ``name``.

    ``models``: the registered models the method runs by default (for listings and :func:`model_for`); a method
    named like a registered model must run exactly that model. ``mask_guided``: the method takes guidance masks,
    and the benchmark passes it the guidance options (:data:`himbench.methods.GUIDANCE_OPTIONS`). To run one
    registered model as a method, :func:`himbench.methods.register_model_method` does this for you."""

    def decorate(factory: Callable[..., Method]) -> Callable[..., Method]:
        existing = _METHODS.get(name)
        if existing is not None and existing.factory.__qualname__ != factory.__qualname__:
            raise ValueError(f"method name {name!r} is already registered by {existing.module}")
        _METHODS[name] = MethodEntry(name, factory, tuple(models), mask_guided)
        return factory

    return decorate


def list_methods() -> list[str]:
    """Sorted names of the registered methods (registered models not listed here work as methods too)."""
    load_plugins()
    return sorted(_METHODS)


def method_entry(name: str) -> MethodEntry | None:
    """The registration of method ``name``, or None when ``name`` is not a registered method."""
    load_plugins()
    return _METHODS.get(name)


def entry_kind(name: str) -> str | None:
    """``"method"`` for a registered method (whether or not a model shares its name), ``"model"`` for a registered
    model that is no method, None for an unknown name."""
    if method_entry(name) is not None:
        return "method"
    return "model" if name in _FACTORIES else None


def is_mask_guided(name: str) -> bool:
    """Whether method (or model) ``name`` takes guidance masks: the method's registration, else the model's
    ``mask_guided`` trait (read from its class, nothing built); an unknown name is False."""
    entry = method_entry(name)
    if entry is not None:
        return entry.mask_guided
    if name not in list_models():
        return False
    return model_traits(name).mask_guided


def model_for(name: str) -> str:
    """The registered model that ``name`` runs: ``name`` itself for a model, the model of a method that runs exactly
    one (``mask-refine`` -> ``mask-refine-tiny``); a KeyError saying why otherwise."""
    if name in list_models():
        return name
    entry = method_entry(name)
    if entry is None:
        raise KeyError(f"unknown model or method {name!r}; see `himbench models`")
    if len(entry.models) != 1:
        runs = ", ".join(entry.models) or "no learned model"
        raise KeyError(f"method {name!r} runs {runs}, not one model: run it with `himbench bench -m {name}`")
    return entry.models[0]


# --------------------------------------------------------------------------------------------- what models show
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
        mask_guided=traits_of(model).mask_guided,
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
