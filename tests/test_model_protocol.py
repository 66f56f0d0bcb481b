"""The declared model protocol (himbench.registry): every registered model satisfies it, its class-level traits are
read without building the network, and no module outside the registry probes a model for a hook."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from himbench import registry
from himbench.io import InputError

ROOT = Path(__file__).resolve().parents[1]
NAMES = registry.list_models()
FIXED_WIDTHS = {"mgm", "e2ehim-official"}  # the authors' networks: ~30 M and ~70 M parameters whatever the config


def _small(name: str) -> dict:
    """Config overrides that make registration ``name`` small (e2ehim-base is paper-size by default)."""
    if name == "e2ehim-base":
        from e2ehim.config import tiny_config

        return registry.config_to_dict(tiny_config())
    return {}


def test_the_plugins_register_the_models_the_protocol_is_checked_on():
    assert {"e2ehim-tiny", "e2ehim-base", "e2ehim-official", "mask-refine-tiny", "seg-tiny", "mgm"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_model_declares_its_class_and_the_required_members(name):
    cls = registry.model_class(name)
    assert isinstance(cls, type) and issubclass(cls, torch.nn.Module), f"{name}: factory must annotate its class"
    for member in ("training_loss", "predict_instances"):
        assert callable(getattr(cls, member, None)), f"{name}: {cls.__name__} has no {member}"
    for hook in registry.MODEL_HOOKS:  # an optional hook, when present, is a callable, not a flag
        assert getattr(cls, hook, None) is None or callable(getattr(cls, hook))
    traits = registry.model_traits(name)
    assert all(isinstance(getattr(traits, f), bool) for f in ("mask_guided", "takes_trimap", "is_segmenter",
                                                              "find_unused_parameters"))
    if name in FIXED_WIDTHS:
        return
    torch.manual_seed(0)
    model = registry.create_model(name, **_small(name))
    assert isinstance(model, registry.HIMModel)
    assert dataclasses.is_dataclass(model.config) and model.config.input_size > 0
    assert registry.traits_of(model) == traits  # the class's traits are the instance's


def test_traits_are_read_from_the_class_without_building_any_network(monkeypatch):
    classes = {registry.model_class(name) for name in NAMES}

    def built(*args, **kwargs):
        raise AssertionError("a network was built to read a class-level trait")

    for cls in classes:
        monkeypatch.setattr(cls, "__init__", built)
    traits = {name: registry.model_traits(name) for name in NAMES}
    assert traits["mask-refine-tiny"].mask_guided and traits["mgm"].mask_guided
    assert not traits["e2ehim-tiny"].mask_guided and not traits["seg-tiny"].mask_guided
    assert traits["seg-tiny"].is_segmenter and not traits["e2ehim-tiny"].is_segmenter
    assert traits["mgm"].released_weights.requires_weights and traits["e2ehim-official"].released_weights
    assert traits["e2ehim-tiny"].released_weights is None
    assert traits["e2ehim-tiny"].find_unused_parameters is False and traits["seg-tiny"].find_unused_parameters
    assert registry.is_mask_guided("mask-refine-tiny")  # a model that is no method: its trait, nothing built
    assert registry.is_mask_guided("mask-refine") and not registry.is_mask_guided("no-such-name")
    assert registry.default_segmenter() == "seg-tiny"
    from himbench.checkpoints import refuse_random_weights

    with pytest.raises(InputError, match="needs the authors' weights"):
        refuse_random_weights("mgm")
    refuse_random_weights("mask-refine-base")  # random weights allowed: no error, nothing built


def test_an_unannotated_factory_is_built_once_to_read_its_traits(monkeypatch):
    class Flagged(torch.nn.Module):
        mask_guided = True

    def unannotated(**overrides):
        return Flagged()

    monkeypatch.setitem(registry._FACTORIES, "test-unannotated", unannotated)
    assert registry.model_class("test-unannotated") is None
    assert registry.model_traits("test-unannotated").mask_guided
    with pytest.raises(KeyError, match="unknown model"):
        registry.model_traits("no-such-model")


def test_the_hook_readers_find_the_hooks_a_model_defines():
    torch.manual_seed(0)
    e2e = registry.create_model("e2ehim-base", **_small("e2ehim-base"))
    refiner = registry.create_model("mask-refine-tiny")
    assert registry.batch_predictor(e2e) == e2e.predict_batch and registry.batch_predictor(refiner) is None
    skipped = registry.no_weight_decay_names(e2e)
    assert skipped and skipped <= {name for name, _ in e2e.named_parameters()}
    assert registry.no_weight_decay_names(refiner) == set()
    assert registry.authors_state_dict_converter(e2e) is None

    class Renamed(torch.nn.Module):
        @staticmethod
        def convert_authors_state_dict(state: dict) -> dict:
            return {key.removeprefix("net."): value for key, value in state.items()}

    convert = registry.authors_state_dict_converter(Renamed())
    assert convert is not None and convert({"net.w": 1}) == {"w": 1}


def test_entry_kinds_and_the_trimap_hook_of_methods():
    from baselines.methods import MaskCFMethod, MaskOnlyMethod

    assert registry.entry_kind("mask-refine-tiny") == "model" and registry.entry_kind("e2ehim-tiny") == "method"
    assert registry.entry_kind("mask-cf") == "method" and registry.entry_kind("nope") is None
    assert MaskCFMethod.takes_trimap and not MaskOnlyMethod.takes_trimap
    with pytest.raises(NotImplementedError):
        MaskOnlyMethod().predict_with_trimap(None, None)


HOOK_NAMES = ("mask_guided", "takes_trimap", "is_segmenter", "released_weights", "find_unused_parameters",
              *registry.MODEL_HOOKS, "predict_with_trimap")
PROBE = re.compile(r"\b(?:getattr|hasattr)\(.*?[\"'](" + "|".join(HOOK_NAMES) + r")[\"']")


def test_no_module_outside_the_registry_probes_a_model_for_a_hook():
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for package in ("himbench", "e2ehim", "baselines")
             for path in sorted((ROOT / package).rglob("*.py")) if path != ROOT / "himbench" / "registry.py"
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if PROBE.search(line)]
    assert not found, "read hooks through himbench.registry:\n" + "\n".join(found)
    assert PROBE.search('getattr(model, "predict_batch", None)')  # the pattern itself finds probes
    assert PROBE.search('released = getattr(type(model), "released_weights", None)')
