"""The one table of metrics (himbench.metrics.table): every key a real evaluation, a bench row and the leaderboard
report is described there with a direction, keys are built from it, and the accumulators that can merge do."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from himbench.bench import BenchConfig, bench_method, result_row
from himbench.bench.environment import Environment
from himbench.bench.results import FIXED_COLUMNS
from himbench.evaluation import evaluate_folder
from himbench.evaluation.breakdown import add_statistics
from himbench.io import encode_alpha_png, write_alpha_png
from himbench.leaderboard import ACCURACY_COLUMNS, INSTANCE_COLUMNS, RANK_METRIC, metric_direction
from himbench.methods import Method, Prediction
from himbench.metrics import (
    HEADLINE_METRIC,
    IMQ_ERRORS,
    METRICS,
    UNITS,
    direction,
    higher_is_better,
    metric_key,
    metric_label,
    parse_key,
    resolve,
)
from himbench.metrics.paper_units import MAGGIE_COLUMNS, PAPER_TABLES, MaggieAccumulator
from himbench.metrics.table import CLASSIC_ERRORS, INSTANCE_ERRORS

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (48, 64)
# Columns of a bench row that describe the run rather than measure it (himbench.bench.results documents them).
DESCRIPTIVE = {"method", "data", "split", "environment", "size_protocol", "guidance", "mask_set", "trained",
               "peak_mem_kind", "device_name", "torch_version", "date", "spec", "command"}


def _disc(cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return (np.round(np.clip((r - np.hypot(yy - cy, xx - cx)) / 3.0, 0, 1) * 255) / 255).astype(np.float32)


def _scene(k: int) -> np.ndarray:
    return np.stack([_disc(18 + k, 18, 10), _disc(26, 44 - k, 11)])


def _old_prefix_rule(column: str) -> str | None:
    """The leaderboard's direction before the table: guessed from name prefixes (kept here as the reference)."""
    name = column.lower()
    if name.startswith(("imq", "rq", "mq", "pq")):
        return "max"
    if name.startswith("inst_") and name != "inst_count":
        return "min"
    if name.startswith(("latency", "peak_mem", "params")) or name in {"sad", "mse", "mad", "grad", "conn"}:
        return "min"
    return None


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """A real HIM-2K-style evaluation of three images (one prediction missing a person), with its breakdown."""
    root = tmp_path_factory.mktemp("tableeval")
    for k in range(3):
        stem = f"img{k}"
        truth = _scene(k)
        for i, alpha in enumerate(truth):
            write_alpha_png(root / "gt" / "alphas" / "test" / stem / f"{i:02d}.png", alpha)
        (root / "gt" / "images" / "test").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "gt" / "images" / "test" / f"{stem}.png"), np.full((*SHAPE, 3), 90, np.uint8))
        for i, alpha in enumerate(truth[: 2 - (k == 2)]):
            write_alpha_png(root / "pred" / "test" / stem / f"{i:02d}.png", np.clip(alpha * 0.9, 0, 1))
    result = evaluate_folder(root / "pred", root / "gt", workers=1, progress=False)
    return add_statistics(result, ("people", "size"), resamples=20, seed=1)


# ------------------------------------------------------------------------------------------------ the table
def test_every_entry_is_complete_and_names_are_unique():
    assert len({m.name for m in METRICS}) == len(METRICS)
    for metric in METRICS:
        assert metric.key and metric.units and metric.description, metric.name
        assert metric.kind in ("accuracy", "cost", "count"), metric.name
        assert (metric.higher_is_better is None) == (metric.kind == "count"), metric.name
        assert ("err" in metric.fields()) == bool(metric.errors), metric.name


def test_keys_are_built_and_parsed_back():
    assert metric_key("IMQ", "mad", 0.5) == HEADLINE_METRIC == RANK_METRIC == "IMQ_mad@0.5"
    assert metric_key("MQ", "conn", "0.75") == "MQ_conn@0.75"
    assert metric_key("RQ", threshold=0.75) == "RQ@0.75" and metric_key("recall", threshold=0.5) == "recall@0.5"
    assert metric_key("inst", "SAD") == "inst_SAD" and metric_key("maggie", "Grad") == "maggie_Grad"
    assert metric_key("p3m", "SAD_trimap") == "p3m_SAD_trimap" and metric_key("latency_ms_n", n=6) == "latency_ms_n6"
    assert metric_key("params") == "params" and metric_label("IMQ", "grad") == "IMQ_grad" and metric_label("RQ") == "RQ"
    metric, fields = parse_key("MQ_grad@0.75")
    assert metric.name == "MQ" and fields == {"err": "grad", "tag": "0.75"}
    assert resolve("IMQ_mad@0.5_lo").name == "IMQ" and resolve("inst_MAD_hi").name == "inst"
    for bad in ("IMQ_sad@0.5", "imq_mad@0.5", "RQ", "maggie_Foo", "method", "IMQ_mad@"):
        assert resolve(bad) is None and direction(bad) is None, bad


@pytest.mark.parametrize("call", [
    lambda: metric_key("IMQ", "sad", 0.5),  # not one of IMQ's errors
    lambda: metric_key("IMQ", "mad"),  # the threshold is missing
    lambda: metric_key("RQ", "mad", 0.5),  # RQ takes no error
    lambda: metric_key("latency_ms_n"),  # n is missing
])
def test_a_malformed_key_request_is_refused(call):
    with pytest.raises(ValueError):
        call()
    with pytest.raises(KeyError):
        metric_key("IMQQ", "mad", 0.5)


def test_directions_come_from_the_table():
    assert direction("IMQ_mad@0.5") == direction("recall@0.75") == direction("PQ@0.5") == "max"
    assert direction("inst_Conn") == direction("maggie_MAD") == direction("dim_Grad_trimap") == "min"
    assert direction("latency_ms_n6") == direction("peak_mem_mb") == direction("params") == "min"
    assert higher_is_better("TP@0.5") is None and higher_is_better("inst_count") is None
    assert metric_direction("inst_MAD") == "min" and metric_direction("maggie_SAD") == "min"  # prefix rule: None


def test_error_names_match_the_modules_that_compute_them():
    from himbench.metrics import imq

    assert imq.IMQ_ERRORS == IMQ_ERRORS and imq.INSTANCE_ERRORS == INSTANCE_ERRORS
    assert set(CLASSIC_ERRORS) == {key for units in UNITS.values() for key in units}
    assert set(MAGGIE_COLUMNS) == set(resolve("maggie_MAD").errors)
    for table in PAPER_TABLES.values():
        assert all(resolve(k) is not None for k in table["columns"].values() if k), table["paper"]


# ------------------------------------------------------------------------------------------- real outputs
def test_every_key_of_a_real_evaluation_is_described(evaluation):
    summary = evaluation.summary
    assert summary[HEADLINE_METRIC] < 100.0 and summary["FN@0.5"] == 1  # a real, imperfect evaluation
    undescribed = [k for k in summary if resolve(k) is None]
    assert not undescribed
    per_image = {k for r in evaluation.records for k, v in r.items() if isinstance(v, int | float)}
    undescribed = [k for k in per_image if resolve(k) is None and not k.startswith("sim_")]  # sim_*: resampling sums
    assert not undescribed
    for stratum in evaluation.breakdown.values():
        for bucket in stratum["buckets"]:
            keys = [k for k, v in bucket.items() if k not in ("label", "low", "high", "intervals")]
            assert keys and all(resolve(k) is not None for k in keys), keys
            assert set(bucket["intervals"]) <= set(keys)
    assert evaluation.intervals and all(resolve(k) is not None for k in evaluation.intervals)


class _Blurry(Method):
    """Returns each image's ground truth dimmed: an imperfect method whose scores are known to be real numbers."""

    name = "blurry"
    spec = {"name": "blurry"}

    def __init__(self, truth: dict[bytes, np.ndarray]) -> None:
        self.truth = truth

    def predict(self, image, masks=None):
        alphas = self.truth.get(image.tobytes(), np.zeros((0, *image.shape[:2]), np.float32))
        return Prediction(np.clip(alphas * 0.97, 0, 1), np.ones(len(alphas)))


def test_every_column_of_a_real_bench_row_is_described(tmp_path):
    from himbench.shards import boxes_from_alphas, read_split, shard_name, write_shard

    rows = []
    for k in range(2):
        alphas = _scene(k)
        ok, png = cv2.imencode(".png", np.full((*SHAPE, 3), 60 + 40 * k, np.uint8))
        assert ok
        rows.append({"id": f"img{k}", "seed": k, "image": png.tobytes(),
                     "alphas": [encode_alpha_png(a) for a in alphas], "boxes": boxes_from_alphas(alphas).tolist(),
                     "depth_order": [0, 1], "fg_sources": ["a", "b"], "bg_source": "flat", "width": SHAPE[1],
                     "height": SHAPE[0], "num_instances": 2})
    write_shard(rows, tmp_path / "data" / shard_name("test", 0, 1))
    samples = list(read_split(tmp_path, "test"))
    config = BenchConfig(data=str(tmp_path), methods=(), device="cpu", latency_counts=(), latency_size=32,
                         latency_repeats=1, bootstrap=20)
    result = bench_method(lambda: _Blurry({s.image.tobytes(): s.alphas for s in samples}), samples, config)
    row = result_row(result, config, Environment("cpu", "test cpu", 1, "0.0"), "2026-01-01")
    assert 0 < row[HEADLINE_METRIC] < 100 and f"{HEADLINE_METRIC}_lo" in row and "maggie_MAD" in row
    undescribed = [k for k in (*row, *FIXED_COLUMNS) if k not in DESCRIPTIVE and resolve(k) is None]
    assert not undescribed


def test_every_leaderboard_column_is_described():
    for column, _ in (*ACCURACY_COLUMNS, *INSTANCE_COLUMNS):
        assert resolve(column) is not None, column
    assert resolve(RANK_METRIC).higher_is_better is True


def test_higher_is_better_agrees_with_the_old_prefix_rule_on_results_csv():
    for name in ("results.csv", "crowd.csv"):
        with open(ROOT / "leaderboard" / name, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
        assert rows
        for column in rows[0]:
            old, new = _old_prefix_rule(column), direction(column)
            numeric = any(_is_number(r.get(column)) for r in rows)
            if column == "peak_mem_kind":  # text ("cuda", "rss"): the prefix rule gave it "min" by accident
                assert not numeric and new is None
            elif column.startswith(("maggie_", "p3m_", "dim_")) and column not in ("maggie_count",):
                assert old is None and new == "min", column  # errors the prefix rule knew nothing of
            else:
                assert new == old, (name, column, old, new)
                assert column in DESCRIPTIVE or resolve(column) is not None, column


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------------------------- merging
def test_maggie_accumulator_split_and_merged_equals_the_whole():
    rng = np.random.default_rng(4)
    images = [(np.clip(_scene(k) + rng.normal(0, 0.05, (2, *SHAPE)), 0, 1), _scene(k)) for k in range(4)]
    whole = MaggieAccumulator()
    for pred, gt in images:
        whole.add(pred, gt)
    first, second = MaggieAccumulator(), MaggieAccumulator()
    for pred, gt in images[:1]:
        first.add(pred, gt)
    for pred, gt in images[1:]:
        second.add(pred, gt)
    added = first + second
    assert added.summary() == pytest.approx(whole.summary(), rel=1e-12)
    assert first.summary() != whole.summary()  # + made a new accumulator
    first += second
    assert first.summary() == pytest.approx(whole.summary(), rel=1e-12) and first.count == whole.count == 8
    with pytest.raises(TypeError):
        first += 1
