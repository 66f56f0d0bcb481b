"""E2E-HIM: end-to-end human instance matting (SPEC s.5), written in plain PyTorch; a himbench plugin.

himbench loads this package through its entry point (``himbench.plugins`` in ``pyproject.toml``). Importing it
registers the models ``e2ehim-tiny`` (with its shipped checkpoint), ``e2ehim-base`` and ``e2ehim-official`` (the
authors' released network, :mod:`e2ehim.official`) in :mod:`himbench.registry`, and a benchmark method of the same
name for each (:mod:`e2ehim.methods`, the one place this plugin registers methods, as ``baselines.methods`` does
for the other plugin).
"""

from e2ehim import methods  # noqa: F401  (imported for its registration side effects)
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
