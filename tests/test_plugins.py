"""One host, plugins around it: the core imports no plugin, plugins register through entry points, one namespace."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from himbench import registry
from himbench.cli import main
from himbench.methods import create_method
from himbench.registry import list_methods, method_entry, model_for

REPO = Path(__file__).resolve().parents[1]
PLUGINS = ("baselines", "e2ehim")


def test_importing_every_core_module_imports_no_plugin():
    """Every module of the himbench package (the CLI included; not ``__main__``, which runs the CLI) imports without
    pulling in a plugin. Run in a fresh interpreter: other tests have imported the plugins in this one."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import himbench
        names = [m.name for m in pkgutil.walk_packages(himbench.__path__, "himbench.")
                 if not m.name.endswith(".__main__")]
        for name in names:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as err:
                if err.name != "ray":  # the optional extra
                    raise
        leaked = sorted(p for p in ("baselines", "e2ehim") if p in sys.modules)
        print(len(names), ",".join(leaked))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    count, leaked = done.stdout.split()[0], done.stdout.strip().partition(" ")[2]
    assert int(count) > 40 and leaked == ""


def test_core_source_never_names_a_plugin_package_in_an_import():
    pattern = re.compile(r"^\s*(from|import)\s+(baselines|e2ehim)\b", re.MULTILINE)
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "himbench").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_plugins_are_declared_as_entry_points():
    declared = {e.name: e.value for e in importlib.metadata.entry_points(group=registry.PLUGIN_GROUP)}
    assert {name: declared.get(name) for name in PLUGINS} == {name: name for name in PLUGINS}
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '[project.entry-points."himbench.plugins"]' in pyproject


@pytest.fixture
def clean_registries(monkeypatch):
    """Registrations made by a test are dropped afterwards."""
    registry.load_plugins()  # the installed plugins register first, into the registries kept afterwards
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_DEFAULT_WEIGHTS", dict(registry._DEFAULT_WEIGHTS))
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))


def _write_plugin(root: Path, package: str) -> None:
    """A third-party plugin: one model with shipped weights, one method running it; himbench is not edited."""
    folder = root / package
    (folder / "weights" / "toy").mkdir(parents=True)
    (folder / "weights" / "toy" / "model.safetensors").write_bytes(b"")
    (folder / "__init__.py").write_text(textwrap.dedent(
        """
        from himbench.methods import register_model_method
        from himbench.registry import register_model

        @register_model("toy-plugin-model", default_weights="weights/toy")
        def toy(**overrides):
            '''A toy model of a third-party plugin.'''
            raise NotImplementedError

        register_model_method("toy-plugin-method", "toy-plugin-model")
        """
    ))


def test_a_third_party_plugin_registers_and_a_broken_one_is_named(tmp_path, monkeypatch, clean_registries):
    _write_plugin(tmp_path, "toy_himbench_plugin")
    (tmp_path / "raising_himbench_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    group = registry.PLUGIN_GROUP
    entries = [
        importlib.metadata.EntryPoint("missing", "no_such_himbench_plugin_xyz", group),
        importlib.metadata.EntryPoint("raising", "raising_himbench_plugin", group),
        importlib.metadata.EntryPoint("toy", "toy_himbench_plugin", group),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = registry.load_entry_points(entries)
    assert loaded == ["toy"]
    messages = [str(w.message) for w in caught]
    assert any("'missing'" in m and "no_such_himbench_plugin_xyz" in m for m in messages)
    assert any("'raising'" in m and "boom at import" in m for m in messages)
    assert "toy-plugin-model" in registry.list_models()
    # The default weights are resolved against the registering module's folder, not a list of known packages.
    assert registry.default_checkpoint("toy-plugin-model") == tmp_path / "toy_himbench_plugin" / "weights" / "toy"
    entry = method_entry("toy-plugin-method")
    assert entry is not None and entry.models == ("toy-plugin-model",) and entry.module == "toy_himbench_plugin"
    assert model_for("toy-plugin-method") == "toy-plugin-model"


def test_shipped_weights_come_from_the_registrations():
    for model, package in (("e2ehim-tiny", "e2ehim"), ("seg-tiny", "baselines"), ("mask-refine-tiny", "baselines")):
        folder = registry.default_checkpoint(model)
        assert folder == REPO / package / "checkpoints" / model, model
    assert registry.default_checkpoint("e2ehim-base") is None


def test_one_namespace_no_name_means_two_things():
    models = set(registry.list_models())
    for name in list_methods():
        entry = method_entry(name)
        assert set(entry.models) <= models, name  # a method runs registered models only
        if name in models:  # a method named like a model runs exactly that model
            assert entry.models == (name,), name
    # The refiner: `predict --model mask-refine` and `bench -m mask-refine` run the same network.
    assert "mask-refine" not in models and model_for("mask-refine") == "mask-refine-tiny"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert create_method("mask-refine", device="cpu").spec["model"] == model_for("mask-refine")
    with pytest.raises(KeyError, match="not one model"):
        model_for("seg-refine")


def test_models_command_lists_models_and_methods():
    result = CliRunner().invoke(main, ["models", "mask-*"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    assert result.output.splitlines()[0].split()[:3] == ["name", "kind", "params"]
    assert rows["mask-refine"][1] == "method" and "mask-refine-tiny" in rows["mask-refine"]
    assert rows["mask-refine-tiny"][1] == "model" and rows["mask-cf"][1] == "method"
    assert rows["mask-refine"][2] == rows["mask-refine-tiny"][2]  # same parameters: the same network


def test_predict_with_a_method_name_runs_its_model(tmp_path):
    import cv2

    from himbench.io import write_alpha_png
    from himbench.predictions.manifest import read_manifest

    image = np.full((48, 64, 3), 90, np.uint8)
    image[10:40, 20:44] = (200, 160, 120)
    cv2.imwrite(str(tmp_path / "photo.png"), image[..., ::-1])
    mask = np.zeros((48, 64), np.float32)
    mask[10:40, 20:44] = 1
    (tmp_path / "masks" / "test" / "photo").mkdir(parents=True)
    write_alpha_png(tmp_path / "masks" / "test" / "photo" / "00.png", mask)
    out = tmp_path / "pred"
    args = ["predict", "--model", "mask-refine", str(tmp_path / "photo.png"), "-o", str(out), "--device", "cpu",
            "--masks", str(tmp_path / "masks")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert read_manifest(out).model == "mask-refine-tiny"
    assert (out / "test" / "photo" / "00.png").is_file()
    refused = CliRunner().invoke(main, ["predict", "--model", "mask-cf", str(tmp_path / "photo.png"), "-o",
                                        str(tmp_path / "p2")])
    # mask-cf runs in predict now (issue 20: benchmark folders ship trimaps), but a plain photo gives it no guidance
    assert refused.exit_code == 2 and "mask-guided" in refused.output


def test_committed_leaderboard_rows_still_name_registered_methods_and_models():
    from himbench.bench.results import read_results
    from himbench.leaderboard import method_spec

    models, methods = set(registry.list_models()), set(list_methods())
    rows = read_results(REPO / "leaderboard" / "results.csv")
    assert rows
    for row in rows:
        spec = method_spec(row)
        assert spec.get("name", row["method"].split("@")[0]) in methods | models, row["method"]
        assert all(spec[key] in models for key in ("model", "segmenter") if key in spec), row["method"]
