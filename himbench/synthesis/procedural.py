"""Embedded procedural people: human-like cut-outs (RGB + alpha) that need no download.

Each figure is drawn from its index alone: a jointed body (head, neck, torso, arms, legs) with a skin tone, clothing
with a texture, a pose, and the soft structures that give a matte its unknown band: hair made of thousands of thin
anti-aliased strands, sheer fabric (scarf, veil, shawl, tulle) with partial opacity, and motion blur.

Everything is painted in premultiplied colour (colour * alpha) and un-premultiplied once at the end, so colours are
defined wherever alpha > 0 (no dark fringe); pixels with alpha = 0 get the colour of the nearest structure as well, so
a later resize of the foreground alone cannot pull black into the edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["procedural_person", "procedural_person_count"]

_SALT = 0x48494D50  # "HIMP": separates this stream from any other use of the same index as a seed
_POOL_SIZE = 64
_SUBPIXEL_BITS = 3  # cv2 drawing precision: coordinates in 1/8 pixel
_SUBPIXEL = 1 << _SUBPIXEL_BITS

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


# --------------------------------------------------------------------------------------------------------------------
# What a figure is: every random choice, sampled in one fixed order from the index's generator.


@dataclass(frozen=True)
class _Garment:
    kind: str  # texture kind: flat, stripes, checks, dots, heather
    colours: tuple[tuple[float, float, float], ...]
    period: float  # texture period in head units
    angle: float  # texture orientation, radians


@dataclass(frozen=True)
class _Figure:
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
    top: _Garment
    lower: _Garment
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


def _sample_garment(rng: np.random.Generator) -> _Garment:
    kind = str(rng.choice(["flat", "flat", "stripes", "checks", "dots", "heather"]))
    colours = tuple(_random_colour(rng) for _ in range(3))
    return _Garment(kind, colours, float(rng.uniform(0.08, 0.35)), float(rng.choice([0.0, math.pi / 2, math.pi / 4])))


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


def _sample_figure(rng: np.random.Generator) -> _Figure:
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
    return _Figure(
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


# --------------------------------------------------------------------------------------------------------------------
# Painting primitives: a premultiplied layer, anti-aliased masks, shading and texture fields.


class _Layer:
    """Premultiplied colour and alpha, painted back to front with the 'over' operator."""

    def __init__(self, height: int, width: int) -> None:
        self.p = np.zeros((height, width, 3), np.float32)
        self.a = np.zeros((height, width), np.float32)

    def paint(self, cov: np.ndarray, colour, box: tuple[int, int, int, int] | None = None) -> None:
        """Lay `colour` (RGB triple or HxWx3 field for the box) over the layer with box-sized coverage `cov`."""
        x0, y0, x1, y1 = box if box is not None else (0, 0, self.a.shape[1], self.a.shape[0])
        a = self.a[y0:y1, x0:x1]
        p = self.p[y0:y1, x0:x1]
        keep = 1.0 - cov
        colour = np.asarray(colour, np.float32)
        p *= keep[..., None]
        p += colour * cov[..., None]
        a *= keep
        a += cov

    def over(self, top: _Layer) -> None:
        self.p *= (1.0 - top.a)[..., None]
        self.p += top.p
        self.a *= 1.0 - top.a
        self.a += top.a


def _box_of(mask: np.ndarray, pad: int) -> tuple[int, int, int, int] | None:
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return None
    height, width = mask.shape
    return max(x - pad, 0), max(y - pad, 0), min(x + w + pad, width), min(y + h + pad, height)


def _fill(mask: np.ndarray, points: np.ndarray) -> None:
    """Anti-aliased filled polygon on a uint8 mask, at sub-pixel precision."""
    pts = np.round(np.asarray(points, np.float64) * _SUBPIXEL).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, _SUBPIXEL_BITS)


def _ellipse(mask: np.ndarray, centre, axes, angle_deg: float = 0.0, value: int = 255) -> None:
    c = (int(round(centre[0] * _SUBPIXEL)), int(round(centre[1] * _SUBPIXEL)))
    ax = (max(int(round(axes[0] * _SUBPIXEL)), 1), max(int(round(axes[1] * _SUBPIXEL)), 1))
    cv2.ellipse(mask, c, ax, angle_deg, 0, 360, value, -1, cv2.LINE_AA, _SUBPIXEL_BITS)


def _capsule_points(p0, p1, r0: float, r1: float, steps: int = 10) -> np.ndarray:
    """Outline of a tapered limb: half-discs of radius r0 at p0 and r1 at p1 joined by tangents."""
    p0 = np.asarray(p0, np.float64)
    p1 = np.asarray(p1, np.float64)
    d = p1 - p0
    base = math.atan2(d[1], d[0])
    t = np.linspace(-math.pi / 2, math.pi / 2, steps)
    end = p1 + r1 * np.stack([np.cos(base + t), np.sin(base + t)], 1)
    start = p0 + r0 * np.stack([np.cos(base + math.pi + t), np.sin(base + math.pi + t)], 1)
    return np.concatenate([end, start])


def _capsule(mask: np.ndarray, p0, p1, r0: float, r1: float) -> None:
    pts = np.round(_capsule_points(p0, p1, r0, r1) * _SUBPIXEL).astype(np.int32)
    cv2.fillConvexPoly(mask, pts, 255, cv2.LINE_AA, _SUBPIXEL_BITS)


def _chaikin(points: np.ndarray, rounds: int = 2, closed: bool = True) -> np.ndarray:
    """Corner-cutting smoothing, so body outlines have no hard polygon corners."""
    pts = np.asarray(points, np.float64)
    for _ in range(rounds):
        nxt = np.roll(pts, -1, axis=0) if closed else pts[1:]
        cur = pts if closed else pts[:-1]
        q = 0.75 * cur + 0.25 * nxt
        r = 0.25 * cur + 0.75 * nxt
        pts = np.stack([q, r], 1).reshape(-1, 2)
    return pts


def _value_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float, octaves: int = 3) -> np.ndarray:
    """Smooth multi-octave noise in about [-1, 1]: random grids upsampled bicubically."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        gh = max(int(h / cell) + 2, 2)
        gw = max(int(w / cell) + 2, 2)
        grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        cell = max(cell / 2, 1.0)
    return out / total


def _shading(cov: np.ndarray, radius: float, strength: float = 0.45) -> np.ndarray:
    """Rounded-volume shading: darker towards a part's silhouette, lit from the upper left."""
    sigma = max(radius * 0.45, 1.0)
    s = cv2.GaussianBlur(cov, (0, 0), sigma)
    gx = cv2.Sobel(s, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(s, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    light = (gx * 0.7 + gy * 0.7) * sigma * 0.9  # the gradient points inwards: the lit side faces the light
    shade = (1.0 - strength) + strength * np.sqrt(np.clip(s, 0, 1)) + light
    return np.clip(shade, 0.35, 1.2)


def _texture(g: _Garment, rng: np.random.Generator, box, unit: float) -> np.ndarray:
    """Clothing colour field over the box (x0, y0, x1, y1) in canvas coordinates, float RGB."""
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
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
        n = _value_noise(rng, (h, w), max(unit * 0.02, 1.5), 2)[..., None]
        field = c[0] * (1.0 + 0.25 * n)
    else:
        field = np.broadcast_to(c[0], (h, w, 3)).astype(np.float32)
    # fabric folds: low-frequency brightness waves
    folds = _value_noise(rng, (h, w), unit * 0.35, 2)
    return np.clip(field * (1.0 + 0.12 * folds)[..., None], 0, 255)


# --------------------------------------------------------------------------------------------------------------------
# The body: joints from the figure's proportions and pose.


@dataclass(frozen=True)
class _Skeleton:
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


def _skeleton(fig: _Figure, unit: float, cx: float, top: float) -> _Skeleton:
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
    return _Skeleton(
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


class _Painter:
    """Draws body parts onto a layer: masks are drawn full-size in uint8, composited inside their bounding box."""

    def __init__(self, layer: _Layer, unit: float, rng: np.random.Generator) -> None:
        self.layer = layer
        self.unit = unit
        self.rng = rng
        self.scratch = np.zeros(layer.a.shape, np.uint8)

    def part(
        self,
        draw,
        colour,
        shade_radius: float | None = None,
        opacity: float = 1.0,
        soften: float = 0.0,
        shade_strength: float = 0.45,
    ):
        """Paint one part: `draw(mask)` draws it; colour is an RGB triple or a callable box -> colour field."""
        self.scratch[:] = 0
        draw(self.scratch)
        pad = int(max(shade_radius or 0.0, soften) * 1.5) + 3
        box = _box_of(self.scratch, pad)
        if box is None:
            return None
        x0, y0, x1, y1 = box
        cov = self.scratch[y0:y1, x0:x1].astype(np.float32) * (1.0 / 255.0)
        if soften > 0:
            cov = cv2.GaussianBlur(cov, (0, 0), soften)
        col = colour(box) if callable(colour) else np.asarray(colour, np.float32)
        if shade_radius:
            col = col * _shading(cov, shade_radius, shade_strength)[..., None]
        self.layer.paint(cov * opacity, np.clip(col, 0, 255), box)
        return box


# --------------------------------------------------------------------------------------------------------------------
# Hair: strands simulated as polylines that fall under gravity and slide over the skull.


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


class _HairCanvas:
    """Strands drawn at twice the resolution (thin, anti-aliased) then reduced: real partial coverage per pixel."""

    SCALE = 2

    def __init__(self, box: tuple[int, int, int, int], base_colour) -> None:
        self.box = box
        x0, y0, x1, y1 = box
        h, w = (y1 - y0) * self.SCALE, (x1 - x0) * self.SCALE
        self.groups = [np.zeros((h, w), np.uint8) for _ in range(3)]
        self.colour = np.empty((h, w, 3), np.uint8)
        self.colour[:] = np.clip(np.asarray(base_colour), 0, 255).astype(np.uint8)

    def strands(self, rng: np.random.Generator, lines: np.ndarray, base_colour, thickness: int = 1) -> None:
        x0, y0 = self.box[0], self.box[1]
        pts = np.round((lines - (x0, y0)) * self.SCALE * _SUBPIXEL).astype(np.int32)
        group = rng.integers(0, 3, len(pts))
        base = np.asarray(base_colour, np.float64)
        for g, strength in zip(range(3), (255, 200, 150), strict=True):
            chosen = [pts[i] for i in np.flatnonzero(group == g)]
            if chosen:
                cv2.polylines(self.groups[g], chosen, False, strength, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)
        # a few colour families so strands read as individual hairs
        shades = rng.uniform(0.7, 1.35, 4)
        family = rng.integers(0, 4, len(pts))
        for f in range(4):
            chosen = [pts[i] for i in np.flatnonzero(family == f)]
            col = tuple(float(c) for c in np.clip(base * shades[f] + 6 * (shades[f] - 1), 0, 255))
            if chosen:
                cv2.polylines(self.colour, chosen, False, col, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)

    def paint(self, layer: _Layer) -> None:
        x0, y0, x1, y1 = self.box
        size = (x1 - x0, y1 - y0)
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


def _hair_strands(fig: _Figure, sk: _Skeleton, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
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


def _hair_cap(fig: _Figure, sk: _Skeleton, mask: np.ndarray) -> None:
    """The dense part of the hair on the skull (opaque); the face is cut out unless seen from behind."""
    head, axes = sk.head, sk.head_axes
    if fig.hair_style == "curly":
        centre = (head[0], head[1] - 0.18 * axes[1])
        _ellipse(mask, centre, (axes[0] * 1.3, axes[1] * 1.12))
    else:
        _ellipse(mask, (head[0], head[1] - axes[1] * 0.04), (axes[0] * 1.04, axes[1] * 1.02))
    if not fig.back_view:
        face = np.zeros_like(mask)
        _ellipse(face, (head[0], head[1] + axes[1] * 0.28), (axes[0] * 0.88, axes[1] * 0.86))
        cv2.subtract(mask, face, dst=mask)


# --------------------------------------------------------------------------------------------------------------------
# The figure, back to front.


def _draw_figure(fig: _Figure, unit: float) -> _Layer:
    rng = np.random.default_rng([fig.seed, _SALT])
    u = unit
    width = int(9.0 * u)
    height = int((fig.heads_tall + 3.2) * u)
    cx = width / 2
    sk = _skeleton(fig, u, cx, top=1.6 * u)
    layer = _Layer(height, width)
    main = _Painter(layer, u, rng)
    skin = np.asarray(fig.skin, np.float32)
    hair = np.asarray(fig.hair_colour, np.float32)

    def tex(g: _Garment):
        return lambda box: _texture(g, rng, box, u)

    top_tex = tex(fig.top)
    low_tex = top_tex if fig.bottom == "dress" else tex(fig.lower)
    back_strands, front_strands = _hair_strands(fig, sk, rng)
    strand_box = _strand_box(back_strands + front_strands, sk, width, height)

    # hair behind the body (long styles), with a dense core so there is no gap behind the neck
    if back_strands:
        # the dense core stops short of the tips and fades out, so the strands, not a hard edge, end the hair
        core = back_strands[0][:, : back_strands[0].shape[1] * 4 // 5].reshape(-1, 2)
        main.part(lambda m: _fill(m, _hull(core, 0.9)), hair * 0.85, soften=0.05 * u)
        hc = _HairCanvas(strand_box, hair * 0.9)
        for lines in back_strands:
            hc.strands(rng, lines, hair * 0.9)
        hc.paint(layer)

    def arm(target: _Painter, side: int) -> None:
        i = 0 if side < 0 else 1
        s, e, w, h = sk.shoulders[i], sk.elbows[i], sk.wrists[i], sk.hands[i]
        b = fig.build
        r_up, r_el, r_wr = 0.2 * u * b, 0.15 * u * b, 0.1 * u * math.sqrt(b)
        target.part(lambda m: _capsule(m, s, e, r_up, r_el), skin, r_up)
        target.part(lambda m: _capsule(m, e, w, r_el, r_wr), skin, r_el)
        target.part(lambda m: _capsule(m, w, h, r_wr * 1.3, r_wr * 1.15), skin * 0.97, r_wr)
        if fig.sleeves == "short":
            mid = (s[0] + (e[0] - s[0]) * 0.5, s[1] + (e[1] - s[1]) * 0.5)
            target.part(lambda m: _capsule(m, s, mid, r_up * 1.3, r_up * 1.25), top_tex, r_up)
        elif fig.sleeves == "long":
            cuff = (w[0] + (e[0] - w[0]) * 0.05, w[1] + (e[1] - w[1]) * 0.05)

            def sleeve(m):
                _capsule(m, s, e, r_up * 1.25, r_el * 1.3)
                _capsule(m, e, cuff, r_el * 1.3, r_wr * 1.5)

            target.part(sleeve, top_tex, r_up)

    def leg(target: _Painter, side: int) -> None:
        i = 0 if side < 0 else 1
        hp, kn, an = sk.hips[i], sk.knees[i], sk.ankles[i]
        b = fig.build
        r_th, r_kn, r_an = 0.34 * u * b, 0.21 * u * b, 0.125 * u * math.sqrt(b)
        top_of_thigh = (hp[0], hp[1] - 0.1 * u)
        target.part(lambda m: _capsule(m, top_of_thigh, kn, r_th, r_kn), skin, r_th)
        target.part(lambda m: _capsule(m, kn, an, r_kn, r_an), skin, r_kn)
        foot = (an[0] + side * 0.1 * u, an[1] + 0.14 * u)
        target.part(lambda m: _ellipse(m, foot, (0.2 * u, 0.13 * u)), fig.shoe_colour, 0.1 * u)
        if fig.bottom == "trousers":

            def trouser(m):
                _capsule(m, top_of_thigh, kn, r_th * 1.12, r_kn * 1.2)
                _capsule(m, kn, (an[0], an[1] - 0.04 * u), r_kn * 1.2, r_an * 1.45)

            target.part(trouser, low_tex, r_th)
        elif fig.bottom == "shorts":
            mid = (hp[0] + (kn[0] - hp[0]) * 0.6, hp[1] + (kn[1] - hp[1]) * 0.6)
            target.part(lambda m: _capsule(m, top_of_thigh, mid, r_th * 1.15, r_th * 1.05), low_tex, r_th)

    # legs and pelvis
    moving_leg = 0 if fig.leg_angles[0][2] < fig.leg_angles[1][2] else 1
    for side in (-1, 1):
        i = 0 if side < 0 else 1
        if fig.blur == "leg" and i == moving_leg:
            _blurred_part(layer, u, rng, fig, lambda p, s=side: leg(p, s))
        else:
            leg(main, side)
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
        main.part(lambda m: _fill(m, _chaikin(pelvis, 2)), low_tex, 0.4 * u)

    # torso (the top garment, or skin-toned neckline) and neck
    neck_r = 0.18 * u * math.sqrt(fig.build)
    main.part(
        lambda m: _capsule(m, (cx, sk.chin - 0.25 * u), (cx, sk.shoulders[0][1]), neck_r, neck_r * 1.1), skin, neck_r
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
    main.part(lambda m: _fill(m, _chaikin(torso, 3)), top_tex, 0.6 * u)
    # neckline: a little skin visible below the neck
    neckline = np.array([(cx - 0.28 * u, sh_y - 0.17 * u), (cx + 0.28 * u, sh_y - 0.17 * u), (cx, sh_y + 0.22 * u)])
    main.part(lambda m: _fill(m, _chaikin(neckline, 2)), skin * 0.93, 0.15 * u)

    if fig.bottom in ("skirt", "dress"):
        hem_y = sk.knees[0][1] + (sk.ankles[0][1] - sk.knees[0][1]) * fig.skirt_length * 0.85
        flare = hw * rng.uniform(1.15, 1.8)
        n_folds = int(rng.integers(4, 9))
        xs = np.linspace(cx + flare, cx - flare, 24)
        hem = np.stack([xs, hem_y + 0.06 * u * np.sin(np.linspace(0, n_folds * math.pi, 24))], 1)
        skirt = np.concatenate(
            [[(cx - ww, sk.waist_y), (cx + ww, sk.waist_y), (cx + hw, sk.hip_y)], hem, [(cx - hw, sk.hip_y)]]
        )
        main.part(lambda m: _fill(m, _chaikin(skirt, 2)), low_tex, 0.5 * u)

    # arms (in front of the torso), one perhaps motion-blurred
    for side in (-1, 1):
        i = 0 if side < 0 else 1
        if fig.blur == "arm" and i == (fig.seed % 2):
            _blurred_part(layer, u, rng, fig, lambda p, s=side: arm(p, s))
        else:
            arm(main, side)

    # head: ears, face, features
    head, axes = sk.head, sk.head_axes
    for side in (-1, 1):
        ear = (head[0] + side * axes[0] * 0.95, head[1] + axes[1] * 0.08)
        main.part(lambda m, e=ear: _ellipse(m, e, (0.09 * u, 0.16 * u)), skin * 0.9, 0.06 * u)
    main.part(lambda m: _ellipse(m, head, axes), skin, axes[0])
    if not fig.back_view:
        _face(main, fig, sk)

    # hair on the head
    cap_colour = hair
    main.part(lambda m: _hair_cap(fig, sk, m), cap_colour, 0.25 * u, shade_strength=0.2)
    hc = _HairCanvas(strand_box, hair)
    for lines in front_strands:
        hc.strands(rng, lines, hair)
    hc.paint(layer)

    if fig.sheer != "none":
        _sheer(main, fig, sk, rng)
    return layer


def _hull(points: np.ndarray, shrink: float) -> np.ndarray:
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    centre = hull.mean(0)
    return centre + (hull - centre) * shrink


def _strand_box(groups: list[np.ndarray], sk: _Skeleton, width: int, height: int) -> tuple[int, int, int, int]:
    pts = np.concatenate([g.reshape(-1, 2) for g in groups]) if groups else np.array([sk.head])
    pad = 4
    x0 = int(max(np.floor(pts[:, 0].min()) - pad, 0))
    y0 = int(max(np.floor(pts[:, 1].min()) - pad, 0))
    x1 = int(min(np.ceil(pts[:, 0].max()) + pad, width))
    y1 = int(min(np.ceil(pts[:, 1].max()) + pad, height))
    return x0, y0, x1, y1


def _face(p: _Painter, fig: _Figure, sk: _Skeleton) -> None:
    u = sk.unit
    head, axes = sk.head, sk.head_axes
    eye_y = head[1] + axes[1] * 0.08
    brow = np.asarray(fig.hair_colour, np.float32) * 0.8
    for side in (-1, 1):
        ex = head[0] + side * axes[0] * 0.4
        p.part(lambda m, x=ex: _ellipse(m, (x, eye_y), (0.06 * u, 0.03 * u)), (225, 220, 212))
        p.part(lambda m, x=ex: _ellipse(m, (x, eye_y), (0.028 * u, 0.028 * u)), (45, 35, 30))
        p.part(lambda m, x=ex, s=side: _ellipse(m, (x, eye_y - 0.1 * u), (0.09 * u, 0.022 * u), -s * 8), brow)
    nose = np.array(
        [(head[0], eye_y + 0.05 * u), (head[0] + 0.05 * u, eye_y + 0.22 * u), (head[0] - 0.05 * u, eye_y + 0.22 * u)]
    )
    p.part(lambda m: _fill(m, nose), np.asarray(fig.skin) * 0.88, opacity=0.6, soften=0.02 * u)
    lips = np.asarray(fig.skin) * np.array([0.8, 0.55, 0.55])
    p.part(lambda m: _ellipse(m, (head[0], eye_y + 0.34 * u), (0.11 * u, 0.035 * u)), lips, opacity=0.9)


def _blurred_part(layer: _Layer, unit: float, rng: np.random.Generator, fig: _Figure, draw) -> None:
    """Draw a part on its own layer, smear it along the motion direction (premultiplied), and lay it over."""
    part = _Layer(*layer.a.shape)
    draw(_Painter(part, unit, rng))
    _motion_blur(part, fig.blur_length * unit, fig.blur_angle)
    layer.over(part)


def _motion_blur(layer: _Layer, length: float, angle: float) -> None:
    size = max(int(round(length)) | 1, 3)
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(
        kernel,
        (int(round(c * 8 - dx * 8)), int(round(c * 8 - dy * 8))),
        (int(round(c * 8 + dx * 8)), int(round(c * 8 + dy * 8))),
        1.0,
        1,
        cv2.LINE_AA,
        3,
    )
    kernel /= kernel.sum()
    box = _box_of((layer.a > 0).astype(np.uint8), size)
    if box is None:
        return
    x0, y0, x1, y1 = box
    layer.p[y0:y1, x0:x1] = cv2.filter2D(layer.p[y0:y1, x0:x1], -1, kernel, borderType=cv2.BORDER_CONSTANT)
    layer.a[y0:y1, x0:x1] = cv2.filter2D(layer.a[y0:y1, x0:x1], -1, kernel, borderType=cv2.BORDER_CONSTANT)


def _sheer(p: _Painter, fig: _Figure, sk: _Skeleton, rng: np.random.Generator) -> None:
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
        p.part(lambda m: (_fill(m, _chaikin(band, 2)), _fill(m, tail)), col, 0.15 * u, op, soften=0.01 * u)
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
            _fill(m, _chaikin(veil, 2))
            if not fig.back_view:
                face = np.zeros_like(m)
                _ellipse(face, (cx, head[1] + axes[1] * 0.12), (axes[0] * 0.82, axes[1] * 0.9))
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
            p.part(lambda m, d=drape: _fill(m, _chaikin(d, 2)), col, 0.2 * u, op, soften=0.01 * u)
    else:  # tulle over a skirt: wider, longer, transparent
        hem_y = sk.knees[0][1] + u * rng.uniform(0.2, 1.2)
        flare = sk.hip_half * rng.uniform(1.8, 2.4)
        xs = np.linspace(cx + flare, cx - flare, 30)
        hem = np.stack([xs, hem_y + 0.1 * u * np.sin(np.linspace(0, 11 * math.pi, 30))], 1)
        tulle = np.concatenate([[(cx - sk.waist_half, sk.waist_y), (cx + sk.waist_half, sk.waist_y)], hem])
        p.part(lambda m: _fill(m, _chaikin(tulle, 2)), col, 0.3 * u, op * 0.8, soften=0.01 * u)


# --------------------------------------------------------------------------------------------------------------------
# Finishing: tilt, whole-body motion blur, tight crop, exact height, un-premultiply, colour fill under alpha = 0.


def _fill_colour_everywhere(p: np.ndarray, a: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Give alpha ~ 0 pixels the colour of nearby structure, by push-pull over an image pyramid.

    Going down, premultiplied colour and alpha are averaged; coming back up, a level keeps its own alpha-weighted
    colour (P / A) where it has any coverage and takes the coarser estimate elsewhere, so empty pixels inherit the
    colour of the nearest structure.
    """
    empty = a < 1.0 / 255.0
    if not empty.any():
        return fg
    levels = [(p, a)]
    while min(levels[-1][1].shape) > 2:
        lp, la = levels[-1]
        size = (max(la.shape[1] // 2, 1), max(la.shape[0] // 2, 1))
        levels.append(
            (cv2.resize(lp, size, interpolation=cv2.INTER_AREA), cv2.resize(la, size, interpolation=cv2.INTER_AREA))
        )
    mean = p.reshape(-1, 3).sum(0) / max(float(a.sum()), 1e-6)
    colour = np.broadcast_to(mean.astype(np.float32), levels[-1][0].shape)
    for lp, la in reversed(levels):
        up = cv2.resize(np.ascontiguousarray(colour), (la.shape[1], la.shape[0]), interpolation=cv2.INTER_LINEAR)
        covered = la > 1e-4
        colour = up
        colour[covered] = lp[covered] / la[covered][:, None]
    out = fg.copy()
    out[empty] = colour[empty]
    return out


def _finish(layer: _Layer, fig: _Figure, unit: float, height: int) -> tuple[np.ndarray, np.ndarray]:
    p, a = layer.p, layer.a
    if fig.blur == "body":
        _motion_blur(layer, fig.blur_length * unit * 0.6, fig.blur_angle)
    if abs(fig.lean) > 0.5:
        h, w = a.shape
        m = cv2.getRotationMatrix2D((w / 2, h * 0.85), fig.lean, 1.0)
        p = cv2.warpAffine(p, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        a = cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    a[a < 0.5 / 255.0] = 0.0  # below half an 8-bit step: would round to 0 anyway; keeps the crop tight
    box = _box_of((a > 0).astype(np.uint8), 0)
    if box is None:
        raise RuntimeError("procedural figure came out empty")
    x0, y0, x1, y1 = box
    p = p[y0:y1, x0:x1]
    a = a[y0:y1, x0:x1]
    margin = 3
    inner = height - 2 * margin
    scale = inner / a.shape[0]
    new_w = max(int(round(a.shape[1] * scale)), 1)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    p = cv2.resize(p, (new_w, inner), interpolation=interp)
    a = cv2.resize(a, (new_w, inner), interpolation=interp)
    p = cv2.copyMakeBorder(p, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=0)
    a = cv2.copyMakeBorder(a, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=0)
    a = np.clip(a, 0.0, 1.0)
    a[a < 0.5 / 255.0] = 0.0
    p = np.clip(p, 0.0, None)
    fg = p / np.maximum(a, 1e-6)[..., None]
    fg = _fill_colour_everywhere(p, a, fg)
    return np.clip(np.round(fg), 0, 255).astype(np.uint8), a.astype(np.float32)


def procedural_person_count() -> int:
    """How many figures the embedded default pool holds (indices 0 .. count - 1)."""
    return _POOL_SIZE


def procedural_person(index: int, height: int = 768) -> tuple[np.ndarray, np.ndarray]:
    """The procedural figure number `index`: (foreground RGB uint8 (h, w, 3), alpha float32 (h, w) in [0, 1]).

    Deterministic from `index` alone; any index >= 0 is valid (the default pool is 0 .. procedural_person_count()-1).
    The cut-out is cropped to alpha > 0 with a 3-pixel margin and is exactly `height` pixels tall. Colours are defined
    at every pixel, including where alpha = 0 (the colour of the nearest structure).
    """
    if index < 0:
        raise ValueError(f"procedural person index must be >= 0, got {index}")
    if height < 32:
        raise ValueError(f"procedural person height must be >= 32 pixels, got {height}")
    fig = _sample_figure(np.random.default_rng([int(index), _SALT]))
    # Draw a little larger than asked and reduce: smoother edges and thinner hairs.
    unit = height * 1.15 / (fig.heads_tall + 0.6)
    layer = _draw_figure(fig, unit)
    return _finish(layer, fig, unit, height)
