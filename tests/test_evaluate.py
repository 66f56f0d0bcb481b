"""`himbench evaluate`: folder reading, bad-input reports, parallel determinism, report files, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from himbench.cli.evaluate import command as evaluate_command
from himbench.evaluation import evaluate_folder, write_report
from himbench.io import InputError, encode_alpha_png, read_alpha, write_alpha_png
from himbench.metrics import IMQAccumulator, evaluate_instances
from himbench.shards import write_shard

SHAPE = (40, 60)


def blob(cy: int, cx: int, r: int, shape=SHAPE) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    alpha = np.clip((r - np.hypot(yy - cy, xx - cx)) / 3.0, 0, 1)
    return (np.round(alpha * 255) / 255).astype(np.float32)


def scene(k: int) -> np.ndarray:
    """Two people per image, positions depending on k."""
    return np.stack([blob(15 + k, 15, 9), blob(22, 40 - k, 10)])


def perturbed(alpha: np.ndarray) -> np.ndarray:
    p = ndimage.gaussian_filter(alpha, 1.0)
    return (np.round(np.clip(p, 0, 1) * 255) / 255).astype(np.float32)


def write_him2k_gt(root: Path, stems: list[str], split: str = "test") -> dict[str, np.ndarray]:
    truth = {}
    for k, stem in enumerate(stems):
        alphas = scene(k)
        truth[stem] = alphas
        for i, alpha in enumerate(alphas):
            write_alpha_png(root / "alphas" / split / stem / f"{i:02d}.png", alpha)
        image = (np.random.default_rng(k).random((*SHAPE, 3)) * 255).astype(np.uint8)
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / split / f"{stem}.png"), image)
    return truth


def write_predictions(root: Path, truth: dict[str, np.ndarray], split: str = "test", reverse: bool = True) -> None:
    for stem, alphas in truth.items():
        ordered = alphas[::-1] if reverse else alphas
        for i, alpha in enumerate(ordered):
            write_alpha_png(root / split / stem / f"{i:02d}.png", perturbed(alpha))


def expected_summary(truth: dict[str, np.ndarray], preds: dict[str, np.ndarray | None]) -> dict:
    accumulator = IMQAccumulator()
    for stem, gt in truth.items():
        pred = preds.get(stem)
        accumulator += evaluate_instances(gt[:0] if pred is None else pred, gt)
    return accumulator.summary()


# -------------------------------------------------------------------------------------------------------- basics


def test_scores_a_him2k_folder_and_writes_report(tmp_path):
    truth = write_him2k_gt(tmp_path / "gt", ["a", "b", "c"])
    write_predictions(tmp_path / "pred", truth)
    result = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False)
    assert result.problems == []
    assert result.config.split == "test"
    assert [r["stem"] for r in result.records] == ["a", "b", "c"]
    preds = {s: np.stack([perturbed(a) for a in g[::-1]]) for s, g in truth.items()}
    assert result.summary == pytest.approx(expected_summary(truth, preds), rel=1e-12)
    assert result.summary["RQ@0.5"] == pytest.approx(100.0)

    paths = write_report(result, tmp_path / "out")
    summary = json.loads(paths["summary_json"].read_text())
    assert summary["summary"]["IMQ_mad@0.5"] == pytest.approx(result.summary["IMQ_mad@0.5"])
    merged = IMQAccumulator.from_dict(summary["sums"])
    assert merged.summary() == pytest.approx(result.summary)
    rows = list(csv.DictReader(paths["per_image_csv"].open()))
    assert [r["stem"] for r in rows] == ["a", "b", "c"] and rows[0]["status"] == "ok"
    config = json.loads(paths["config_json"].read_text())
    assert config["split"] == "test" and config["thresholds"] == [0.5, 0.75]
    per_image = json.loads(paths["per_image_json"].read_text())
    assert {m["pred"] for m in per_image[0]["matches"]} == {"00.png", "01.png"}


def test_perfect_predictions_score_100(tmp_path):
    truth = write_him2k_gt(tmp_path / "gt", ["a", "b"])
    for stem, alphas in truth.items():
        for i, alpha in enumerate(alphas):
            write_alpha_png(tmp_path / "pred" / "test" / stem / f"{i:02d}.png", alpha)
    summary = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False).summary
    for name in ("mad", "mse", "grad", "conn"):
        assert summary[f"IMQ_{name}@0.75"] == pytest.approx(100.0)
    assert summary["inst_SAD"] == 0.0


def test_empty_prediction_folder_scores_all_misses(tmp_path):
    truth = write_him2k_gt(tmp_path / "gt", ["a", "b"])
    (tmp_path / "pred").mkdir()
    result = evaluate_folder(tmp_path / "pred", tmp_path / "gt", split="test", workers=1, progress=False)
    assert result.summary["TP@0.5"] == 0
    assert result.summary["FN@0.5"] == sum(len(a) for a in truth.values())
    assert result.summary["IMQ_mad@0.5"] == 0.0 and result.summary["RQ@0.5"] == 0.0
    assert all(r["status"] == "missing" for r in result.records)
    files = {p.file for p in result.problems}
    assert str(tmp_path / "pred" / "test") in files
    assert str(tmp_path / "pred" / "test" / "a") in files


def test_accepts_the_split_folder_itself(tmp_path):
    truth = write_him2k_gt(tmp_path / "gt", ["a"])
    write_predictions(tmp_path / "pred", truth)
    direct = evaluate_folder(tmp_path / "pred" / "test", tmp_path / "gt", workers=1, progress=False)
    assert direct.problems == [] and direct.summary["TP@0.5"] == 2


# ---------------------------------------------------------------------------------------------------- bad inputs


def test_each_bad_file_is_reported_and_the_rest_scored(tmp_path):
    stems = ["good", "missing", "wrongsize", "colour", "sixteen", "garbage", "nan"]
    truth = write_him2k_gt(tmp_path / "gt", stems)
    pred = tmp_path / "pred" / "test"
    write_predictions(tmp_path / "pred", {s: truth[s] for s in stems if s != "missing"}, reverse=False)
    # 01.png of each bad image is replaced by a bad file; 00.png stays a valid prediction.
    bad = {}
    bad["wrongsize"] = pred / "wrongsize" / "01.png"
    cv2.imwrite(str(bad["wrongsize"]), np.zeros((SHAPE[0] + 1, SHAPE[1]), np.uint8))
    bad["colour"] = pred / "colour" / "01.png"
    colour = np.zeros((*SHAPE, 3), np.uint8)
    colour[..., 2] = 255
    cv2.imwrite(str(bad["colour"]), colour)
    bad["garbage"] = pred / "garbage" / "01.png"
    bad["garbage"].write_bytes(b"this is not a png")
    (pred / "nan" / "01.png").unlink()
    bad["nan"] = pred / "nan" / "01.tif"
    cv2.imwrite(str(bad["nan"]), np.full(SHAPE, np.nan, np.float32))
    # 16-bit is accepted: same values as the 8-bit file it replaces, so it scores the same.
    sixteen = pred / "sixteen" / "01.png"
    value8 = cv2.imread(str(sixteen), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(sixteen), value8.astype(np.uint16) * 257)
    (tmp_path / "pred" / "test" / "extra_image").mkdir()
    (pred / "good" / "notes.txt").write_text("hello")

    result = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False)
    messages = {p.file: p.message for p in result.problems}
    assert "size mismatch" in messages[str(bad["wrongsize"])]
    assert "colour" in messages[str(bad["colour"])]
    assert "cannot decode" in messages[str(bad["garbage"])]
    assert "NaN" in messages[str(bad["nan"])]
    assert "missing prediction folder" in messages[str(pred / "missing")]
    assert "extra prediction folder" in messages[str(pred / "extra_image")]
    assert "unexpected file" in messages[str(pred / "good" / "notes.txt")]
    assert str(sixteen) not in messages

    records = {r["stem"]: r for r in result.records}
    assert records["good"]["TP@0.5"] == 2 and records["sixteen"]["TP@0.5"] == 2
    for stem in ("wrongsize", "colour", "garbage", "nan"):
        # the valid 00.png is scored, the bad 01.png is left out: one TP and one missed person
        assert (records[stem]["TP@0.5"], records[stem]["FN@0.5"], records[stem]["num_pred"]) == (1, 1, 1)
        assert records[stem]["status"] == "problems"
    assert records["missing"]["FN@0.5"] == 2 and records["missing"]["status"] == "missing"
    # value * 257 / 65535 == value / 255: the 16-bit file scores exactly like its 8-bit original
    eight_bit = np.stack([perturbed(truth["sixteen"][0]), (value8 / 255.0).astype(np.float32)])
    expected = evaluate_instances(eight_bit, truth["sixteen"]).summary()
    assert records["sixteen"]["IMQ_mad@0.5"] == pytest.approx(expected["IMQ_mad@0.5"], rel=1e-12)
    assert result.summary["TP@0.5"] == 2 + 2 + 4 * 1


def test_bad_ground_truth_file_is_reported(tmp_path):
    truth = write_him2k_gt(tmp_path / "gt", ["a", "b"])
    write_predictions(tmp_path / "pred", truth)
    broken = tmp_path / "gt" / "alphas" / "test" / "b" / "01.png"
    broken.write_bytes(b"")
    result = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False)
    assert any(p.file == str(broken) and "ground truth" in p.message for p in result.problems)
    assert result.summary["num_images"] == 1
    assert [r["status"] for r in result.records] == ["ok", "bad_ground_truth"]


def test_scores_json_and_min_score(tmp_path):
    truth = write_him2k_gt(tmp_path / "gt", ["a"])
    write_predictions(tmp_path / "pred", truth)
    folder = tmp_path / "pred" / "test" / "a"
    write_alpha_png(folder / "02.png", blob(5, 55, 3))  # a spurious low-confidence person
    (folder / "scores.json").write_text(json.dumps({"00": 0.9, "01.png": 0.8, "02": 0.1}))
    kept = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False).summary
    dropped = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False, min_score=0.5).summary
    assert (kept["FP@0.5"], dropped["FP@0.5"]) == (1, 0)
    (folder / "scores.json").write_text("{not json")
    result = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False, min_score=0.5)
    assert any(p.file == str(folder / "scores.json") for p in result.problems)


# ------------------------------------------------------------------------------------------- shards + parallel


def write_shard_gt(root: Path, count: int) -> dict[str, np.ndarray]:
    truth, rows = {}, []
    for k in range(count):
        alphas = scene(k)
        stem = f"img{k:03d}"
        truth[stem] = alphas
        image = cv2.imencode(".png", np.zeros((*SHAPE, 3), np.uint8))[1].tobytes()
        rows.append(
            {
                "id": stem,
                "seed": k,
                "image": image,
                "alphas": [encode_alpha_png(a) for a in alphas],
                "boxes": [[0, 0, SHAPE[1], SHAPE[0]]] * len(alphas),
                "depth_order": list(range(len(alphas))),
                "fg_sources": ["x"] * len(alphas),
                "bg_source": "bg",
                "width": SHAPE[1],
                "height": SHAPE[0],
                "num_instances": len(alphas),
            }
        )
    write_shard(rows[: count // 2], root / "data" / "test-00000-of-00002.parquet")
    write_shard(rows[count // 2 :], root / "data" / "test-00001-of-00002.parquet")
    write_shard(rows[:1], root / "data" / "train-00000-of-00001.parquet")
    return truth


def test_shard_ground_truth_parallel_matches_serial(tmp_path):
    truth = write_shard_gt(tmp_path / "gt", 6)
    partial = dict(list(truth.items())[:5])  # the last image has no predictions
    write_predictions(tmp_path / "pred", partial)
    serial = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False)
    parallel = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=2, progress=False)
    assert serial.config.split == "test" and serial.config.gt_kind == "shards"
    assert serial.summary == parallel.summary
    assert serial.records == parallel.records
    preds = {s: np.stack([perturbed(a) for a in g[::-1]]) for s, g in partial.items()}
    assert serial.summary == pytest.approx(expected_summary(truth, preds), rel=1e-12)
    assert serial.summary["FN@0.5"] == 2  # the unpredicted image's two people


# ---------------------------------------------------------------------------------------------------------- CLI


def test_cli_prints_tables_and_writes_files(tmp_path):
    truth = write_him2k_gt(tmp_path / "gt", ["a", "b"])
    write_predictions(tmp_path / "pred", truth)
    (tmp_path / "pred" / "test" / "stray").mkdir()
    out = tmp_path / "report"
    runner = CliRunner()
    args = [str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out), "--workers", "1", "--quiet"]
    result = runner.invoke(evaluate_command, [*args, "--plot"])
    assert result.exit_code == 0, result.output
    assert "IMQ_mad" in result.output and "RQ" in result.output and "SAD/1e3" in result.output
    assert "extra prediction folder" in result.output
    for name in ("summary.json", "summary.csv", "per_image.csv", "per_image.json", "problems.csv",
                 "evaluation_config.json", "error_distribution.png", "worst_images.png"):
        assert (out / name).is_file(), name
    strict = runner.invoke(evaluate_command, [*args, "--strict"])
    assert strict.exit_code == 1
    missing_gt = runner.invoke(evaluate_command, [str(tmp_path / "pred"), "--gt", str(tmp_path / "pred")])
    assert missing_gt.exit_code != 0 and "not a ground-truth folder" in missing_gt.output


# -------------------------------------------------------------------------------------------------------- real


def test_real_mattes_in_him2k_layout(tmp_path, realdata):
    alpha_paths = sorted((realdata / "P3M" / "demo" / "imgs" / "alpha").glob("*.png"))[:2]
    truth, preds = {}, {}
    for path in alpha_paths:
        gt = read_alpha(path)
        small = cv2.resize(gt, (gt.shape[1] // 4, gt.shape[0] // 4), interpolation=cv2.INTER_AREA)
        small = (np.round(small * 255) / 255).astype(np.float32)[None]
        truth[path.stem] = small
        write_alpha_png(tmp_path / "gt" / "alphas" / "real" / path.stem / "00.png", small[0])
        pred = (np.round(ndimage.grey_erosion(small[0], size=(3, 3)) * 255) / 255).astype(np.float32)
        preds[path.stem] = pred[None]
        write_alpha_png(tmp_path / "pred" / "real" / path.stem / "00.png", pred)
    result = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False)
    assert result.problems == []
    assert result.summary == pytest.approx(expected_summary(truth, preds), rel=1e-12)
    assert 0 < result.summary["IMQ_mad@0.5"] < 100


def test_split_resolution_and_images_without_mattes(tmp_path):
    truth = write_him2k_gt(tmp_path / "gt", ["a"], split="natural")
    write_him2k_gt(tmp_path / "gt", ["x"], split="comp")
    write_predictions(tmp_path / "pred", truth, split="natural")
    # only 'natural' exists on both sides, so it is chosen without --split
    assert evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False).config.split == "natural"
    with pytest.raises(InputError, match="--split"):
        evaluate_folder(tmp_path / "empty", tmp_path / "gt", workers=1, progress=False)
    # a photo with no alphas/ folder is an image with 0 people: its predictions are false positives
    cv2.imwrite(str(tmp_path / "gt" / "images" / "natural" / "lonely.png"), np.zeros((*SHAPE, 3), np.uint8))
    write_alpha_png(tmp_path / "pred" / "natural" / "lonely" / "00.png", blob(10, 10, 5))
    result = evaluate_folder(tmp_path / "pred", tmp_path / "gt", split="natural", workers=1, progress=False)
    records = {r["stem"]: r for r in result.records}
    assert (records["lonely"]["num_gt"], records["lonely"]["FP@0.5"]) == (0, 1)
    assert any("image without an alphas/ folder" in p.message for p in result.problems)
