"""The Swin-T backbone inside the authors' released E2E-HIM network (``trans.*`` keys of ``swintiny.ckpt``).

This is the Swin Transformer detection backbone (Liu et al. 2021, the variant with padding to the window size and
one LayerNorm per output stage) as the authors configure it: embed dim 96, depths (2, 2, 6, 2), heads (3, 6, 12, 24),
window 7, no absolute position embedding, patch norm on. The authors replace the 4x4 patch projection by a 1x1
convolution from the 128 channels of their conv stem, so the backbone starts at 1/4 scale of the image; the patch
size stays 4 for the padding check of the patch embedding, as in their code.

Everything that changes numbers follows the authors' order of operations, because a released checkpoint must give
the authors' outputs (tests/test_e2ehim_official.py holds it to ~1e-5): the query is scaled before ``q @ k^T``,
padding to a multiple of the window comes after ``norm1`` (padded tokens are zeros and take part in un-shifted
windows), the shifted-window mask uses -100 (not -inf), LayerNorm eps is 1e-5 and GELU is exact (erf).
Stochastic depth and dropout are training-time only; the authors released no training code, so they are left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PatchEmbed", "PatchMerging", "SwinBackbone", "SwinBlock", "SwinStage", "SwinWindowAttention"]

_MASK_VALUE = -100.0  # the value Swin's reference code adds between tokens of different shifted regions


def _to_windows(x: Tensor, window: int) -> Tensor:
    """B,H,W,C (H, W multiples of ``window``) -> B*nW, window, window, C, windows in row-major order per image."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, c)


def _from_windows(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`_to_windows`: B*nW, window, window, C -> B,H,W,C."""
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


def _relative_position_index(window: int) -> Tensor:
    """(window^2, window^2) int64 index into the (2*window-1)^2 bias table, Swin's layout (row offset major)."""
    grid = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    offsets = (grid[:, :, None] - grid[:, None, :]).permute(1, 2, 0) + (window - 1)
    return offsets[..., 0] * (2 * window - 1) + offsets[..., 1]


def _shift_mask(hp: int, wp: int, window: int, shift: int, device: torch.device) -> Tensor:
    """Additive attention mask (nW, N, N) of shifted windows over a padded hp x wp map: 0 within a region, -100
    between the up to 3x3 regions that the cyclic shift brings into one window."""
    regions = torch.zeros((1, hp, wp, 1), device=device)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bands:
        for cols in bands:
            regions[:, rows, cols, :] = label
            label += 1
    labels = _to_windows(regions, window).view(-1, window * window)
    diff = labels.unsqueeze(1) - labels.unsqueeze(2)
    return diff.masked_fill(diff != 0, _MASK_VALUE).masked_fill(diff == 0, 0.0)


class SwinWindowAttention(nn.Module):
    """Multi-head self-attention inside one window, with a learned bias per relative position and head."""

    def __init__(self, dim: int, window: int, num_heads: int) -> None:
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        # Persistent: it is part of the authors' state dict (an integer buffer the checkpoint carries).
        self.register_buffer("relative_position_index", _relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: B*nW, N, C; mask: nW, N, N additive, or None for un-shifted windows."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))


class SwinMlp(nn.Module):
    """The block's feed-forward part: Linear -> exact GELU -> Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention + MLP, both residual; tokens B,H*W,C in, same out."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SwinWindowAttention(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwinMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor) -> Tensor:
        b, length, c = x.shape
        if length != h * w:
            raise ValueError(f"expected {h}x{w} tokens, got {length}")
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        pad_b, pad_r = (-h) % self.window, (-w) % self.window
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = x.shape[1:3]
        if self.shift > 0:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = _to_windows(x, self.window).view(-1, self.window * self.window, c)
        windows = self.attn(windows, mask=mask if self.shift > 0 else None)
        x = _from_windows(windows.view(-1, self.window, self.window, c), self.window, hp, wp)
        if self.shift > 0:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        if pad_b or pad_r:
            x = x[:, :h, :w, :].contiguous()
        x = shortcut + x.view(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> one token: concatenate (even/even, odd/even, even/odd, odd/odd), LayerNorm, 4C -> 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """``depth`` blocks alternating plain and shifted windows, then (except the last stage) patch merging."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, downsample: bool) -> None:
        super().__init__()
        self.window = window
        self.shift = window // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window, 0 if i % 2 == 0 else window // 2) for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor, h: int, w: int) -> tuple[Tensor, Tensor, int, int]:
        """-> (this stage's tokens at h x w, the next stage's input tokens, next h, next w)."""
        hp, wp = -(-h // self.window) * self.window, -(-w // self.window) * self.window
        mask = _shift_mask(hp, wp, self.window, self.shift, x.device)
        for block in self.blocks:
            x = block(x, h, w, mask)
        if self.downsample is None:
            return x, x, h, w
        return x, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class PatchEmbed(nn.Module):
    """Projection to the embedding width + LayerNorm (the authors swap Swin's 4x4 patchify conv for a 1x1 conv)."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int = 4) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=1, stride=1)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        # Swin pads to its patch size; kept because the authors' module still carries patch size 4.
        x = F.pad(x, (0, (-w) % self.patch_size, 0, (-h) % self.patch_size))
        x = self.proj(x)
        hh, ww = x.shape[-2:]
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).view(-1, self.embed_dim, hh, ww)


class SwinBackbone(nn.Module):
    """Swin-T on the stem's 1/4-scale features -> (1/4, 1/8, 1/16, 1/32) maps of 96, 192, 384, 768 channels."""

    def __init__(
        self,
        in_channels: int = 128,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window: int = 7,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, embed_dim)
        self.num_features = [embed_dim * 2**i for i in range(len(depths))]
        self.layers = nn.ModuleList(
            SwinStage(self.num_features[i], depths[i], num_heads[i], window, downsample=i < len(depths) - 1)
            for i in range(len(depths))
        )
        for i, width in enumerate(self.num_features):
            self.add_module(f"norm{i}", nn.LayerNorm(width))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        outs = []
        for i, stage in enumerate(self.layers):
            out, x, next_h, next_w = stage(x, h, w)
            out = getattr(self, f"norm{i}")(out)
            outs.append(out.view(-1, h, w, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
            h, w = next_h, next_w
        return tuple(outs)
