"""Hostile input: every attack tried, each ending in a clear error naming the file or in a counted problem, with the
good inputs scoring exactly as in a clean run and nothing outside the output folder touched (issue 11).

Read the test names as the list of attacks. All files are made here and small (the 8 GB file is sparse).
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from himbench.build_config import BuildConfig
from himbench.cli import main
from himbench.engines import map_tasks
from himbench.evaluation import evaluate_folder
from himbench.io import (
    InputError,
    decode_alpha,
    encode_alpha_png,
    read_alpha,
    read_image,
    read_json,
    resolve_inside,
    safe_name,
    write_alpha_png,
)
from himbench.shards import boxes_from_alphas, list_shards, read_shard_metadata, read_split, shard_name, write_shard
from himbench.synthesis import build_dataset, export_him2k
from himbench.synthesis.build import FINGERPRINT_KEY, LOCK_FILE

SHAPE = (40, 60)
STEMS = ("a", "b", "c")
SMALL = dict(width=96, height=64, images_per_shard=2, min_instances=1, max_instances=2)


# ------------------------------------------------------------------------------------------------------- helpers
def _blob(cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return (np.round(np.clip((r - np.hypot(yy - cy, xx - cx)) / 3.0, 0, 1) * 255) / 255).astype(np.float32)


def _truth(k: int) -> np.ndarray:
    return np.stack([_blob(15 + k, 15, 9), _blob(22, 40 - k, 10)])


def _pred(alpha: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(alpha * 0.9 + 0.05 * (alpha > 0), 0, 1) * 255) / 255).astype(np.float32)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, colour_type: int = 0) -> bytes:
    """A tiny PNG whose IHDR claims ``width`` x ``height`` (its pixel data is a few bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    body = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 8)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def bmp_claiming(width: int, height: int) -> bytes:
    """A tiny 24-bit BMP whose header claims ``width`` x ``height`` (read through PIL's lazy header parser)."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54) + info + b"\0" * 16


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, Path, dict]:
    """A HIM-2K ground truth of three images and a prediction folder for each; returns (gt, pred, clean records)."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for k, stem in enumerate(STEMS):
        for i, alpha in enumerate(_truth(k)):
            write_alpha_png(gt / "alphas" / "test" / stem / f"{i:02d}.png", alpha)
            write_alpha_png(pred / "test" / stem / f"{i:02d}.png", _pred(alpha))
        (gt / "images" / "test").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(gt / "images" / "test" / f"{stem}.png"), np.full((*SHAPE, 3), 40 * k, np.uint8))
    clean = evaluate_folder(pred, gt, workers=1, progress=False)
    assert clean.problems == []
    return gt, pred, {r["stem"]: r for r in clean.records}


def _score(pred: Path, gt: Path, **kwargs):
    result = evaluate_folder(pred, gt, workers=1, progress=False, **kwargs)
    problems: dict[str, str] = {}
    for problem in result.problems:
        problems[problem.file] = (problems.get(problem.file, "") + " | " + problem.message).strip(" |")
    return result, {r["stem"]: r for r in result.records}, problems


def _unchanged(records: dict, clean: dict, stems=("a", "c")) -> None:
    for stem in stems:
        assert records[stem] == clean[stem], stem


def _row(sample_id: str, k: int = 0) -> dict:
    alphas = _truth(k)
    ok, png = cv2.imencode(".png", np.full((*SHAPE, 3), 90, np.uint8))
    return {
        "id": sample_id, "seed": 0, "image": png.tobytes(), "alphas": [encode_alpha_png(a) for a in alphas],
        "boxes": boxes_from_alphas(alphas).tolist(), "depth_order": [0, 1], "fg_sources": ["t", "t"],
        "bg_source": "t", "width": SHAPE[1], "height": SHAPE[0], "num_instances": 2,
    }  # fmt: skip


# ------------------------------------------------------------------------------- crafted and oversized images
def test_69_byte_png_claiming_100000x100000_is_refused_before_decoding(scene):
    gt, pred, clean = scene
    bomb = pred / "test" / "b" / "01.png"
    bomb.write_bytes(png_claiming(100_000, 100_000))
    assert len(bomb.read_bytes()) < 80
    with pytest.raises(InputError, match=r"01\.png: matte is 100000x100000 = .* over the limit"):
        read_alpha(bomb)
    result, records, problems = _score(pred, gt)
    assert "over the limit of 100,000,000" in problems[str(bomb)]
    assert records["b"]["status"] == "problems" and records["b"]["num_pred"] == 1
    _unchanged(records, clean)


def test_png_header_of_the_wrong_size_is_refused_without_decoding(scene):
    gt, pred, clean = scene
    big = pred / "test" / "b" / "01.png"
    big.write_bytes(png_claiming(9000, 9000))  # 81 MP: under the pixel limit, but not the ground truth's size
    result, records, problems = _score(pred, gt)
    assert "size mismatch: matte is 9000x9000" in problems[str(big)]
    _unchanged(records, clean)


def test_decompression_bomb_ground_truth_image_is_a_counted_problem(scene):
    gt, pred, clean = scene
    bomb = gt / "images" / "test" / "b.png"
    bomb.unlink()
    bomb = bomb.with_suffix(".jpg")  # a BMP under a .jpg name: PIL's header parser, where DecompressionBombError was
    bomb.write_bytes(bmp_claiming(50_000, 50_000))
    with pytest.raises(InputError, match="over the limit"):
        read_image(bomb)
    result, records, problems = _score(pred, gt)
    assert "ground truth image" in problems[str(bomb)] and "over the limit" in problems[str(bomb)]
    assert records == clean  # the mattes still give the size, so every image scores as before


def test_pixel_limit_is_configurable(scene, monkeypatch):
    gt, pred, clean = scene
    result, records, problems = _score(pred, gt, max_pixels=SHAPE[0] * SHAPE[1] - 1)
    assert all(r["status"] == "bad_ground_truth" for r in result.records)
    monkeypatch.setenv("HIMBENCH_MAX_PIXELS", "1000")
    with pytest.raises(InputError, match="over the limit of 1,000"):
        read_alpha(gt / "alphas" / "test" / "a" / "00.png")


def test_sparse_8gb_file_is_refused_before_it_is_read(scene):
    gt, pred, clean = scene
    huge = pred / "test" / "b" / "01.png"
    with open(huge, "wb") as handle:
        handle.truncate(8 << 30)  # sparse: no disk used
    result, records, problems = _score(pred, gt)
    assert "over the limit" in problems[str(huge)] and "HIMBENCH_MAX_FILE_BYTES" in problems[str(huge)]
    _unchanged(records, clean)


def test_truncated_png_and_jpeg_are_problems_not_partial_images(scene):
    gt, pred, clean = scene
    matte = pred / "test" / "b" / "01.png"
    data = matte.read_bytes()
    matte.write_bytes(data[: len(data) // 2])
    photo = gt / "images" / "test" / "c.png"
    ok, jpeg = cv2.imencode(".jpg", np.full((*SHAPE, 3), 128, np.uint8))
    photo.unlink()
    (gt / "images" / "test" / "c.jpg").write_bytes(jpeg.tobytes()[:-40])  # OpenCV would fill it with grey
    with pytest.raises(InputError, match="truncated JPEG"):
        read_image(gt / "images" / "test" / "c.jpg")
    result, records, problems = _score(pred, gt)
    assert "cannot decode image" in problems[str(matte)]
    # evaluation reads only the photo's header (for its size), which is intact: "c" scores as before
    assert records["a"] == clean["a"] and records["c"] == clean["c"]


def test_grey_alpha_la_png_matte_is_read_as_its_grey_channel(scene):
    gt, pred, clean = scene
    for folder in (pred / "test" / "b", gt / "alphas" / "test" / "b"):
        for path in sorted(folder.glob("*.png")):
            grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            la = np.stack([grey, np.full_like(grey, 255)], axis=-1)  # opaque everywhere: OpenCV read it as all ones
            Image.fromarray(la, "LA").save(path)
            assert Image.open(path).mode == "LA"
            np.testing.assert_array_equal(read_alpha(path), grey / np.float32(255))
    result, records, problems = _score(pred, gt)
    assert problems == {} and records == clean


# --------------------------------------------------------------------------------- links and names as paths
def test_symlinked_predictions_outside_the_folder_do_not_score(scene):
    gt, pred, clean = scene
    for stem in ("a", "c"):
        for i in range(2):  # link each matte of "a" to the ground truth itself
            target = pred / "test" / stem / f"{i:02d}.png"
            if stem == "a":
                target.unlink()
                target.symlink_to(gt / "alphas" / "test" / stem / f"{i:02d}.png")
    linked_folder = pred / "test" / "b"
    for path in linked_folder.iterdir():
        path.unlink()
    linked_folder.rmdir()
    linked_folder.symlink_to(gt / "alphas" / "test" / "b", target_is_directory=True)
    result, records, problems = _score(pred, gt)
    assert "outside the prediction folder" in problems[str(pred / "test" / "a" / "00.png")]
    assert "outside the prediction folder" in problems[str(linked_folder)]
    assert records["a"]["num_pred"] == 0 and records["b"]["status"] == "missing"
    assert records["c"] == clean["c"]
    followed = evaluate_folder(pred, gt, workers=1, progress=False, follow_symlinks=True)
    assert followed.summary["IMQ_mad@0.5"] > result.summary["IMQ_mad@0.5"]
    assert {r["stem"]: r["IMQ_mad@0.5"] for r in followed.records}["a"] == pytest.approx(100.0)


def test_symlink_inside_the_prediction_folder_is_allowed(scene):
    gt, pred, clean = scene
    alias = pred / "test" / "c" / "01.png"
    alias.unlink()
    alias.symlink_to(pred / "test" / "c" / "00.png")
    result, records, problems = _score(pred, gt)
    assert not any("outside" in message for message in problems.values())
    assert records["c"]["num_pred"] == 2


def test_names_that_are_paths_are_refused():
    for bad in ("../../x", "/abs/dir", "a/b", "a\\b", "..", ".", "", "x\0y", "c:evil", "x" * 300, None):
        with pytest.raises(InputError, match="sample id"):
            safe_name(bad, "shard.parquet#row", "sample id")
    assert safe_name("train-000001 (copy)", "s") == "train-000001 (copy)"


def test_resolve_inside_refuses_a_symlink_out_of_the_root(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path, target_is_directory=True)
    assert resolve_inside(tmp_path / "out", "images", "a.png") == tmp_path / "out" / "images" / "a.png"
    with pytest.raises(InputError, match="outside"):
        resolve_inside(tmp_path / "out", "link", "a.png")


@pytest.mark.parametrize("bad_id", ["../../escaped", "/tmp/himbench-abs-escape"])
def test_shard_id_that_is_a_path_never_becomes_one(tmp_path, bad_id):
    shards = tmp_path / "shards"
    write_shard([_row("good", 0), _row(bad_id, 1)], shards / "data" / shard_name("test", 0, 1))
    out = tmp_path / "deep" / "export"
    before = set(tmp_path.rglob("*"))
    with pytest.raises(InputError, match="sample id .* must be a plain file name"):
        export_him2k(shards, out, progress=False)
    assert set(tmp_path.rglob("*")) == before and not Path("/tmp/himbench-abs-escape").exists()
    with pytest.raises(InputError, match="sample id"):
        list(read_split(shards, "test"))
    from himbench.data import HIMShardDataset

    dataset = HIMShardDataset(shards, "test")
    assert dataset.read_raw(0)[0] == "good"
    with pytest.raises(InputError, match="sample id"):  # what `predict` calls; it reports and skips the row
        dataset.read_raw(1)
    # evaluation: the bad row is a counted problem, the good one scores as usual
    pred = tmp_path / "pred"
    for i, alpha in enumerate(_truth(0)):
        write_alpha_png(pred / "test" / "good" / f"{i:02d}.png", alpha)
    result = evaluate_folder(pred, shards, split="test", workers=1, progress=False)
    assert [r["stem"] for r in result.records] == ["good"]
    assert result.summary["IMQ_mad@0.5"] == pytest.approx(100.0)
    assert any("sample id" in p.message and "not scored" in p.message for p in result.problems)


# ------------------------------------------------------------------------------------------ malformed JSON
def test_deeply_nested_scores_json_is_a_problem(scene):
    gt, pred, clean = scene
    deep = pred / "test" / "b" / "scores.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(InputError, match="nested too deeply"):
        read_json(deep)
    result, records, problems = _score(pred, gt)
    assert "nested too deeply" in problems[str(deep)] and "scores ignored" in problems[str(deep)]
    assert records["b"]["num_pred"] == 2
    _unchanged(records, clean)


def test_huge_scores_json_is_refused_by_size(scene):
    gt, pred, clean = scene
    big = pred / "test" / "b" / "scores.json"
    big.write_text('{"00.png": 0.5, "pad": "' + "x" * (2 << 20) + '"}')
    result, records, problems = _score(pred, gt)
    assert "over the limit" in problems[str(big)]
    _unchanged(records, clean)


# --------------------------------------------------------------------------------------------- dying workers
def _die_on_three(task: int) -> int:
    if task == 3:
        os._exit(9)  # as the kernel's OOM killer would
    return task * 10


def test_dying_worker_loses_no_finished_image_and_is_retried_once():
    pairs = map_tasks(_die_on_three, ((t,) for t in range(8)), workers=2, on_crash=lambda task: f"died:{task}")
    results = [result for _, result in pairs]
    assert results == [0, 10, 20, "died:3", 40, 50, 60, 70]


# ---------------------------------------------------------------------------------------- the output folder
def test_build_refuses_a_non_empty_folder_it_did_not_write(tmp_path):
    out = tmp_path / "mine"
    (out / "data").mkdir(parents=True)
    (out / "data" / "customers.parquet").write_bytes(b"PAR1 my data")
    (out / "README.md").write_text("my project\n")
    config = BuildConfig(splits={"train": 1}, **SMALL)
    with pytest.raises(InputError, match="is not empty .*customers|is not empty .*README"):
        build_dataset(config, out, workers=1, progress=False)
    result = CliRunner().invoke(main, ["build-dataset", "--out", str(out), "--splits", "train=1", "--size", "96x64",
                                       "--no-progress"])
    assert result.exit_code == 2 and "holds no himbench build" in result.output and "Traceback" not in result.output
    assert (out / "README.md").read_text() == "my project\n"
    assert not (out / "build_config.json").exists() and not (out / LOCK_FILE).exists()
    # --overwrite writes the build's own files; the user's other files stay
    build_dataset(config, out, workers=1, overwrite=True, progress=False)
    assert (out / "data" / "customers.parquet").read_bytes() == b"PAR1 my data"
    assert (out / "build_config.json").is_file() and (out / "data" / shard_name("train", 0, 1)).is_file()


def test_two_builds_with_different_seeds_into_one_folder(tmp_path):
    out = tmp_path / "out"
    first = BuildConfig(splits={"train": 2}, seed=1, **SMALL)
    second = BuildConfig(splits={"train": 2}, seed=2, **SMALL)
    build_dataset(first, out, workers=1, progress=False)
    shard = out / "data" / shard_name("train", 0, 1)
    before = shard.read_bytes()
    with pytest.raises(InputError, match="different configuration"):
        build_dataset(second, out, workers=1, progress=False)
    assert shard.read_bytes() == before
    assert json.loads((out / "build_config.json").read_text())["seed"] == 1
    build_dataset(second, out, workers=1, overwrite=True, progress=False)
    assert json.loads((out / "build_config.json").read_text())["seed"] == 2
    # every shard now carries the second build's fingerprint: no mix of one seed's config and the other's shards
    assert {read_shard_metadata(p)[1][FINGERPRINT_KEY] for p in list_shards(out)} == {second.fingerprint()}


def test_concurrent_build_into_the_same_folder_fails_clearly(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (out / LOCK_FILE).write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
        with pytest.raises(InputError, match=f"another build \\(pid {live.pid}\\) is writing"):
            build_dataset(BuildConfig(splits={"train": 1}, **SMALL), out, workers=1, progress=False)
    finally:
        live.kill()
        live.wait()
    # the same lock, now left by a dead process, is taken over
    build_dataset(BuildConfig(splits={"train": 1}, **SMALL), out, workers=1, progress=False)
    assert not (out / LOCK_FILE).exists()


def test_resumed_build_keeps_every_skip_of_the_first_run(tmp_path):
    src = tmp_path / "cutouts"
    src.mkdir()
    person = np.zeros((48, 24, 4), np.uint8)
    person[4:44, 4:20] = (200, 120, 90, 255)
    cv2.imwrite(str(src / "person.png"), person)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    config = BuildConfig(splits={"train": 6}, fg_sources=(str(src),), **SMALL)
    out = tmp_path / "out"
    first = build_dataset(config, out, workers=1, progress=False)
    assert any("broken.png" in p for p in first.problems)
    for shard in (out / "data").glob("*.parquet"):
        if shard.name != shard_name("train", 2, 3):
            continue
        shard.unlink()  # as if the first run had been killed before this shard
    (out / "build_report.json").unlink()  # ... and so never wrote its report
    second = build_dataset(config, out, workers=1, progress=False)
    assert sum(s.resumed for s in second.shards) == 2
    assert set(first.problems) <= set(second.problems)
    assert json.loads((out / "build_report.json").read_text())["skipped_sources"] >= len(first.problems)


def test_tiny_cutout_is_reported_and_never_becomes_a_rectangle_person(tmp_path):
    src = tmp_path / "cutouts"
    src.mkdir()
    person = np.zeros((48, 24, 4), np.uint8)
    person[4:44, 4:20] = (200, 120, 90, 255)
    cv2.imwrite(str(src / "person.png"), person)
    cv2.imwrite(str(src / "dot.png"), np.full((1, 1, 4), 255, np.uint8))
    report = build_dataset(BuildConfig(splits={"train": 6}, fg_sources=(str(src),), **SMALL), tmp_path / "out",
                           workers=1, progress=False)
    assert any("dot.png: cut-out is only 1x1 px" in p for p in report.problems)
    assert all(name.endswith(":person") for s in read_split(tmp_path / "out", "train") for name in s.fg_sources)


def test_export_refuses_a_used_folder(tmp_path):
    shards = tmp_path / "shards"
    write_shard([_row("x", 0)], shards / "data" / shard_name("test", 0, 1))
    out = tmp_path / "export"
    write_alpha_png(out / "alphas" / "test" / "x" / "07.png", _truth(1)[0])  # a stale matte of an older export
    result = CliRunner().invoke(main, ["export-him2k", str(shards), str(out), "--no-progress"])
    assert result.exit_code == 2 and "is not empty" in result.output
    assert sorted(p.name for p in (out / "alphas" / "test" / "x").iterdir()) == ["07.png"]
    assert export_him2k(shards, tmp_path / "fresh", progress=False) == {"test": 1}


# ------------------------------------------------------------------------------------- options and commands
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--splits", "test=2,test=1"], "given twice"),
        (["--instances", "1000-1000"], "MAX <= 20"),
        (["--instances", "3-2"], "MIN <= MAX"),
        (["--workers", "0"], "0"),
        (["--size", "100000"], "32 to 8192"),
        (["--seed", "-1"], "-1"),
    ],
)
def test_build_dataset_option_errors_exit_2(tmp_path, args, message):
    result = CliRunner().invoke(main, ["build-dataset", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_cli_option_limits_match_the_library():
    from himbench import build_config
    from himbench.cli import build_dataset as cli_build
    from himbench.cli import train as cli_train
    from himbench.training import MAX_TRAIN_SIZE

    assert (cli_build.MAX_SIDE, cli_build.MAX_INSTANCES) == (build_config.MAX_SIDE, build_config.MAX_INSTANCES)
    assert cli_train.MAX_TRAIN_SIZE == MAX_TRAIN_SIZE


def test_misspelt_or_unmatched_prediction_folder_is_an_error(scene, tmp_path):
    gt, pred, clean = scene
    runner = CliRunner()
    missing = runner.invoke(main, ["evaluate", str(tmp_path / "perds"), "--gt", str(gt), "--quiet"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    wrong = tmp_path / "other"
    write_alpha_png(wrong / "test" / "zzz" / "00.png", _truth(0)[0])
    unmatched = runner.invoke(main, ["evaluate", str(wrong), "--gt", str(gt), "--quiet"])
    assert unmatched.exit_code == 2 and "matches a ground-truth image" in unmatched.output
    assert "Traceback" not in unmatched.output
    (tmp_path / "empty").mkdir()  # an empty folder is still a valid all-miss submission
    empty = evaluate_folder(tmp_path / "empty", gt, split="test", workers=1, progress=False)
    assert empty.summary["TP@0.5"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model"], "unknown model"),
        (["--split", "nope"], "no shards for split 'nope'"),
        (["--device", "gpu7"], "not one of"),
        (["--size", "100000"], "100000"),
    ],
)
def test_train_user_errors_are_one_line_exit_2(tmp_path, args, message):
    data = tmp_path / "data"
    write_shard([_row("x", 0)], data / "data" / shard_name("train", 0, 1))
    result = CliRunner().invoke(main, ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1",
                                       *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_decoder_errors_all_become_input_errors():
    for data in (b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a" + b"\0" * 20, b"BM" + b"\0" * 10, b"II*\0junk"):
        with pytest.raises(InputError, match="<bytes>"):
            decode_alpha(data)
    gif = io.BytesIO()
    Image.new("L", (4, 4)).save(gif, "GIF")
    with pytest.raises(InputError, match="unsupported image format GIF"):
        decode_alpha(gif.getvalue())


def test_checkpoint_config_with_absurd_sizes_is_refused_before_allocating(tmp_path):
    """config.json is someone else's file: num_queries=2e9 would allocate hundreds of GB."""
    import json

    from himbench.checkpoints import load_model, save_checkpoint
    from himbench.registry import create_model

    folder = save_checkpoint(create_model("e2ehim-tiny", input_size=64), tmp_path / "ckpt", "e2ehim-tiny")
    record = json.loads((folder / "config.json").read_text())
    for bad in (2e9, 2_000_000_000, "20"):
        record["config"]["guidance"]["num_queries"] = bad
        (folder / "config.json").write_text(json.dumps(record))
        with pytest.raises(InputError, match="config.json.*num_queries"):
            load_model(folder)


def test_predict_refuses_two_inputs_with_one_output_name(tmp_path):
    import cv2
    from click.testing import CliRunner

    from himbench.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "a.png"):
        cv2.imwrite(str(photos / name), np.zeros((32, 32, 3), np.uint8))
    result = CliRunner().invoke(main, ["predict", "--model", "e2ehim-tiny", str(photos), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "a.jpg" in result.output and "a.png" in result.output
    assert not (tmp_path / "out").exists()


def test_predict_rerun_deletes_only_the_mattes_it_wrote(tmp_path):
    import cv2
    from click.testing import CliRunner

    from himbench.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.zeros((32, 32, 3), np.uint8))
    folder = tmp_path / "out" / "test" / "a"
    folder.mkdir(parents=True)
    # an earlier run's output (three mattes listed in its scores.json) beside a user's own files
    for k in range(3):
        write_alpha_png(folder / f"{k:02d}.png", np.full((32, 32), 0.5, np.float32))
    (folder / "scores.json").write_text(json.dumps({"00": 0.9, "01": 0.8, "02": 0.7}))
    (folder / "notes.png").write_bytes(b"mine")
    (folder / "07.png").write_bytes(b"also mine")
    result = CliRunner().invoke(main, ["predict", "--model", "e2ehim-tiny", str(photos), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    listed = json.loads((folder / "scores.json").read_text())
    assert len(listed) < 3  # a black image: fewer people than the earlier run left behind
    for k in range(3):
        assert (folder / f"{k:02d}.png").exists() == (f"{k:02d}" in listed)
    assert (folder / "notes.png").read_bytes() == b"mine" and (folder / "07.png").read_bytes() == b"also mine"
