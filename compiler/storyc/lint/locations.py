"""Rules about locations: the places scenes name, defined once under `locations:`."""

from __future__ import annotations

from collections.abc import Iterator

from storyc.diagnostics import Diagnostic, Severity
from storyc.lint.base import LintContext, Rule, did_you_mean

NO_LOCATIONS = "; the story defines no locations (add it under locations:)"


class E313UnknownLocation(Rule):
    """A scene's `location` must name one of the story's `locations` exactly.

    Bad::

        locations:
          - name: Old Oak
        scenes:
          - scene_id: 1
            location: old oak

    Good::

        locations:
          - name: Old Oak
        scenes:
          - scene_id: 1
            location: Old Oak
    """

    code = "E313"
    summary = "unknown location"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        known = [loc.name for loc in ctx.story.locations]
        names = set(known)
        for i, scene in enumerate(ctx.story.scenes):
            if scene.location is not None and scene.location not in names:
                yield self.report(
                    ctx,
                    ("scenes", i, "location"),
                    f"scene {scene.scene_id}: unknown location '{scene.location}'{did_you_mean(scene.location, known, 'defined locations', none=NO_LOCATIONS)}",
                )


class E314DuplicateLocationName(Rule):
    """Two locations share a name. Names bind scenes' `location` and name the plate files.

    Bad::

        locations:
          - name: Old Oak
          - name: Old Oak

    Good::

        locations:
          - name: Old Oak
          - name: River Bank
    """

    code = "E314"
    summary = "duplicate location name"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        seen: dict[str, int] = {}
        for i, location in enumerate(ctx.story.locations):
            if location.name in seen:
                line = ctx.loaded.source.position(("locations", seen[location.name], "name"))[0]
                yield self.report(
                    ctx, ("locations", i, "name"), f"location '{location.name}' is already defined at line {line}"
                )
            else:
                seen[location.name] = i


class W419UnusedLocation(Rule):
    """A location no scene names: its plate would not be generated, and the definition is
    probably a leftover or a misspelt scene `location`.

    Bad::

        locations:
          - name: River Bank       # no scene has location: River Bank

    Good::

        scenes:
          - scene_id: 3
            location: River Bank
    """

    code = "W419"
    summary = "location not used by any scene"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        used = {scene.location for scene in ctx.story.scenes}
        for i, location in enumerate(ctx.story.locations):
            if location.name not in used:
                yield self.report(ctx, ("locations", i, "name"), f"location '{location.name}' is not used by any scene")
