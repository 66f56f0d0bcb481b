"""Per-clip matching: one Hungarian per clip, identity switches, per-frame IMQ with the fixed pairs; video predictions
read from PRED_DIR/<split>/<video>/<frame>/<k>.png with gaps as counted problems."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from himbench.io import write_alpha_png
from himbench.metrics.clip_matching import evaluate_clip, frame_stats_fixed, match_clip
from himbench.metrics.imq import evaluate_instances
from himbench.video_predictions import read_video_prediction

H, W, T = 40, 56, 6
FRAMES = tuple(f"{t:05d}" for t in range(T))


def gt_clip() -> np.ndarray:
    """Two people that never overlap, each with a soft edge, moving a pixel per frame (uint8 (N, T, H, W))."""
    alphas = np.zeros((2, T, H, W), dtype=np.uint8)
    for t in range(T):
        alphas[0, t, 4:30, 2 + t : 18 + t] = 255
        alphas[0, t, 4:30, 18 + t] = 100
        alphas[1, t, 10:38, 34 + t // 2 : 50 + t // 2] = 200
    return alphas


def test_prediction_equal_to_ground_truth_scores_100_and_no_switch():
    gt = gt_clip()
    result = evaluate_clip(gt.copy(), gt)
    s = result.summary
    for key in ("IMQ_mad@0.5", "IMQ_mse@0.75", "IMQ_grad@0.5", "IMQ_conn@0.5", "RQ@0.5", "MQ_mad@0.5", "PQ@0.5"):
        assert s[key] == pytest.approx(100.0), key
    assert s["inst_MAD"] == 0.0 and s["inst_SAD"] == 0.0
    assert s["id_switches"] == 0 and s["switched_frames"] == 0 and s["clip_mean_iou"] == 1.0
    assert s["scored_frames"] == T and s["TP@0.5"] == 2 * T
    assert result.pooled.summary()["IMQ_mad@0.5"] == pytest.approx(100.0)
    assert result.matching.pred_index.tolist() == [0, 1] and result.matching.gt_index.tolist() == [0, 1]


def test_clip_matching_follows_the_tracks_not_the_file_order():
    gt = gt_clip()
    pred = gt[::-1].copy()  # tracks numbered the other way round throughout: no switch, still 100
    result = evaluate_clip(pred, gt)
    assert result.matching.partner_of_gt().tolist() == [1, 0]
    assert result.summary["IMQ_mad@0.5"] == pytest.approx(100.0) and result.summary["id_switches"] == 0


def test_swap_halfway_is_reported_and_penalised():
    gt = gt_clip()
    pred = gt.copy()
    half = T // 2
    pred[0, half:], pred[1, half:] = gt[1, half:], gt[0, half:]
    result = evaluate_clip(pred, gt)
    s = result.summary
    assert result.switches.id_switches.tolist() == [1, 1]
    assert result.switches.switched_frames.tolist() == [half, half]  # the clip-level partner holds for one half
    assert s["id_switches"] == 2 and s["switched_frames"] == 2 * half
    # half the frames are perfect, the other half are 2 FP + 2 FN with the clip-level pairs
    assert s["IMQ_mad@0.5"] == pytest.approx(50.0)
    assert s["RQ@0.5"] == pytest.approx(50.0)
    assert s["FP@0.5"] == 2 * half and s["FN@0.5"] == 2 * half
    # the image benchmark, re-matching every frame, would not see the swap at all
    for t in range(T):
        assert evaluate_instances(pred[:, t], gt[:, t]).summary()["IMQ_mad@0.5"] == pytest.approx(100.0)


def test_swap_for_one_frame_keeps_the_majority_match():
    gt = gt_clip()
    pred = gt.copy()
    pred[0, 2], pred[1, 2] = gt[1, 2], gt[0, 2]
    result = evaluate_clip(pred, gt)
    assert result.matching.partner_of_gt().tolist() == [0, 1]
    assert result.switches.switched_frames.tolist() == [1, 1]
    assert result.switches.id_switches.tolist() == [2, 2]  # away and back
    assert result.summary["IMQ_mad@0.5"] == pytest.approx(100.0 * (T - 1) / T)


def test_people_who_leave_the_frame_are_not_counted_there():
    gt = gt_clip()
    gt[1, 4:] = 0  # person 1 leaves for the last two frames
    result = evaluate_clip(gt.copy(), gt)
    assert result.summary["IMQ_mad@0.5"] == pytest.approx(100.0) and result.summary["id_switches"] == 0
    assert [stats.num_gt for stats in result.frames] == [2, 2, 2, 2, 1, 1]


def test_extra_track_and_missing_prediction():
    gt = gt_clip()
    extra = np.zeros((1, T, H, W), dtype=np.uint8)
    extra[0, :, 0:3, 0:3] = 255
    result = evaluate_clip(np.concatenate([gt, extra]), gt)
    assert result.summary["FP@0.5"] == T and result.summary["RQ@0.5"] == pytest.approx(100 * 2 / 2.5)
    nothing = evaluate_clip(np.zeros((0, T, H, W), np.uint8), gt)
    assert nothing.summary["IMQ_mad@0.5"] == 0.0 and nothing.summary["FN@0.5"] == 2 * T


def test_fixed_pairs_keep_indices_and_match_evaluate_instances():
    gt = gt_clip()
    pred = gt.copy()
    pred[0, 0, 4:30, 10] = 30  # an error inside person 0
    stats = frame_stats_fixed(pred[:, 0], gt[:, 0], [(1, 1), (0, 0)])
    reference = evaluate_instances(pred[:, 0], gt[:, 0])
    assert stats == reference
    matching = match_clip(pred, gt)
    assert matching.score.shape == (2, 2) and matching.frame_iou.shape == (2, 2, T)


def write_prediction(pred_dir: Path, alphas: np.ndarray, split="comp_easy", video="00007") -> Path:
    folder = pred_dir / split / video
    for k in range(len(alphas)):
        for t, frame in enumerate(FRAMES):
            write_alpha_png(folder / frame / f"{k}.png", alphas[k, t])
    return folder


def test_video_prediction_round_trip(tmp_path: Path):
    gt = gt_clip()
    write_prediction(tmp_path, gt)
    prediction = read_video_prediction(tmp_path, "comp_easy", "00007", FRAMES, (H, W))
    assert prediction.problems == [] and prediction.track_names == ("0", "1") and prediction.present.all()
    np.testing.assert_array_equal(np.rint(prediction.alphas * 255).astype(np.uint8), gt)
    assert evaluate_clip(prediction.alphas, gt).summary["IMQ_mad@0.5"] == pytest.approx(100.0)


def test_missing_prediction_frame_and_track_are_counted(tmp_path: Path):
    gt = gt_clip()
    folder = write_prediction(tmp_path, gt)
    shutil.rmtree(folder / FRAMES[2])  # a whole frame missing
    (folder / FRAMES[4] / "1.png").unlink()  # one track missing from one frame
    (folder / FRAMES[5] / "0.png").write_bytes(b"garbage")  # unreadable
    (folder / "99999").mkdir()  # not in the ground truth
    prediction = read_video_prediction(tmp_path, "comp_easy", "00007", FRAMES, (H, W))
    problems = {Path(p.file).relative_to(folder).as_posix(): p.message for p in prediction.problems}
    assert set(problems) == {"00002", "00004/1.png", "00005/0.png", "99999"}
    assert "frame folder missing" in problems["00002"] and "no matte in this frame" in problems["00004/1.png"]
    assert prediction.present.sum() == 2 * T - 2 - 1 - 1
    s = evaluate_clip(prediction.alphas, gt).summary
    # frames 0, 1, 3 perfect; frame 2: 0 of 2 found; frames 4 and 5: 1 of 2 found (IMQ 1 / (1 + 0.5) per frame)
    assert s["IMQ_mad@0.5"] == pytest.approx((3 * 100.0 + 0.0 + 2 * 100.0 / 1.5) / T)
    assert s["id_switches"] == 0


def test_missing_video_and_numeric_track_order(tmp_path: Path):
    gt = gt_clip()
    missing = read_video_prediction(tmp_path, "comp_easy", "00007", FRAMES, (H, W))
    assert missing.alphas.shape == (0, T, H, W) and "video folder missing" in missing.problems[0].message
    folder = tmp_path / "comp_easy" / "00008"
    for t, frame in enumerate(FRAMES):
        write_alpha_png(folder / frame / "10.png", gt[0, t])
        write_alpha_png(folder / frame / "2.png", gt[1, t])
    prediction = read_video_prediction(tmp_path, "comp_easy", "00008", FRAMES, (H, W))
    assert prediction.track_names == ("2", "10") and prediction.problems == []


def test_prediction_link_to_ground_truth_is_refused(tmp_path: Path):
    gt = gt_clip()
    elsewhere = write_prediction(tmp_path / "gt", gt)
    folder = tmp_path / "pred" / "comp_easy" / "00007"
    for frame in FRAMES:
        (folder / frame).mkdir(parents=True)
        for name in ("0.png", "1.png"):
            (folder / frame / name).symlink_to(elsewhere / frame / name)
    prediction = read_video_prediction(tmp_path / "pred", "comp_easy", "00007", FRAMES, (H, W))
    assert len(prediction.problems) == 2 * T and all("outside" in p.message for p in prediction.problems)
    assert evaluate_clip(prediction.alphas, gt).summary["IMQ_mad@0.5"] == 0.0


def test_a_person_absent_from_some_frames_predicted_exactly_has_clip_iou_1():
    """clip_mean_iou averages over the frames where the person is present: frames where it is absent (both masks
    empty, IoU 0 by convention) do not pull an exact prediction below 1."""
    gt = np.zeros((2, 4, 8, 8), dtype=np.float32)
    gt[0, :, 1:4, 1:4] = 1.0  # present in every frame
    gt[1, :2, 5:7, 5:7] = 1.0  # present in frames 0-1 only
    result = evaluate_clip(gt.copy(), gt)
    assert result.summary["clip_mean_iou"] == 1.0
    assert result.matching.mean_iou.tolist() == [1.0, 1.0]
    half = gt.copy()
    half[1, 1] = 0.0  # person 1 missed in one of its two frames
    assert evaluate_clip(half, gt).matching.mean_iou.tolist() == [1.0, 0.5]
