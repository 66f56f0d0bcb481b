"""himbench.predictions: the writer of prediction folders, read back by the reader of the same package; and the
core modules the shard folder format rests on."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from himbench.io import InputError, read_alpha
from himbench.predictions.reader import read_prediction_folder
from himbench.predictions.writer import write_prediction
from himbench.shards import ShardFolder

H, W = 64, 96


def _mattes(count: int, seed: int = 0) -> np.ndarray:
    """``count`` disjoint soft mattes (quantised to 8 bit, so they read back exactly)."""
    rng = np.random.default_rng(seed)
    alphas = np.zeros((count, H, W), dtype=np.float32)
    for k in range(count):
        alphas[k, :, k * (W // count):(k + 1) * (W // count)] = np.round(rng.uniform(0.2, 1.0, (H, W // count)) * 255)
    return alphas / 255


def test_written_folder_reads_back_exactly(tmp_path):
    alphas, scores = _mattes(3), [0.9, 0.5, 0.25]
    folder = write_prediction(tmp_path, "test", "img_0", alphas, scores)
    assert folder == tmp_path / "test" / "img_0"
    assert sorted(p.name for p in folder.iterdir()) == ["00.png", "01.png", "02.png", "scores.json"]
    assert json.loads((folder / "scores.json").read_text()) == {"00": 0.9, "01": 0.5, "02": 0.25}
    read = read_prediction_folder(folder, (H, W), root=tmp_path)
    assert read.problems == () and read.files == ("00.png", "01.png", "02.png") and read.scores == (0.9, 0.5, 0.25)
    np.testing.assert_array_equal(read.alphas, alphas)
    assert not (tmp_path / "img_0.png").exists()  # no single matte unless asked for


def test_rewrite_removes_only_the_earlier_runs_mattes(tmp_path):
    write_prediction(tmp_path, "test", "a", _mattes(3), [0.9, 0.8, 0.7])
    (tmp_path / "test" / "a" / "notes.txt").write_text("mine")
    (tmp_path / "test" / "a" / "07.png").write_bytes(b"not ours")  # not listed in scores.json: left alone
    write_prediction(tmp_path, "test", "a", _mattes(1, seed=1), [0.6])
    names = sorted(p.name for p in (tmp_path / "test" / "a").iterdir())
    assert names == ["00.png", "07.png", "notes.txt", "scores.json"]
    assert (tmp_path / "test" / "a" / "notes.txt").read_text() == "mine"


def test_single_matte_benchmark_also_gets_the_merged_matte(tmp_path):
    alphas = _mattes(2)
    write_prediction(tmp_path, "test", "p1", alphas, [1.0, 1.0], single_matte_shape=(H, W))
    np.testing.assert_allclose(read_alpha(tmp_path / "p1.png"), np.clip(alphas.sum(0), 0, 1), atol=0.5 / 255)


@pytest.mark.parametrize("stem", ["../escape", "a/b", ""])
def test_a_stem_that_is_not_a_plain_name_writes_nothing(tmp_path, stem):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError):
        write_prediction(out, "test", stem, _mattes(1), [1.0], single_matte_shape=(H, W))
    assert list(tmp_path.rglob("*.png")) == [] and list(out.iterdir()) == []


def test_merged_matte_link_out_of_the_folder_is_refused_before_any_write(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside.png"
    out.mkdir()
    outside.write_bytes(b"keep")
    (out / "p1.png").symlink_to(outside)
    with pytest.raises(InputError, match="outside"):
        write_prediction(out, "test", "p1", _mattes(1), [1.0], single_matte_shape=(H, W))
    assert outside.read_bytes() == b"keep" and not (out / "test").exists()


def test_shard_folder_helpers(tmp_path):
    assert not ShardFolder.is_shard_folder(tmp_path)
    with pytest.raises(InputError, match="no data/ sub-folder"):
        ShardFolder(tmp_path)
    (tmp_path / "data").mkdir()
    for name in ("test-00000-of-00001.parquet", ".hidden.parquet", "other.parquet", "notes.txt"):
        (tmp_path / "data" / name).write_bytes(b"")
    folder = ShardFolder(tmp_path)
    assert ShardFolder.is_shard_folder(tmp_path)
    every = [".hidden.parquet", "other.parquet", "test-00000-of-00001.parquet"]
    assert [p.name for p in folder.parquet_files()] == every  # what the upload check and the manifest digest cover
    assert [p.name for p in folder.shards()] == ["test-00000-of-00001.parquet"]


def test_build_config_and_shards_import_no_synthesis():
    """build_config is a standard-library module; the readers of a shard folder never import himbench.synthesis (the
    layer above them)."""
    code = (
        "import sys; import himbench.build_config; first = sorted(m for m in sys.modules if m.startswith(('numpy', "
        "'cv2', 'himbench.')));"
        "import himbench.shards, himbench.predictions.manifest, himbench.hub;"
        "print(first, sorted(m for m in sys.modules if m.startswith('himbench.synthesis')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "['himbench.build_config'] []", out
