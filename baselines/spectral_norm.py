"""The spectral normalisation of MGMatting (and GCA-Matting before it), re-expressed so its checkpoints load as is.

Why not ``torch.nn.utils.parametrizations.spectral_norm``: the released checkpoints store the state of an older,
hand-written wrapper (from Self-Attention-GAN), and its names and arithmetic differ from PyTorch's. The wrapped layer
lives at ``<name>.module``; its ``weight`` parameter is replaced by three parameters registered on that layer:

``weight_bar``
    the unnormalised weight W (trainable);
``weight_u`` (``out`` values) and ``weight_v`` (``W[0].numel()`` values)
    the power-iteration vectors, registered as *parameters* with ``requires_grad=False`` (not buffers), exactly as
    the authors do, so that ``state_dict()`` keys and ``parameters()`` match theirs.

With W viewed as a matrix of shape ``(W.shape[0], -1)`` (for a transposed convolution the first dimension is the
*input* channels, as in the authors' code), the layer uses ``W / sigma`` with ``sigma = u . (W v)``:

* in ``train()`` mode each forward first runs ``power_iterations`` steps ``v = normalise(W^T u); u = normalise(W v)``
  on the stored vectors (no gradient through them), then computes ``sigma`` (the gradient flows through W in both
  numerator and ``sigma``);
* in ``eval()`` mode u and v are used as stored, never updated, so inference is a pure function of the checkpoint.

``normalise(x) = x / (|x| + 1e-12)``: the authors add eps to the norm (``torch.nn.functional.normalize`` would clamp
it instead), which matters only for all-zero vectors but is kept for exactness.

One deliberate difference: ``sigma`` and ``W / sigma`` are computed in float32 with autocast disabled, so mixed
precision on CUDA never runs the power iteration in float16 (the convolution itself still runs under autocast). In
float32 the arithmetic is the authors' operation for operation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SpectralNorm", "l2_normalise", "power_iteration"]

_EPS = 1e-12


def l2_normalise(vector: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """``vector / (|vector| + eps)``: the authors' ``l2normalize`` (eps added to the norm, not a clamp)."""
    return vector / (vector.norm() + eps)


@torch.no_grad()
def power_iteration(
    matrix: torch.Tensor, u: torch.Tensor, v: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` rounds of ``v = normalise(M^T u); u = normalise(M v)`` on a 2-D ``matrix``; returns new (u, v)."""
    for _ in range(steps):
        v = l2_normalise(torch.mv(matrix.t(), u))
        u = l2_normalise(torch.mv(matrix, v))
    return u, v


class SpectralNorm(nn.Module):
    """Wrap a ``Conv2d`` or ``ConvTranspose2d`` so it convolves with ``weight_bar / sigma`` (see module docstring)."""

    def __init__(self, module: nn.Conv2d | nn.ConvTranspose2d, power_iterations: int = 1) -> None:
        super().__init__()
        if not isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            raise TypeError(f"SpectralNorm wraps Conv2d or ConvTranspose2d, got {type(module).__name__}")
        self.module = module
        self.power_iterations = power_iterations
        weight = module.weight.detach()
        height = weight.shape[0]
        width = weight[0].numel()
        # Same registration as the authors (weight removed; u, v, bar added in that order): identical state_dict keys
        # and order, and u/v travel with the optimizer's parameter list but never receive gradients.
        del module._parameters["weight"]
        u = l2_normalise(weight.new_empty(height).normal_(0.0, 1.0))
        v = l2_normalise(weight.new_empty(width).normal_(0.0, 1.0))
        module.register_parameter("weight_u", nn.Parameter(u, requires_grad=False))
        module.register_parameter("weight_v", nn.Parameter(v, requires_grad=False))
        module.register_parameter("weight_bar", nn.Parameter(weight.clone()))

    def normalised_weight(self) -> torch.Tensor:
        """``weight_bar / sigma``; in train mode the stored u, v are first advanced by the power iteration."""
        layer = self.module
        w_bar: torch.Tensor = layer.weight_bar
        u: torch.Tensor = layer.weight_u
        v: torch.Tensor = layer.weight_v
        with torch.autocast(w_bar.device.type, enabled=False):
            matrix = w_bar.view(w_bar.shape[0], -1)
            if self.training:
                new_u, new_v = power_iteration(matrix.detach(), u.detach(), v.detach(), self.power_iterations)
                with torch.no_grad():
                    u.copy_(new_u)
                    v.copy_(new_v)
            sigma = u.dot(matrix.mv(v))
            return w_bar / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.module
        weight = self.normalised_weight()
        if isinstance(layer, nn.ConvTranspose2d):
            return F.conv_transpose2d(
                x, weight, layer.bias, layer.stride, layer.padding, layer.output_padding, layer.groups, layer.dilation
            )
        return layer._conv_forward(x, weight, layer.bias)
