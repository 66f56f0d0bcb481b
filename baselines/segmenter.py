"""``seg-tiny``: a small learned instance segmenter, the first stage of the ``seg-refine`` two-stage baseline.

Bottom-up centre/offset scheme (Panoptic-DeepLab, Cheng et al. 2020) on a tiny U-Net, because it needs no anchors,
no query matching and trains in minutes on the synthetic shards. Per pixel the network predicts

- ``person``: a foreground logit (binary cross-entropy against "some matte >= 0.5"),
- ``centre``: a heatmap with a Gaussian (sigma = ``sigma`` x input size) at each instance's centre of mass
  (mean squared error, weighted by ``centre_weight`` as Panoptic-DeepLab does),
- ``offset``: the vector from the pixel to its instance's centre, in units of ``offset_unit`` px (L1, on person
  pixels only).

Inference: peaks of the heatmap (3x3 max-pool equality, above ``peak_threshold``, at most ``max_instances``) are
the instances; every person pixel joins the peak nearest to where its offset points. Masks smaller than
``min_area`` of the image are dropped (SPEC s.5 drops instances under 1000 px at 640 x 640, i.e. 0.0024). The masks
it returns are binary (0/1 float) with the peak height as the score, so the segmenter alone is also a (poor,
hard-edged) matting method, and its masks feed the refiner in ``seg-refine``: errors propagate, as in InstMatt-style
systems built on Mask R-CNN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.refiner import check_unet_depth, image_to_tensor, normalise_image, unet_memory
from baselines.unet import TinyUNet, pad_to_multiple
from himbench.registry import apply_overrides, check_fields, check_model_memory, register_model

__all__ = ["InstanceSegmenter", "SegmenterConfig", "group_instances", "segmentation_targets"]


@dataclass(frozen=True)
class SegmenterConfig:
    input_size: int = 256
    width: int = 16
    depth: int = 4
    sigma: float = 0.03  # centre Gaussian sigma, fraction of input size
    offset_unit: float = 32.0
    centre_weight: float = 100.0
    peak_threshold: float = 0.2
    peak_window: int = 7  # peaks closer than this (working px) are merged by the max-pool
    max_instances: int = 20
    min_area: float = 0.0024

    def __post_init__(self) -> None:
        # A config.json may come from anyone: refuse what would crash, or allocate terabytes, before any tensor.
        check_fields(self, positive=("input_size", "width", "depth", "sigma", "offset_unit", "peak_window",
                                     "max_instances"),
                     non_negative=("centre_weight",), unit_interval=("peak_threshold", "min_area"))
        check_unet_depth(type(self).__name__, self.depth)
        check_model_memory(type(self).__name__, *unet_memory(3, self.width, self.depth, self.input_size))


def segmentation_targets(
    alphas: torch.Tensor, valid: torch.Tensor, sigma_px: float, unit: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets from padded mattes BxKxSxS: person Bx1xSxS, centre heatmap Bx1xSxS, offsets Bx2xSxS (dy, dx)/unit."""
    b, k, s, t = alphas.shape
    masks = (alphas >= 0.5) & valid[:, :, None, None]
    person = masks.any(dim=1, keepdim=True).float()
    ys = torch.arange(s, device=alphas.device, dtype=torch.float32).view(1, 1, s, 1)
    xs = torch.arange(t, device=alphas.device, dtype=torch.float32).view(1, 1, 1, t)
    m = masks.float()
    area = m.sum(dim=(2, 3)).clamp(min=1.0)
    cy = (m * ys).sum(dim=(2, 3)) / area  # BxK
    cx = (m * xs).sum(dim=(2, 3)) / area
    present = masks.flatten(2).any(dim=2)
    gauss = torch.exp(-((ys - cy[..., None, None]) ** 2 + (xs - cx[..., None, None]) ** 2) / (2 * sigma_px**2))
    centre = (gauss * present[..., None, None]).amax(dim=1, keepdim=True)
    dy = ((cy[..., None, None] - ys) * m).sum(dim=1)
    dx = ((cx[..., None, None] - xs) * m).sum(dim=1)
    offset = torch.stack([dy, dx], dim=1) / unit
    return person, centre, offset


def group_instances(
    person: np.ndarray, centre: np.ndarray, offset: np.ndarray, config: SegmenterConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Turn probability maps (hxw, hxw, 2xhxw in px) into an instance label map (0 = none) and peak scores."""
    heat = torch.from_numpy(centre)[None, None]
    pooled = F.max_pool2d(heat, config.peak_window, stride=1, padding=config.peak_window // 2)
    peaks = ((heat == pooled) & (heat > config.peak_threshold))[0, 0].numpy()
    py, px = np.nonzero(peaks)
    scores = centre[py, px]
    order = np.argsort(-scores)[: config.max_instances]
    py, px, scores = py[order], px[order], scores[order]
    labels = np.zeros(person.shape, dtype=np.int32)
    fg = person >= 0.5
    if len(py) == 0 or not fg.any():
        return labels, np.zeros(0, dtype=np.float32)
    yy, xx = np.nonzero(fg)
    vy, vx = yy + offset[0, yy, xx], xx + offset[1, yy, xx]
    dist = (vy[:, None] - py[None]) ** 2 + (vx[:, None] - px[None]) ** 2
    labels[yy, xx] = np.argmin(dist, axis=1) + 1
    return labels, scores.astype(np.float32)


class InstanceSegmenter(nn.Module):
    """Tiny U-Net with person / centre / offset heads (see module docstring)."""

    is_segmenter = True  # finds the people itself: its masks guide mask-guided models (himbench.registry.ModelTraits)

    def __init__(self, config: SegmenterConfig = SegmenterConfig()) -> None:
        super().__init__()
        self.config = config
        self.unet = TinyUNet(3, 4, width=config.width, depth=config.depth)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Normalised Bx3xHxW -> Bx4xHxW: person logit, centre logit, offset (dy, dx) in ``offset_unit``."""
        x, (h, w) = pad_to_multiple(image, self.unet.multiple)
        return self.unet(x)[..., :h, :w]

    def training_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        images = batch["image"].float()
        size = images.shape[-1]
        with torch.no_grad():
            person, centre, offset = segmentation_targets(
                batch["alphas"].float(), batch["valid"], self.config.sigma * size, self.config.offset_unit
            )
        out = self(normalise_image(images))
        person_loss = F.binary_cross_entropy_with_logits(out[:, :1], person)
        centre_loss = F.mse_loss(torch.sigmoid(out[:, 1:2]), centre) * self.config.centre_weight
        offset_loss = ((out[:, 2:] - offset).abs().sum(dim=1, keepdim=True) * person).sum() / person.sum().clamp(1)
        loss = person_loss + centre_loss + offset_loss
        return {
            "loss": loss,
            "person": person_loss.detach(),
            "centre": centre_loss.detach(),
            "offset": offset_loss.detach(),
        }

    @torch.no_grad()
    def predict_instances(self, image: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Binary instance masks (N,H,W) float32 and peak scores; ``masks`` is ignored (it segments by itself)."""
        h, w = image.shape[:2]
        device = next(self.parameters()).device
        x = image_to_tensor(image, self.config.input_size, device)
        out = self(x)[0].float()
        person = torch.sigmoid(out[0]).cpu().numpy()
        centre = torch.sigmoid(out[1]).cpu().numpy()
        offset = (out[2:] * self.config.offset_unit).cpu().numpy()
        labels, scores = group_instances(person, centre, offset, self.config)
        if len(scores) == 0:
            return np.zeros((0, h, w), dtype=np.float32), scores
        onehot = torch.from_numpy(labels)[None] == torch.arange(1, len(scores) + 1)[:, None, None]
        # Bilinear upsampling of the one-hot masks then 0.5 gives smooth, non-overlapping full-size outlines.
        big = F.interpolate(onehot[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0] >= 0.5
        areas = big.flatten(1).float().mean(dim=1).numpy()
        keep = areas >= self.config.min_area
        return big.numpy()[keep].astype(np.float32), scores[keep]


@register_model("seg-tiny", default_weights="checkpoints/seg-tiny")
def seg_tiny(**overrides) -> InstanceSegmenter:
    """Tiny centre/offset instance segmenter (U-Net width 16, 256 px): the first stage of seg-refine."""
    return InstanceSegmenter(apply_overrides(SegmenterConfig(), overrides))
