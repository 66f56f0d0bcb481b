"""``mgm``: a faithful re-implementation of the released MGMatting generator, so the authors' checkpoints run here.

Paper: Yu, Zhang, Zhang, Wang, Lin, Xu, Bai, Yuille, *Mask Guided Matting via Progressive Refinement Network*, CVPR
2021 (arXiv 2012.06722). Code: github.com/yucornetto/MGMatting, ``code-base/`` (read at commit 2bac93f0). This module
re-expresses the generator the released models use (``config/MGMatting-*-100k.toml``: encoder
``res_shortcut_encoder_29``, decoder ``res_shortcut_decoder_22``, ``mask_channel = 1``, i.e. 4 input channels: RGB
image + one guidance mask) with the authors' parameter names, so:

* ``MGMatting().state_dict()`` has exactly the authors' 596 keys, in their order and with their shapes (custom
  spectral norm ``<conv>.module.weight_u/weight_v/weight_bar``, plain BatchNorm statistics; the authors trained with
  SyncBatchNorm, whose keys and eval-mode arithmetic are the same). An authors' checkpoint maps by the identity:
  ``torch.load`` it on a trusted machine, take ``ckpt["state_dict"]``, strip the ``module.`` prefix of
  DataParallel/DDP (what their ``utils.remove_prefix_state_dict`` does), convert to safetensors, load strictly.
* ``forward(image, guidance)`` returns ``alpha_os1`` / ``alpha_os4`` / ``alpha_os8`` (Bx1xHxW in [0, 1]) as their
  ``Generator.forward``; :func:`progressive_refinement` is their inference-time Progressive Refinement Module (PRM);
  :meth:`MGMatting.predict_instances` is their ``infer.py`` path (reflect padding, PRM, crop back) per instance.

Architecture (all convolutions bias-free and spectrally normalised unless said otherwise, see
:mod:`baselines.spectral_norm`): a ResNet-D-style encoder (stem 3x3 convs 4->32 /2, 32->32, 32->64 /2; basic-block
stages of 3, 4, 4, 2 blocks at 64, 128, 256, 512 channels, strides 1, 2, 2, 2, avg-pool shortcuts) with five
"shortcut" branches (two SN 3x3 convs each, ReLU before BatchNorm as the authors order it) taken from the input, the
stem and the first three stages; an ASPP (plain convs, dilations 1, 2, 4, 8 + global pooling) on the /32 bottleneck;
a mirrored decoder (2, 3, 3, 2 blocks, each stage opened by a stride-2 transposed conv, LeakyReLU 0.2) that adds the
shortcuts back at /16, /8, /4, /2 and /1, with side heads (plain 3x3 conv, BN, LeakyReLU, 3x3 conv with bias) at /8,
/4 and /1; /8 and /4 logits are bilinearly upsampled (align_corners False) and every output is ``(tanh + 1) / 2``.

What himbench adds, beyond the authors' code (none of it changes the released model's outputs):

* ``predict_instances`` runs one pass per instance mask (batched ``batch_instances`` at a time, the image shared),
  drops empty masks (they could only be false positives, as :mod:`baselines.refiner`), returns float alphas (the
  authors write ``uint8(255 * alpha)``, truncating: at most one 8-bit level lower) and scores of 1. Overlapping
  instances are *not* renormalised: MGMatting mattes each instance independently, and so does this.
* ``max_size`` (off by default, as the authors run at full resolution) caps the longer side at inference.
* ``training_loss`` is a simple fine-tuning recipe, not the authors' (theirs adds a Laplacian loss, random PRM widths
  during training, composition-based augmentation and ImageNet-pretrained encoders): guidance = the ground-truth
  matte binarised at 0.5 and randomly eroded/dilated, L1 on the three outputs weighted 2 : 1 : 1 and divided by 5 as
  the authors weight their reconstruction loss.
* mixed precision on CUDA (the spectral norm's ``sigma`` stays float32).

Licence of the released weights and code: CC BY-NC 2.0, research / non-commercial only (see ``released_weights``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.refiner import normalise_image, perturb_mask_tensor
from baselines.spectral_norm import SpectralNorm
from himbench.checkpoints import ReleasedWeights
from himbench.registry import apply_overrides, check_fields, check_model_memory, register_model

__all__ = [
    "ASPP",
    "MGMConfig",
    "MGMatting",
    "ResShortcutDecoder",
    "ResShortcutEncoder",
    "ellipse_kernel",
    "progressive_refinement",
    "reflect_pad_amounts",
    "unknown_region",
]

OUTPUT_KEYS = ("alpha_os1", "alpha_os4", "alpha_os8")
_STRIDE = 32  # total downsampling of the encoder: inputs must be a multiple of it
_LOW, _HIGH = 1.0 / 255.0, 1.0 - 1.0 / 255.0  # PRM: alpha within [1/255, 1 - 1/255] is "not yet decided"


_PARAMETERS = 3.0e7  # the authors' ResNet-34-UNet with spectral norm: ~30 M learned values whatever the config


@dataclass(frozen=True)
class MGMConfig:
    input_size: int = 512  # training crop size (the authors' crop_size); inference runs at any size
    pad_border: int = 32  # infer.py: reflect-pad 32 px on every side ...
    pad_multiple: int = 32  # ... plus bottom/right up to a multiple of 32, then crop back
    # PRM dilation kernels (ellipses). The authors' config says self_refine_width1 = 30, self_refine_width2 = 15 and
    # their inference uses width // 2 as the kernel size: 15 then 7.
    refine_kernel_sizes: tuple[int, int] = (15, 7)
    max_size: int | None = None  # himbench addition: cap the longer side at inference (None = authors' full size)
    batch_instances: int = 4  # instance masks per forward pass at inference
    max_instances: int = 8  # training examples per step, drawn from the batch's valid instances
    max_perturb: float = 0.015  # largest erosion/dilation of training guidance, as a fraction of the crop size
    loss_weights: tuple[float, float, float] = (0.4, 0.2, 0.2)  # os1, os4, os8 (authors: (2, 1, 1) / 5)

    def __post_init__(self) -> None:
        # A config.json may come from anyone: refuse what would crash, or allocate terabytes, before any tensor.
        # The network's widths are fixed (the authors'); the sizes, paddings and kernels scale the memory.
        check_fields(self, positive=("input_size", "pad_multiple", "refine_kernel_sizes", "max_size",
                                     "batch_instances", "max_instances"),
                     non_negative=("pad_border", "loss_weights"), unit_interval=("max_perturb",))
        if len(self.refine_kernel_sizes) != 2 or len(self.loss_weights) != 3:
            raise ValueError(f"MGMConfig: refine_kernel_sizes needs 2 entries and loss_weights 3 "
                             f"(got {self.refine_kernel_sizes!r} and {self.loss_weights!r})")
        side = float(self.max_size or self.input_size) + 2 * self.pad_border + self.pad_multiple
        batch = max(self.batch_instances, self.max_instances)
        # ~300 float maps per pixel across the encoder/decoder levels, per instance in a batch; the PRM's ellipse
        # kernels are dense arrays of side k.
        acts = batch * side**2 * 300 + sum(float(k) ** 2 for k in self.refine_kernel_sizes)
        check_model_memory(type(self).__name__, _PARAMETERS, acts)


# ------------------------------------------------------------------------------------------------- building blocks
def _sn_conv(cin: int, cout: int, kernel: int, stride: int = 1) -> SpectralNorm:
    return SpectralNorm(nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False))


def _sn_up(channels: int) -> SpectralNorm:
    """Stride-2 transposed 4x4 conv: exactly doubles H and W."""
    return SpectralNorm(nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False))


class _EncoderBlock(nn.Module):
    """Basic residual block (ReLU); the first conv carries the stride, the shortcut is ``downsample``."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _sn_conv(inplanes, planes, 3, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.activation = nn.ReLU(inplace=True)
        self.conv2 = _sn_conv(planes, planes, 3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.activation(out + identity)


class _DecoderBlock(nn.Module):
    """Basic residual block (LeakyReLU 0.2); with ``stride`` 2 the first conv is a transposed conv that upsamples."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, upsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _sn_up(inplanes) if stride > 1 else _sn_conv(inplanes, inplanes, 3)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.activation = nn.LeakyReLU(0.2, inplace=True)
        self.conv2 = _sn_conv(inplanes, planes, 3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.upsample = upsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.upsample is None else self.upsample(x)
        return self.activation(out + identity)


def _encoder_stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    downsample: nn.Module | None = None
    if stride != 1:  # ResNet-D: average-pool, then a 1x1 conv (no strided 1x1 that would skip 3 of 4 pixels)
        downsample = nn.Sequential(nn.AvgPool2d(2, stride), _sn_conv(inplanes, planes, 1), nn.BatchNorm2d(planes))
    elif inplanes != planes:
        downsample = nn.Sequential(_sn_conv(inplanes, planes, 1), nn.BatchNorm2d(planes))
    layers = [_EncoderBlock(inplanes, planes, stride, downsample)]
    layers += [_EncoderBlock(planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _decoder_stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    upsample: nn.Module | None = None
    if stride != 1:
        upsample = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), _sn_conv(inplanes, planes, 1), nn.BatchNorm2d(planes)
        )
    elif inplanes != planes:
        upsample = nn.Sequential(_sn_conv(inplanes, planes, 1), nn.BatchNorm2d(planes))
    layers = [_DecoderBlock(inplanes, planes, stride, upsample)]
    layers += [_DecoderBlock(planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _shortcut(cin: int, cout: int) -> nn.Sequential:
    # The authors put ReLU *before* BatchNorm here (indices 0..5 are part of the checkpoint's key names).
    return nn.Sequential(
        _sn_conv(cin, cout, 3), nn.ReLU(inplace=True), nn.BatchNorm2d(cout),
        _sn_conv(cout, cout, 3), nn.ReLU(inplace=True), nn.BatchNorm2d(cout),
    )  # fmt: skip


def _side_head(cin: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(32, 1, 3, padding=1),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------- the generator
class ResShortcutEncoder(nn.Module):
    """``res_shortcut_encoder_29``: returns the /32 bottleneck and the five shortcut features (/1 ... /16)."""

    def __init__(self, in_channels: int = 4, blocks: Sequence[int] = (3, 4, 4, 2)) -> None:
        super().__init__()
        self.conv1 = _sn_conv(in_channels, 32, 3, stride=2)
        self.conv2 = _sn_conv(32, 32, 3)
        self.conv3 = _sn_conv(32, 64, 3, stride=2)
        self.bn1 = nn.BatchNorm2d(32)
        self.bn2 = nn.BatchNorm2d(32)
        self.bn3 = nn.BatchNorm2d(64)
        self.activation = nn.ReLU(inplace=True)
        self.layer1 = _encoder_stage(64, 64, blocks[0], 1)
        self.layer2 = _encoder_stage(64, 128, blocks[1], 2)
        self.layer3 = _encoder_stage(128, 256, blocks[2], 2)
        self.layer_bottleneck = _encoder_stage(256, 512, blocks[3], 2)
        self._authors_init()
        # Built after the init on purpose: the authors' shortcut convs keep PyTorch's default initialisation.
        widths = zip((in_channels, 32, 64, 128, 256), (32, 32, 64, 128, 256), strict=True)
        self.shortcut = nn.ModuleList(_shortcut(cin, cout) for cin, cout in widths)

    def _authors_init(self) -> None:
        """Training from scratch starts where the authors' does (irrelevant once a checkpoint is loaded): Xavier
        convs, unit BatchNorm, zeroed last BN of each residual branch, and the guidance channel of the first conv
        zeroed (their ImageNet initialisation has only RGB filters; the mask's filters start from nothing)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight_bar)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, _EncoderBlock):
                nn.init.zeros_(m.bn2.weight)
        with torch.no_grad():
            self.conv1.module.weight_bar[:, 3:] = 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        out = self.activation(self.bn1(self.conv1(x)))
        x1 = self.activation(self.bn2(self.conv2(out)))  # /2, 32
        out = self.activation(self.bn3(self.conv3(x1)))  # /4, 64
        x2 = self.layer1(out)  # /4, 64
        x3 = self.layer2(x2)  # /8, 128
        x4 = self.layer3(x3)  # /16, 256
        bottleneck = self.layer_bottleneck(x4)  # /32, 512
        shortcuts = tuple(branch(f) for branch, f in zip(self.shortcut, (x, x1, x2, x3, x4), strict=True))
        return bottleneck, shortcuts


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling on the bottleneck (plain convolutions, no spectral norm, as the authors)."""

    def __init__(
        self, in_channels: int = 512, out_channels: int = 512, mid: int = 256, dilations: Sequence[int] = (1, 2, 4, 8)
    ) -> None:
        super().__init__()
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.relu = nn.ReLU(inplace=True)
        # Registered as aspp1..aspp5 then aspp1_bn..aspp5_bn: the checkpoint's names and order.
        self.aspp1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.aspp2 = nn.Conv2d(in_channels, mid, 3, padding=dilations[1], dilation=dilations[1], bias=False)
        self.aspp3 = nn.Conv2d(in_channels, mid, 3, padding=dilations[2], dilation=dilations[2], bias=False)
        self.aspp4 = nn.Conv2d(in_channels, mid, 3, padding=dilations[3], dilation=dilations[3], bias=False)
        self.aspp5 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.aspp1_bn = nn.BatchNorm2d(mid)
        self.aspp2_bn = nn.BatchNorm2d(mid)
        self.aspp3_bn = nn.BatchNorm2d(mid)
        self.aspp4_bn = nn.BatchNorm2d(mid)
        self.aspp5_bn = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid * 5, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [
            self.relu(bn(conv(x)))
            for conv, bn in (
                (self.aspp1, self.aspp1_bn),
                (self.aspp2, self.aspp2_bn),
                (self.aspp3, self.aspp3_bn),
                (self.aspp4, self.aspp4_bn),
            )
        ]
        pooled = self.relu(self.aspp5_bn(self.aspp5(self.global_pooling(x))))
        branches.append(pooled.expand(-1, -1, *x.shape[-2:]))  # nearest upsampling of a 1x1 map: a broadcast
        return self.relu(self.bn2(self.conv2(torch.cat(branches, dim=1))))


class ResShortcutDecoder(nn.Module):
    """``res_shortcut_decoder_22``: bottleneck + shortcuts -> ``alpha_os1/os4/os8`` at the input resolution."""

    def __init__(self, blocks: Sequence[int] = (2, 3, 3, 2)) -> None:
        super().__init__()
        self.conv1 = _sn_up(32)
        self.bn1 = nn.BatchNorm2d(32)
        self.leaky_relu = nn.LeakyReLU(0.2, inplace=True)
        self.layer1 = _decoder_stage(512, 256, blocks[0], 2)
        self.layer2 = _decoder_stage(256, 128, blocks[1], 2)
        self.layer3 = _decoder_stage(128, 64, blocks[2], 2)
        self.layer4 = _decoder_stage(64, 32, blocks[3], 2)
        self.refine_OS1 = _side_head(32)
        self.refine_OS4 = _side_head(64)
        self.refine_OS8 = _side_head(128)
        self._authors_init()

    def _authors_init(self) -> None:
        # Xavier on every nn.Conv2d (spectral-normed or not); the transposed convs are not nn.Conv2d and keep
        # PyTorch's default, exactly as in the authors' loop.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight_bar if hasattr(m, "weight_bar") else m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, _DecoderBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor, shortcuts: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        fea1, fea2, fea3, fea4, fea5 = shortcuts
        x = self.layer1(x) + fea5  # /16
        x = self.layer2(x) + fea4  # /8
        os8 = self.refine_OS8(x)
        x = self.layer3(x) + fea3  # /4
        os4 = self.refine_OS4(x)
        x = self.layer4(x) + fea2  # /2
        x = self.leaky_relu(self.bn1(self.conv1(x))) + fea1  # /1
        os1 = self.refine_OS1(x)
        os4 = F.interpolate(os4, scale_factor=4.0, mode="bilinear", align_corners=False)
        os8 = F.interpolate(os8, scale_factor=8.0, mode="bilinear", align_corners=False)
        return {key: (torch.tanh(t) + 1.0) / 2.0 for key, t in zip(OUTPUT_KEYS, (os1, os4, os8), strict=True)}


# ------------------------------------------------------------------------------------------------- PRM and padding
def ellipse_kernel(size: int) -> np.ndarray:
    """The authors' structuring element: ``cv2.getStructuringElement(MORPH_ELLIPSE, (size, size))`` (uint8 0/1)."""
    if size < 1:
        raise ValueError(f"PRM kernel size must be >= 1, got {size}")
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def unknown_region(alpha: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Bool Bx1xHxW: pixels within the ellipse of ``kernel_size`` of an undecided alpha (1/255 <= alpha <= 1-1/255).

    The authors compute this with ``cv2.dilate`` on the CPU (``utils.get_unknown_tensor_from_pred``, eval mode);
    here the binary dilation is a convolution with the same ellipse, anchored at ``size // 2`` like OpenCV, with
    pixels outside the image ignored (OpenCV's default border for dilation), so it runs on the model's device.
    """
    a = alpha.detach().float()
    # "not below and not above" rather than "between": identical for numbers, and a NaN counts as undecided, as
    # the authors' mask (ones, then zeroed where < low or > high) does.
    undecided = ~((a < _LOW) | (a > _HIGH))
    kernel = torch.from_numpy(ellipse_kernel(kernel_size)).to(a.device, torch.float32)[None, None]
    k = kernel_size
    with torch.autocast(a.device.type, enabled=False):
        padded = F.pad(undecided.float(), (k // 2, k - 1 - k // 2, k // 2, k - 1 - k // 2))
        hits = F.conv2d(padded, kernel)
    return hits > 0.5  # sums of 0/1 products: any algorithm's rounding stays far from 0.5


def progressive_refinement(outputs: dict[str, torch.Tensor], kernel_sizes: Sequence[int] = (15, 7)) -> torch.Tensor:
    """The Progressive Refinement Module at inference: start from ``alpha_os8``; where it is undecided (dilated by
    ``kernel_sizes[0]``) take ``alpha_os4``; where the result is undecided (dilated by ``kernel_sizes[1]``) take
    ``alpha_os1``. Confident regions of the coarse, more robust outputs are kept; fine outputs only fill in the
    boundary. Float32 Bx1xHxW."""
    alpha = outputs["alpha_os8"].float()
    for key, size in zip(("alpha_os4", "alpha_os1"), kernel_sizes, strict=True):
        alpha = torch.where(unknown_region(alpha, size), outputs[key].float(), alpha)
    return alpha


def reflect_pad_amounts(height: int, width: int, border: int = 32, multiple: int = 32) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the authors' ``infer.py``: ``border`` on every side, and bottom/right also
    up to a multiple of ``multiple``."""
    extra_h, extra_w = (-height) % multiple, (-width) % multiple
    return border, border + extra_h, border, border + extra_w


# ------------------------------------------------------------------------------------------------- the model
class MGMatting(nn.Module):
    """MGMatting generator (encoder + ASPP + decoder) with himbench's model protocol (see module docstring)."""

    mask_guided = True  # predict_instances needs guidance masks (himbench predict asks for --masks / --guidance)

    released_weights = ReleasedWeights(
        paper="Yu et al., Mask Guided Matting via Progressive Refinement Network, CVPR 2021 (arXiv 2012.06722)",
        code="https://github.com/yucornetto/MGMatting",
        # code-base/README.md, "Model Zoo", MGMatting-RWP-100k (trained on DIM without transparent objects, for
        # real-world portraits). MGMatting-DIM-100k: .../EblaRdwYHr1Esqbe48HfMT8Bl1y6n1PducNZ2ml3DqSAaw?e=vfbfT0
        download="https://livejohnshopkins-my.sharepoint.com/:u:/g/personal/qyu13_jh_edu/"
        "Edl8x0nQjy1JhGP6rcV0N-cB654HpmZZa5bwW9rYUvmsJg?e=J3lSba",
        # infer.py's default --checkpoint is checkpoints/MGMatting-DIM-100k/latest_model.pth; a {'state_dict': ...}
        # pickle with 'module.'-prefixed keys.
        filename="latest_model.pth",
        license="CC BY-NC 2.0, research / non-commercial only (LICENCE.md and README.md of yucornetto/MGMatting)",
        requires_weights=True,
    )

    def __init__(self, config: MGMConfig = MGMConfig()) -> None:
        super().__init__()
        self.config = config
        self.encoder = ResShortcutEncoder()
        self.aspp = ASPP()
        self.decoder = ResShortcutDecoder()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, image: torch.Tensor, guidance: torch.Tensor) -> dict[str, torch.Tensor]:
        """``image`` Bx3xHxW (RGB, ImageNet mean/std), ``guidance`` Bx1xHxW in {0, 1}, H and W multiples of 32 ->
        ``{"alpha_os1", "alpha_os4", "alpha_os8"}``, each Bx1xHxW in [0, 1]."""
        h, w = image.shape[-2:]
        if h % _STRIDE or w % _STRIDE:
            raise ValueError(f"MGMatting needs H and W multiples of {_STRIDE}, got {h}x{w} (pad first)")
        bottleneck, shortcuts = self.encoder(torch.cat([image, guidance.to(image.dtype)], dim=1))
        return self.decoder(self.aspp(bottleneck), shortcuts)

    # ------------------------------------------------------------------ training
    def training_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """himbench's fine-tuning loss (module docstring): perturbed binarised ground truth as guidance, weighted L1
        on the three outputs."""
        images, alphas, valid = batch["image"], batch["alphas"], batch["valid"]
        b_idx, k_idx = torch.nonzero(valid, as_tuple=True)
        if b_idx.numel() == 0:  # nothing to matte, but keep the graph connected for DDP
            zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
            return {"loss": zero, **{f"l1_{k[6:]}": zero.detach() for k in OUTPUT_KEYS}}
        if b_idx.numel() > self.config.max_instances:
            pick = torch.randperm(b_idx.numel(), device=b_idx.device)[: self.config.max_instances]
            b_idx, k_idx = b_idx[pick], k_idx[pick]
        if b_idx.numel() == 1:
            # Training-mode BatchNorm after the ASPP's global pooling needs two samples: the lone instance goes in
            # twice, with two independent guidance perturbations.
            b_idx, k_idx = b_idx.repeat(2), k_idx.repeat(2)
        gt = alphas[b_idx, k_idx][:, None].float()
        size = max(images.shape[-2:])
        with torch.no_grad():
            guide = perturb_mask_tensor((gt >= 0.5).float(), round(self.config.max_perturb * size))
        x = normalise_image(images[b_idx].float())
        h, w = x.shape[-2:]
        pad = (0, (-w) % _STRIDE, 0, (-h) % _STRIDE)
        if any(pad):
            mode = "reflect" if min(h, w) > _STRIDE else "replicate"
            x, guide = F.pad(x, pad, mode=mode), F.pad(guide, pad, mode=mode)
        outputs = self(x, guide)
        losses = {f"l1_{key[6:]}": (outputs[key][..., :h, :w].float() - gt).abs().mean() for key in OUTPUT_KEYS}
        weights = dict(zip(losses, self.config.loss_weights, strict=True))
        total = sum(weights[key] * value for key, value in losses.items())
        return {"loss": total, **{key: value.detach() for key, value in losses.items()}}

    # ------------------------------------------------------------------ inference
    def _run_padded(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """The authors' infer.py for one image and (N,h,w) bool masks: reflect padding, forward, PRM, crop back."""
        h, w = image.shape[:2]
        top, bottom, left, right = reflect_pad_amounts(h, w, self.config.pad_border, self.config.pad_multiple)
        device = self.device
        padded = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="reflect")
        x = torch.from_numpy(np.ascontiguousarray(padded)).to(device).permute(2, 0, 1)[None].float() / 255.0
        x = normalise_image(x)
        outputs = []
        for start in range(0, len(masks), self.config.batch_instances):
            chunk = masks[start : start + self.config.batch_instances].astype(np.float32)
            guide = np.pad(chunk, ((0, 0), (top, bottom), (left, right)), mode="reflect")
            guide_t = torch.from_numpy(guide).to(device)[:, None]
            with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
                out = self(x.expand(len(chunk), -1, -1, -1), guide_t)
            alpha = progressive_refinement(out, self.config.refine_kernel_sizes)
            outputs.append(alpha[:, 0, top : top + h, left : left + w].clamp(0.0, 1.0).cpu().numpy())
        return np.concatenate(outputs).astype(np.float32, copy=False)

    @torch.no_grad()
    def predict_instances(self, image: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """uint8 HxWx3 RGB + (N,H,W) guidance masks -> ((M,H,W) float32 alphas, (M,) float32 scores of 1), with M
        the number of non-empty masks, in their order."""
        if masks is None:
            raise ValueError("mgm is mask-guided: pass guidance masks (N,H,W)")
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be HxWx3 RGB, got shape {image.shape}")
        h, w = image.shape[:2]
        masks = np.asarray(masks).astype(bool, copy=False)
        if masks.ndim != 3 or masks.shape[1:] != (h, w):
            raise ValueError(f"masks must be (N, {h}, {w}) to match the image, got {masks.shape}")
        masks = masks[masks.reshape(len(masks), -1).any(axis=1)]  # an empty mask would only be a false positive
        if len(masks) == 0:
            return np.zeros((0, h, w), dtype=np.float32), np.zeros(0, dtype=np.float32)
        was_training = self.training
        self.eval()  # train mode would update the spectral-norm vectors and use batch statistics
        try:
            limit = self.config.max_size
            if limit is not None and max(h, w) > limit:
                scale = limit / max(h, w)
                size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 order: (width, height)
                small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                small_masks = np.stack(
                    [cv2.resize(m.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5 for m in masks]
                )
                low = torch.from_numpy(self._run_padded(small, small_masks))[:, None]
                alphas = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)
                alphas = alphas.numpy()
            else:
                alphas = self._run_padded(np.ascontiguousarray(image, dtype=np.uint8), masks)
        finally:
            self.train(was_training)
        return alphas, np.ones(len(alphas), dtype=np.float32)

    @torch.no_grad()
    def predict_batch(
        self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``predict_instances`` per image (images of different sizes pad differently, so no cross-image batch)."""
        if masks is None or len(masks) != len(images):
            raise ValueError("mgm is mask-guided: pass one (N,H,W) mask array per image")
        return [self.predict_instances(image, m) for image, m in zip(images, masks, strict=True)]


@register_model("mgm")
def mgm(**overrides) -> MGMatting:
    """MGMatting (Yu et al., CVPR 2021), the authors' released generator; load their weights (CC BY-NC 2.0)."""
    return MGMatting(apply_overrides(MGMConfig(), overrides))
