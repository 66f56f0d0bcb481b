"""Small building blocks shared by the E2E-HIM networks (:mod:`e2ehim.united_guidance`, :mod:`e2ehim.matting_head`
and the authors' network in :mod:`e2ehim.official`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MLP", "group_norm_groups"]


class MLP(nn.Module):
    """DETR's MLP: ``num_layers`` Linear layers with ReLU between them, applied to each query embedding.

    Its parameters are ``layers.<i>.weight`` / ``layers.<i>.bias``, the key names of the authors' released
    checkpoint too (their ``MLP`` in ``matmodel.py``), so :mod:`e2ehim.official` loads it unchanged."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def group_norm_groups(channels: int) -> int:
    """The largest of 32, 16, 8, 4, 2 groups that divides ``channels`` (1 if none), for ``nn.GroupNorm``."""
    for groups in (32, 16, 8, 4, 2):
        if channels % groups == 0:
            return groups
    return 1
