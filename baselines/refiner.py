"""Models ``mask-refine-tiny`` and ``mask-refine-base`` (method ``mask-refine``): an MGMatting-style mask-guided matting
refiner, the second stage of a two-stage system.

Input: the image and ONE instance's binary mask (4 channels); output: that instance's alpha matte. It runs once per
instance, so its cost grows linearly with the number of people (all instances of an image go through in batches,
which saves Python overhead but not arithmetic). The network predicts a correction to the mask: its output logit is
``unet(image, mask) + prior * (2 * mask - 1)`` with a learned ``prior`` and a zero-initialised last layer, so an
untrained refiner returns the mask and training only has to learn the soft boundary. Only a band of ``band``
(fraction of the image side) around the mask's outline is refined; elsewhere the output is the full-resolution mask
itself (MGMatting also keeps confident regions), which stops the low-resolution network from blurring good edges.

Measured on 6 synthetic 640 x 640 test images with the shipped checkpoint (trained 600 CPU steps): against returning
the guidance mask as a hard matte, it is better when the masks are eroded or dilated by 4 px (per-instance MAD
14.0 vs 16.1, Grad 13 vs 41 with eroded masks) and worse with exact masks (MAD 11.0 vs 4.0): a small network at
192 px cannot add detail that an exact mask already has.

Training (``himbench train --model mask-refine-tiny``) follows the protocol of :mod:`himbench.registry`: every
valid ground-truth instance of the batch becomes one training example (capped at ``max_instances`` per step); its
guidance mask is the matte binarised at 0.5 and then randomly eroded or dilated by up to ``max_perturb`` of the input
size, so the refiner learns to repair segmenter-quality masks. Loss: L1 over all pixels, weighted up by
``transition_weight`` where the ground truth is fractional or the guidance mask is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.mask_cf import normalise_overlaps
from baselines.unet import TinyUNet, pad_to_multiple
from himbench.registry import apply_overrides, register_model

__all__ = ["MaskRefiner", "RefinerConfig", "image_to_tensor", "perturb_mask_tensor"]

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class RefinerConfig:
    input_size: int = 320  # longer side at which the refiner runs (training crops are input_size square)
    width: int = 16
    depth: int = 4
    max_instances: int = 16  # training examples per step, drawn from the batch's valid instances
    max_perturb: float = 0.015  # largest erosion/dilation of training guidance masks, as a fraction of input_size
    transition_weight: float = 4.0
    band: float = 0.02  # refined band half-width around the mask outline, fraction of the longer side
    confident_logit: float = 12.0  # logit outside the band: the mask itself (sigmoid(12) ~ 1 - 6e-6)
    batch_instances: int = 8  # instances per forward pass at inference
    snap: float = 0.02  # at inference, alphas below this become 0 and above 1 - snap become 1


def image_to_tensor(image: np.ndarray, size: int, device: torch.device | str) -> torch.Tensor:
    """uint8 HxWx3 -> normalised 1x3xhxw float tensor with longer side ``size`` (aspect kept)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    hw = (max(1, round(h * scale)), max(1, round(w * scale)))
    resized = cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x = torch.from_numpy(np.ascontiguousarray(resized)).to(device).permute(2, 0, 1)[None].float() / 255.0
    return normalise_image(x)


def normalise_image(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def _square_max(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Max over a (2r+1)^2 square, as two 1-D passes: O(r) per pixel instead of O(r^2) (full-size masks at 640 px
    and r = 13 made the 2-D pooling the refiner's largest cost)."""
    k = 2 * radius + 1
    x = F.max_pool2d(x, (1, k), stride=1, padding=(0, radius))
    return F.max_pool2d(x, (k, 1), stride=1, padding=(radius, 0))


def perturb_mask_tensor(masks: torch.Tensor, max_radius: int) -> torch.Tensor:
    """Randomly erode or dilate each mask of (M,1,S,S) {0,1} by 0..max_radius px (max-pooling), one draw per mask."""
    out = []
    for mask in masks:
        radius = int(torch.randint(0, max_radius + 1, ()).item()) if max_radius > 0 else 0
        op = int(torch.randint(0, 3, ()).item())  # 0 keep, 1 dilate, 2 erode
        if radius and op == 1:
            mask = F.max_pool2d(mask[None], 2 * radius + 1, stride=1, padding=radius)[0]
        elif radius and op == 2:
            mask = 1.0 - F.max_pool2d(1.0 - mask[None], 2 * radius + 1, stride=1, padding=radius)[0]
        out.append(mask)
    return torch.stack(out)


class MaskRefiner(nn.Module):
    """Image + one instance mask -> that instance's alpha (see module docstring)."""

    mask_guided = True  # predict_instances needs guidance masks (himbench predict asks for --masks / --guidance)

    def __init__(self, config: RefinerConfig = RefinerConfig()) -> None:
        super().__init__()
        self.config = config
        self.unet = TinyUNet(4, 1, width=config.width, depth=config.depth)
        # Zero-initialised output layer: training starts from exactly the mask and can only learn to improve on it.
        nn.init.zeros_(self.unet.head.weight)
        nn.init.zeros_(self.unet.head.bias)
        self.prior = nn.Parameter(torch.tensor(3.0))

    def uncertain_band(self, mask: torch.Tensor) -> torch.Tensor:
        """1 within ``band`` (fraction of the longer side) of the mask's outline, else 0 (Mx1xHxW)."""
        radius = max(1, round(self.config.band * max(mask.shape[-2:])))
        return _square_max(mask, radius) - (1.0 - _square_max(1.0 - mask, radius))

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``image`` Mx3xHxW normalised, ``mask`` Mx1xHxW in {0,1} -> alpha logits Mx1xHxW."""
        x, (h, w) = pad_to_multiple(torch.cat([image, mask], dim=1), self.unet.multiple)
        logits = self.unet(x)[..., :h, :w] + self.prior * (2.0 * mask - 1.0)
        # Only the band around the mask's outline is refined (MGMatting's progressive refinement keeps confident
        # regions too); far from it the mask is trusted, so a weak refiner cannot smear haze over the image.
        confident = (2.0 * mask - 1.0) * self.config.confident_logit
        return torch.where(self.uncertain_band(mask) > 0, logits, confident)

    def training_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        images, alphas, valid = batch["image"], batch["alphas"], batch["valid"]
        b_idx, k_idx = torch.nonzero(valid, as_tuple=True)
        if b_idx.numel() == 0:  # a batch of empty images: nothing to refine, but keep the graph connected
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            return {"loss": zero, "l1": zero.detach()}
        if b_idx.numel() > self.config.max_instances:
            pick = torch.randperm(b_idx.numel(), device=b_idx.device)[: self.config.max_instances]
            b_idx, k_idx = b_idx[pick], k_idx[pick]
        gt = alphas[b_idx, k_idx][:, None].float()
        size = images.shape[-1]
        with torch.no_grad():
            guide = perturb_mask_tensor((gt >= 0.5).float(), round(self.config.max_perturb * size))
        pred = torch.sigmoid(self(normalise_image(images[b_idx].float()), guide))
        error = (pred - gt).abs()
        hard = ((gt > 0.01) & (gt < 0.99)) | ((gt >= 0.5).float() != guide)
        weight = 1.0 + self.config.transition_weight * hard.float()
        loss = (error * weight).sum() / weight.sum()
        return {"loss": loss, "l1": error.mean().detach()}

    @torch.no_grad()
    def predict_instances(self, image: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if masks is None:
            raise ValueError("mask-refine is mask-guided: pass guidance masks (N,H,W)")
        h, w = image.shape[:2]
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3 or masks.shape[1:] != (h, w):
            raise ValueError(f"masks must be (N, {h}, {w}) to match the image, got {masks.shape}")
        masks = masks[masks.reshape(len(masks), -1).any(axis=1)]  # an empty mask would only be a false positive
        if len(masks) == 0:
            return np.zeros((0, h, w), dtype=np.float32), np.zeros(0, dtype=np.float32)
        device = next(self.parameters()).device
        x = image_to_tensor(image, self.config.input_size, device)
        small = x.shape[-2:]
        guide = torch.from_numpy(masks).to(device)[:, None].float()
        guide = (F.interpolate(guide, size=small, mode="bilinear", align_corners=False) >= 0.5).float()
        outputs = []
        for start in range(0, len(masks), self.config.batch_instances):
            chunk = guide[start : start + self.config.batch_instances]
            logits = self(x.expand(len(chunk), -1, -1, -1), chunk)
            outputs.append(F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).sigmoid())
        alphas = torch.cat(outputs)
        # Outside the uncertain band (measured at full resolution) keep the full-resolution mask itself: the
        # refiner works at input_size, and upsampling its output would blur every confident edge.
        full = torch.from_numpy(masks).to(device)[:, None].float()
        alphas = torch.where(self.uncertain_band(full) > 0, alphas, full)[:, 0].float().cpu().numpy()
        # A sigmoid is never exactly 0: without snapping, a faint haze covers the whole image, and instance metrics
        # (which binarise at alpha > 0) would see every matte as image-sized.
        alphas[alphas < self.config.snap] = 0.0
        alphas[alphas > 1.0 - self.config.snap] = 1.0
        return normalise_overlaps(alphas), np.ones(len(alphas), dtype=np.float32)


@register_model("mask-refine-tiny", default_weights="checkpoints/mask-refine-tiny")
def mask_refine_tiny(**overrides) -> MaskRefiner:
    """MGMatting-style mask-guided refiner, tiny U-Net (width 16, 320 px): the second stage of the baselines."""
    return MaskRefiner(apply_overrides(RefinerConfig(), overrides))


@register_model("mask-refine-base")
def mask_refine_base(**overrides) -> MaskRefiner:
    """MGMatting-style mask-guided refiner, larger U-Net (width 32, 512 px)."""
    return MaskRefiner(apply_overrides(RefinerConfig(input_size=512, width=32), overrides))
