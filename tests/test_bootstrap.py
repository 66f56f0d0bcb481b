"""Bootstrap intervals over images (himbench.metrics.bootstrap) and `himbench compare`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from himbench.cli import main
from himbench.evaluation import evaluate_folder, write_report
from himbench.io import InputError, write_alpha_png
from himbench.metrics import IMQAccumulator
from himbench.metrics.bootstrap import (
    bootstrap_interval,
    image_table,
    paired_bootstrap,
    resample_counts,
    resample_indices,
    summary_intervals,
    summary_keys,
    summary_statistic,
)

SHAPE = (64, 96)
STEMS = [f"img{k}" for k in range(6)]


def blob(cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    alpha = np.clip((r - np.hypot(yy - cy, xx - cx)) / 4.0, 0, 1)
    return (np.round(alpha * 255) / 255).astype(np.float32)


def people(k: int) -> np.ndarray:
    """Two people per image (three in every third image), placed by k."""
    alphas = [blob(20 + k, 22, 12), blob(38, 70 - 2 * k, 14)]
    if k % 3 == 0:
        alphas.append(blob(48, 40, 9))
    return np.stack(alphas)


def write_gt(root: Path, stems: list[str]) -> dict[str, np.ndarray]:
    truth = {}
    for k, stem in enumerate(stems):
        truth[stem] = people(k)
        for i, alpha in enumerate(truth[stem]):
            write_alpha_png(root / "alphas" / "test" / stem / f"{i:02d}.png", alpha)
    return truth


def write_scaled(root: Path, truth: dict[str, np.ndarray], factors: dict[str, float], drop_last: bool = False) -> None:
    """Predictions = ground truth x factor (same support, so the same IoU and counts; error grows with 1 - factor)."""
    for stem, alphas in truth.items():
        keep = alphas[:-1] if drop_last and len(alphas) > 2 else alphas
        for i, alpha in enumerate(keep):
            write_alpha_png(root / "test" / stem / f"{i:02d}.png", np.round(alpha * factors[stem] * 255) / 255)


def evaluate_to(pred: Path, gt: Path, out: Path):
    result = evaluate_folder(pred, gt, workers=1, progress=False)
    write_report(result, out)
    return result


@pytest.fixture(scope="module")
def evals(tmp_path_factory) -> dict:
    """Real evaluation folders: A (good, varying per image), A again (same predictions), worse (every image worse
    than A), and A against a ground truth with one image fewer."""
    root = tmp_path_factory.mktemp("bootstrap")
    truth = write_gt(root / "gt", STEMS)
    good = {stem: 0.99 - 0.01 * k for k, stem in enumerate(STEMS)}
    worse = {stem: factor - 0.06 for stem, factor in good.items()}
    write_scaled(root / "pred_a", truth, good, drop_last=True)  # a missed person in some images: RQ varies too
    write_scaled(root / "pred_b", truth, worse, drop_last=True)
    write_gt(root / "gt_fewer", STEMS[:-1])
    results = {
        "a": evaluate_to(root / "pred_a", root / "gt", root / "eval_a"),
        "a_again": evaluate_to(root / "pred_a", root / "gt", root / "eval_a_again"),
        "worse": evaluate_to(root / "pred_b", root / "gt", root / "eval_b"),
        "fewer": evaluate_to(root / "pred_a", root / "gt_fewer", root / "eval_fewer"),
    }
    return {"root": root, "results": results}


def per_image(evals, name: str) -> list[dict]:
    folder = {"a": "eval_a", "a_again": "eval_a_again", "worse": "eval_b", "fewer": "eval_fewer"}[name]
    return json.loads((evals["root"] / folder / "per_image.json").read_text())


# ------------------------------------------------------------------------------------------ intervals


def test_point_estimates_equal_the_evaluation_summary_and_lie_in_their_intervals(evals):
    result = evals["results"]["a"]
    intervals = summary_intervals(per_image(evals, "a"), resamples=500, seed=3)
    assert set(result.summary) <= set(intervals)
    assert "mean_iou" in intervals  # other per-image numbers get plain means over images
    for key, number in result.summary.items():
        assert intervals[key]["value"] == pytest.approx(number, rel=1e-12, abs=1e-12), key
    assert 0 < result.summary["RQ@0.5"] < 100  # the data do vary per image
    for key in ("IMQ_mad@0.5", "IMQ_mse@0.75", "RQ@0.5", "MQ_mad@0.5", "PQ@0.5", "inst_SAD", "mean_iou"):
        entry = intervals[key]
        assert entry["low"] <= entry["value"] <= entry["high"], key
    assert intervals["IMQ_mad@0.5"]["low"] < intervals["IMQ_mad@0.5"]["high"]
    assert intervals["num_images"] == {"value": 6.0, "low": 6.0, "high": 6.0}
    mean_iou = np.mean([r["mean_iou"] for r in per_image(evals, "a")])
    assert intervals["mean_iou"]["value"] == pytest.approx(mean_iou)


def test_seeded_and_repeatable(evals):
    records = per_image(evals, "a")
    first = summary_intervals(records, resamples=200, seed=5)
    assert summary_intervals(records, resamples=200, seed=5) == first
    assert summary_intervals(records, resamples=200, seed=6)["IMQ_mad@0.5"] != first["IMQ_mad@0.5"]


def test_constant_images_collapse_the_interval_to_the_value(evals):
    one = per_image(evals, "a")[1]
    records = [dict(one, stem=f"copy{k}") for k in range(7)]
    intervals = summary_intervals(records, resamples=300)
    for key in ("IMQ_mad@0.5", "RQ@0.5", "MQ_conn@0.75", "inst_MSE"):
        entry = intervals[key]
        assert entry["low"] == pytest.approx(entry["value"], rel=1e-12)
        assert entry["high"] == pytest.approx(entry["value"], rel=1e-12)
    interval = bootstrap_interval({"x": [2.5] * 9}, lambda s: s["x"] / 9.0, resamples=100)
    assert (interval.low, interval.value, interval.high) == pytest.approx((2.5, 2.5, 2.5), rel=1e-15)


def test_percentile_bounds_match_exact_enumeration():
    # Three images: the 27 equally likely ordered draws give the exact bootstrap distribution of the ratio of sums.
    num, den = np.array([1.0, 2.0, 7.0]), np.array([1.0, 3.0, 2.0])
    exact = sorted(num[list(d)].sum() / den[list(d)].sum() for d in itertools.product(range(3), repeat=3))
    level = 0.6  # quantiles at 0.2 and 0.8: 5.4 and 21.6 of 27 draws, well inside a step of the exact CDF
    q_low, q_high = (1 - level) / 2, (1 + level) / 2
    cdf = np.arange(1, 28) / 27

    def exact_quantile(q: float) -> float:
        position = int(np.searchsorted(cdf, q))  # first value whose CDF reaches q
        assert abs(cdf[position] - q) > 0.01 and (position == 0 or abs(cdf[position - 1] - q) > 0.01)
        return float(exact[position])

    interval = bootstrap_interval({"num": num, "den": den}, lambda s: s["num"] / s["den"], resamples=40_000,
                                  seed=1, level=level)
    assert interval.value == pytest.approx(10 / 6)
    assert interval.low == pytest.approx(exact_quantile(q_low), rel=1e-12)
    assert interval.high == pytest.approx(exact_quantile(q_high), rel=1e-12)
    assert interval.low < interval.value < interval.high


def test_resampled_ratios_equal_the_accumulator_over_the_same_images(evals):
    result = evals["results"]["a"]
    table = image_table(per_image(evals, "a"))
    assert table.stems == tuple(STEMS)
    indices = resample_indices(len(table), resamples=4, seed=11)
    sums = resample_counts(indices, len(table)) @ table.matrix
    columns = {name: sums[:, j] for j, name in enumerate(table.columns)}
    for r, draw in enumerate(indices):
        accumulator = IMQAccumulator(result.config.thresholds)
        for i in draw:
            accumulator += result.stats[STEMS[i]]
        expected = accumulator.summary()
        assert set(expected) <= set(summary_keys(table))
        for key, number in expected.items():
            got = summary_statistic(key, table)(columns)[r]
            assert got == pytest.approx(number, rel=1e-12, abs=1e-12), (r, key)


def test_missing_field_is_named(evals):
    records = per_image(evals, "a")
    del records[2]["FP@0.5"]
    with pytest.raises(InputError, match=r"per_image\.json: image 'img2': per-image field 'FP@0.5' is missing"):
        image_table(records, "per_image.json")
    records = per_image(evals, "a")
    records[0]["matches"][0]["iou"] = "high"
    with pytest.raises(InputError, match=r"image 'img0': per-image field 'iou' is not a finite number"):
        image_table(records, "x")
    with pytest.raises(InputError, match=r"no per-image data for 'IMQ_mad@0.9'"):
        summary_statistic("IMQ_mad@0.9", image_table(per_image(evals, "a")))


# ------------------------------------------------------------------------------------------ paired / compare


def test_paired_identical_inputs_give_zero_and_p_one(evals):
    outcome = paired_bootstrap(per_image(evals, "a"), per_image(evals, "a_again"), "IMQ_mad@0.5", resamples=300)
    assert (outcome["difference"], outcome["low"], outcome["high"], outcome["p_value"]) == (0.0, 0.0, 0.0, 1.0)


def test_paired_matches_images_by_stem_not_order(evals):
    a, b = per_image(evals, "a"), per_image(evals, "worse")
    straight = paired_bootstrap(a, b, "RQ@0.5", resamples=200)
    shuffled = paired_bootstrap(a, b[::-1], "RQ@0.5", resamples=200)
    assert shuffled == straight


def test_compare_identical_evaluations(evals, tmp_path):
    root = evals["root"]
    out = tmp_path / "cmp.json"
    run = CliRunner().invoke(main, ["compare", str(root / "eval_a"), str(root / "eval_a_again"), "--bootstrap",
                                    "400", "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert "IMQ_mad@0.5" in run.output and "1.000" in run.output
    document = json.loads(out.read_text())
    (comparison,) = document["comparisons"]
    assert comparison["difference"] == 0.0 and comparison["p_value"] == 1.0
    assert comparison["num_images"] == 6 and comparison["resamples"] == 400
    assert document["a"].endswith("eval_a/per_image.json")


def test_compare_separates_a_strictly_worse_copy(evals, tmp_path):
    root = evals["root"]
    a, worse = per_image(evals, "a"), per_image(evals, "worse")
    assert all(x["IMQ_mad@0.5"] > y["IMQ_mad@0.5"] for x, y in zip(a, worse, strict=True))  # every image worse
    out = tmp_path / "cmp.json"
    run = CliRunner().invoke(main, ["compare", str(root / "eval_a"), str(root / "eval_b" / "per_image.json"),
                                    "--metric", "IMQ_mad@0.5", "--metric", "MQ_mse@0.75", "--out", str(out)])
    assert run.exit_code == 0, run.output
    for comparison in json.loads(out.read_text())["comparisons"]:
        assert comparison["difference"] > 0 and comparison["low"] > 0, comparison
        assert comparison["p_value"] < 0.05
    assert "<0.001" in run.output
    # and the other way round: a negative difference whose interval lies below 0
    reverse = paired_bootstrap(worse, a, "IMQ_mad@0.5")
    assert reverse["high"] < 0 and reverse["p_value"] < 0.05


def test_compare_refuses_different_image_sets(evals):
    root = evals["root"]
    run = CliRunner().invoke(main, ["compare", str(root / "eval_a"), str(root / "eval_fewer")])
    assert run.exit_code == 2
    message = run.output.strip().splitlines()[-1]
    assert "do not score the same images" in message and "1 scored only in" in message and "'img5'" in message
    assert "eval_fewer" in message


@pytest.mark.parametrize("problem", ["missing", "not_json", "not_list", "unknown_metric"])
def test_compare_bad_inputs_exit_2_naming_the_file(evals, tmp_path, problem):
    root = evals["root"]
    bad = tmp_path / "eval_bad"
    bad.mkdir()
    args = ["compare", str(root / "eval_a"), str(bad)]
    if problem == "not_json":
        (bad / "per_image.json").write_text("[{")
    elif problem == "not_list":
        (bad / "per_image.json").write_text('{"stem": "img0"}')
    elif problem == "unknown_metric":
        args = ["compare", str(root / "eval_a"), str(root / "eval_b"), "--metric", "IMQ_mad@0.9"]
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 2, run.output
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    expected = {
        "missing": "eval_bad/per_image.json: no such file",
        "not_json": "eval_bad/per_image.json: not valid JSON",
        "not_list": "eval_bad/per_image.json: expected a list of per-image records",
        "unknown_metric": "eval_a/per_image.json: no per-image data for 'IMQ_mad@0.9'",
    }[problem]
    assert expected in lines[0]
