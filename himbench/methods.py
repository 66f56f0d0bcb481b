"""The method interface shared by E2E-HIM and the two-stage baselines, and the method registry of the benchmark.

A *method* is anything that turns a photo into instance mattes: ``method.predict(image, masks=None) ->
Prediction(alphas (N,H,W) float32, scores (N,) float32)``. Mask-guided methods (``mask-cf``, ``mask-refine``) carry
a :class:`~baselines.guidance.GuidanceConfig` in ``method.guidance`` that says where their masks come from (perturbed
ground truth or masks on disk); the benchmark builds those masks per image and passes them in. Methods that find the
people themselves (``e2ehim-*``, ``seg-refine``, ``seg-tiny``) have ``guidance = None`` and ignore ``masks``.

Built-in methods (``list_methods()``):

=================  ===========================================================================================
``e2ehim-tiny``    the registered E2E-HIM model ``e2ehim-tiny`` with a checkpoint (``checkpoint=PATH``)
``e2ehim-base``    same, ``e2ehim-base``
``mask-cf``        guidance masks -> trimap -> closed-form matting per instance (no training)
``mask-only``      guidance masks returned as hard mattes (the reference any matting stage should beat)
``mask-refine``    guidance masks -> learned refiner per instance (model ``mask-refine-tiny`` by default)
``seg-refine``     learned segmenter ``seg-tiny`` -> learned refiner per instance: the full two-stage pipeline
``seg-tiny``       the segmenter alone (hard masks as mattes), to show how much the refiner adds
``e2ehim-official`` the authors' released E2E-HIM network (needs their weights: ``himbench import-checkpoint``)
``mgm``            guidance masks -> the authors' released MGMatting per instance (needs their weights)
``seg-mgm``        learned segmenter ``seg-tiny`` -> MGMatting per instance (two-stage with a released refiner)
=================  ===========================================================================================

Models that re-implement a published network carry ``released_weights``
(:class:`himbench.checkpoints.ReleasedWeights`): random weights mean nothing for them, so creating such a method
without a checkpoint is an error that says where the authors publish the weights and under which licence.

Any other registered model name also works (``create_method("my-model", checkpoint=...)``). To add a method, write a
:class:`Method` subclass and register a factory with ``@register_method("name")``.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from baselines.guidance import GuidanceConfig

__all__ = [
    "MASK_GUIDED",
    "Method",
    "MaskCFMethod",
    "MaskOnlyMethod",
    "ModelMethod",
    "Prediction",
    "RefineMethod",
    "SegRefineMethod",
    "create_method",
    "list_methods",
    "default_checkpoint",
    "load_registered_model",
    "missing_weights_message",
    "register_method",
    "resolve_device",
]


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
        ``len(masks)`` people. Defaults to :meth:`predict`; see :class:`SegRefineMethod` for why it may differ."""
        return self.predict(image, masks)

    @property
    def needs_masks(self) -> bool:
        return self.guidance is not None

    def num_parameters(self) -> int:
        """Learned parameters (0 for methods without training)."""
        return 0

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def trained(self) -> bool:
        """False when a learned method runs with random weights (no checkpoint): its accuracy means nothing."""
        return True

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


def _check_masks(name: str, image: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
    if masks is None:
        raise ValueError(f"{name} is mask-guided: pass guidance masks (N,H,W)")
    masks = np.asarray(masks).astype(bool, copy=False)
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"{name}: masks must be (N, {image.shape[0]}, {image.shape[1]}), got {masks.shape}")
    return masks


def resolve_device(device: str | None) -> str:
    """``None``/``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``."""
    if device in (None, "", "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def default_checkpoint(model: str) -> Path | None:
    """The shipped checkpoint of ``model`` if there is one: ``<package>/checkpoints/<model>/model.safetensors``
    in the ``e2ehim`` or ``baselines`` package (where ``himbench train`` results are placed for release)."""
    import importlib.util

    for package in ("e2ehim", "baselines"):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            folder = Path(root) / "checkpoints" / model
            if (folder / "model.safetensors").is_file():
                return folder
    return None


def missing_weights_message(model: str, released) -> str:
    """Where to get the authors' weights of ``model`` and how to import them (for a missing-checkpoint error)."""
    return (
        f"{model} re-implements a published network and needs the authors' weights: random weights give "
        f"meaningless outputs. Download {released.filename} from {released.download} (code: {released.code}; "
        f"licence: {released.license}), then run `himbench import-checkpoint {released.filename} "
        f"weights/{model} --model {model}` and pass `checkpoint=weights/{model}` (CLI: --checkpoint / "
        f"--option {model}.checkpoint=weights/{model})."
    )


def load_registered_model(model: str, checkpoint: str | Path | None, device: str):
    """Create registered ``model`` with the weights of ``checkpoint`` (a :mod:`himbench.checkpoints` folder,
    its ``model.safetensors``, or a Hub id); with no checkpoint, the shipped one (:func:`default_checkpoint`) if
    any, else random weights (an :class:`InputError` for models whose ``released_weights`` say random weights are
    useless). Returns ``(module in eval mode on device, checkpoint used or None)``."""
    from himbench.checkpoints import load_model
    from himbench.io import InputError
    from himbench.registry import create_model

    if checkpoint is None:
        checkpoint = default_checkpoint(model)
    if checkpoint is None:
        net = create_model(model)
        released = getattr(net, "released_weights", None)
        if released is not None and released.requires_weights:
            raise InputError(model, missing_weights_message(model, released))
        return net.to(device).eval(), None
    return load_model(checkpoint, model_name=model, device=device), str(checkpoint)


class ModelMethod(Method):
    """A registered model (``himbench.registry``) used through its ``predict_instances``."""

    def __init__(self, name: str, model: str, checkpoint: str | None = None, device: str | None = None) -> None:
        self.name = name
        self._device = resolve_device(device)
        self.net, used = load_registered_model(model, checkpoint, self._device)
        self._trained = used is not None
        self.checkpoints_used = {model: used}
        # The spec keeps the checkpoint as given: None means "the shipped default", wherever the package lives.
        self.spec = {"name": name, "model": model, "checkpoint": checkpoint}
        if not self._trained:
            warnings.warn(f"{name}: no checkpoint given, running {model} with random weights", stacklevel=2)

    def predict(self, image: np.ndarray, masks: np.ndarray | None = None) -> Prediction:
        alphas, scores = self.net.predict_instances(image, masks)
        return Prediction(alphas, scores)

    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.net.parameters()))

    @property
    def device(self) -> str:
        return self._device

    @property
    def trained(self) -> bool:
        return self._trained


class MaskCFMethod(Method):
    """``mask-cf``: closed-form matting per guidance mask (see :mod:`baselines.mask_cf`)."""

    def __init__(self, guidance: GuidanceConfig | None = None, device: str | None = None, **cf_options: Any) -> None:
        # ``device`` is accepted so every method takes the same options; closed-form matting runs on the CPU.
        from baselines.mask_cf import MaskCFConfig

        guidance = guidance or GuidanceConfig()
        self.name = "mask-cf"
        self.guidance = guidance
        self.config = MaskCFConfig(**cf_options)
        self.spec = {"name": "mask-cf", **_guidance_spec(guidance), **cf_options}

    def predict(self, image: np.ndarray, masks: np.ndarray | None = None) -> Prediction:
        from baselines.mask_cf import predict_mask_cf

        return Prediction(*predict_mask_cf(image, _check_masks(self.name, image, masks), self.config))


class MaskOnlyMethod(Method):
    """``mask-only``: the guidance masks returned as hard 0/1 mattes, the floor any matting stage should beat."""

    def __init__(self, guidance: GuidanceConfig | None = None, device: str | None = None) -> None:
        self.name = "mask-only"
        self.guidance = guidance or GuidanceConfig()
        self.spec = {"name": "mask-only", **_guidance_spec(self.guidance)}

    def predict(self, image: np.ndarray, masks: np.ndarray | None = None) -> Prediction:
        masks = _check_masks(self.name, image, masks)
        masks = masks[masks.reshape(len(masks), -1).any(axis=1)]
        return Prediction(masks.astype(np.float32), np.ones(len(masks), dtype=np.float32))


class RefineMethod(ModelMethod):
    """``mask-refine`` / ``mgm``: a learned mask-guided refiner run once per guidance mask."""

    def __init__(
        self,
        guidance: GuidanceConfig | None = None,
        model: str = "mask-refine-tiny",
        checkpoint: str | None = None,
        device: str | None = None,
        name: str = "mask-refine",
    ) -> None:
        super().__init__(name, model, checkpoint, device)
        guidance = guidance or GuidanceConfig()
        self.guidance = guidance
        self.spec = {**self.spec, **_guidance_spec(guidance)}

    def predict(self, image: np.ndarray, masks: np.ndarray | None = None) -> Prediction:
        return super().predict(image, _check_masks(self.name, image, masks))


class SegRefineMethod(Method):
    """``seg-refine``: the segmenter's masks feed the refiner (errors of the first stage propagate)."""

    def __init__(
        self,
        segmenter: str = "seg-tiny",
        seg_checkpoint: str | None = None,
        model: str = "mask-refine-tiny",
        checkpoint: str | None = None,
        device: str | None = None,
        name: str = "seg-refine",
    ) -> None:
        self.name = name
        self._device = resolve_device(device)
        self.segmenter, seg_used = load_registered_model(segmenter, seg_checkpoint, self._device)
        self.refiner, used = load_registered_model(model, checkpoint, self._device)
        self._trained = seg_used is not None and used is not None
        self.checkpoints_used = {segmenter: seg_used, model: used}
        self.spec = {
            "name": name,
            "segmenter": segmenter,
            "seg_checkpoint": seg_checkpoint,
            "model": model,
            "checkpoint": checkpoint,
        }
        if not self._trained:
            warnings.warn(f"{name}: a stage has no checkpoint and runs with random weights", stacklevel=2)

    def segment(self, image: np.ndarray) -> np.ndarray:
        masks, _ = self.segmenter.predict_instances(image)
        return masks >= 0.5

    def predict(self, image: np.ndarray, masks: np.ndarray | None = None) -> Prediction:
        found = self.segment(image)
        alphas, scores = self.refiner.predict_instances(image, found)
        return Prediction(alphas, scores)

    def predict_for_timing(self, image: np.ndarray, masks: np.ndarray) -> Prediction:
        # A synthetic probe image holds no people a segmenter would find, so the segmenter runs (its full cost)
        # and the refiner then gets the probe's n masks: the work of a segmenter that found n people.
        self.segment(image)
        alphas, scores = self.refiner.predict_instances(image, masks)
        return Prediction(alphas, scores)

    def num_parameters(self) -> int:
        return int(sum(p.numel() for net in (self.segmenter, self.refiner) for p in net.parameters()))

    @property
    def device(self) -> str:
        return self._device

    @property
    def trained(self) -> bool:
        return self._trained


def _guidance_spec(guidance: GuidanceConfig) -> dict[str, Any]:
    return {"guidance": guidance.perturb, "guidance_seed": guidance.seed, "guidance_radius": guidance.radius,
            "masks_dir": guidance.masks_dir}


def _guidance_from(kwargs: dict[str, Any]) -> GuidanceConfig:
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


_METHODS: dict[str, Callable[..., Method]] = {}
# methods that take guidance options
MASK_GUIDED: frozenset[str] = frozenset({"mask-cf", "mask-only", "mask-refine", "mgm"})


def register_method(name: str) -> Callable[[Callable[..., Method]], Callable[..., Method]]:
    """Decorator: register ``factory(**kwargs) -> Method`` under ``name``."""

    def decorate(factory: Callable[..., Method]) -> Callable[..., Method]:
        _METHODS[name] = factory
        return factory

    return decorate


@register_method("mask-cf")
def _mask_cf(**kwargs: Any) -> Method:
    guidance = _guidance_from(kwargs)
    return MaskCFMethod(guidance, **kwargs)


@register_method("mask-only")
def _mask_only(**kwargs: Any) -> Method:
    guidance = _guidance_from(kwargs)
    return MaskOnlyMethod(guidance, **kwargs)


@register_method("mask-refine")
def _mask_refine(**kwargs: Any) -> Method:
    guidance = _guidance_from(kwargs)
    return RefineMethod(guidance, **kwargs)


@register_method("seg-refine")
def _seg_refine(**kwargs: Any) -> Method:
    return SegRefineMethod(**kwargs)


@register_method("mgm")
def _mgm(**kwargs: Any) -> Method:
    """The authors' MGMatting (model ``mgm``) per guidance mask: ground-truth, perturbed or ``masks_dir`` masks."""
    guidance = _guidance_from(kwargs)
    kwargs.setdefault("model", "mgm")
    return RefineMethod(guidance, name="mgm", **kwargs)


@register_method("seg-mgm")
def _seg_mgm(**kwargs: Any) -> Method:
    """Two-stage: himbench's segmenter ``seg-tiny`` finds the people, the authors' MGMatting mattes each one."""
    kwargs.setdefault("model", "mgm")
    return SegRefineMethod(name="seg-mgm", **kwargs)


def _model_factory(name: str, model: str) -> Callable[..., Method]:
    def factory(checkpoint: str | None = None, device: str | None = None, model: str = model) -> Method:
        return ModelMethod(name, model, checkpoint, device)

    factory.__doc__ = f"registered model {model} through predict_instances"
    return factory


for _model in ("e2ehim-tiny", "e2ehim-base", "e2ehim-official", "seg-tiny"):
    register_method(_model)(_model_factory(_model, _model))


def list_methods() -> list[str]:
    return sorted(_METHODS)


def create_method(name: str, **kwargs: Any) -> Method:
    """Build method ``name``; ``kwargs`` are its options (checkpoint, device, guidance, guidance_seed,
    guidance_radius, masks_dir, ...). A registered model name that is not a method is wrapped as a
    :class:`ModelMethod`. ``None`` values are dropped, so CLI defaults pass through."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    kwargs.pop("name", None)
    if name in _METHODS:
        return _METHODS[name](**kwargs)
    from himbench.registry import list_models

    if name in list_models():
        return _model_factory(name, name)(**kwargs)
    raise KeyError(f"unknown method {name!r}; methods: {', '.join(list_methods())} (or any registered model)")
