"""`himbench demo`, the README's first command, on tiny settings: build, bench, leaderboard, pictures."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from himbench.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_demo_runs_end_to_end_on_tiny_settings(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        main,
        ["demo", "--out", str(out), "--images", "2", "--size", "128", "--methods", "e2ehim-tiny,mask-cf",
         "--workers", "1", "--max-instances", "1"],
    )
    assert result.exit_code == 0, result.output
    assert (out / "samples.png").stat().st_size > 1000
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {row["method"] for row in rows} == {"e2ehim-tiny", "mask-cf"}
    assert all(int(row["n_images"]) == 2 for row in rows)
    assert (out / "leaderboard" / "README.md").is_file()
    assert (out / "leaderboard" / "qualitative.png").is_file()  # a real photo is found in any clone
