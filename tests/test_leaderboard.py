"""Leaderboard rendering: best-value marking from each metric's direction, Markdown, LaTeX and plots."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from himbench.leaderboard import (
    best_indices,
    colourise,
    metric_direction,
    plot_accuracy_vs_latency,
    plot_latency_vs_instances,
    plot_qualitative,
    read_published,
    render,
    render_latex,
    render_markdown,
)

ENV = "cpu-test-2t-torch2.0"


def _row(method, imq, rq, mad, latency, trained="True", env=ENV, **extra):
    row = {"method": method, "data": "tiny", "split": "test", "environment": env, "trained": trained,
           "IMQ_mad@0.5": imq, "RQ@0.5": rq, "inst_MAD": mad, "latency_ms": latency, "params": "1000000"}
    row.update({f"latency_ms_n{n}": str(float(latency) * n) for n in range(1, 11)})
    row.update(extra)
    return row


@pytest.fixture
def rows():
    return [
        _row("e2ehim-tiny", "70.5", "90", "4.0", "30"),
        _row("mask_cf", "60.25", "95", "3.5", "120"),
        _row("seg-refine", "99.0", "99", "1.0", "10", trained="False"),  # untrained: never best at accuracy
    ]


def test_metric_directions():
    assert metric_direction("IMQ_mad@0.5") == "max"
    assert metric_direction("RQ@0.75") == metric_direction("MQ_conn@0.5") == metric_direction("PQ@0.5") == "max"
    assert metric_direction("inst_MAD") == metric_direction("latency_ms_n6") == metric_direction("peak_mem_mb") == "min"
    assert metric_direction("inst_count") is None and metric_direction("TP@0.5") is None


def test_best_rows_follow_direction_and_skip_untrained_accuracy(rows):
    assert best_indices(rows, "IMQ_mad@0.5") == {0}  # 99.0 is untrained
    assert best_indices(rows, "RQ@0.5") == {1}
    assert best_indices(rows, "inst_MAD") == {1}  # lower is better
    assert best_indices(rows, "latency_ms") == {2}  # cost counts even untrained
    assert best_indices(rows, "params") == {0, 1, 2}  # ties are all best
    assert best_indices(rows, "method") == set()


def test_markdown_marks_best_in_bold(rows):
    text = render_markdown(rows)
    first_table = text.split("Per-instance")[0]
    lines = {line.split(" | ")[0][2:]: line for line in first_table.splitlines() if line.startswith("| ")}
    assert lines["e2ehim-tiny"].startswith("| e2ehim-tiny | **70.50** |")
    assert "**95.00**" in lines["mask_cf"] and "60.25" in lines["mask_cf"] and "**60.25**" not in text
    assert "**3.50**" in text and "**4.00**" not in text  # per-instance MAD: lower is better
    assert "**10.0**" in lines["seg-refine †"] and "**99.00**" not in text
    assert text.count("### tiny / test") == 1


def test_tables_are_split_by_environment(rows):
    rows.append(_row("e2ehim-tiny", "70.5", "90", "4.0", "3", env="cuda-h100-torch2.0"))
    text = render_markdown(rows)
    assert text.count("### tiny / test") == 2
    # On its own environment the GPU row is best at latency; the CPU table is unchanged.
    assert "**30.0**" not in text.split("cuda-h100")[0] and "**3.0**" in text.split("cuda-h100")[1]


def test_latex_escapes_and_bolds(rows):
    text = render_latex(rows)
    assert r"\textbf{70.50}" in text and r"mask\_cf" in text and r"$^\dagger$" in text
    assert text.count(r"\begin{tabular}") == 2 and r"IMQ-mad@.75" in text


def test_render_reads_the_csv(rows, tmp_path):
    path = tmp_path / "results.csv"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    assert render(path, "markdown") == render_markdown(rows)
    assert render(path, "latex") == render_latex(rows)
    assert render(path, "html").startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="html"):
        render(path, "pdf")
    assert "No results" in render(tmp_path / "missing.csv")


def test_plots_are_written(rows, tmp_path):
    png = b"\x89PNG"
    assert plot_accuracy_vs_latency(rows, tmp_path / "a.png").read_bytes()[:4] == png
    assert plot_latency_vs_instances(rows, tmp_path / "b.png").read_bytes()[:4] == png
    image = np.full((40, 60, 3), 128, np.uint8)
    alphas = np.zeros((2, 40, 60), np.float32)
    alphas[0, :, :30] = 1
    panels = [("one", alphas, ""), ("two", None, "no masks for this method")]
    assert plot_qualitative(image, panels, tmp_path / "c.png").read_bytes()[:4] == png


def test_colourise_paints_each_instance_differently():
    image = np.full((4, 4, 3), 200, np.uint8)
    alphas = np.zeros((2, 4, 4), np.float32)
    alphas[0, :, :2] = 1
    alphas[1, :, 2:] = 1
    out = colourise(image, alphas)
    assert not np.array_equal(out[0, 0], out[0, 3]) and np.array_equal(out[0, 0], out[3, 1])


def test_leaderboard_cli_writes_every_file(rows, tmp_path):
    from click.testing import CliRunner

    from himbench.bench.results import write_results
    from himbench.cli.leaderboard import command

    csv_path = write_results(tmp_path / "results.csv", rows)
    out = tmp_path / "lb"
    result = CliRunner().invoke(command, ["--csv", str(csv_path), "--out", str(out), "--no-qualitative"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "README.md", "leaderboard.tex", "accuracy_vs_latency.png", "latency_vs_instances.png"
    }
    assert "**70.50**" in (out / "README.md").read_text()
    empty = CliRunner().invoke(command, ["--csv", str(tmp_path / "none.csv"), "--out", str(out)])
    assert empty.exit_code != 0 and "no results" in empty.output


def test_leaderboard_cli_shows_published_rows_beside_measured_ones_and_writes_html(rows, tmp_path):
    from pathlib import Path

    from click.testing import CliRunner

    from himbench.bench.results import write_results
    from himbench.cli.leaderboard import command

    published = Path(__file__).resolve().parents[1] / "leaderboard" / "published.csv"
    rows[0].update({"maggie_MAD": "21.5", "maggie_MSE": "9", "maggie_Grad": "8", "maggie_Conn": "7",
                    "command": "himbench bench --methods e2ehim-tiny"})
    csv_path = write_results(tmp_path / "results.csv", rows)
    out, html = tmp_path / "lb", tmp_path / "site" / "index.html"
    result = CliRunner().invoke(command, ["--csv", str(csv_path), "--out", str(out), "--no-qualitative",
                                          "--published", str(published), "--html", str(html)])
    assert result.exit_code == 0, result.output
    readme = (out / "README.md").read_text()
    measured, compare = readme.split("## Compare with the papers")
    assert "published" not in measured  # the measured tables hold measured rows only
    assert compare.count("| **published** |") == len(read_published(published))
    assert "| **measured** | e2ehim-tiny |" in compare
    assert "21.50" in compare and "cpu-test-2t-torch2.0" in compare
    assert "published & " in (out / "leaderboard.tex").read_text()
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 2  # the two plots written by this run
    assert "himbench bench --methods e2ehim-tiny" in page and "arxiv.org/abs/2404.16035" in page
