"""Drawing one procedural figure, back to front: hair behind the body, legs and pelvis, neck and torso, skirt, arms,
head and face, hair on the head, then sheer fabric (:func:`draw_figure`).

Each step is a function of the :class:`_Drawing` it adds to. The steps share one random generator and consume it in
this fixed order (textures consume it when their part is painted), so reordering steps or parts changes every figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from himbench.geometry import Box
from himbench.synthesis.procedural.clothing import sheer, texture
from himbench.synthesis.procedural.figure import SALT, Figure, Garment
from himbench.synthesis.procedural.hair import HairCanvas, hair_cap, hair_strands, strand_box
from himbench.synthesis.procedural.paint import (
    Painter,
    PaintLayer,
    capsule,
    chaikin,
    ellipse,
    fill,
    hull,
    motion_blur,
)
from himbench.synthesis.procedural.skeleton import Skeleton, skeleton

__all__ = ["draw_figure"]

ColourField = Callable[[Box], np.ndarray]  # a part's box -> its float RGB field (box height, box width, 3)


@dataclass(frozen=True, eq=False)
class _Drawing:
    """A figure being drawn: its spec and joints, the layer and the painter of the unblurred parts, and the colours
    the steps share."""

    fig: Figure
    sk: Skeleton
    rng: np.random.Generator
    layer: PaintLayer
    main: Painter
    skin: np.ndarray  # float32 RGB
    hair: np.ndarray  # float32 RGB
    top_tex: ColourField
    low_tex: ColourField

    @property
    def unit(self) -> float:
        """Pixels per head unit."""
        return self.sk.unit


def draw_figure(fig: Figure, unit: float) -> PaintLayer:
    """Draw `fig` at `unit` pixels per head on a canvas 9 heads wide and (heads_tall + 3.2) heads tall, with room
    for hair, raised arms and fabric around the body."""
    d = _start(fig, unit)
    back_strands, front_strands = hair_strands(fig, d.sk, d.rng)
    height, width = d.layer.a.shape
    box = strand_box(back_strands + front_strands, d.sk, width, height)
    _hair_behind(d, back_strands, box)
    _legs_and_pelvis(d)
    _neck_and_torso(d)
    if fig.bottom in ("skirt", "dress"):
        _skirt(d)
    _arms(d)
    _head(d)
    _hair_on_head(d, front_strands, box)
    if fig.sheer != "none":
        sheer(d.main, fig, d.sk, d.rng)
    return d.layer


def _start(fig: Figure, unit: float) -> _Drawing:
    rng = np.random.default_rng([fig.seed, SALT])
    width = int(9.0 * unit)
    height = int((fig.heads_tall + 3.2) * unit)
    sk = skeleton(fig, unit, width / 2, top=1.6 * unit)
    layer = PaintLayer(height, width)

    def tex(g: Garment) -> ColourField:
        return lambda box: texture(g, rng, box, unit)

    top_tex = tex(fig.top)
    low_tex = top_tex if fig.bottom == "dress" else tex(fig.lower)
    skin = np.asarray(fig.skin, np.float32)
    hair = np.asarray(fig.hair_colour, np.float32)
    return _Drawing(fig, sk, rng, layer, Painter(layer, unit, rng), skin, hair, top_tex, low_tex)


def _hair_behind(d: _Drawing, back_strands: list[np.ndarray], box: Box) -> None:
    """Hair behind the body (long styles), with a dense core so there is no gap behind the neck."""
    if not back_strands:
        return
    u = d.unit
    # the dense core stops short of the tips and fades out, so the strands, not a hard edge, end the hair
    core = back_strands[0][:, : back_strands[0].shape[1] * 4 // 5].reshape(-1, 2)
    d.main.part(lambda m: fill(m, hull(core, 0.9)), d.hair * 0.85, soften=0.05 * u)
    hc = HairCanvas(box, d.hair * 0.9)
    for lines in back_strands:
        hc.strands(d.rng, lines, d.hair * 0.9)
    hc.paint(d.layer)


def _blurred_part(d: _Drawing, draw: Callable[[Painter], None]) -> None:
    """Draw a part on its own layer, smear it along the motion direction (premultiplied), and lay it over."""
    part = PaintLayer(*d.layer.a.shape)
    draw(Painter(part, d.unit, d.rng))
    motion_blur(part, d.fig.blur_length * d.unit, d.fig.blur_angle)
    d.layer.over(part)


def _leg(d: _Drawing, target: Painter, side: int) -> None:
    """One leg (side -1: image left, 1: image right): thigh, shin, shoe, then trousers or shorts over them."""
    fig, sk, u, skin = d.fig, d.sk, d.unit, d.skin
    i = 0 if side < 0 else 1
    hp, kn, an = sk.hips[i], sk.knees[i], sk.ankles[i]
    b = fig.build
    r_th, r_kn, r_an = 0.34 * u * b, 0.21 * u * b, 0.125 * u * math.sqrt(b)
    top_of_thigh = (hp[0], hp[1] - 0.1 * u)
    target.part(lambda m: capsule(m, top_of_thigh, kn, r_th, r_kn), skin, r_th)
    target.part(lambda m: capsule(m, kn, an, r_kn, r_an), skin, r_kn)
    foot = (an[0] + side * 0.1 * u, an[1] + 0.14 * u)
    target.part(lambda m: ellipse(m, foot, (0.2 * u, 0.13 * u)), fig.shoe_colour, 0.1 * u)
    if fig.bottom == "trousers":

        def trouser(m):
            capsule(m, top_of_thigh, kn, r_th * 1.12, r_kn * 1.2)
            capsule(m, kn, (an[0], an[1] - 0.04 * u), r_kn * 1.2, r_an * 1.45)

        target.part(trouser, d.low_tex, r_th)
    elif fig.bottom == "shorts":
        mid = (hp[0] + (kn[0] - hp[0]) * 0.6, hp[1] + (kn[1] - hp[1]) * 0.6)
        target.part(lambda m: capsule(m, top_of_thigh, mid, r_th * 1.15, r_th * 1.05), d.low_tex, r_th)


def _legs_and_pelvis(d: _Drawing) -> None:
    """Both legs (the moving one motion-blurred when the figure says so), then the pelvis of trousers or shorts."""
    fig, sk, u = d.fig, d.sk, d.unit
    cx = sk.head[0]
    moving_leg = 0 if fig.leg_angles[0][2] < fig.leg_angles[1][2] else 1
    for side in (-1, 1):
        i = 0 if side < 0 else 1
        if fig.blur == "leg" and i == moving_leg:
            _blurred_part(d, lambda p, s=side: _leg(d, p, s))
        else:
            _leg(d, d.main, side)
    if fig.bottom in ("trousers", "shorts"):
        pelvis = np.array(
            [
                (cx - sk.waist_half, sk.waist_y),
                (cx + sk.waist_half, sk.waist_y),
                (cx + sk.hip_half, sk.hip_y),
                (sk.hips[1][0] + 0.2 * u, sk.crotch_y),
                (cx, sk.crotch_y + 0.05 * u),
                (sk.hips[0][0] - 0.2 * u, sk.crotch_y),
                (cx - sk.hip_half, sk.hip_y),
            ]
        )
        d.main.part(lambda m: fill(m, chaikin(pelvis, 2)), d.low_tex, 0.4 * u)


def _neck_and_torso(d: _Drawing) -> None:
    """The neck, the torso (the top garment) and a little skin visible below the neck."""
    fig, sk, u, main, skin = d.fig, d.sk, d.unit, d.main, d.skin
    cx = sk.head[0]
    neck_r = 0.18 * u * math.sqrt(fig.build)
    main.part(
        lambda m: capsule(m, (cx, sk.chin - 0.25 * u), (cx, sk.shoulders[0][1]), neck_r, neck_r * 1.1), skin, neck_r
    )
    sh_y = sk.shoulders[0][1] - 0.14 * u
    sw, ww, hw = sk.shoulder_half, sk.waist_half, sk.hip_half
    torso_bottom = sk.hip_y + 0.1 * u if fig.bottom in ("skirt", "dress") else sk.waist_y + 0.35 * u
    torso = np.array(
        [
            (cx - 0.3 * u, sh_y - 0.16 * u),
            (cx + 0.3 * u, sh_y - 0.16 * u),
            (cx + sw, sh_y + 0.05 * u),
            (cx + sw + 0.08 * u, sh_y + 0.35 * u),
            (cx + sw - 0.05 * u, sh_y + 0.95 * sk.k * u),
            (cx + ww, sk.waist_y),
            (cx + (ww + hw) / 2, torso_bottom),
            (cx - (ww + hw) / 2, torso_bottom),
            (cx - ww, sk.waist_y),
            (cx - sw + 0.05 * u, sh_y + 0.95 * sk.k * u),
            (cx - sw - 0.08 * u, sh_y + 0.35 * u),
            (cx - sw, sh_y + 0.05 * u),
        ]
    )
    main.part(lambda m: fill(m, chaikin(torso, 3)), d.top_tex, 0.6 * u)
    neckline = np.array([(cx - 0.28 * u, sh_y - 0.17 * u), (cx + 0.28 * u, sh_y - 0.17 * u), (cx, sh_y + 0.22 * u)])
    main.part(lambda m: fill(m, chaikin(neckline, 2)), skin * 0.93, 0.15 * u)


def _skirt(d: _Drawing) -> None:
    """A skirt (or a dress's lower part) from the waist, flared, with a wavy hem between knee and ankle."""
    fig, sk, u, rng = d.fig, d.sk, d.unit, d.rng
    cx = sk.head[0]
    ww, hw = sk.waist_half, sk.hip_half
    hem_y = sk.knees[0][1] + (sk.ankles[0][1] - sk.knees[0][1]) * fig.skirt_length * 0.85
    flare = hw * rng.uniform(1.15, 1.8)
    n_folds = int(rng.integers(4, 9))
    xs = np.linspace(cx + flare, cx - flare, 24)
    hem = np.stack([xs, hem_y + 0.06 * u * np.sin(np.linspace(0, n_folds * math.pi, 24))], 1)
    skirt = np.concatenate(
        [[(cx - ww, sk.waist_y), (cx + ww, sk.waist_y), (cx + hw, sk.hip_y)], hem, [(cx - hw, sk.hip_y)]]
    )
    d.main.part(lambda m: fill(m, chaikin(skirt, 2)), d.low_tex, 0.5 * u)


def _arm(d: _Drawing, target: Painter, side: int) -> None:
    """One arm (side -1: image left, 1: image right): upper arm, forearm, hand, then a short or long sleeve."""
    fig, sk, u, skin = d.fig, d.sk, d.unit, d.skin
    i = 0 if side < 0 else 1
    s, e, w, h = sk.shoulders[i], sk.elbows[i], sk.wrists[i], sk.hands[i]
    b = fig.build
    r_up, r_el, r_wr = 0.2 * u * b, 0.15 * u * b, 0.1 * u * math.sqrt(b)
    target.part(lambda m: capsule(m, s, e, r_up, r_el), skin, r_up)
    target.part(lambda m: capsule(m, e, w, r_el, r_wr), skin, r_el)
    target.part(lambda m: capsule(m, w, h, r_wr * 1.3, r_wr * 1.15), skin * 0.97, r_wr)
    if fig.sleeves == "short":
        mid = (s[0] + (e[0] - s[0]) * 0.5, s[1] + (e[1] - s[1]) * 0.5)
        target.part(lambda m: capsule(m, s, mid, r_up * 1.3, r_up * 1.25), d.top_tex, r_up)
    elif fig.sleeves == "long":
        cuff = (w[0] + (e[0] - w[0]) * 0.05, w[1] + (e[1] - w[1]) * 0.05)

        def sleeve(m):
            capsule(m, s, e, r_up * 1.25, r_el * 1.3)
            capsule(m, e, cuff, r_el * 1.3, r_wr * 1.5)

        target.part(sleeve, d.top_tex, r_up)


def _arms(d: _Drawing) -> None:
    """Both arms, in front of the torso; one perhaps motion-blurred."""
    for side in (-1, 1):
        i = 0 if side < 0 else 1
        if d.fig.blur == "arm" and i == (d.fig.seed % 2):
            _blurred_part(d, lambda p, s=side: _arm(d, p, s))
        else:
            _arm(d, d.main, side)


def _head(d: _Drawing) -> None:
    """Ears, the head, and the face unless the figure is seen from behind."""
    u, sk, skin = d.unit, d.sk, d.skin
    head, axes = sk.head, sk.head_axes
    for side in (-1, 1):
        ear = (head[0] + side * axes[0] * 0.95, head[1] + axes[1] * 0.08)
        d.main.part(lambda m, e=ear: ellipse(m, e, (0.09 * u, 0.16 * u)), skin * 0.9, 0.06 * u)
    d.main.part(lambda m: ellipse(m, head, axes), skin, axes[0])
    if not d.fig.back_view:
        _face(d.main, d.fig, sk)


def _face(p: Painter, fig: Figure, sk: Skeleton) -> None:
    """Eyes, brows, nose and lips."""
    u = sk.unit
    head, axes = sk.head, sk.head_axes
    eye_y = head[1] + axes[1] * 0.08
    brow = np.asarray(fig.hair_colour, np.float32) * 0.8
    for side in (-1, 1):
        ex = head[0] + side * axes[0] * 0.4
        p.part(lambda m, x=ex: ellipse(m, (x, eye_y), (0.06 * u, 0.03 * u)), (225, 220, 212))
        p.part(lambda m, x=ex: ellipse(m, (x, eye_y), (0.028 * u, 0.028 * u)), (45, 35, 30))
        p.part(lambda m, x=ex, s=side: ellipse(m, (x, eye_y - 0.1 * u), (0.09 * u, 0.022 * u), -s * 8), brow)
    nose = np.array(
        [(head[0], eye_y + 0.05 * u), (head[0] + 0.05 * u, eye_y + 0.22 * u), (head[0] - 0.05 * u, eye_y + 0.22 * u)]
    )
    p.part(lambda m: fill(m, nose), np.asarray(fig.skin) * 0.88, opacity=0.6, soften=0.02 * u)
    lips = np.asarray(fig.skin) * np.array([0.8, 0.55, 0.55])
    p.part(lambda m: ellipse(m, (head[0], eye_y + 0.34 * u), (0.11 * u, 0.035 * u)), lips, opacity=0.9)


def _hair_on_head(d: _Drawing, front_strands: list[np.ndarray], box: Box) -> None:
    """The opaque hair cap on the skull, then the front strands over it."""
    d.main.part(lambda m: hair_cap(d.fig, d.sk, m), d.hair, 0.25 * d.unit, shade_strength=0.2)
    hc = HairCanvas(box, d.hair)
    for lines in front_strands:
        hc.strands(d.rng, lines, d.hair)
    hc.paint(d.layer)
