"""The `--select` syntax (dbt-style): `scene:3+` (that scene and everything downstream),
`character:Ember+`, `location:Harbour`, `scene:2` (its keyframe, video and speech), `keyframe:3`, `speech:3`,
`+video:2` (with everything upstream), `assemble`, `script`; several separated by commas or spaces form a union.
StepGraph.select applies them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass


class SelectionError(ValueError):
    pass


_TOKEN = re.compile(r"^(\+?)([a-z]+)(?::(.+?))?(\+?)$")


@dataclass(frozen=True)
class Selector:
    token: str  # as written, for messages
    steps: frozenset[str]  # the step ids it names
    optional: frozenset[str]  # step ids it takes too when the graph has them
    upstream: bool  # `+x`: with everything x depends on
    downstream: bool  # `x+`: with everything that depends on x


def selectors(spec: str) -> Iterator[Selector]:
    """The selectors of a spec, in order; a malformed one raises SelectionError when reached."""
    for token in filter(None, re.split(r"[,\s]+", spec.strip())):
        m = _TOKEN.match(token)
        if not m:
            raise SelectionError(f"bad selector {token!r}: expected e.g. scene:3+, character:Ember, keyframe:2")
        up, kind, arg, down = m.groups()
        if kind == "scene":
            steps = {f"keyframe:{arg}", f"video:{arg}"}
            optional = {f"speech:{arg}"}  # a scene that says nothing has no speech step
        elif kind in ("assemble", "script") and arg is None:
            steps, optional = {kind}, set()
        elif kind in ("character", "location", "keyframe", "video", "speech") and arg:
            steps, optional = {f"{kind}:{arg}"}, set()
        else:
            raise SelectionError(
                f"bad selector {token!r}: kinds are scene:<id>, character:<name>, location:<name>, keyframe:<id>, "
                "video:<id>, speech:<id>, assemble, script"
            )
        yield Selector(token, frozenset(steps), frozenset(optional), upstream=bool(up), downstream=bool(down))
