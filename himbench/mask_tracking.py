"""A simple mask tracker: first-frame masks carried through a clip by dense optical flow on the frames.

Mask-guided methods need a mask per person in every frame. On video they get the first frame's masks (the
ground truth binarised at 0.5: an oracle, as MaGGIe's own first-frame protocol is) and this tracker carries them
forward; or masks read from disk (:mod:`himbench.video_layout`, e.g. the ``xmem`` folder).

**How it tracks.** For each frame pair (t-1, t) it computes dense Farneback flow (OpenCV, already a dependency) on
the grey-level *RGB frames* from frame t-1 to frame t, fits one similarity motion (scale, rotation, translation)
per person to the flow at that person's interior pixels (its mask eroded by :data:`INTERIOR_MARGIN`; least squares
with one refit that drops the worst-fitting points; :func:`person_motion`), and moves the person's mask by it
(:func:`cv2.warpAffine`, bilinear, empty outside the frame). A pixel then belongs to the person whose moved value
is largest there, if that value is at least 0.5, so masks stay disjoint as the ground truth's are.

Why a fitted motion rather than warping each pixel along the flow: Farneback smooths the flow across motion
boundaries, so at a person's outline it is a blend of the person's and the background's motion, and a mask warped
pixel by pixel lags behind the person a little every frame (on a person moving 3 px per frame, IoU fell to 0.63
after 5 frames; the fitted motion kept 1.0). The price: a deforming person (swinging legs) is followed only in its
overall motion (translation, scale, rotation); a full affine fit was tried and rejected, since on a small person
its two extra degrees of freedom fit the flow's noise (scale errors of 1-2% per frame) and the mask drifted.

Why this tracker: it needs no learned weights and no extra dependency, it is a pure function of the frames (the
same frames give the same masks), and identity is kept by construction (mask k of frame t is warped from mask k of
frame t-1, never re-assigned). What it trades: motion errors accumulate (a mask drifts slowly off a fast or
deforming person, and a person hidden behind another loses the hidden part for good), and a person absent from the
first frame is never tracked. ``reanchor``: the caller may pass the method's own alphas of frame t-1 as the masks to
warp (thresholded at 0.5), so a matting method that follows the true outline pulls the track back to it; a poor
method can instead make the track shrink or leak, so it is off by default in :mod:`himbench.predictions.video_writer`.

Everything here works on arrays; :func:`frame_flow` and :func:`warp_backward` (per-pixel backward warping) are
shared with :mod:`himbench.temporal_smoothing`.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "FLOW_PARAMS",
    "MASK_THRESHOLD",
    "INTERIOR_MARGIN",
    "frame_flow",
    "person_motion",
    "propagate_masks",
    "track_step",
    "warp_backward",
]

# Farneback settings (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags): a small window (9 px)
# so that the flow inside a small person is not averaged with the background's, 3 pyramid levels for motions of
# up to ~20 px per frame. Chosen on the tests' clips and a 192x128 synthetic build (see docs/video_methods.md).
FLOW_PARAMS: tuple = (0.5, 3, 9, 5, 5, 1.1, 0)
MASK_THRESHOLD = 0.5  # a warped soft mask counts as the person from this value on (as guidance binarises mattes)
# Flow within this many pixels of a person's outline is not used to fit its motion: Farneback smooths the flow
# across motion boundaries, so there it is a blend of the person's motion and the background's.
INTERIOR_MARGIN = 3


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


def _fit(points: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Least-squares similarity (scale, rotation, translation) as a (2, 3) matrix with ``moved ~ M @ [x, y, 1]``:
    four numbers, so a small person's noisy flow cannot shear or stretch its mask; a translation when the points
    are too few or all one point."""
    x, y = points[:, 0], points[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    # x' = a x - b y + tx,  y' = b x + a y + ty
    design = np.concatenate([np.stack([x, -y, ones, zeros], 1), np.stack([y, x, zeros, ones], 1)])
    target = np.concatenate([moved[:, 0], moved[:, 1]])
    if len(points) >= 3 and np.linalg.matrix_rank(design) == 4:
        (a, b, tx, ty), *_ = np.linalg.lstsq(design, target, rcond=None)
        return np.array([[a, -b, tx], [b, a, ty]])
    shift = np.median(moved - points, axis=0)
    return np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])


def person_motion(mask: np.ndarray, flow: np.ndarray, *, margin: int = INTERIOR_MARGIN) -> np.ndarray | None:
    """The motion (2, 3), a similarity, of one person from the frame of ``mask`` (H, W bool) to the next, fitted to the
    forward ``flow`` (H, W, 2) at the person's interior pixels (the mask eroded by ``margin``, or the whole mask
    when that leaves nothing). One refit drops the points that fit worst (flow outliers). None for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    if margin > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        inner = cv2.erode(mask.astype(np.uint8), kernel, borderValue=0) > 0
        if inner.sum() >= 6:
            mask = inner
    rows, cols = np.nonzero(mask)
    points = np.stack([cols, rows], axis=1).astype(np.float64)
    moved = points + flow[rows, cols].astype(np.float64)
    motion = _fit(points, moved)
    residual = np.linalg.norm(points @ motion[:, :2].T + motion[:, 2] - moved, axis=1)
    keep = residual <= 2.0 * np.median(residual) + 0.5
    if 6 <= keep.sum() < len(points):
        motion = _fit(points[keep], moved[keep])
    return motion


def track_step(
    previous_frame: np.ndarray,
    frame: np.ndarray,
    previous_masks: np.ndarray,
    *,
    threshold: float = MASK_THRESHOLD,
) -> np.ndarray:
    """Masks (N, H, W) bool of ``frame``: each of ``previous_masks`` (N, H, W; bool, or soft values such as the
    method's own alphas when re-anchoring) of ``previous_frame`` moved by its :func:`person_motion` along the flow
    between the two frames."""
    previous_masks = np.asarray(previous_masks, dtype=np.float32)
    height, width = frame.shape[:2]
    if len(previous_masks) == 0:
        return np.zeros((0, height, width), dtype=bool)
    flow = frame_flow(previous_frame, frame)
    soft = np.zeros_like(previous_masks)
    for k, mask in enumerate(previous_masks):
        motion = person_motion(mask >= threshold, flow)
        if motion is not None:
            soft[k] = cv2.warpAffine(mask, motion.astype(np.float64), (width, height), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
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
