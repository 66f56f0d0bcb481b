"""The one device helper (himbench.device.resolve_device), used by every command and method."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from himbench.device import resolve_device
from himbench.io import InputError

REPO = Path(__file__).resolve().parents[1]


def test_auto_and_explicit_names():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == resolve_device(None) == resolve_device("") == expected
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(InputError, match="invalid device"):
        resolve_device("gpu-please")


def test_cuda_names_are_checked_against_the_machine():
    if torch.cuda.is_available():
        assert resolve_device("cuda", local_rank=0) == "cuda:0"
        with pytest.raises(InputError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
        return
    for name in ("cuda", "cuda:0"):
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device(name)
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device("cuda", local_rank=1)


def test_auto_is_resolved_in_one_place():
    pattern = re.compile(r"cuda\.is_available\(\)\s+else")
    places = sorted(str(p.relative_to(REPO)) for folder in ("himbench", "baselines", "e2ehim")
                    for p in (REPO / folder).rglob("*.py") if pattern.search(p.read_text()))
    assert places == ["himbench/device.py"]
