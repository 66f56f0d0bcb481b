"""Leaderboard intervals: `value ± half-width` where results.csv has `<metric>_lo`/`_hi`, and `‡` on values the
intervals do not separate from the column's best (himbench.leaderboard.tables)."""

from __future__ import annotations

import numpy as np

from himbench.leaderboard import render_latex, render_markdown
from himbench.leaderboard.html import render_html
from himbench.leaderboard.tables import best_by_column, unseparated_by_column

ENV = "cpu x1"


def row(method: str, imq: float, interval: tuple[float, float] | None = None, trained: str = "True",
        mad: float = 5.0, mad_interval: tuple[float, float] | None = None) -> dict:
    out = {"method": method, "data": "him-test", "split": "test", "environment": ENV, "trained": trained,
           "IMQ_mad@0.5": str(imq), "inst_MAD": str(mad), "IMQ_mad@0.5_lo": "", "IMQ_mad@0.5_hi": "",
           "inst_MAD_lo": "", "inst_MAD_hi": ""}
    if interval:
        out["IMQ_mad@0.5_lo"], out["IMQ_mad@0.5_hi"] = map(str, interval)
    if mad_interval:
        out["inst_MAD_lo"], out["inst_MAD_hi"] = map(str, mad_interval)
    return out


def rows() -> list[dict]:
    return [
        row("best", 20.0, (18.0, 22.0), mad=4.0, mad_interval=(3.0, 5.0)),
        row("close", 19.0, (17.5, 20.5), mad=4.5, mad_interval=(4.2, 4.8)),
        row("far", 10.0, (9.0, 11.0), mad=9.0, mad_interval=(8.0, 10.0)),
        row("no-interval", 19.5),
        row("random", 19.9, (17.0, 23.0), trained="False"),
    ]


def _line(text: str, method: str, occurrence: int = 0) -> str:
    return [line for line in text.splitlines() if line.startswith(f"| {method}")][occurrence]


def test_markdown_shows_plus_minus_and_marks_the_unseparated_values():
    text = render_markdown(rows())
    assert "**20.00 ± 2.00**" in _line(text, "best")
    assert "19.00 ± 1.50‡" in _line(text, "close")
    assert "10.00 ± 1.00 |" in _line(text, "far")  # separated from the best: no mark
    assert "| 19.50 |" in _line(text, "no-interval")  # no interval: neither ± nor mark
    assert "19.90 ± 3.00 |" in _line(text, "random †")  # untrained: never best, never marked
    # lower is better in the instance table: best MAD 4.0 [3, 5]; "close" 4.5 [4.2, 4.8] overlaps it, "far" does not
    assert "**4.00 ± 1.00**" in _line(text, "best", 1) and "4.50 ± 0.30‡" in _line(text, "close", 1)
    assert "9.00 ± 1.00 |" in _line(text, "far", 1)
    assert "‡: the value's interval overlaps" in text and "`IMQ_mad@0.5_lo`" in text


def test_rows_without_intervals_render_as_before():
    plain = [{k: v for k, v in r.items() if not k.endswith(("_lo", "_hi"))} for r in rows()]
    text = render_markdown(plain)
    assert "±" not in text and "‡" not in text
    assert render_markdown(plain) == render_markdown([r | {"IMQ_mad@0.5_lo": "", "IMQ_mad@0.5_hi": ""}
                                                      for r in plain])


def test_a_best_value_without_interval_marks_nothing():
    data = [row("best", 30.0), row("close", 29.0, (20.0, 40.0))]
    text = render_markdown(data)
    assert "29.00 ± 10.00 |" in _line(text, "close")
    assert unseparated_by_column(data, ["IMQ_mad@0.5"])["IMQ_mad@0.5"] == set()


def test_latex_and_html_carry_the_same_marks():
    latex = render_latex(rows())
    assert r"\textbf{20.00 $\pm$ 2.00}" in latex and r"19.00 $\pm$ 1.50$^\ddagger$" in latex
    assert "IMQ\\_mad@0.5\\_lo" in latex and "‡" not in latex and "±" not in latex
    page = render_html(rows())
    assert "19.00 ± 1.50‡" in page and "<code>IMQ_mad@0.5_lo</code>" in page
    assert "10.00 ± 1.00‡" not in page


def test_vectorised_marks_equal_a_row_by_row_check():
    rng = np.random.default_rng(0)
    data = []
    for k in range(3000):
        value = float(rng.uniform(0, 100))
        half = float(rng.uniform(0, 8))
        interval = (value - half, value + half) if k % 7 else None  # some rows without an interval
        data.append(row(f"m{k}", round(value, 3), interval, trained="False" if k % 11 == 0 else "True"))
    columns = ["IMQ_mad@0.5"]
    best = best_by_column(data, columns)
    found = unseparated_by_column(data, columns, best)["IMQ_mad@0.5"]
    top = min(best["IMQ_mad@0.5"])
    low, high = float(data[top]["IMQ_mad@0.5_lo"]), float(data[top]["IMQ_mad@0.5_hi"])
    expected = {
        i for i, r in enumerate(data)
        if i not in best["IMQ_mad@0.5"] and r["IMQ_mad@0.5_lo"] and r["trained"] == "True"
        and float(r["IMQ_mad@0.5_lo"]) <= high and float(r["IMQ_mad@0.5_hi"]) >= low
    }
    assert found == expected and len(expected) > 10
