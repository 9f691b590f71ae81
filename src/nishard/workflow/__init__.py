"""Assemble: transforms compiled into a DAG of fused nodes, and the executors that run it."""

from .cache import NodeCache
from .executors import EXECUTORS, Executor, Local, Serial
from .fusion import FUSIONS, ByBackend, Fusion, Greedy
from .plan import Node, Outcome, Plan, assemble
from .pydra import Pydra
from .task_runners import SlurmArray, Tasks

__all__ = [
    "EXECUTORS", "FUSIONS", "ByBackend", "Executor", "Fusion", "Greedy", "Local", "Node",
    "NodeCache", "Outcome", "Plan", "Pydra", "Serial", "SlurmArray", "Tasks", "assemble",
]  # fmt: skip
