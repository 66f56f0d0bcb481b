"""The estimated-foreground cache and the low-resolution placement: same bytes warm, cold, lazy, corrupt or absent."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from himbench.build_config import BuildConfig
from himbench.shards import list_shards
from himbench.synthesis import build_dataset, build_shard, plan_shards
from himbench.synthesis.fgcache import read_entry
from himbench.synthesis.sampler import prepared_cap
from himbench.synthesis.sources import load_foreground, scan_backgrounds, scan_foregrounds

SMALL = dict(width=160, height=128, images_per_shard=2, min_instances=2, max_instances=4)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(folder)}


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*/*.npz"))


def _build(config: BuildConfig, out: Path, fg_cache, workers: int = 1):
    load_foreground.cache_clear()  # so this build really reads (or computes) its cut-outs, as a new process would
    return build_dataset(config, out, workers=workers, progress=False, write_card=False, fg_cache=fg_cache)


def _p3m_folder(realdata: Path, root: Path, stems: tuple[str, ...], flip: bool = False) -> Path:
    """A P3M-style folder (original/ + alpha/) of a few portraits, shrunk so the tests stay fast."""
    p3m = realdata / "P3M/demo/imgs"
    (root / "original").mkdir(parents=True)
    (root / "alpha").mkdir()
    for k, stem in enumerate(stems):
        image = cv2.imread(str(p3m / "original" / f"{stem}.jpg"))
        alpha = cv2.imread(str(p3m / "alpha" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        size = (image.shape[1] // 5, image.shape[0] // 5)
        image, alpha = cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.resize(alpha, size)
        if flip:
            image, alpha = np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(alpha[:, ::-1])
        cv2.imwrite(str(root / "original" / f"person{k}.png"), image)
        cv2.imwrite(str(root / "alpha" / f"person{k}.png"), alpha)
    return root


@pytest.fixture(scope="module")
def p3m_config(realdata) -> BuildConfig:
    return BuildConfig(
        splits={"train": 4}, fg_sources=(str(realdata / "P3M/demo/imgs"),), bg_sources=("embedded",), seed=7, **SMALL
    )


@pytest.fixture(scope="module")
def cold_build(p3m_config, tmp_path_factory) -> tuple[Path, Path, dict]:
    """A build with an empty cache: the reference bytes, its cache folder and its report."""
    root = tmp_path_factory.mktemp("cold")
    report = _build(p3m_config, root / "out", root / "cache")
    return root / "out", root / "cache", report.to_dict()


def test_cold_build_fills_the_cache_once(cold_build):
    out, cache, report = cold_build
    estimates = report["foreground_estimates"]
    assert estimates["needed"] >= 2 and estimates["computed"] == estimates["needed"] and estimates["cached"] == 0
    assert len(_entries(cache)) == estimates["computed"]
    assert estimates["cap"] == [122, 152]  # the largest size a person is drawn at on a 160 x 128 canvas
    for path in _entries(cache):
        fg, alpha, _ = read_entry(path, (122, 152))
        assert fg.shape == (*alpha.shape, 3) and alpha.shape[0] <= 122 and alpha.shape[1] <= 152


def test_warm_cache_and_no_cache_give_the_cold_bytes(cold_build, p3m_config, tmp_path):
    out, cache, _ = cold_build
    warm = _build(p3m_config, tmp_path / "warm", cache).to_dict()["foreground_estimates"]
    assert warm["computed"] == 0 and warm["cached"] == warm["needed"]
    assert _digest(tmp_path / "warm") == _digest(out)
    assert _build(p3m_config, tmp_path / "none", False).to_dict()["foreground_estimates"] == {}
    assert _digest(tmp_path / "none") == _digest(out)


def test_a_worker_computes_and_caches_what_was_not_prepared(cold_build, p3m_config, tmp_path):
    # What a worker does when it meets a cut-out the build did not prepare (a redraw after a bad file): compute it,
    # cache it atomically, and make exactly the shard the prepared build made.
    out, _, _ = cold_build
    cache = tmp_path / "lazy"
    fg_refs = [dataclasses.replace(ref, fg_cache=str(cache)) for ref in scan_foregrounds(p3m_config.fg_sources)[0]]
    bg_refs = scan_backgrounds(p3m_config.bg_sources)
    load_foreground.cache_clear()
    task = plan_shards(p3m_config)[1]
    report = build_shard(p3m_config, task, tmp_path / "shard", fg_refs, bg_refs)
    assert Path(report.path).read_bytes() == (out / "data" / task.filename).read_bytes()
    assert _entries(cache) and not list(cache.glob("*/.*.tmp"))


def test_corrupt_entries_are_recomputed_never_trusted(cold_build, p3m_config, tmp_path):
    out, cold_cache, _ = cold_build
    cache = tmp_path / "cache"
    shutil.copytree(cold_cache, cache)
    entries = _entries(cache)
    assert len(entries) >= 2
    cap = prepared_cap(p3m_config)
    data = entries[0].read_bytes()
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte inside an array: the zip CRC-32 catches it
    entries[0].write_bytes(bytes(damaged))
    entries[1].write_bytes(data[: len(data) // 3])  # truncated
    fg, alpha, cut = read_entry(entries[-1], cap)
    forgeries = [
        dict(fg=fg.astype(np.float32), alpha=alpha, cut_at_bottom=np.bool_(cut)),  # wrong dtype
        dict(fg=fg, alpha=alpha[:-1], cut_at_bottom=np.bool_(cut)),  # shapes disagree
        dict(fg=fg, alpha=alpha * 2.0, cut_at_bottom=np.bool_(cut)),  # values outside [0, 1]
        dict(fg=np.array([fg], dtype=object), alpha=alpha, cut_at_bottom=np.bool_(cut)),  # a pickle
    ]
    for path, arrays in zip(entries[2:], forgeries, strict=False):
        np.savez(path, **arrays)
    for path in entries[2 + len(forgeries) :]:
        path.write_bytes(b"not an npz file")
    for path in entries:
        assert read_entry(path, cap) is None
    _build(p3m_config, tmp_path / "again", cache)
    assert _digest(tmp_path / "again") == _digest(out)
    for path in entries:  # every damaged entry was recomputed and rewritten
        assert read_entry(path, cap) is not None


def test_sources_with_the_same_names_share_nothing_wrong(realdata, tmp_path):
    # Two folders with the same file names and different pictures, one cache: each build's bytes are those it makes
    # with a cache of its own. The same pictures elsewhere, or the same folder at another size, behave as they must.
    first = _p3m_folder(realdata, tmp_path / "src" / "first", ("p_a09f6d7a", "p_71bcce3a"))
    second = _p3m_folder(realdata, tmp_path / "src" / "second", ("p_a09f6d7a", "p_71bcce3a"), flip=True)
    shared = tmp_path / "shared-cache"

    def config(folder: Path, **changes) -> BuildConfig:
        return BuildConfig(splits={"train": 3}, fg_sources=(str(folder),), bg_sources=("embedded",), seed=2,
                           **{**SMALL, **changes})

    _build(config(first), tmp_path / "first", shared)
    report = _build(config(second), tmp_path / "second", shared).to_dict()["foreground_estimates"]
    assert report["computed"] == report["needed"] == 2  # nothing of the first folder was taken for the second
    _build(config(second), tmp_path / "second-alone", tmp_path / "own-cache")
    assert _digest(tmp_path / "second") == _digest(tmp_path / "second-alone")
    assert len(_entries(shared)) == 4
    (tmp_path / "copy").mkdir()
    copy = shutil.copytree(first, tmp_path / "copy" / "first")
    assert _build(config(copy), tmp_path / "copy-out", shared).to_dict()["foreground_estimates"]["computed"] == 0
    bigger = _build(config(first, width=200, height=160), tmp_path / "bigger", shared)
    assert bigger.to_dict()["foreground_estimates"]["computed"] == 2  # another size: estimated at its own cap
    assert len(_entries(shared)) == 6


def test_two_workers_estimate_in_parallel_and_give_the_one_worker_bytes(cold_build, p3m_config, tmp_path, monkeypatch):
    from himbench.synthesis import build as build_module

    out, _, cold = cold_build
    # Force the parallel path (a process pool of 2 estimates the missing cut-outs before the shards start).
    monkeypatch.setattr(build_module, "_PARALLEL_ESTIMATES", 1)
    report = _build(p3m_config, tmp_path / "two", tmp_path / "cache", workers=2).to_dict()
    assert report["foreground_estimates"]["computed"] == cold["foreground_estimates"]["computed"]
    assert len(_entries(tmp_path / "cache")) == report["foreground_estimates"]["computed"]
    assert _digest(tmp_path / "two") == _digest(out)


def test_the_cache_folder_is_not_part_of_the_build(cold_build, p3m_config, tmp_path):
    out, cache, _ = cold_build
    target = tmp_path / "out"
    shutil.copytree(out, target)
    # Same build, another cache folder: the finished shards are this build's and are kept.
    report = _build(p3m_config, target, tmp_path / "other-cache")
    assert all(shard.resumed for shard in report.shards)
    assert _digest(target) == _digest(out)


def test_cli_fg_cache_options(realdata, tmp_path):
    from himbench.cli import main

    cache = tmp_path / "cli-cache"
    args = ["build-dataset", "--splits", "train=2", "--size", "96x80", "--fg", str(realdata / "P3M/demo/imgs"),
            "--instances", "1-2", "--max-attempts", "5", "--no-progress"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a"), "--fg-cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert _entries(cache)
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b"), "--fg-cache", str(cache), "--no-fg-cache"])
    assert result.exit_code == 2 and "not both" in result.output
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "c"), "--max-attempts", "0"])
    assert result.exit_code == 2


def test_crop_compositing_equals_the_full_canvas_equation():
    # The engine composites from per-person crops; it must give exactly what the full-canvas functions give.
    from himbench.synthesis.compose import (
        Layer,
        composite,
        composite_crops,
        stack_layer_alphas,
        visible_mattes_crops,
        visible_mattes_u8,
    )

    rng = np.random.default_rng(1)
    hw = (67, 91)
    for _ in range(60):
        layers = []
        for _ in range(int(rng.integers(0, 5))):
            h, w = int(rng.integers(1, 50)), int(rng.integers(1, 70))
            y0, x0 = int(rng.integers(0, hw[0] - h + 1)), int(rng.integers(0, hw[1] - w + 1))
            alpha = (rng.random((h, w)) * (rng.random((h, w)) > 0.3)).astype(np.float32)
            alpha[rng.random((h, w)) > 0.8] = 1.0
            layers.append(Layer(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), alpha, y0, x0, 1.0))
        background = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
        full = visible_mattes_u8(stack_layer_alphas(layers, hw), [layer.box for layer in layers])
        crops = visible_mattes_crops(layers, hw)
        for layer, whole, crop in zip(layers, full, crops, strict=True):
            np.testing.assert_array_equal(whole[layer.box.slices], crop)
            assert not whole.sum() - crop.sum()  # nothing outside the box
        np.testing.assert_array_equal(composite(background, layers, full), composite_crops(background, layers, crops))
