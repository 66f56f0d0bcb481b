"""E2E-HIM: end-to-end human instance matting (SPEC s.5), written in plain PyTorch.

Importing this package registers ``e2ehim-tiny``, ``e2ehim-base`` and ``e2ehim-official`` (the authors' released
network, :mod:`e2ehim.official`) in :mod:`himbench.registry`.
"""

from e2ehim.config import E2EHIMConfig, base_config, tiny_config
from e2ehim.model import E2EHIM, e2ehim_base, e2ehim_tiny
from e2ehim.official import E2EHIMOfficial, E2EHIMOfficialConfig, e2ehim_official

__all__ = [
    "E2EHIM",
    "E2EHIMConfig",
    "E2EHIMOfficial",
    "E2EHIMOfficialConfig",
    "base_config",
    "e2ehim_base",
    "e2ehim_official",
    "e2ehim_tiny",
    "tiny_config",
]
