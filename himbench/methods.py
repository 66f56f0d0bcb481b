"""The method protocol of the benchmark and its registry: what a method is, how it is built by name.

A *method* is anything that turns a photo into instance mattes: ``method.predict(image, masks=None) ->
Prediction(alphas (N,H,W) float32, scores (N,) float32)``. Mask-guided methods carry a
:class:`~himbench.guidance.GuidanceConfig` in ``method.guidance`` that says where their masks come from (perturbed
ground truth or masks on disk); the benchmark builds those masks per image and passes them in. Methods that find the
people themselves have ``guidance = None`` and ignore ``masks``.

Methods and models share one namespace (``himbench models`` lists both): a name registered as both a model and a
method always runs that same model, and :func:`model_for` tells which model a method runs, so ``himbench predict
--model NAME`` and ``himbench bench -m NAME`` run the same network.

Registering
    himbench registers no method itself: plugins do, as they register models (:mod:`himbench.registry`, entry-point
    group ``himbench.plugins``). Write a :class:`Method` subclass and register a factory with
    ``@register_method("name", models=(...), mask_guided=...)``, or wrap a registered model with
    :func:`register_model_method`. Any registered model that is not a method also works as one
    (``create_method("my-model", checkpoint=...)``, through :class:`ModelMethod`).

Models that re-implement a published network carry ``released_weights``
(:class:`himbench.checkpoints.ReleasedWeights`): random weights mean nothing for them, so creating such a method
without a checkpoint is an error that says where the authors publish the weights and under which licence.
"""

from __future__ import annotations

import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from himbench.device import resolve_device  # re-exported: methods take device names through it
from himbench.guidance import GuidanceConfig

__all__ = [
    "GUIDANCE_OPTIONS",
    "Method",
    "MethodEntry",
    "ModelMethod",
    "Prediction",
    "check_masks",
    "create_method",
    "guidance_from",
    "guidance_spec",
    "is_mask_guided",
    "list_methods",
    "load_registered_model",
    "method_entry",
    "missing_weights_message",
    "refuse_random_weights",
    "model_for",
    "register_method",
    "register_model_method",
    "resolve_device",
]

# keyword options of a mask-guided method that make its GuidanceConfig (see guidance_from)
GUIDANCE_OPTIONS: tuple[str, ...] = ("guidance", "guidance_seed", "guidance_radius", "masks_dir")


@dataclass(frozen=True)
class Prediction:
    """Instance mattes of one image: ``alphas`` (N,H,W) float32 in [0, 1], ``scores`` (N,) float32."""

    alphas: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        alphas = np.asarray(self.alphas, dtype=np.float32)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if alphas.ndim != 3:
            raise ValueError(f"alphas must be (N, H, W), got shape {alphas.shape}")
        if len(scores) != len(alphas):
            raise ValueError(f"{len(alphas)} mattes but {len(scores)} scores")
        object.__setattr__(self, "alphas", alphas)
        object.__setattr__(self, "scores", scores)

    @property
    def num_instances(self) -> int:
        return int(self.alphas.shape[0])


class Method(ABC):
    """A matting method under benchmark. Subclasses set ``name`` and implement :meth:`predict`."""

    name: str = ""
    guidance: GuidanceConfig | None = None  # set for mask-guided methods: where their masks come from
    spec: dict[str, Any]  # create_method(**spec) rebuilds this method (recorded beside results)
    checkpoints_used: dict[str, str | None] = {}  # model name -> checkpoint actually loaded (None: random weights)

    @abstractmethod
    def predict(self, image: np.ndarray, masks: np.ndarray | None = None) -> Prediction:
        """Mattes of the people in ``image`` (uint8 HxWx3 RGB); ``masks`` (M,H,W) bool for mask-guided methods."""

    def predict_for_timing(self, image: np.ndarray, masks: np.ndarray) -> Prediction:
        """Used by the latency-versus-instances probe: do the work this method would do on an image with
        ``len(masks)`` people. Defaults to :meth:`predict`; a two-stage method whose first stage
        finds no people on the synthetic probe image overrides it."""
        return self.predict(image, masks)

    @property
    def needs_masks(self) -> bool:
        return self.guidance is not None

    def num_parameters(self) -> int:
        """Learned parameters (0 for methods without training)."""
        return 0

    @property
    def device(self) -> str:
        """Where the method runs (subclasses that hold networks set ``self._device``)."""
        return getattr(self, "_device", "cpu")

    @property
    def trained(self) -> bool:
        """False when a learned method runs with random weights (no checkpoint): its accuracy means nothing.
        Subclasses that load weights set ``self._trained``."""
        return getattr(self, "_trained", True)

    def describe(self) -> dict[str, Any]:
        """Facts recorded beside benchmark results."""
        return {
            "name": self.name,
            "spec": self.spec,
            "guidance": self.guidance.label if self.guidance else "",
            "params": self.num_parameters(),
            "trained": self.trained,
            "checkpoints": dict(self.checkpoints_used),
            "device": self.device,
        }


def check_masks(name: str, image: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
    """``masks`` as bool (N,H,W) matching ``image`` (H,W,3); a ValueError naming method ``name`` otherwise."""
    if masks is None:
        raise ValueError(f"{name} is mask-guided: pass guidance masks (N,H,W)")
    masks = np.asarray(masks).astype(bool, copy=False)
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"{name}: masks must be (N, {image.shape[0]}, {image.shape[1]}), got {masks.shape}")
    return masks


def guidance_spec(guidance: GuidanceConfig) -> dict[str, Any]:
    """The keyword options (:data:`GUIDANCE_OPTIONS`) that rebuild ``guidance`` through :func:`guidance_from`."""
    return {"guidance": guidance.perturb, "guidance_seed": guidance.seed, "guidance_radius": guidance.radius,
            "masks_dir": guidance.masks_dir}


def guidance_from(kwargs: dict[str, Any]) -> GuidanceConfig:
    """Pop the guidance options (guidance, guidance_seed, guidance_radius, masks_dir) into a GuidanceConfig."""
    given = kwargs.pop("guidance", None)
    if isinstance(given, GuidanceConfig):
        return given
    return GuidanceConfig(
        perturb=given or "none",
        seed=int(kwargs.pop("guidance_seed", 0)),
        radius=int(kwargs.pop("guidance_radius", 4)),
        masks_dir=kwargs.pop("masks_dir", None),
    )


def missing_weights_message(model: str, released) -> str:
    """Where to get the authors' weights of ``model`` and how to import them (for a missing-checkpoint error)."""
    return (
        f"{model} re-implements a published network and needs the authors' weights: random weights give "
        f"meaningless outputs. Download {released.filename} from {released.download} (code: {released.code}; "
        f"licence: {released.license}), then run `himbench import-checkpoint {released.filename} "
        f"weights/{model} --model {model}` and pass `checkpoint=weights/{model}` (CLI: --checkpoint / "
        f"--option {model}.checkpoint=weights/{model})."
    )


def refuse_random_weights(model: str, net) -> None:
    """:class:`InputError` saying where to get the weights when ``net`` (registered as ``model``; an instance or its
    class) re-implements a published network whose ``released_weights`` say random weights are useless."""
    from himbench.io import InputError

    released = getattr(net, "released_weights", None)
    if released is not None and released.requires_weights:
        raise InputError(model, missing_weights_message(model, released))


def load_registered_model(model: str, checkpoint: str | Path | None, device: str):
    """Create registered ``model`` with the weights of ``checkpoint`` (a :mod:`himbench.checkpoints` folder,
    its ``model.safetensors``, or a Hub id); with no checkpoint, the one shipped with the model's registration
    (:func:`himbench.registry.default_checkpoint`) if any, else random weights (an :class:`InputError` for models
    whose ``released_weights`` say random weights are useless). Returns ``(module in eval mode on device, checkpoint
    used or None)``."""
    from himbench.checkpoints import load_model
    from himbench.registry import create_model, default_checkpoint, model_class

    if checkpoint is None:
        checkpoint = default_checkpoint(model)
    if checkpoint is None:
        refuse_random_weights(model, model_class(model))  # before building: a paper-size network costs seconds
        net = create_model(model)
        refuse_random_weights(model, net)
        return net.to(device).eval(), None
    return load_model(checkpoint, model_name=model, device=device), str(checkpoint)


class ModelMethod(Method):
    """A registered model (``himbench.registry``) used through its ``predict_instances``.

    A model whose class sets ``mask_guided = True`` (a refiner) makes a mask-guided method: it keeps ``guidance``
    (default: unperturbed ground truth) and refuses to predict without masks. Guidance given for any other model is
    a ``TypeError``."""

    def __init__(
        self,
        name: str,
        model: str,
        checkpoint: str | None = None,
        device: str | None = None,
        guidance: GuidanceConfig | None = None,
    ) -> None:
        self.name = name
        self._device = resolve_device(device)
        self.net, used = load_registered_model(model, checkpoint, self._device)
        self._trained = used is not None
        self.checkpoints_used = {model: used}
        # The spec keeps the checkpoint as given: None means "the shipped default", wherever the package lives.
        self.spec = {"name": name, "model": model, "checkpoint": checkpoint}
        if getattr(self.net, "mask_guided", False):
            self.guidance = guidance or GuidanceConfig()
            self.spec.update(guidance_spec(self.guidance))
        elif guidance is not None:
            raise TypeError(f"{name}: model {model} is not mask-guided, so guidance options do not apply")
        if not self._trained:
            warnings.warn(f"{name}: no checkpoint given, running {model} with random weights", stacklevel=2)

    def predict(self, image: np.ndarray, masks: np.ndarray | None = None) -> Prediction:
        if self.guidance is not None:
            masks = check_masks(self.name, image, masks)
        alphas, scores = self.net.predict_instances(image, masks)
        return Prediction(alphas, scores)

    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.net.parameters()))


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
    """Decorator: register ``factory(**kwargs) -> Method`` under ``name``.

    ``models``: the registered models the method runs by default (for listings and :func:`model_for`); a method
    named like a registered model must run exactly that model. ``mask_guided``: the method takes guidance masks,
    and the benchmark passes it the guidance options (:data:`GUIDANCE_OPTIONS`)."""

    def decorate(factory: Callable[..., Method]) -> Callable[..., Method]:
        existing = _METHODS.get(name)
        if existing is not None and existing.factory.__qualname__ != factory.__qualname__:
            raise ValueError(f"method name {name!r} is already registered by {existing.module}")
        _METHODS[name] = MethodEntry(name, factory, tuple(models), mask_guided)
        return factory

    return decorate


def _model_method_factory(name: str, model: str, description: str) -> Callable[..., Method]:
    def factory(
        checkpoint: str | None = None, device: str | None = None, model: str = model, **options: Any
    ) -> Method:
        guidance = guidance_from(options) if any(key in options for key in GUIDANCE_OPTIONS) else None
        if options:
            raise TypeError(f"{name}: unexpected options {', '.join(sorted(options))}")
        return ModelMethod(name, model, checkpoint, device, guidance)

    factory.__doc__ = description
    factory.__qualname__ = f"model_method[{name}]"
    return factory


def register_model_method(
    name: str, model: str | None = None, *, mask_guided: bool = False, description: str | None = None
) -> Callable[..., Method]:
    """Register method ``name`` running registered ``model`` (default: the model of the same name) through
    :class:`ModelMethod`; options: ``checkpoint``, ``device`` and, when ``mask_guided``, the guidance options."""
    model = model or name
    factory = _model_method_factory(name, model, description or f"registered model {model} through predict_instances")
    factory.__module__ = sys._getframe(1).f_globals.get("__name__", __name__)  # the registering plugin's module
    register_method(name, models=(model,), mask_guided=mask_guided)(factory)
    return factory


def _load_plugins() -> None:
    from himbench.registry import load_plugins

    load_plugins()


def list_methods() -> list[str]:
    """Sorted names of the registered methods (registered models not listed here work as methods too)."""
    _load_plugins()
    return sorted(_METHODS)


def method_entry(name: str) -> MethodEntry | None:
    """The registration of method ``name``, or None when ``name`` is not a registered method."""
    _load_plugins()
    return _METHODS.get(name)


def is_mask_guided(name: str) -> bool:
    """Whether method (or model) ``name`` takes guidance masks. A model that is not a registered method is built on
    the CPU to read its class's ``mask_guided`` flag; an unknown name is False."""
    entry = method_entry(name)
    if entry is not None:
        return entry.mask_guided
    from himbench.registry import create_model, list_models

    if name not in list_models():
        return False
    return bool(getattr(create_model(name), "mask_guided", False))


def model_for(name: str) -> str:
    """The registered model that ``name`` runs: ``name`` itself for a model, the model of a method that runs exactly
    one (``mask-refine`` -> ``mask-refine-tiny``); a KeyError saying why otherwise."""
    from himbench.registry import list_models

    if name in list_models():
        return name
    entry = method_entry(name)
    if entry is None:
        raise KeyError(f"unknown model or method {name!r}; see `himbench models`")
    if len(entry.models) != 1:
        runs = ", ".join(entry.models) or "no learned model"
        raise KeyError(f"method {name!r} runs {runs}, not one model: run it with `himbench bench -m {name}`")
    return entry.models[0]


def create_method(name: str, **kwargs: Any) -> Method:
    """Build method ``name``; ``kwargs`` are its options (checkpoint, device, guidance, guidance_seed,
    guidance_radius, masks_dir, ...). A registered model name that is not a method is wrapped as a
    :class:`ModelMethod`. ``None`` values are dropped, so CLI defaults pass through."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    kwargs.pop("name", None)
    entry = method_entry(name)
    if entry is not None:
        return entry.factory(**kwargs)
    from himbench.registry import list_models

    if name in list_models():
        return _model_method_factory(name, name, "")(**kwargs)
    raise KeyError(f"unknown method {name!r}; methods: {', '.join(list_methods())} (or any registered model)")
