"""Instance matching and IMQ/RQ/MQ (SPEC s.3): hand-worked cases, properties, and a straightforward reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage
from test_metrics_errors import ref_conn_sum, ref_grad_sum  # tests/ is on sys.path (pytest rootdir-less prepend mode)

from himbench import metrics
from himbench.io import read_alpha
from himbench.metrics import IMQAccumulator, evaluate_instances

# ------------------------------------------------------------------------------------ straightforward reference


def ref_iou(p: np.ndarray, g: np.ndarray) -> float:
    pm, gm = p > 0, g > 0
    union = np.logical_or(pm, gm).sum()
    return float(np.logical_and(pm, gm).sum() / union) if union else 0.0


def ref_assignment(iou: np.ndarray) -> list[tuple[int, int]]:
    """Brute force over all injective assignments (tiny counts only): maximise total IoU."""
    n_pred, n_gt = iou.shape
    best, best_pairs = -1.0, []
    if n_pred <= n_gt:
        for cols in itertools.permutations(range(n_gt), n_pred):
            total = sum(iou[i, c] for i, c in enumerate(cols))
            if total > best + 1e-12:
                best, best_pairs = total, list(enumerate(cols))
    else:
        for rows in itertools.permutations(range(n_pred), n_gt):
            total = sum(iou[r, j] for j, r in enumerate(rows))
            if total > best + 1e-12:
                best, best_pairs = total, [(r, j) for j, r in enumerate(rows)]
    return best_pairs


def ref_imq(images: list[tuple[np.ndarray, np.ndarray]], thr: float) -> dict[str, float]:
    tp = fp = fn = 0
    sums = dict.fromkeys(("mad", "mse", "grad", "conn"), 0.0)
    for preds, gts in images:
        iou = np.array([[ref_iou(p, g) for g in gts] for p in preds]).reshape(len(preds), len(gts))
        pairs = ref_assignment(iou) if len(preds) and len(gts) else []
        positives = [(i, j) for i, j in pairs if iou[i, j] >= thr]
        tp += len(positives)
        fp += len(preds) - len(positives)
        fn += len(gts) - len(positives)
        for i, j in positives:
            p, g = preds[i], gts[j]
            union = (p > 0) | (g > 0)
            n = union.sum() + 1.0
            d = p.astype(np.float64) - g
            errors = {
                "mad": np.abs(d)[union].sum() / n,
                "mse": (d**2)[union].sum() / n,
                "grad": ref_grad_sum(p, g, union, normalize="none") / n,
                "conn": ref_conn_sum(p, g, union) / n,
            }
            for name, err in errors.items():
                sums[name] += 1 - min(10 * err, 1)
    denominator = tp + fp / 2 + fn / 2
    out = {f"IMQ_{k}": 100 * v / denominator for k, v in sums.items()}
    out["RQ"] = 100 * tp / denominator
    out.update({f"MQ_{k}": (100 * v / tp if tp else 0.0) for k, v in sums.items()})
    return out


def assert_summary_matches(summary: dict, reference: dict, thr: float) -> None:
    tag = f"{thr:g}"
    for key, value in reference.items():
        got = summary[f"{key}@{tag}"]
        assert got == pytest.approx(value, rel=1e-6, abs=1e-9), key


# ----------------------------------------------------------------------------------------------------- fixtures


def square(shape, y0, y1, x0, x1, value=1.0) -> np.ndarray:
    a = np.zeros(shape, np.float32)
    a[y0:y1, x0:x1] = value
    return a


def soft_person(rng, shape, cy, cx, ry, rx) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    alpha = np.clip((1.2 - inside) * 3, 0, 1)
    alpha = ndimage.gaussian_filter(alpha, 1.0) * (rng.random(shape) > 0.02)
    return (np.round(np.clip(alpha, 0, 1) * 255) / 255).astype(np.float32)


def perturb(rng, alpha) -> np.ndarray:
    p = ndimage.gaussian_filter(alpha, 1.5) + rng.normal(0, 0.05, alpha.shape) * (alpha > 0)
    p = np.roll(p, rng.integers(-2, 3), axis=1)
    return (np.round(np.clip(p, 0, 1) * 255) / 255).astype(np.float32)


# ----------------------------------------------------------------------------------------------------- hand cases


def test_iou_and_matching_hand_worked():
    shape = (4, 6)
    g0 = square(shape, 0, 2, 0, 2)  # 4 px
    g1 = square(shape, 0, 4, 3, 6)  # 12 px
    p0 = square(shape, 0, 4, 3, 5)  # 8 px, all inside g1: IoU(p0, g1) = 8 / 12
    p1 = square(shape, 0, 2, 0, 1)  # 2 px, inside g0: IoU = 2 / 4
    iou = metrics.iou_matrix(np.stack([p0, p1]) > 0, np.stack([g0, g1]) > 0)
    np.testing.assert_allclose(iou, [[0, 8 / 12], [2 / 4, 0]])
    matching = metrics.match_instances(np.stack([p0, p1]) > 0, np.stack([g0, g1]) > 0)
    assert sorted(zip(matching.pred_index.tolist(), matching.gt_index.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_imq_hand_worked_single_instance():
    # GT: a 2x2 square of ones in a 4x4 image. Prediction: the same square with one pixel at .9.
    # Union = 4 px; sum |d| = .1 -> err_mad = .1 / 5 = .02 -> s = .8; err_mse = .01 / 5 = .002 -> s = .98.
    gt = square((4, 4), 1, 3, 1, 3)
    pred = gt.copy()
    pred[1, 1] = 0.9
    stats = evaluate_instances(pred[None], gt[None])
    assert stats.counts(0.5) == (1, 0, 0)
    (pair,) = stats.pairs
    assert pair.iou == 1.0 and pair.union_pixels == 4
    assert pair.imq_mad == pytest.approx(0.02)
    assert pair.imq_mse == pytest.approx(0.002)
    # Whole-image table: SAD .1 -> 1e-4; MAD .1 / 16 * 1000 = 6.25; MSE .01 / 16 * 1000 = .625.
    assert pair.SAD == pytest.approx(1e-4)
    assert pair.MAD == pytest.approx(6.25)
    assert pair.MSE == pytest.approx(0.625)
    summary = stats.summary()
    assert summary["IMQ_mad@0.5"] == pytest.approx(80.0)
    assert summary["IMQ_mse@0.75"] == pytest.approx(98.0)
    assert summary["RQ@0.5"] == pytest.approx(100.0)
    assert summary["MQ_mad@0.5"] == pytest.approx(80.0)

    # One extra empty prediction: IoU 0 with everything -> FP = 1, so RQ = 1 / (1 + 1/2) = 66.67 and
    # IMQ_mad = .8 / 1.5 = 53.33, while MQ (quality of the matches) stays 80.
    extra = evaluate_instances(np.stack([pred, np.zeros_like(pred)]), gt[None]).summary()
    assert extra["RQ@0.5"] == pytest.approx(100 / 1.5)
    assert extra["IMQ_mad@0.5"] == pytest.approx(80 / 1.5)
    assert extra["MQ_mad@0.5"] == pytest.approx(80.0)
    assert extra["FP@0.5"] == 1 and extra["FN@0.5"] == 0


def test_pair_below_threshold_counts_as_fp_and_fn():
    # pred covers 6 of the GT's 12 pixels and nothing else: IoU .5 -> TP at .5, but FP + FN at .75.
    gt = square((4, 6), 0, 4, 3, 6)
    pred = square((4, 6), 0, 2, 3, 6)
    stats = evaluate_instances(pred[None], gt[None])
    assert stats.counts(0.5) == (1, 0, 0)
    assert stats.counts(0.75) == (0, 1, 1)
    summary = stats.summary()
    # At .75: RQ = 0 / (0 + .5 + .5) = 0; MQ is 0 by definition with no TP.
    assert summary["RQ@0.75"] == 0.0 and summary["MQ_mad@0.75"] == 0.0


def test_no_predictions_and_no_ground_truth():
    gt = square((5, 5), 0, 2, 0, 2)
    missed = evaluate_instances(np.zeros((0, 5, 5), np.float32), gt[None])
    assert missed.counts(0.5) == (0, 0, 1)
    assert missed.summary()["IMQ_mad@0.5"] == 0.0
    spurious = evaluate_instances(gt[None], np.zeros((0, 5, 5), np.float32))
    assert spurious.counts(0.5) == (0, 1, 0)
    nothing = evaluate_instances(np.zeros((0, 5, 5)), np.zeros((0, 5, 5))).summary()
    assert nothing["RQ@0.5"] == 0.0 and nothing["num_gt"] == 0


# ----------------------------------------------------------------------------------------------------- properties


def _scene(seed: int, shape=(64, 96)):
    rng = np.random.default_rng(seed)
    gts = np.stack(
        [
            soft_person(rng, shape, 30, 20, 22, 10),
            soft_person(rng, shape, 34, 48, 24, 12),
            soft_person(rng, shape, 28, 76, 20, 9),
        ]
    )
    preds = np.stack([perturb(rng, g) for g in gts] + [soft_person(rng, shape, 50, 50, 6, 6)])
    return preds, gts


def test_perfect_prediction_scores_100_and_zero_errors():
    _, gts = _scene(0)
    summary = evaluate_instances(gts.copy(), gts).summary()
    for thr in ("0.5", "0.75"):
        for name in ("mad", "mse", "grad", "conn"):
            assert summary[f"IMQ_{name}@{thr}"] == pytest.approx(100.0)
        assert summary[f"RQ@{thr}"] == pytest.approx(100.0)
    for name in metrics.INSTANCE_ERRORS:
        assert summary[f"inst_{name}"] == 0.0


def test_permuting_predictions_changes_nothing():
    preds, gts = _scene(1)
    base = evaluate_instances(preds, gts).summary()
    for order in itertools.permutations(range(len(preds))):
        assert evaluate_instances(preds[list(order)], gts).summary() == pytest.approx(base, rel=1e-12)


def test_agrees_with_reference_on_synthetic_scenes():
    images = [_scene(seed) for seed in range(3)]
    accumulator = IMQAccumulator()
    for preds, gts in images:
        accumulator += evaluate_instances(preds, gts)
    summary = accumulator.summary()
    for thr in (0.5, 0.75):
        assert_summary_matches(summary, ref_imq([(list(p), list(g)) for p, g in images], thr), thr)


def test_instance_table_agrees_with_whole_image_errors():
    preds, gts = _scene(2)
    stats = evaluate_instances(preds, gts)
    assert stats.pairs, "expected matched pairs"
    for pair in stats.pairs:
        p, g = preds[pair.pred_index], gts[pair.gt_index]
        assert pair.SAD == pytest.approx(metrics.sad(p, g), rel=1e-9)
        assert pair.MSE == pytest.approx(metrics.mse(p, g), rel=1e-9)
        assert pair.MAD == pytest.approx(metrics.mad(p, g), rel=1e-9)
        assert pair.Grad == pytest.approx(ref_grad_sum(p, g) / 1000, rel=1e-6)
        assert pair.Conn == pytest.approx(ref_conn_sum(p, g) / 1000, rel=1e-6)


def test_instance_grad_uses_whole_image_minmax():
    # A matte peaking at .5 is stretched to [0, 1] by min-max in the instance table but not inside IMQ.
    gt = square((20, 20), 5, 15, 5, 15)
    pred = square((20, 20), 5, 15, 5, 15, value=0.5)
    (pair,) = evaluate_instances(pred[None], gt[None]).pairs
    assert pair.Grad == pytest.approx(0.0, abs=1e-12)
    union = (pred > 0) | (gt > 0)
    assert pair.imq_grad == pytest.approx(ref_grad_sum(pred, gt, union, "none") / (union.sum() + 1), rel=1e-6)
    assert pair.imq_grad > 0


def test_accumulator_merges_by_addition():
    stats = [evaluate_instances(*_scene(seed)) for seed in range(3)]
    sequential = IMQAccumulator()
    for s in stats:
        sequential.add(s)
    left = IMQAccumulator() + stats[0]
    right = IMQAccumulator()
    right += stats[1]
    right += stats[2]
    merged = left + right
    assert merged.summary() == pytest.approx(sequential.summary(), rel=1e-12)
    assert IMQAccumulator.from_dict(merged.to_dict()).summary() == pytest.approx(merged.summary(), rel=1e-12)
    assert left.num_images == 1  # `+` does not modify its operands
    with pytest.raises(ValueError, match="thresholds"):
        IMQAccumulator((0.5,)) + IMQAccumulator((0.75,))


def test_rejects_bad_stacks():
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        evaluate_instances(np.full((1, 3, 3), np.nan, np.float32), np.zeros((1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="differs"):
        evaluate_instances(np.zeros((1, 3, 3), np.float32), np.zeros((1, 4, 3), np.float32))


def test_real_mattes_against_reference(realdata):
    paths = sorted((realdata / "P3M" / "demo" / "imgs" / "alpha").glob("*.png"))[:2]
    rng = np.random.default_rng(3)
    gts = [read_alpha(path) for path in paths]
    shape = gts[0].shape
    gts = [g for g in gts if g.shape == shape]
    # Put the real mattes side by side at half size so that they form one multi-instance image.
    small = [ndimage.zoom(g, 0.5, order=1) for g in gts]
    height, width = small[0].shape
    canvas = []
    for k, s in enumerate(small):
        a = np.zeros((height, width * len(small)), np.float32)
        a[:, k * width : (k + 1) * width] = np.clip(s, 0, 1)
        canvas.append(np.round(a * 255) / 255)
    gt_stack = np.stack(canvas).astype(np.float32)
    pred_stack = np.stack([perturb(rng, g) for g in gt_stack])[::-1]
    summary = evaluate_instances(pred_stack, gt_stack).summary()
    for thr in (0.5, 0.75):
        reference = ref_imq([(list(pred_stack), list(gt_stack))], thr)
        assert_summary_matches(summary, reference, thr)
