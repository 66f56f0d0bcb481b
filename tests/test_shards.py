"""ShardFolder (the one reader of a built shard folder) and the card's build command, on tiny builds made here."""

from __future__ import annotations

import hashlib
import json
import pickle
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from himbench.build_config import BuildConfig
from himbench.cli import main
from himbench.io import InputError, encode_alpha_png
from himbench.shards import ShardFolder, read_split, shard_name, write_shard
from himbench.synthesis import build_dataset
from himbench.synthesis.card import command_line

CONFIG = BuildConfig(
    splits={"train": 3, "test": 2}, width=96, height=64, images_per_shard=2, min_instances=1, max_instances=2, seed=3
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shards") / "built"
    build_dataset(CONFIG, root, workers=1, progress=False)
    return root


def _png_row(sample_id: str, value: int) -> dict:
    image = np.full((8, 6, 3), value % 256, np.uint8)
    alpha = np.zeros((8, 6), np.float32)
    alpha[2:6, 1:4] = 1.0
    ok, png = cv2.imencode(".png", image)
    assert ok
    return {
        "id": sample_id, "seed": value, "image": png.tobytes(), "alphas": [encode_alpha_png(alpha)],
        "boxes": [[1, 2, 4, 6]], "depth_order": [0], "fg_sources": ["t"], "bg_source": "t", "width": 6, "height": 8,
        "num_instances": 1,
    }  # fmt: skip


# ------------------------------------------------------------------------------------- layout and JSON files
def test_layout_splits_and_names(built):
    folder = ShardFolder(built)
    assert folder.splits() == ["test", "train"]
    assert [p.name for p in folder.shards("train")] == [shard_name("train", i, 2) for i in range(2)]
    assert [p.name for p in folder.shards()] == [shard_name("test", 0, 1)] + [shard_name("train", i, 2) for i in (0, 1)]
    assert folder.split_of(folder.shards("test")[0]) == "test"
    assert folder.shard_path("train", 1, 2) == built / "data" / shard_name("train", 1, 2)
    assert (folder.num_rows("train"), folder.num_rows("test"), folder.num_rows()) == (3, 2, 5)
    assert folder.row_group_sizes(folder.shards("train")[1]) == [1]
    assert folder.shards("val") == []
    with pytest.raises(InputError, match=r"no shards for split 'val' \(found splits: \['test', 'train'\]\)"):
        folder.shards("val", required=True)
    with pytest.raises(InputError, match="split name '../x'"):
        folder.shards("../x")
    with pytest.raises(InputError, match="split name 'a-b'"):
        folder.shard_path("a-b", 0, 1)


def test_a_folder_without_data_is_refused(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path}: not a himbench shard folder"):
        ShardFolder(tmp_path)


def test_config_and_report(built):
    folder = ShardFolder(built)
    assert folder.config() == CONFIG
    report = folder.report()
    assert report["fingerprint"] == CONFIG.fingerprint() == folder.config().fingerprint()
    assert report["num_images"] == 5 and report["num_shards"] == 3


def test_missing_or_hostile_json_names_the_file(tmp_path):
    write_shard([_png_row("a", 1)], tmp_path / "data" / shard_name("test", 0, 1))
    folder = ShardFolder(tmp_path)
    with pytest.raises(InputError, match="no build_config.json"):
        folder.config()
    with pytest.raises(InputError, match="no build_report.json"):
        folder.report()
    (tmp_path / "build_config.json").write_text(json.dumps({"seed": 1, "colour": "red"}))
    with pytest.raises(InputError, match=r"build_config.json: cannot read the build config .*colour"):
        folder.config()
    (tmp_path / "build_config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match=r"build_config.json: JSON nested too deeply"):
        folder.config()
    (tmp_path / "build_report.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="build_report.json: the build report is not a JSON object"):
        folder.report()


# ------------------------------------------------------------------------------------------------- reading
def test_column_subset_of_one_row_group(built):
    folder = ShardFolder(built)
    path = folder.shards("train")[0]
    group = folder.read_row_group(path, 0, columns=("id", "num_instances", "alphas"))
    assert len(group) == 2
    rows = list(group)
    assert [set(row) for row in rows] == [{"id", "num_instances", "alphas"}] * 2
    assert [row["id"] for row in rows] == [s.id for s in read_split(built, "train")][:2]
    # Image cells come back as plain PNG bytes, one per instance
    assert all(isinstance(a, bytes) and a.startswith(b"\x89PNG") for row in rows for a in row["alphas"])
    assert [len(row["alphas"]) for row in rows] == [row["num_instances"] for row in rows]
    columns = folder.read_columns(path, ["num_instances", "bg_source"])
    assert set(columns) == {"num_instances", "bg_source"} and columns["num_instances"] == [r["num_instances"]
                                                                                         for r in rows]
    with pytest.raises(InputError, match="cannot read row group 5"):
        folder.read_row_group(path, 5)


def test_rows_and_samples_agree_with_read_split(built):
    folder = ShardFolder(built)
    reference = list(read_split(built, "train"))
    samples = list(folder.samples("train"))
    assert [s.id for s in samples] == [s.id for s in reference] and len(samples) == 3
    for got, want in zip(samples, reference, strict=True):
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.alphas, want.alphas)
    streamed = [row for path in folder.shards("train") for row in folder.rows(path, ["id", "height", "width"])]
    assert streamed == [{"id": s.id, "height": 64, "width": 96} for s in reference]
    with pytest.raises(InputError, match="no shards for split 'val'"):
        next(folder.samples("val"))


# ---------------------------------------------------------------------------------------------- id lookup
def test_id_lookup_across_shards_and_row_groups(tmp_path):
    # 150 rows in one shard: three row groups of 64, 64 and 22 rows, then a second shard
    rows = [_png_row(f"s{i:03d}", i) for i in range(150)]
    write_shard(rows, tmp_path / "data" / shard_name("train", 0, 2))
    write_shard([_png_row("last", 7)], tmp_path / "data" / shard_name("train", 1, 2))
    write_shard([_png_row("s000", 99)], tmp_path / "data" / shard_name("test", 0, 1))
    folder = ShardFolder(tmp_path)
    first = folder.shards("train")[0]
    assert folder.row_group_sizes(first) == [64, 64, 22]
    for index, group, row in ((0, 0, 0), (63, 0, 63), (64, 1, 0), (130, 2, 2), (149, 2, 21)):
        location = folder.locate(f"s{index:03d}", "train")
        assert (location.path, location.group, location.row) == (first, group, row)
        assert folder.read_row(location, ["id", "seed"]) == {"id": f"s{index:03d}", "seed": index}
    assert folder.locate("last", "train") == (folder.shards("train")[1], 0, 0)
    assert folder.sample("s130", "train").image[0, 0, 0] == 130
    # without a split the first split in order wins (test before train); with one, only that split counts
    assert folder.sample("s000").seed == 99 and folder.sample("s000", "train").seed == 0
    with pytest.raises(InputError, match=rf"^{tmp_path}: no sample with id 'nope' in split 'train'"):
        folder.locate("nope", "train")
    with pytest.raises(InputError, match=rf"^{tmp_path}: no sample with id 'last' in split 'test'"):
        folder.locate("last", "test")
    with pytest.raises(InputError, match="no sample with id 'nope' in any split"):
        folder.sample("nope")
    # picklable (for DataLoader workers); open file handles are not carried over
    clone = pickle.loads(pickle.dumps(folder))
    assert clone.read_row(clone.locate("s064", "train"), ["id"]) == {"id": "s064"}


# ------------------------------------------------------------------------------------------- hostile shards
def test_corrupt_shard_is_an_input_error_naming_it(tmp_path):
    shard = tmp_path / "data" / shard_name("train", 0, 1)
    write_shard([_png_row("a", 1)], shard)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    folder = ShardFolder(tmp_path)
    for read in (folder.ids, folder.row_group_sizes, lambda p: list(folder.rows(p)), lambda p: folder.locate("a")):
        with pytest.raises(InputError, match=f"{shard}: cannot read Parquet shard"):
            read(shard)


def test_image_stored_by_path_is_refused(tmp_path):
    row = _png_row("a", 1)
    row["image"] = "/etc/passwd"  # the Image feature encodes a str as a path with no bytes
    write_shard([row], tmp_path / "data" / shard_name("train", 0, 1))
    folder = ShardFolder(tmp_path)
    assert folder.ids(folder.shards()[0]) == ["a"]
    with pytest.raises(InputError, match="column 'image' holds no PNG bytes"):
        folder.sample("a")
    with pytest.raises(InputError, match="column 'image' holds no PNG bytes"):
        list(read_split(tmp_path, "train"))


def test_unsafe_id_is_refused_when_decoded(tmp_path):
    write_shard([_png_row("../evil", 1)], tmp_path / "data" / shard_name("train", 0, 1))
    folder = ShardFolder(tmp_path)
    with pytest.raises(InputError, match="sample id '../evil'"):
        folder.sample("../evil")


# ------------------------------------------------------------------------------------- the card's command
def _card_command(root: Path) -> list[str]:
    lines = [line for line in (root / "README.md").read_text().splitlines() if line.startswith("himbench ")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])[1:]  # without the program name


def _with_out(args: list[str], out: Path) -> list[str]:
    args = list(args)
    args[args.index("--out") + 1] = str(out)
    return args


@pytest.mark.parametrize("image_options", [[], ["--image-format", "jpg", "--jpeg-quality", "90"]])
def test_card_command_reproduces_the_fingerprint(image_options, tmp_path):
    runner = CliRunner()
    first = tmp_path / "A"
    options = ["--splits", "train=3", "--size", "128", "--seed", "5", "--instances", "1-2", "--scale", "0.5-0.8",
               *image_options]
    result = runner.invoke(main, ["build-dataset", "--out", str(first), *options, "-j", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    args = _card_command(first)
    assert args[0] == "build-dataset"
    for option, value in (("--seed", "5"), ("--size", "128x128"), ("--instances", "1-2"), ("--scale", "0.5-0.8")):
        assert args[args.index(option) + 1] == value
    assert ("--image-format" in args) == bool(image_options)
    if image_options:
        assert args[args.index("--jpeg-quality") + 1] == "90"
    second = tmp_path / "B"
    result = runner.invoke(main, [*_with_out(args, second), "-j", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    one, two = ShardFolder(first), ShardFolder(second)
    assert one.report()["fingerprint"] == two.report()["fingerprint"] == one.config().fingerprint()
    assert one.config().fingerprint() != BuildConfig(splits={"train": 3}, width=128, height=128).fingerprint()

    def digest(folder: ShardFolder) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.shards()}

    assert digest(one) == digest(two)


@pytest.mark.parametrize(
    "config",
    [
        BuildConfig(),
        BuildConfig(splits={"val": 0, "train": 2}, width=96, height=40, seed=9, images_per_shard=1, min_instances=3,
                    max_instances=4, instance_weights=(0.25, 0.75), scale_min=1e-05, scale_max=1.5, min_visible=0.0,
                    max_attempts=7, fg_sources=("embedded", "my cut-outs"), bg_sources=("/abs/bg",),
                    store_layers=True),
        BuildConfig(image_format="jpg"),
        BuildConfig(splits={"train": 2}, width=64, height=48, image_format="jpg", jpeg_quality=80, store_layers=True),
        BuildConfig(min_in_frame=0.25, flip_prob=0.0, brightness=0.0, contrast=0.3, saturation=0.05, hue_degrees=12.5,
                    fg_max_side=640, png_compression=6),
    ],
)
def test_every_fingerprinted_option_is_printed(config, tmp_path, monkeypatch):
    """What `build-dataset` makes of the printed command has the build's fingerprint (the build itself is skipped)."""
    import himbench.synthesis.build as build_module

    made: list[BuildConfig] = []
    monkeypatch.setattr(build_module, "build_dataset", lambda config, *args, **kwargs: made.append(config))
    args = shlex.split(command_line(config).splitlines()[0])[1:]
    result = CliRunner().invoke(main, _with_out(args, tmp_path / "out"))
    assert made, result.output
    assert made[0].fingerprint() == config.fingerprint()
    assert "not reproducible" not in command_line(config)


def test_python_only_settings_are_named_in_the_card():
    # Every field has an option now; what the command cannot give is a value of another JSON type (1 is not 1.0,
    # and the fingerprint tells them apart).
    text = command_line(BuildConfig(flip_prob=0.1, scale_max=1))
    assert "# not reproducible by this command" in text and "scale_max=1" in text and "flip_prob" not in text
    assert "--flip-prob 0.1" in text
    assert f"# fingerprint {BuildConfig().fingerprint()}" in command_line(BuildConfig())
    # A png build ignores the JPEG quality (bytes and fingerprint): nothing is missing from its command.
    assert "not reproducible" not in command_line(BuildConfig(jpeg_quality=50))


@pytest.mark.parametrize("jitter", ["0.1,0.2", "a,b,c,d", "0.1,0.2,0.3,4,5", "nan,0,0,0"])
def test_bad_jitter_is_refused_naming_the_option(jitter, tmp_path):
    result = CliRunner().invoke(main, ["build-dataset", "--out", str(tmp_path / "o"), "--jitter", jitter])
    assert result.exit_code == 2 and "--jitter" in result.output and "B,C,S,H" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (["--jitter", "0.1,2,0.1,8"], "colour jitter"),
        (["--jitter", "0.1,0.1,0.1,-8"], "colour jitter"),
        (["--instance-weights", "1,inf", "--instances", "2-3"], "--instance-weights"),
    ],
)
def test_out_of_range_build_settings_are_refused(options, message, tmp_path):
    result = CliRunner().invoke(main, ["build-dataset", "--out", str(tmp_path / "o"), *options])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "field, value",
    [
        ("flip_prob", 1.5),
        ("flip_prob", float("nan")),
        ("saturation", -0.1),
        ("hue_degrees", 200.0),
        ("png_compression", 10),
    ],
)
def test_build_config_refuses_out_of_range_settings(field, value):
    with pytest.raises(ValueError, match="invalid build config"):
        BuildConfig(**{field: value})
