"""The E2E-HIM benchmark methods, registered with the host: one method per model, of the same name.

=====================  =========================================================================================
``e2ehim-tiny``        E2E-HIM, CPU-sized (model ``e2ehim-tiny``, shipped checkpoint)
``e2ehim-base``        E2E-HIM at the paper's size (model ``e2ehim-base``)
``e2ehim-official``    the authors' released network (model ``e2ehim-official``; needs their weights)
=====================  =========================================================================================

This module is the one place the plugin registers its methods (its models register where they are defined);
``e2ehim/__init__.py`` imports it.
"""

from __future__ import annotations

from himbench.methods import register_model_method

__all__: list[str] = []

register_model_method("e2ehim-tiny", description="E2E-HIM, CPU-sized (model e2ehim-tiny, shipped checkpoint).")
register_model_method("e2ehim-base", description="E2E-HIM at the paper's size (model e2ehim-base).")
register_model_method(
    "e2ehim-official", description="The authors' released E2E-HIM network (needs their weights: import-checkpoint)."
)
