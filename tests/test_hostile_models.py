"""Checkpoint configs someone else wrote (issue 25, item 5 bullets 2-3 and item 6's NaN score threshold).

A config.json of the wrong shape, a field of the wrong type, sizes that are negative or whose *product* implies
terabytes, and a NaN / out-of-range score threshold (config or ``--score-threshold``) all end in one line naming the
file or option, exit code 2, before any large tensor is allocated. Good configs still build and predict.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from baselines.mask_cf import MaskCFConfig
from baselines.mgm import MGMConfig
from baselines.refiner import RefinerConfig
from baselines.segmenter import SegmenterConfig
from e2ehim.config import E2EHIMConfig, estimate_memory, tiny_config
from e2ehim.official import E2EHIMOfficialConfig
from himbench.checkpoints import load_model, read_checkpoint_config, save_checkpoint
from himbench.cli.predict import command as predict_command
from himbench.io import InputError, write_alpha_png
from himbench.registry import (
    MAX_MODEL_BYTES_ENV,
    apply_overrides,
    check_model_memory,
    count_parameters,
    create_model,
    max_model_bytes,
)

TB = 1 << 40


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A real e2ehim-tiny checkpoint (random weights), written once."""
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(create_model("e2ehim-tiny"), folder, "e2ehim-tiny")
    return folder


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "photo.png"
    rng = np.random.default_rng(0)
    write_alpha_png(path, rng.integers(0, 256, (64, 96), dtype=np.uint8))  # a grey PNG reads as RGB
    return path


def _checkpoint(saved: Path, tmp_path: Path, config_text: str) -> Path:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    os.link(saved / "model.safetensors", folder / "model.safetensors")
    (folder / "config.json").write_text(config_text)
    return folder


def _with_config(saved: Path, tmp_path: Path, **changes) -> Path:
    """The saved checkpoint with fields of its stored config changed (nested ones as dicts)."""
    record = json.loads((saved / "config.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            record["config"][key].update(value)
        else:
            record["config"][key] = value
    return _checkpoint(saved, tmp_path, json.dumps(record))


def _predict(checkpoint: Path, image: Path, out: Path, *extra: str):
    return CliRunner().invoke(predict_command, ["--checkpoint", str(checkpoint), str(image), "-o", str(out), *extra])


def _one_line(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[]", "must be a JSON object, found list"),
        ('"e2ehim-tiny"', "must be a JSON object, found str"),
        ("null", "must be a JSON object, found NoneType"),
        ('{"config": "abc"}', "'config' must be an object of config fields, found str"),
        ('{"model_name": "e2ehim-tiny", "config": [1, 2]}', "'config' must be an object of config fields"),
        ('{"model_name": 5, "config": {}}', "'model_name' must be a string, found int"),
        ('{"model_name": "e2ehim-tiny", "config": {"backbone": "abc"}}', "expected a mapping of BackboneConfig"),
        ('{"model_name": "e2ehim-tiny", "config": {"input_size": "640"}}', "expected an integer"),
        ('{"model_name": "e2ehim-tiny", "config": {"backbone": {"depths": "2222"}}}', "expected a list"),
        ('{"model_name": "e2ehim-tiny", "config": {"nonsense": 1}}', "no field 'nonsense'"),
    ],
)
def test_config_json_of_the_wrong_shape_is_one_line(saved, image, tmp_path, text, problem):
    checkpoint = _checkpoint(saved, tmp_path, text)
    result = _predict(checkpoint, image, tmp_path / "out", *(["--model", "e2ehim-tiny"] if "model_name" not in text
                                                            else []))
    _one_line(result, str(checkpoint / "config.json"), problem)
    assert not (tmp_path / "out").exists()


def test_read_checkpoint_config_refuses_non_objects(saved, tmp_path):
    checkpoint = _checkpoint(saved, tmp_path, "[]")
    with pytest.raises(InputError, match="must be a JSON object") as err:
        read_checkpoint_config(checkpoint)
    assert err.value.source == str(checkpoint / "config.json")


@pytest.mark.parametrize(
    "changes",
    [
        # Each field is within the old per-field cap (2**20); together they imply terabytes.
        {"backbone": {"window_size": 1 << 20}},  # (2w-1)^2 relative-position table, and a map padded to one window
        {"backbone": {"embed_dim": 1 << 16, "num_heads": [1, 2, 4, 8]}},  # 8 * 64Ki^2 MLP weights per block
        {"input_size": 1 << 20},  # a 1Mi x 1Mi working image
        {"guidance": {"d_model": 1 << 17, "num_heads": 1, "ffn_dim": 1 << 20}},
        {"backbone": {"window_size": 4096}, "input_size": 8192},
        {"backbone": {"depths": [1, 1, 1 << 20, 1]}},
        {"guidance": {"num_queries": 1 << 20}, "input_size": 4096},
    ],
)
def test_sizes_whose_product_is_absurd_are_refused_before_allocation(saved, image, tmp_path, changes):
    checkpoint = _with_config(saved, tmp_path, **changes)
    line = _one_line(_predict(checkpoint, image, tmp_path / "out"), str(checkpoint / "config.json"),
                     "GiB", MAX_MODEL_BYTES_ENV)
    assert "does not build 'e2ehim-tiny'" in line


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"input_size": -384}, "E2EHIMConfig.input_size: must be positive"),
        ({"input_size": 0}, "E2EHIMConfig.input_size: must be positive"),
        ({"backbone": {"window_size": 0}}, "BackboneConfig.window_size: must be positive"),
        ({"backbone": {"embed_dim": -48}}, "BackboneConfig.embed_dim: must be positive"),
        ({"backbone": {"depths": [1, -1, 2, 1]}}, "BackboneConfig.depths: must not be negative"),
        ({"backbone": {"num_heads": [5, 2, 4, 8]}}, "num_heads[0]=5 does not divide"),
        ({"backbone": {"depths": [1, 1, 2]}}, "need 4 entries"),
        ({"guidance": {"num_heads": 3}}, "num_heads=3 does not divide d_model=128"),
        ({"matting": {"alpha_channels": 0}}, "MattingConfig.alpha_channels: must be positive"),
        ({"loss": {"cls_weight": -1.0}}, "LossConfig.cls_weight: must not be negative"),
        ({"min_area_fraction": 2.0}, "min_area_fraction: must be a number in [0, 1]"),
    ],
)
def test_negative_zero_and_inconsistent_sizes_are_refused(saved, image, tmp_path, changes, field):
    checkpoint = _with_config(saved, tmp_path, **changes)
    _one_line(_predict(checkpoint, image, tmp_path / "out"), str(checkpoint / "config.json"), field)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.1", "1.5"])
def test_score_threshold_option_out_of_range_is_refused(saved, image, tmp_path, value):
    result = _predict(saved, image, tmp_path / "out", "--score-threshold", value)
    _one_line(result, "score_threshold")
    assert not (tmp_path / "out").exists()  # refused before predictions.json or any matte


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "2.0", "-0.5"])
def test_score_threshold_in_config_out_of_range_is_refused(saved, image, tmp_path, literal):
    text = (saved / "config.json").read_text()
    record = json.loads(text)
    text = text.replace(f'"score_threshold": {record["config"]["score_threshold"]}', f'"score_threshold": {literal}')
    assert literal in text
    checkpoint = _checkpoint(saved, tmp_path, text)
    result = _predict(checkpoint, image, tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert str(checkpoint / "config.json") in result.output and len(result.output.strip().splitlines()) == 1


def test_good_threshold_still_predicts(saved, image, tmp_path):
    result = _predict(saved, image, tmp_path / "out", "--score-threshold", "0.0")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "out" / "test" / "photo" / "scores.json").read_text())
    assert len(scores) >= 1  # threshold 0 keeps people: the option reached the model


def test_load_model_names_the_override(saved):
    with pytest.raises(InputError, match=r"with score_threshold=nan .*score_threshold: expected a finite number"):
        load_model(saved, score_threshold=math.nan)


def test_apply_overrides_refuses_non_finite_and_non_mapping():
    with pytest.raises(ValueError, match="expected a finite number"):
        apply_overrides(tiny_config(), {"loss": {"match_l1": math.inf}})
    with pytest.raises(ValueError, match="expected a mapping of UnitedGuidanceConfig fields"):
        apply_overrides(tiny_config(), {"guidance": 3})
    # A good override still applies, nested ones included.
    config = apply_overrides(tiny_config(), {"score_threshold": 0.25, "guidance": {"num_queries": 7}})
    assert config.score_threshold == 0.25 and config.guidance.num_queries == 7


def test_memory_cap_is_documented_env_overridable(monkeypatch):
    monkeypatch.delenv(MAX_MODEL_BYTES_ENV, raising=False)
    assert max_model_bytes() == 64 * 1024**3
    params, acts = estimate_memory(tiny_config())
    check_model_memory("tiny", params, acts)  # under the default cap
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, str(int(4 * (params + acts)) - 1))
    with pytest.raises(ValueError, match=MAX_MODEL_BYTES_ENV):
        create_model("e2ehim-tiny")
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, str(int(4 * (params + acts)) + 1))
    create_model("e2ehim-tiny")
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, "lots")
    with pytest.raises(ValueError, match="not a whole number"):
        max_model_bytes()
    with pytest.raises(ValueError):
        check_model_memory("x", math.nan, 0)


@pytest.mark.parametrize("name", ["e2ehim-tiny", "mask-refine-tiny", "seg-tiny"])
def test_parameter_estimates_track_the_built_models(name):
    # The estimate tells gigabytes from terabytes; for real models it is within a small factor of the truth
    # (measured for the big ones too: e2ehim-base 80.8 M estimated vs 69.7 M built, e2ehim-official 70 M vs 70.5 M).
    model = create_model(name)
    config = model.config
    if isinstance(config, E2EHIMConfig):
        params, _ = estimate_memory(config)
    else:
        from baselines.refiner import unet_memory

        params, _ = unet_memory(4 if isinstance(config, RefinerConfig) else 3, config.width, config.depth, 64)
    assert 0.5 < params / count_parameters(model) < 2.0


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: RefinerConfig(depth=100_000), "depth: at most 12"),
        (lambda: RefinerConfig(width=1 << 20), "GiB"),
        (lambda: RefinerConfig(input_size=-1), "input_size: must be positive"),
        (lambda: RefinerConfig(snap=math.nan), "snap: must be a number in [0, 1]"),
        (lambda: SegmenterConfig(width=0), "width: must be positive"),
        (lambda: SegmenterConfig(input_size=1 << 20), "GiB"),
        (lambda: MGMConfig(refine_kernel_sizes=(1 << 20, 7)), "GiB"),
        (lambda: MGMConfig(pad_border=1 << 20), "GiB"),
        (lambda: MGMConfig(batch_instances=-4), "batch_instances: must be positive"),
        (lambda: E2EHIMOfficialConfig(input_size=1 << 16, num_queries=1 << 12), "GiB"),
        (lambda: E2EHIMOfficialConfig(num_queries=0), "num_queries: must be positive"),
        (lambda: MaskCFConfig(work_size=1 << 20), "GiB"),
        (lambda: MaskCFConfig(band=-2), "band: must be positive"),
    ],
)
def test_baseline_configs_check_themselves(make, problem):
    with pytest.raises(ValueError) as err:
        make()
    assert problem in str(err.value)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [("mask-refine-tiny", {"width": 1 << 16}), ("seg-tiny", {"depth": -1}), ("mgm", {"max_size": 1 << 20}),
     ("e2ehim-official", {"input_size": 1 << 20})],
)
def test_create_model_refuses_before_building(name, overrides):
    with pytest.raises(ValueError):
        create_model(name, **overrides)


def test_train_set_absurd_size_is_one_line(tmp_path):
    from himbench.cli.train import command as train_command

    (tmp_path / "data").mkdir()  # the model is built (and refused) before the data is read
    result = CliRunner().invoke(train_command, ["--model", "e2ehim-tiny", "--data", str(tmp_path / "data"), "--out",
                                                str(tmp_path / "run"), "--set", "backbone.window_size=1048576"])
    _one_line(result, "--set", "window_size=1048576", "GiB", MAX_MODEL_BYTES_ENV)
