"""Assemble: transforms compiled into a plan of fused nodes, and the executors that run it."""

from .executors import EXECUTORS, Local, Serial, local, serial
from .plan import Node, Outcome, Plan, assemble

__all__ = ["EXECUTORS", "Local", "Node", "Outcome", "Plan", "Serial", "assemble", "local", "serial"]
