"""`himbench import-checkpoint`: the authors' .ckpt/.pth files, read safely, unwrapped, key-checked, written whole.

The mechanics are tested on a small registered model (mask-refine-tiny); the released models' own round trips
(fake authors' checkpoints built from the key manifests) are in tests/test_released_models.py.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from himbench.authors_checkpoints import import_authors_checkpoint, read_authors_state_dict, unwrap_state_dict
from himbench.checkpoints import load_model
from himbench.cli import main
from himbench.io import InputError
from himbench.registry import create_model

MODEL = "mask-refine-tiny"


@pytest.fixture(scope="module")
def reference_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model(MODEL)
    # Non-trivial values everywhere (the head is zero-initialised), so a load that silently kept defaults shows.
    return {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}


def _assert_loaded(folder: Path, reference: dict[str, torch.Tensor]) -> None:
    model = load_model(folder)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda s: s, id="bare"),
        pytest.param(lambda s: {"state_dict": s, "epoch": 3}, id="state_dict-wrapper"),
        pytest.param(lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}}, id="wrapper+module-prefix"),
    ],
)
def test_round_trip_of_the_authors_ways_of_saving(tmp_path, reference_state, wrap) -> None:
    source = tmp_path / "authors.pth"
    torch.save(wrap(reference_state), source)
    report = import_authors_checkpoint(source, tmp_path / "out", MODEL)
    _assert_loaded(tmp_path / "out", reference_state)
    record = json.loads((tmp_path / "out" / "config.json").read_text())
    assert record["model_name"] == MODEL
    assert record["imported_from"]["sha256"] == report.sha256 and len(report.sha256) == 64
    assert record["imported_from"]["source"] == "authors.pth"
    assert record["partial"] is False


def test_legacy_non_zip_torch_format_is_read(tmp_path, reference_state) -> None:
    source = tmp_path / "old.pth"
    torch.save({"state_dict": reference_state}, source, _use_new_zipfile_serialization=False)
    import_authors_checkpoint(source, tmp_path / "out", MODEL)
    _assert_loaded(tmp_path / "out", reference_state)


class _CreatesAFile:
    """Unpickling this object would call Path.touch on the marker: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pickle_runs_nothing_and_writes_nothing(tmp_path, reference_state) -> None:
    marker = tmp_path / "pwned"
    source = tmp_path / "evil.pth"
    torch.save({"state_dict": reference_state, "payload": _CreatesAFile(marker)}, source)
    assert not marker.exists()
    result = CliRunner().invoke(main, ["import-checkpoint", str(source), str(tmp_path / "out"), "--model", MODEL])
    assert result.exit_code != 0
    assert "evil.pth" in result.output and "nothing in it was executed" in result.output
    assert not marker.exists(), "the pickle's code ran"
    assert not (tmp_path / "out").exists()
    # Plain pickle.dump (not torch.save) is refused the same way.
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps(_CreatesAFile(marker)))
    with pytest.raises(InputError, match="nothing in it was executed"):
        read_authors_state_dict(plain)
    assert not marker.exists()


def test_truncated_and_empty_files_are_clear_errors(tmp_path, reference_state) -> None:
    source = tmp_path / "full.pth"
    torch.save(reference_state, source)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated.pth.*(truncated|cannot read)"):
        import_authors_checkpoint(truncated, tmp_path / "out", MODEL)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        import_authors_checkpoint(empty, tmp_path / "out", MODEL)
    assert not (tmp_path / "out").exists()


def test_wrong_model_lists_keys_and_writes_nothing(tmp_path, reference_state) -> None:
    source = tmp_path / "refiner.pth"
    torch.save(reference_state, source)
    args = ["import-checkpoint", str(source), str(tmp_path / "out"), "--model", "e2ehim-tiny"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert "refiner.pth" in result.output and "missing keys" in result.output and "--allow-partial" in result.output
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.*")), "a staging folder was left behind"


def test_missing_keys_refused_then_allowed_partially(tmp_path, reference_state) -> None:
    partial = dict(reference_state)
    dropped = sorted(partial)[0]
    del partial[dropped]
    partial["extra.weight"] = torch.zeros(2)
    source = tmp_path / "partial.pth"
    torch.save(partial, source)
    with pytest.raises(InputError, match=f"1 missing keys: {dropped}.*1 unexpected keys: extra.weight"):
        import_authors_checkpoint(source, tmp_path / "out", MODEL)
    report = import_authors_checkpoint(source, tmp_path / "out", MODEL, allow_partial=True)
    assert report.comparison["missing"] == [dropped] and report.comparison["unexpected"] == ["extra.weight"]
    record = json.loads((tmp_path / "out" / "config.json").read_text())
    assert record["partial"] is True and record["imported_from"]["comparison"]["missing"] == [dropped]


def test_wrong_shapes_are_listed(tmp_path, reference_state) -> None:
    bad = dict(reference_state)
    key = next(k for k, v in bad.items() if v.ndim == 4)
    bad[key] = torch.zeros(1, 1, 1, 1)
    source = tmp_path / "shapes.pth"
    torch.save(bad, source)
    with pytest.raises(InputError, match=f"1 shape mismatches: {key}: file \\(1, 1, 1, 1\\)"):
        import_authors_checkpoint(source, tmp_path / "out", MODEL)


def test_existing_output_is_never_overwritten(tmp_path, reference_state) -> None:
    source = tmp_path / "w.pth"
    torch.save(reference_state, source)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        import_authors_checkpoint(source, out, MODEL)
    assert (out / "notes.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    empty = tmp_path / "empty-out"
    empty.mkdir()
    import_authors_checkpoint(source, empty, MODEL)  # an empty folder is fine
    assert (empty / "model.safetensors").is_file()


def test_unwrap_drops_non_tensors_and_reports_it() -> None:
    state, notes = unwrap_state_dict({"model": {"module.a": torch.zeros(1), "module.b": torch.ones(2), "step": 4}})
    assert sorted(state) == ["a", "b"]
    assert any("unwrapped 'model'" in n for n in notes) and any("non-tensor" in n for n in notes)
    assert np.array_equal(state["b"].numpy(), np.ones(2))
