"""E2E-HIM: end-to-end human instance matting (SPEC s.5), written in plain PyTorch.

Importing this package registers ``e2ehim-tiny`` and ``e2ehim-base`` in :mod:`himbench.registry`.
"""

from e2ehim.config import E2EHIMConfig, base_config, tiny_config
from e2ehim.model import E2EHIM, e2ehim_base, e2ehim_tiny

__all__ = ["E2EHIM", "E2EHIMConfig", "base_config", "e2ehim_base", "e2ehim_tiny", "tiny_config"]
