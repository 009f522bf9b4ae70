"""The Rule base class and the context every rule reads.

A rule is one small class: a stable `code`, a one-line `summary`, a `severity`, and a
docstring that shows the bad and the good form (it is the rule's documentation).
`check(ctx)` yields Diagnostics; a rule blames a node by its loc path
(e.g. ("scenes", 2, "characters_present", 1)) and `ctx.at` derives line and column.
Rules must stay O(n) in the story's size: shared indexes live on the context.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable
from functools import cached_property
from typing import ClassVar

from storyc.diagnostics import Diagnostic, Severity
from storyc.load.loader import LoadedStory
from storyc.load.positions import Loc


def did_you_mean(name: str, choices: Iterable[str], listing: str, *, none: str = "") -> str:
    """The end of an unknown-name message: "; did you mean 'X'?" for a near miss (the same
    letters in another case first), else "; <listing>: a, b, c" when there are at most 8
    choices; `none` when there are none."""
    known = sorted(set(choices))
    same_letters = [k for k in known if k.casefold() == name.strip().casefold()]
    if same_letters:
        return f"; did you mean '{same_letters[0]}'?"
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if match:
        return f"; did you mean '{match[0]}'?"
    if not known:
        return none
    return f"; {listing}: {', '.join(known)}" if len(known) <= 8 else ""


class LintContext:
    """One loaded story plus lookups shared by the rules (computed once, on demand)."""

    def __init__(self, loaded: LoadedStory) -> None:
        self.loaded = loaded
        self.story = loaded.story

    def at(self, loc: Loc, code: str, message: str, severity: Severity, *, key: bool = False) -> Diagnostic:
        return self.loaded.at(loc, code, message, severity, key=key)

    @cached_property
    def scene_index_by_id(self) -> dict[int, int]:
        """scene_id → index of its first scene (duplicates are E301's business)."""
        index: dict[int, int] = {}
        for i, scene in enumerate(self.story.scenes):
            index.setdefault(scene.scene_id, i)
        return index

    @cached_property
    def character_names(self) -> set[str]:
        return {c.name for c in self.story.characters}


class Rule:
    """Base class of lint rules. Subclasses set code, summary, severity and write a docstring."""

    code: ClassVar[str]
    summary: ClassVar[str]
    severity: ClassVar[Severity] = Severity.ERROR
    # True for the loader's codes: documented here, checked while loading (storyc.load).
    checked_by_loader: ClassVar[bool] = False

    def check(self, ctx: LintContext) -> Iterable[Diagnostic]:
        return ()

    def report(self, ctx: LintContext, loc: Loc, message: str, *, key: bool = False) -> Diagnostic:
        return ctx.at(loc, self.code, message, self.severity, key=key)

    @classmethod
    def description(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def name(cls) -> str:
        return cls.__name__
