"""`himbench bench` on clips (issue 23): every method frame by frame, with and without smoothing, one row each in
the video leaderboard CSV; the rows are the video evaluation of the predictions written, and the maggie_MAD...
columns are MaGGIe's per-frame image metrics (its Table 7 units) pooled over the frames of the split."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from himbench.bench.video import run_folder, video_label
from himbench.build_config import BuildConfig
from himbench.cli import main
from himbench.evaluation.video import evaluate_video_folder
from himbench.metrics.paper_units import MaggieAccumulator
from himbench.synthesis.video import VideoConfig, build_video_dataset
from himbench.video_shards import read_video_split

W, H, T, CLIPS = 96, 64, 4, 2


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    out = tmp_path_factory.mktemp("vbench") / "clips"
    config = BuildConfig(splits={"test": CLIPS}, width=W, height=H, images_per_shard=2, min_instances=2,
                         max_instances=2)
    build_video_dataset(VideoConfig(config, frames=T), out, workers=1)
    return out


def test_labels_name_guidance_and_smoothing():
    assert video_label("e2ehim-tiny", "none", 0.0) == "e2ehim-tiny"
    assert video_label("mask-cf", "first-frame", 0.5) == "mask-cf@first-frame+smooth0.5"
    assert video_label("mask-cf", "disk:xmem", 0.0) == "mask-cf@disk:xmem"


def test_bench_on_clips_writes_one_row_per_method_and_strength(clips, tmp_path):
    board = tmp_path / "video.csv"
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["bench", "-m", "e2ehim-tiny,mask-only", "--data", str(clips), "--smooth",
                                       "0,0.5", "--out", str(out), "--leaderboard", str(board), "--no-progress"])
    assert result.exit_code == 0, result.output
    with board.open() as f:
        rows = {row["method"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"e2ehim-tiny", "e2ehim-tiny+smooth0.5", "mask-only@first-frame",
                         "mask-only@first-frame+smooth0.5"}
    for label, row in rows.items():
        assert int(row["n_clips"]) == CLIPS and int(row["n_frames"]) == CLIPS * T
        assert row["guidance"] == ("oracle:first-frame" if "@" in label else "none")
        # the row is the evaluation of the predictions it wrote (the CSV keeps 6 significant digits)
        run = run_folder(out, str(clips), None, row["environment"])
        again = evaluate_video_folder(run / "predictions" / label, clips).summary
        for key in ("IMQ_mad@0.5", "maggie_dtSSD", "maggie_MESSDdt", "maggie_MAD", "id_switches"):
            assert float(row[key]) == pytest.approx(again[key], rel=1e-5, abs=1e-6), (label, key)
    saved = json.loads((run / "bench_config.json").read_text())  # the resolved config beside the results
    assert saved["methods"] == ["e2ehim-tiny", "mask-only"] and saved["smoothing"] == [0.0, 0.5]
    # smoothing changes the mattes: the smoothed rows are other predictions
    assert float(rows["e2ehim-tiny+smooth0.5"]["maggie_MAD"]) != float(rows["e2ehim-tiny"]["maggie_MAD"])
    # the same run again into the same --out is refused before any method runs, and nothing is overwritten
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = CliRunner().invoke(main, ["bench", "-m", "e2ehim-tiny,mask-only", "--data", str(clips), "--smooth",
                                      "0,0.5", "--out", str(out), "--leaderboard", str(board), "--no-progress"])
    assert again.exit_code == 2, again.output
    assert "earlier run's predictions" in again.output and "predictions" in again.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before


def test_maggie_columns_are_per_frame_image_metrics_pooled(clips, tmp_path):
    """The ground truth as its own prediction: maggie_* equal MaGGIe's accumulator fed frame by frame by hand (not 0:
    MaGGIe clips the prediction, not the ground truth)."""
    from himbench.io import encode_alpha_png

    truth = {clip.id: clip.alphas for clip in read_video_split(clips, "test")}
    expected = MaggieAccumulator()
    for alphas in truth.values():
        for t in range(alphas.shape[1]):
            expected.add(alphas[:, t], alphas[:, t])
    for video, alphas in truth.items():
        for t in range(alphas.shape[1]):
            frame = tmp_path / "pred" / "test" / video / f"{t:05d}"
            frame.mkdir(parents=True)
            for k, matte in enumerate(alphas[:, t]):
                (frame / f"{k:02d}.png").write_bytes(encode_alpha_png(matte))
    summary = evaluate_video_folder(tmp_path / "pred", clips).summary
    for key, value in expected.summary().items():
        assert summary[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert summary["maggie_count"] == sum(len(a) * a.shape[1] for a in truth.values())
    assert np.isfinite(summary["maggie_Grad"])


def test_bad_smoothing_strength_is_exit_2(clips, tmp_path):
    result = CliRunner().invoke(main, ["bench", "-m", "mask-only", "--data", str(clips), "--smooth", "1.5",
                                       "--out", str(tmp_path / "o"), "--no-leaderboard"])
    assert result.exit_code == 2
    assert "--smooth" in result.output


def _video_row(method: str, data: str, **values) -> dict:
    row = {"method": method, "data": data, "split": "test", "environment": "env", "guidance": "none",
           "n_clips": "2", "n_frames": "8", "latency_ms": "10", "command": f"himbench bench -m {method}"}
    row.update({k: str(v) for k, v in values.items()})
    return row


def test_video_leaderboard_bolds_each_columns_best_and_joins_only_table7():
    from himbench.leaderboard.published import comparison_groups
    from himbench.leaderboard.video import is_video_results, render_video_markdown

    rows = [_video_row("a", "easy", **{"IMQ_mad@0.5": 50, "maggie_MAD": 9, "maggie_dtSSD": 2.0, "id_switches": 0}),
            _video_row("b", "easy", **{"IMQ_mad@0.5": 40, "maggie_MAD": 7, "maggie_dtSSD": 1.0, "id_switches": 3})]
    assert is_video_results(rows) and not is_video_results([{"method": "x", "n_images": "3"}])
    published = [
        {"method": "MaGGIe", "benchmark": "V-HIM60-easy", "metric_set": "maggie-table7", "MAD": "10.12",
         "dtSSD": "16.40"},
        {"method": "MaGGIe", "benchmark": "HIM2K", "metric_set": "maggie-table5", "MAD": "20.00"},
    ]
    text = render_video_markdown(rows, published)
    a_line = next(line for line in text.splitlines() if line.startswith("| a |"))
    b_line = next(line for line in text.splitlines() if line.startswith("| b |"))
    assert "**50.00**" in a_line and "**0**" in a_line and "**9.0**" not in a_line
    assert "**7.0**" in b_line and "**1.00**" in b_line
    assert "HIM2K" not in text and "V-HIM60-easy" in text
    groups = {g["metric_set"]: g for g in comparison_groups(published, rows)}
    assert [r["kind"] for r in groups["maggie-table7"]["rows"]] == ["published", "measured", "measured"]
    assert [r["kind"] for r in groups["maggie-table5"]["rows"]] == ["published"]  # video rows never join images'


def test_video_leaderboard_escapes_cells_from_the_csv():
    """Method names and commands come from a CSV anyone may edit: they stay one cell and never become markup."""
    from himbench.leaderboard.video import render_video_markdown

    rows = [_video_row("a|b<script>[x](y)", "d", **{"IMQ_mad@0.5": 1, "maggie_dtSSD": 1.0})]
    rows[0]["command"] = "himbench bench ``` -m x"
    text = render_video_markdown(rows)
    line = next(line for line in text.splitlines() if line.startswith("| a"))
    assert line.startswith(r"| a\|b\<script>\[x](y) |")
    assert "<script>" not in text.replace(r"\<script>", "") and "- ````himbench bench ``` -m x````" in text
