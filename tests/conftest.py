"""Shared test fixtures. Tests never touch the network: the Hub is forced offline here (whatever the caller's
environment says), for every test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1"}
# huggingface_hub and datasets read these once, when first imported (possibly while test modules are collected):
# set them before any test module is imported. The autouse fixture below forces them again for each test.
os.environ.update(OFFLINE_ENV)

REPO_ROOT = Path(__file__).resolve().parents[1]

# MIT/CC0 real photographs kept in the repository (see tests/data/realdata/README.md and PROVENANCE.txt):
# P3M/demo/imgs/{original,alpha}/ (3 portraits with alphas) and pymatting/data/lemur/.
REALDATA = REPO_ROOT / "tests" / "data" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The real photographs kept in the repository (tests/data/realdata), laid out as their source projects are."""
    assert (REALDATA / "P3M" / "demo" / "imgs" / "alpha").is_dir(), f"test data missing from {REALDATA}"
    return REALDATA


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Force the Hub offline for each test, even where a test (or the caller's shell) set HF_HUB_OFFLINE=0."""
    for name, value in OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)
    # The libraries' own copies, taken at import: the environment alone no longer reaches them.
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        monkeypatch.setattr(datasets_config, "HF_HUB_OFFLINE", True)
        monkeypatch.setattr(datasets_config, "HF_DATASETS_OFFLINE", True)


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path_factory, monkeypatch):
    # Keep Hugging Face caches inside the test's temp folder so runs never share state.
    cache = tmp_path_factory.getbasetemp() / "hf-cache"
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.setenv("HIMBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "himbench-cache"))


@pytest.fixture
def one_torch_thread():
    """One torch thread: robust on a shared machine (no OpenMP spin-waiting); restored afterwards so other test
    modules are unaffected. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ------------------------------------------------------------------------------------- tiny builds shared by modules
# The interop "rule" weights (tests/interop_rule.py) are a deterministic function of the architecture's keys and
# shapes: test_e2ehim_official, test_mgm and test_released_models each built the same ones. Built once per run here;
# read-only by contract (load_state_dict and e2ehim_pipeline_weights copy them; never edit a tensor in place).
@pytest.fixture(scope="session")
def e2ehim_official_rule_weights() -> dict:
    """The rule weights of ``e2ehim-official`` (the authors' released E2E-HIM network)."""
    import torch
    from interop_rule import rule_state_dict

    from himbench.registry import create_model

    with torch.no_grad():
        return rule_state_dict(create_model("e2ehim-official").state_dict())


@pytest.fixture(scope="session")
def mgm_rule_weights() -> dict:
    """The rule weights of ``mgm`` (MGMatting), spectral-norm ``u``/``v`` included."""
    import torch
    from interop_rule import mgm_rule_state_dict

    from himbench.registry import create_model

    with torch.no_grad():
        return mgm_rule_state_dict(create_model("mgm").state_dict())
