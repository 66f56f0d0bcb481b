"""Video evaluation (issue 23, Done-when items 1-4): a --video build scores perfectly against itself, from the shards
and from the exported V-HIM layout; a constant error has dtSSD 0, a one-frame error does not; a swap halfway is
reported as identity switches; bad predictions are counted and the rest scores as in a clean run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import tiny_clip_build, write_video_prediction

from himbench.cli import main
from himbench.evaluation.video import (
    evaluate_video_folder,
    format_video_summary,
    is_video_ground_truth,
    write_video_evaluation,
)
from himbench.io import InputError, read_alpha
from himbench.metrics import TemporalStat, maggie_temporal, resolve

W, H, T, CLIPS = 96, 64, 6, 3
SPLIT = "test"
ERROR_KEYS = ("inst_SAD", "inst_MSE", "inst_MAD", "inst_Grad", "inst_Conn", "dtSSD", "MESSDdt", "id_switches",
              "switched_frames")


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """A --video build of 3 clips of 6 frames (96 x 64, 2-3 people) and its ground-truth mattes by clip id."""
    out = tmp_path_factory.mktemp("video") / "clips"
    return out, tiny_clip_build(out, width=W, height=H, frames=T, clips=CLIPS, min_instances=2,
                                max_instances=3, split=SPLIT)


def write_prediction(pred_dir: Path, clips: dict[str, np.ndarray]) -> Path:
    return write_video_prediction(pred_dir, clips, SPLIT)


def maggie_of_truth(truth: dict[str, np.ndarray]) -> dict[str, float]:
    """MaGGIe's numbers for the ground truth handed in as its own prediction. Not 0: its test loop clips the
    PREDICTION (<= 1/255 -> 0, >= 254/255 -> 1) and not the ground truth, so 8-bit edge values of 1/255 and 254/255
    become errors. himbench reproduces that on purpose (docs/temporal_metrics.md)."""
    stat = TemporalStat()
    for alphas in truth.values():
        for person in alphas:
            stat.update(maggie_temporal(person, person, warp="correct"))
    return stat.result()


def assert_perfect(summary: dict, truth: dict[str, np.ndarray]) -> None:
    for key in ERROR_KEYS:
        assert summary[key] == 0.0, key
    maggie = maggie_of_truth(truth)
    for key in ("maggie_dtSSD", "maggie_MESSDdt"):
        assert summary[key] == pytest.approx(maggie[key], rel=1e-9, abs=1e-12), key
    for key in (k for k in summary if k.startswith(("IMQ_", "RQ@", "MQ_"))):
        assert summary[key] == pytest.approx(100.0), key
    assert summary["num_clips"] == CLIPS and summary["num_frames"] == CLIPS * T


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


# ------------------------------------------------------------------------------------------------ item 1
def test_build_loads_exports_and_scores_perfectly_against_itself(build, tmp_path):
    import datasets

    root, truth = build
    # a private cache: the shared one is keyed on the folder's name and may hold another build called "clips"
    loaded = datasets.load_dataset(str(root), split=SPLIT, cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(loaded["id"]) == sorted(truth) and len(loaded[0]["frames"]) == T

    vhim = tmp_path / "V-HIM"
    done = _cli("export-vhim", str(root), str(vhim), "--masks", "gt")
    assert done.exit_code == 0, done.output
    assert f"{SPLIT}: {CLIPS} clips, {CLIPS * T} frames" in done.output
    video = sorted(truth)[0]
    people = len(truth[video])
    mask = vhim / SPLIT / "xmem" / video / "00003" / "00.png"
    assert mask.is_file() and (vhim / SPLIT / "fgr" / video / "00005.jpg").is_file()
    assert np.array_equal(read_alpha(mask), (truth[video][0, 3] > 0.5).astype(np.float32))  # oracle guidance
    again = _cli("export-vhim", str(root), str(vhim))
    assert again.exit_code == 2 and "already exists and is not empty" in again.output
    assert sorted(p.name for p in vhim.iterdir()) == [SPLIT]  # no staging folder left behind
    assert len(list((vhim / SPLIT / "pha" / video / "00000").iterdir())) == people
    assert is_video_ground_truth(root) and is_video_ground_truth(vhim) and is_video_ground_truth(vhim / SPLIT)

    pred = write_prediction(tmp_path / "pred", truth)
    from_shards = evaluate_video_folder(pred, root)
    from_vhim = evaluate_video_folder(pred, vhim, split=SPLIT)
    assert not from_shards.problems and not from_vhim.problems
    assert_perfect(from_shards.summary, truth)
    assert_perfect(from_vhim.summary, truth)
    assert from_vhim.config["gt_kind"] == "vhim" and from_shards.config["gt_kind"] == "video-shards"
    for key in from_shards.summary:
        assert resolve(key) is not None, f"{key} is not in the METRICS table"

    # the exported mattes themselves, handed in as the prediction, through the CLI
    copied = tmp_path / "pred-from-pha"
    shutil.copytree(vhim / SPLIT / "pha", copied / SPLIT)
    out = tmp_path / "eval"
    done = _cli("evaluate", str(copied), "--gt", str(vhim), "--out", str(out), "--quiet")
    assert done.exit_code == 0, done.output
    assert "dtSSD" in done.output and "100.00" in done.output
    doc = json.loads((out / "summary.json").read_text())
    assert_perfect(doc["summary"], truth)
    assert "dtSSD" in doc["units"] and doc["config"]["warp"] == "correct" and doc["num_problems"] == 0
    records = [json.loads(line) for line in (out / "per_clip.jsonl").read_text().splitlines()]
    assert sorted(r["video"] for r in records) == sorted(truth)
    assert json.loads((out / "evaluation_config.json").read_text())["gt_kind"] == "vhim"


# ------------------------------------------------------------------------------------------------ items 2, 3
def _with_error(truth: dict[str, np.ndarray], frames: slice) -> dict[str, np.ndarray]:
    """Each person's matte plus 40/255 on 12 pixels that person never covers, in ``frames``: the same error at the
    same place, exact in 8 bits, small enough not to change any matching."""
    out = {}
    for video, alphas in truth.items():
        pred = alphas.copy()
        for k in range(len(pred)):
            spots = np.flatnonzero(pred[k].max(axis=0) == 0)[:12]
            rows, cols = np.unravel_index(spots, (H, W))
            pred[k, frames, rows, cols] = 40 / 255
        out[video] = pred
    return out


def test_fixed_error_in_every_frame_has_dtssd_0_and_in_one_frame_does_not(build, tmp_path):
    root, truth = build
    steady = evaluate_video_folder(write_prediction(tmp_path / "steady", _with_error(truth, slice(None))), root)
    assert steady.summary["dtSSD"] == 0.0
    # MaGGIe's units: the constant error cancels too; what is left is its clipping of the prediction's edge values
    assert steady.summary["maggie_dtSSD"] == pytest.approx(maggie_of_truth(truth)["maggie_dtSSD"], rel=1e-9)
    assert steady.summary["inst_MAD"] > 0 and steady.summary["id_switches"] == 0
    once = evaluate_video_folder(write_prediction(tmp_path / "once", _with_error(truth, slice(2, 3))), root)
    assert once.summary["dtSSD"] > 0 and once.summary["maggie_dtSSD"] > 0
    assert 0 < once.summary["inst_MAD"] < steady.summary["inst_MAD"]
    for record in once.clips:
        assert record["dtSSD"] > 0


# ------------------------------------------------------------------------------------------------ item 4
def test_swap_halfway_is_reported_as_identity_switches(build, tmp_path):
    root, truth = build
    video = sorted(truth)[0]
    swapped = {k: v.copy() for k, v in truth.items()}
    swapped[video][[0, 1], T // 2 :] = truth[video][[1, 0], T // 2 :]
    clean = evaluate_video_folder(write_prediction(tmp_path / "clean", truth), root)
    ev = evaluate_video_folder(write_prediction(tmp_path / "swapped", swapped), root)
    record = next(r for r in ev.clips if r["video"] == video)
    assert record["id_switches"] == 2 and record["switched_frames"] > 0
    assert ev.summary["id_switches"] == 2
    assert record["IMQ_mad@0.5"] < 100.0
    assert ev.summary["IMQ_mad@0.5"] < clean.summary["IMQ_mad@0.5"]
    assert ev.summary["dtSSD"] > 0
    others = [r for r in ev.clips if r["video"] != video]
    assert others == [r for r in clean.clips if r["video"] != video]
    assert "id_switches" in format_video_summary(ev.summary)


# ------------------------------------------------------------------------------------------------ bad inputs
def test_corrupt_png_and_missing_clip_are_counted_and_the_rest_scores_as_clean(build, tmp_path):
    root, truth = build
    videos = sorted(truth)
    clean = evaluate_video_folder(write_prediction(tmp_path / "clean", truth), root)
    pred = write_prediction(tmp_path / "pred", truth)
    bad = pred / SPLIT / videos[1] / "00002" / "01.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    shutil.rmtree(pred / SPLIT / videos[2])
    (pred / SPLIT / "not-a-clip").mkdir()
    ev = evaluate_video_folder(pred, root)
    files = [p.file for p in ev.problems]
    assert str(bad) in files and str(pred / SPLIT / videos[2]) in files and str(pred / SPLIT / "not-a-clip") in files
    assert len(ev.problems) == 3
    by_video = {r["video"]: r for r in ev.clips}
    assert by_video[videos[0]] == next(r for r in clean.clips if r["video"] == videos[0])
    # the unreadable matte is an empty one: that person is missed in that frame only
    assert by_video[videos[1]]["problems"] == 1 and by_video[videos[1]]["FN@0.5"] == 1
    assert by_video[videos[1]]["IMQ_mad@0.5"] < 100 and by_video[videos[1]]["dtSSD"] > 0
    assert by_video[videos[2]]["prediction"] == "missing" and by_video[videos[2]]["IMQ_mad@0.5"] == 0.0
    assert by_video[videos[2]]["num_pred"] == 0 and by_video[videos[2]]["dtSSD"] > 0
    assert ev.summary["clips_without_prediction"] == 1
    paths = write_video_evaluation(ev, tmp_path / "out")
    assert str(bad) in paths["problems_csv"].read_text()
    assert json.loads(paths["summary_json"].read_text())["num_problems"] == 3


def test_bad_ground_truth_is_one_line_and_exit_2(build, tmp_path):
    root, truth = build
    pred = write_prediction(tmp_path / "pred", {sorted(truth)[0]: truth[sorted(truth)[0]]})
    neither = tmp_path / "neither"
    (neither / "stuff").mkdir(parents=True)
    with pytest.raises(InputError, match=r"neither: not video ground truth: .* found stuff/"):
        evaluate_video_folder(pred, neither)

    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    shard = sorted((broken / "data").glob("*.parquet"))[0]
    shard.write_bytes(b"not parquet")
    done = _cli("evaluate", str(pred), "--gt", str(broken), "--out", str(tmp_path / "o"), "--quiet")
    assert done.exit_code == 2
    assert f"{shard}: not a readable Parquet file" in done.output
    assert len(done.output.strip().splitlines()) == 1

    done = _cli("evaluate", str(pred), "--gt", str(root), "--split", "nope", "--quiet")
    assert done.exit_code == 2 and "no split 'nope'" in done.output
    done = _cli("export-vhim", str(neither), str(tmp_path / "x"))
    assert done.exit_code == 2 and f"{neither}: not a `build-dataset --video` folder" in done.output
    assert not (tmp_path / "x").exists()


def test_maggie_warp_option_changes_only_maggie_messddt(build, tmp_path):
    root, truth = build
    pred = write_prediction(tmp_path / "pred", _with_error(truth, slice(None)))
    correct = evaluate_video_folder(pred, root)
    transposed = evaluate_video_folder(pred, root, warp="maggie-transposed")
    assert transposed.config["warp"] == "maggie-transposed"
    for key in ("dtSSD", "MESSDdt", "maggie_dtSSD", "inst_MAD"):
        assert transposed.summary[key] == correct.summary[key], key
    assert transposed.summary["maggie_MESSDdt"] != correct.summary["maggie_MESSDdt"]
    with pytest.raises(ValueError, match="warp must be one of"):
        evaluate_video_folder(pred, root, warp="maggie")
