"""leaderboard/published.csv: every published number carries its source (paper, arXiv id, table), whether it is
first-hand, and its protocol; the rendered leaderboard shows it beside measured rows, marked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from himbench.leaderboard import PUBLISHED_REQUIRED, read_published, render_comparison_markdown

PUBLISHED = Path(__file__).resolve().parents[1] / "leaderboard" / "published.csv"
METRICS = ("MAD", "MSE", "Grad", "Conn", "MADf", "MADu", "EMSE", "EMAD")


@pytest.fixture(scope="module")
def rows():
    return read_published(PUBLISHED)


def test_every_row_has_a_source_and_a_protocol(rows):
    assert rows, "published.csv has no rows"
    for row in rows:
        assert all(row[c].strip() for c in PUBLISHED_REQUIRED), row["method"]
        assert re.fullmatch(r"\d{4}\.\d{4,5}", row["arxiv_id"]), row["arxiv_id"]
        assert row["table"].startswith(("Table ", "README")), row["table"]
        assert row["hand"] in ("first-hand", "reported")
        assert row["hand"] == "first-hand" or row["reported_by"], "a reported number names who reported it"
        assert any(row[m] for m in METRICS), f"{row['method']}: no number"
        for column in (c for c in row if c in METRICS or c.endswith("_std")):
            if row[column]:
                float(row[column])  # numbers only


def test_one_row_per_method_benchmark_subset_and_metric_set(rows):
    keys = [(r["method"], r["variant"], r["benchmark"], r["subset"], r["metric_set"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_maggie_table5_is_complete(rows):
    table5 = [r for r in rows if r["metric_set"] == "maggie-table5"]
    methods = {(r["method"], r["variant"]) for r in table5}
    assert len(methods) == 7  # MGM-in-the-wild, MGM, SparseMat, InstMatt x2, MGM*, MaGGIe
    assert {r["subset"] for r in table5} == {"composite", "natural"} and len(table5) == 14
    assert all(r["arxiv_id"] == "2404.16035" and r["table"] == "Table 5" for r in table5)
    assert all(r["protocol_size"] == "short side 576 px" for r in table5)
    maggie = {r["subset"]: r for r in table5 if r["method"] == "MaGGIe"}
    # Cross-checked against the paper's Table 11 and the repository's docs/MODEL_ZOO.md (natural MAD/Grad).
    assert (maggie["natural"]["MAD"], maggie["natural"]["Grad"]) == ("27.17", "9.94")
    assert maggie["composite"]["MAD"] == "12.93" and maggie["composite"]["MADu"] == "235.95"


def test_e2ehim_readme_numbers_are_marked_undefined(rows):
    (row,) = [r for r in rows if r["method"] == "E2E-HIM"]
    assert (row["EMSE"], row["EMAD"]) == ("5.33", "6.62") and row["units"] == "undefined"
    assert "noncommercial" in row["weights_licence"]


def test_a_row_without_source_is_refused(tmp_path):
    text = PUBLISHED.read_text().splitlines()
    header = next(line for line in text if not line.startswith("#"))
    bad = tmp_path / "published.csv"
    bad.write_text(header + "\n" + "X,,HIM2K,comp,maggie-table5" + "," * (header.count(",") - 4) + "\n")
    with pytest.raises(ValueError, match="lacks paper, arxiv_id"):
        read_published(bad)


def test_published_rows_are_marked_beside_measured_ones(rows):
    measured = [{"method": "mask-cf@m-him2k", "data": "HIM2K", "split": "natural", "environment": "cpu-x",
                 "mask_set": "mean of 10 sets", "size_protocol": "maggie", "maggie_MAD": "40.0",
                 "maggie_MAD_std": "2.0", "maggie_Grad": "11", "maggie_Conn": "15", "maggie_MSE": "20"},
                {"method": "e2ehim-tiny", "data": "syn", "split": "test", "environment": "cpu-x"}]  # no maggie_*
    text = render_comparison_markdown(rows, measured)
    table5 = text.split("### MaGGIe Table 5")[1].split("###")[0]
    lines = [line for line in table5.splitlines() if line.startswith("| **")]
    assert sum("| **published** |" in line for line in lines) == 14
    (mine,) = [line for line in lines if line.startswith("| **measured** |")]
    assert "mask-cf@m-him2k" in mine and "40.00 (2.0)" in mine and "size: maggie" in mine and "cpu-x" in mine
    assert "e2ehim-tiny" not in text  # no values in MaGGIe's units: not put in that table
    assert "no measured row" in text  # E2E-HIM's EMSE/EMAD have no mapping
