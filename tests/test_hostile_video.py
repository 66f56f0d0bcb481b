"""Hostile video inputs (issue 23 review): prediction folders and ground truth that lie, link out, or flood.

Each bad input is a counted problem naming the file, and every other clip scores exactly as in a clean run (as
tests/test_hostile_eval.py checks for images); CLI misuse is one line and exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import tiny_clip_build, write_video_prediction

from himbench.build_config import BuildConfig
from himbench.cli import main
from himbench.evaluation.video import evaluate_video_folder
from himbench.io import encode_alpha_png
from himbench.synthesis.video import VideoConfig, build_video_dataset
from himbench.video_predictions import MAX_TRACKS, read_video_prediction

W, H, T, CLIPS = 64, 48, 3, 3
SPLIT = "test"


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    out = tmp_path_factory.mktemp("hvideo") / "clips"
    return out, tiny_clip_build(out, width=W, height=H, frames=T, clips=CLIPS, min_instances=2,
                                max_instances=2, split=SPLIT)


def write_prediction(pred_dir: Path, clips: dict[str, np.ndarray]) -> Path:
    return write_video_prediction(pred_dir, clips, SPLIT)


def _by_video(ev) -> dict[str, dict]:
    return {r["video"]: r for r in ev.clips}


def test_thousands_of_track_files_are_capped_and_the_rest_scores_as_clean(build, tmp_path):
    root, truth = build
    videos = sorted(truth)
    clean = _by_video(evaluate_video_folder(write_prediction(tmp_path / "clean", truth), root))
    pred = write_prediction(tmp_path / "pred", truth)
    frame = pred / SPLIT / videos[1] / "00000"
    empty = encode_alpha_png(np.zeros((H, W), np.float32))
    for k in range(2, 2 + 3 * MAX_TRACKS):
        (frame / f"{k:04d}.png").write_bytes(empty)
    ev = evaluate_video_folder(pred, root)
    scored = _by_video(ev)
    assert scored[videos[1]]["num_tracks"] == MAX_TRACKS
    flooded = [p for p in ev.problems if p.file == str(pred / SPLIT / videos[1])]
    assert len(flooded) == 1 and "tracks" in flooded[0].message
    # one problem for the flood, not one per ignored file and frame
    assert len(ev.problems) < MAX_TRACKS * T
    for video in (videos[0], videos[2]):
        assert scored[video] == clean[video]


def test_track_cap_keeps_the_first_tracks_in_order(tmp_path):
    frame = tmp_path / SPLIT / "v" / "00000"
    frame.mkdir(parents=True)
    for k in range(MAX_TRACKS + 5):
        (frame / f"{k}.png").write_bytes(encode_alpha_png(np.full((4, 4), 0.5, np.float32)))
    pred = read_video_prediction(tmp_path, SPLIT, "v", ["00000"], (4, 4))
    assert pred.track_names == tuple(str(k) for k in range(MAX_TRACKS))
    assert pred.alphas.shape == (MAX_TRACKS, 1, 4, 4)


def _rewrite_row(shard: Path, row_index: int, **changes) -> None:
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[row_index].update(changes)
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), shard)


@pytest.mark.parametrize("changes", [{"num_frames": T + 1}, {"width": W * 2}, {"num_instances": 5}])
def test_a_lying_clip_row_costs_its_clip_only(build, tmp_path, changes):
    import shutil

    root, truth = build
    clean = _by_video(evaluate_video_folder(write_prediction(tmp_path / "clean", truth), root))
    lying = tmp_path / "lying"
    shutil.copytree(root, lying)
    shard = sorted((lying / "data").glob(f"{SPLIT}-*.parquet"))[0]
    victim = pq.read_table(shard).column("id")[1].as_py()
    _rewrite_row(shard, 1, **changes)
    ev = evaluate_video_folder(tmp_path / "clean", lying)
    scored = _by_video(ev)
    assert victim not in scored
    assert set(scored) == set(truth) - {victim}
    for video, record in scored.items():
        assert record == clean[video]
    bad = [p for p in ev.problems if p.file == str(shard)]
    assert len(bad) == 1 and "row 1" in bad[0].message and victim in bad[0].message


def test_a_row_with_more_people_than_a_build_holds_is_refused_before_decoding(build, tmp_path):
    """Empty PNGs compress to almost nothing, so a row of many people is cheap to write and costly to decode (people x
    frames x pixels float32): it is refused from its counts, and the other clips score as in a clean run."""
    import shutil

    from himbench.video_shards import MAX_CLIP_PEOPLE

    root, truth = build
    clean = _by_video(evaluate_video_folder(write_prediction(tmp_path / "clean", truth), root))
    lying = tmp_path / "lying"
    shutil.copytree(root, lying)
    shard = sorted((lying / "data").glob(f"{SPLIT}-*.parquet"))[0]
    table = pq.read_table(shard)
    rows = table.to_pylist()
    victim = rows[0]
    people = MAX_CLIP_PEOPLE + 1
    victim["num_instances"] = people
    for column in ("alphas", "boxes", "occlusion"):
        victim[column] = [victim[column][0]] * people
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), shard)
    ev = evaluate_video_folder(tmp_path / "clean", lying)
    bad = [p for p in ev.problems if p.file == str(shard)]
    assert len(bad) == 1 and f"over the limit of {MAX_CLIP_PEOPLE} people" in bad[0].message
    scored = _by_video(ev)
    assert victim["id"] not in scored
    for video, record in scored.items():
        assert record == clean[video]


def test_a_clip_id_twice_scores_the_first_clip_only(build, tmp_path):
    import shutil

    root, truth = build
    clean = _by_video(evaluate_video_folder(write_prediction(tmp_path / "clean", truth), root))
    twice = tmp_path / "twice"
    shutil.copytree(root, twice)
    shards = sorted((twice / "data").glob(f"{SPLIT}-*.parquet"))
    first_id = pq.read_table(shards[0]).column("id")[0].as_py()
    _rewrite_row(shards[-1], 0, id=first_id)
    ev = evaluate_video_folder(tmp_path / "clean", twice)
    assert [r["video"] for r in ev.clips].count(first_id) == 1
    assert _by_video(ev)[first_id] == clean[first_id]
    assert any(p.file == str(shards[-1]) and "appears twice" in p.message for p in ev.problems)


def test_only_lying_rows_is_an_error(build, tmp_path):
    import shutil

    root, truth = build
    lying = tmp_path / "lying"
    shutil.copytree(root, lying)
    for shard in sorted((lying / "data").glob(f"{SPLIT}-*.parquet")):
        for i in range(pq.read_metadata(shard).num_rows):
            _rewrite_row(shard, i, num_frames=T + 1)
    done = CliRunner().invoke(main, ["evaluate", str(write_prediction(tmp_path / "p", truth)), "--gt", str(lying),
                                     "--out", str(tmp_path / "o"), "--quiet"])
    assert done.exit_code == 2, done.output
    assert "no clip of split" in done.output and len(done.output.strip().splitlines()) == 1


def test_linked_frame_folder_and_matte_outside_are_refused(build, tmp_path):
    root, truth = build
    videos = sorted(truth)
    clean = _by_video(evaluate_video_folder(write_prediction(tmp_path / "clean", truth), root))
    outside = write_prediction(tmp_path / "outside", truth)
    pred = write_prediction(tmp_path / "pred", truth)
    linked_frame = pred / SPLIT / videos[0] / "00001"
    for path in linked_frame.iterdir():
        path.unlink()
    linked_frame.rmdir()
    linked_frame.symlink_to(outside / SPLIT / videos[0] / "00001")
    matte = pred / SPLIT / videos[1] / "00002" / "00.png"
    matte.unlink()
    matte.symlink_to(outside / SPLIT / videos[1] / "00002" / "00.png")
    ev = evaluate_video_folder(pred, root)
    files = {p.file: p.message for p in ev.problems}
    assert "outside" in files[str(linked_frame)] and "outside" in files[str(matte)]
    scored = _by_video(ev)
    assert scored[videos[0]]["IMQ_mad@0.5"] < 100 and scored[videos[1]]["IMQ_mad@0.5"] < 100
    assert scored[videos[2]] == clean[videos[2]]


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF))


def test_huge_declared_png_wrong_size_and_non_png_are_named(build, tmp_path):
    root, truth = build
    videos = sorted(truth)
    clean = _by_video(evaluate_video_folder(write_prediction(tmp_path / "clean", truth), root))
    pred = write_prediction(tmp_path / "pred", truth)
    huge = pred / SPLIT / videos[0] / "00000" / "00.png"
    huge.write_bytes(_png_header(60000, 60000))
    small = pred / SPLIT / videos[0] / "00001" / "01.png"
    small.write_bytes(encode_alpha_png(np.zeros((H // 2, W // 2), np.float32)))
    text = pred / SPLIT / videos[0] / "00002" / "notes.txt"
    text.write_text("hello")
    stray = pred / SPLIT / videos[0] / "99999"
    stray.mkdir()
    ev = evaluate_video_folder(pred, root)
    files = {p.file for p in ev.problems}
    assert {str(huge), str(small), str(text), str(stray)} <= files
    scored = _by_video(ev)
    assert scored[videos[0]]["problems"] == 4
    for video in videos[1:]:
        assert scored[video] == clean[video]


def test_vhim_unsafe_frame_names_are_not_used_as_paths(build, tmp_path):
    from himbench.video_export import export_video_build

    root, truth = build
    vhim = tmp_path / "vhim"
    export_video_build(root, vhim, SPLIT)
    video = sorted(truth)[0]
    (vhim / SPLIT / "fgr" / video / "..jpg").write_bytes(b"x")
    clean_pred = write_prediction(tmp_path / "pred", truth)
    ev = evaluate_video_folder(clean_pred, vhim, split=SPLIT)
    record = _by_video(ev)[video]
    assert record["num_frames"] == T
    assert any(p.file == str(vhim / SPLIT / "fgr" / video / "..jpg") for p in ev.problems)


def _bench(clips: Path, tmp_path: Path, *args: str):
    return CliRunner().invoke(main, ["bench", "-m", "mask-only", "--data", str(clips), "--out",
                                     str(tmp_path / "o"), "--no-leaderboard", "--no-progress", *args])


@pytest.mark.parametrize(("args", "message"), [
    (("--split", "nope"), "no split 'nope'"),
    (("--guidance", "disk:"), "--guidance"),
    (("--guidance", "bogus"), "--guidance"),
    (("--limit", "1"), "--limit"),
    (("--size-protocol", "maggie"), "--size-protocol"),
])
def test_bench_on_clips_refuses_bad_options_in_one_line(build, tmp_path, args, message):
    root, _ = build
    done = _bench(root, tmp_path, *args)
    assert done.exit_code == 2, done.output
    errors = [line for line in done.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], done.output  # one error line (click may add its usage)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.png"))


def test_bench_on_clips_with_several_splits_scores_each(tmp_path):
    """Without --split every split of the clips is benched in turn (the evaluation alone cannot tell which one);
    a comma list scores each listed split once."""
    out = tmp_path / "two"
    config = BuildConfig(splits={"a": 1, "b": 1}, width=W, height=H, images_per_shard=1, min_instances=2,
                         max_instances=2)
    build_video_dataset(VideoConfig(config, frames=2), out, workers=1)
    done = _bench(out, tmp_path / "all")
    assert done.exit_code == 0, done.output
    assert done.output.count("mask-only@first-frame ") == 2
    done = _bench(out, tmp_path / "list", "--split", "b,b")
    assert done.exit_code == 0, done.output
    assert done.output.count("mask-only@first-frame ") == 1


def test_split_folder_linked_outside_is_refused(build, tmp_path):
    root, truth = build
    outside = write_prediction(tmp_path / "outside", truth)
    pred = tmp_path / "pred"
    pred.mkdir()
    os.symlink(outside / SPLIT, pred / SPLIT)
    ev = evaluate_video_folder(pred, root)
    assert all(r["prediction"] == "missing" for r in ev.clips)
    assert ev.summary["IMQ_mad@0.5"] == 0.0


@pytest.mark.parametrize("args", [("--follow-symlinks",), ("--max-pixels", "1000"), ("--min-score", "0.5"),
                                  ("--breakdown", "people")])
def test_evaluate_on_clips_refuses_image_only_options(build, tmp_path, args):
    root, truth = build
    pred = write_prediction(tmp_path / "pred", truth)
    done = CliRunner().invoke(main, ["evaluate", str(pred), "--gt", str(root), "--out", str(tmp_path / "o"),
                                     "--quiet", *args])
    assert done.exit_code == 2, done.output
    errors = [line for line in done.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and args[0] in errors[0] and "video ground truth" in errors[0]
    assert not (tmp_path / "o").exists()


def test_vhim_links_out_and_frames_without_mattes_cost_their_files_only(build, tmp_path):
    """Ground truth in the V-HIM layout: a matte folder linked outside the split, a fgr/ video without pha/, and a
    matte of the wrong size are problems naming them; the other clips score as from a clean export."""
    import shutil

    from himbench.video_export import export_video_build

    root, truth = build
    videos = sorted(truth)
    clean_gt, vhim = tmp_path / "clean", tmp_path / "vhim"
    export_video_build(root, clean_gt, SPLIT)
    export_video_build(root, vhim, SPLIT)
    pred = write_prediction(tmp_path / "pred", truth)
    clean = _by_video(evaluate_video_folder(pred, clean_gt, split=SPLIT))
    linked = vhim / SPLIT / "pha" / videos[0] / "00001"
    shutil.rmtree(linked)
    linked.symlink_to(clean_gt / SPLIT / "pha" / videos[0] / "00001")
    orphan = vhim / SPLIT / "fgr" / "orphan"
    shutil.copytree(vhim / SPLIT / "fgr" / videos[1], orphan)
    wrong = vhim / SPLIT / "pha" / videos[1] / "00002" / "00.png"
    wrong.write_bytes(encode_alpha_png(np.zeros((H + 1, W), np.float32)))
    ev = evaluate_video_folder(pred, vhim, split=SPLIT)
    files = {p.file for p in ev.problems}
    assert str(orphan) in files and str(wrong) in files
    assert any(f.startswith(str(linked)) for f in files)
    scored = _by_video(ev)
    assert set(scored) == set(videos)
    assert scored[videos[2]] == clean[videos[2]]
    assert scored[videos[0]]["problems"] == 0 and scored[videos[0]]["FP@0.5"] > 0
