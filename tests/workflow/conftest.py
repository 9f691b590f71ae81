"""Fixtures of the plan, fusion, cache and drawing tests: a tiny record."""

from __future__ import annotations

import pytest

from nishard.records.table import Record
from tests.workflow.dags import records


@pytest.fixture(scope="session")
def record(tiny) -> Record:
    return records(tiny)[0]
