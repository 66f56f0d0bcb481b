"""Clothing of the procedural figures: the colour fields of garments (flat, stripes, checks, dots, heather, with
fabric folds) and the semi-transparent sheer fabrics (scarf, veil, shawl, tulle)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from himbench.geometry import Box
from himbench.synthesis.procedural.figure import Figure, Garment
from himbench.synthesis.procedural.paint import Painter, chaikin, ellipse, fill, value_noise
from himbench.synthesis.procedural.skeleton import Skeleton

__all__ = ["sheer", "texture"]


def texture(g: Garment, rng: np.random.Generator, box: Box, unit: float) -> np.ndarray:
    """Clothing colour field over a box of the canvas: float32 RGB (0-255) of shape (box height, box width, 3).
    `unit` is the head height in pixels; some kinds consume `rng` (stripe duty, heather noise, folds)."""
    h, w = box.shape
    ys, xs = np.mgrid[box.slices].astype(np.float32)
    c = [np.asarray(col, np.float32) for col in g.colours]
    period = max(g.period * unit, 4.0)
    along = xs * math.cos(g.angle) + ys * math.sin(g.angle)
    across = -xs * math.sin(g.angle) + ys * math.cos(g.angle)

    def band(coord: np.ndarray, duty: float = 0.5) -> np.ndarray:
        # anti-aliased square wave in [0, 1]
        phase = np.mod(coord / period, 1.0)
        edge = 1.0 / period
        return np.clip((duty - np.abs(phase - 0.5) * 2 * duty) / max(edge, 1e-3) + 0.5, 0, 1)

    if g.kind == "stripes":
        t = band(across, rng.uniform(0.3, 0.7))[..., None]
        field = c[0] * (1 - t) + c[1] * t
    elif g.kind == "checks":
        t1 = band(along)[..., None]
        t2 = band(across)[..., None]
        field = c[0] * (1 - t1) * (1 - t2) + c[1] * (t1 + t2 - 2 * t1 * t2) + c[2] * t1 * t2
        field = field * 0.8 + c[0] * 0.2
    elif g.kind == "dots":
        fx = np.mod(along / period, 1.0) - 0.5
        fy = np.mod(across / period, 1.0) - 0.5
        r = np.sqrt(fx * fx + fy * fy) * period
        t = np.clip(period * 0.22 - r + 0.5, 0, 1)[..., None]
        field = c[0] * (1 - t) + c[1] * t
    elif g.kind == "heather":
        n = value_noise(rng, (h, w), max(unit * 0.02, 1.5), 2)[..., None]
        field = c[0] * (1.0 + 0.25 * n)
    else:
        field = np.broadcast_to(c[0], (h, w, 3)).astype(np.float32)
    # fabric folds: low-frequency brightness waves
    folds = value_noise(rng, (h, w), unit * 0.35, 2)
    return np.clip(field * (1.0 + 0.12 * folds)[..., None], 0, 255)


def sheer(p: Painter, fig: Figure, sk: Skeleton, rng: np.random.Generator) -> None:
    """Semi-transparent fabric (alpha about 0.3-0.7) that reaches beyond the body's silhouette."""
    u = sk.unit
    cx = sk.head[0]
    col = np.asarray(fig.sheer_colour, np.float32)
    op = fig.sheer_opacity
    if fig.sheer == "scarf":
        side = rng.choice([-1.0, 1.0])
        y = sk.chin + 0.15 * u
        band = np.array(
            [
                (cx - 0.35 * u, y - 0.12 * u),
                (cx + 0.35 * u, y - 0.12 * u),
                (cx + 0.42 * u, y + 0.18 * u),
                (cx - 0.42 * u, y + 0.18 * u),
            ]
        )
        # the loose end flutters out sideways, waving
        t = np.linspace(0, 1, 20)
        length = u * rng.uniform(1.8, 3.0)
        wave = 0.2 * u * np.sin(t * rng.uniform(4, 8) + rng.uniform(0, 6))
        spine = np.stack([cx + side * (0.3 * u + t * length), y + t * length * rng.uniform(0.2, 0.9) + wave], 1)
        half = (0.18 + 0.1 * t) * u
        tail = np.concatenate([spine + np.stack([0 * half, -half], 1), (spine + np.stack([0 * half, half], 1))[::-1]])
        p.part(lambda m: (fill(m, chaikin(band, 2)), fill(m, tail)), col, 0.15 * u, op, soften=0.01 * u)
    elif fig.sheer == "veil":
        # a chiffon veil over the hair, framing the face and falling over the shoulders
        head, axes = sk.head, sk.head_axes
        hem_y = sk.shoulders[0][1] + u * rng.uniform(0.6, 1.8)
        xs = np.linspace(cx + sk.shoulder_half * 1.2, cx - sk.shoulder_half * 1.2, 20)
        hem = np.stack([xs, hem_y + 0.08 * u * np.sin(np.linspace(0, 7 * math.pi, 20))], 1)
        t = np.linspace(math.pi * 1.1, math.pi * 1.9, 12)
        crown = np.stack([cx + axes[0] * 1.25 * np.cos(t), head[1] + axes[1] * 1.15 * np.sin(t)], 1)
        right = [(cx + axes[0] * 1.35, head[1] + axes[1] * 0.3)]
        left = [(cx - axes[0] * 1.35, head[1] + axes[1] * 0.3)]
        veil = np.concatenate([crown, right, hem, left])

        def draw_veil(m):
            fill(m, chaikin(veil, 2))
            if not fig.back_view:
                face = np.zeros_like(m)
                ellipse(face, (cx, head[1] + axes[1] * 0.12), (axes[0] * 0.82, axes[1] * 0.9))
                cv2.subtract(m, face, dst=m)

        p.part(draw_veil, col, 0.3 * u, op * 0.8, soften=0.01 * u)
    elif fig.sheer == "shawl":
        for i in range(2):
            s, e, w = sk.shoulders[i], sk.elbows[i], sk.wrists[i]
            side = -1 if i == 0 else 1
            drape = np.array(
                [
                    (s[0] - side * 0.3 * u, s[1] - 0.15 * u),
                    (s[0] + side * 0.25 * u, s[1]),
                    (e[0] + side * 0.35 * u, e[1] + 0.2 * u),
                    (w[0] + side * 0.2 * u, w[1] + 0.4 * u),
                    (w[0] - side * 0.2 * u, w[1] + 0.3 * u),
                    (e[0] - side * 0.25 * u, e[1]),
                    (s[0] - side * 0.5 * u, s[1] + 1.2 * u),
                ]
            )
            p.part(lambda m, d=drape: fill(m, chaikin(d, 2)), col, 0.2 * u, op, soften=0.01 * u)
    else:  # tulle over a skirt: wider, longer, transparent
        hem_y = sk.knees[0][1] + u * rng.uniform(0.2, 1.2)
        flare = sk.hip_half * rng.uniform(1.8, 2.4)
        xs = np.linspace(cx + flare, cx - flare, 30)
        hem = np.stack([xs, hem_y + 0.1 * u * np.sin(np.linspace(0, 11 * math.pi, 30))], 1)
        tulle = np.concatenate([[(cx - sk.waist_half, sk.waist_y), (cx + sk.waist_half, sk.waist_y)], hem])
        p.part(lambda m: fill(m, chaikin(tulle, 2)), col, 0.3 * u, op * 0.8, soften=0.01 * u)
