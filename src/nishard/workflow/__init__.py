"""Assemble: transforms compiled into a plan of fused nodes, and the executors that run it."""

from .executors import EXECUTORS, Executor, Local, Serial
from .plan import Node, Outcome, Plan, assemble

__all__ = ["EXECUTORS", "Executor", "Local", "Node", "Outcome", "Plan", "Serial", "assemble"]
