"""Builder: records through a plan into shard files and a manifest.

The driver of a build, above the format layer (:mod:`nishard.archives`, which knows how
to write and read one shard) and the workflow (which computes one record's products).
A build is three steps, named so that a cluster can run the middle one anywhere:

1. **plan** (:mod:`.planning`): the records' splits and writing order, and the shard
   groups, each a task's worth of records;
2. **tasks** (:mod:`.tasks`): each group's samples computed and written as that group's
   shard files, with a partial manifest of what it wrote;
3. **merge** (:func:`nishard.archives.manifest.merge`): the partial manifests into
   ``manifest.json``, written last: it is the commit point of the build.
"""

from __future__ import annotations

from .driver import output_spec, write
from .output import Output
from .planning import ShardGroup, ShardPlan, plan_shards
from .splits import SPLITS, Split
from .tasks import ShardTask

__all__ = [
    "SPLITS",
    "Output",
    "ShardGroup",
    "ShardPlan",
    "ShardTask",
    "Split",
    "output_spec",
    "plan_shards",
    "write",
]
