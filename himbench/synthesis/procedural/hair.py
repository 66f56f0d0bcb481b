"""Hair of the procedural figures: strands simulated as polylines that fall under gravity and slide over the skull,
drawn thin at twice the resolution (:class:`HairCanvas`), over an opaque cap on the skull (:func:`hair_cap`)."""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import ArrayLike

from himbench.geometry import Box
from himbench.synthesis.procedural.figure import Figure
from himbench.synthesis.procedural.paint import SUBPIXEL, SUBPIXEL_BITS, PaintLayer, ellipse
from himbench.synthesis.procedural.skeleton import Skeleton

__all__ = ["HairCanvas", "hair_cap", "hair_strands", "strand_box"]


def _simulate_strands(
    rng: np.random.Generator,
    roots: np.ndarray,
    direction: np.ndarray,
    length: np.ndarray,
    steps: int,
    gravity: float,
    jitter: float,
    head: tuple[float, float],
    axes: tuple[float, float],
    collide: float,
    curl: float = 0.0,
) -> np.ndarray:
    """Polylines (n, steps + 1, 2): each strand steps along its direction, bends down, and is kept off the skull."""
    n = len(roots)
    pts = np.empty((n, steps + 1, 2), np.float64)
    pts[:, 0] = roots
    p = roots.astype(np.float64).copy()
    d = direction / np.linalg.norm(direction, axis=1, keepdims=True)
    step = (length / steps)[:, None]
    centre = np.asarray(head, np.float64)
    radii = np.asarray(axes, np.float64) * collide
    phase = rng.uniform(0, 2 * math.pi, n)
    wobble = rng.normal(0, 1, (n, 2)) * jitter
    for i in range(1, steps + 1):
        d = d + np.array([0.0, gravity]) + wobble * 0.3 + rng.normal(0, jitter, (n, 2))
        if curl:
            ang = phase + i * curl
            d = d + 0.9 * np.stack([np.cos(ang), np.sin(ang)], 1)
        d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
        p = p + d * step
        if collide > 0:
            q = (p - centre) / radii
            r = np.linalg.norm(q, axis=1)
            inside = r < 1.0
            if inside.any():
                q_in = q[inside] / (r[inside, None] + 1e-9)
                p[inside] = centre + q_in * radii
                # slide along the skull: drop the inward part of the direction
                normal = q_in / radii
                normal /= np.linalg.norm(normal, axis=1, keepdims=True)
                inward = np.minimum((d[inside] * normal).sum(1), 0.0)
                d[inside] = d[inside] - inward[:, None] * normal
        pts[:, i] = p
    return pts


class HairCanvas:
    """Strands drawn at twice the resolution (thin, anti-aliased) then reduced: real partial coverage per pixel.
    Covers `box` of the figure's canvas; strands outside it are cut off."""

    SCALE = 2

    def __init__(self, box: Box, base_colour: ArrayLike) -> None:
        self.box = box
        h, w = box.height * self.SCALE, box.width * self.SCALE
        self.groups = [np.zeros((h, w), np.uint8) for _ in range(3)]
        self.colour = np.empty((h, w, 3), np.uint8)
        self.colour[:] = np.clip(np.asarray(base_colour), 0, 255).astype(np.uint8)

    def strands(
        self, rng: np.random.Generator, lines: np.ndarray, base_colour: ArrayLike, thickness: int = 1
    ) -> None:
        """Draw polylines `lines` (n, points, 2) in canvas pixels, each in one of three strengths and four shades of
        `base_colour` (RGB)."""
        pts = np.round((lines - (self.box.x0, self.box.y0)) * self.SCALE * SUBPIXEL).astype(np.int32)
        group = rng.integers(0, 3, len(pts))
        base = np.asarray(base_colour, np.float64)
        for g, strength in zip(range(3), (255, 200, 150), strict=True):
            chosen = [pts[i] for i in np.flatnonzero(group == g)]
            if chosen:
                cv2.polylines(self.groups[g], chosen, False, strength, thickness, cv2.LINE_AA, SUBPIXEL_BITS)
        # a few colour families so strands read as individual hairs
        shades = rng.uniform(0.7, 1.35, 4)
        family = rng.integers(0, 4, len(pts))
        for f in range(4):
            chosen = [pts[i] for i in np.flatnonzero(family == f)]
            col = tuple(float(c) for c in np.clip(base * shades[f] + 6 * (shades[f] - 1), 0, 255))
            if chosen:
                cv2.polylines(self.colour, chosen, False, col, thickness, cv2.LINE_AA, SUBPIXEL_BITS)

    def paint(self, layer: PaintLayer) -> None:
        """Reduce the strands to the layer's resolution and lay them over it."""
        size = (self.box.width, self.box.height)
        keep = np.ones(size[::-1], np.float32)
        for g in self.groups:
            keep *= 1.0 - cv2.resize(g, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        colour = cv2.resize(self.colour, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        layer.paint(1.0 - keep, colour, self.box)


def _scalp_roots(rng, n, head, axes, spread_deg, shrink=(0.82, 1.0), part_offset=0.0):
    """Root points on the top of the skull, within +-spread of the crown; returns roots and their outward normals."""
    ang = np.radians(-90 + part_offset + rng.uniform(-spread_deg, spread_deg, n))
    rad = rng.uniform(*shrink, n)
    roots = np.stack([head[0] + axes[0] * rad * np.cos(ang), head[1] + axes[1] * rad * np.sin(ang)], 1)
    normals = np.stack([np.cos(ang) / axes[0], np.sin(ang) / axes[1]], 1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return roots, normals, ang


def hair_strands(fig: Figure, sk: Skeleton, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Strand polylines (canvas coordinates) for the back layer (behind the body) and the front layer."""
    u = sk.unit
    head, axes = sk.head, sk.head_axes
    back: list[np.ndarray] = []
    front: list[np.ndarray] = []
    style = fig.hair_style
    part = rng.uniform(-25, 25)
    length_u = 0.0  # how far the hair falls below the skull, in head units
    bun = np.asarray(head, np.float64)
    if style in ("long", "bob"):
        length_u = rng.uniform(2.0, 3.6) * sk.k if style == "long" else rng.uniform(0.9, 1.4)
        n = 1100 if style == "long" else 800
        roots, normals, ang = _scalp_roots(rng, n, head, axes, 112, (0.85, 0.98), part)
        # comb away from the parting, then fall
        side = np.sign(np.cos(ang) + 1e-6)[:, None]
        tangent = np.stack([side[:, 0], np.zeros(n)], 1)
        direction = normals * 0.25 + tangent * 0.35
        length = u * length_u * rng.uniform(0.75, 1.05, n)
        front.append(_simulate_strands(rng, roots, direction, length, 22, 0.3, 0.035, head, axes, 1.05))
        # the back curtain: from the back of the skull, behind the neck and shoulders
        roots_b, normals_b, ang_b = _scalp_roots(rng, n // 2, head, axes, 100, (0.9, 1.0), 0)
        side_b = np.sign(np.cos(ang_b) + 1e-6)
        direction_b = normals_b * 0.25 + np.stack([side_b * 0.3, np.zeros(n // 2)], 1)
        length_b = u * length_u * rng.uniform(0.8, 1.05, n // 2)
        back.append(_simulate_strands(rng, roots_b, direction_b, length_b, 18, 0.35, 0.04, head, axes, 1.03))
    elif style == "curly":
        n = 1300
        centre = (head[0], head[1] - 0.18 * axes[1])
        vol = (axes[0] * rng.uniform(1.35, 1.7), axes[1] * rng.uniform(1.15, 1.4))
        ang = rng.uniform(-math.pi * 1.15, math.pi * 0.15, n)
        rad = rng.uniform(0.55, 0.95, n)
        roots = np.stack([centre[0] + vol[0] * rad * np.cos(ang), centre[1] + vol[1] * rad * np.sin(ang)], 1)
        direction = np.stack([np.cos(ang), np.sin(ang)], 1)
        length = u * rng.uniform(0.25, 0.5, n)
        front.append(_simulate_strands(rng, roots, direction, length, 16, 0.02, 0.1, head, axes, 0.0, curl=0.9))
    elif style == "bun":
        roots, normals, ang = _scalp_roots(rng, 700, head, axes, 100, (0.85, 0.98), 0)
        # combed up and back towards the bun on the crown
        bun = np.array([head[0] + rng.uniform(-0.2, 0.2) * axes[0], head[1] - axes[1] * 1.05])
        direction = bun - roots
        length = np.linalg.norm(direction, axis=1) * rng.uniform(0.8, 1.0, len(roots))
        front.append(_simulate_strands(rng, roots, direction, length, 10, -0.02, 0.03, head, axes, 1.03))
        # the bun: hair coiled round and round, densest in the middle
        t0 = rng.uniform(0, 2 * math.pi, (600, 1))
        sweep = t0 + np.linspace(0, 1.6 * math.pi, 16)
        rr = u * rng.uniform(0.2, 0.3) * np.sqrt(rng.uniform(0.05, 1.0, (600, 1)))
        loops = np.stack([bun[0] + rr * np.cos(sweep), bun[1] + rr * 0.8 * np.sin(sweep)], 2)
        front.append(loops + rng.normal(0, u * 0.01, (600, 1, 2)))
    else:  # short: strands radiating from the scalp, combed to one side
        n = 1000
        roots, normals, ang = _scalp_roots(rng, n, head, axes, 105, (0.8, 0.98), part)
        # lying on the skull: along the surface, away from the parting, barely lifted
        tangent = np.stack([-normals[:, 1], normals[:, 0]], 1)
        away = np.sign(roots[:, 0] - head[0] - axes[0] * math.sin(math.radians(part)) + 1e-6)
        flip = np.sign((tangent * np.stack([away, np.full(n, 0.6)], 1)).sum(1) + 1e-6)
        direction = tangent * flip[:, None] + normals * 0.15
        length = u * rng.uniform(0.15, 0.38, n)
        front.append(_simulate_strands(rng, roots, direction, length, 8, 0.04, 0.08, head, axes, 1.03))
    if fig.back_view and style != "curly":
        # seen from behind: hair covers the whole back of the head, falling from all over the scalp
        n = 700
        t = rng.uniform(0, 2 * math.pi, n)
        r = np.sqrt(rng.uniform(0, 1, n)) * 0.95
        roots = np.stack([head[0] + axes[0] * r * np.cos(t), head[1] + axes[1] * r * np.sin(t)], 1)
        nape = head[1] + axes[1] * 0.9
        if style == "bun":
            direction = bun - roots
            length = np.linalg.norm(direction, axis=1)
        else:
            direction = np.stack([(roots[:, 0] - head[0]) / axes[0] * 0.3, np.ones(n)], 1)
            extra = length_u * u if style in ("long", "bob") else 0.05 * u
            length = np.maximum(nape - roots[:, 1], 0.05 * u) + extra * rng.uniform(0.8, 1.0, n)
        front.append(_simulate_strands(rng, roots, direction, length, 14, 0.1, 0.03, head, axes, 0.0))
    if fig.fringe and not fig.back_view and style != "curly":
        n = 260
        ang = np.radians(-90 + rng.uniform(-55, 55, n))
        roots = np.stack([head[0] + axes[0] * 0.8 * np.cos(ang), head[1] + axes[1] * 0.85 * np.sin(ang)], 1)
        direction = np.stack([np.cos(ang) * 0.3 + rng.choice([-0.3, 0.3]), np.ones(n)], 1)
        length = u * rng.uniform(0.3, 0.5, n)
        front.append(_simulate_strands(rng, roots, direction, length, 8, 0.1, 0.05, head, axes, 0.0))
    # fly-away hairs: long, light, spreading out of the silhouette
    n = int(rng.integers(8, 30))
    roots, normals, ang = _scalp_roots(rng, n, head, axes, 115, (0.95, 1.0), 0)
    length = u * rng.uniform(0.2, 0.6, n)
    front.append(_simulate_strands(rng, roots, normals, length, 12, 0.12, 0.08, head, axes, 1.05))
    return back, front


def hair_cap(fig: Figure, sk: Skeleton, mask: np.ndarray) -> None:
    """The dense part of the hair on the skull (opaque); the face is cut out unless seen from behind."""
    head, axes = sk.head, sk.head_axes
    if fig.hair_style == "curly":
        centre = (head[0], head[1] - 0.18 * axes[1])
        ellipse(mask, centre, (axes[0] * 1.3, axes[1] * 1.12))
    else:
        ellipse(mask, (head[0], head[1] - axes[1] * 0.04), (axes[0] * 1.04, axes[1] * 1.02))
    if not fig.back_view:
        face = np.zeros_like(mask)
        ellipse(face, (head[0], head[1] + axes[1] * 0.28), (axes[0] * 0.88, axes[1] * 0.86))
        cv2.subtract(mask, face, dst=mask)


def strand_box(groups: list[np.ndarray], sk: Skeleton, width: int, height: int) -> Box:
    """The box of a figure's canvas (`width` x `height` pixels) holding every strand point, plus 4 pixels."""
    pts = np.concatenate([g.reshape(-1, 2) for g in groups]) if groups else np.array([sk.head])
    pad = 4
    x0 = int(max(np.floor(pts[:, 0].min()) - pad, 0))
    y0 = int(max(np.floor(pts[:, 1].min()) - pad, 0))
    x1 = int(min(np.ceil(pts[:, 0].max()) + pad, width))
    y1 = int(min(np.ceil(pts[:, 1].max()) + pad, height))
    return Box(x0, y0, x1, y1)
