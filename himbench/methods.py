"""The method protocol of the benchmark: what a method is, and how one is built by name.

A *method* is anything that turns a photo into instance mattes: ``method.predict(image, masks=None) ->
Prediction(alphas (N,H,W) float32, scores (N,) float32)``. Mask-guided methods carry a
:class:`~himbench.guidance.GuidanceConfig` in ``method.guidance`` that says where their masks come from (perturbed
ground truth or masks on disk); the benchmark builds those masks per image and passes them in. Methods that find the
people themselves have ``guidance = None`` and ignore ``masks``.

Methods and models share one namespace, kept by :mod:`himbench.registry` (the one registry; ``himbench models``
lists both): a name registered as both a model and a method always runs that same model, and
:func:`himbench.registry.model_for` tells which model a method runs, so ``himbench predict --model NAME`` and
``himbench bench -m NAME`` run the same network.

Registering
    himbench registers no method itself: plugins do, each in its own ``methods`` module (``e2ehim.methods``,
    ``baselines.methods``) imported by the plugin's ``__init__``. Write a :class:`Method` subclass and register a
    factory with ``@himbench.registry.register_method("name", models=(...), mask_guided=...)``, or wrap a
    registered model with :func:`register_model_method`. Any registered model that is not a method also works as
    one (``create_method("my-model", checkpoint=...)``, through :class:`ModelMethod`).

Weights: :func:`himbench.checkpoints.load_registered_model` (the weights policy, beside
:class:`~himbench.checkpoints.ReleasedWeights`) loads the models a method runs.
"""

from __future__ import annotations

import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from himbench.device import resolve_device  # re-exported: methods take device names through it
from himbench.guidance import GuidanceConfig
from himbench.registry import register_method, traits_of

__all__ = [
    "GUIDANCE_OPTIONS",
    "Method",
    "ModelMethod",
    "Prediction",
    "check_masks",
    "create_method",
    "guidance_from",
    "guidance_spec",
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

    takes_trimap: bool = False  # True when the subclass implements predict_with_trimap

    def predict_with_trimap(self, image: np.ndarray, trimap: np.ndarray) -> Prediction:
        """Optional: one matte solved on a given trimap (a classic benchmark's own, uint8 0/128/255) instead of
        guidance masks. A subclass that implements it sets ``takes_trimap = True``; the benchmark and ``himbench
        predict`` then pass the benchmark's trimap where it ships one."""
        raise NotImplementedError(f"{self.name} takes no trimap")

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
        from himbench.checkpoints import load_registered_model

        self.net, used = load_registered_model(model, checkpoint, self._device)
        self._trained = used is not None
        self.checkpoints_used = {model: used}
        # The spec keeps the checkpoint as given: None means "the shipped default", wherever the package lives.
        self.spec = {"name": name, "model": model, "checkpoint": checkpoint}
        if traits_of(self.net).mask_guided:
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


def create_method(name: str, **kwargs: Any) -> Method:
    """Build method ``name``; ``kwargs`` are its options (checkpoint, device, guidance, guidance_seed,
    guidance_radius, masks_dir, ...). A registered model name that is not a method is wrapped as a
    :class:`ModelMethod`. ``None`` values are dropped, so CLI defaults pass through."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    kwargs.pop("name", None)
    from himbench.registry import list_methods, list_models, method_entry

    entry = method_entry(name)
    if entry is not None:
        return entry.factory(**kwargs)
    if name in list_models():
        return _model_method_factory(name, name, "")(**kwargs)
    raise KeyError(f"unknown method {name!r}; methods: {', '.join(list_methods())} (or any registered model)")
