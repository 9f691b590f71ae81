"""Learn from shards larger than memory: running statistics, streaming PCA, CanICA, DictLearning.

::

    from nishard.learn import CanICA, canica_report

    ica = CanICA(n_components=20, memory="1GiB", n_jobs=2).fit("shards/")
    ica.components_img_.to_filename("canica.nii.gz")
    canica_report("shards/", n_components=20, out="canica/")  # maps, PNGs, report.html
"""

from .canica import CanICA
from .dictlearning import DictLearning
from .errors import LearnError
from .grouppca import GroupPCA
from .matching import Match, match_components, spatial_correlation
from .memory import MemoryPlan, PeakMemory, plan_memory
from .pca import GroupReducer, subject_reduction
from .report import canica_report, learn_report
from .source import ArraySource, Shards
from .stats import RunningStats, running_stats

__all__ = [
    "ArraySource",
    "CanICA",
    "DictLearning",
    "GroupPCA",
    "GroupReducer",
    "LearnError",
    "Match",
    "MemoryPlan",
    "PeakMemory",
    "RunningStats",
    "Shards",
    "canica_report",
    "learn_report",
    "match_components",
    "plan_memory",
    "running_stats",
    "spatial_correlation",
    "subject_reduction",
]
