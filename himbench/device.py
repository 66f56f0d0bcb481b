"""The one device helper: turn a user's device name (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a checked one.

Every command and method resolves its ``--device`` / ``device=`` option here, so ``auto`` means the same thing
everywhere (the first CUDA device when torch sees one, else the CPU) and a device this machine lacks is a clear
:class:`~himbench.io.InputError` before any work starts.
"""

from __future__ import annotations

from himbench.io import InputError

__all__ = ["resolve_device"]


def resolve_device(name: str | None = "auto", local_rank: int | None = None) -> str:
    """``None``/``""``/``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; other names are checked and
    returned as torch spells them (``"cuda:1"``, ``"mps"``...). With ``local_rank`` (one process per GPU under
    ``torchrun``), a bare ``"cuda"`` becomes ``"cuda:<local_rank>"``. Raises InputError for a malformed name, CUDA
    asked for on a machine without it, or a GPU index beyond the machine's count."""
    import torch

    if name in (None, "", "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and local_rank is not None:
        name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise InputError("--device", f"invalid device {name!r} (use auto, cpu, cuda or cuda:N)") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device", f"{name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError("--device", f"{name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return str(device)
