"""``himbench bench`` on classic single-matte benchmark folders (P3M-500-NP, Composition-1k): the benchmark's own
errors in the ``p3m_*`` / ``dim_*`` columns equal :func:`classic_errors` computed independently on the predictions
``himbench predict`` writes; mask-cf solves on the benchmark's trimap; ground-truth guidance is marked oracle.
Also ``himbench evaluate PRED`` without ``--gt`` on predictions of a benchmark folder (the manifest names it)."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from himbench.bench.harness import classic_columns
from himbench.bench.results import read_results
from himbench.cli import main
from himbench.io import encode_jpeg, read_alpha, read_image, write_alpha_png
from himbench.leaderboard.published import CLASSIC_MEASURED_COLUMNS
from himbench.metrics.classic import ClassicStat, classic_errors

pytestmark = pytest.mark.usefixtures("one_torch_thread")

H, W = 64, 96
STEMS = ("p_51c916fc", "p_a09f6d7a")  # two of the real P3M portraits (MIT), shrunk for speed
FAST = ["--max-instances", "1", "--latency-size", "64", "--latency-repeats", "1", "--warmup", "0", "--device", "cpu",
        "--no-progress"]


def _trimap(alpha: np.ndarray) -> np.ndarray:
    a8 = np.rint(alpha * 255).astype(np.uint8)
    kernel = np.ones((5, 5), np.uint8)
    tri = np.full(alpha.shape, 128, np.uint8)
    tri[cv2.erode((a8 >= 250).view(np.uint8), kernel) > 0] = 255
    tri[cv2.dilate((a8 > 5).view(np.uint8), kernel) == 0] = 0
    return tri


@pytest.fixture
def p3m_np(tmp_path, realdata):
    """Two real portraits of tests/data/realdata/P3M-500-NP-sample in the P3M-500-NP layout, at 96 x 64."""
    src = realdata / "P3M-500-NP-sample"
    root = tmp_path / "P3M-500-NP"
    for name in ("original_image", "mask", "trimap"):
        (root / name).mkdir(parents=True)
    for stem in STEMS:
        image = cv2.resize(read_image(src / "original_image" / f"{stem}.jpg"), (W, H), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(read_alpha(src / "mask" / f"{stem}.png"), (W, H), interpolation=cv2.INTER_AREA)
        (root / "original_image" / f"{stem}.jpg").write_bytes(encode_jpeg(image))
        write_alpha_png(root / "mask" / f"{stem}.png", alpha)
        cv2.imwrite(str(root / "trimap" / f"{stem}.png"), _trimap(read_alpha(root / "mask" / f"{stem}.png")))
    return root


def _bench(tmp_path, data, methods, *extra):
    csv = tmp_path / "results.csv"
    result = CliRunner().invoke(main, ["bench", "--methods", methods, "--data", str(data), "--out",
                                       str(tmp_path / "bench"), "--leaderboard", str(csv), *FAST, *extra])
    assert result.exit_code == 0, result.output
    return {row["method"]: row for row in read_results(csv)}


def _predict(tmp_path, data, model, *extra):
    out = tmp_path / f"pred-{model}"
    result = CliRunner().invoke(main, ["predict", "--model", model, "--device", "cpu", str(data), "-o", str(out),
                                       *extra])
    assert result.exit_code == 0, result.output
    return out


def _independent_means(pred_dir, gt_root, convention, alpha_dir="mask", trimap_dir="trimap"):
    """Mean of classic_errors over the written single mattes, read back from disk."""
    stat = ClassicStat()
    for gt_path in sorted((gt_root / alpha_dir).glob("*.png")):
        pred = read_alpha(pred_dir / gt_path.name)
        trimap = cv2.imread(str(gt_root / trimap_dir / gt_path.name), cv2.IMREAD_GRAYSCALE)
        stat.update(classic_errors(pred, read_alpha(gt_path), trimap, convention))
    return stat.result()


def test_bench_on_a_p3m_folder_writes_p3m_columns_equal_to_classic_errors_of_the_written_predictions(
        tmp_path, p3m_np):
    rows = _bench(tmp_path, p3m_np, "mask-cf,mask-only")
    assert set(rows) == {"mask-cf@trimap", "mask-only"}
    cf, only = rows["mask-cf@trimap"], rows["mask-only"]
    assert cf["guidance"] == "trimap" and only["guidance"] == "oracle:gt"  # the oracle is said in the row
    assert cf["data"] == "P3M-500-NP" and cf["n_images"] == "2" and cf["failures"] == "0"
    assert not any(key.startswith("dim_") for key in cf)
    for label, model, extra in (("mask-cf@trimap", "mask-cf", ()), ("mask-only", "mask-only", ("--guidance", "none"))):
        expected = _independent_means(_predict(tmp_path, p3m_np, model, *extra), p3m_np, "p3m")
        row = rows[label]
        for name, column in CLASSIC_MEASURED_COLUMNS["p3m-code"].items():
            assert float(row[column]) == pytest.approx(expected[name], rel=1e-5, abs=1e-9), (label, column)
        assert float(row["p3m_SAD_fg"]) == pytest.approx(expected["SAD_fg"], rel=1e-5, abs=1e-9)
    # mask-cf solved on the benchmark's trimap: its known pixels are exact, so only the unknown band is wrong
    assert float(cf["p3m_SAD_fg"]) == 0 and float(cf["p3m_SAD_bg"]) == 0
    assert float(cf["IMQ_mad@0.5"]) > 0 and float(only["p3m_SAD"]) > 0


def test_perturbed_ground_truth_guidance_is_marked_as_an_oracle(tmp_path, p3m_np):
    rows = _bench(tmp_path, p3m_np, "mask-only", "--guidance", "erode")
    assert rows["mask-only@gt+erode"]["guidance"] == "oracle:gt+erode"


def test_bench_on_composition1k_uses_the_dim_convention_over_the_unknown_region(tmp_path, p3m_np):
    root = tmp_path / "Composition-1k-test"
    for name in ("merged", "alpha_copy", "trimaps"):
        (root / name).mkdir(parents=True)
    for k, stem in enumerate(STEMS):
        shutil.copy(p3m_np / "original_image" / f"{stem}.jpg", root / "merged" / f"{stem}_{k}.jpg")
        shutil.copy(p3m_np / "mask" / f"{stem}.png", root / "alpha_copy" / f"{stem}_{k}.png")
        shutil.copy(p3m_np / "trimap" / f"{stem}.png", root / "trimaps" / f"{stem}_{k}.png")
    row = _bench(tmp_path, root, "mask-only")["mask-only"]
    assert not any(key.startswith("p3m_") for key in row)
    # mask-only hands back the ground truth binarised at 0.5: DIM SAD (/1000) and MSE (x1000 over the unknown
    # pixels) by hand
    sad, mse = [], []
    for k, stem in enumerate(STEMS):
        gt = read_alpha(root / "alpha_copy" / f"{stem}_{k}.png").astype(np.float64)
        unknown = cv2.imread(str(root / "trimaps" / f"{stem}_{k}.png"), cv2.IMREAD_GRAYSCALE) == 128
        diff = (gt >= 0.5) - gt
        sad.append(np.abs(diff).sum() / 1000)
        mse.append((diff[unknown] ** 2).mean() * 1000)
    assert float(row["dim_SAD"]) == pytest.approx(np.mean(sad), rel=1e-5)
    assert float(row["dim_MSE_trimap"]) == pytest.approx(np.mean(mse), rel=1e-5)
    for column in CLASSIC_MEASURED_COLUMNS["dim-matlab"].values():
        assert np.isfinite(float(row[column]))


def test_rows_on_data_that_is_not_a_classic_benchmark_get_no_classic_columns():
    stat = ClassicStat()
    assert classic_columns(stat, set()) == {}
    stat.update({"SAD": 1.0, "MSE": 0.5})
    assert classic_columns(stat, {"p3m"}) == {"p3m_SAD": 1.0, "p3m_MSE": 0.5}
    assert classic_columns(stat, {"dim"}) == {"dim_SAD": 1.0, "dim_MSE": 0.5}
    assert classic_columns(stat, set()) == {}


# ---------------------------------------------------------------------------------- evaluate PRED without --gt
def test_evaluate_without_gt_finds_the_benchmark_folder_the_predictions_were_made_from(tmp_path, p3m_np):
    pred = _predict(tmp_path, p3m_np, "mask-cf")
    runner = CliRunner()
    found = runner.invoke(main, ["evaluate", str(pred), "--out", str(tmp_path / "a"), "--quiet", "--workers", "1"])
    named = runner.invoke(main, ["evaluate", str(pred), "--gt", str(p3m_np), "--out", str(tmp_path / "b"), "--quiet",
                                 "--workers", "1"])
    assert found.exit_code == 0, found.output
    assert named.exit_code == 0, named.output
    a = json.loads((tmp_path / "a" / "summary.json").read_text())["summary"]
    b = json.loads((tmp_path / "b" / "summary.json").read_text())["summary"]
    # P3M's Grad sums in float32 (as its evaluator does): the two runs agree to float32 rounding, not bit for bit
    assert a == pytest.approx(b, rel=1e-6) and a["classic_images"] == 2
    expected = _independent_means(pred, p3m_np, "p3m")
    assert a["SAD_trimap"] == pytest.approx(expected["SAD_trimap"], rel=1e-6)


def test_evaluate_without_gt_refuses_a_benchmark_folder_that_moved_or_no_longer_fits(tmp_path, p3m_np):
    pred = _predict(tmp_path, p3m_np, "mask-cf")
    runner = CliRunner()
    shutil.rmtree(p3m_np / "mask")  # no longer a P3M-500-NP folder
    broken = runner.invoke(main, ["evaluate", str(pred), "--out", str(tmp_path / "a"), "--quiet"])
    assert broken.exit_code == 2
    assert "predictions.json" in broken.output and "P3M-500-NP" in broken.output and "mask/" in broken.output
    shutil.rmtree(p3m_np)  # moved away
    gone = runner.invoke(main, ["evaluate", str(pred), "--out", str(tmp_path / "b"), "--quiet"])
    assert gone.exit_code == 2
    assert "predictions.json" in gone.output and "not there any more" in gone.output


# ------------------------------------------------------------------------------- the qualitative grid's photo
def test_the_default_grid_photo_ships_in_the_package_with_its_ground_truth(realdata):
    from pathlib import Path

    from himbench.leaderboard.qualitative import GROUP_PHOTO, default_photo, photo_ground_truth

    assert default_photo() == GROUP_PHOTO and "himbench/assets/group/" in GROUP_PHOTO.replace("\\", "/")
    # package data (pyproject: himbench assets/**/*), a copy of the repository's tests/data/realdata/group
    assert Path(GROUP_PHOTO).read_bytes() == (realdata / "group" / "images" / "test" / "p3m_group.jpg").read_bytes()
    truth = photo_ground_truth(GROUP_PHOTO)
    image = read_image(GROUP_PHOTO)
    mattes = [read_alpha(path, expected_shape=image.shape[:2]) for path in sorted(truth.glob("*.png"))]
    assert len(mattes) == 3 and all(m.max() == 1 for m in mattes)
    assert (np.sum(mattes, axis=0) <= 1 + 1e-6).all()  # visible mattes of one photo sum to at most 1
    plain = realdata / "P3M" / "demo" / "imgs" / "original" / "p_51c916fc.jpg"
    assert photo_ground_truth(plain) is None  # a plain photo has none


def test_a_data_sets_note_goes_under_its_own_table_only():
    from himbench.leaderboard import DATA_NOTES, with_data_notes

    page = "### him-test-640 / test on `cpu`\n\ntable A\n### P3M-500-NP-sample / test on `cpu`\n\ntable B\n"
    out = with_data_notes(page)
    synthetic, real = out.split("### P3M-500-NP-sample")
    assert synthetic == page.split("### P3M-500-NP-sample")[0]  # the synthetic table is unchanged
    assert DATA_NOTES["P3M-500-NP-sample"] in real and real.index("MIT") < real.index("table B")
    assert "640 px" in real and "12 portraits" in real and "pseudo ground truth" in real
