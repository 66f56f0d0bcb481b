"""Temporal smoothing of per-frame mattes: an exponential moving average over frames, optionally flow-compensated.

An image method run frame by frame flickers: each frame's matte is solved on its own, so small per-frame errors
change from frame to frame, which dtSSD and MESSDdt measure (:mod:`himbench.metrics.temporal`). This is the
simplest post-processing that trades per-frame accuracy for consistency, so a table can show what consistency
costs:

    s_0 = a_0,    s_t = a_t + w * (W_t(s_{t-1}) - a_t)   (i.e. (1 - w) a_t + w W_t(s_{t-1}))

for each person's alpha ``a_t``, with ``w = strength`` in [0, 1). ``W_t`` is the identity (plain EMA) or, when the
RGB frames are given, the backward warp of frame t-1 onto frame t along Farneback flow on the frames
(:func:`himbench.mask_tracking.frame_flow`), so a moving person is averaged with itself rather than with the place it
just left.

What it trades: flicker falls roughly by a factor ``(1 - w) / (1 + w)`` in variance for independent per-frame noise,
but the average is causal, so it *lags*: without flow, a moving edge is smeared over about ``1 / (1 - w)`` frames of
motion and the per-frame error (MAD, Grad) rises; flow compensation removes most of that lag where the flow is right
and adds warping blur where it is not. ``strength = 0`` returns the input unchanged. A prediction that does not
change over time is returned unchanged by the plain average (the update adds ``w * 0``), exactly.

A pure function of arrays, no state.
"""

from __future__ import annotations

import numpy as np

from himbench.mask_tracking import frame_flow, warp_backward

__all__ = ["smooth_alphas"]


def smooth_alphas(alphas: np.ndarray, strength: float, *, frames: np.ndarray | None = None) -> np.ndarray:
    """Smooth ``alphas`` (T, N, H, W) in [0, 1] over time with strength ``w`` in [0, 1); ``frames`` (T, H, W, 3)
    uint8 RGB switches on flow compensation. Returns a new float32 (T, N, H, W) array in [0, 1]."""
    alphas = np.asarray(alphas, dtype=np.float32)
    if alphas.ndim != 4:
        raise ValueError(f"alphas must be (T, N, H, W), got {alphas.shape}")
    strength = float(strength)
    if not 0.0 <= strength < 1.0:  # w = 1 would freeze the first frame for ever; NaN fails too
        raise ValueError(f"smoothing strength must be in [0, 1), got {strength}")
    if frames is not None:
        frames = np.asarray(frames)
        if frames.shape != (alphas.shape[0], *alphas.shape[2:], 3):
            raise ValueError(f"frames must be (T, H, W, 3) = {(alphas.shape[0], *alphas.shape[2:], 3)}, got "
                             f"{frames.shape}")
    out = alphas.copy()
    if strength == 0.0 or len(alphas) < 2 or alphas.shape[1] == 0:
        return out
    weight = np.float32(strength)
    for t in range(1, len(alphas)):
        previous = out[t - 1]
        if frames is not None:
            # edge fill: a pixel whose source lies outside the frame keeps the nearest edge's history
            previous = warp_backward(previous, frame_flow(frames[t], frames[t - 1]), fill="edge")
        out[t] = alphas[t] + weight * (previous - alphas[t])
    return np.clip(out, 0.0, 1.0, out=out)
