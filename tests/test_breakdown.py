"""Scores by stratum (`evaluate --breakdown`, himbench.evaluation.breakdown) and `--bootstrap` intervals."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from himbench.cli import main
from himbench.evaluation import evaluate_folder
from himbench.evaluation.breakdown import add_statistics, breakdown, parse_edges, parse_strata
from himbench.io import InputError, encode_alpha_png, write_alpha_png
from himbench.metrics.bootstrap import summary_intervals
from himbench.shards import write_shard

SHAPE = (64, 96)
PIXELS = SHAPE[0] * SHAPE[1]
OCCLUSION_CYCLE = (0.0, 0.1, 0.4, 0.7, 1.0, 0.05, 0.3, 0.5)  # every default bucket, and each edge


def rect(y: int, x: int, h: int, w: int, value: float = 1.0) -> np.ndarray:
    alpha = np.zeros(SHAPE, np.float32)
    alpha[y:y + h, x:x + w] = value
    return alpha


def crowd(count: int) -> np.ndarray:
    """``count`` disjoint people on a 4 x 6 grid of 16 x 16 cells (12 x 12 each, 2.3% of the image)."""
    return np.stack([rect(16 * (k // 6) + 2, 16 * (k % 6) + 2, 12, 12) for k in range(count)])


def write_shard_gt(root: Path, scenes: dict[str, np.ndarray], with_occlusion: bool = True) -> dict[str, list]:
    rows, occlusion = [], {}
    image = cv2.imencode(".png", np.zeros((*SHAPE, 3), np.uint8))[1].tobytes()
    for k, (stem, alphas) in enumerate(scenes.items()):
        occlusion[stem] = [OCCLUSION_CYCLE[(k + i) % len(OCCLUSION_CYCLE)] for i in range(len(alphas))]
        row = {"id": stem, "seed": k, "image": image, "alphas": [encode_alpha_png(a) for a in alphas],
               "boxes": [[0, 0, SHAPE[1], SHAPE[0]]] * len(alphas), "depth_order": list(range(len(alphas))),
               "fg_sources": ["x"] * len(alphas), "bg_source": "bg", "width": SHAPE[1], "height": SHAPE[0],
               "num_instances": len(alphas)}
        rows.append(row | {"occlusion": occlusion[stem]})
    path = root / "data" / "test-00000-of-00001.parquet"
    write_shard(rows, path)
    if not with_occlusion:  # a shard made before the column existed: the column itself is absent
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        pq.write_table(table.drop_columns(["occlusion"]).replace_schema_metadata(table.schema.metadata), path)
    return occlusion


def write_predictions(root: Path, scenes: dict[str, np.ndarray]) -> None:
    for stem, alphas in scenes.items():
        for i, alpha in enumerate(alphas):
            write_alpha_png(root / "test" / stem / f"{i:02d}.png", alpha)


def write_him2k(root: Path, scenes: dict[str, np.ndarray]) -> None:
    for stem, alphas in scenes.items():
        for i, alpha in enumerate(alphas):
            write_alpha_png(root / "alphas" / "test" / stem / f"{i:02d}.png", alpha)


SCENES = {f"img{n}": crowd(n) for n in (1, 2, 3, 5, 8, 13)}


@pytest.fixture(scope="module")
def perfect(tmp_path_factory):
    """Shards with an occlusion column, predicted exactly."""
    root = tmp_path_factory.mktemp("perfect")
    occlusion = write_shard_gt(root / "gt", SCENES)
    write_predictions(root / "pred", SCENES)
    result = evaluate_folder(root / "pred", root / "gt", workers=1, progress=False)
    return root, occlusion, add_statistics(result, ("occlusion", "people", "size"), resamples=200, seed=3)


# ------------------------------------------------------------------------------------------------- core
def test_bucket_counts_add_up_to_the_ground_truth_people(perfect):
    _, occlusion, result = perfect
    total = result.summary["num_gt"]
    assert total == sum(len(v) for v in occlusion.values()) == 32
    for stratum in ("occlusion", "size"):
        assert sum(b["num_gt"] for b in result.breakdown[stratum]["buckets"]) == total
    assert sum(b["num_gt"] for b in result.breakdown["people"]["buckets"]) == total
    assert sum(b["num_images"] for b in result.breakdown["people"]["buckets"]) == len(SCENES)
    # the occlusion buckets hold exactly the people whose stored fraction falls in them (edges: [lo, hi), last closed)
    fractions = np.array([v for values in occlusion.values() for v in values])
    expected = [int(np.sum((fractions >= lo) & (fractions < hi))) for lo, hi in ((0, .05), (.05, .3), (.3, .5))]
    expected.append(int(np.sum(fractions >= 0.5)))
    assert [b["num_gt"] for b in result.breakdown["occlusion"]["buckets"]] == expected
    assert all(expected)
    assert [b["num_images"] for b in result.breakdown["people"]["buckets"]] == [1, 2, 1, 2]


def test_a_prediction_equal_to_the_truth_has_recall_100_in_every_bucket(perfect):
    _, _, result = perfect
    for stratum in ("occlusion", "size"):
        for bucket in result.breakdown[stratum]["buckets"]:
            if bucket["num_gt"]:
                assert bucket["recall@0.5"] == bucket["recall@0.75"] == 100.0, (stratum, bucket["label"])
                assert bucket["matched"] == bucket["num_gt"] and bucket["MAD"] == 0.0
                assert bucket["intervals"]["recall@0.5"] == {"low": 100.0, "high": 100.0}
            else:  # nobody of that size: no recall rather than a 0
                assert bucket["recall@0.5"] is None and bucket["MAD"] is None
    for bucket in result.breakdown["people"]["buckets"]:
        assert bucket["RQ@0.5"] == bucket["IMQ_mad@0.5"] == bucket["MQ_mad@0.75"] == 100.0


def test_hand_worked_crowd_size_and_person_size(tmp_path):
    # A: one big person (40x40 = 26% of the image), exact. B: 20x20 (6.5%) exact and 4x10 (0.65%) missed.
    # C: one 10x20 person (3.3%) predicted on the same pixels at alpha 128/255.
    big, mid, small, half = rect(2, 2, 40, 40), rect(2, 60, 20, 20), rect(50, 80, 4, 10), rect(30, 50, 10, 20)
    write_him2k(tmp_path / "gt", {"A": big[None], "B": np.stack([mid, small]), "C": half[None]})
    write_predictions(tmp_path / "pred", {"A": big[None], "B": mid[None], "C": (half * 128 / 255)[None]})
    result = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False)
    found = breakdown(result.records, gt_kind=result.config.gt_kind)

    one, two_three = found["people"]["buckets"][:2]
    assert (one["label"], one["num_images"], one["num_gt"]) == ("1", 2, 2)
    # A: similarity 1; C: per-pixel error 127/255 over the union of 200 pixels -> similarity 1 - min(10 * err, 1) = 0
    assert one["RQ@0.5"] == pytest.approx(100.0) and one["IMQ_mad@0.5"] == pytest.approx(50.0)
    assert one["MQ_mad@0.5"] == pytest.approx(50.0)
    # B: TP 1, FN 1 -> RQ = 1 / 1.5; its TP is exact so IMQ = RQ and MQ = 100
    assert (two_three["label"], two_three["num_images"], two_three["num_gt"]) == ("2-3", 1, 2)
    assert two_three["RQ@0.5"] == pytest.approx(200 / 3) and two_three["IMQ_mad@0.5"] == pytest.approx(200 / 3)
    assert two_three["MQ_mad@0.5"] == pytest.approx(100.0)
    assert [b["num_images"] for b in found["people"]["buckets"][2:]] == [0, 0]
    assert found["people"]["buckets"][3]["IMQ_mad@0.5"] is None

    size = {b["label"]: b for b in found["size"]["buckets"]}
    assert list(size) == ["[0, 0.01)", "[0.01, 0.05)", "[0.05, 0.2)", "[0.2, 1]"]
    assert [b["num_gt"] for b in size.values()] == [1, 1, 1, 1]
    assert size["[0, 0.01)"]["recall@0.5"] == 0.0 and size["[0, 0.01)"]["MAD"] is None
    assert size["[0.01, 0.05)"]["recall@0.75"] == 100.0
    assert size["[0.01, 0.05)"]["MAD"] == pytest.approx(127 / 255 * 200 / PIXELS * 1000, rel=1e-6)
    assert size["[0.05, 0.2)"]["MAD"] == size["[0.2, 1]"]["MAD"] == 0.0
    # the stored areas are exact shares of the image
    record = next(r for r in result.records if r["stem"] == "B")
    assert record["gt_area"] == [400 / PIXELS, 40 / PIXELS] and record["gt_occlusion"] is None


def test_him2k_folder_says_occlusion_is_unavailable_and_the_rest_works(tmp_path):
    write_him2k(tmp_path / "gt", {"a": crowd(2), "b": crowd(4)})
    write_predictions(tmp_path / "pred", {"a": crowd(2), "b": crowd(3)})
    result = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False)
    found = add_statistics(result, ("occlusion", "people", "size"), resamples=0).breakdown
    assert found["occlusion"]["available"] is False
    assert "him2k" in found["occlusion"]["reason"] and "amodal" in found["occlusion"]["reason"]
    assert sum(b["num_gt"] for b in found["size"]["buckets"]) == 6
    assert [b["RQ@0.5"] for b in found["people"]["buckets"][1:3]] == [100.0, pytest.approx(100 * 3 / 3.5)]
    assert result.intervals is None  # --bootstrap 0


def test_shards_without_the_occlusion_column_say_so(tmp_path):
    write_shard_gt(tmp_path / "gt", {"a": crowd(2)}, with_occlusion=False)
    write_predictions(tmp_path / "pred", {"a": crowd(2)})
    result = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False)
    found = breakdown(result.records, ("occlusion", "size"), gt_kind="shards")
    assert found["occlusion"]["available"] is False and "built before the column" in found["occlusion"]["reason"]
    assert found["size"]["buckets"][1]["num_gt"] == 2


def test_records_without_per_person_fields_are_refused_naming_the_file():
    records = [{"stem": "a", "num_gt": 1, "matches": []}]
    with pytest.raises(InputError, match=r"old/per_image.json.*'a'.*gt_area"):
        breakdown(records, ("size",), source="old/per_image.json")


def test_parsing():
    assert parse_edges("0, 0.5,1") == (0.0, 0.5, 1.0)
    assert parse_strata("size,occlusion") == ("occlusion", "size") and parse_strata("all") == parse_strata(
        "occlusion,people,size")
    for text, problem in (("0,0.3,0.2,1", "strictly increasing"), ("0,x,1", "not a number"),
                          ("0.1,1", "start at 0"), ("0", "at least two"), ("0,nan,1", "finite")):
        with pytest.raises(InputError, match=problem):
            parse_edges(text)
    with pytest.raises(InputError, match="unknown stratum 'crowd'"):
        parse_strata("people,crowd")


# ------------------------------------------------------------------------------------------------- intervals
def test_bootstrap_intervals_are_seeded_cover_the_value_and_match_summary_intervals(perfect, tmp_path):
    _, _, result = perfect
    assert result.bootstrap["resamples"] == 200 and result.bootstrap["seed"] == 3
    assert set(result.intervals) >= {"IMQ_mad@0.5", "RQ@0.75", "inst_MAD", "num_gt"}
    assert set(result.intervals) <= set(result.summary)
    reference = summary_intervals(result.records, 200, 3)
    for key, interval in result.intervals.items():
        assert interval == {"low": reference[key]["low"], "high": reference[key]["high"]}
        assert interval["low"] <= result.summary[key] + 1e-9 <= interval["high"] + 2e-9
        assert reference[key]["value"] == pytest.approx(result.summary[key], abs=1e-9)


def test_stored_similarity_sums_make_resampling_exact(tmp_path):
    scenes = {"a": crowd(3), "b": crowd(2)}
    write_him2k(tmp_path / "gt", scenes)
    write_predictions(tmp_path / "pred", {s: a * 0.97 for s, a in scenes.items()})
    result = evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False)
    assert all("sim_mad@0.5" in r for r in result.records)
    values = summary_intervals(result.records, 10, 0)
    for key in ("IMQ_mad@0.5", "IMQ_grad@0.75", "MQ_conn@0.5"):
        assert values[key]["value"] == result.summary[key]  # exact, not just close
    assert "sim_mad@0.5" not in values  # inputs to IMQ, not numbers of their own


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_writes_breakdown_intervals_and_plot(tmp_path):
    write_shard_gt(tmp_path / "gt", SCENES)
    write_predictions(tmp_path / "pred", {s: a[:-1] for s, a in SCENES.items()})  # each image's last person missed
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out",
                                       str(out), "--workers", "1", "--quiet", "--breakdown", "all", "--bootstrap",
                                       "50", "--seed", "1", "--occlusion-buckets", "0,0.5,1", "--plot"])
    assert result.exit_code == 0, result.output
    assert "Breakdown" in result.output and "recall@0.5" in result.output
    doc = json.loads((out / "summary.json").read_text())
    assert doc["bootstrap"]["resamples"] == 50 and doc["bootstrap"]["seed"] == 1
    assert set(doc["intervals"]) == set(doc["summary"])
    occlusion = doc["breakdown"]["occlusion"]
    assert occlusion["edges"] == [0.0, 0.5, 1.0] and len(occlusion["buckets"]) == 2
    assert sum(b["num_gt"] for b in occlusion["buckets"]) == doc["summary"]["num_gt"]
    assert sum(b["matched"] for b in occlusion["buckets"]) == doc["summary"]["TP@0.5"] == 32 - 6
    assert (out / "breakdown.png").stat().st_size > 1000
    per_image = json.loads((out / "per_image.json").read_text())
    assert all(len(r["gt_area"]) == r["num_gt"] for r in per_image)
    assert "gt_area" not in (out / "per_image.csv").read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--occlusion-buckets", "0,0.3,0.2,1", "--occlusion-buckets: edges must be strictly increasing"),
        ("--occlusion-buckets", "0,a,1", "--occlusion-buckets: 'a' is not a number"),
        ("--size-buckets", "0.5,1", "--size-buckets: edges must start at 0"),
        ("--breakdown", "people,crowd", "--breakdown: unknown stratum 'crowd'"),
    ],
)
def test_cli_bad_breakdown_options_exit_2_before_scoring(tmp_path, option, value, message):
    write_him2k(tmp_path / "gt", {"a": crowd(1)})
    (tmp_path / "pred" / "test").mkdir(parents=True)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out",
                                       str(out), "--quiet", option, value])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()  # refused before anything was scored or written


def test_bootstrap_zero_writes_no_intervals(tmp_path):
    write_him2k(tmp_path / "gt", {"a": crowd(2)})
    write_predictions(tmp_path / "pred", {"a": crowd(2)})
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out",
                                       str(out), "--workers", "1", "--quiet", "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "summary.json").read_text())
    assert "intervals" not in doc and "breakdown" not in doc


# ------------------------------------------------------------------------------------------------- bench
def test_bench_bootstrap_writes_interval_columns_and_breakdown_sidecar(tmp_path):
    from himbench.bench.results import read_results
    from himbench.cli.bench import command

    scenes = {f"img{n}": crowd(n) for n in (1, 2, 4)}
    write_shard_gt(tmp_path / "gt", scenes)
    out, csv_path = tmp_path / "out", tmp_path / "lb.csv"
    args = ["--methods", "mask-cf", "--data", str(tmp_path / "gt"), "--out", str(out), "--leaderboard",
            str(csv_path), "--device", "cpu", "--latency-size", "64", "--max-instances", "1", "--latency-repeats",
            "1", "--guidance", "none", "--no-progress", "--bootstrap", "100", "--breakdown", "occlusion,people"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    row = read_results(csv_path)[0]
    header = list(row)
    for key in ("IMQ_mad@0.5", "RQ@0.75", "inst_MAD"):
        assert header[header.index(key) + 1: header.index(key) + 3] == [f"{key}_lo", f"{key}_hi"]
        assert float(row[f"{key}_lo"]) <= float(row[key]) + 1e-6 <= float(row[f"{key}_hi"]) + 2e-6
    sidecar = next(out.glob("*.breakdown.json"))
    strata = json.loads(sidecar.read_text())["mask-cf"]
    assert sum(b["num_gt"] for b in strata["occlusion"]["buckets"]) == 7
    assert [b["num_images"] for b in strata["people"]["buckets"]] == [1, 1, 1, 0]
    bad = CliRunner().invoke(command, [*args[:-2], "--breakdown", "crowd"])
    assert bad.exit_code == 2 and "unknown stratum 'crowd'" in bad.output
