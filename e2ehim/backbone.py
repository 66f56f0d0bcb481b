"""General perception network (SPEC s.5): a conv stem feeding a Swin-style hierarchical window-attention transformer.

The stem (3->c0 stride 2, ->c1, ->c2 stride 2) replaces Swin's 4x4 patch embedding, so the transformer starts at 1/4
scale from convolutional features and the 1/2-scale stem output stays available for fine matting detail. Stages run
at 1/4, 1/8, 1/16, 1/32 with widths E, 2E, 4E, 8E. Windows are shifted on every second block (Swin's SW-MSA) with
the usual attention mask, and a learned relative position bias per head. Any input size works: each block pads its
input to a multiple of the window and crops back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e2ehim.config import BackboneConfig

__all__ = ["GeneralPerceptionNetwork", "SwinBlock", "WindowAttention"]


def _window_partition(x: Tensor, window: int) -> Tensor:
    """B,H,W,C (H, W multiples of window) -> B*nW, window*window, C."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def _window_reverse(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at eval or rate 0)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative position bias."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("bias_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: B*nW, N, C; mask: nW, N, N additive (0 / -inf-like) or None."""
        bw, n, c = x.shape
        qkv = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.bias_table[self.bias_index.view(-1)].view(n, n, -1).permute(2, 0, 1)  # heads, N, N
        attn_bias = bias.unsqueeze(0).to(qkv.dtype)
        if mask is not None:
            nw = mask.shape[0]
            attn_bias = (attn_bias.view(1, 1, self.num_heads, n, n) + mask.view(1, nw, 1, n, n).to(qkv.dtype)).expand(
                bw // nw, nw, self.num_heads, n, n
            )
            attn_bias = attn_bias.reshape(bw, self.num_heads, n, n)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_bias)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window: int, shift: bool, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.window = window
        self.shift = window // 2 if shift else 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def _shift_mask(self, hp: int, wp: int, device: torch.device) -> Tensor:
        # Label the regions that a cyclic shift brings together; tokens from different regions must not attend.
        w, s = self.window, self.shift
        labels = torch.zeros(1, hp, wp, 1, device=device)
        region = 0
        for hs in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            for ws in (slice(0, -w), slice(-w, -s), slice(-s, None)):
                labels[:, hs, ws, :] = region
                region += 1
        windows = _window_partition(labels, w).squeeze(-1)  # nW, N
        diff = windows[:, None, :] - windows[:, :, None]
        return torch.zeros_like(diff).masked_fill(diff != 0, -1e4)

    def forward(self, x: Tensor) -> Tensor:
        """x: B,H,W,C."""
        b, h, w, c = x.shape
        win = self.window
        shortcut = x
        x = self.norm1(x)
        pad_h, pad_w = (-h) % win, (-w) % win
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        # A single window covers everything: shifting would only add masking, so skip it (as Swin does).
        shift = self.shift if (hp > win or wp > win) else 0
        mask = None
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            mask = self._shift_mask(hp, wp, x.device)
        attn = self.attn(_window_partition(x, win), mask)
        x = _window_reverse(attn, win, hp, wp)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = x[:, :h, :w, :]
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat + linear: halves the resolution, doubles the width."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, c = x.shape
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class GeneralPerceptionNetwork(nn.Module):
    """Returns ``{"s2": stem 1/2 (c1 ch), "s4": E, "s8": 2E, "s16": 4E, "s32": 8E}`` as NCHW tensors."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        c0, c1, c2 = cfg.stem_channels
        self.stem_half = nn.Sequential(_conv_bn_relu(3, c0, 2), _conv_bn_relu(c0, c1, 1))
        self.stem_quarter = _conv_bn_relu(c1, c2, 2)
        self.embed = nn.Linear(c2, cfg.embed_dim)
        self.embed_norm = nn.LayerNorm(cfg.embed_dim)
        rates = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths)).tolist()
        self.stages = nn.ModuleList()
        self.merges = nn.ModuleList()
        self.out_norms = nn.ModuleList()
        self.channels: list[int] = []
        dim = cfg.embed_dim
        start = 0
        for i, (depth, heads) in enumerate(zip(cfg.depths, cfg.num_heads, strict=True)):
            self.merges.append(PatchMerging(dim // 2) if i > 0 else nn.Identity())
            blocks = [
                SwinBlock(
                    dim, heads, cfg.window_size, shift=j % 2 == 1, mlp_ratio=cfg.mlp_ratio, drop_path=rates[start + j]
                )
                for j in range(depth)
            ]
            start += depth
            self.stages.append(nn.Sequential(*blocks))
            self.out_norms.append(nn.LayerNorm(dim))
            self.channels.append(dim)
            dim *= 2
        self.stem_channels = c1
        self.apply(_init_linear)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        half = self.stem_half(image)
        x = self.embed_norm(self.embed(self.stem_quarter(half).permute(0, 2, 3, 1)))  # B,H/4,W/4,E
        features = {"s2": half}
        for name, merge, stage, norm in zip(
            ("s4", "s8", "s16", "s32"), self.merges, self.stages, self.out_norms, strict=True
        ):
            x = stage(merge(x))
            features[name] = norm(x).permute(0, 3, 1, 2).contiguous()
        return features


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
