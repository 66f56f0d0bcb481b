"""Where a benchmark ran: device name, thread count and torch version, as data and as a file-name slug."""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass

__all__ = ["Environment", "detect_environment"]


@dataclass(frozen=True)
class Environment:
    device_kind: str  # "cpu" or "cuda"
    device_name: str  # CPU model or GPU name
    threads: int  # torch intra-op threads (CPU latency depends on it)
    torch_version: str

    @property
    def slug(self) -> str:
        """File-name-safe id, e.g. ``cpu-amd-epyc-2t-torch2.13.0`` or ``cuda-nvidia-h100-80gb-hbm3-torch2.5.1``."""
        name = re.sub(r"[^a-z0-9.]+", "-", self.device_name.lower()).strip("-") or "unknown"
        threads = f"-{self.threads}t" if self.device_kind == "cpu" else ""
        version = self.torch_version.split("+")[0]
        return f"{self.device_kind}-{name}{threads}-torch{version}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def detect_environment(device: str = "cpu") -> Environment:
    """Describe ``device`` ("cpu", "cuda" or "cuda:N") and the running torch."""
    import torch

    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        return Environment("cuda", torch.cuda.get_device_name(index), torch.get_num_threads(), torch.__version__)
    return Environment("cpu", _cpu_name(), torch.get_num_threads(), torch.__version__)
