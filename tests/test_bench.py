"""The benchmark harness: methods through predict + evaluate on a tiny hand-made shard folder, into the CSV."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from himbench.bench import (
    FIXED_COLUMNS,
    BenchConfig,
    bench_method,
    merge_rows,
    read_results,
    run_bench,
    synthetic_probe,
    update_results,
)
from himbench.io import encode_alpha_png
from himbench.methods import Method, Prediction
from himbench.shards import boxes_from_alphas, read_split, shard_name, write_shard

SIZE = 80


def _rows(count: int = 2) -> list[dict]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    rows = []
    for i in range(count):
        image = np.full((SIZE, SIZE, 3), 30.0) + rng.uniform(0, 30, 3)
        alphas = []
        for cx in (SIZE * 0.3, SIZE * 0.7):
            a = np.clip((SIZE * 0.16 - np.hypot(yy - SIZE / 2, xx - cx)) / 3 + 0.5, 0, 1)
            a = (np.rint(a * 255) / 255).astype(np.float32)
            alphas.append(a)
            image = image * (1 - a[..., None]) + a[..., None] * rng.uniform(150, 255, 3)
        alphas = np.stack(alphas)
        ok, png = cv2.imencode(".png", image.astype(np.uint8)[:, :, ::-1])
        assert ok
        rows.append(
            {
                "id": f"img{i:03d}", "seed": i, "image": png.tobytes(), "alphas": [encode_alpha_png(a) for a in alphas],
                "boxes": boxes_from_alphas(alphas).tolist(), "depth_order": [0, 1], "fg_sources": ["a", "b"],
                "bg_source": "flat", "width": SIZE, "height": SIZE, "num_instances": 2,
            }
        )
    return rows


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tinyset")
    write_shard(_rows(), root / "data" / shard_name("test", 0, 1))
    return root


def _config(shard_dir, methods=("mask-cf",), **kwargs) -> BenchConfig:
    return BenchConfig(
        data=str(shard_dir), methods=methods, device="cpu", latency_counts=(1, 2), latency_size=64,
        latency_repeats=1, **kwargs,
    )


class _Oracle(Method):
    """Returns the ground truth it was handed: a perfect method, to check scoring end to end."""

    name = "oracle"

    def __init__(self, truth: dict[str, np.ndarray]) -> None:
        self.truth, self.spec = truth, {"name": "oracle"}

    def predict(self, image, masks=None):
        # Images it was not told about (the latency probe's) have nobody in them, as far as it knows.
        alphas = self.truth.get(image.tobytes(), np.zeros((0, *image.shape[:2]), np.float32))
        return Prediction(alphas, np.ones(len(alphas)))


class _Broken(Method):
    name = "broken"
    spec = {"name": "broken"}

    def predict(self, image, masks=None):
        raise RuntimeError("boom")


def test_a_perfect_method_scores_100_and_a_broken_one_misses_everything(shard_dir):
    samples = list(read_split(shard_dir, "test"))
    truth = {s.image.tobytes(): s.alphas for s in samples}
    config = _config(shard_dir)
    perfect = bench_method(lambda: _Oracle(truth), samples, config)
    assert perfect.metrics["IMQ_mad@0.5"] == pytest.approx(100.0)
    assert perfect.metrics["RQ@0.75"] == pytest.approx(100.0)
    assert perfect.n_images == 2 and not perfect.failures
    assert set(perfect.latency_vs_instances) == {1, 2}

    errors = []
    broken = bench_method(lambda: _Broken(), samples, config, on_error=errors.append)
    assert len(broken.failures) == 2 and "boom" in errors[0]
    assert broken.latency_vs_instances == {} and "latency probe" in broken.probe_error and len(errors) == 3
    assert broken.metrics["RQ@0.5"] == 0.0 and broken.metrics["FN@0.5"] == 4


def test_bench_writes_a_csv_row_with_every_column_and_replaces_it_on_rerun(shard_dir, tmp_path):
    import torch

    from himbench.checkpoints import save_checkpoint
    from himbench.registry import create_model

    torch.manual_seed(0)
    refiner = create_model("mask-refine-tiny", width=8, depth=2, input_size=64)  # small: fast enough for a test
    checkpoint = str(save_checkpoint(refiner, tmp_path / "refiner", "mask-refine-tiny"))
    options = {"mask-refine": {"checkpoint": checkpoint}}
    env, results, rows = run_bench(_config(shard_dir, methods=("mask-cf", "mask-refine"), method_options=options))
    csv_path = tmp_path / "results.csv"
    update_results(csv_path, rows)
    stored = read_results(csv_path)
    assert [r["method"] for r in stored] == ["mask-cf", "mask-refine"]
    for row in stored:
        missing = [c for c in (*FIXED_COLUMNS, "IMQ_mad@0.5", "RQ@0.75", "inst_MAD") if c not in row]
        assert not missing
        assert row["environment"] == env.slug and row["data"] == shard_dir.name
        assert all(row[c] != "" for c in ("latency_ms", "latency_ms_n1", "latency_ms_n2", "params", "peak_mem_mb"))
    assert stored[0]["trained"] == stored[1]["trained"] == "True"
    assert stored[1]["params"] == str(sum(p.numel() for p in refiner.parameters()))
    assert float(stored[0]["IMQ_mad@0.5"]) > 80  # closed form from perfect masks of soft discs
    assert json.loads(stored[1]["spec"])["name"] == "mask-refine"
    # Re-running replaces the rows of the same key instead of appending duplicates.
    update_results(csv_path, rows[:1])
    assert [r["method"] for r in read_results(csv_path)] == ["mask-cf", "mask-refine"]


def test_guidance_perturbation_changes_the_label_and_hurts(shard_dir):
    config = _config(shard_dir, method_options={"mask-cf": {"guidance": "drop"}})
    _, results, rows = run_bench(config)
    assert rows[0]["method"] == "mask-cf@gt+drop" and rows[0]["guidance"] == "gt+drop"
    assert results[0].metrics["FN@0.5"] == 2  # one person dropped in each of the two images


def test_merge_rows_keeps_order_and_appends_new_keys():
    old = [{"method": "a", "data": "d", "split": "s", "environment": "e", "x": "1"},
           {"method": "b", "data": "d", "split": "s", "environment": "e", "x": "2"}]
    new = [{"method": "b", "data": "d", "split": "s", "environment": "e", "x": "3"},
           {"method": "b", "data": "d", "split": "s", "environment": "gpu", "x": "4"}]
    assert [r["x"] for r in merge_rows(old, new)] == ["1", "3", "4"]


def test_synthetic_probe_has_n_disjoint_people():
    for n in (1, 6, 10):
        image, masks = synthetic_probe(n, size=128)
        assert image.shape == (128, 128, 3) and masks.shape == (n, 128, 128)
        assert masks.sum(axis=0).max() == 1 and all(m.sum() > 20 for m in masks)


def test_bench_cli_names_the_result_file_after_data_split_and_environment(shard_dir, tmp_path):
    from click.testing import CliRunner

    from himbench.cli.bench import command

    out, csv_path = tmp_path / "out", tmp_path / "lb.csv"
    args = ["--methods", "mask-cf", "--data", str(shard_dir), "--out", str(out), "--leaderboard", str(csv_path),
            "--device", "cpu", "--latency-size", "64", "--max-instances", "2", "--latency-repeats", "1",
            "--guidance", "erode", "--guidance-radius", "1", "--no-progress"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.iterdir())
    config_file, result_file = files
    assert config_file.endswith(".config.json") and result_file == config_file.replace(".config", "")
    assert result_file.startswith(f"bench_{shard_dir.name}_test_cpu-") and "torch" in result_file
    assert json.loads((out / config_file).read_text())["method_options"]["mask-cf"]["guidance"] == "erode"
    assert json.loads((out / result_file).read_text())["rows"][0]["method"] == "mask-cf@gt+erode"
    assert read_results(csv_path)[0]["method"] == "mask-cf@gt+erode"
    # A second run on the same data and machine adds its rows to the same result file.
    again = CliRunner().invoke(command, [*args[:-5], "--guidance", "none", "--no-progress"])
    assert again.exit_code == 0, again.output
    assert [r["method"] for r in json.loads((out / result_file).read_text())["rows"]] == ["mask-cf@gt+erode", "mask-cf"]
    bad = CliRunner().invoke(command, [*args[:6], "--checkpoint", "nope=x.safetensors", "--no-leaderboard"])
    assert bad.exit_code != 0 and "METHOD=PATH" in bad.output


# ------------------------------------------------------------------------------------- M-HIM2K protocol, CSV safety
def _write_png(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", array)
    assert ok
    path.write_bytes(data.tobytes())


@pytest.fixture(scope="module")
def mhim2k_dir(tmp_path_factory):
    """A tiny folder in the released HIM2K_M-HIM2K layout: images/<subset>/<stem>.png, alphas/<subset>/<stem>/<k>.png
    and three mask sets masks_matched_<model>/<subset>/<stem>/<k>.png (named like the alphas, as released)."""
    from himbench.guidance import dilate_masks, erode_masks

    root = tmp_path_factory.mktemp("HIM2K_M-HIM2K")
    for subset, rows in (("comp", _rows(2)), ("natural", _rows(1))):
        for row in rows:
            image = cv2.imdecode(np.frombuffer(row["image"], np.uint8), cv2.IMREAD_COLOR)
            _write_png(root / "images" / subset / f"{row['id']}.png", image)
            alphas = np.stack([cv2.imdecode(np.frombuffer(a, np.uint8), cv2.IMREAD_GRAYSCALE) for a in row["alphas"]])
            masks = alphas >= 128
            for k, alpha in enumerate(alphas):
                _write_png(root / "alphas" / subset / row["id"] / f"{k:02d}.png", alpha)
            for model, made in (("r50_c4_3x", masks), ("r50_fpn_3x", erode_masks(masks, 2)),
                                ("x101_fpn_3x", dilate_masks(masks, 2))):
                for k, mask in enumerate(made):
                    _write_png(root / f"masks_matched_{model}" / subset / row["id"] / f"{k:02d}.png",
                               mask.astype(np.uint8) * 255)
    return root


def test_find_mask_sets_reads_the_released_layout(mhim2k_dir):
    from himbench.bench.harness import find_mask_sets

    sets = find_mask_sets(mhim2k_dir)
    assert [name for name, _ in sets] == ["r50_c4_3x", "r50_fpn_3x", "x101_fpn_3x"]
    assert find_mask_sets(mhim2k_dir / "masks_matched_r50_c4_3x") == ()  # a single set


def test_bench_cli_runs_every_mask_set_and_writes_a_mean_std_row(mhim2k_dir, tmp_path):
    from click.testing import CliRunner

    from himbench.cli.bench import command

    csv_path = tmp_path / "lb.csv"
    args = ["--methods", "mask-only,mask-cf", "--data", str(mhim2k_dir), "--masks", str(mhim2k_dir),
            "--split", "comp,natural", "--size-protocol", "maggie", "--out", str(tmp_path / "out"),
            "--leaderboard", str(csv_path), "--device", "cpu", "--latency-size", "64", "--max-instances", "1",
            "--latency-repeats", "1", "--no-progress", "--option", "mask-cf.work_size=96"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    assert "3 mask sets" in result.output
    rows = read_results(csv_path)
    for split, n_images in (("comp", "2"), ("natural", "1")):
        mine = [r for r in rows if r["split"] == split and r["method"].startswith("mask-only")]
        assert [r["method"] for r in mine] == ["mask-only@r50_c4_3x", "mask-only@r50_fpn_3x",
                                               "mask-only@x101_fpn_3x", "mask-only@m-him2k"]
        per_set, mean = mine[:3], mine[3]
        assert all(r["size_protocol"] == "maggie" and r["n_images"] == n_images for r in mine)
        assert [r["mask_set"] for r in per_set] == ["r50_c4_3x", "r50_fpn_3x", "x101_fpn_3x"]
        assert mean["mask_set"] == "mean of 3 sets"
        for key in ("maggie_MAD", "IMQ_mad@0.5", "inst_MAD"):
            values = [float(r[key]) for r in per_set]
            assert float(mean[key]) == pytest.approx(np.mean(values), rel=1e-5)
            assert float(mean[f"{key}_std"]) == pytest.approx(np.std(values), rel=1e-4, abs=1e-9)
        # Perfect masks beat eroded ones; the masks really came from each set.
        assert float(per_set[0]["maggie_MAD"]) < float(per_set[1]["maggie_MAD"])
        assert "--size-protocol maggie" in mean["command"] and "--masks" in mean["command"]
    assert {r["method"].split("@")[0] for r in rows} == {"mask-only", "mask-cf"}
    assert len(rows) == 2 * 2 * 4


def test_size_protocol_resizes_for_the_network_and_back():
    from himbench.bench.harness import SIZE_PROTOCOLS
    from himbench.methods import Prediction

    maggie, instmatt = SIZE_PROTOCOLS["maggie"], SIZE_PROTOCOLS["instmatt"]
    assert maggie.size(1080, 1920) == (576, 1024) and maggie.size(300, 200) == (864, 576)  # up or down
    assert instmatt.size(1080, 1920) == (720, 1280) and instmatt.size(300, 200) == (300, 200)  # down only
    seen = []

    def predict(image, masks):
        seen.append((image.shape, masks.shape))
        return Prediction(masks.astype(np.float32), np.ones(len(masks)))

    masks = np.zeros((2, 100, 150), bool)
    masks[0, 10:50, 10:60] = True
    out = maggie.predict(predict, np.zeros((100, 150, 3), np.uint8), masks)
    assert seen == [((576, 864, 3), (2, 576, 864))] and out.alphas.shape == (2, 100, 150)
    assert out.alphas[0, 30, 30] == 1.0 and out.alphas[1].max() == 0.0


def test_results_updates_wait_for_the_lock(tmp_path):
    import threading
    import time

    from himbench.bench.results import results_lock

    path = tmp_path / "results.csv"
    row = {"method": "a", "data": "d", "split": "s", "environment": "e", "x": "1"}
    update_results(path, [row])
    done = threading.Event()

    def writer(name: str) -> None:
        update_results(path, [dict(row, method=name)])
        done.set()

    with results_lock(path):
        thread = threading.Thread(target=writer, args=("b",))
        thread.start()
        time.sleep(0.3)
        assert not done.is_set()  # blocked on the lock held here
        assert [r["method"] for r in read_results(path)] == ["a"]
    thread.join(10)
    assert done.is_set() and [r["method"] for r in read_results(path)] == ["a", "b"]
    assert (tmp_path / "results.csv.lock").exists()
    # Many writers at once: no update is lost.
    threads = [threading.Thread(target=writer, args=(f"m{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(r["method"] for r in read_results(path)) == sorted(["a", "b", *(f"m{i}" for i in range(8))])


def test_malformed_csv_is_refused_with_its_line_and_never_written_back(tmp_path):
    from click.testing import CliRunner

    from himbench.bench.results import MalformedResultsError
    from himbench.cli.leaderboard import command as leaderboard

    path = tmp_path / "results.csv"
    bad = 'method,data,split,environment,x\na,d,s,e,1\nb,d,s,e,"2\nc,d,s,e,3\n'
    path.write_text(bad)
    with pytest.raises(MalformedResultsError) as err:
        read_results(path)
    assert err.value.line == 3 and "unbalanced quote" in str(err.value)
    with pytest.raises(MalformedResultsError):
        update_results(path, [{"method": "z", "data": "d", "split": "s", "environment": "e"}])
    assert path.read_text() == bad  # untouched
    path.write_text("method,data,split,environment\na,d,s,e\nb,d,s,e,extra\n")
    with pytest.raises(MalformedResultsError, match=r":3: 5 fields where the header has 4"):
        read_results(path)
    result = CliRunner().invoke(leaderboard, ["--csv", str(path), "--out", str(tmp_path / "lb"), "--no-qualitative"])
    assert result.exit_code != 0 and ":3:" in result.output and not (tmp_path / "lb").exists()


class _Recording(Method):
    """Wraps a method and keeps every prediction it makes on the scored images, so they can be written to disk."""

    def __init__(self, inner: Method) -> None:
        self.inner, self.name, self.spec, self.guidance = inner, inner.name, inner.spec, inner.guidance
        self.seen: list[tuple[np.ndarray, Prediction]] = []

    def predict(self, image, masks=None):
        prediction = self.inner.predict(image, masks)
        self.seen.append((image, prediction))
        return prediction


def test_bench_scores_exactly_what_evaluate_scores_on_the_same_predictions(shard_dir, tmp_path):
    """One scorer: the bench's in-memory numbers equal `himbench evaluate` on the same predictions saved as PNGs."""
    from himbench.evaluation import evaluate_folder
    from himbench.io import write_alpha_png
    from himbench.methods import create_method

    samples = list(read_split(shard_dir, "test"))
    # Eroded masks through closed-form matting: soft, imperfect mattes, so every metric is exercised.
    recorder = _Recording(create_method("mask-cf", guidance="erode", guidance_radius=2))
    result = bench_method(lambda: recorder, samples, _config(shard_dir))
    by_image = {image.tobytes(): prediction for image, prediction in recorder.seen}
    for sample in samples:
        folder = tmp_path / "preds" / "test" / sample.id
        folder.mkdir(parents=True)
        for k, alpha in enumerate(by_image[sample.image.tobytes()].alphas):
            write_alpha_png(folder / f"{k:02d}.png", alpha)
    scored = evaluate_folder(tmp_path / "preds", shard_dir, split="test", workers=1, progress=False)
    assert not scored.problems
    for key in ("IMQ_mad@0.5", "IMQ_mse@0.5", "IMQ_grad@0.5", "IMQ_conn@0.5", "RQ@0.5", "IMQ_mad@0.75",
                "inst_MAD", "inst_MSE", "inst_Grad", "inst_Conn", "TP@0.5", "FP@0.5", "FN@0.5"):
        assert result.metrics[key] == pytest.approx(scored.summary[key], rel=1e-9, abs=1e-12), key
    assert 0 < result.metrics["IMQ_mad@0.5"] < 100
