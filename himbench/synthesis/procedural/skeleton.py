"""The body of a procedural figure: joint positions from its proportions and pose."""

from __future__ import annotations

import math
from dataclasses import dataclass

from himbench.synthesis.procedural.figure import Figure

__all__ = ["Skeleton", "skeleton"]


@dataclass(frozen=True)
class Skeleton:
    """Joint positions (x, y) in canvas pixels, per side (image left, image right) where there are two, and the body's
    half-widths and heights in pixels."""

    unit: float
    head: tuple[float, float]
    head_axes: tuple[float, float]
    chin: float
    shoulders: tuple[tuple[float, float], tuple[float, float]]
    elbows: tuple[tuple[float, float], tuple[float, float]]
    wrists: tuple[tuple[float, float], tuple[float, float]]
    hands: tuple[tuple[float, float], tuple[float, float]]
    hips: tuple[tuple[float, float], tuple[float, float]]
    knees: tuple[tuple[float, float], tuple[float, float]]
    ankles: tuple[tuple[float, float], tuple[float, float]]
    shoulder_half: float
    waist_half: float
    hip_half: float
    waist_y: float
    hip_y: float
    crotch_y: float
    k: float  # body length scale against a 7.5-heads figure


def skeleton(fig: Figure, unit: float, cx: float, top: float) -> Skeleton:
    """The joints of `fig` posed on the canvas: `unit` pixels per head, centred on column `cx`, the skull's top at row
    `top`."""
    u = unit
    k = (fig.heads_tall - 1.0) / 6.5
    b = fig.build
    head = (cx, top + 0.5 * u)
    head_axes = (u * (0.37 + 0.04 * (b - 1.0)), 0.5 * u)
    chin = top + u
    sh_y = chin + 0.42 * k * u
    sw = (0.76 if fig.feminine else 0.92) * u * math.sqrt(b) * (0.85 + 0.15 * k)
    ww = (0.52 if fig.feminine else 0.58) * u * b * (0.85 + 0.15 * k)
    hw = (0.68 if fig.feminine else 0.62) * u * b * (0.85 + 0.15 * k)
    waist_y = chin + 1.9 * k * u
    hip_y = chin + 2.7 * k * u
    crotch_y = chin + 3.0 * k * u
    shoulders, elbows, wrists, hands, hips, knees, ankles = [], [], [], [], [], [], []
    for side, (theta, phi), (alpha, beta, fore) in zip((-1, 1), fig.arm_angles, fig.leg_angles, strict=True):
        s = (cx + side * (sw - 0.12 * u), sh_y + 0.14 * u)
        e = (s[0] + side * math.sin(theta) * 1.35 * k * u, s[1] + math.cos(theta) * 1.35 * k * u)
        t2 = theta + phi
        w = (e[0] + side * math.sin(t2) * 1.15 * k * u, e[1] + math.cos(t2) * 1.15 * k * u)
        hand = (w[0] + side * math.sin(t2) * 0.42 * k * u, w[1] + math.cos(t2) * 0.42 * k * u)
        hip = (cx + side * (hw - 0.28 * u), hip_y)
        knee = (hip[0] + side * math.sin(alpha) * 1.85 * k * u * fore, hip[1] + math.cos(alpha) * 1.85 * k * u * fore)
        a2 = alpha + beta
        ankle = (knee[0] + side * math.sin(a2) * 1.75 * k * u, knee[1] + math.cos(a2) * 1.75 * k * u)
        shoulders.append(s)
        elbows.append(e)
        wrists.append(w)
        hands.append(hand)
        hips.append(hip)
        knees.append(knee)
        ankles.append(ankle)
    return Skeleton(
        unit=u,
        head=head,
        head_axes=head_axes,
        chin=chin,
        shoulders=tuple(shoulders),
        elbows=tuple(elbows),
        wrists=tuple(wrists),
        hands=tuple(hands),
        hips=tuple(hips),
        knees=tuple(knees),
        ankles=tuple(ankles),
        shoulder_half=sw,
        waist_half=ww,
        hip_half=hw,
        waist_y=waist_y,
        hip_y=hip_y,
        crotch_y=crotch_y,
        k=k,
    )
