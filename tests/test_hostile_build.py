"""Hostile inputs to build-dataset and export-him2k (issue 25): a resume after a source folder changed, absurd
split sizes and instance weights, an output folder that cannot be written, cut-outs too thin to be people, and
images that end up with fewer people than asked."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from himbench.build_config import MAX_SHARDS_PER_SPLIT, MAX_SPLIT_IMAGES, BuildConfig
from himbench.cli import main
from himbench.shards import list_shards, read_split
from himbench.synthesis import build_dataset
from himbench.synthesis.build import REPORT_FILE, SOURCES_FILE

TINY = ["--size", "96x64", "--instances", "1-2", "--images-per-shard", "1", "-j", "1", "--no-progress"]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(folder)}


def _photo(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (80, 60)))


def _build(*args: str):
    return CliRunner().invoke(main, ["build-dataset", *args])


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------------- item 3: changed sources
def test_resume_after_a_background_was_added_is_refused_and_an_unchanged_one_resumes(tmp_path):
    bg = tmp_path / "bg"
    bg.mkdir()
    for k in range(2):
        _photo(bg / f"photo{k}.jpg", k)
    args = ["--splits", "train=5", "--bg", str(bg), "--seed", "4", *TINY]
    assert _build("--out", str(tmp_path / "ref"), *args).exit_code == 0
    crash = tmp_path / "crash"
    assert _build("--out", str(crash), *args).exit_code == 0
    shards = list_shards(crash)
    for shard in shards[2:]:  # as if the build had been killed after two shards
        shard.unlink()
    (crash / REPORT_FILE).unlink()

    _photo(bg / "new.jpg", 9)
    refused = _build("--out", str(crash), *args)
    _one_line_error(refused, str(crash), f"bg folder {bg}: 1 file added (new.jpg)", "new --out", "--overwrite")
    assert [p.name for p in list_shards(crash)] == [p.name for p in shards[:2]]  # nothing kept or made

    mtime = (bg / "photo0.jpg").stat().st_mtime_ns
    os.utime(bg / "photo0.jpg", ns=(mtime + 10**9, mtime + 10**9))  # touched: cannot be proven the same
    new = bg / "new.jpg"
    new.unlink()
    _one_line_error(_build("--out", str(crash), *args), "1 file changed (size or time) (photo0.jpg)")
    os.utime(bg / "photo0.jpg", ns=(mtime, mtime))

    resumed = _build("--out", str(crash), *args)  # the sources as they were: the kept shards are provably right
    assert resumed.exit_code == 0, resumed.output
    assert "(2 kept from an earlier run)" in resumed.output
    assert _digest(crash) == _digest(tmp_path / "ref")

    # --overwrite rebuilds every shard from the current sources: the bytes of a clean build with them
    _photo(new, 9)
    assert _build("--out", str(tmp_path / "ref2"), *args).exit_code == 0
    rebuilt = _build("--out", str(crash), "--overwrite", *args)
    assert rebuilt.exit_code == 0 and "(0 kept from an earlier run)" in rebuilt.output, rebuilt.output
    assert _digest(crash) == _digest(tmp_path / "ref2") != _digest(tmp_path / "ref")


def test_resume_without_a_record_of_the_sources_is_refused(tmp_path):
    fg = tmp_path / "cutouts"
    fg.mkdir()
    person = np.zeros((48, 24, 4), np.uint8)
    person[4:44, 4:20] = (200, 120, 90, 255)
    cv2.imwrite(str(fg / "person.png"), person)
    args = ["--out", str(tmp_path / "out"), "--splits", "train=2", "--fg", str(fg), *TINY]
    assert _build(*args).exit_code == 0
    (tmp_path / "out" / SOURCES_FILE).unlink()  # as a build of an older himbench left it
    _one_line_error(_build(*args), f"fg folder {fg})", "no readable record", "cannot be proven unchanged")
    (tmp_path / "out" / SOURCES_FILE).write_text("[1, 2")  # damaged
    _one_line_error(_build(*args), "no readable record")


# --------------------------------------------------------------------------- item 5: refused before writing
@pytest.mark.parametrize(
    ("splits", "needle"),
    [
        ("test=99999999999999999999", "at most 10,000,000 images per split"),
        ("test=" + "9" * 5000, "at most 10,000,000 images per split"),
        ("test=\u00b2", "expected NAME=COUNT"),
    ],
)
def test_absurd_split_size_is_refused_up_front(tmp_path, splits, needle):
    out = tmp_path / "out"
    result = _build("--out", str(out), "--splits", splits, *TINY)
    assert result.exit_code == 2 and needle in result.output and "Traceback" not in result.output, result.output
    assert not out.exists()


def test_split_bounds_hold_in_the_library_and_the_cli_mirrors_them(tmp_path):
    from himbench.cli import build_dataset as cli_build

    assert cli_build.MAX_SPLIT_IMAGES == MAX_SPLIT_IMAGES
    with pytest.raises(ValueError, match="over the limit of 10,000,000"):
        BuildConfig(splits={"test": 99999999999999999999})
    with pytest.raises(ValueError, match=f"over {MAX_SHARDS_PER_SPLIT} per split"):
        BuildConfig(splits={"test": MAX_SHARDS_PER_SPLIT + 1}, images_per_shard=1)
    out = tmp_path / "out"
    result = _build("--out", str(out), "--splits", "test=1000001", *TINY)  # images-per-shard 1: 1000001 shards
    _one_line_error(result, "1000001 shards, over 1000000 per split")
    assert not out.exists()


@pytest.mark.parametrize("weights", ["0,0", "1,-1", "1,nan"])
def test_bad_instance_weights_are_refused_before_anything_is_written(tmp_path, weights):
    out = tmp_path / "out"
    result = _build("--out", str(out), "--splits", "train=1", "--instance-weights", weights, *TINY)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "instance-weights" in result.output or "instance_weights" in result.output
    assert not out.exists()
    fixed = _build("--out", str(out), "--splits", "train=1", "--instance-weights", "1,0", *TINY)
    assert fixed.exit_code == 0, fixed.output  # the corrected rerun is not refused


def test_hand_edited_config_values_are_refused_with_their_name():
    for field, value, needle in [
        ("width", "96", "width must be an integer"),
        ("scale_min", float("nan"), "scale_min must be a finite number"),
        ("splits", {"train": 2.5}, "non-negative integer"),
        ("instance_weights", [0, 0], "not all zero"),
    ]:
        data = {**BuildConfig(min_instances=1, max_instances=2).to_dict(), field: value}
        with pytest.raises(ValueError, match=needle):
            BuildConfig.from_dict(data)


# ----------------------------------------------------------------------- item 5: an unwritable output folder
def _export_source(tmp_path: Path) -> Path:
    shards = tmp_path / "shards"
    assert _build("--out", str(shards), "--splits", "test=1", *TINY).exit_code == 0
    return shards


def test_output_under_a_regular_file_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    _one_line_error(_build("--out", str(blocker / "out"), "--splits", "train=1", *TINY), str(blocker / "out"))
    shards = _export_source(tmp_path)
    result = CliRunner().invoke(main, ["export-him2k", str(shards), str(blocker / "out"), "--no-progress"])
    _one_line_error(result, "cannot write the export")
    assert blocker.read_text() == "not a folder"


def test_write_error_inside_the_build_folder_is_one_line(tmp_path):
    # Works as root too: the build's data/ folder is a file, so making it fails after the folder was accepted.
    out = tmp_path / "out"
    args = ["--out", str(out), "--splits", "train=1", *TINY]
    assert _build(*args).exit_code == 0
    for shard in list_shards(out):
        shard.unlink()
    (out / "data").rmdir()
    (out / "data").write_text("in the way")
    _one_line_error(_build(*args), "cannot write the build", "writable")


def test_read_only_output_folder_is_one_line(tmp_path):
    shards = _export_source(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)  # 0o555
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: chmod 0o555 does not stop writes (see the tests above)")
        _one_line_error(_build("--out", str(locked), "--splits", "train=1", *TINY), "writable")
        result = CliRunner().invoke(main, ["export-him2k", str(shards), str(locked), "--no-progress"])
        _one_line_error(result, "cannot write the export")
        assert not any(locked.iterdir())
    finally:
        locked.chmod(0o755)


# ---------------------------------------------------------------------- item 6: thin cut-outs, fewer people
def test_extreme_aspect_cutout_is_reported_and_never_a_one_pixel_person(tmp_path):
    src = tmp_path / "cutouts"
    src.mkdir()
    person = np.zeros((48, 24, 4), np.uint8)
    person[4:44, 4:20] = (200, 120, 90, 255)
    cv2.imwrite(str(src / "person.png"), person)
    cv2.imwrite(str(src / "thin.png"), np.full((20000, 20, 4), 255, np.uint8))
    cv2.imwrite(str(src / "flat.png"), np.full((20, 20000, 4), 255, np.uint8))
    config = BuildConfig(splits={"train": 6}, fg_sources=(str(src),), width=96, height=64, images_per_shard=3,
                         min_instances=1, max_instances=2)
    report = build_dataset(config, tmp_path / "out", workers=1, progress=False)
    assert len(report.problems) == 2, report.problems
    assert any("thin.png: cut-out is 1x61 px" in p and "px wide" in p and "too thin" in p for p in report.problems)
    assert any("flat.png: cut-out is 92x1 px" in p and "px high" in p for p in report.problems)
    samples = list(read_split(tmp_path / "out", "train"))
    assert len(samples) == 6
    assert all(name.endswith(":person") for s in samples for name in s.fg_sources)
    for sample in samples:
        for x0, y0, x1, y1 in sample.boxes:
            assert min(x1 - x0, y1 - y0) >= 2


def test_images_with_fewer_people_than_asked_are_counted_and_said(tmp_path):
    out = tmp_path / "out"
    # Six people, nearly canvas-high, none allowed to hide any of another, one try each: most cannot be placed.
    args = ["--out", str(out), "--splits", "train=4", "--size", "96x64", "--instances", "6-6", "--scale", "0.9-0.95",
            "--min-visible", "1", "--max-attempts", "1", "--images-per-shard", "2", "-j", "1", "--no-progress"]
    result = _build(*args)
    assert result.exit_code == 0, result.output
    counts = [s.num_instances for s in read_split(out, "train")]
    short = sum(n < 6 for n in counts)
    assert short > 0
    fewer = json.loads((out / REPORT_FILE).read_text())["fewer_people"]
    assert fewer["images"] == fewer["below_min_instances"] == short
    assert sum(fewer["people_dropped"].values()) == sum(6 - n for n in counts)
    assert any("no placement" in reason for reason in fewer["people_dropped"])
    assert f"{short} image(s) got fewer people than drawn for them" in result.output

    list_shards(out)[1].unlink()  # a resume keeps the counts of the shard it keeps
    (out / REPORT_FILE).unlink()
    again = _build(*args)
    assert "(1 kept from an earlier run)" in again.output, again.output
    assert json.loads((out / REPORT_FILE).read_text())["fewer_people"] == fewer


def test_a_missing_source_folder_leaves_no_output_folder(tmp_path):
    out = tmp_path / "out"
    result = _build("--out", str(out), "--splits", "train=1", "--bg", str(tmp_path / "nowhere"), *TINY)
    _one_line_error(result, "nowhere", "background source")
    assert not out.exists()
