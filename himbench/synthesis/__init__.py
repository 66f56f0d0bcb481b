"""HIM data synthesis: sources of people and backgrounds, placement, compositing and shards.

Entry points: :func:`build_dataset` (what ``himbench build-dataset`` runs) and :func:`export_him2k`; the
:class:`BuildConfig` they take lives in :mod:`himbench.build_config` (re-exported here). See
:mod:`himbench.synthesis.build` for determinism and resuming, :mod:`~himbench.synthesis.sampler` for where the work
goes, and :mod:`~himbench.synthesis.fgcache` for the cache of estimated foreground colours.
"""

from himbench.build_config import BuildConfig
from himbench.synthesis.build import BuildReport, build_dataset, build_shard, plan_shards
from himbench.synthesis.export import export_him2k

__all__ = ["BuildConfig", "BuildReport", "build_dataset", "build_shard", "export_him2k", "plan_shards"]
