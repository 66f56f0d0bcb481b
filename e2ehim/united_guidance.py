"""United guidance network (SPEC s.5): learned instance queries read the image through a DETR-style decoder.

Named as the paper names it, apart from the *guidance masks* of mask-guided methods (:mod:`himbench.guidance`).
Inside :class:`~e2ehim.model.E2EHIM` it is the submodule ``guidance`` configured by ``E2EHIMConfig.guidance``
(a :class:`~e2ehim.config.UnitedGuidanceConfig`): that short name is the key of every stored ``config.json`` and the
prefix of every weight name in ``model.safetensors``, so it stays.

Two steps, because the matting network's FPN sits between them:

1. :meth:`UnitedGuidanceNetwork.encode` projects the 1/32 backbone features to ``d_model`` and refines them with a
   transformer encoder (global context that window attention lacks); the result feeds the decoder and the FPN.
2. :meth:`UnitedGuidanceNetwork.decode` runs ``decoder_layers`` DETR decoder layers (self-attention among queries,
   cross-attention to the 1/32 and 1/16 tokens with sine positions and level embeddings) over ``num_queries`` learned
   queries, then gives per query: person / no-person logits (2-way), a semantics embedding (the input of the dynamic
   kernel generators) and a spatial-attention logit map at 1/8 (query . pixel similarity on the FPN's 1/8 map).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from e2ehim.config import UnitedGuidanceConfig
from e2ehim.layers import MLP, group_norm_groups

__all__ = ["UnitedGuidanceNetwork", "sine_position_embedding"]


def sine_position_embedding(h: int, w: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """DETR's normalised 2-D sine embedding, (h*w, dim): half the channels encode y, half x."""
    quarter = dim // 4
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h * 2 * math.pi
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w * 2 * math.pi
    freqs = 10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    ey = ys[:, None] / freqs
    ex = xs[:, None] / freqs
    ey = torch.cat([ey.sin(), ey.cos()], dim=1)[:, None, :].expand(h, w, 2 * quarter)
    ex = torch.cat([ex.sin(), ex.cos()], dim=1)[None, :, :].expand(h, w, 2 * quarter)
    emb = torch.cat([ey, ex], dim=2).reshape(h * w, 4 * quarter)
    if emb.shape[1] < dim:
        emb = torch.cat([emb, emb.new_zeros(h * w, dim - emb.shape[1])], dim=1)
    return emb.to(dtype)


class _EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(inplace=True), nn.Linear(ffn, d))
        self.norm2 = nn.LayerNorm(d)

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        q = src + pos
        src = self.norm1(src + self.attn(q, q, src, need_weights=False)[0])
        return self.norm2(src + self.ffn(src))


class _DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.norm3 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(inplace=True), nn.Linear(ffn, d))

    def forward(self, tgt: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor) -> Tensor:
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, q, tgt, need_weights=False)[0])
        tgt = self.norm2(tgt + self.cross_attn(tgt + query_pos, memory + memory_pos, memory, need_weights=False)[0])
        return self.norm3(tgt + self.ffn(tgt))


class UnitedGuidanceNetwork(nn.Module):
    """The paper's united guidance network (see the module docstring); configured by :class:`UnitedGuidanceConfig`."""

    def __init__(self, cfg: UnitedGuidanceConfig, channels_s16: int, channels_s32: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.d_model = d
        self.input_s32 = nn.Sequential(nn.Conv2d(channels_s32, d, 1), nn.GroupNorm(group_norm_groups(d), d))
        self.input_s16 = nn.Sequential(nn.Conv2d(channels_s16, d, 1), nn.GroupNorm(group_norm_groups(d), d))
        self.level_embed = nn.Parameter(torch.zeros(2, d))
        nn.init.normal_(self.level_embed, std=0.02)
        self.encoder = nn.ModuleList(
            _EncoderLayer(d, cfg.num_heads, cfg.ffn_dim, cfg.dropout) for _ in range(cfg.encoder_layers)
        )
        self.query_content = nn.Embedding(cfg.num_queries, d)
        self.query_pos = nn.Embedding(cfg.num_queries, d)
        self.decoder = nn.ModuleList(
            _DecoderLayer(d, cfg.num_heads, cfg.ffn_dim, cfg.dropout) for _ in range(cfg.decoder_layers)
        )
        self.decoder_norm = nn.LayerNorm(d)
        self.classifier = nn.Linear(d, 2)  # index 0: no person, 1: person
        self.semantics = MLP(d, d, d, 2)
        self.spatial_query = nn.Linear(d, d)

    def encode(self, s32: Tensor) -> tuple[Tensor, Tensor]:
        """1/32 features -> (encoded map B,d,h,w, its positional embedding h*w,d)."""
        x = self.input_s32(s32)
        b, d, h, w = x.shape
        pos = sine_position_embedding(h, w, d, x.device, x.dtype)
        tokens = x.flatten(2).transpose(1, 2)
        for layer in self.encoder:
            tokens = layer(tokens, pos)
        return tokens.transpose(1, 2).reshape(b, d, h, w), pos

    def decode(self, encoded32: Tensor, pos32: Tensor, s16: Tensor, pixel8: Tensor) -> dict[str, Tensor]:
        b = encoded32.shape[0]
        x16 = self.input_s16(s16)
        h16, w16 = x16.shape[-2:]
        pos16 = sine_position_embedding(h16, w16, self.d_model, x16.device, x16.dtype)
        memory = torch.cat([encoded32.flatten(2).transpose(1, 2), x16.flatten(2).transpose(1, 2)], dim=1)
        memory_pos = torch.cat([pos32 + self.level_embed[0], pos16 + self.level_embed[1]], dim=0).unsqueeze(0)
        tgt = self.query_content.weight.unsqueeze(0).expand(b, -1, -1)
        query_pos = self.query_pos.weight.unsqueeze(0).expand(b, -1, -1)
        for layer in self.decoder:
            tgt = layer(tgt, query_pos, memory, memory_pos)
        queries = self.decoder_norm(tgt)
        spatial = torch.einsum("bqd,bdhw->bqhw", self.spatial_query(queries), pixel8) / math.sqrt(self.d_model)
        return {
            "class_logits": self.classifier(queries),
            "semantics": self.semantics(queries),
            "spatial_logits": spatial,
        }

