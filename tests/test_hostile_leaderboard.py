"""Hostile leaderboard input (issue 25): cells that try to break out of Markdown, LaTeX, HTML and CSV, and a
results.csv far longer than any real leaderboard (100,000 rows, which the old renderer never finished)."""

from __future__ import annotations

import csv
import io
import math
import random
import re
from types import SimpleNamespace

import pytest

from himbench.bench.results import read_results, update_results, write_results
from himbench.io.csvcells import escape_cell, unescape_cell
from himbench.leaderboard import (
    best_by_column,
    metric_direction,
    render_html,
    render_latex,
    render_markdown,
    shown_indices,
)

ENV = "cpu-test"
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
_UNESCAPED_AMP = re.compile(r"(?<!\\)&")


def _row(method: str, imq: str, latency: str = "10", trained: str = "True", **extra) -> dict:
    row = {"method": method, "data": "tiny", "split": "test", "environment": ENV, "trained": trained,
           "IMQ_mad@0.5": imq, "latency_ms": latency}
    row.update(extra)
    return row


def _markdown_rows(text: str) -> list[list[str]]:
    """Cells of every table line, split the way GFM does (at unescaped pipes)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| "):
            rows.append([c.strip() for c in _UNESCAPED_PIPE.split(line)[1:-1]])
    return rows


# ------------------------------------------------------------------------------------------------ Markdown / LaTeX


def test_markdown_pipe_and_newline_in_a_method_name_stay_in_its_cell():
    rows = [_row("evil | 99.99 | x\n| injected | row", "12.5"), _row("plain", "50", latency="3")]
    text = render_markdown(rows).split("Per-instance")[0]
    table = _markdown_rows(text)
    header, body = table[0], table[2:]
    assert len(body) == 2 and all(len(cells) == len(header) for cells in body)
    imq = header.index("IMQ-mad")
    latency = header.index("ms / image")
    evil = next(cells for cells in body if cells[0].startswith("evil"))
    assert evil[imq] == "12.50" and evil[latency] == "10.0"  # the numbers stay under their own headers
    assert evil[0] == r"evil \| 99.99 \| x \| injected \| row"  # escaped, the newline made a space


def test_markdown_heading_and_links_cannot_become_markup():
    rows = [{**_row("[click](javascript:alert(1)) <img src=x>", "1"), "environment": "a`b\nc", "data": "d|e"}]
    text = render_markdown(rows)
    heading = next(line for line in text.splitlines() if line.startswith("###"))
    assert heading == r"### d\|e / test on ``a`b c``"
    assert r"\[click](javascript:alert(1)) \<img src=x>" in text


def test_latex_escapes_every_special_character():
    name = r"\input{/etc/passwd}&%$#_~^ a|b<c>"
    rows = [_row(name, "70"), _row(r"\textbf{fake} & 1", "60")]
    text = render_latex(rows)
    body = [line for line in text.splitlines() if line.endswith(r"\\") and not line.startswith(("Method", "%"))]
    assert len(body) == 4  # two tables, two rows each
    assert (r"\textbackslash{}input\{/etc/passwd\}\&\%\$\#\_\textasciitilde{}\textasciicircum{} "
            r"a\textbar{}b\textless{}c\textgreater{}") in text
    # a name that starts like the bold markup is escaped like any other (it used to pass through raw)
    assert r"\textbackslash{}textbf\{fake\} \& 1" in text and r"\textbf{fake}" not in text
    accuracy_columns = text.split(r"\begin{tabular}{l")[1].split("}")[0].count("r")
    for line in body[:2]:
        assert len(_UNESCAPED_AMP.findall(line)) == accuracy_columns  # no extra column separator
    assert r"\textbf{70.00}" in text


def test_latex_newline_in_a_cell_becomes_a_space():
    text = render_latex([_row("two\nlines\r\u2028here", "5")])
    assert "two lines  here" in text


def test_html_escapes_cells_and_keeps_only_web_links():
    measured = [_row("<script>alert(1)</script>", "70", command="x'\"><b>y"),
                {**_row("m2", "60"), "maggie_MAD": "20", "maggie_MSE": "1", "maggie_Grad": "1", "maggie_Conn": "1"}]
    published = [{"method": "<b>paper</b>", "benchmark": "HIM2K", "metric_set": "maggie-table5", "paper": "P",
                  "arxiv_id": "1", "table": "5", "source_url": "javascript:alert(1)", "hand": "copied",
                  "protocol_masks": "m", "protocol_size": "s", "weights_licence": "x", "MAD": "10"},
                 {"method": "ok", "benchmark": "HIM2K", "metric_set": "maggie-table5", "paper": "Q",
                  "arxiv_id": "2", "table": "5", "source_url": "https://arxiv.org/abs/2", "hand": "copied",
                  "protocol_masks": "m", "protocol_size": "s", "weights_licence": "x", "MAD": "11"}]
    page = render_html(measured, published)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>paper</b>" not in page and "<b>y" not in page
    assert "javascript:" not in page and 'href="https://arxiv.org/abs/2"' in page


# ------------------------------------------------------------------------------------------------ CSV cells


@pytest.mark.parametrize("text", ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "=HYPERLINK(\"http://x\")"])
def test_formula_triggers_get_a_quote_and_come_back(text):
    assert escape_cell(text) == "'" + text
    assert unescape_cell(escape_cell(text)) == text


@pytest.mark.parametrize("value", [-1.5, "-1.5", "-2", "+3", "1e-05", "-1e+05", "-inf", "-.5", 0, "", "plain", "a=b"])
def test_numbers_and_harmless_text_are_unchanged(value):
    assert escape_cell(value) == ("" if value == "" else str(value))
    assert unescape_cell(escape_cell(value)) == str(value)


def test_quotes_round_trip_exactly():
    for text in ["'", "''", "'=x", "''=x", "'abc", "'-1", "x'"]:
        assert unescape_cell(escape_cell(text)) == text
        assert escape_cell(text)[0] not in "=+-@\t\r"


def _raw_cells(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_results_csv_quotes_text_cells_and_read_results_round_trips(tmp_path):
    path = tmp_path / "results.csv"
    rows = [_row("=HYPERLINK(\"http://evil\",\"x\")", "-1.5", latency="3", command="-c calc", spec="{}"),
            _row("@m", "12", latency=-2.0, command="'=quoted")]
    write_results(path, rows)
    raw = _raw_cells(path)
    assert raw[0]["method"] == "'=HYPERLINK(\"http://evil\",\"x\")" and raw[0]["command"] == "'-c calc"
    assert raw[0]["IMQ_mad@0.5"] == "-1.5" and raw[1]["latency_ms"] == "-2"  # numbers untouched
    assert raw[1]["method"] == "'@m" and raw[1]["command"] == "''=quoted"
    for cell in (c for row in raw for c in row.values()):
        assert cell == "" or cell[0] not in "=+@\t\r", cell
    back = read_results(path)
    assert [r["method"] for r in back] == [rows[0]["method"], "@m"] and back[1]["command"] == "'=quoted"
    # a merge reads and writes again: names neither lose nor gain quotes
    update_results(path, [_row("@m", "13")])
    assert [r["method"] for r in read_results(path)] == [rows[0]["method"], "@m"]
    assert _raw_cells(path)[1]["method"] == "'@m"


def test_evaluation_csvs_quote_text_cells(tmp_path):
    from himbench.evaluation.report import write_report

    records = [{"image": "=cmd|' /C calc'!A0", "IMQ_mad@0.5": -0.0, "delta": -3.25, "matches": []},
               {"image": "ok", "IMQ_mad@0.5": 50.0, "delta": 1.0, "matches": []}]
    config = SimpleNamespace(to_dict=lambda: {"threshold": 0.5})
    result = SimpleNamespace(records=records, summary={"IMQ_mad@0.5": -1.0},
                             accumulator=SimpleNamespace(to_dict=lambda: {}), config=config,
                             problems=[SimpleNamespace(file="+evil.png", message="-bad")],
                             units=None, intervals=None, breakdown=None, bootstrap=None)
    paths = write_report(result, tmp_path / "report")
    per_image = _raw_cells(paths["per_image_csv"])
    assert per_image[0]["image"] == "'=cmd|' /C calc'!A0" and per_image[0]["delta"] == "-3.25"
    assert per_image[1]["image"] == "ok"
    assert _raw_cells(paths["problems_csv"]) == [{"file": "'+evil.png", "message": "'-bad"}]
    assert _raw_cells(paths["summary_csv"]) == [{"IMQ_mad@0.5": "-1.0"}]


# ------------------------------------------------------------------------------------------------ large CSVs


def _old_best_indices(rows, column):
    """The per-column definition the leaderboard always had, written plainly: the reference for best_by_column."""
    direction = metric_direction(column)
    if direction is None:
        return set()
    values = {}
    for i, row in enumerate(rows):
        try:
            v = float(row.get(column))
        except (TypeError, ValueError):
            continue
        trained = str(row.get("trained", "True")).lower() not in ("false", "0", "no")
        if math.isfinite(v) and (column.startswith(("latency", "peak_mem", "params")) or trained):
            values[i] = v
    if not values:
        return set()
    best = max(values.values()) if direction == "max" else min(values.values())
    return {i for i, v in values.items() if math.isclose(v, best, rel_tol=1e-9, abs_tol=1e-12)}


def test_best_by_column_matches_the_plain_definition():
    rng = random.Random(3)
    columns = ["IMQ_mad@0.5", "RQ@0.5", "inst_MAD", "latency_ms", "params", "inst_count", "method"]
    cells = ["", "nan", "inf", "-inf", "x", None, "1e400", "5", "5.0000000001", "7", "-3", 2.5, "  4 "]
    rows = [{c: rng.choice(cells) for c in columns} | {"trained": rng.choice(["True", "False", "0", "yes"])}
            for _ in range(400)]
    result = best_by_column(rows, columns)
    assert result == {c: _old_best_indices(rows, c) for c in columns}
    assert result["IMQ_mad@0.5"] and result["method"] == set() and result["inst_count"] == set()


def test_shown_rows_are_the_best_plus_every_columns_best():
    rows = [_row(f"m{i}", str(i), latency=str(100 - i if i else 0.5)) for i in range(10)]
    rows.append(_row("untrained", "1000", latency="50", trained="False"))
    assert shown_indices(rows, 20) == list(range(11))
    # best 3 by IMQ (9, 8, 7) plus row 0, the fastest; the untrained row ranks after every trained one
    assert shown_indices(rows, 3) == [0, 7, 8, 9]


def _big_results(path, count: int) -> None:
    """A results.csv of ``count`` rows in three environments, written directly (the test is about reading it).
    Pinned to env0: "champion" (best IMQ), "fastest" (lowest latency, IMQ near the bottom), "precise" (lowest
    inst_MAD, IMQ near the bottom) and an untrained row whose IMQ would otherwise be best."""
    pinned = {73_456: ("champion", 99.5, None, None, "True"), 51_234: ("fastest", 1.0, 0.5, None, "True"),
              60_000: ("precise", 2.0, None, 0.05, "True"), 22_222: ("=untrained", 100.0, None, None, "False")}
    lines = ["method,data,split,environment,trained,IMQ_mad@0.5,latency_ms,inst_MAD\n"]
    for i in range(count):
        name, imq, latency, mad, trained = pinned.get(i, (f"m{i}", None, None, None, "True"))
        imq = 10 + (i * 7919 % 80000) / 1000 if imq is None else imq
        latency = 5 + (i * 104729 % 90000) / 1000 if latency is None else latency
        mad = 1 + (i % 997) / 10 if mad is None else mad
        env = 0 if i in pinned else i % 3
        lines.append(f"{name},big,test,env{env},{trained},{imq:.4f},{latency:.3f},{mad:.2f}\n")
    path.write_text("".join(lines))


def test_a_100000_row_results_csv_renders_every_output(tmp_path):
    from click.testing import CliRunner

    from himbench.cli.leaderboard import command

    path = tmp_path / "results.csv"
    _big_results(path, 100_000)
    out, html = tmp_path / "lb", tmp_path / "index.html"
    result = CliRunner().invoke(command, ["--csv", str(path), "--out", str(out), "--no-qualitative",
                                          "--published", str(tmp_path / "none.csv"), "--html", str(html)])
    assert result.exit_code == 0, result.output
    readme = (out / "README.md").read_text()
    sections = readme.split("### big / test on ")[1:]
    assert [s.split("\n")[0] for s in sections] == ["`env0`", "`env1`", "`env2`"]
    env0 = sections[0]
    # env0: 33,334 rows + 2 pinned from other remainders. It shows the best 500 by IMQ plus "fastest" (best
    # latency) and "precise" (best inst_MAD); the untrained row ranks after every trained one, so it is left out
    assert "Showing 502 of 33336 rows" in env0
    lines = {cells[0]: cells for cells in _markdown_rows(env0.split("Per-instance")[0])}
    assert lines["champion"][1] == "**99.50**" and lines["fastest"][1] == "1.00"
    assert lines["fastest"][10] == "**0.5**"
    assert "=untrained †" not in lines and "**100.00**" not in readme
    instance = {cells[0]: cells for cells in _markdown_rows(env0.split("Per-instance")[1])}
    assert instance["precise"][3] == "**0.05**" and len(instance) == 2 + 502  # header, separator, rows
    tex = (out / "leaderboard.tex").read_text()
    assert r"\textbf{99.50}" in tex and "502 of 33336 rows shown" in tex
    page = html.read_text()
    assert page.count("Showing 502 of 33336 rows") == 1
    assert 3000 <= page.count('<tr class="measured">') <= 3 * 2 * 502  # two tables per environment
    assert (out / "accuracy_vs_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "latency_vs_instances.png").read_bytes()[:4] == b"\x89PNG"


def test_the_qualitative_grid_runs_at_most_limit_methods_the_best_ones():
    import numpy as np

    from himbench.leaderboard.qualitative import qualitative_panels

    rows = [_row(f"no-such-method-{i}", str(i)) for i in range(40)] + [_row("no-such-method-3", "99")]
    errors: list[str] = []
    panels = qualitative_panels(rows, np.zeros((8, 8, 3), np.uint8), "photo", None, "cpu", errors.append, limit=4)
    # the best four distinct labels by IMQ (3 via its 99 row, then 39, 38, 37), in CSV order; each fails cleanly
    assert [title for title, _, _ in panels] == [f"no-such-method-{i}" for i in (3, 37, 38, 39)]
    assert len(errors) == 4 and all(alphas is None for _, alphas, _ in panels)
