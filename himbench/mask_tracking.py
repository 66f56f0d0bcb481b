"""A simple mask tracker: first-frame masks carried through a clip by dense optical flow on the frames.

Mask-guided methods need a mask per person in every frame. On video they get the first frame's masks (the
ground truth binarised at 0.5: an oracle, as MaGGIe's own first-frame protocol is) and this tracker carries them
forward; or masks read from disk (:mod:`himbench.video_layout`, e.g. the ``xmem`` folder).

**How it tracks.** For each frame pair (t-1, t) it computes dense Farneback flow (OpenCV, already a dependency) on
the grey-level *RGB frames* from frame t back to frame t-1, and pulls every person's soft mask of frame t-1 along it
(backward warping with :func:`cv2.remap`, bilinear, empty outside the frame): pixel p of frame t takes the value of
``p + flow(p)`` in frame t-1. A pixel then belongs to the person whose warped value is largest there, if that value
is at least 0.5, so masks stay disjoint as the ground truth's are.

Why this tracker: it needs no learned weights and no extra dependency, it is a pure function of the frames (the
same frames give the same masks), and identity is kept by construction (mask k of frame t is warped from mask k of
frame t-1, never re-assigned). What it trades: flow errors accumulate (a mask drifts slowly off a fast or
deforming person, and a person hidden behind another loses the hidden part for good), and a person absent from the
first frame is never tracked. ``reanchor``: the caller may pass the method's own alphas of frame t-1 as the masks to
warp (thresholded at 0.5), so a matting method that follows the true outline pulls the track back to it; a poor
method can instead make the track shrink or leak, so it is off by default in :mod:`himbench.predictions.video_writer`.

Everything here works on arrays; :func:`frame_flow` and :func:`warp_backward` are shared with
:mod:`himbench.temporal_smoothing`.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "FLOW_PARAMS",
    "MASK_THRESHOLD",
    "frame_flow",
    "propagate_masks",
    "track_step",
    "warp_backward",
]

# Farneback settings (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags): OpenCV's documented
# example values, with 4 levels so that motions of tens of pixels per frame are still found.
FLOW_PARAMS: tuple = (0.5, 4, 15, 3, 5, 1.2, 0)
MASK_THRESHOLD = 0.5  # a warped soft mask counts as the person from this value on (as guidance binarises mattes)


def _grey(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def frame_flow(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2) float32 (dx, dy) from ``frame`` to ``reference`` (both uint8 (H, W, 3) RGB): pixel p of
    ``frame`` is seen at ``p + flow(p)`` in ``reference``. Farneback on the grey frames with :data:`FLOW_PARAMS`."""
    grey, ref = _grey(frame), _grey(reference)
    if grey.shape != ref.shape:
        raise ValueError(f"frames differ in size: {grey.shape} and {ref.shape}")
    return cv2.calcOpticalFlowFarneback(grey, ref, None, *FLOW_PARAMS)


def warp_backward(maps: np.ndarray, flow: np.ndarray, *, fill: str = "zero") -> np.ndarray:
    """``maps`` (N, H, W) of the reference frame pulled onto the frame that ``flow`` (H, W, 2, from
    :func:`frame_flow`) starts from: ``out[k](p) = maps[k](p + flow(p))``, bilinear. Outside the frame the value is
    0 (``fill="zero"``: a person does not come back from outside the picture) or the nearest edge value
    (``fill="edge"``). float32."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got {maps.shape}")
    height, width = maps.shape[1:]
    if flow.shape != (height, width, 2):
        raise ValueError(f"flow must be ({height}, {width}, 2), got {flow.shape}")
    grid_x = (np.arange(width, dtype=np.float32)[None, :] + flow[..., 0]).astype(np.float32)
    grid_y = (np.arange(height, dtype=np.float32)[:, None] + flow[..., 1]).astype(np.float32)
    border = cv2.BORDER_CONSTANT if fill == "zero" else cv2.BORDER_REPLICATE
    out = np.empty_like(maps)
    for k, single in enumerate(maps):
        out[k] = cv2.remap(single, grid_x, grid_y, cv2.INTER_LINEAR, borderMode=border, borderValue=0.0)
    return out


def _exclusive(soft: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean masks: each pixel goes to the person with the largest value there, if it reaches ``threshold``."""
    if len(soft) == 0:
        return np.zeros(soft.shape, dtype=bool)
    best = soft.argmax(axis=0)
    owner = np.arange(len(soft))[:, None, None] == best[None]
    return owner & (soft >= threshold)


def track_step(
    previous_frame: np.ndarray,
    frame: np.ndarray,
    previous_masks: np.ndarray,
    *,
    threshold: float = MASK_THRESHOLD,
) -> np.ndarray:
    """Masks (N, H, W) bool of ``frame``: ``previous_masks`` (N, H, W; bool, or soft values such as the method's
    own alphas when re-anchoring) of ``previous_frame`` warped along the flow between the two frames."""
    previous_masks = np.asarray(previous_masks)
    if len(previous_masks) == 0:
        return np.zeros((0, *frame.shape[:2]), dtype=bool)
    soft = warp_backward(previous_masks.astype(np.float32), frame_flow(frame, previous_frame))
    return _exclusive(soft, threshold)


def propagate_masks(frames: np.ndarray, first_masks: np.ndarray, *, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """Carry ``first_masks`` (N, H, W) of frame 0 through ``frames`` (T, H, W, 3) uint8; returns (N, T, H, W) bool
    with frame 0 equal to ``first_masks`` binarised at ``threshold``. Person k stays index k in every frame."""
    frames = np.asarray(frames)
    first = np.asarray(first_masks)
    if frames.ndim != 4 or first.ndim != 3 or first.shape[1:] != frames.shape[1:3]:
        raise ValueError(f"need frames (T, H, W, 3) and masks (N, H, W) of one size, got {frames.shape} and "
                         f"{first.shape}")
    out = np.zeros((len(first), len(frames), *frames.shape[1:3]), dtype=bool)
    if len(frames) == 0:
        return out
    out[:, 0] = first.astype(np.float32) >= threshold
    for t in range(1, len(frames)):
        out[:, t] = track_step(frames[t - 1], frames[t], out[:, t - 1], threshold=threshold)
    return out
