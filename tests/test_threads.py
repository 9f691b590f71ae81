"""nishard.threads: the BLAS thread pools found once, and limited."""

import sys
import types

from nishard import threads


def test_the_pools_are_found_once_and_again_after_an_import(monkeypatch):
    """Finding the pools takes milliseconds, so they are found once; a BLAS comes with an
    extension (scipy's, torch's), so a module imported since makes them found again."""
    first = threads.threadpools()
    assert threads.threadpools() is first
    monkeypatch.setitem(sys.modules, "a_new_extension", types.ModuleType("a_new_extension"))
    assert threads.threadpools() is not first
