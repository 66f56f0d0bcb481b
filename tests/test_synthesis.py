"""The synthesis engine: compositing equation, invariants, determinism, resume, bad sources, export, card."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from himbench.build_config import BuildConfig
from himbench.io import InputError, read_alpha
from himbench.shards import boxes_from_alphas, list_shards, read_split
from himbench.synthesis import build_dataset, export_him2k
from himbench.synthesis.compose import visible_mattes_u8

SMALL = dict(width=160, height=128, images_per_shard=2, min_instances=2, max_instances=4)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(folder)}


@pytest.fixture(scope="module")
def mixed_build(tmp_path_factory, realdata) -> Path:
    """A small build from the embedded people and the real P3M cut-outs, with layers stored."""
    out = tmp_path_factory.mktemp("mixed")
    config = BuildConfig(
        splits={"train": 6, "test": 4},
        fg_sources=("embedded", str(realdata / "P3M/demo/imgs")),
        bg_sources=("embedded", str(realdata / "pymatting/data/lemur")),
        store_layers=True,
        seed=3,
        **{**SMALL, "width": 256, "height": 192},
    )
    build_dataset(config, out, workers=1, progress=False)
    return out


def test_visible_mattes_hand_worked():
    # Back layer a=0.5, front layer a=0.5: exact vis back = 0.5*(1-0.5) = 0.25 (63.75 levels), front = 0.5 (127.5).
    # Coverage from the front: c1 = 0.5 -> 128 (127.5 rounds half to even = 128), c2 = 0.75 -> 191 (191.25).
    alphas = np.full((2, 1, 1), 0.5, np.float32)
    vis = visible_mattes_u8(alphas)
    assert vis[:, 0, 0].tolist() == [63, 128]
    rng = np.random.default_rng(0)
    alphas = rng.random((5, 32, 32)).astype(np.float32) * (rng.random((5, 32, 32)) > 0.3)
    vis = visible_mattes_u8(alphas).astype(np.int32)
    exact = alphas * np.concatenate([np.cumprod((1 - alphas)[::-1], axis=0)[::-1][1:], np.ones((1, 32, 32))], 0)
    assert vis.sum(axis=0).max() <= 255
    assert np.abs(vis - exact * 255).max() <= 1.0


def test_shards_load_with_datasets_and_satisfy_compositing(mixed_build):
    from datasets import load_dataset

    dataset = load_dataset(str(mixed_build), cache_dir=str(mixed_build / ".hf-cache"))
    assert set(dataset) == {"train", "test"}
    assert dataset["train"].num_rows == 6 and dataset["test"].num_rows == 4
    sources = set()
    for split in ("train", "test"):
        for row in dataset[split]:
            image = np.asarray(row["image"].convert("RGB"), np.float64)
            alphas = np.stack([np.asarray(a, np.float64) / 255.0 for a in row["alphas"]])
            fgs = np.stack([np.asarray(f.convert("RGB"), np.float64) for f in row["foregrounds"]])
            background = np.asarray(row["background"].convert("RGB"), np.float64)
            total = alphas.sum(axis=0)
            assert total.max() <= 1.0 + 1e-9, row["id"]
            expected = (fgs * alphas[..., None]).sum(axis=0) + background * (1.0 - total)[..., None]
            # Within 8-bit rounding of the equation (half a level, plus float slack).
            assert np.abs(expected - image).max() <= 0.5 + 1e-6, row["id"]
            assert row["num_instances"] == len(row["alphas"]) == len(row["boxes"]) == len(row["fg_sources"])
            assert 1 <= row["num_instances"] <= 4
            np.testing.assert_array_equal(np.asarray(row["boxes"]), boxes_from_alphas(alphas))
            assert all(a.any() for a in alphas)
            sources.update(s.split(":")[0] for s in row["fg_sources"])
    assert sources == {"embedded", "demo/imgs"}  # both the procedural people and the real P3M cut-outs were used


def test_mattes_keep_min_visible_share_and_soft_band(mixed_build):
    samples = list(read_split(mixed_build, "train"))
    assert samples
    for sample in samples:
        assert sample.image.shape == (192, 256, 3)
        assert sample.alphas.dtype == np.float32
    soft = np.mean([((s.alphas > 0) & (s.alphas < 1)).sum() / max((s.alphas > 0).sum(), 1) for s in samples])
    assert soft > 0.02  # the mattes have a real unknown band, not binary masks


def test_same_seed_same_bytes_whatever_the_workers(tmp_path, realdata):
    config = BuildConfig(
        splits={"train": 5}, fg_sources=(str(realdata / "P3M/demo/imgs"),), bg_sources=("embedded",), **SMALL
    )
    build_dataset(config, tmp_path / "one", workers=1, progress=False)
    build_dataset(config, tmp_path / "two", workers=2, progress=False)
    first, second = _digest(tmp_path / "one"), _digest(tmp_path / "two")
    assert len(first) == 3 and first == second
    other = BuildConfig(**{**config.to_dict(), "seed": 1, "fg_sources": config.fg_sources})
    build_dataset(other, tmp_path / "other", workers=1, progress=False)
    assert _digest(tmp_path / "other") != first


def test_resume_keeps_finished_shards_and_redoes_broken_ones(tmp_path):
    config = BuildConfig(splits={"train": 6}, **SMALL)
    out = tmp_path / "build"
    build_dataset(config, out, workers=1, progress=False)
    reference = _digest(out)
    shards = list_shards(out)
    # Simulate a crash: one shard never written, one truncated mid-write, a temp file left behind.
    shards[0].unlink()
    shards[1].write_bytes(shards[1].read_bytes()[:100])
    (out / "data" / ".train-00002-of-00003.parquet.abc.tmp").write_bytes(b"partial")
    kept_mtime = shards[2].stat().st_mtime_ns
    report = build_dataset(config, out, workers=1, progress=False)
    assert sum(s.resumed for s in report.shards) == 1
    assert shards[2].stat().st_mtime_ns == kept_mtime  # the finished shard was not redone
    assert _digest(out) == reference
    assert not list((out / "data").glob(".*.tmp"))


def test_killed_build_resumes_to_identical_output(tmp_path):
    args = ["--splits", "train=8", "--size", "160x128", "--images-per-shard", "1", "--seed", "5", "-j", "1",
            "--no-progress"]
    cli = [sys.executable, "-m", "himbench.cli", "build-dataset"]
    subprocess.run([*cli, "--out", str(tmp_path / "ref"), *args], check=True, capture_output=True)
    proc = subprocess.Popen([*cli, "--out", str(tmp_path / "crash"), *args])
    deadline = time.time() + 60
    while time.time() < deadline and len(list((tmp_path / "crash").glob("data/*.parquet"))) < 2:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    finished = len(list((tmp_path / "crash").glob("data/*.parquet")))
    assert finished < 8, "the build finished before it could be killed; make it longer"
    done = subprocess.run([*cli, "--out", str(tmp_path / "crash"), *args], check=True, capture_output=True, text=True)
    assert f"({finished} kept from an earlier run)" in done.stdout or finished == 0
    assert _digest(tmp_path / "crash") == _digest(tmp_path / "ref")


def test_bad_sources_are_reported_and_skipped(tmp_path, realdata):
    src = tmp_path / "fgset"
    (src / "fg").mkdir(parents=True)
    (src / "alpha").mkdir()
    p3m = realdata / "P3M/demo/imgs"
    for stem in ("p_a09f6d7a", "p_71bcce3a"):  # two good cut-outs
        image = cv2.imread(str(p3m / "original" / f"{stem}.jpg"))
        cv2.imwrite(str(src / "fg" / f"{stem}.png"), cv2.resize(image, (270, 180)))
        alpha = cv2.imread(str(p3m / "alpha" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(src / "alpha" / f"{stem}.png"), cv2.resize(alpha, (270, 180)))
    cv2.imwrite(str(src / "fg" / "mismatch.png"), np.zeros((50, 60, 3), np.uint8))
    cv2.imwrite(str(src / "alpha" / "mismatch.png"), np.full((40, 60), 255, np.uint8))
    cv2.imwrite(str(src / "fg" / "empty.png"), np.zeros((50, 60, 3), np.uint8))
    cv2.imwrite(str(src / "alpha" / "empty.png"), np.zeros((50, 60), np.uint8))
    cv2.imwrite(str(src / "fg" / "broken.png"), np.zeros((50, 60, 3), np.uint8))
    (src / "alpha" / "broken.png").write_bytes(b"not a png at all")
    cv2.imwrite(str(src / "fg" / "lonely.png"), np.zeros((50, 60, 3), np.uint8))

    config = BuildConfig(splits={"train": 12}, fg_sources=(str(src),), **SMALL)
    report = build_dataset(config, tmp_path / "out", workers=1, progress=False)
    assert report.num_images == 12
    problems = "\n".join(report.problems)
    assert "lonely.png: no alpha with the same name" in problems
    assert "mismatch.png: alpha size 60x40 does not match image" in problems
    assert "empty.png: alpha is empty" in problems
    assert "broken.png: cannot decode image" in problems
    saved = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert saved["skipped_sources"] == len(report.problems) >= 4
    for sample in read_split(tmp_path / "out", "train"):
        assert all(name.split(":")[1] in ("p_a09f6d7a", "p_71bcce3a") for name in sample.fg_sources)


def test_missing_source_folder_is_a_clear_error(tmp_path):
    config = BuildConfig(splits={"train": 1}, fg_sources=(str(tmp_path / "nope"),), **SMALL)
    with pytest.raises(InputError, match="nope: foreground source is neither 'embedded' nor an existing folder"):
        build_dataset(config, tmp_path / "out", workers=1, progress=False)


def test_other_config_in_same_folder_is_refused(tmp_path):
    build_dataset(BuildConfig(splits={"train": 1}, **SMALL), tmp_path, workers=1, progress=False)
    with pytest.raises(InputError, match="different configuration"):
        build_dataset(BuildConfig(splits={"train": 1}, seed=9, **SMALL), tmp_path, workers=1, progress=False)


def test_export_him2k_round_trip_and_card(mixed_build, tmp_path):
    counts = export_him2k(mixed_build, tmp_path, progress=False)
    assert counts == {"test": 4, "train": 6}
    for sample in read_split(mixed_build, "test"):
        image = cv2.imread(str(tmp_path / "images/test" / f"{sample.id}.png"))[:, :, ::-1]
        np.testing.assert_array_equal(image, sample.image)
        files = sorted((tmp_path / "alphas/test" / sample.id).glob("*.png"))
        assert len(files) == sample.num_instances
        for k, path in enumerate(files):
            np.testing.assert_array_equal(read_alpha(path), sample.alphas[k])
    card = (mixed_build / "README.md").read_text()
    assert "configs:" in card and "path: data/train-*.parquet" in card
    total_instances = sum(s.num_instances for s in read_split(mixed_build, "train"))
    assert f"| train | 6 | {total_instances} | 3 |" in card


def test_packaged_card_template_matches_data_cards():
    root = Path(__file__).resolve().parents[1]
    assert (root / "himbench/assets/him_synthetic.md").read_text() == (root / "data_cards/him_synthetic.md").read_text()


def test_cli_help_does_not_import_torch():
    code = (
        "import sys; from click.testing import CliRunner; from himbench.cli import main; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
        "from himbench.cli import COMMANDS; "
        "results = [CliRunner().invoke(main, [name, '--help']) for name in COMMANDS]; "
        "assert all(r.exit_code == 0 for r in results), [r.output for r in results]; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
