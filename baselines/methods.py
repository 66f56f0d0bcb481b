"""The two-stage baselines as benchmark methods (:mod:`himbench.methods` protocol), registered with the host.

=================  ===========================================================================================
``mask-cf``        guidance masks -> trimap -> closed-form matting per instance (no training)
``mask-only``      guidance masks returned as hard mattes (the reference any matting stage should beat)
``mask-refine``    guidance masks -> learned refiner per instance (runs model ``mask-refine-tiny``; ``model=``
                   picks another refiner, e.g. ``mask-refine-base``)
``seg-tiny``       the segmenter alone (hard masks as mattes), to show how much the refiner adds
``seg-refine``     learned segmenter ``seg-tiny`` -> learned refiner per instance: the full two-stage pipeline
``mgm``            guidance masks -> the authors' released MGMatting per instance (needs their weights)
``seg-mgm``        learned segmenter ``seg-tiny`` -> MGMatting per instance (two-stage with a released refiner)
=================  ===========================================================================================

Mask-guided methods take the guidance options of :data:`himbench.methods.GUIDANCE_OPTIONS`. This module is the one
place the plugin registers its methods (its models register where they are defined); ``baselines/__init__.py``
imports it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from himbench.checkpoints import load_registered_model
from himbench.guidance import GuidanceConfig
from himbench.methods import (
    Method,
    Prediction,
    check_masks,
    guidance_from,
    guidance_spec,
    register_model_method,
    resolve_device,
)
from himbench.registry import register_method

__all__ = ["MaskCFMethod", "MaskOnlyMethod", "SegRefineMethod"]


class MaskCFMethod(Method):
    """``mask-cf``: closed-form matting per guidance mask (see :mod:`baselines.mask_cf`)."""

    takes_trimap = True  # predict_with_trimap: a classic benchmark's own trimap

    def __init__(self, guidance: GuidanceConfig | None = None, device: str | None = None, **cf_options: Any) -> None:
        # ``device`` is accepted so every method takes the same options; closed-form matting runs on the CPU.
        from baselines.mask_cf import MaskCFConfig

        guidance = guidance or GuidanceConfig()
        self.name = "mask-cf"
        self.guidance = guidance
        self.config = MaskCFConfig(**cf_options)
        self.spec = {"name": "mask-cf", **guidance_spec(guidance), **cf_options}

    def predict(self, image: np.ndarray, masks: np.ndarray | None = None) -> Prediction:
        from baselines.mask_cf import predict_mask_cf

        return Prediction(*predict_mask_cf(image, check_masks(self.name, image, masks), self.config))

    def predict_with_trimap(self, image: np.ndarray, trimap: np.ndarray) -> Prediction:
        """One matte solved on a given trimap (a classic benchmark's own), instead of trimaps made from masks."""
        from baselines.mask_cf import matte_with_trimap

        alpha = matte_with_trimap(image, trimap, self.config)
        return Prediction(alpha[None], np.ones(1, dtype=np.float32))


class MaskOnlyMethod(Method):
    """``mask-only``: the guidance masks returned as hard 0/1 mattes, the floor any matting stage should beat."""

    def __init__(self, guidance: GuidanceConfig | None = None, device: str | None = None) -> None:
        self.name = "mask-only"
        self.guidance = guidance or GuidanceConfig()
        self.spec = {"name": "mask-only", **guidance_spec(self.guidance)}

    def predict(self, image: np.ndarray, masks: np.ndarray | None = None) -> Prediction:
        masks = check_masks(self.name, image, masks)
        masks = masks[masks.reshape(len(masks), -1).any(axis=1)]
        return Prediction(masks.astype(np.float32), np.ones(len(masks), dtype=np.float32))


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


@register_method("mask-cf", mask_guided=True)
def _mask_cf(**kwargs: Any) -> Method:
    """Guidance masks -> trimap by erosion/dilation -> closed-form matting per instance (pymatting), no training."""
    guidance = guidance_from(kwargs)
    return MaskCFMethod(guidance, **kwargs)


@register_method("mask-only", mask_guided=True)
def _mask_only(**kwargs: Any) -> Method:
    """The guidance masks themselves as hard mattes (a floor for any matting stage)."""
    guidance = guidance_from(kwargs)
    return MaskOnlyMethod(guidance, **kwargs)


register_model_method(
    "mask-refine",
    "mask-refine-tiny",
    mask_guided=True,
    description="Guidance masks -> learned MGMatting-style refiner per instance (model mask-refine-tiny).",
)
register_model_method(
    "mgm",
    mask_guided=True,
    description="Guidance masks -> the authors' released MGMatting per instance (needs their weights).",
)
register_model_method(
    "seg-tiny", description="The learned instance segmenter alone, hard masks as mattes (first stage of seg-refine)."
)


@register_method("seg-refine", models=("seg-tiny", "mask-refine-tiny"))
def _seg_refine(**kwargs: Any) -> Method:
    """Learned segmenter seg-tiny -> learned refiner mask-refine-tiny per instance: the full two-stage pipeline."""
    return SegRefineMethod(**kwargs)


@register_method("seg-mgm", models=("seg-tiny", "mgm"))
def _seg_mgm(**kwargs: Any) -> Method:
    """Two-stage: himbench's segmenter seg-tiny finds the people, the authors' MGMatting mattes each one."""
    kwargs.setdefault("model", "mgm")
    return SegRefineMethod(name="seg-mgm", **kwargs)
