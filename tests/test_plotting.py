"""The one plotting setup (himbench.plotting): object API on an Agg canvas, used by every plot of himbench."""

from __future__ import annotations

import re
from pathlib import Path

from himbench.plotting import new_figure, save_figure

REPO = Path(__file__).resolve().parents[1]


def test_figure_is_written_as_png_without_pyplot(tmp_path):
    import sys

    figure = new_figure((2, 1.5))
    figure.subplots().plot([0, 1], [1, 0])
    path = save_figure(figure, tmp_path / "plot.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "matplotlib.pyplot" not in sys.modules or not _pyplot_figures()


def _pyplot_figures() -> list[int]:
    import matplotlib.pyplot as plt

    return plt.get_fignums()


def test_no_other_plotting_setup():
    # A matplotlib Figure built by hand counts only in a module that imports matplotlib (the procedural people have a
    # Figure dataclass of their own).
    pattern = re.compile(r"pyplot|matplotlib\.use\(|\bFigure\((?s:.*)matplotlib|matplotlib(?s:.*)\bFigure\(")
    places = sorted(str(p.relative_to(REPO)) for folder in ("himbench", "baselines", "e2ehim")
                    for p in (REPO / folder).rglob("*.py") if pattern.search(p.read_text()))
    assert places == ["himbench/plotting.py"]
