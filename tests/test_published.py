"""leaderboard/published.csv: every published number carries its source (paper, arXiv id, table), whether it is
first-hand, and its protocol; the rendered leaderboard shows it beside measured rows, marked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from himbench.leaderboard import (
    PUBLISHED_COLUMNS,
    PUBLISHED_REQUIRED,
    comparison_groups,
    read_published,
    render_comparison_latex,
    render_comparison_markdown,
)
from himbench.leaderboard.published import CLASSIC_MEASURED_COLUMNS

PUBLISHED = Path(__file__).resolve().parents[1] / "leaderboard" / "published.csv"
METRICS = ("MAD", "MSE", "Grad", "Conn", "MADf", "MADu", "EMSE", "EMAD", "SAD", "SAD_trimap", "SAD_human", "dtSSD",
           "MESSDdt")
CLASSIC = {"P3M-500-P": "2104.14222", "AIM-500": "2107.07235", "Composition-1k": "1703.03872"}


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


def test_maggie_table7_is_complete_and_equals_what_was_read(rows):
    table7 = [r for r in rows if r["metric_set"] == "maggie-table7"]
    # OTVM x2, FTP-VM x2, MGM-TCVOM, MGM*-TCVOM, InstMatt, SparseMat, MaGGIe; each on easy, medium and hard
    assert len({(r["method"], r["variant"]) for r in table7}) == 9 and len(table7) == 27
    assert {r["benchmark"] for r in table7} == {"V-HIM60-easy", "V-HIM60-medium", "V-HIM60-hard"}
    assert all(r["arxiv_id"] == "2404.16035" and r["table"] == "Table 7" for r in table7)
    assert all(r[m] for r in table7 for m in ("MAD", "Grad", "Conn", "dtSSD", "MESSDdt"))
    assert all(not r["MSE"] for r in table7)  # Table 7 prints no MSE
    maggie = {r["benchmark"]: r for r in table7 if r["method"] == "MaGGIe"}
    # MaGGIe #12 quotes 16.4 for easy; docs/MODEL_ZOO.md prints hard MAD/Grad/dtSSD 21.23/7.08/29.90.
    assert [maggie["V-HIM60-easy"][m] for m in ("MAD", "Grad", "Conn", "dtSSD", "MESSDdt")] == [
        "10.12", "4.08", "3.43", "16.40", "16.41"]
    assert [maggie["V-HIM60-hard"][m] for m in ("MAD", "Grad", "dtSSD")] == ["21.23", "7.08", "29.90"]
    assert maggie["V-HIM60-medium"]["MESSDdt"] == "38.12"
    sparse = {r["benchmark"]: r for r in table7 if r["method"] == "SparseMat"}
    assert (sparse["V-HIM60-medium"]["dtSSD"], sparse["V-HIM60-medium"]["MESSDdt"]) == ("30.19", "85.79")


def test_maggie_table7_is_rendered_with_its_temporal_columns(rows):
    text = render_comparison_markdown(rows, [])
    table7 = text.split("### MaGGIe Table 7")[1].split("###")[0]
    assert "| dtSSD | MESSDdt |" in table7
    assert sum("| **published** |" in line for line in table7.splitlines()) == 27
    assert "| 16.40 | 16.41 |" in table7  # printed digits kept


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


def _one(rows, **match):
    (row,) = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return row


def test_classic_benchmarks_have_rows_with_a_pinned_source(rows):
    classic = [r for r in rows if r["benchmark"] in CLASSIC]
    assert {r["benchmark"] for r in classic} == set(CLASSIC)  # three of the four benchmarks of issue 20
    assert len(classic) == 44 + 3 + 2  # P3M Tables 1-2 (11 methods x 4 PPT settings), AIM x3, DIM x2
    for row in classic:
        assert row["arxiv_id"] == CLASSIC[row["benchmark"]], row["method"]
        assert row["table"].startswith("README"), row["table"]  # read from the README, not the paper's PDF
        # Pinned to the commit that was read, so the number can be checked against the same text.
        assert re.fullmatch(r"https://github\.com/[\w-]+/[\w-]+/blob/[0-9a-f]{40}/[\w/.-]+\.md", row["source_url"])
        assert row["units"] in ("p3m-code", "dim-matlab")
        assert row["metric_set"] in PUBLISHED_COLUMNS  # rendered with its own title, columns and units note


def test_spot_values_equal_what_was_read(rows):
    # JizhiziLi/P3M README.md @ 0af851ac, Table 2 (trimap-free, P3M-500-P): P3M-Net B:B SAD 8.73 MSE 0.0026,
    # HATT B:N SAD printed "26.5" (one decimal, kept as printed).
    p3m_net = _one(rows, method="P3M-Net", subset="face-blurred (as released)", metric_set="p3m-readme-table2",
                   variant="PPT setting B:B (trained face-blurred)")
    assert (p3m_net["SAD"], p3m_net["MSE"], p3m_net["hand"]) == ("8.73", "0.0026", "first-hand")
    assert _one(rows, method="HATT", variant="PPT setting B:N (trained face-blurred)")["SAD"] == "26.5"
    # Same README, Table 1 (trimap-based): DIM N:N SAD 4.7941 MSE 0.0116, FBA B:B SAD 4.1330 (reported by P3M).
    dim_nn = _one(rows, method="DIM", metric_set="p3m-readme-table1", variant="PPT setting N:N (trained normal)")
    assert (dim_nn["SAD"], dim_nn["MSE"]) == ("4.7941", "0.0116")
    fba = _one(rows, method="FBA", variant="PPT setting B:B (trained face-blurred)")
    assert fba["SAD"] == "4.1330" and fba["hand"] == "reported" and fba["reported_by"] == "P3M authors"
    # JizhiziLi/AIM README.md @ 045a38f0: AimNet (paper), Hybrid (1/3&1/4): SAD 43.92, MSE 0.0161, MAD 0.0262,
    # Conn 43.18, Grad 33.05, Tran. SAD 30.74, Human SAD 24.68.
    aim = _one(rows, method="AimNet", variant="paper checkpoint; test Hybrid (1/3&1/4)")
    assert [aim[c] for c in ("SAD", "MSE", "MAD", "Conn", "Grad", "SAD_trimap", "SAD_human")] == [
        "43.92", "0.0161", "0.0262", "43.18", "33.05", "30.74", "24.68"]
    # open-mmlab/mmagic configs/mattors/dim/README.md @ 06f4d1e5, row "stage3 (paper)": 50.4, 0.014, 31.0, 50.8.
    dim = _one(rows, method="DIM", benchmark="Composition-1k", variant="Encoder-Decoder + Refinement (stage 3)")
    assert [dim[c] for c in ("SAD", "MSE", "Grad", "Conn")] == ["50.4", "0.014", "31.0", "50.8"]
    assert dim["hand"] == "reported" and "mmagic" in dim["reported_by"]


def test_p3m_units_are_fractions_and_thousands(rows):
    # MAM #18: MSE/MAD printed as plain per-pixel means (0.0026), SAD in thousands (8.73); a row entered in x1e3
    # units (MSE 2.6) or as a raw sum (SAD 8730) would silently compare 1000x off.
    for row in (r for r in rows if r["units"] == "p3m-code"):
        assert all(float(row[c]) < 0.1 for c in ("MSE", "MAD") if row[c]), row["method"]
        assert 1 < float(row["SAD"]) < 1000, row["method"]


def test_classic_tables_keep_printed_digits_and_take_measured_rows_in_their_units(rows):
    measured = [{"method": "mask-cf", "data": "P3M-500-P", "split": "test", "environment": "cpu-x",
                 CLASSIC_MEASURED_COLUMNS["p3m-code"]["SAD"]: "12.3456", CLASSIC_MEASURED_COLUMNS["p3m-code"]["MSE"]:
                 "0.004567", CLASSIC_MEASURED_COLUMNS["p3m-code"]["SAD_trimap"]: "9.5"},
                {"method": "mask-cf", "data": "Composition-1k", "split": "test", "environment": "cpu-x",
                 CLASSIC_MEASURED_COLUMNS["dim-matlab"]["SAD"]: "160.04", CLASSIC_MEASURED_COLUMNS["dim-matlab"]["MSE"]:
                 "0.0912"}]
    groups = {g["metric_set"]: g for g in comparison_groups(rows, measured)}
    table2 = groups["p3m-readme-table2"]
    p3m_net = next(r for r in table2["rows"] if r["method"].startswith("P3M-Net (PPT setting B:B"))
    assert p3m_net["cells"] == ["8.73", "0.0026"]  # as printed: 0.0026 is not rounded to 0.00
    (mine,) = [r for r in table2["rows"] if r["kind"] == "measured"]
    assert mine["cells"] == ["12.35", "0.0046"]  # as many decimals as the paper prints in that column
    assert not [r for r in groups["p3m-readme-table1"]["rows"] if r["kind"] == "measured"]  # region unstated
    (aim_mine,) = [r for r in groups["aim-readme"]["rows"] if r["kind"] == "measured"]
    assert aim_mine["cells"][groups["aim-readme"]["headers"].index("SAD (trimap)")] == "9.50"
    (dim_mine,) = [r for r in groups["dim-comp1k"]["rows"] if r["kind"] == "measured"]
    assert dim_mine["cells"] == ["160.04", "0.091", "–", "–"]  # at least 2 decimals; MSE as printed (0.014)
    text = render_comparison_markdown(rows, measured)
    for title in ("### P3M README Table 1", "### P3M README Table 2", "### AIM README", "### Composition-1k"):
        assert title in text
    assert "| 4.8906 | 0.0115 |" in text and "not scaled" in text  # units note names the MAM #18 trap
    assert r"Composition-1k test (DIM convention)" in render_comparison_latex(rows, measured)
