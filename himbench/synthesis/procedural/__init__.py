"""Embedded procedural people: human-like cut-outs (RGB + alpha) that need no download.

Each figure is drawn from its index alone: a jointed body (head, neck, torso, arms, legs) with a skin tone, clothing
with a texture, a pose, and the soft structures that give a matte its unknown band: hair made of thousands of thin
anti-aliased strands, sheer fabric (scarf, veil, shawl, tulle) with partial opacity, and motion blur.

Everything is painted in premultiplied colour (colour * alpha) and un-premultiplied once at the end, so colours are
defined wherever alpha > 0 (no dark fringe); pixels with alpha = 0 get the colour of the nearest structure as well, so
a later resize of the foreground alone cannot pull black into the edges.

The public entry points are here; the modules of the package, in the order a figure is made:

- :mod:`.figure`: what a figure is, every random choice sampled in one fixed order;
- :mod:`.skeleton`: the joints from its proportions and pose;
- :mod:`.paint`: painting primitives (premultiplied layer, anti-aliased shapes, shading, motion blur);
- :mod:`.clothing` and :mod:`.hair`: garment textures and sheer fabric; hair strands and the hair cap;
- :mod:`.body`: the figure drawn back to front;
- :mod:`.finish`: tilt, crop, exact height, un-premultiply.
"""

from __future__ import annotations

import numpy as np

from himbench.synthesis.procedural.body import draw_figure
from himbench.synthesis.procedural.figure import SALT, sample_figure
from himbench.synthesis.procedural.finish import finish

__all__ = ["procedural_person", "procedural_person_count"]

_POOL_SIZE = 64


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
    fig = sample_figure(np.random.default_rng([int(index), SALT]))
    # Draw a little larger than asked and reduce: smoother edges and thinner hairs.
    unit = height * 1.15 / (fig.heads_tall + 0.6)
    layer = draw_figure(fig, unit)
    return finish(layer, fig, unit, height)
