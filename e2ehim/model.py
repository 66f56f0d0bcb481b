"""The E2E-HIM model: general perception -> united guidance -> instance matting, all instances in one pass.

``E2EHIM.forward(image)`` returns the raw per-query outputs; :meth:`E2EHIM.training_loss` and
:meth:`E2EHIM.predict_instances` implement the himbench model protocol (see :mod:`himbench.registry`).
Registered as ``e2ehim-tiny`` (CPU-sized, 384 px) and ``e2ehim-base`` (the paper's size, 640 px).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e2ehim.backbone import GeneralPerceptionNetwork
from e2ehim.config import E2EHIMConfig, base_config, tiny_config
from e2ehim.inference import filter_instances, predict_single, prepare_batch
from e2ehim.losses import gradient_loss, hungarian_match, laplacian_loss, match_costs, trimap_from_alpha
from e2ehim.matting_head import UNKNOWN, DynamicKernels, MattingNeck, compose_alpha, soft_compose_alpha
from e2ehim.united_guidance import UnitedGuidanceNetwork
from himbench.geometry import LetterboxInfo, unletterbox
from himbench.registry import apply_overrides, register_model

__all__ = ["E2EHIM", "e2ehim_base", "e2ehim_tiny"]

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_STRIDE = 32


class E2EHIM(nn.Module):
    """End-to-end human instance matting (SPEC s.5)."""

    # training_loss keeps every output in the graph (even for images without people), so DDP needs no unused-
    # parameter search.
    find_unused_parameters = False

    def __init__(self, config: E2EHIMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.guidance.d_model
        self.backbone = GeneralPerceptionNetwork(config.backbone)
        c = self.backbone.channels
        channels = {"s2": self.backbone.stem_channels, "s4": c[0], "s8": c[1], "s16": c[2], "s32": c[3]}
        self.guidance = UnitedGuidanceNetwork(config.guidance, channels["s16"], channels["s32"])
        self.neck = MattingNeck(config.matting, d, channels)
        self.kernels = DynamicKernels(config.matting, d)
        self.register_buffer("pixel_mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ forward
    def forward(self, image: Tensor) -> dict[str, Any]:
        """image B,3,H,W float in [0, 1], any H, W (padded to a multiple of 32 inside, outputs cropped back).

        Returns ``class_logits`` B,Q,2 (index 1 = person), ``trimap_logits`` B,Q,3,Hp/8,Wp/8 (padded grid),
        ``spatial_logits`` B,Q,Hp/8,Wp/8, ``alpha_kernels`` B,Q,A+1, ``alpha_features`` B,A,H,W, ``image_size``
        (H, W) and ``padded_size`` (Hp, Wp).
        """
        h, w = image.shape[-2:]
        x = (image - self.pixel_mean) / self.pixel_std
        pad_h, pad_w = (-h) % _STRIDE, (-w) % _STRIDE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        features = self.backbone(x)
        encoded32, pos32 = self.guidance.encode(features["s32"])
        pixel8, alpha_features = self.neck(x, features, encoded32)
        guide = self.guidance.decode(encoded32, pos32, features["s16"], pixel8)
        return {
            "class_logits": guide["class_logits"],
            "trimap_logits": self.kernels.trimap_logits(guide["semantics"], pixel8, guide["spatial_logits"]),
            "spatial_logits": guide["spatial_logits"],
            "alpha_kernels": self.kernels.alpha_kernels(guide["semantics"]),
            "alpha_features": alpha_features[:, :, :h, :w],
            "image_size": (h, w),
            "padded_size": (h + pad_h, w + pad_w),
        }

    def _full_trimap(self, trimap8: Tensor, out: dict[str, Any]) -> Tensor:
        h, w = out["image_size"]
        full = F.interpolate(trimap8.float(), size=out["padded_size"], mode="bilinear", align_corners=False)
        return full[:, :, :h, :w]

    def instance_logits(self, out: dict[str, Any], batch_index: int, queries: Tensor) -> tuple[Tensor, Tensor]:
        """Trimap logits (n,3,H,W) and alpha logits (n,H,W) of the given queries of one image, at the network's input
        size (uncomposed: :meth:`output_alphas` composes them at the image's size)."""
        kernels = out["alpha_kernels"][batch_index, queries]
        logits = self.kernels.alpha_logits(kernels, out["alpha_features"][batch_index])
        return self._full_trimap(out["trimap_logits"][batch_index, queries], out), logits

    def output_alphas(
        self, out: dict[str, Any], batch_index: int, queries: Tensor, info: LetterboxInfo, size: tuple[int, int]
    ) -> Tensor:
        """Inference alphas (n,H,W) of the given queries at the original image ``size``. The trimap and alpha logits
        are resized first and composed at that size: resizing alphas composed at the network's size would blur
        every hard foreground/background step into a ramp as wide as the scale factor (on 24 validation images at
        640 px, e2ehim-tiny's IMQ_mad rose from 11.6 to 12.6 with this order)."""
        trimap, logits = self.instance_logits(out, batch_index, queries)
        # One instance at a time: the resized logits are 4 maps per instance at the image's own size.
        alphas = [
            compose_alpha(
                unletterbox(one_trimap, info, size, clip=False)[None],
                unletterbox(one_logits[None], info, size, clip=False),
            )[0]
            for one_trimap, one_logits in zip(trimap, logits, strict=True)
        ]
        return torch.stack(alphas) if alphas else logits.new_zeros((0, *size))

    # ------------------------------------------------------------------ training
    def no_weight_decay(self) -> set[str]:
        """Parameters the optimizer must not decay: the attention bias tables and the level embeddings (position-like
        tables, which weight decay would pull towards "no position")."""
        return {name for name, _ in self.named_parameters() if name.endswith(("bias_table", "level_embed"))}

    def training_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        cfg = self.config.loss
        image, gt_alphas, valid = batch["image"], batch["alphas"], batch["valid"]
        out = self(image)
        h, w = out["image_size"]
        hp, wp = out["padded_size"]
        gt_padded = F.pad(gt_alphas.float(), (0, wp - w, 0, hp - h))
        gt8 = F.avg_pool2d(gt_padded, 8)  # B,K,h8,w8 area means
        class_logits = out["class_logits"].float()
        person_prob = torch.softmax(class_logits, dim=-1)[..., 1]
        trimap8 = out["trimap_logits"].float()
        tri_prob = torch.softmax(trimap8, dim=2)
        expected8 = (tri_prob[:, :, 2] + 0.5 * tri_prob[:, :, 1]).flatten(2)  # B,Q,P

        targets = torch.zeros(class_logits.shape[:2], dtype=torch.long, device=image.device)
        zero = class_logits.sum() * 0.0
        trimap_terms, alpha_terms = [], []
        for b in range(image.shape[0]):
            instances = torch.nonzero(valid[b], as_tuple=False).flatten()
            if instances.numel() == 0:
                continue
            gt8_b = gt8[b, instances].flatten(1)
            with torch.no_grad():
                cost = match_costs(person_prob[b], expected8[b], gt8_b, cfg)
            q_idx, k_idx = hungarian_match(cost)
            q = torch.as_tensor(q_idx, device=image.device)
            k = instances[torch.as_tensor(k_idx, device=image.device)]
            targets[b, q] = 1
            gt_tri8 = trimap_from_alpha(gt8[b, k], self.config.trimap_fg_threshold, self.config.trimap_bg_threshold)
            trimap_terms.append((trimap8[b, q], gt_tri8))
            logits = self.kernels.alpha_logits(out["alpha_kernels"][b, q], out["alpha_features"][b]).float()
            full_trimap = self._full_trimap(trimap8[b, q], out)
            unknown = F.interpolate(gt_tri8[:, None].float(), size=(hp, wp), mode="nearest")[:, 0, :h, :w] == UNKNOWN
            alpha_terms.append((soft_compose_alpha(full_trimap, logits), logits, gt_alphas[b, k].float(), unknown))

        cls_weight = torch.tensor([cfg.no_person_weight, 1.0], device=image.device)
        losses = {"cls": F.cross_entropy(class_logits.flatten(0, 1), targets.flatten(), weight=cls_weight)}
        if alpha_terms:
            tri_pred = torch.cat([t[0] for t in trimap_terms])
            tri_gt = torch.cat([t[1] for t in trimap_terms])
            losses["trimap"] = F.cross_entropy(tri_pred, tri_gt)
            soft = torch.cat([t[0] for t in alpha_terms])
            raw = torch.sigmoid(torch.cat([t[1] for t in alpha_terms]))
            target = torch.cat([t[2] for t in alpha_terms])
            unknown = torch.cat([t[3] for t in alpha_terms]).float()
            losses["alpha_l1"] = (soft - target).abs().mean()
            losses["alpha_unknown"] = ((raw - target).abs() * unknown).sum() / (unknown.sum() + 1.0)
            losses["gradient"] = gradient_loss(soft, target)
            losses["laplacian"] = laplacian_loss(soft, target)
        else:
            # Keep every output in the graph so DDP sees the same parameters used on every rank.
            dead = zero + out["alpha_kernels"].sum() * 0.0 + out["alpha_features"].sum() * 0.0
            for key in ("trimap", "alpha_l1", "alpha_unknown", "gradient", "laplacian"):
                losses[key] = dead + out["trimap_logits"].sum() * 0.0
        weights = {
            "cls": cfg.cls_weight,
            "trimap": cfg.trimap_weight,
            "alpha_l1": cfg.alpha_l1_weight,
            "alpha_unknown": cfg.alpha_unknown_weight,
            "gradient": cfg.gradient_weight,
            "laplacian": cfg.laplacian_weight,
        }
        losses["loss"] = sum(weights[key] * value for key, value in losses.items())
        return losses

    # ------------------------------------------------------------------ inference
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def predict_batch(
        self, images: list[np.ndarray], masks: list[np.ndarray | None] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Predict instance mattes for several RGB uint8 images of any sizes (``masks`` is ignored); call in eval
        mode. Post-processing as in :mod:`e2ehim.inference`."""
        batch, infos = prepare_batch(images, self.config.input_size, self.device)
        out = self(batch)
        person = torch.softmax(out["class_logits"].float(), dim=-1)[..., 1]
        results = []
        for b, image in enumerate(images):
            height, width = image.shape[:2]
            keep = torch.nonzero(person[b] > self.config.score_threshold, as_tuple=False).flatten()
            if keep.numel() == 0:
                results.append((np.zeros((0, height, width), np.float32), np.zeros((0,), np.float32)))
                continue
            alphas = self.output_alphas(out, b, keep, infos[b], (height, width))
            results.append(filter_instances(alphas, person[b, keep], self.config.min_area_fraction))
        return results

    def predict_instances(self, image: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Protocol entry point: one RGB uint8 HxWx3 image -> ((N,H,W) float32 alphas, (N,) float32 scores)."""
        return predict_single(self, image)


def _build(default: E2EHIMConfig, overrides: dict[str, Any]) -> E2EHIM:
    return E2EHIM(apply_overrides(default, overrides))


@register_model("e2ehim-tiny", default_weights="checkpoints/e2ehim-tiny")
def e2ehim_tiny(**overrides: Any) -> E2EHIM:
    """E2E-HIM, CPU-sized (384 px, ~3.9 M params): the shipped laptop model, the tests and the embedded demo."""
    return _build(tiny_config(), overrides)


@register_model("e2ehim-base")
def e2ehim_base(**overrides: Any) -> E2EHIM:
    """himbench's trainable E2E-HIM at the paper's size (640 px, ~70 M); for the authors' weights: e2ehim-official."""
    return _build(base_config(), overrides)
