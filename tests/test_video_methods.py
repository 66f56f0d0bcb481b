"""Image methods on video (issue 23, item 4): the mask tracker, temporal smoothing, frame-by-frame prediction with
identities kept, guidance from the first frame or from disk, and `himbench predict` on video input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from himbench.cli import main
from himbench.io import InputError, encode_alpha_png, encode_png
from himbench.mask_tracking import propagate_masks
from himbench.methods import Method, Prediction, create_method
from himbench.metrics.clip_matching import identity_switches, match_clip
from himbench.metrics.temporal import dtssd_pairs
from himbench.predictions.video_writer import (
    VideoInput,
    clip_frame_names,
    predict_clip,
    predict_video,
    resolve_guidance,
)
from himbench.temporal_smoothing import smooth_alphas
from himbench.video_layout import ClipData, export_vhim
from himbench.video_predictions import read_video_prediction
from himbench.video_shards import VIDEO_CONFIG_FILE, read_video_split, write_video_shard

T, H, W = 6, 64, 96


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth random colour texture (optical flow needs gradients)."""
    noise = rng.integers(0, 256, size=(height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.5) * 1.6 - 76, 0, 255).astype(np.uint8)


def make_clip(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3), alphas (2, T, H, W)): two textured people over a static textured background, person 0
    moving right 3 px per frame, person 1 moving left 2 px per frame; they never meet."""
    rng = np.random.default_rng(seed)
    background = _texture(rng, H, W)
    people = [_texture(rng, 32, 20), _texture(rng, 36, 20)]
    frames = np.repeat(background[None], T, axis=0)
    alphas = np.zeros((2, T, H, W), dtype=np.float32)
    for t in range(T):
        for k, (top, left) in enumerate(((8, 6 + 3 * t), (22, 70 - 2 * t))):
            rows, cols = slice(top, top + people[k].shape[0]), slice(left, left + 20)
            frames[t, rows, cols] = people[k]
            alphas[k, t, rows, cols] = 1.0
    return frames, alphas


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def vhim(tmp_path_factory) -> Path:
    """A V-HIM folder of 2 clips x 6 frames, with `xmem` masks: the ground truth shifted 2 rows down (so a test can
    tell them from tracked masks)."""
    root = tmp_path_factory.mktemp("vhim") / "V-HIM"
    clips = []
    for index in range(2):
        frames, alphas = make_clip(index)
        clips.append(ClipData(f"clip{index}", frames, alphas, np.roll(alphas, 2, axis=2)))
    export_vhim(clips, root, "comp_easy", mask_dir="xmem")
    return root


def _row(clip_id: str, frames: np.ndarray, alphas: np.ndarray) -> dict:
    mattes = [[encode_alpha_png(a) for a in person] for person in alphas]
    length = len(frames)
    return {"id": clip_id, "seed": 0, "frames": [encode_png(f) for f in frames], "alphas": mattes,
            "boxes": [[[0, 0, 0, 0]] * length] * len(alphas), "occlusion": [[0.0] * length] * len(alphas),
            "depth_order": list(range(len(alphas))), "fg_sources": ["x"] * len(alphas), "bg_source": "b",
            "width": W, "height": H, "num_frames": length, "num_instances": len(alphas)}


def _build(root: Path, clips: int = 2, frames: int = T) -> Path:
    """A clip build (clip Parquet shard + video_config.json) of ``clips`` clips, their first ``frames`` frames."""
    rows = []
    for index in range(clips):
        clip_frames, alphas = make_clip(index)
        rows.append(_row(f"clip{index}", clip_frames[:frames], alphas[:, :frames]))
    write_video_shard(rows, root / "data" / "test-00000-of-00001.parquet")
    (root / VIDEO_CONFIG_FILE).write_text("{}\n")
    return root


@pytest.fixture(scope="module")
def clip_build(tmp_path_factory) -> Path:
    """The two clips as a clip build, lossless PNG frames."""
    return _build(tmp_path_factory.mktemp("build") / "vbuild")


# ------------------------------------------------------------------------------------------------------ tracker
def test_tracker_follows_a_translating_person():
    frames, alphas = make_clip()
    tracked = propagate_masks(frames, alphas[:, 0] >= 0.5)
    assert tracked.shape == (2, T, H, W) and tracked.dtype == bool
    np.testing.assert_array_equal(tracked, propagate_masks(frames, alphas[:, 0] >= 0.5))  # deterministic
    for k in range(2):
        ious = [_iou(tracked[k, t], alphas[k, t]) for t in range(T)]
        repeated = [_iou(alphas[k, 0], alphas[k, t]) for t in range(T)]
        assert min(ious) > 0.8, ious
        # the first-frame mask repeated has lost most of the person by the last frame; the tracker has not
        assert ious[-1] > repeated[-1] + 0.4, (ious, repeated)
    assert not (tracked[0] & tracked[1]).any()  # masks stay disjoint


# ------------------------------------------------------------------------------------------------------ smoothing
def test_smoothing_lowers_dtssd_on_flicker_and_leaves_a_constant_prediction_alone():
    frames, alphas = make_clip()
    rng = np.random.default_rng(1)

    def flickering(gt):
        return np.clip(gt + rng.normal(0, 0.15, size=gt.shape).astype(np.float32) * (gt > 0), 0, 1)

    still = np.repeat(frames[:1], T, axis=0)  # static frames: zero flow
    gt = np.repeat(alphas[0, :1], T, axis=0)
    flicker = flickering(gt)
    before = dtssd_pairs(flicker, gt).mean()
    assert dtssd_pairs(smooth_alphas(flicker[:, None], 0.6)[:, 0], gt).mean() < 0.5 * before
    assert dtssd_pairs(smooth_alphas(flicker[:, None], 0.6, frames=still)[:, 0], gt).mean() < 0.5 * before
    # a moving person: flow compensation still lowers dtSSD; a plain average lags behind and raises it
    gt = alphas[0]
    flicker = flickering(gt)
    before = dtssd_pairs(flicker, gt).mean()
    assert dtssd_pairs(smooth_alphas(flicker[:, None], 0.6, frames=frames)[:, 0], gt).mean() < 0.8 * before
    assert dtssd_pairs(smooth_alphas(flicker[:, None], 0.6)[:, 0], gt).mean() > before
    np.testing.assert_array_equal(smooth_alphas(flicker[:, None], 0.0)[:, 0], flicker)

    constant = np.repeat(flicker[:1], T, axis=0)[:, None]  # the same matte in every frame
    np.testing.assert_array_equal(smooth_alphas(constant, 0.8), constant)
    np.testing.assert_array_equal(smooth_alphas(constant, 0.8, frames=still), constant)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        smooth_alphas(constant, 1.0)


# ------------------------------------------------------------------------------------------------------ automatic
class ShuffledOracle(Method):
    """An automatic method that finds the true people but lists them in a different random order in every frame
    (as a detector's score order would), plus a spurious blob in frame 3."""

    name = "shuffled-oracle"
    spec = {"name": "shuffled-oracle"}

    def __init__(self, frames: np.ndarray, alphas: np.ndarray) -> None:
        self.truth = {frame.tobytes(): alphas[:, t] for t, frame in enumerate(frames)}
        self.rng = np.random.default_rng(5)
        self.calls = 0

    def predict(self, image: np.ndarray, masks: np.ndarray | None = None) -> Prediction:
        assert masks is None
        found = self.truth[image.tobytes()][self.rng.permutation(2)]
        self.calls += 1
        if self.calls == 4:
            blob = np.zeros((1, H, W), np.float32)
            blob[0, 50:60, 40:50] = 1.0
            found = np.concatenate([blob, found])
        return Prediction(found, np.ones(len(found), np.float32))


def test_automatic_method_keeps_identities_frame_by_frame():
    frames, alphas = make_clip()
    clip = VideoInput("test", "clip0", clip_frame_names(T), frames, alphas)
    method = ShuffledOracle(frames, alphas)
    pred = predict_clip(method, clip, guidance=resolve_guidance(None, method.needs_masks))
    assert method.calls == T
    assert pred.shape == (3, T, H, W)  # two people and the one-frame blob, each its own track
    switches = identity_switches(match_clip(pred, alphas))
    assert switches.id_switches.sum() == 0 and switches.switched_frames.sum() == 0
    # the check can fail: the method's raw per-frame order does switch identities
    method = ShuffledOracle(frames, alphas)
    raw = np.stack([method.predict(frames[t]).alphas[-2:] for t in range(T)], axis=1)
    assert identity_switches(match_clip(raw, alphas)).id_switches.sum() > 0


def test_guidance_is_resolved_against_the_method():
    assert resolve_guidance(None, True) == "first-frame" and resolve_guidance(None, False) == "none"
    assert resolve_guidance("xmem", True) == "disk:xmem"
    with pytest.raises(ValueError, match="mask-guided"):
        resolve_guidance("none", True)
    with pytest.raises(ValueError, match="takes no guidance"):
        resolve_guidance("first-frame", False)
    with pytest.raises(ValueError, match="unknown video guidance"):
        resolve_guidance("erode", True)


# ------------------------------------------------------------------------------------------------------ guided
@pytest.mark.parametrize("name", ["mask-only", "mask-cf", "mask-refine"])
def test_mask_guided_first_frame_writes_a_complete_folder(tmp_path, clip_build, name):
    # mask-refine's network takes ~1 s a frame on the CPU: one clip of two frames keeps the test short
    data = _build(tmp_path / "short", clips=1, frames=2) if name == "mask-refine" else clip_build
    clips, frames = (1, 2) if name == "mask-refine" else (2, T)
    out = tmp_path / "pred"
    summary = predict_video(create_method(name), data, out, smoothing=0.3 if name == "mask-only" else 0.0)
    assert summary["clips"] == clips and summary["frames"] == clips * frames
    assert summary["mattes"] == clips * frames * 2
    manifest = json.loads((out / "predictions.json").read_text())
    assert manifest["model"] == name and manifest["splits"] == ["test"]
    assert manifest["options"]["guidance"] == "first-frame" and manifest["options"]["guidance_oracle"] is True
    assert manifest["options"]["smoothing"] == summary["config"]["smoothing"] and manifest["options"]["seed"] == 0
    assert manifest["source"]["kind"] == "shards"
    for sample in read_video_split(data, "test"):
        read = read_video_prediction(out, "test", sample.id, clip_frame_names(frames), (H, W))
        assert read.problems == [] and read.present.all() and read.track_names == ("00", "01")
        if name == "mask-only":  # hard masks from the tracker: close to the truth in every frame
            assert min(_iou(read.alphas[k, t], sample.alphas[k, t]) for k in range(2) for t in range(T)) > 0.75
    assert not list(out.rglob("*.tmp"))  # no staging folder left behind
    if name == "mask-only":
        before = sorted(p for p in out.rglob("*"))
        with pytest.raises(InputError, match="already holds files"):  # nothing is written over
            predict_video(create_method(name), data, out)
        assert sorted(p for p in out.rglob("*")) == before


def test_first_frame_guidance_follows_the_methods_perturbation_and_reanchoring():
    frames, alphas = make_clip()
    clip = VideoInput("test", "clip0", clip_frame_names(T), frames, alphas)
    plain = predict_clip(create_method("mask-only"), clip, guidance="first-frame")
    # mask-only returns its masks, so warping its own mattes (reanchor) is warping the masks
    np.testing.assert_array_equal(predict_clip(create_method("mask-only"), clip, guidance="first-frame",
                                               reanchor=True), plain)
    eroded = predict_clip(create_method("mask-only", guidance="erode", guidance_radius=3), clip,
                          guidance="first-frame")
    assert eroded.shape == plain.shape and (eroded[:, 0] <= plain[:, 0]).all()
    assert eroded[:, 0].sum() < 0.8 * plain[:, 0].sum()  # the seed was eroded, as the method's guidance says


def test_xmem_masks_from_disk_are_used(tmp_path, vhim):
    out = tmp_path / "pred"
    summary = predict_video(create_method("mask-only"), vhim, out, guidance="xmem")
    assert summary["config"]["guidance"] == "disk:xmem" and summary["config"]["guidance_oracle"] is False
    frames = clip_frame_names(T)
    for index in range(2):
        _, alphas = make_clip(index)
        read = read_video_prediction(out, "comp_easy", f"clip{index}", frames, (H, W))
        assert read.problems == []
        np.testing.assert_array_equal(read.alphas, np.roll(alphas, 2, axis=2))  # exactly the disk masks


def test_bad_mask_folder_is_an_input_error_naming_the_file(tmp_path, vhim, clip_build):
    with pytest.raises(InputError, match=r"comp_easy/nope: guidance mask folder missing"):
        predict_video(create_method("mask-only"), vhim, tmp_path / "a", guidance="disk:nope")
    with pytest.raises(InputError, match="need a V-HIM folder"):
        predict_video(create_method("mask-only"), clip_build, tmp_path / "b", guidance="xmem")
    with pytest.raises(InputError, match="not a folder"):
        predict_video(create_method("mask-only"), tmp_path / "missing", tmp_path / "b")
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------------------------------------------ CLI
def _predict(*args):
    return CliRunner().invoke(main, ["predict", *args])


def test_cli_predicts_a_video_build_and_refuses_a_bad_mask_folder(tmp_path, clip_build, vhim):
    out = tmp_path / "pred"
    ok = _predict("--model", "mask-only", str(clip_build), "-o", str(out), "--smooth", "0.5")
    assert ok.exit_code == 0, ok.output
    assert "wrote predictions for 2 clip(s), 12 frame(s)" in ok.output and "smoothing 0.5" in ok.output
    read = read_video_prediction(out, "test", "clip1", clip_frame_names(T), (H, W))
    assert read.problems == [] and read.alphas.shape == (2, T, H, W)
    assert json.loads((out / "predictions.json").read_text())["options"]["smoothing"] == 0.5

    # a V-HIM folder's xmem masks, one of them truncated: exit 2, one line naming the file
    broken = tmp_path / "broken"
    export_vhim([ClipData("clip0", *make_clip(0), masks=make_clip(0)[1])], broken, "comp_hard", mask_dir="xmem")
    bad_file = broken / "comp_hard" / "xmem" / "clip0" / "00003" / "01.png"
    bad_file.write_bytes(bad_file.read_bytes()[:20])
    bad = _predict("--model", "mask-only", str(broken), "-o", str(tmp_path / "x"), "--guidance", "xmem")
    errors = [line for line in bad.output.splitlines() if line.startswith("Error:")]
    assert bad.exit_code == 2 and len(errors) == 1  # one line (the rest of the output is the progress bar)
    assert str(bad_file) in errors[0] and "cannot run on this clip without it" in errors[0]
    missing = _predict("--model", "mask-only", str(vhim), "-o", str(tmp_path / "y"), "--guidance", "disk:nope")
    assert missing.exit_code == 2 and "nope: guidance mask folder missing" in missing.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    wrong = _predict("--model", "mask-only", str(vhim), "-o", str(tmp_path / "z"), "--guidance", "none")
    assert wrong.exit_code == 2 and "mask-guided" in wrong.output
    image_only = _predict("--model", "mask-only", str(vhim), "-o", str(tmp_path / "z"), "--masks", str(vhim))
    assert image_only.exit_code == 2 and "--masks does not apply to video input" in image_only.output
