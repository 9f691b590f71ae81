"""Learn from shards larger than memory: running statistics, streaming PCA, CanICA, DictLearning.

::

    from nishard.learn import CanICA

    ica = CanICA(n_components=20, memory_budget="1GiB", memory="nishard_cache", n_jobs=2)
    courses = ica.fit_transform("shards/")  # per sample, (time, 20) time courses
    ica.components_img_.to_filename("canica.nii.gz")
    ica.report("canica/")  # maps, PNGs, report.html, from the fit (nothing fitted again)

``memory`` is the joblib cache (nilearn's and scikit-learn's meaning), ``memory_budget``
what the fit may add to the process.
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
