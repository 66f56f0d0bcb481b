"""The data-layout table (himbench.layouts) and single-matte benchmarks end to end: detection of each released
layout, the error for a folder that fits none, ``--layout``, single-matte and merged instance predictions scored
against an independent numpy computation, and ``himbench predict`` on a P3M-500-NP folder of real photographs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from himbench.cli import main
from himbench.evaluation import evaluate_folder
from himbench.io import encode_jpeg, read_alpha, read_image, write_alpha_png
from himbench.layouts import LAYOUTS, detect_layout, find_layout, get_layout, list_samples

H, W = 40, 56
STEMS = ("p_0001", "p_0002", "p_0003")


def _matte(seed: int) -> np.ndarray:
    """A person-like 8-bit matte: a solid ellipse with a soft rim, 0 and 255 away from it."""
    yy, xx = np.mgrid[:H, :W]
    d = np.hypot((yy - H / 2 - seed) / (H / 3), (xx - W / 2 + seed) / (W / 4))
    return (np.clip((1.2 - d) / 0.4, 0, 1) * 255).round().astype(np.uint8) / np.float32(255)


def _trimap(alpha: np.ndarray) -> np.ndarray:
    tri = np.full(alpha.shape, 128, np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    a8 = (alpha * 255).round().astype(np.uint8)
    tri[cv2.erode(a8, kernel) >= 255] = 255
    tri[cv2.dilate(a8, kernel) == 0] = 0
    return tri


def _photo(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def _write_single(root, image_dir, alpha_dir, trimap_dir=None, matte_ext=".png", image_ext=".jpg", names=STEMS):
    """A single-matte benchmark folder; returns {stem: (alpha, trimap)}."""
    truth = {}
    for d in (image_dir, alpha_dir, trimap_dir):
        if d:
            (root / d).mkdir(parents=True, exist_ok=True)
    for k, stem in enumerate(names):
        alpha = _matte(k)
        photo = _photo(k)
        if image_ext == ".jpg":
            (root / image_dir / f"{stem}.jpg").write_bytes(encode_jpeg(photo))
        else:
            cv2.imwrite(str(root / image_dir / f"{stem}{image_ext}"), photo[:, :, ::-1])
        if matte_ext == ".png":
            write_alpha_png(root / alpha_dir / f"{stem}.png", alpha)
        else:  # PPM-100 ships JPEG mattes; quality 100 grey keeps them close, and the test reads them back
            cv2.imwrite(str(root / alpha_dir / f"{stem}{matte_ext}"), (alpha * 255).round().astype(np.uint8),
                        [cv2.IMWRITE_JPEG_QUALITY, 100])
            alpha = read_alpha(root / alpha_dir / f"{stem}{matte_ext}")
        trimap = _trimap(alpha) if trimap_dir else None
        if trimap_dir:
            cv2.imwrite(str(root / trimap_dir / f"{stem}.png"), trimap)
        truth[stem] = (alpha, trimap)
    return truth


def _predictions(folder, truth, shift=0.2):
    """Single mattes <stem>.png that differ from the ground truth; returns {stem: pred (8-bit float)}."""
    folder.mkdir(parents=True, exist_ok=True)
    preds = {}
    for k, (stem, (alpha, _)) in enumerate(truth.items()):
        pred = np.clip(np.roll(alpha, k + 1, axis=1) * (1 - shift) + shift * (alpha > 0.5), 0, 1)
        write_alpha_png(folder / f"{stem}.png", pred)
        preds[stem] = read_alpha(folder / f"{stem}.png")
    return preds


def _p3m_reference(pred, gt, trimap):
    """P3M's / AIM's evaluator from its definitions (core/evaluate.py): whole image, and the 'trimap' variant that
    forces the known regions and sums over the whole image, divided by the unknown pixels."""
    p, g = pred.astype(np.float64), gt.astype(np.float64)
    out = {"SAD": np.abs(p - g).sum() / 1000, "MSE": ((p - g) ** 2).mean(), "MAD": np.abs(p - g).mean()}
    if trimap is not None:
        forced = p.copy()
        forced[trimap == 255] = 1.0
        forced[trimap == 0] = 0.0
        unknown = (trimap == 128).sum()
        out |= {"SAD_trimap": np.abs(forced - g).sum() / 1000, "MSE_trimap": ((forced - g) ** 2).sum() / unknown,
                "MAD_trimap": np.abs(forced - g).sum() / unknown}
    return out


def _dim_reference(pred, gt, trimap):
    p, g = pred.astype(np.float64), gt.astype(np.float64)
    region = trimap == 128
    return {"SAD": np.abs(p - g).sum() / 1000, "MSE": ((p - g) ** 2).mean() * 1000, "MAD": np.abs(p - g).mean() * 1000,
            "SAD_trimap": np.abs(p - g)[region].sum() / 1000, "MSE_trimap": ((p - g)[region] ** 2).mean() * 1000,
            "MAD_trimap": np.abs(p - g)[region].mean() * 1000}


def _mean(per_image: list[dict]) -> dict:
    return {k: float(np.mean([d[k] for d in per_image])) for k in per_image[0]}


# ------------------------------------------------------------------------------------------------------ detection
@pytest.mark.parametrize(
    ("name", "dirs"),
    [
        ("P3M-500-P", ("blurred_image", "mask", "trimap")),
        ("P3M-500-NP", ("original_image", "mask", "trimap")),
        ("AIM-500", ("original", "mask", "trimap")),
        ("PPM-100", ("image", "matte", None)),
        ("Composition-1k", ("merged", "alpha_copy", "trimaps")),
        ("image-alpha", ("original", "alpha", None)),
    ],
)
def test_each_released_layout_is_detected_and_listed(tmp_path, name, dirs):
    matte_ext = ".jpg" if name == "PPM-100" else ".png"
    image_ext = ".png" if name == "Composition-1k" else ".jpg"
    _write_single(tmp_path, *dirs, matte_ext=matte_ext, image_ext=image_ext)
    layout = detect_layout(tmp_path, "ground_truth")
    assert layout.name == name and layout.single
    items, problems = list_samples(layout, tmp_path)
    assert [i.stem for i in items] == list(STEMS) and problems == []
    assert all((i.trimap_path is not None) == bool(dirs[2]) for i in items)


def test_him2k_and_shards_folders_are_detected(tmp_path):
    (tmp_path / "h" / "alphas" / "test" / "a").mkdir(parents=True)
    (tmp_path / "s" / "data").mkdir(parents=True)
    assert detect_layout(tmp_path / "h").name == "him2k"
    assert find_layout(tmp_path / "s").name == "shards"
    assert {lay.name for lay in LAYOUTS} >= {"shards", "him2k", "P3M-500-P", "P3M-500-NP", "AIM-500", "PPM-100",
                                             "Composition-1k"}


def test_composition1k_released_alpha_folder_is_shared_by_its_20_composites(tmp_path):
    (tmp_path / "merged").mkdir()
    (tmp_path / "trimaps").mkdir()
    (tmp_path / "alpha").mkdir()
    alpha = _matte(0)
    write_alpha_png(tmp_path / "alpha" / "doll.png", alpha)
    for i in (0, 1, 19):
        cv2.imwrite(str(tmp_path / "merged" / f"doll_{i}.png"), _photo(i))
        cv2.imwrite(str(tmp_path / "trimaps" / f"doll_{i}.png"), _trimap(alpha))
    layout = detect_layout(tmp_path)
    items, problems = list_samples(layout, tmp_path)
    assert layout.name == "Composition-1k" and problems == []
    assert [i.stem for i in items] == ["doll_0", "doll_1", "doll_19"]
    assert {i.alpha_path for i in items} == {str(tmp_path / "alpha" / "doll.png")}


def test_listing_reports_photos_without_mattes_and_mattes_without_photos(tmp_path):
    _write_single(tmp_path, "original_image", "mask", "trimap")
    (tmp_path / "original_image" / "p_0001.jpg").unlink()
    (tmp_path / "mask" / "p_0002.png").unlink()
    items, problems = list_samples(get_layout("P3M-500-NP"), tmp_path)
    assert [i.stem for i in items] == ["p_0003"]
    messages = {p.file.rsplit("/", 1)[-1]: p.message for p in problems}
    assert "matte without a photo" in messages["p_0001.png"] and "photo without a matte" in messages["p_0002.jpg"]


def test_folder_that_fits_no_layout_is_an_error_listing_layouts_and_what_was_found(tmp_path):
    gt = tmp_path / "gt"
    (gt / "images").mkdir(parents=True)
    (gt / "notes.txt").write_text("x")
    pred = tmp_path / "pred"
    pred.mkdir()
    result = CliRunner().invoke(main, ["evaluate", str(pred), "--gt", str(gt), "--quiet"])
    assert result.exit_code == 2, result.output
    assert str(gt) in result.output and "images/, notes.txt" in result.output
    for name in ("P3M-500-NP", "AIM-500", "PPM-100", "Composition-1k", "him2k", "shards", "--layout"):
        assert name in result.output


def test_layout_option_forces_one_and_refuses_one_that_does_not_fit(tmp_path):
    gt = tmp_path / "gt"
    truth = _write_single(gt, "original", "mask", "trimap")  # AIM-500 ...
    ppm = _write_single(gt, "image", "matte", None)  # ... and PPM-100 in one folder
    preds = _predictions(tmp_path / "pred", truth)
    runner = CliRunner()
    base = [str(tmp_path / "pred"), "--gt", str(gt), "--quiet", "--workers", "1"]
    detected = runner.invoke(main, ["evaluate", *base, "--out", str(tmp_path / "a")])
    forced = runner.invoke(main, ["evaluate", *base, "--layout", "PPM-100", "--out", str(tmp_path / "b")])
    assert detected.exit_code == 0 and forced.exit_code == 0, detected.output + forced.output
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert a["config"]["gt_kind"] == "AIM-500" and "SAD_trimap" in a["summary"]
    assert b["config"]["gt_kind"] == "PPM-100" and "SAD_trimap" not in b["summary"]  # PPM-100 ships no trimaps
    expected = _mean([_p3m_reference(preds[s], ppm[s][0], None) for s in STEMS])
    assert b["summary"]["SAD"] == pytest.approx(expected["SAD"])
    wrong = runner.invoke(main, ["evaluate", *base, "--layout", "Composition-1k"])
    assert wrong.exit_code == 2 and "does not fit layout Composition-1k" in wrong.output and "merged/" in wrong.output
    unknown = runner.invoke(main, ["evaluate", *base, "--layout", "nope"])
    assert unknown.exit_code == 2 and "unknown layout 'nope'" in unknown.output


# ------------------------------------------------------------------------------------------------------- scoring
def test_single_matte_predictions_equal_an_independent_p3m_computation(tmp_path):
    gt = tmp_path / "P3M-500-NP"
    truth = _write_single(gt, "original_image", "mask", "trimap")
    preds = _predictions(tmp_path / "pred", truth)
    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "pred"), "--gt", str(gt), "--out", str(out),
                                       "--quiet", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "P3M-500-NP errors (p3m convention" in result.output
    doc = json.loads((out / "summary.json").read_text())
    assert doc["convention"] == "p3m" and set(doc["units"]) >= {"SAD", "MSE", "MAD", "Grad", "Conn", "SAD_trimap"}
    per_image = [_p3m_reference(preds[s], *truth[s]) for s in STEMS]
    for key, value in _mean(per_image).items():
        assert doc["summary"][key] == pytest.approx(value, rel=1e-6, abs=1e-12), key
    for key in ("Grad", "Conn"):
        assert doc["summary"][key] > 0
    # SAD_trimap differs from SAD: known regions are forced before summing over the whole image
    assert doc["summary"]["SAD_trimap"] != pytest.approx(doc["summary"]["SAD"])
    rows = (out / "per_image.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(","), strict=True))
    assert first["stem"] == STEMS[0] and float(first["MAD_trimap"]) == pytest.approx(per_image[0]["MAD_trimap"])


def test_composition1k_uses_the_dim_convention_over_the_unknown_region(tmp_path):
    gt = tmp_path / "Test_set"
    truth = _write_single(gt, "merged", "alpha_copy", "trimaps", image_ext=".png")
    preds = _predictions(tmp_path / "pred", truth)
    result = evaluate_folder(tmp_path / "pred", gt, workers=1, progress=False)
    assert result.config.convention == "dim" and result.problems == []
    expected = _mean([_dim_reference(preds[s], *truth[s]) for s in STEMS])
    for key, value in expected.items():
        assert result.summary[key] == pytest.approx(value, rel=1e-6), key


def test_instance_predictions_are_merged_as_their_clipped_sum(tmp_path):
    gt = tmp_path / "gt"
    truth = _write_single(gt, "blurred_image", "mask", "trimap")
    singles = tmp_path / "singles"
    singles.mkdir()
    instances = tmp_path / "instances"
    for k, (stem, (alpha, _)) in enumerate(truth.items()):
        left, right = alpha.copy(), alpha.copy()
        left[:, W // 2:] = 0
        right[:, : W // 2 - k] = 0  # overlapping columns sum above 1 and are clipped
        folder = instances / "test" / stem
        folder.mkdir(parents=True)
        write_alpha_png(folder / "00.png", left)
        write_alpha_png(folder / "01.png", right)
        merged = np.clip(read_alpha(folder / "00.png") + read_alpha(folder / "01.png"), 0, 1)
        write_alpha_png(singles / f"{stem}.png", merged)
    by_instances = evaluate_folder(instances, gt, workers=1, progress=False)
    by_singles = evaluate_folder(singles, gt, workers=1, progress=False)
    assert by_instances.problems == [] and by_singles.problems == []
    for key in ("SAD", "MSE", "MAD", "Grad", "Conn", "SAD_trimap", "MSE_trimap", "MAD_trimap"):
        assert by_instances.summary[key] == pytest.approx(by_singles.summary[key], rel=1e-6), key
    assert by_singles.summary["SAD"] < 0.05  # the halves add up to the ground truth


def test_a_bad_prediction_file_is_a_counted_problem_and_the_rest_score_as_in_a_clean_run(tmp_path):
    gt = tmp_path / "gt"
    truth = _write_single(gt, "original_image", "mask", "trimap")
    preds = _predictions(tmp_path / "pred", truth)
    clean = evaluate_folder(tmp_path / "pred", gt, workers=1, progress=False)
    (tmp_path / "pred" / f"{STEMS[1]}.png").write_bytes(b"not a png")
    (tmp_path / "pred" / "stray.png").write_bytes(b"x")
    bad = evaluate_folder(tmp_path / "pred", gt, workers=1, progress=False)
    files = {p.file.rsplit("/", 1)[-1] for p in bad.problems}
    assert files == {f"{STEMS[1]}.png", "stray.png"}
    clean_rows = {r["stem"]: r for r in clean.records}
    for record in bad.records:
        if record["stem"] != STEMS[1]:
            assert record["SAD"] == clean_rows[record["stem"]]["SAD"] and record["status"] == "ok"
        else:  # scored as an empty matte, and said so
            assert record["status"] == "problems"
            assert record["SAD"] == pytest.approx(truth[STEMS[1]][0].astype(np.float64).sum() / 1000)
    assert bad.summary["classic_images"] == 3
    assert preds  # the clean predictions were written


# ------------------------------------------------------------------------------------------ predict on real photos
@pytest.fixture
def real_p3m_np(tmp_path, realdata):
    """The real P3M portraits of tests/data/realdata laid out as P3M-500-NP, scaled to 96 px for speed."""
    src = realdata / "P3M" / "demo" / "imgs"
    root = tmp_path / "P3M-500-NP"
    for name in ("original_image", "mask", "trimap"):
        (root / name).mkdir(parents=True)
    for path in sorted((src / "original").glob("*.jpg")):
        image = cv2.resize(read_image(path), (96, 64), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(read_alpha(src / "alpha" / f"{path.stem}.png"), (96, 64), interpolation=cv2.INTER_AREA)
        (root / "original_image" / path.name).write_bytes(encode_jpeg(image))
        write_alpha_png(root / "mask" / f"{path.stem}.png", alpha)
        cv2.imwrite(str(root / "trimap" / f"{path.stem}.png"), _trimap(read_alpha(root / "mask" / f"{path.stem}.png")))
    return root


@pytest.mark.parametrize("model", ["e2ehim-tiny", "mask-cf"])
def test_predict_then_evaluate_on_a_p3m_500_np_folder_of_real_photos(tmp_path, real_p3m_np, model):
    out = tmp_path / "pred"
    runner = CliRunner()
    result = runner.invoke(main, ["predict", "--model", model, "--device", "cpu", str(real_p3m_np), "-o", str(out)])
    assert result.exit_code == 0, result.output
    stems = sorted(p.stem for p in (real_p3m_np / "mask").iterdir())
    for stem in stems:  # both layouts: instance folders and the merged single matte
        assert (out / f"{stem}.png").is_file() and (out / "test" / stem / "scores.json").is_file()
        merged = read_alpha(out / f"{stem}.png")
        instances = [read_alpha(p) for p in sorted((out / "test" / stem).glob("*.png"))]
        expected = np.clip(np.sum(instances, axis=0), 0, 1) if instances else np.zeros_like(merged)
        assert np.abs(merged - expected).max() <= 1.5 / 255
    manifest = json.loads((out / "predictions.json").read_text())
    assert manifest["source"]["layouts"] == ["P3M-500-NP"]
    if model == "mask-cf":  # closed form on the benchmark's own trimap: exact outside its unknown band
        assert manifest["options"]["trimap"] == "benchmark"
        for stem in stems:
            trimap = cv2.imread(str(real_p3m_np / "trimap" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
            merged = read_alpha(out / f"{stem}.png")
            assert (merged[trimap == 255] == 1).all() and (merged[trimap == 0] == 0).all()
    report = tmp_path / "eval"
    scored = runner.invoke(main, ["evaluate", str(out), "--gt", str(real_p3m_np), "--out", str(report), "--quiet",
                                  "--workers", "1"])
    assert scored.exit_code == 0, scored.output
    summary = json.loads((report / "summary.json").read_text())["summary"]
    assert summary["classic_images"] == 3 and all(np.isfinite(summary[k]) for k in ("SAD", "MSE", "SAD_trimap"))
    if model == "mask-cf":
        assert summary["MAD"] < 0.05  # a good trimap leaves closed form little to get wrong
