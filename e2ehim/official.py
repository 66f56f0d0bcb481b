"""The authors' released E2E-HIM network (aipixel/E2E-HIM ``matmodel.E2EHIMST``), re-implemented for himbench.

Liu et al., *End-to-End Human Instance Matting* (IEEE TCSVT 2023, arXiv 2403.01510) publish inference code and one
checkpoint, ``swintiny.ckpt``. :class:`E2EHIMOfficial` is an independent re-implementation of that network with the
authors' parameter names and shapes, so the checkpoint loads without renaming, and the authors' evaluation script
(``eval_swintiny.py``) as its default inference path. Registered as ``e2ehim-official``.

Key mapping: identity. ``state_dict()`` holds exactly the authors' 649 keys (70,453,544 float parameters) with their
shapes; after the host unwraps ``{'state_dict': ...}`` and strips a ``module.`` prefix, the released state dict loads
as it is. Tested by tests/test_e2ehim_official.py against the authors' key manifest and against outputs of the
authors' own code (tests/data/interop/README.md).

The network, in the authors' terms (B images, T = 20 queries, strides relative to the input):

* stem ``pre_conv``/``res1``/``ds1`` (1/2, 1/4) -> Swin-T ``trans`` (1/4 .. 1/32, :mod:`e2ehim.official_swin`);
* ``toplayer`` + a 6-layer post-norm DETR decoder ``decoder1`` over the 1/32 tokens with 20 learned queries (no
  position embedding on the memory: the authors build a sine embedding but never use it) -> per-query embeddings;
  ``globalfcnum`` gives the person logits, and the embedding + person softmax (258 values) feed three MLPs that emit
  per-query dynamic 1x1 kernels (``globalfc``, ``globalfc2``, ``globalfck``);
* a 1/8-scale guidance map (``c32m``, ``c16m``, ``c8m``) is convolved with the dynamic kernels into two
  softmax-over-instances maps (with a background channel each, ``c1t1``/``c1t2``) that mix per-instance feature
  vectors (``g1``/``g2``), plus one sigmoid map per query;
* a U-shaped refiner (``c8d`` .. ``c8``, with a position-attention block ``pam`` at 1/32) -> 3 trimap logits per
  query at 1/8 (upsampled x8), and a full-resolution decoder (``c4``, ``c2``, ``c1``) -> one alpha per query,
  clamped to [0, 1].

Where this re-implementation differs from the authors' code, and why (at 640 x 640, batch 1 the math is unchanged
and the outputs agree to float32 rounding, ~2e-5 on alpha; the 8-bit mattes of the inference path then agree except
where two trimap logits of a pixel are within that rounding of each other, so the argmax can go either way in any
float32 run, the authors' included):

* Any batch size: the authors' dynamic convolutions use the kernels of the first image only and their softmax over
  instances runs over dim 0, which mixes images when B > 1; here every image uses its own kernels (a grouped
  convolution) and the instance softmax runs per image.
* Any input size: the authors repeat the per-query GroupNorm input over a hard-coded 80 x 80 map (640 px input only).
  GroupNorm of a spatially constant map equals GroupNorm of its 1 x 1 value, so it is computed at 1 x 1 and
  broadcast. Sizes that are not a multiple of 32 are padded (replicate, bottom/right) and the outputs cropped back.
* Inference helpers: ``predict_batch``/``predict_instances`` follow ``eval_swintiny.py`` step by step (see
  :meth:`E2EHIMOfficial.predict_batch`); ``resize="long_side"`` (keep the aspect ratio) and ``input_size`` other than
  640 are options of ours, not the authors'; ``amp`` runs CUDA inference under fp16 autocast (the authors use fp32).
* No training: the authors released no training code or losses; :meth:`E2EHIMOfficial.training_loss` says so.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e2ehim.inference import predict_single
from e2ehim.layers import MLP
from e2ehim.official_swin import SwinBackbone
from himbench.checkpoints import ReleasedWeights
from himbench.registry import apply_overrides, check_fields, check_model_memory, register_model

__all__ = ["E2EHIMOfficial", "E2EHIMOfficialConfig", "OfficialOutputs", "e2ehim_official"]

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_STRIDE = 32  # the coarsest feature map is 1/32 of the input
_RESIZE_MODES = ("authors", "long_side")
_PAD_MODES = ("replicate", "reflect", "constant")


@dataclass
class E2EHIMOfficialConfig:
    """Configuration of the re-implemented network and of its inference path (every field JSON-serialisable).

    ``input_size`` the side the image is resized to before the network (the authors: 640, square, any aspect);
    ``resize`` ``"authors"`` = LANCZOS4 to ``input_size`` x ``input_size`` as ``eval_swintiny.py`` does, or
    ``"long_side"`` = keep the aspect ratio, long side ``input_size`` (a deviation of ours, not the authors');
    ``num_queries`` instance queries (20 in the released checkpoint); ``min_sum`` a matte is kept when the sum of its
    8-bit values / 255 is above it, i.e. it covers more than that many full pixels (the authors' ``> 1000``);
    ``pad_mode`` how ``forward`` pads inputs that are not a multiple of 32 (cropped back after);
    ``amp`` fp16 autocast for CUDA inference (no effect on CPU).
    """

    input_size: int = 640
    num_queries: int = 20
    min_sum: float = 1000.0
    resize: str = "authors"
    pad_mode: str = "replicate"
    amp: bool = True

    def __post_init__(self) -> None:
        # A config.json may come from anyone: the widths are the authors' (fixed); the input size and the number
        # of queries scale the memory, bounded here before any tensor is allocated.
        check_fields(self, positive=("input_size", "num_queries"), non_negative=("min_sum",))
        size, queries = float(self.input_size), float(self.num_queries)
        # ~70 M parameters (Swin-T and the authors' decoders) + 256 per query; per image, the stem and Swin maps
        # (~600 values per input pixel, window attention included) and four full-size maps per query.
        check_model_memory(type(self).__name__, 7.0e7 + 256 * queries, size**2 * (600 + 4 * queries))


class OfficialOutputs(NamedTuple):
    """The authors' three outputs (``x4o, x1all, masksum16up`` in ``matmodel.py``), at the input size."""

    person_logits: Tensor  # B,T,2; index 1 = person
    alpha: Tensor  # B,T,H,W in [0, 1]
    trimap_logits: Tensor  # B,3T,H,W; channels 3t..3t+2 belong to query t (background, unknown, foreground)


# ---------------------------------------------------------------------------------------------------- building blocks
def _conv(cin: int, cout: int, kernel: int = 1, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=True)


def _act(kind: str) -> nn.Module:
    # "leaky" is LeakyReLU's default slope 0.01. The authors' final decoder writes ``nn.LeakyReLU(True)``, which sets
    # the *slope* to True == 1.0 (an identity), not ``inplace``; "identity_leaky" reproduces that exactly.
    return {
        "relu": lambda: nn.ReLU(inplace=True),
        "leaky": lambda: nn.LeakyReLU(inplace=True),
        "identity_leaky": lambda: nn.LeakyReLU(negative_slope=1.0),
    }[kind]()


def _conv_gn_act(cin: int, cout: int, kernel: int, groups: int, act: str, stride: int = 1) -> list[nn.Module]:
    """Conv -> GroupNorm -> activation: three Sequential slots, so the authors' Sequential indices line up."""
    return [_conv(cin, cout, kernel, stride), nn.GroupNorm(groups, cout), _act(act)]


class WidthGroupNorm(nn.Module):
    """GroupNorm with 32 channels per group when the width allows, else 16 (the authors' ``GNs_``; keys ``*.gn.*``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(channels // 32 if channels % 32 == 0 else channels // 16, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.gn(x)


class ResidualBottleneck(nn.Module):
    """1x1 down -> 3x3 -> 1x1 up bottleneck with GroupNorm, added to its input, then LeakyReLU (``RESBASEE``)."""

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.in_conv1 = nn.Sequential(
            _conv(channels, inner, 1),
            WidthGroupNorm(inner),
            nn.ReLU(inplace=True),
            _conv(inner, inner, 3),
            WidthGroupNorm(inner),
            nn.LeakyReLU(inplace=True),
            _conv(inner, channels, 1),
            WidthGroupNorm(channels),
        )
        self.in_prelu1 = nn.LeakyReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.in_prelu1(self.in_conv1(x) + x)


class QueryDecoderLayer(nn.Module):
    """Post-norm DETR decoder layer: self-attention, cross-attention to the image tokens, FFN (ReLU).

    The query position is added to queries and keys of both attentions (not to values); the memory has none.
    Sequence-first tensors (L, B, C), as ``nn.MultiheadAttention`` defaults to, so the attention runs the same kernel
    path as the authors' (explicit softmax, since attention weights are requested).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt: Tensor, memory: Tensor, query_pos: Tensor) -> Tensor:
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, q, value=tgt)[0]))
        attended = self.multihead_attn(query=tgt + query_pos, key=memory, value=memory)[0]
        tgt = self.norm2(tgt + self.dropout2(attended))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(ffn))


class QueryDecoder(nn.Module):
    """A stack of :class:`QueryDecoderLayer` and a final LayerNorm (wrapped in a Sequential, as the keys say)."""

    def __init__(self, layer: QueryDecoderLayer, num_layers: int, d_model: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = nn.Sequential(nn.LayerNorm(d_model))

    def forward(self, tgt: Tensor, memory: Tensor, query_pos: Tensor) -> Tensor:
        for layer in self.layers:
            tgt = layer(tgt, memory, query_pos)
        return self.norm(tgt)


class PositionAttention(nn.Module):
    """DANet's position attention (``PAM_Module``): every 1/32 location attends to all others; ``gamma`` gates it."""

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(channels, inner, kernel_size=1)
        self.key_conv = nn.Conv2d(channels, inner, kernel_size=1)
        self.value_conv = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        query = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)
        key = self.key_conv(x).view(b, -1, h * w)
        attention = torch.softmax(torch.bmm(query, key), dim=-1)
        value = self.value_conv(x).view(b, -1, h * w)
        out = torch.bmm(value, attention.permute(0, 2, 1)).view(b, c, h, w)
        return self.gamma * out + x


def _up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _up8(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=8, mode="bilinear", align_corners=False)


def _per_image_conv1x1(features: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Dynamic 1x1 convolution with each image's own kernels: features B,C,H,W, weight B,K,C, bias B,K -> B,K,H,W."""
    b, c, h, w = features.shape
    k = weight.shape[1]
    out = F.conv2d(features.reshape(1, b * c, h, w), weight.reshape(b * k, c, 1, 1), bias.reshape(b * k), groups=b)
    return out.view(b, k, h, w)


def _instance_mix(weights: Tensor, query_vectors: Tensor, background: Tensor) -> Tensor:
    """sum_t weights[:, t] * vector_t + weights[:, T] * background, summed in the authors' order (t = 0, 1, ...).

    weights B,T+1,H,W (softmax over instances + background), query_vectors B,T,C,1,1, background B,C,H,W.
    """
    num = query_vectors.shape[1]
    mixed = weights[:, 0:1] * query_vectors[:, 0]
    for t in range(1, num):
        mixed = mixed + weights[:, t : t + 1] * query_vectors[:, t]
    return mixed + weights[:, num : num + 1] * background


# -------------------------------------------------------------------------------------------------------------- model
class E2EHIMOfficial(nn.Module):
    """The authors' E2E-HIM network (``E2EHIMST``) with their parameter names; see the module docstring."""

    released_weights = ReleasedWeights(
        paper=(
            "Liu et al., End-to-End Human Instance Matting, IEEE TCSVT 2023, "
            "https://ieeexplore.ieee.org/document/10224299 (arXiv 2403.01510)"
        ),
        code="https://github.com/aipixel/E2E-HIM",
        download="https://mega.nz/file/3IJAFDYQ#FFJk7FADXqYjr-FHDmmW6MbGPf5TVvYocID3RaVaa28",
        filename="swintiny.ckpt",
        license=(
            "non-commercial only: 'The model can only be used and distributed for noncommercial purposes.' "
            "(aipixel/E2E-HIM README.md, section Models); no separate licence file for the code was found there"
        ),
        requires_weights=True,
    )

    def __init__(self, config: E2EHIMOfficialConfig | None = None) -> None:
        super().__init__()
        config = config if config is not None else E2EHIMOfficialConfig()
        if config.resize not in _RESIZE_MODES:
            raise ValueError(f"resize must be one of {_RESIZE_MODES}, got {config.resize!r}")
        if config.pad_mode not in _PAD_MODES:
            raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got {config.pad_mode!r}")
        if config.input_size < _STRIDE or config.num_queries < 1:
            raise ValueError(f"need input_size >= {_STRIDE} and num_queries >= 1, got {config}")
        self.config = config
        t = config.num_queries
        self.maxp = t
        # Modules in the authors' order, so state_dict() lists the keys as their checkpoint does.
        self.pre_conv = nn.Sequential(
            *_conv_gn_act(3, 32, 3, 16, "relu", stride=2), *_conv_gn_act(32, 32, 3, 16, "relu")
        )
        self.res1 = nn.Sequential(*_conv_gn_act(32, 64, 3, 32, "relu"))
        self.ds1 = nn.Sequential(*_conv_gn_act(64, 128, 3, 32, "relu", stride=2))
        self.trans = SwinBackbone(in_channels=128)
        self.toplayer = nn.Sequential(*_conv_gn_act(768, 256, 1, 32, "relu"))
        self.decoder1 = QueryDecoder(QueryDecoderLayer(256, 8, 2048, 0.1), 6, 256)
        self.query_embed = nn.Embedding(t, 256)
        self.globalfcnum = MLP(256, 128, 2, 2)
        self.globalfc = MLP(258, 512, (256 + 1) * 3, 3)
        self.globalfc2 = MLP(258, 512, 256 * 3 + 3 + 64 + 1, 3)
        self.globalfck = MLP(258, 512, 128 * 2, 1)
        # conv1 / conv2 are in the checkpoint but unused by the authors' forward; kept so the keys match.
        self.conv1 = _conv(256, 1)
        self.conv2 = _conv(256, 1)
        self.c32m = nn.Sequential(*_conv_gn_act(768, 512, 1, 16, "relu"))
        self.c16m = nn.Sequential(
            *_conv_gn_act(896, 512, 3, 16, "relu"), ResidualBottleneck(512, 128), ResidualBottleneck(512, 128)
        )
        self.c8m = nn.Sequential(
            *_conv_gn_act(704, 256, 3, 16, "relu"),
            ResidualBottleneck(256, 64),
            ResidualBottleneck(256, 64),
            *_conv_gn_act(256, 256, 1, 16, "relu"),
        )
        self.c8d = nn.Sequential(
            *_conv_gn_act(512 + t, 512, 1, 32, "relu"), ResidualBottleneck(512, 128), ResidualBottleneck(512, 128)
        )
        self.c8d2 = nn.Sequential(*_conv_gn_act(512, 512, 3, 32, "relu", stride=2))
        self.c8d3 = nn.Sequential(
            *_conv_gn_act(512, 512, 3, 32, "relu"), nn.Dropout(0.1), *_conv_gn_act(512, 256, 3, 32, "relu")
        )
        self.c16 = nn.Sequential(
            *_conv_gn_act(1408, 512, 1, 32, "leaky"), ResidualBottleneck(512, 128), ResidualBottleneck(512, 128)
        )
        self.c16d = nn.Sequential(*_conv_gn_act(512, 768, 3, 32, "leaky", stride=2))
        self.c32 = nn.Sequential(*_conv_gn_act(512 + 1024, 1024, 1, 32, "leaky"), ResidualBottleneck(1024, 256))
        self.c32b = nn.Sequential(
            *_conv_gn_act(1024, 1024, 1, 32, "leaky"), ResidualBottleneck(1024, 256), ResidualBottleneck(1024, 256)
        )
        self.pam = PositionAttention(1024, 256)
        self.c16u = nn.Sequential(
            *_conv_gn_act(1920, 512, 1, 32, "leaky"), ResidualBottleneck(512, 128), ResidualBottleneck(512, 128)
        )
        self.c8 = nn.Sequential(
            *_conv_gn_act(1216, 512, 1, 32, "leaky"), ResidualBottleneck(512, 128), ResidualBottleneck(512, 128)
        )
        self.c4 = nn.Sequential(
            *_conv_gn_act(736, 256, 3, 32, "leaky"),
            ResidualBottleneck(256, 64),
            ResidualBottleneck(256, 64),
            ResidualBottleneck(256, 64),
        )
        self.c2 = nn.Sequential(*_conv_gn_act(256 + 64, 128, 3, 32, "leaky"), *_conv_gn_act(128, 128, 3, 32, "leaky"))
        self.c1 = nn.Sequential(_conv(128 + 3, 96, 3), _act("identity_leaky"), _conv(96, 64, 3), _act("identity_leaky"))
        self.c1t1 = _conv(256, 1)
        self.c1t2 = _conv(256, 1)
        self.otherwright1 = nn.Sequential(_conv(256, 128))
        self.otherwright2 = nn.Sequential(_conv(256, 128))
        self.g1 = nn.GroupNorm(32, 128)
        self.g2 = nn.GroupNorm(32, 128)
        self.register_buffer("pixel_mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> OfficialOutputs:
        """x: B,3,H,W, RGB normalised with the ImageNet mean/std; any H, W (padded to a multiple of 32 inside and
        cropped back). Returns the authors' three outputs at H x W (see :class:`OfficialOutputs`)."""
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % _STRIDE, (-w) % _STRIDE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=self.config.pad_mode)
        b, t = x.shape[0], self.maxp

        # General perception: conv stem (1/2, 1/4) and Swin-T (1/4 .. 1/32).
        x2b = self.res1(self.pre_conv(x))
        x4a = self.ds1(x2b)
        x4, x8, x16, x32 = self.trans(x4a)

        # United guidance: 20 queries decoded against the 1/32 tokens; the person softmax joins each embedding.
        memory = self.toplayer(x32).flatten(2).permute(2, 0, 1)  # (h w), b, c
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, b, 1)
        embeddings = self.decoder1(torch.zeros_like(query_pos), memory, query_pos).transpose(0, 1)  # b, t, 256
        person_logits = self.globalfcnum(embeddings)
        embeddings = torch.cat([embeddings, torch.softmax(person_logits, 2)], -1)

        # Kernels from globalfc: [0:256] and [256:512] weights, [512] and [513] their biases, [514:770] + [770].
        k1 = self.globalfc(embeddings)
        guide = self.c32m(x32)
        guide = self.c16m(torch.cat([_up2(guide), x16], 1))
        guide8 = self.c8m(torch.cat([_up2(guide), x8], 1))
        logits_a = _per_image_conv1x1(guide8, k1[..., 0:256], k1[..., 512])
        logits_b = _per_image_conv1x1(guide8, k1[..., 256:512], k1[..., 513])
        seg_logits = _per_image_conv1x1(guide8, k1[..., 514:770], k1[..., 770])
        mix_a = torch.softmax(torch.cat([logits_a, self.c1t1(guide8)], 1), 1)
        mix_b = torch.softmax(torch.cat([logits_b, self.c1t2(guide8)], 1), 1)
        # Per-query feature vectors, GroupNorm-ed as the authors do on a spatially constant map (equal at 1x1).
        k2 = self.globalfck(embeddings)
        vec_a = self.g1(k2[..., :128].reshape(b * t, 128, 1, 1)).view(b, t, 128, 1, 1)
        vec_b = self.g2(k2[..., 128:].reshape(b * t, 128, 1, 1)).view(b, t, 128, 1, 1)
        guided_a = _instance_mix(mix_a, vec_a, self.g1(self.otherwright1(guide8)))
        guided_b = _instance_mix(mix_b, vec_b, self.g2(self.otherwright2(guide8)))

        # Instance matting: U-shaped refinement 1/8 -> 1/32 -> 1/8, trimap kernels at 1/8, alpha at full size.
        fused8 = self.c8d(torch.cat([guided_a, guided_b, guide8, torch.sigmoid(seg_logits)], 1))
        fused16 = self.c16(torch.cat([self.c8d2(fused8), guide, x16], 1))
        fused32 = self.c32(torch.cat([self.c16d(fused16), x32], 1))
        context32 = self.c32b(self.pam(fused32))
        fused16 = self.c16u(torch.cat([fused16, _up2(context32), x16], 1))
        fused8 = self.c8(torch.cat([_up2(fused16), x8, fused8], 1))
        k2o = self.globalfc2(embeddings)  # [0:768] 3x256 trimap weights, [768:771] biases, [771:835] + [835] alpha
        trimap_weight = k2o[..., 0:768].reshape(b, t * 3, 256)
        trimap8 = _per_image_conv1x1(self.c8d3(fused8), trimap_weight, k2o[..., 768:771].reshape(b, t * 3))
        x4m = self.c4(torch.cat([_up2(fused8), x4, x4a], 1))
        x2m = self.c2(torch.cat([_up2(x4m), x2b], 1))
        x1 = self.c1(torch.cat([_up2(x2m), x], 1))
        alpha = torch.clamp(_per_image_conv1x1(x1, k2o[..., 771:835], k2o[..., 835]), 0, 1)
        return OfficialOutputs(person_logits, alpha[:, :, :h, :w], _up8(trimap8)[:, :, :h, :w])

    # ------------------------------------------------------------------------------------------------------ training
    def training_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        raise NotImplementedError(
            "e2ehim-official re-implements the authors' released inference network only: the authors did not release "
            "training code or losses (aipixel/E2E-HIM README). Use it with their swintiny.ckpt; to train E2E-HIM in "
            "himbench, use e2ehim-tiny or e2ehim-base (himbench train --model e2ehim-tiny)."
        )

    # ----------------------------------------------------------------------------------------------------- inference
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _network_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) the image is resized to before the network."""
        size = self.config.input_size
        if self.config.resize == "authors":
            return size, size
        scale = size / max(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def _to_tensor(self, image: np.ndarray) -> Tensor:
        """RGB uint8 HxWx3 -> normalised 3,h,w at the network size, with the authors' operations: LANCZOS4 resize of
        the 8-bit image, float32 / 255, then (x - mean) / std in torch."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 HxWx3 image, got {image.dtype} {image.shape}")
        net_h, net_w = self._network_size(*image.shape[:2])
        resized = cv2.resize(image, (net_w, net_h), interpolation=cv2.INTER_LANCZOS4)
        scaled = np.ascontiguousarray(resized.astype(np.float32).transpose(2, 0, 1)) / np.float32(255.0)
        tensor = torch.from_numpy(scaled)
        return (tensor - self.pixel_mean[0].cpu()) / self.pixel_std[0].cpu()

    def _mattes(self, outputs: OfficialOutputs, index: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``eval_swintiny.py`` for one image: keep queries with logit[1] > logit[0]; trimap = argmax of the softmax
        over its 3 channels; matte = alpha * 255 where unknown, 255 where foreground, 0 elsewhere, truncated to
        uint8; LANCZOS4 back to the image size; kept when sum / 255 > ``min_sum``; query order."""
        logits = outputs.person_logits[index].float()
        scores = torch.softmax(logits, dim=-1)[:, 1].cpu().numpy()
        keep = (logits[:, 1] > logits[:, 0]).cpu().numpy()
        alphas, kept_scores = [], []
        if keep.any():
            t = logits.shape[0]
            trimap_logits = outputs.trimap_logits[index].float()
            trimap = torch.softmax(trimap_logits.view(t, 3, *trimap_logits.shape[-2:]), 1).argmax(1).cpu().numpy()
            alpha = np.clip(outputs.alpha[index].float().cpu().numpy(), 0, 1)
            for q in np.flatnonzero(keep):
                # float32 alpha * 255 where unknown (1), exactly 255 where foreground (2); the cast truncates.
                matte = alpha[q] * np.float32(255.0) * (trimap[q] == 1) + (trimap[q] == 2) * 255.0
                matte = cv2.resize(matte.astype(np.uint8), (width, height), interpolation=cv2.INTER_LANCZOS4)
                if matte.sum() / 255.0 > self.config.min_sum:
                    alphas.append(matte.astype(np.float32) / np.float32(255.0))
                    kept_scores.append(scores[q])
        if not alphas:
            return np.zeros((0, height, width), np.float32), np.zeros((0,), np.float32)
        return np.stack(alphas), np.asarray(kept_scores, np.float32)

    @torch.no_grad()
    def predict_batch(
        self, images: list[np.ndarray], masks: list[np.ndarray | None] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """RGB uint8 images of any sizes -> per image ((N,H,W) float32 alphas in [0, 1], (N,) float32 person
        probabilities); ``masks`` is ignored (end-to-end model). Call in eval mode.

        Default = the authors' ``eval_swintiny.py``: LANCZOS4 to 640 x 640, network, then :meth:`_mattes`. The alphas
        are the authors' 8-bit mattes / 255. Images that reach the same network size run as one batch.
        """
        device = self.device
        use_amp = self.config.amp and device.type == "cuda"
        tensors = [self._to_tensor(image) for image in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, tensor in enumerate(tensors):
            groups.setdefault(tuple(tensor.shape[-2:]), []).append(i)
        results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(images)
        for indices in groups.values():
            batch = torch.stack([tensors[i] for i in indices]).to(device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                outputs = self(batch)
            for j, i in enumerate(indices):
                results[i] = self._mattes(outputs, j, *images[i].shape[:2])
        return [r for r in results if r is not None]

    def predict_instances(self, image: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Protocol entry point: one RGB uint8 HxWx3 image -> ((N,H,W) float32 alphas, (N,) float32 scores)."""
        return predict_single(self, image)


@register_model("e2ehim-official")
def e2ehim_official(**overrides: Any) -> E2EHIMOfficial:
    """E2E-HIM as released by the authors (aipixel/E2E-HIM, Swin-T, 70.5 M params); needs their swintiny.ckpt."""
    return E2EHIMOfficial(apply_overrides(E2EHIMOfficialConfig(), overrides))
