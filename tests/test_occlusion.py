"""Occlusion as a build setting (issue 21, item 1): `--occlusion` presets and `--occlusion-range`, placement that
seeks overlap, the per-person `occlusion` column (checked against an independent recomputation from the stored
amodal layers), the card's histogram, crowds of up to 20 people, and old shards without the column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from himbench.build_config import OCCLUSION_PRESETS, BuildConfig
from himbench.cli import main
from himbench.io import decode_alpha
from himbench.shards import ShardFolder, read_split
from himbench.synthesis import build_dataset
from himbench.synthesis.card import card_statistics, command_line, occlusion_histogram
from himbench.synthesis.compose import Layer
from himbench.synthesis.sampler import occlusion_fractions

SMALL = ["--size", "128x96", "--splits", "test=5", "--images-per-shard", "5", "-j", "1", "--no-progress"]


def _build(*args: str):
    return CliRunner().invoke(main, ["build-dataset", *args])


@pytest.fixture(scope="module")
def preset_builds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("occlusion")
    out = {}
    for preset in ("easy", "medium", "hard"):
        out[preset] = root / preset
        result = _build("--out", str(out[preset]), "--occlusion", preset, "--store-layers", *SMALL)
        assert result.exit_code == 0, result.output
    return out


def _rows(folder: Path) -> list[dict]:
    shards = ShardFolder(folder)
    return [row for path in shards.shards() for row in shards.rows(path)]


def _recomputed(row: dict) -> tuple[np.ndarray, list[float]]:
    """Independently of the engine: the amodal mattes stacked back to front by depth_order, and each person's hidden
    fraction 1 - sum(a_i prod_(j in front)(1 - a_j)) / sum(a_i)."""
    shape = (row["height"], row["width"])
    amodal = np.stack([decode_alpha(data, "amodal", shape) for data in row["amodal_alphas"]]).astype(np.float64)
    order = np.argsort(row["depth_order"])  # back to front
    fractions = [0.0] * len(amodal)
    for rank, k in enumerate(order):
        transmission = np.prod([1.0 - amodal[j] for j in order[rank + 1:]], axis=0) if rank + 1 < len(order) else 1.0
        fractions[k] = 1.0 - float((amodal[k] * transmission).sum()) / float(amodal[k].sum())
    return amodal, fractions


@pytest.mark.parametrize("preset", ["easy", "medium", "hard"])
def test_every_image_has_its_most_hidden_person_in_the_preset_range(preset_builds, preset):
    low, high = OCCLUSION_PRESETS[preset]
    folder = preset_builds[preset]
    report = json.loads((folder / "build_report.json").read_text())
    assert report["occlusion_out_of_range"] == 0
    rows = _rows(folder)
    assert len(rows) == 5
    for row in rows:
        stored = row["occlusion"]
        assert len(stored) == row["num_instances"] >= 1
        assert low <= max(stored) <= high, (row["id"], stored)
        amodal, recomputed = _recomputed(row)
        # The engine divides 8-bit visible mattes by 8-bit amodal ones; the float recomputation agrees to rounding.
        np.testing.assert_allclose(recomputed, stored, atol=0.01, err_msg=row["id"])
        assert low - 0.01 <= max(recomputed) <= high + 0.01, (row["id"], recomputed)
        # The stored visible mattes are what the amodal ones leave visible (within 8-bit rounding).
        shape = (row["height"], row["width"])
        visible = np.stack([decode_alpha(data, "vis", shape) for data in row["alphas"]])
        assert np.all(visible <= amodal + 1.5 / 255)
        if preset == "easy":  # no overlap at all: no pixel covered by two people
            assert ((amodal > 0).sum(axis=0) <= 1).all(), row["id"]
        if preset == "hard":
            assert row["num_instances"] >= 2


def test_the_card_shows_the_occlusion_histogram(preset_builds):
    card = (preset_builds["hard"] / "README.md").read_text()
    assert "`--occlusion hard`" in card and "Hidden fraction of each person" in card
    assert "| `occlusion` | List[float32] |" in card and "`amodal_alphas`" in card
    people = [v for row in _rows(preset_builds["hard"]) for v in row["occlusion"]]
    stats = card_statistics(preset_builds["hard"])
    assert sorted(stats["occlusion"]) == pytest.approx(sorted(people))
    histogram = occlusion_histogram(people)
    assert sum(n for _, n in histogram) == len(people)
    for label, count in histogram:
        assert f"| {label} | {count} |" in card
    # no image's most-hidden person outside [50%, 85%]
    worst = dict(occlusion_histogram(stats["worst_occlusion"]))
    assert worst["[50%, 60%)"] + worst["[60%, 70%)"] + worst["[70%, 85%)"] == 5


def test_the_card_command_rebuilds_the_same_fingerprint():
    for occlusion, option in [((0.5, 0.85), "--occlusion hard"), ((0.2, 0.4), "--occlusion-range 0.2,0.4")]:
        config = BuildConfig(splits={"test": 2}, width=128, height=96, occlusion_range=occlusion)
        text = command_line(config)
        assert option in text and "--min-visible" not in text and "not reproducible" not in text, text
    # The range replaces min_visible, which then changes nothing and is not fingerprinted.
    assert BuildConfig(occlusion_range=(0.5, 0.85), min_visible=0.2).fingerprint() == \
        BuildConfig(occlusion_range=(0.5, 0.85)).fingerprint() != BuildConfig().fingerprint()


def test_default_config_keeps_its_fingerprint_and_the_min_visible_rule(tmp_path):
    assert BuildConfig().fingerprint() == "d355c4075990ffc3"  # as before occlusion_range existed
    assert "occlusion_range" not in BuildConfig().fingerprinted()
    assert BuildConfig.from_dict(json.loads(json.dumps(BuildConfig(occlusion_range=(0.1, 0.2)).to_dict()))) == \
        BuildConfig(occlusion_range=(0.1, 0.2))
    out = tmp_path / "default"
    assert _build("--out", str(out), *SMALL).exit_code == 0
    for row in _rows(out):
        # decided at 1/4 resolution: the exact fractions stay near the 30% the rule allows
        assert len(row["occlusion"]) == row["num_instances"] and max(row["occlusion"]) <= 0.35, row["occlusion"]
        assert "amodal_alphas" not in row


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--occlusion-range", "0.8,0.2"], "0 <= LO <= HI <= 1"),
        (["--occlusion-range", "-0.1,0.2"], "0 <= LO <= HI <= 1"),
        (["--occlusion-range", "0.5,1.5"], "0 <= LO <= HI <= 1"),
        (["--occlusion-range", "nan,0.5"], "expected LO,HI"),
        (["--occlusion-range", "0.2,inf"], "expected LO,HI"),
        (["--occlusion-range", "0.5"], "expected LO,HI"),
        (["--occlusion-range", "a,b"], "expected LO,HI"),
        (["--occlusion", "hard", "--occlusion-range", "0.1,0.2"], "not both"),
        (["--occlusion", "hard", "--min-visible", "0.5"], "--min-visible does not apply"),
    ],
)
def test_bad_occlusion_options_are_one_line_and_exit_2(tmp_path, args, needle):
    out = tmp_path / "out"
    result = _build("--out", str(out), *args, *SMALL)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output, result.output
    assert not out.exists()


def test_library_refuses_bad_ranges():
    for bad in [(0.8, 0.2), (-0.1, 0.2), (float("nan"), 0.5), (0.1,), "hard"]:
        with pytest.raises(ValueError, match="occlusion_range"):
            BuildConfig(occlusion_range=bad)


def test_cli_presets_mirror_the_library():
    from himbench.cli import build_dataset as cli

    assert cli.OCCLUSION_PRESETS == OCCLUSION_PRESETS


def test_a_crowd_of_8_to_20_builds(tmp_path):
    out = tmp_path / "crowd"
    result = _build("--out", str(out), "--instances", "8-20", "--scale", "0.2-0.4", "--occlusion-range", "0.1,0.6",
                    "--size", "128x96", "--splits", "test=2", "--images-per-shard", "2", "-j", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert max(row["num_instances"] for row in rows) >= 8
    for row in rows:
        assert len(row["occlusion"]) == row["num_instances"] <= 20
        assert 0.1 <= max(row["occlusion"]) <= 0.6


def test_occlusion_fractions_hand_worked():
    back = Layer(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.float32), 0, 0, 1.0)
    front = Layer(np.zeros((4, 2, 3), np.uint8), np.full((4, 2), 0.5, np.float32), 0, 2, 1.0)
    # back: 8 pixels fully visible (255), 8 pixels behind a half-transparent front: 128 each (255 - 127.5 rounded)
    visible = [np.concatenate([np.full((4, 2), 255), np.full((4, 2), 127)], axis=1).astype(np.uint8),
               np.full((4, 2), 128, np.uint8)]
    fractions = occlusion_fractions([back, front], visible)
    assert fractions[0] == pytest.approx(1 - (8 * 255 + 8 * 127) / (16 * 255))
    assert fractions[1] == 0.0


def test_shards_without_the_column_still_read_and_are_redone_on_resume(tmp_path):
    config = BuildConfig(splits={"test": 2}, width=96, height=64, images_per_shard=2, min_instances=1,
                         max_instances=2)
    out = tmp_path / "old"
    build_dataset(config, out, workers=1, progress=False)
    (shard,) = ShardFolder(out).shards()
    table = pq.read_table(shard)
    # as a shard written before the column existed (same footer metadata: the fingerprint)
    pq.write_table(table.drop_columns(["occlusion"]).replace_schema_metadata(table.schema.metadata), shard)
    samples = list(read_split(out, "test"))
    assert len(samples) == 2 and all(s.occlusion is None for s in samples)
    assert card_statistics(out)["occlusion"] == []
    report = build_dataset(config, out, workers=1, progress=False)  # the resume redoes it, with the column
    assert report.to_dict()["resumed_shards"] == 0
    assert all(s.occlusion is not None and len(s.occlusion) == s.num_instances for s in read_split(out, "test"))
