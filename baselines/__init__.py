"""Two-stage baselines for human instance matting, benchmarked against E2E-HIM: a himbench plugin.

- :mod:`baselines.mask_cf`   : closed-form matting per instance, no training (method ``mask-cf``),
- :mod:`baselines.refiner`   : models ``mask-refine-tiny`` / ``mask-refine-base``, a learned mask-guided refiner
  (method ``mask-refine``),
- :mod:`baselines.segmenter` : model ``seg-tiny``, a learned instance segmenter feeding the refiner (``seg-refine``),
- :mod:`baselines.mgm`       : model ``mgm``, the authors' MGMatting network (methods ``mgm``, ``seg-mgm``),
- :mod:`baselines.methods`   : the benchmark methods built from them.

himbench loads this package through its entry point (``himbench.plugins`` in ``pyproject.toml``); importing it
registers the models in :mod:`himbench.registry` and the methods in :mod:`himbench.methods`.
"""

from baselines import methods, mgm, refiner, segmenter  # noqa: F401  (imported for their registration side effects)

__all__: list[str] = []
