"""The build report: ``report.html`` beside the manifest, drawn from it (``nishard report``).

A layer of its own between ``builder`` (which writes the page with every build, before
the manifest that lists it) and ``archives`` (the manifest and the shards it reads).
"""

from .page import REPORT, render, report, write_report

__all__ = ["REPORT", "render", "report", "write_report"]
