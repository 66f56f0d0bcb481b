"""Hostile input to evaluation, round two (issue 25): bad ground-truth rows, ground truth with nothing readable,
mistyped prediction manifests, non-finite options, an unwritable --out, and shard names past 99,999.

Each attack ends in a one-line error with exit status 2 (nothing written), or in a counted problem naming the file,
with every good image scored exactly as in a clean run. Shards are corrupted by rewriting a good one with pyarrow.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from himbench.cli import main
from himbench.evaluation import evaluate_folder
from himbench.evaluation.runner import EvaluationConfig, unreadable_ground_truth
from himbench.io import InputError, encode_alpha_png, write_alpha_png
from himbench.predictions.manifest import FORMAT, MANIFEST_NAME, merged_manifest, new_manifest, read_manifest
from himbench.shards import ShardFolder, boxes_from_alphas, is_shard_name, read_split, shard_name, write_shard

SHAPE = (40, 60)
STEMS = ("a", "b", "c", "d")
BAD = 1  # the corrupted row: "b", with good rows before and after it


def _blob(cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return (np.round(np.clip((r - np.hypot(yy - cy, xx - cx)) / 3.0, 0, 1) * 255) / 255).astype(np.float32)


def _truth(k: int) -> np.ndarray:
    return np.stack([_blob(14 + k, 15, 9), _blob(22, 42 - k, 10)])


def _row(stem: str, k: int) -> dict:
    alphas = _truth(k)
    png = cv2.imencode(".png", np.full((*SHAPE, 3), 90, np.uint8))[1].tobytes()
    return {
        "id": stem, "seed": k, "image": png, "alphas": [encode_alpha_png(a) for a in alphas],
        "boxes": boxes_from_alphas(alphas).tolist(), "depth_order": [0, 1], "fg_sources": ["t", "t"],
        "bg_source": "t", "width": SHAPE[1], "height": SHAPE[0], "num_instances": 2,
    }  # fmt: skip


def _write_predictions(pred: Path, stems=STEMS) -> None:
    for k, stem in enumerate(STEMS):
        if stem in stems:
            for i, alpha in enumerate(_truth(k)[::-1]):  # imperfect, so the numbers are not all 100
                write_alpha_png(pred / "test" / stem / f"{i:02d}.png", np.clip(alpha * 0.9 + 0.03 * (alpha > 0), 0, 1))


def _shard(root: Path, stems=STEMS, name: str | None = None) -> Path:
    path = root / "data" / (name or shard_name("test", 0, 1))
    write_shard([_row(stem, STEMS.index(stem)) for stem in stems], path)
    return path


def _score(pred: Path, gt: Path):
    result = evaluate_folder(pred, gt, split="test", workers=1, progress=False)
    return result, {r["stem"]: r for r in result.records}


def _replace_column(path: Path, name: str, values: list, kind=None) -> None:
    """Rewrite one column of a shard (pyarrow directly, as another tool would)."""
    table = pq.read_table(path)
    index = table.schema.get_field_index(name)
    kind = table.schema.field(name).type if kind is None else kind
    table = table.set_column(index, pa.field(name, kind), pa.array(values, type=kind))
    pq.write_table(table, path)


def _column(path: Path, name: str) -> list:
    return pq.read_table(path, columns=[name]).column(name).to_pylist()


@pytest.fixture
def clean(tmp_path: Path):
    """Predictions for all four images, and the records and summary of a clean run without image b (what a run with
    a bad row b must give for the others)."""
    pred = tmp_path / "pred"
    _write_predictions(pred)
    _shard(tmp_path / "full")
    _, full_records = _score(pred, tmp_path / "full")
    _shard(tmp_path / "without_b", stems=("a", "c", "d"))
    without_b, _ = _score(pred, tmp_path / "without_b")
    return pred, full_records, without_b.summary


def _corrupt_one_row(path: Path, column: str, value, kind=None) -> None:
    values = _column(path, column)
    if kind is not None:  # a float column: the good rows hold the same whole numbers as floats
        values = [float(v) for v in values]
    values[BAD] = value
    _replace_column(path, column, values, kind)


# ------------------------------------------------------------------------------- one bad row costs one image
@pytest.mark.parametrize(
    ("column", "value", "kind", "reason"),
    [
        ("alphas", None, None, "alphas is null"),
        ("alphas", [None], None, r"alphas\[0\] is null"),
        ("alphas", [{"bytes": None, "path": "/etc/passwd"}], None, "column 'alphas' holds no PNG bytes"),
        ("height", None, None, "height is null"),
        ("height", -40, None, "height is -40, not a positive integer"),
        ("width", 0, None, "width is 0, not a positive integer"),
        ("height", 40.5, pa.float64(), "height is float 40.5, not an integer"),
        ("width", float("nan"), pa.float64(), "width is float nan, not an integer"),
    ],
)
def test_one_bad_ground_truth_row_costs_exactly_one_image(clean, tmp_path, column, value, kind, reason):
    pred, full_records, summary_without_b = clean
    shard = _shard(tmp_path / "gt")
    _corrupt_one_row(shard, column, value, kind)
    result, records = _score(pred, tmp_path / "gt")
    assert list(records) == list(STEMS)
    assert records["b"]["status"] == "bad_ground_truth"
    for stem in ("a", "c", "d"):  # c and d come after the bad row: still read, scored as in a clean run
        assert records[stem] == full_records[stem], stem
    assert result.summary == summary_without_b
    bad = [p for p in result.problems if p.message.startswith("ground truth")]
    assert len(bad) == 1 and bad[0].file == str(shard)
    assert "row 1 (id 'b')" in bad[0].message and "not scored" in bad[0].message
    assert re.search(reason, bad[0].message), bad[0].message


def test_null_or_mistyped_id_costs_its_row_only(clean, tmp_path):
    pred, full_records, summary_without_b = clean
    shard = _shard(tmp_path / "gt")
    _corrupt_one_row(shard, "id", None)
    result, records = _score(pred, tmp_path / "gt")
    assert list(records) == ["a", "c", "d"] and all(records[s] == full_records[s] for s in records)
    assert result.summary == summary_without_b
    assert [p.message for p in result.problems if p.file == str(shard)] == [
        "ground truth: row 1: id is null; image not scored"
    ]
    # an id column of another type (ints): every row of that shard is a problem, another shard still scores
    _replace_column(shard, "id", [1, 2, 3, 4], pa.int64())
    _shard(tmp_path / "gt", stems=("c", "d"), name=shard_name("test", 1, 2))
    shard.rename(shard.with_name(shard_name("test", 0, 2)))
    result, records = _score(pred, tmp_path / "gt")
    assert list(records) == ["c", "d"] and all(records[s] == full_records[s] for s in records)
    assert sum("sample id must be a string, got int" in p.message for p in result.problems) == 4


@pytest.mark.parametrize(
    ("values", "kind", "reason"),
    [
        (["x", "y"], pa.string(), "alphas is str '[xy]', not a list"),
        ([3, 4], pa.int64(), "alphas is int [34], not a list"),
        ([{"k": 1}, {"k": 2}], pa.struct([("k", pa.int64())]), "alphas is dict"),
        ([["x"], ["y"]], pa.list_(pa.string()), r"column 'alphas' holds no PNG bytes in \[0\] \(str '[xy]'\)"),
    ],
)
def test_alphas_column_of_the_wrong_type_is_a_problem_per_row(clean, tmp_path, values, kind, reason):
    """A column has one type per shard: its rows are each a counted problem, the other shard scores as usual."""
    pred, full_records, _ = clean
    first = _shard(tmp_path / "gt", stems=("a", "b"), name=shard_name("test", 0, 2))
    _shard(tmp_path / "gt", stems=("c", "d"), name=shard_name("test", 1, 2))
    _replace_column(first, "alphas", values, kind)
    result, records = _score(pred, tmp_path / "gt")
    assert records["a"]["status"] == records["b"]["status"] == "bad_ground_truth"
    assert records["c"] == full_records["c"] and records["d"] == full_records["d"]
    bad = [p.message for p in result.problems if p.file == str(first)]
    assert len(bad) == 2 and "row 0 (id 'a')" in bad[0] and "row 1 (id 'b')" in bad[1]

    assert all(re.search(reason, message) for message in bad), bad


def test_read_split_names_the_bad_row_instead_of_a_type_error(tmp_path):
    shard = _shard(tmp_path / "gt")
    _corrupt_one_row(shard, "seed", None)
    with pytest.raises(InputError, match=r"row 1 \(id 'b'\): seed is null"):
        list(read_split(tmp_path / "gt", "test"))
    folder = ShardFolder(tmp_path / "gt")
    assert folder.sample("a").id == "a"
    with pytest.raises(InputError, match=r"row 1 of row group 0 \(id 'b'\): seed is null"):
        folder.sample("b")
    rows = list(folder.checked_rows(shard, ["id", "seed"]))
    assert [error is None for _, error in rows] == [True, False, True, True]


# ----------------------------------------------------------------------------- nothing readable is an error
def _evaluate(args: list[str]):
    return CliRunner().invoke(main, ["evaluate", *args, "--workers", "1", "--quiet"])


def test_ground_truth_whose_shards_are_all_unreadable_is_an_error(tmp_path):
    gt = tmp_path / "gt"
    for index in range(2):
        path = gt / "data" / shard_name("test", index, 2)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not parquet at all")
    pred = tmp_path / "pred"
    _write_predictions(pred)
    out = tmp_path / "report"
    result = _evaluate([str(pred), "--gt", str(gt), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert f"{gt}: no ground-truth image found in split 'test'" in result.output
    assert "cannot read Parquet shard" in result.output and shard_name("test", 1, 2) in result.output
    assert not out.exists()
    # a misspelt PRED_DIR is refused too, not scored as "0 images"
    wrong = tmp_path / "elsewhere"
    (wrong / "test" / "zz").mkdir(parents=True)
    assert _evaluate([str(wrong), "--gt", str(gt), "--out", str(out)]).exit_code == 2 and not out.exists()


def test_ground_truth_whose_rows_are_all_bad_is_an_error(tmp_path):
    shard = _shard(tmp_path / "gt")
    _replace_column(shard, "alphas", [None] * len(STEMS))
    pred = tmp_path / "pred"
    _write_predictions(pred)
    result = _evaluate([str(pred), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "report")])
    assert result.exit_code == 2, result.output
    assert "none of the 4 ground-truth image(s) of split 'test' could be read" in result.output
    assert "row 0 (id 'a'): alphas is null" in result.output and "and 1 more" in result.output
    assert not (tmp_path / "report").exists()
    result = evaluate_folder(pred, tmp_path / "gt", workers=1, progress=False)  # the API still returns the records
    assert [r["status"] for r in result.records] == ["bad_ground_truth"] * 4
    assert "none of the 4" in unreadable_ground_truth(result)


def test_empty_him2k_split_is_an_error(tmp_path):
    (tmp_path / "gt" / "alphas" / "test").mkdir(parents=True)
    (tmp_path / "pred").mkdir()
    result = _evaluate([str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")])
    assert result.exit_code == 2 and "no ground-truth image found in split 'test'" in result.output


# ------------------------------------------------------------------------------- mistyped predictions.json
def _manifest_record(gt: Path) -> dict:
    return {"format": FORMAT, "source": {"kind": "shards", "path": str(gt)}, "splits": ["test"], "model": "m",
            "checkpoint": {"path": "ckpt", "sha256": "0" * 64}, "options": {}, "versions": {}, "created": "now"}


MISTYPED = [
    ("checkpoint", "abc", "'checkpoint' must be an object, not str"),
    ("checkpoint", None, "'checkpoint' must be an object, not null"),
    ("checkpoint", [], "'checkpoint' must be an object, not list"),
    ("checkpoint", {"path": 3, "sha256": None}, "'checkpoint.path' must be a string or null, not int"),
    ("model", None, "'model' must be a string, not null"),
    ("splits", "test", "'splits' must be a list of strings, not str"),
    ("source", ["x"], "'source' must be an object, not list"),
    ("source", {"kind": "shards", "path": "a\0b"}, "'source.path' must be a string or null"),
    ("source", {"kind": "mixed", "sources": 3}, "'source.sources' must be a list of objects"),
    ("options", "x", "'options' must be an object, not str"),
    ("created", 5, "'created' must be a string, not int"),
]


@pytest.mark.parametrize(("field", "value", "reason"), MISTYPED)
def test_mistyped_prediction_manifest_is_one_line(tmp_path, field, value, reason):
    gt = tmp_path / "gt"
    _shard(gt)
    pred = tmp_path / "pred"
    _write_predictions(pred)
    manifest = pred / MANIFEST_NAME
    manifest.write_text(json.dumps({**_manifest_record(gt), field: value}))
    with pytest.raises(InputError, match=reason.replace("(", r"\(")):
        read_manifest(pred)
    result = _evaluate([str(pred), "--out", str(tmp_path / "r1")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert str(manifest) in result.output and reason in result.output
    # with --gt: scored as usual, the manifest a counted problem naming the file
    out = tmp_path / "r2"
    given = _evaluate([str(pred), "--gt", str(gt), "--out", str(out)])
    assert given.exit_code == 0, given.output
    clean = evaluate_folder(pred, gt, workers=1, progress=False)
    assert json.loads((out / "summary.json").read_text())["summary"] == clean.summary
    problems = (out / "problems.csv").read_text()
    assert str(manifest) in problems and reason in problems
    # what `predict -o` calls before writing anything into such a folder
    with pytest.raises(InputError, match=reason.replace("(", r"\(")):
        merged_manifest(pred, new_manifest({"kind": "images"}, ["test"], "m", "ckpt", {}))


def test_predict_into_a_folder_with_a_mistyped_manifest_is_refused(tmp_path):
    from helpers import make_toy_dataset

    from himbench.checkpoints import save_checkpoint
    from himbench.registry import create_model

    data = make_toy_dataset(tmp_path / "gt", split="test", num_images=1, shards=1, size=(32, 48))
    checkpoint = save_checkpoint(create_model("e2ehim-tiny", input_size=64), tmp_path / "ckpt", "e2ehim-tiny")
    preds = tmp_path / "preds"
    preds.mkdir()
    (preds / MANIFEST_NAME).write_text(json.dumps({**_manifest_record(data), "checkpoint": "abc"}))
    result = CliRunner().invoke(main, ["predict", "--checkpoint", str(checkpoint), str(data), "-o", str(preds),
                                       "--device", "cpu"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output and "'checkpoint' must be an object, not str" in result.output
    assert str(preds / MANIFEST_NAME) in result.output
    assert sorted(p.name for p in preds.iterdir()) == [MANIFEST_NAME]


# ---------------------------------------------------------------------------------- non-finite options
@pytest.mark.parametrize(
    "option",
    [
        ["--threshold", "nan"], ["--threshold", "inf"], ["--threshold", "-inf"], ["--threshold", "0"],
        ["--threshold", "1.5"], ["--threshold", "-0.1"], ["--threshold", "0.5", "--threshold", "NaN"],
        ["--min-score", "nan"], ["--min-score", "inf"], ["--min-score", "-inf"], ["--min-score", "abc"],
    ],
)  # fmt: skip
def test_non_finite_threshold_or_min_score_is_refused_before_scoring(tmp_path, option):
    pred = tmp_path / "pred"
    (pred / "test").mkdir(parents=True)
    out = tmp_path / "report"
    # no ground truth is even opened: the option is refused while parsing
    result = _evaluate([str(pred), "--gt", str(tmp_path), "--out", str(out), *option])
    assert result.exit_code == 2, result.output
    assert option[-2] in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_non_finite_options_from_the_api_or_a_config_are_refused(tmp_path):
    _shard(tmp_path / "gt")
    (tmp_path / "pred").mkdir()
    for kwargs in ({"min_score": float("nan")}, {"min_score": float("inf")}, {"thresholds": (float("nan"),)},
                   {"thresholds": (0.5, 2.0)}, {"thresholds": ()}):
        with pytest.raises(InputError, match="evaluation config: "):
            evaluate_folder(tmp_path / "pred", tmp_path / "gt", workers=1, progress=False, **kwargs)
    config = {"pred_dir": "p", "gt": "g", "gt_kind": "shards", "split": "test", "pred_split_dir": "p/test"}
    with pytest.raises(InputError, match=r"min_score nan must be a finite number"):
        EvaluationConfig(**config, min_score=float("nan"))
    assert EvaluationConfig(**config, min_score=0.3).min_score == 0.3


# -------------------------------------------------------------------------------------- unwritable --out
@pytest.fixture
def scored(tmp_path: Path):
    _shard(tmp_path / "gt")
    pred = tmp_path / "pred"
    _write_predictions(pred)
    return pred, tmp_path / "gt"


def test_out_under_a_regular_file_is_a_one_line_error(scored, tmp_path):
    pred, gt = scored
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _evaluate([str(pred), "--gt", str(gt), "--out", str(blocker / "report")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{blocker}: not a folder" in result.output and blocker.read_text() == "x"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes through chmod 0o555")
def test_read_only_out_is_a_one_line_error(scored, tmp_path):
    pred, gt = scored
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for out in (locked, locked / "sub"):
            result = _evaluate([str(pred), "--gt", str(gt), "--out", str(out)])
            assert result.exit_code == 2 and "Traceback" not in result.output
            assert f"{locked}: not writable" in result.output
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_failing_report_write_is_a_one_line_error(scored, tmp_path):
    """A failure only the write itself meets (here summary.json is a folder) is still one line, exit 2."""
    pred, gt = scored
    out = tmp_path / "report"
    (out / "summary.json").mkdir(parents=True)
    result = _evaluate([str(pred), "--gt", str(gt), "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "summary.json" in result.output and "cannot write the report" in result.output


# ---------------------------------------------------------------------------------- shards past 99,999
def test_shard_names_past_99999_shards(tmp_path):
    assert shard_name("test", 3, 4) == "test-00003-of-00004.parquet"  # existing names unchanged
    assert shard_name("test", 0, 100000) == "test-00000-of-100000.parquet"
    assert shard_name("train", 123455, 123456) == "train-123455-of-123456.parquet"
    for name in ("test-00000-of-100000.parquet", "train-123455-of-123456.parquet", "test-99999-of-123456.parquet"):
        assert is_shard_name(name) and ShardFolder.split_of(name) in ("test", "train")
    assert not is_shard_name("test-0000-of-00004.parquet") and not is_shard_name("test-00000-of-1234.parquet")
    gt = tmp_path / "gt"
    # 100000 sorts before 99999 as text: the order must be numeric
    _shard(gt, stems=("c", "d"), name=shard_name("test", 100000, 123456))
    _shard(gt, stems=("a", "b"), name=shard_name("test", 99999, 123456))
    folder = ShardFolder(gt)
    assert [p.name for p in folder.shards("test")] == ["test-99999-of-123456.parquet", "test-100000-of-123456.parquet"]
    assert folder.splits() == ["test"] and folder.shard_path("test", 100000, 123456).name.endswith("of-123456.parquet")
    assert [s.id for s in read_split(gt, "test")] == list(STEMS)
    pred = tmp_path / "pred"
    _write_predictions(pred)
    result, records = _score(pred, gt)
    assert list(records) == list(STEMS) and all(r["status"] == "ok" for r in records.values())
