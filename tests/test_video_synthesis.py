"""Video synthesis (issue 23, item 1): exact frames, identity over time, determinism, occlusion levels, storage."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from click.testing import CliRunner

from himbench.build_config import OCCLUSION_PRESETS, BuildConfig
from himbench.cli import main
from himbench.io import InputError, encode_png
from himbench.synthesis.sources import scan_backgrounds, scan_foregrounds
from himbench.synthesis.video import VideoConfig, build_video_dataset, render_clip, synthesize_clip
from himbench.video_shards import read_video_shard, read_video_split, write_video_shard

W, H = 96, 64


def _video(occlusion=None, frames=5, clips=3, **motion) -> VideoConfig:
    build = BuildConfig(splits={"test": clips}, width=W, height=H, images_per_shard=2, min_instances=2,
                        max_instances=3, occlusion_range=occlusion)
    return VideoConfig(build, frames=frames, **motion)


@pytest.fixture(scope="module")
def refs():
    fg, _ = scan_foregrounds(("embedded",))
    return fg, scan_backgrounds(("embedded",))


def _canvas(layer, crop: np.ndarray) -> np.ndarray:
    full = np.zeros((H, W, *crop.shape[2:]), crop.dtype)
    if crop.size:
        full[layer.box.slices] = crop
    return full


def test_every_frame_is_the_composite_of_its_8bit_mattes(refs):
    clip = render_clip(_video(frames=5), "test", 1, *refs)
    assert len(clip.images) == 5 and len(clip.labels) >= 2
    for t, image in enumerate(clip.images):
        vis = np.stack([_canvas(lay, v) for lay, v in zip(clip.layers[t], clip.visible[t], strict=True)])
        fg = np.stack([_canvas(lay, lay.fg) for lay in clip.layers[t]])
        alpha = np.stack([_canvas(lay, lay.alpha) for lay in clip.layers[t]])
        assert vis.sum(axis=0, dtype=np.int64).max() <= 255
        # I = sum_k F_k v_k + B (1 - sum_k v_k), in float, rounded: the stored frame to the 8-bit level
        v = vis.astype(np.float64)[..., None] / 255
        expected = (fg * v).sum(axis=0) + clip.backgrounds[t] * (1 - v.sum(axis=0))
        assert np.array_equal(image, np.rint(expected).astype(np.uint8))
        # SPEC s.1: v_k = a_k prod_{j in front}(1 - a_j), to one 8-bit level
        transmission = np.ones((H, W))
        for k in range(len(alpha) - 1, -1, -1):
            assert np.abs(vis[k] / 255 - alpha[k] * transmission).max() <= 1 / 255 + 1e-6
            transmission *= 1 - alpha[k]


def test_stored_row_decodes_to_the_rendered_clip(tmp_path, refs):
    video = _video(frames=4)
    clip = render_clip(video, "test", 2, *refs)
    row = synthesize_clip(video, "test", 2, *refs).row
    assert row["num_frames"] == 4 and row["num_instances"] == len(clip.labels) == len(row["alphas"])
    sample = next(read_video_shard(write_video_shard([row], tmp_path / "one.parquet")))
    assert np.array_equal(sample.frames, np.stack(clip.images))
    for t in range(4):
        for k, (layer, vis) in enumerate(zip(clip.layers[t], clip.visible[t], strict=True)):
            assert np.array_equal(np.rint(sample.alphas[k, t] * 255).astype(np.uint8), _canvas(layer, vis))
            assert np.isclose(sample.occlusion[k, t], clip.occlusion[t][k])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a > 0, b > 0).sum()
    return float(np.logical_and(a > 0, b > 0).sum() / union) if union else 1.0


def test_a_person_keeps_its_index_and_moves_smoothly(refs):
    video = _video(frames=6)
    moved = 0
    for index in range(3):
        clip = render_clip(video, "test", index, *refs)
        people = len(clip.labels)
        for t in range(video.frames - 1):
            now = [_canvas(lay, v) for lay, v in zip(clip.layers[t], clip.visible[t], strict=True)]
            nxt = [_canvas(lay, v) for lay, v in zip(clip.layers[t + 1], clip.visible[t + 1], strict=True)]
            for k in range(people):
                ious = [_iou(now[k], nxt[j]) for j in range(people)]
                assert ious[k] >= 0.5, (index, t, k, ious)
                assert int(np.argmax(ious)) == k  # the same person, not a neighbour, is where k was
                moved += not np.array_equal(now[k], nxt[k])
    assert moved > 0  # the people do move


def test_static_clip_when_motion_is_off(refs):
    video = _video(frames=4, motion=0.0, scale_drift=0.0, rotation_degrees=0.0, gait=0.0, pan=0.0)
    clip = render_clip(video, "test", 0, *refs)
    assert all(np.array_equal(clip.images[0], image) for image in clip.images[1:])


def test_same_bytes_for_one_seed_with_one_or_two_workers(tmp_path, refs):
    video = _video(occlusion=OCCLUSION_PRESETS["medium"], frames=4, clips=3)
    assert synthesize_clip(video, "test", 1, *refs).row == synthesize_clip(video, "test", 1, *refs).row
    build_video_dataset(video, tmp_path / "one", workers=1)
    build_video_dataset(video, tmp_path / "two", workers=2)
    shards = sorted((tmp_path / "one" / "data").iterdir())
    assert [p.name for p in shards] == ["test-00000-of-00002.parquet", "test-00001-of-00002.parquet"]
    for path in shards:
        other = tmp_path / "two" / "data" / path.name
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(other.read_bytes()).digest()
    # a rerun keeps the finished shards
    assert build_video_dataset(video, tmp_path / "one", workers=1)["resumed_shards"] == 2


@pytest.mark.parametrize("motion", [0.15, 0.6])
@pytest.mark.parametrize("level", ["easy", "medium", "hard"])
def test_occlusion_level_holds_over_the_clip(refs, level, motion):
    low, high = OCCLUSION_PRESETS[level]
    video = _video(occlusion=(low, high), frames=5, motion=motion)
    for index in range(3):
        result = synthesize_clip(video, "test", index, *refs)
        assert result.in_range
        worst = max(max(person) for person in result.row["occlusion"])
        assert low <= worst <= high, (index, worst)
        if level == "easy":  # nobody overlaps anybody in any frame, checked on the mattes themselves
            clip = render_clip(video, "test", index, *refs)
            for layers, visible in zip(clip.layers, clip.visible, strict=True):
                covered = sum((_canvas(lay, v) > 0).astype(int) for lay, v in zip(layers, visible, strict=True))
                assert covered.max() <= 1


def test_loads_with_datasets_and_streams(tmp_path, refs):
    import datasets

    video = _video(frames=3, clips=2)
    out = tmp_path / "clips"
    build_video_dataset(video, out, workers=1)
    assert "configs:" in (out / "README.md").read_text()
    clips = list(read_video_split(out, "test"))
    assert [c.id for c in clips] == ["test_v000000", "test_v000001"]
    files = {"test": str(out / "data" / "test-*.parquet")}
    loaded = datasets.load_dataset("parquet", data_files=files, split="test")
    streamed = next(iter(datasets.load_dataset("parquet", data_files=files, split="test", streaming=True)))
    for row in (loaded[0], streamed):
        assert row["id"] == "test_v000000" and len(row["frames"]) == 3
        assert np.array_equal(np.asarray(row["frames"][2].convert("RGB")), clips[0].frames[2])
        assert np.array_equal(np.asarray(row["alphas"][1][2]), np.rint(clips[0].alphas[1, 2] * 255).astype(np.uint8))
    assert len(datasets.load_dataset(str(out), split="test")) == 2  # the card's configs: find the split


def _row(frames=2, people=1, frame_size=(H, W)) -> dict:
    frame = encode_png(np.zeros((*frame_size, 3), np.uint8))
    matte = encode_png(np.zeros((H, W), np.uint8))
    return {"id": "clip0", "seed": 0, "frames": [frame] * frames, "alphas": [[matte] * 2] * people,
            "boxes": [[[0, 0, 0, 0]] * 2] * people, "occlusion": [[0.0, 0.0]] * people, "depth_order": [0] * people,
            "fg_sources": ["x"] * people, "bg_source": "b", "width": W, "height": H, "num_frames": 2,
            "num_instances": people}


def test_bad_rows_are_named_before_decoding(tmp_path):
    good = write_video_shard([_row()], tmp_path / "good.parquet")
    assert next(read_video_shard(good)).frames.shape == (2, H, W, 3)
    short = write_video_shard([_row(), _row(frames=3)], tmp_path / "short.parquet")
    with pytest.raises(InputError, match=r"short\.parquet: row 1 \(id 'clip0'\): frames holds 3 images, not "
                                         r"num_frames = 2"):
        list(read_video_shard(short))
    big = write_video_shard([_row(frame_size=(H * 2, W))], tmp_path / "big.parquet")
    with pytest.raises(InputError, match=r"big\.parquet#clip0/frame00000"):
        list(read_video_shard(big))
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="junk.parquet: not a readable Parquet file"):
        list(read_video_shard(tmp_path / "junk.parquet"))


def _cli(*args):
    return CliRunner().invoke(main, ["build-dataset", *args])


def test_cli_builds_clips_and_bad_options_exit_2(tmp_path):
    out = tmp_path / "v"
    ok = _cli("--out", str(out), "--video", "--frames", "3", "--splits", "test=1", "--size", "96x64",
              "--instances", "2-3", "--occlusion", "hard", "--no-progress")
    assert ok.exit_code == 0, ok.output
    assert "built 1 clips (3 frames)" in ok.output
    sample = next(read_video_split(out, "test"))
    assert sample.frames.shape == (3, H, W, 3) and 0.5 <= sample.occlusion.max() <= 0.85

    bad = _cli("--out", str(tmp_path / "x"), "--frames", "3")
    assert bad.exit_code == 2 and "--frames applies to --video builds only" in bad.output
    bad = _cli("--out", str(tmp_path / "x"), "--video", "--frames", "0")
    assert bad.exit_code == 2 and "--frames" in bad.output
    bad = _cli("--out", str(tmp_path / "x"), "--video", "--store-layers", "--size", "96x64")
    assert bad.exit_code == 2 and "--store-layers is not supported with --video" in bad.output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    bad = _cli("--out", str(foreign), "--video", "--frames", "2", "--size", "96x64", "--splits", "test=1")
    assert bad.exit_code == 2 and f"{foreign}: is not empty and holds no video build" in bad.output
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    again = _cli("--out", str(out), "--video", "--frames", "4", "--splits", "test=1", "--size", "96x64")
    assert again.exit_code == 2 and "holds a video build with a different configuration" in again.output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "data").symlink_to(elsewhere)
    bad = _cli("--out", str(linked), "--video", "--frames", "2", "--size", "96x64", "--splits", "test=1")
    assert bad.exit_code == 2 and f"{linked / 'data'}: must be a folder (not a file or a symbolic link)" in bad.output
    assert not any(elsewhere.iterdir())
    # --overwrite replaces the build's own files only, and drops the shards of splits no longer built
    (out / "mine.txt").write_text("kept")
    again = _cli("--out", str(out), "--video", "--frames", "2", "--splits", "val=1", "--size", "96x64", "--overwrite")
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in (out / "data").iterdir()) == ["val-00000-of-00001.parquet"]
    assert (out / "mine.txt").read_text() == "kept"
    short = _videomatte(tmp_path / "short", {"only": 2})
    bad = _cli("--out", str(tmp_path / "y"), "--video", "--frames", "4", "--fg", str(short), "--size", "96x64")
    assert bad.exit_code == 2 and "video cut-out has 2 frames; a clip needs 4" in bad.output
    assert str(short / "fgr" / "only") in bad.output


def _videomatte(root, clips: dict[str, int]):
    """A VideoMatte240K-style folder: per clip, frames of an ellipse "person" walking right (fgr/ + grey pha/)."""
    import cv2

    for clip, count in clips.items():
        (root / "fgr" / clip).mkdir(parents=True)
        (root / "pha" / clip).mkdir(parents=True)
        for t in range(count):
            matte = np.zeros((60, 80), np.uint8)
            cv2.ellipse(matte, (25 + 3 * t, 34), (9 + t % 2, 24), 0, 0, 360, 255, -1)
            matte = cv2.GaussianBlur(matte, (5, 5), 0)
            colour = np.full((60, 80, 3), (40 + 20 * t, 90, 160), np.uint8)
            cv2.imwrite(str(root / "fgr" / clip / f"{t:05d}.jpg"), colour)
            cv2.imwrite(str(root / "pha" / clip / f"{t:05d}.jpg"), matte)
    return root


def test_video_cutouts_move_by_themselves(tmp_path):
    from himbench.synthesis.video import scan_video_cutouts

    folder = _videomatte(tmp_path / "vm", {"walk": 8, "short": 2})
    fg, problems = scan_video_cutouts(str(folder))
    assert [r.label.rsplit(":", 1)[1] for r in fg] == ["short", "walk"] and problems == []
    build = BuildConfig(splits={"test": 2}, width=W, height=H, min_instances=1, max_instances=2,
                        fg_sources=(str(folder),), brightness=0, contrast=0, saturation=0, hue_degrees=0)
    video = VideoConfig(build, frames=4, motion=0, scale_drift=0, rotation_degrees=0, gait=0, pan=0)
    clip = render_clip(video, "test", 0, fg, scan_backgrounds(("embedded",)))
    assert all(label.endswith(":walk") for label in clip.labels)
    assert any("video cut-out has 2 frames; a clip needs 4" in p for p in clip.problems)
    # no trajectory, no pan: the frames change only because the source person moves
    assert not np.array_equal(clip.images[0], clip.images[3])
    first = _canvas(clip.layers[0][0], clip.visible[0][0])
    last = _canvas(clip.layers[3][0], clip.visible[3][0])
    assert first.any() and last.any() and not np.array_equal(first, last)
    for t, image in enumerate(clip.images):  # still exact
        vis = np.stack([_canvas(lay, v) for lay, v in zip(clip.layers[t], clip.visible[t], strict=True)])
        fgs = np.stack([_canvas(lay, lay.fg) for lay in clip.layers[t]])
        v = vis.astype(np.float64)[..., None] / 255
        expected = (fgs * v).sum(axis=0) + clip.backgrounds[t] * (1 - v.sum(axis=0))
        assert np.array_equal(image, np.rint(expected).astype(np.uint8))
