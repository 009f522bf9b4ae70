"""Why a step (or the whole run) stops short of its outputs."""

from __future__ import annotations


class Cancelled(Exception):
    """The build was interrupted (Ctrl-C) or stopped; no new call starts."""


class BudgetExceeded(Exception):
    """The next call could take the build past --max-cost."""


class MissingUpstream(Exception):
    """A step's dependency has no outputs (it failed or was not built)."""
