"""Temporal smoothing of per-frame mattes: an exponential moving average over frames, optionally flow-compensated.

An image method run frame by frame flickers: each frame's matte is solved on its own, so small per-frame errors
change from frame to frame, which dtSSD and MESSDdt measure (:mod:`himbench.metrics.temporal`). This is the
simplest post-processing that trades per-frame accuracy for consistency, so a table can show what consistency
costs:

    s_0 = a_0,    s_t = a_t + w * (W_t(s_{t-1}) - a_t)   (i.e. (1 - w) a_t + w W_t(s_{t-1}))

for each person's alpha ``a_t``, with ``w = strength`` in [0, 1). ``W_t`` is the identity (plain EMA) or, when the
RGB frames are given, the person's own motion from frame t-1 to t: the affine motion that
:func:`himbench.mask_tracking.person_motion` fits to Farneback flow on the frames inside the person (its smoothed
matte >= 0.5), applied to the whole matte, so a moving person is averaged with itself rather than with the place it
just left. (Warping each pixel along the flow instead smears the outline, because the flow is blurred across motion
boundaries: on the tests' moving person it doubled dtSSD instead of lowering it.) No motion, no resampling: a person
whose fitted motion is the identity is averaged with its previous matte as it is.

What it trades: flicker falls roughly by a factor ``(1 - w) / (1 + w)`` in variance for independent per-frame noise,
but the average is causal, so it *lags*. Without flow a moving edge is smeared over about ``1 / (1 - w)`` frames of
motion: per-frame error (MAD, Grad) rises, and so does dtSSD, since the smear changes every frame. With the frames
given, the fitted motion removes most of that lag, and adds resampling blur where the person's motion is not a
similarity (limbs). Measured in ``tests/test_video_methods.py`` (a flickering matte, noise sd 0.15, w = 0.6): a still
person's dtSSD falls from 3.32 to 1.13 (plain); a person moving 3 px per frame goes from 3.25 to 2.28 with flow and
to 9.31 without. ``strength = 0`` returns the input unchanged. A prediction that does not change over time is
returned unchanged by the plain average (the update adds ``w * 0``), exactly, and by the flow-compensated one on
still frames.

A pure function of arrays, no state.
"""

from __future__ import annotations

import cv2
import numpy as np

from himbench.mask_tracking import frame_flow, person_motion

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
            previous = _moved(previous, frame_flow(frames[t - 1], frames[t]))
        out[t] = alphas[t] + weight * (previous - alphas[t])
    return np.clip(out, 0.0, 1.0, out=out)


_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _moved(previous: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Each person's matte of ``previous`` (N, H, W) moved by its own fitted motion along ``flow``."""
    height, width = previous.shape[1:]
    moved = previous.copy()
    for k, matte in enumerate(previous):
        motion = person_motion(matte >= 0.5, flow)
        if motion is None or np.allclose(motion, _IDENTITY, rtol=0.0, atol=1e-4):
            continue  # nobody to move, or no motion: keep the matte unresampled
        # edge fill: a pixel whose source lies outside the frame keeps the nearest edge's history
        moved[k] = cv2.warpAffine(matte, motion, (width, height), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return moved
