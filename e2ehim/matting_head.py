"""Instance matting network (SPEC s.5): shared feature maps + per-query dynamic kernels, all instances in one pass.

* :class:`MattingNeck` builds the shared maps once per image: an FPN giving a ``d_model``-channel map at 1/8 (for
  the trimap and the guidance network's spatial attention), and a full-resolution ``alpha_channels`` map made by
  progressively upsampling it while fusing the 1/4 and 1/2 backbone features and a few convolutions on the raw image
  (the fine hair-level detail a 1/8 map cannot hold).
* :class:`DynamicKernels` turns each query's semantics embedding into (a) a 3-class trimap kernel over the 1/8 map plus
  its spatial-attention channel, and (b) a 1x1 alpha kernel (weights + bias) over the full-resolution map.

Trimap classes: 0 background, 1 unknown, 2 foreground. The final alpha is the dynamic-conv alpha inside the unknown
region and 1 in the foreground region (0 in the background), see :func:`compose_alpha`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e2ehim.config import MattingConfig
from e2ehim.layers import MLP, group_norm_groups

__all__ = ["DynamicKernels", "MattingNeck", "compose_alpha", "soft_compose_alpha"]

BACKGROUND, UNKNOWN, FOREGROUND = 0, 1, 2


def _conv_gn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
        nn.GroupNorm(group_norm_groups(cout), cout),
        nn.ReLU(inplace=True),
    )


def _up_to(x: Tensor, ref: Tensor) -> Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


class MattingNeck(nn.Module):
    def __init__(self, cfg: MattingConfig, d_model: int, channels: dict[str, int]) -> None:
        super().__init__()
        a = cfg.alpha_channels
        self.lateral16 = nn.Conv2d(channels["s16"], d_model, 1)
        self.lateral8 = nn.Conv2d(channels["s8"], d_model, 1)
        self.out16 = _conv_gn_relu(d_model, d_model)
        self.out8 = _conv_gn_relu(d_model, d_model)
        self.tower8 = nn.Sequential(*(_conv_gn_relu(d_model, d_model) for _ in range(cfg.tower_convs)))
        self.reduce8 = _conv_gn_relu(d_model, 2 * a, 1)
        self.lateral4 = nn.Conv2d(channels["s4"], 2 * a, 1)
        self.out4 = _conv_gn_relu(2 * a, 2 * a)
        self.lateral2 = nn.Conv2d(channels["s2"], a, 1)
        self.reduce4 = nn.Conv2d(2 * a, a, 1)
        self.out2 = _conv_gn_relu(a, a)
        self.image_convs = nn.Sequential(
            _conv_gn_relu(3, cfg.image_channels), _conv_gn_relu(cfg.image_channels, cfg.image_channels)
        )
        self.out1 = nn.Sequential(_conv_gn_relu(a + cfg.image_channels, a), nn.Conv2d(a, a, 3, padding=1))

    def forward(self, image: Tensor, features: dict[str, Tensor], encoded32: Tensor) -> tuple[Tensor, Tensor]:
        """-> (pixel8: B,d,H/8,W/8; alpha_features: B,A,H,W)."""
        p16 = self.lateral16(features["s16"])
        p16 = self.out16(p16 + _up_to(encoded32, p16))
        p8 = self.lateral8(features["s8"])
        pixel8 = self.tower8(self.out8(p8 + _up_to(p16, p8)))
        x4 = self.lateral4(features["s4"])
        x4 = self.out4(x4 + _up_to(self.reduce8(pixel8), x4))
        x2 = self.lateral2(features["s2"])
        x2 = self.out2(x2 + _up_to(self.reduce4(x4), x2))
        full = torch.cat([_up_to(x2, image), self.image_convs(image)], dim=1)
        return pixel8, self.out1(full)


class DynamicKernels(nn.Module):
    """Per-query kernel generators: trimap 3 x (d + 1) + 3 (the +1 reads the spatial attention), alpha A + 1."""

    def __init__(self, cfg: MattingConfig, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.alpha_channels = cfg.alpha_channels
        self.trimap_mlp = MLP(d_model, d_model, 3 * (d_model + 1) + 3, cfg.kernel_mlp_layers)
        self.alpha_mlp = MLP(d_model, d_model, cfg.alpha_channels + 1, cfg.kernel_mlp_layers)

    def trimap_logits(self, semantics: Tensor, pixel8: Tensor, spatial_logits: Tensor) -> Tensor:
        """semantics B,Q,d; pixel8 B,d,h,w; spatial B,Q,h,w -> B,Q,3,h,w."""
        b, q, d = semantics.shape
        params = self.trimap_mlp(semantics)
        weight = params[..., : 3 * d].reshape(b, q, 3, d)
        attn_weight = params[..., 3 * d : 3 * d + 3]
        bias = params[..., 3 * d + 3 :]
        logits = torch.einsum("bqkd,bdhw->bqkhw", weight, pixel8) / (d**0.5)
        logits = logits + attn_weight[..., None, None] * torch.sigmoid(spatial_logits).unsqueeze(2)
        return logits + bias[..., None, None]

    def alpha_kernels(self, semantics: Tensor) -> Tensor:
        return self.alpha_mlp(semantics)

    def alpha_logits(self, kernels: Tensor, alpha_features: Tensor) -> Tensor:
        """Dynamic 1x1 conv of one image's map. kernels N,A+1 (selected queries); alpha_features A,H,W -> N,H,W."""
        a = self.alpha_channels
        out = torch.einsum("na,ahw->nhw", kernels[:, :a], alpha_features) / (a**0.5)
        return out + kernels[:, a, None, None]


def soft_compose_alpha(trimap_logits: Tensor, alpha_logits: Tensor) -> Tensor:
    """Differentiable expected alpha: P(fg) + P(unknown) * sigmoid(alpha). trimap N,3,H,W; alpha N,H,W."""
    probs = torch.softmax(trimap_logits.float(), dim=1)
    return probs[:, FOREGROUND] + probs[:, UNKNOWN] * torch.sigmoid(alpha_logits.float())


def compose_alpha(trimap_logits: Tensor, alpha_logits: Tensor) -> Tensor:
    """Inference alpha (SPEC s.5): the predicted alpha in the unknown region, 1 in foreground, 0 in background.

    The trimap label is the argmax over the class axis (ties to the lower class), written as two comparisons: torch's
    CPU argmax over a non-last axis took 200 ms for six 640 x 640 trimaps."""
    logits = trimap_logits.float()
    background, unknown, foreground = logits[:, BACKGROUND], logits[:, UNKNOWN], logits[:, FOREGROUND]
    is_foreground = (foreground > background) & (foreground > unknown)
    is_unknown = (unknown > background) & ~is_foreground
    alpha = torch.sigmoid(alpha_logits.float())
    return torch.where(is_foreground, torch.ones_like(alpha), torch.where(is_unknown, alpha, torch.zeros_like(alpha)))
