"""Rules about whether a story says enough to be built: it has scenes, and no field is
still a placeholder (the `TODO`s of `storyc plan`'s offline skeleton, or one's own)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from storyc.diagnostics import Diagnostic
from storyc.lint.base import LintContext, Rule
from storyc.load.positions import Loc

PLACEHOLDER = re.compile(r"\b(?:TODO|FIXME)\b")


class E315NoScenes(Rule):
    """The story has no scenes: there is nothing to build (and a story with no characters
    either is an empty template).

    Bad::

        characters: []
        scenes: []

    Good::

        scenes:
          - scene_id: 1
            title: Into the forest
            ...
    """

    code = "E315"
    summary = "the story has no scenes"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        if ctx.story.scenes:
            return
        also = "" if ctx.story.characters else " (and no characters)"
        yield self.report(ctx, ("scenes",), f"the story has no scenes{also}: there is nothing to build", key=True)


class E316Placeholder(Rule):
    """A field still holds a placeholder, `TODO` or `FIXME` (as `storyc plan`'s offline
    skeleton writes them): it would be sent to the model as written.

    Bad::

        setting: "TODO: describe the setting"

    Good::

        setting: a misty harbour at dawn, gulls over the boats
    """

    code = "E316"
    summary = "a field still holds a TODO or FIXME placeholder"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        data = ctx.story.model_dump(mode="json", exclude_defaults=True)
        for loc, text in _texts(data, ()):
            if PLACEHOLDER.search(text):
                shown = " ".join(text.split())
                shown = shown if len(shown) <= 60 else shown[:59] + "…"
                yield self.report(
                    ctx, loc, f"{_where(ctx, loc)} is a placeholder ({shown!r}): write it before building"
                )


def _texts(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _texts(item, (*loc, index))


def _where(ctx: LintContext, loc: Loc) -> str:
    """ "scene 2 setting", "character 'Ava' personality_cues[1]", "style"."""
    parts = list(loc)
    owner = ""
    index = parts[1] if len(parts) >= 2 and isinstance(parts[1], int) else None
    if index is not None and parts[0] == "scenes":
        owner, parts = f"scene {ctx.story.scenes[index].scene_id}", parts[2:]
    elif index is not None and parts[0] == "characters":
        owner, parts = f"character '{ctx.story.characters[index].name}'", parts[2:]
    path = "".join(f"[{p + 1}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return " ".join(p for p in (owner, path) if p)
