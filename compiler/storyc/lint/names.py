"""Rules about names: character names become parts of file names (character_sheets/<name>_v1.png)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from storyc.diagnostics import Diagnostic, Severity
from storyc.lint.base import LintContext, Rule

MAX_NAME_LENGTH = 64
# Letters and digits (any script), then letters, digits, space, '-' or '_'; no trailing space.
SAFE_NAME = re.compile(r"[^\W_][\w \-]*", re.UNICODE)


def is_safe_name(name: str) -> bool:
    return (
        0 < len(name) <= MAX_NAME_LENGTH
        and SAFE_NAME.fullmatch(name) is not None
        and not name.endswith(" ")
        and "  " not in name
    )


class E305UnsafeName(Rule):
    """A character (or location) name must be a simple word or phrase: letters, digits, space, '-' and '_',
    starting with a letter or digit, at most 64 characters. Names are used in file names, so
    ``../x`` or ``a/b`` could write outside the output folder.

    Bad::

        - name: ../../etc/Ember
        - name: "Ember/Sage"

    Good::

        - name: Ember
        - name: Old Sage
    """

    code = "E305"
    summary = "unsafe character name (used in file names)"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        named = [("character", ("characters", i, "name"), c.name) for i, c in enumerate(ctx.story.characters)]
        named += [("location", ("locations", i, "name"), loc.name) for i, loc in enumerate(ctx.story.locations)]
        for what, where, name in named:
            if is_safe_name(name):
                continue
            if not name.strip():
                why = "is empty"
            elif len(name) > MAX_NAME_LENGTH:
                why = f"is longer than {MAX_NAME_LENGTH} characters"
            else:
                bad = sorted({ch for ch in name if not (ch.isalnum() or ch in " -_")})
                if bad:
                    why = "contains " + ", ".join(repr(ch) for ch in bad[:5])
                elif not name[0].isalnum():
                    why = "must start with a letter or digit"
                else:
                    why = "must not end with a space or repeat spaces"
            yield self.report(ctx, where, f"{what} name {name!r} {why}; use letters, digits, space, '-' and '_'")


class W409NamesDifferOnlyInCase(Rule):
    """Two character names differ only in letter case. Their sheet files collide on
    case-insensitive file systems (macOS, Windows) and readers confuse them.

    Bad::

        - name: Ember
        - name: EMBER

    Good::

        - name: Ember
        - name: Ember Junior
    """

    code = "W409"
    summary = "character names differ only in case"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        seen: dict[str, str] = {}
        for i, character in enumerate(ctx.story.characters):
            folded = character.name.casefold()
            other = seen.get(folded)
            if other is not None and other != character.name:
                yield self.report(
                    ctx, ("characters", i, "name"), f"character '{character.name}' differs from '{other}' only in case"
                )
            seen.setdefault(folded, character.name)
