"""HIM data synthesis: sources of people and backgrounds, placement, compositing and shards.

Entry points: :func:`build_dataset` (what ``himbench build-dataset`` runs), :class:`BuildConfig`,
:func:`export_him2k`. See :mod:`himbench.synthesis.build` for determinism and resuming,
:mod:`~himbench.synthesis.sampler` for where the work goes, and :mod:`~himbench.synthesis.fgcache` for the cache of
estimated foreground colours.
"""

from himbench.synthesis.build import BuildReport, build_dataset, build_shard, plan_shards
from himbench.synthesis.config import BuildConfig
from himbench.synthesis.export import export_him2k

__all__ = ["BuildConfig", "BuildReport", "build_dataset", "build_shard", "export_him2k", "plan_shards"]
