"""The one plotting setup of himbench: matplotlib's object API on an Agg canvas, PNGs written atomically.

Figures are made with :func:`new_figure` (never ``pyplot``), so plotting never touches the global backend, opens
a window or leaks figures, whichever backend the caller's process uses; :func:`save_figure` writes the PNG.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from himbench.io import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["new_figure", "save_figure"]


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A matplotlib Figure of ``figsize`` (width, height) inches on its own Agg canvas; add axes with
    ``figure.subplots(...)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``figure`` as a PNG at ``dpi`` dots per inch, cropped to its content, atomically; returns the path."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())
