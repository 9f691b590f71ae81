"""The error the learners raise on bad input: which folder, what was expected, what was found."""

from __future__ import annotations

from ..errors import NishardError


class LearnError(NishardError, ValueError):
    """Input a learner cannot use: a key the shards lack, shards of different masks mixed,
    fewer samples than components, a memory budget too small for one sample..."""
