"""The deterministic stand-in weights of the interop vectors (tests/data/interop/README.md, "Weight rule").

The authors' public inference code was run with these weights to make the reference outputs; a re-implementation
loaded with the same weights must reproduce them.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch

__all__ = [
    "e2ehim_official_summary",
    "INTEROP",
    "e2ehim_pipeline_weights",
    "load_manifest",
    "mgm_rule_state_dict",
    "rule_state_dict",
    "rule_tensor",
]

INTEROP = Path(__file__).resolve().parent / "data" / "interop"

_INTEGER_BUFFERS = ("relative_position_index", "num_batches_tracked")


def load_manifest(path: str | Path) -> list[tuple[str, tuple[int, ...], str]]:
    """``[(key, shape, dtype)]`` in the authors' order, from a ``*_state_dict.json`` manifest."""
    record = json.loads(Path(path).read_text())
    return [(key, tuple(shape), dtype) for key, shape, dtype in record["keys"]]


def rule_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The stand-in value of floating-point tensor ``key``: crc32-seeded normal numbers, scaled by the rule."""
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    t = torch.randn(shape, generator=generator, dtype=torch.float32)
    if len(shape) >= 2:
        return t / math.sqrt(math.prod(shape[1:]))
    if len(shape) == 1 and key.endswith("running_var"):
        return 1 + 0.1 * t.abs()
    if len(shape) == 1 and key.endswith("weight"):
        return 1 + 0.1 * t
    return 0.1 * t


def rule_state_dict(reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``reference`` (a model's own ``state_dict()``) with every floating-point tensor replaced by the rule; integer
    buffers (relative_position_index, num_batches_tracked) keep the values the architecture built."""
    out = {}
    for key, value in reference.items():
        if value.is_floating_point():
            out[key] = rule_tensor(key, tuple(value.shape))
        else:
            out[key] = value.clone()
    return out


def e2ehim_pipeline_weights(rule: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """E2E-HIM: the README's three edits for the pipeline vectors: every query a person, all trimap classes present."""
    state = {key: value.clone() for key, value in rule.items()}
    state["globalfcnum.layers.1.bias"] = torch.tensor([-2.0, 2.0])
    weight, bias = state["globalfc2.layers.2.weight"], state["globalfc2.layers.2.bias"]
    weight[0:768] *= 0.05
    weight[771:835] *= 0.2
    bias[768:771] = torch.tensor([0.0, 0.1, 1.0])
    bias[-1] = 0.5
    return state


def _l2_normalise(vector: torch.Tensor) -> torch.Tensor:
    return vector / (vector.norm() + 1e-12)  # the authors' l2normalize: eps added to the norm


def mgm_rule_state_dict(reference: dict[str, torch.Tensor], iterations: int = 20) -> dict[str, torch.Tensor]:
    """MGMatting: :func:`rule_state_dict`, with each spectral norm's ``weight_u``/``weight_v`` made by the README's
    power iteration from ``weight_bar`` (v = ones/|ones|; ``iterations`` x (u = n(W v); v = n(W^T u)); u = n(W v);
    W = weight_bar as (out, -1)). Written out here, independently of baselines.spectral_norm."""
    state = rule_state_dict(reference)
    for key in [k for k in state if k.endswith(".weight_bar")]:
        matrix = state[key].reshape(state[key].shape[0], -1)
        v = _l2_normalise(torch.ones(matrix.shape[1]))
        for _ in range(iterations):
            u = _l2_normalise(matrix @ v)
            v = _l2_normalise(matrix.t() @ u)
        stem = key[: -len("bar")]
        state[stem + "u"], state[stem + "v"] = _l2_normalise(matrix @ v), v
    return state


def e2ehim_official_summary(logits: torch.Tensor, alpha: torch.Tensor, trimap: torch.Tensor) -> dict[str, torch.Tensor]:
    """The arrays of ``e2ehim_official_vectors.npz`` from one image's forward outputs (batch index 0): what the
    authors' run recorded, so a comparison reads the same numbers on any device and precision."""
    import torch.nn.functional as F

    alpha, trimap = alpha[0].float(), trimap[0].float()
    return {
        "person_logits": logits[0].float(),
        "alpha_pooled8": F.avg_pool2d(alpha, 8),
        "alpha_crop": alpha[:, 300:332, 300:332],
        "alpha_mean": alpha.mean((1, 2)),
        "trimap_logits_pooled8": F.avg_pool2d(trimap, 8),
        "trimap_crop": trimap[:, 300:332, 300:332],
        "trimap_mean": trimap.mean((1, 2)),
        "trimap_std": trimap.std((1, 2)),
    }
