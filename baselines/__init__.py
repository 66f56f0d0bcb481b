"""Two-stage baselines for human instance matting, benchmarked against E2E-HIM.

- :mod:`baselines.guidance`  : guidance masks (perturbed ground truth or masks on disk),
- :mod:`baselines.mask_cf`   : ``mask-cf``, closed-form matting per instance, no training,
- :mod:`baselines.refiner`   : ``mask-refine-tiny`` / ``mask-refine``, a learned mask-guided refiner,
- :mod:`baselines.segmenter` : ``seg-tiny``, a learned instance segmenter feeding the refiner (``seg-refine``).

Importing this package registers the learned models in :mod:`himbench.registry`.
"""

from baselines import mgm, refiner, segmenter  # noqa: F401  (imported for their @register_model side effects)

__all__: list[str] = []
