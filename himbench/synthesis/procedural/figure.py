"""What a procedural figure is: body proportions, skin and hair, clothing, pose, sheer fabric and motion blur, every
choice sampled from the figure index's generator in one fixed order (:func:`sample_figure`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["SALT", "Figure", "Garment", "sample_figure"]

SALT = 0x48494D50  # "HIMP": separates this stream from any other use of the same index as a seed

# Skin tones (RGB) from very light to very dark; a figure interpolates between two neighbours.
_SKIN_TONES = np.array(
    [
        (255, 226, 208),
        (244, 206, 182),
        (232, 188, 156),
        (214, 164, 128),
        (192, 138, 100),
        (163, 108, 76),
        (128, 82, 56),
        (98, 62, 43),
        (72, 46, 33),
    ],
    np.float32,
)

_HAIR_COLOURS = np.array(
    [
        (22, 18, 16),  # black
        (40, 28, 22),
        (66, 44, 31),  # dark brown
        (101, 68, 44),
        (142, 100, 62),  # light brown
        (196, 160, 104),  # dark blonde
        (226, 200, 146),  # blonde
        (128, 52, 28),  # auburn
        (168, 164, 158),  # grey
    ],
    np.float32,
)


@dataclass(frozen=True)
class Garment:
    """A piece of clothing's look: a texture of up to three colours (RGB, 0-255)."""

    kind: str  # texture kind: flat, stripes, checks, dots, heather
    colours: tuple[tuple[float, float, float], ...]
    period: float  # texture period in head units
    angle: float  # texture orientation, radians


@dataclass(frozen=True)
class Figure:
    """Everything that makes one figure what it is; lengths are in head units, colours RGB 0-255."""

    heads_tall: float
    build: float
    feminine: bool
    skin: tuple[float, float, float]
    hair_style: str  # short, bob, long, curly, bun
    hair_colour: tuple[float, float, float]
    back_view: bool
    fringe: bool
    sleeves: str  # none, short, long
    bottom: str  # trousers, shorts, skirt, dress
    top: Garment
    lower: Garment
    shoe_colour: tuple[float, float, float]
    skirt_length: float  # 0 = knee, 1 = ankle
    arm_angles: tuple[tuple[float, float], tuple[float, float]]  # (shoulder, elbow) per side, radians
    leg_angles: tuple[tuple[float, float, float], tuple[float, float, float]]  # (hip, knee, thigh foreshortening)
    lean: float  # whole-figure tilt, degrees
    sheer: str  # none, scarf, veil, shawl, tulle
    sheer_colour: tuple[float, float, float]
    sheer_opacity: float
    blur: str  # none, arm, leg, body
    blur_length: float  # head units
    blur_angle: float  # radians
    seed: int  # for the strand-level randomness (hair, fabric waves)


def _random_colour(rng: np.random.Generator, dark_ok: bool = True) -> tuple[float, float, float]:
    """A plausible clothing colour: mostly muted, sometimes vivid, sometimes black / white / denim."""
    pick = rng.random()
    if pick < 0.12:
        base = rng.choice(np.array([(28, 28, 32), (235, 235, 230), (40, 52, 90), (70, 95, 140), (120, 120, 118)]))
        return tuple(float(c) for c in base)
    hue = rng.uniform(0, 180)
    sat = rng.uniform(0.1, 0.55) if pick < 0.7 else rng.uniform(0.55, 0.95)
    val = rng.uniform(0.15 if dark_ok else 0.4, 0.95)
    hsv = np.array([[[hue, sat * 255, val * 255]]], np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(float(c) for c in rgb)


def _sample_garment(rng: np.random.Generator) -> Garment:
    kind = str(rng.choice(["flat", "flat", "stripes", "checks", "dots", "heather"]))
    colours = tuple(_random_colour(rng) for _ in range(3))
    return Garment(kind, colours, float(rng.uniform(0.08, 0.35)), float(rng.choice([0.0, math.pi / 2, math.pi / 4])))


def _sample_arm(rng: np.random.Generator, pose: str) -> tuple[float, float]:
    deg = math.radians
    if pose == "down":
        return deg(rng.uniform(4, 22)), deg(rng.uniform(-25, 15))
    if pose == "akimbo":
        return deg(rng.uniform(32, 48)), deg(rng.uniform(-135, -105))
    if pose == "raised":
        return deg(rng.uniform(120, 165)), deg(rng.uniform(-20, 20))
    if pose == "out":
        return deg(rng.uniform(55, 100)), deg(rng.uniform(-35, 35))
    return deg(rng.uniform(60, 95)), deg(rng.uniform(75, 110))  # wave: forearm up


def _sample_leg(rng: np.random.Generator, pose: str) -> tuple[float, float, float]:
    deg = math.radians
    if pose == "stand":
        return deg(rng.uniform(1, 7)), deg(rng.uniform(-6, 2)), 1.0
    if pose == "wide":
        return deg(rng.uniform(10, 22)), deg(rng.uniform(-8, 4)), 1.0
    if pose == "step":
        return deg(rng.uniform(4, 14)), deg(rng.uniform(-30, -12)), float(rng.uniform(0.8, 0.95))
    return deg(rng.uniform(5, 25)), deg(rng.uniform(-35, 5)), float(rng.uniform(0.45, 0.65))  # lifted knee


def sample_figure(rng: np.random.Generator) -> Figure:
    """Every random choice of one figure, drawn from ``rng`` in one fixed order (any change of that order changes
    every figure, and so every dataset built from them)."""
    feminine = bool(rng.random() < 0.5)
    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    lo = int(tone)
    hi = min(lo + 1, len(_SKIN_TONES) - 1)
    skin = _SKIN_TONES[lo] * (1 - (tone - lo)) + _SKIN_TONES[hi] * (tone - lo)
    skin = np.clip(skin * rng.uniform(0.95, 1.05, 3), 0, 255)
    styles = (
        ["long", "long", "bob", "curly", "bun", "short"] if feminine else ["short", "short", "curly", "bob", "long"]
    )
    hair_style = str(rng.choice(styles))
    if rng.random() < 0.08:
        hair_colour = tuple(float(c) for c in _random_colour(rng, dark_ok=False))
    else:
        hair_colour = tuple(float(c) for c in _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))])
    bottoms = ["trousers", "skirt", "dress", "shorts"] if feminine else ["trousers", "trousers", "shorts"]
    bottom = str(rng.choice(bottoms))
    arm_poses = ["down", "down", "akimbo", "raised", "out", "wave"]
    left_pose = str(rng.choice(arm_poses))
    right_pose = left_pose if rng.random() < 0.35 else str(rng.choice(arm_poses))
    leg_poses = ["stand", "stand", "wide", "step", "lift"]
    left_leg = str(rng.choice(leg_poses))
    right_leg = "stand" if left_leg in ("step", "lift") else str(rng.choice(["stand", "wide"]))
    legs = [_sample_leg(rng, left_leg), _sample_leg(rng, right_leg)]
    if rng.random() < 0.5:  # the moving leg is on either side
        legs.reverse()
    sheer = str(rng.choice(["none", "none", "scarf", "veil", "shawl", "tulle"]))
    if sheer == "tulle" and bottom not in ("skirt", "dress"):
        sheer = "scarf"
    blur = str(rng.choice(["none", "none", "none", "arm", "leg", "body"]))
    return Figure(
        heads_tall=float(rng.uniform(6.3, 8.0)),
        build=float(rng.uniform(0.85, 1.25)),
        feminine=feminine,
        skin=tuple(float(c) for c in skin),
        hair_style=hair_style,
        hair_colour=hair_colour,
        back_view=bool(rng.random() < 0.12),
        fringe=bool(rng.random() < 0.45),
        sleeves=str(rng.choice(["none", "short", "short", "long", "long"])),
        bottom=bottom,
        top=_sample_garment(rng),
        lower=_sample_garment(rng),
        shoe_colour=_random_colour(rng),
        skirt_length=float(rng.uniform(0, 1)),
        arm_angles=(_sample_arm(rng, left_pose), _sample_arm(rng, right_pose)),
        leg_angles=(legs[0], legs[1]),
        lean=float(rng.uniform(-6, 6)),
        sheer=sheer,
        sheer_colour=_random_colour(rng, dark_ok=False),
        sheer_opacity=float(rng.uniform(0.3, 0.7)),
        blur=blur,
        blur_length=float(rng.uniform(0.12, 0.45)),
        blur_angle=float(rng.uniform(0, math.pi)),
        seed=int(rng.integers(2**31)),
    )
