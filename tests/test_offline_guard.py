"""conftest.py forces the Hub offline for every test, even when the caller's shell says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_hub_and_datasets_are_offline_in_a_test():
    from datasets import config as datasets_config
    from huggingface_hub import constants

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"
    assert constants.is_offline_mode()
    assert datasets_config.HF_HUB_OFFLINE and datasets_config.HF_DATASETS_OFFLINE


def test_offline_even_when_the_caller_asks_for_online(tmp_path):
    # The old guard used os.environ.setdefault: a shell with HF_HUB_OFFLINE=0 ran the tests online.
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}
    test = f"{Path(__file__)}::test_hub_and_datasets_are_offline_in_a_test"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
