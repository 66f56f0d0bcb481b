"""Typed configuration of the E2E-HIM model (SPEC s.5), one dataclass per sub-network.

``E2EHIMConfig()`` is the paper-size model (``e2ehim-base``); :func:`tiny_config` is the CPU-sized variant used by
the tests and the embedded demo. Every field is JSON-serialisable (``dataclasses.asdict``) so the resolved config is
saved beside each checkpoint and rebuilt from it with :func:`himbench.registry.apply_overrides`.

A config.json may come from anyone, so every dataclass checks itself on construction (``__post_init__``, which
``dataclasses.replace`` and :func:`~himbench.registry.apply_overrides` run too): sizes positive, heads dividing
widths, thresholds in [0, 1], and :class:`E2EHIMConfig` bounds the memory the fields imply *together*
(:func:`estimate_memory`, capped by :func:`himbench.registry.check_model_memory`) before any tensor is allocated.
A bad value raises ``ValueError`` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from himbench.registry import check_fields, check_model_memory

__all__ = [
    "BackboneConfig",
    "E2EHIMConfig",
    "LossConfig",
    "MattingConfig",
    "UnitedGuidanceConfig",
    "base_config",
    "estimate_memory",
    "tiny_config",
]

_STAGES = 4  # the network reads exactly four backbone levels (1/4 .. 1/32)


@dataclass
class BackboneConfig:
    """General perception network: conv stem then a Swin-T-style hierarchical window-attention transformer."""

    stem_channels: tuple[int, int, int] = (32, 64, 128)  # 3->c0 stride 2, ->c1, ->c2 stride 2 (1/4 scale)
    embed_dim: int = 96
    depths: tuple[int, int, int, int] = (2, 2, 6, 2)
    num_heads: tuple[int, int, int, int] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.2

    def __post_init__(self) -> None:
        check_fields(self, positive=("stem_channels", "embed_dim", "num_heads", "window_size", "mlp_ratio"),
                     non_negative=("depths",), unit_interval=("drop_path_rate",))
        if len(self.stem_channels) != 3:
            raise ValueError(f"BackboneConfig.stem_channels: expected 3 widths (got {self.stem_channels!r})")
        if len(self.depths) != _STAGES or len(self.num_heads) != _STAGES:
            raise ValueError(f"BackboneConfig: depths and num_heads need {_STAGES} entries each "
                             f"(got {self.depths!r} and {self.num_heads!r})")
        for i, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2**i) % heads:
                raise ValueError(f"BackboneConfig.num_heads[{i}]={heads} does not divide the stage width "
                                 f"embed_dim * 2**{i} = {self.embed_dim * 2**i}")


@dataclass
class UnitedGuidanceConfig:
    """United guidance network (the paper's name; :mod:`e2ehim.united_guidance`): pixel encoder over the 1/32 tokens,
    then a DETR-style query decoder. Not to be confused with the guidance *masks* of mask-guided methods
    (:class:`himbench.guidance.GuidanceConfig`)."""

    num_queries: int = 20
    d_model: int = 256
    num_heads: int = 8
    decoder_layers: int = 6
    encoder_layers: int = 9  # transformer encoder over the 1/32 tokens before the decoder reads them
    ffn_dim: int = 4096
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self, positive=("num_queries", "d_model", "num_heads", "ffn_dim"),
                     non_negative=("decoder_layers", "encoder_layers"), unit_interval=("dropout",))
        if self.d_model % self.num_heads:
            raise ValueError(f"UnitedGuidanceConfig.num_heads={self.num_heads} does not divide d_model={self.d_model}")


@dataclass
class MattingConfig:
    """Instance matting network: FPN neck, dynamic trimap kernels at 1/8, dynamic 1x1 alpha conv at full size."""

    alpha_channels: int = 64  # the shared full-resolution map the dynamic 1x1 alpha conv reads
    tower_convs: int = 4  # 3x3 d_model convs refining the 1/8 map the trimap kernels read (a CondInst-style tower)
    image_channels: int = 32  # raw-image detail features fused at full resolution
    kernel_mlp_layers: int = 3

    def __post_init__(self) -> None:
        check_fields(self, positive=("alpha_channels", "image_channels", "kernel_mlp_layers"),
                     non_negative=("tower_convs",))


@dataclass
class LossConfig:
    """Weights of the training losses and of the Hungarian matching costs."""

    cls_weight: float = 2.0
    no_person_weight: float = 0.1  # DETR's eos_coef: down-weights the many unmatched queries
    trimap_weight: float = 1.0
    alpha_l1_weight: float = 1.0
    alpha_unknown_weight: float = 1.0  # raw alpha head, L1 inside the ground-truth unknown band
    gradient_weight: float = 1.0
    laplacian_weight: float = 1.0
    match_cls: float = 2.0
    match_l1: float = 5.0
    match_dice: float = 5.0

    def __post_init__(self) -> None:
        check_fields(self, non_negative=[f for f in self.__dataclass_fields__])


@dataclass
class E2EHIMConfig:
    name: str = "e2ehim-base"
    input_size: int = 640  # square letterbox size used at inference and by default in training
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    # the united guidance network; the key "guidance" is kept: every stored config.json uses it
    guidance: UnitedGuidanceConfig = field(default_factory=UnitedGuidanceConfig)
    matting: MattingConfig = field(default_factory=MattingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    score_threshold: float = 0.5  # keep queries whose person probability is above this
    # SPEC s.5 drops instances under 1000 px at 640x640; applied as this fraction of the image area so that the rule
    # means the same thing at any input size.
    min_area_fraction: float = 1000.0 / (640 * 640)
    trimap_fg_threshold: float = 0.99  # ground-truth trimap at 1/8: area-mean alpha >= this is foreground
    trimap_bg_threshold: float = 0.01  # ... <= this is background, anything between is unknown

    def __post_init__(self) -> None:
        check_fields(self, positive=("input_size",), unit_interval=(
            "score_threshold", "min_area_fraction", "trimap_fg_threshold", "trimap_bg_threshold"))
        parts = (self.backbone, self.guidance, self.matting, self.loss)
        if all(type(p) is t for p, t in zip(parts, (BackboneConfig, UnitedGuidanceConfig, MattingConfig, LossConfig),
                                            strict=True)):
            bb, gd = self.backbone, self.guidance
            sizes = (f"input_size={self.input_size}, embed_dim={bb.embed_dim}, window_size={bb.window_size}, "
                     f"depths={list(bb.depths)}, d_model={gd.d_model}, ffn_dim={gd.ffn_dim}, "
                     f"num_queries={gd.num_queries}")
            check_model_memory(f"E2EHIMConfig {self.name!r} ({sizes})", *estimate_memory(self))


def estimate_memory(config: E2EHIMConfig) -> tuple[float, float]:
    """``(parameters, activation values for one input_size image)`` the config implies, from its fields alone.

    The big terms only: Swin blocks (attention, MLP and the relative-position table), the stem, the guidance
    transformer and the matting neck for parameters; for activations the stem maps, each stage's tokens on the
    window-padded grid (a window larger than the map pads the map up to it) with its window-attention matrices, the
    guidance attention over 1/32 tokens and the per-query full-resolution maps. Within a small factor of the truth
    for real configs (the tests compare it with a built model); its job is to tell gigabytes from terabytes.
    """
    bb, gd, mt = config.backbone, config.guidance, config.matting
    size, w, mlp = float(config.input_size), float(bb.window_size), float(bb.mlp_ratio)
    c0, c1, c2 = (float(c) for c in bb.stem_channels)
    dims = [float(bb.embed_dim) * 2**i for i in range(_STAGES)]
    d, ffn, queries, a = float(gd.d_model), float(gd.ffn_dim), float(gd.num_queries), float(mt.alpha_channels)

    params = 9 * (3 * c0 + c0 * c1 + c1 * c2) + c2 * dims[0]
    acts = (size / 2) ** 2 * (c0 + c1) + (size / 4) ** 2 * c2
    for i, (dim, depth, heads) in enumerate(zip(dims, bb.depths, bb.num_heads, strict=True)):
        params += depth * ((4 + 2 * mlp) * dim**2 + (2 * w - 1) ** 2 * heads) + (2 * dim**2 if i else 0)
        padded = math.ceil(math.ceil(size / (4 * 2**i)) / w) * w  # the grid each block's windows tile
        acts += padded**2 * (dim * (4 + mlp) + w**2 * heads)
    layers = float(gd.encoder_layers + 2 * gd.decoder_layers)
    params += layers * (4 * d**2 + 2 * d * ffn) + (dims[2] + dims[3]) * d + 2 * queries * d
    params += 9 * d**2 * mt.tower_convs + (dims[1] + dims[2]) * d + dims[0] * 2 * a + c1 * a + 9 * a**2
    params += mt.kernel_mlp_layers * d * (d + 3 * d + a)
    tokens = math.ceil(size / 32) ** 2
    acts += gd.encoder_layers * (tokens**2 * gd.num_heads + tokens * ffn) + queries * (tokens * gd.num_heads + ffn)
    acts += size**2 * (2 * a + mt.image_channels + 4 * queries) + (size / 8) ** 2 * d * (mt.tower_convs + 2)
    return params, acts


def base_config() -> E2EHIMConfig:
    return E2EHIMConfig()


def tiny_config() -> E2EHIMConfig:
    # The shipped recipe (e2ehim/checkpoints/README.md): wider than the first 1.7 M model (which found half the people
    # of the leaderboard set); trained at 320 px, then fine-tuned at 384 px, where thin limbs keep more pixels at 1/8.
    return E2EHIMConfig(
        name="e2ehim-tiny",
        input_size=384,
        backbone=BackboneConfig(
            stem_channels=(16, 32, 48),
            embed_dim=48,
            depths=(1, 1, 2, 1),
            num_heads=(1, 2, 4, 8),
            window_size=8,
            mlp_ratio=2.0,
            drop_path_rate=0.0,
        ),
        guidance=UnitedGuidanceConfig(
            num_queries=20, d_model=128, num_heads=4, decoder_layers=3, encoder_layers=1, ffn_dim=256
        ),
        matting=MattingConfig(alpha_channels=16, image_channels=8, tower_convs=2, kernel_mlp_layers=2),
    )
