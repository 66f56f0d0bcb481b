"""Models ``mask-refine-tiny`` and ``mask-refine-base`` (method ``mask-refine``): an MGMatting-style mask-guided matting
refiner, the second stage of a two-stage system.

Input: the image and ONE instance's binary mask (4 channels); output: that instance's alpha matte. It runs once per
instance, so its cost grows linearly with the number of people. The network predicts a correction to the mask: its
output logit is ``unet(image, mask) + prior * (2 * mask - 1)`` with a learned ``prior`` and a zero-initialised last
layer, so an untrained refiner returns the mask and training only has to learn the soft boundary. Only a band of
``band`` (fraction of the working image's longer side) around the mask's outline is refined; elsewhere the output is
the mask itself (MGMatting also keeps confident regions).

**Resolution.** Matting is decided in a band a few pixels wide, so the refiner works at the image's own scale: the
image is brought to longer side ``input_size`` (640, the leaderboard's resolution, so 640 px images are not resized
at all) and each instance is refined in a crop around its band, never on a downscaled whole image. Training does the
same at the same scale: ``patches_per_instance`` square patches of ``patch_size`` centred near random points of each
instance's outline, as matting networks are trained on native-resolution crops. (An earlier refiner ran on the
whole image at 192 px; upsampling its output blurred both sides of every edge, and at ground-truth masks it scored
far below the masks themselves.)

Training (``himbench train --model mask-refine-tiny``) follows the protocol of :mod:`himbench.registry`: every
valid ground-truth instance of the batch becomes one training example (capped at ``max_instances`` per step); its
guidance mask is the matte binarised at 0.5 and then randomly eroded or dilated by up to ``max_perturb`` of the input
size, so the refiner learns to repair segmenter-quality masks. Loss: L1 over the band (the only pixels the network
decides), weighted up by ``transition_weight`` where the ground truth is fractional or the guidance mask is wrong.

Measured with the shipped checkpoint (``baselines/checkpoints/README.md``: 1900 CPU steps) on the leaderboard's 24
synthetic 640 px images, IMQ_mad@0.5: 64.2 from ground-truth masks (the masks alone: 50.4; closed-form matting:
71.5) and 41.4 from ground-truth masks eroded by 4 px (the masks alone: 0.1; closed-form: 7.7).
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
from himbench.geometry import tight_box
from himbench.registry import apply_overrides, check_fields, check_model_memory, register_model

__all__ = ["MaskRefiner", "RefinerConfig", "outline_band", "outline_patches", "image_to_tensor", "perturb_mask_tensor"]

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class RefinerConfig:
    input_size: int = 640  # longer side of the working image (the data loader letterboxes training images to it)
    patch_size: int = 64  # side of the square training patches, in working pixels
    patches_per_instance: int = 4  # training patches per instance and step, each centred on a random band point
    context: int = 32  # working pixels of image around an instance's band in the inference crop
    width: int = 16
    depth: int = 4
    max_instances: int = 16  # training examples per step, drawn from the batch's valid instances
    max_perturb: float = 0.0075  # largest erosion/dilation of training guidance masks, fraction of input_size (5 px)
    transition_weight: float = 4.0
    band: float = 0.0125  # refined band half-width around the mask outline, fraction of input_size (8 px)
    confident_logit: float = 12.0  # logit outside the band: the mask itself (sigmoid(12) ~ 1 - 6e-6)
    snap: float = 0.02  # at inference, alphas below this become 0 and above 1 - snap become 1

    def __post_init__(self) -> None:
        # A config.json may come from anyone: refuse what would crash, or allocate terabytes, before any tensor.
        check_fields(self, positive=("input_size", "patch_size", "patches_per_instance", "width", "depth",
                                     "max_instances", "confident_logit"),
                     non_negative=("context", "transition_weight"), unit_interval=("max_perturb", "band", "snap"))
        check_unet_depth(type(self).__name__, self.depth)
        crop = self.input_size + 2 * self.context  # an instance crop: up to the whole image plus its context
        params, image_acts = unet_memory(4, self.width, self.depth, crop)
        _, patch_acts = unet_memory(4, self.width, self.depth, self.patch_size)
        check_model_memory(type(self).__name__, params,
                           image_acts + self.max_instances * self.patches_per_instance * patch_acts)

    @property
    def band_px(self) -> int:
        """The band's half-width in working pixels."""
        return max(1, round(self.band * self.input_size))


_MAX_UNET_DEPTH = 12  # poolings: 2**12 = 4096 px is past any input this project runs


def check_unet_depth(owner: str, depth: int) -> None:
    """Refuse a :class:`~baselines.unet.TinyUNet` depth past :data:`_MAX_UNET_DEPTH` (its width doubles per level:
    the size estimate itself would overflow)."""
    if depth > _MAX_UNET_DEPTH:
        raise ValueError(f"{owner}.depth: at most {_MAX_UNET_DEPTH} levels (got {depth!r})")


def unet_memory(in_channels: int, width: int, depth: int, size: int) -> tuple[float, float]:
    """``(parameters, activation values)`` of a :class:`~baselines.unet.TinyUNet` on one ``size`` x ``size`` input:
    two 3x3 convs per level going down and up (widths doubling), the maps each level keeps for its skip."""
    widths = [float(width) * 2**i for i in range(depth + 1)]
    params = 9 * (in_channels * widths[0] + sum(w * w for w in widths))  # downs' first and second convs (roughly)
    params += 9 * sum(2 * a * b for a, b in zip(widths[:-1], widths[1:], strict=True))  # down widening, ups
    acts = sum(6 * (float(size) / 2**i) ** 2 * w for i, w in enumerate(widths))  # conv, norm, relu x2 (+ ups)
    return params, acts


def image_to_tensor(image: np.ndarray, size: int, device: torch.device | str) -> torch.Tensor:
    """uint8 HxWx3 -> normalised 1x3xhxw float tensor with longer side ``size`` (aspect kept)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    hw = (max(1, round(h * scale)), max(1, round(w * scale)))
    if hw != (h, w):
        image = cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float() / 255.0
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


def outline_band(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """1 within ``radius`` px of the outline of {0,1} masks Mx1xHxW (dilation minus erosion), else 0."""
    return _square_max(mask, radius) - (1.0 - _square_max(1.0 - mask, radius))


def perturb_mask_tensor(masks: torch.Tensor, max_radius: int) -> torch.Tensor:
    """Randomly erode or dilate each mask of (M,1,S,S) {0,1} by 0..max_radius px (max-pooling), one draw per mask."""
    out = []
    for mask in masks:
        radius = int(torch.randint(0, max_radius + 1, ()).item()) if max_radius > 0 else 0
        op = int(torch.randint(0, 3, ()).item())  # 0 keep, 1 dilate, 2 erode
        if radius and op == 1:
            mask = _square_max(mask[None], radius)[0]
        elif radius and op == 2:
            mask = 1.0 - _square_max(1.0 - mask[None], radius)[0]
        out.append(mask)
    return torch.stack(out)


def outline_patches(masks: torch.Tensor, size: int, jitter: int, count: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of ``count`` ``size`` square patches per mask of ``masks`` (MxHxW bool), returned
    mask by mask: each centred on a random outline pixel of its mask moved by up to ``jitter`` px on each axis (the
    image centre for a mask without an outline), and moved inside the image."""
    _, h, w = masks.shape
    outline = torch.zeros_like(masks)
    outline[:, 1:] |= masks[:, 1:] ^ masks[:, :-1]
    outline[:, :, 1:] |= masks[:, :, 1:] ^ masks[:, :, :-1]
    corners = []
    for one in outline:
        points = torch.nonzero(one)
        for _ in range(count):
            if len(points):
                cy, cx = (int(v) for v in points[int(torch.randint(0, len(points), ()).item())])
                cy += int(torch.randint(-jitter, jitter + 1, ()).item())
                cx += int(torch.randint(-jitter, jitter + 1, ()).item())
            else:
                cy, cx = h // 2, w // 2
            y, x = min(max(cy - size // 2, 0), max(h - size, 0)), min(max(cx - size // 2, 0), max(w - size, 0))
            corners.append((y, x))
    return corners


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

    def forward(self, image: torch.Tensor, mask: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
        """``image`` Mx3xHxW normalised, ``mask`` Mx1xHxW in {0,1}, ``band`` Mx1xHxW in {0,1} (where the network
        decides; see :func:`outline_band`) -> alpha logits Mx1xHxW."""
        x, (h, w) = pad_to_multiple(torch.cat([image, mask], dim=1), self.unet.multiple)
        logits = self.unet(x)[..., :h, :w] + self.prior * (2.0 * mask - 1.0)
        # Far from the outline the mask is trusted (MGMatting's progressive refinement keeps confident regions
        # too), so a weak refiner cannot smear haze over the image.
        confident = (2.0 * mask - 1.0) * self.config.confident_logit
        return torch.where(band > 0, logits, confident)

    def training_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        images, alphas, valid = batch["image"], batch["alphas"], batch["valid"]
        b_idx, k_idx = torch.nonzero(valid, as_tuple=True)
        if b_idx.numel() == 0:  # a batch of empty images: nothing to refine, but keep the graph connected
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            return {"loss": zero, "l1": zero.detach()}
        if b_idx.numel() > self.config.max_instances:
            pick = torch.randperm(b_idx.numel(), device=b_idx.device)[: self.config.max_instances]
            b_idx, k_idx = b_idx[pick], k_idx[pick]
        gt = alphas[b_idx, k_idx].float()
        size = images.shape[-1]
        p = min(self.config.patch_size, images.shape[-2], size)
        radius = round(self.config.max_perturb * size)
        margin = radius + self.config.band_px
        # Patches centred near each instance's outline, at the working scale (no resizing): the loss only counts
        # band pixels, so small patches on the band spend the compute where the network decides something. The
        # guidance is perturbed and its band found in a window ``margin`` px larger than the patch, which gives the
        # same pixels as doing it on the whole image at a fraction of the cost. Replicate padding: the image's edge
        # is no outline (as at inference).
        count = self.config.patches_per_instance
        corners = outline_patches(gt >= 0.5, p, self.config.band_px, count)
        padded = F.pad(gt[:, None], (margin,) * 4, mode="replicate")[:, 0]
        windows = torch.stack(
            [padded[i // count, y : y + p + 2 * margin, x : x + p + 2 * margin] for i, (y, x) in enumerate(corners)]
        )[:, None]
        with torch.no_grad():
            guide = perturb_mask_tensor((windows >= 0.5).float(), radius)
            band = outline_band(guide, self.config.band_px)
        inner = (..., slice(margin, margin + p), slice(margin, margin + p))
        gt, guide, band = windows[inner], guide[inner], band[inner]
        patches = [images[b_idx[i // count], :, y : y + p, x : x + p] for i, (y, x) in enumerate(corners)]
        image = normalise_image(torch.stack(patches).float())
        pred = torch.sigmoid(self(image, guide, band))
        error = (pred - gt).abs()
        hard = ((gt > 0.01) & (gt < 0.99)) | ((gt >= 0.5).float() != guide)
        weight = (1.0 + self.config.transition_weight * hard.float()) * band
        loss = (error * weight).sum() / weight.sum().clamp_min(1.0)
        return {"loss": loss, "l1": ((error * band).sum() / band.sum().clamp_min(1.0)).detach()}

    @torch.no_grad()
    def refine_one(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Alpha (HxW) of one instance: ``image`` 1x3xHxW normalised and ``mask`` HxW {0,1} at the working scale.
        The network runs on a crop around the mask's band only; outside it the alpha is the mask."""
        radius = self.config.band_px
        band = outline_band(mask[None, None], radius)[0, 0]
        alpha = mask.clone()
        box = tight_box(band.cpu().numpy() > 0)
        if box is None:
            return alpha
        box = box.pad(self.config.context).clip(tuple(mask.shape))
        rows, cols = box.slices
        crop_band = band[rows, cols]
        crop_logits = self(image[..., rows, cols], mask[None, None, rows, cols], crop_band[None, None])
        alpha[rows, cols] = torch.where(crop_band > 0, crop_logits[0, 0].sigmoid(), mask[rows, cols])
        return alpha

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
        work = tuple(x.shape[-2:])
        full = torch.from_numpy(masks).to(device)[:, None].float()
        guide = full if work == (h, w) else (F.interpolate(full, size=work, mode="bilinear") >= 0.5).float()
        alphas = torch.stack([self.refine_one(x, one[0]) for one in guide])[:, None]
        if work != (h, w):
            # Outside the band (measured at full resolution) keep the full-resolution mask itself: upsampling the
            # working-scale output would blur every confident edge.
            alphas = F.interpolate(alphas, size=(h, w), mode="bilinear", align_corners=False)
            scale = max(h, w) / self.config.input_size
            alphas = torch.where(outline_band(full, max(1, round(self.config.band_px * scale))) > 0, alphas, full)
        alphas = alphas[:, 0].float().cpu().numpy()
        # A sigmoid is never exactly 0: without snapping, a faint haze covers the band, and instance metrics
        # (which binarise at alpha > 0) would see every matte as larger than it is.
        alphas[alphas < self.config.snap] = 0.0
        alphas[alphas > 1.0 - self.config.snap] = 1.0
        return normalise_overlaps(alphas), np.ones(len(alphas), dtype=np.float32)


@register_model("mask-refine-tiny", default_weights="checkpoints/mask-refine-tiny")
def mask_refine_tiny(**overrides) -> MaskRefiner:
    """MGMatting-style mask-guided refiner, tiny U-Net (width 16), refining at 640 px working scale."""
    return MaskRefiner(apply_overrides(RefinerConfig(), overrides))


@register_model("mask-refine-base")
def mask_refine_base(**overrides) -> MaskRefiner:
    """MGMatting-style mask-guided refiner, larger U-Net (width 32), refining at 1024 px working scale."""
    return MaskRefiner(apply_overrides(RefinerConfig(input_size=1024, patch_size=256, width=32), overrides))
