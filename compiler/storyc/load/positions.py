"""Positions as an editor shows them: 1-based line and column of every node of a story.

The loader's diagnostics, lint's and GitHub's annotations all count lines the way editors
and git do (LF, CRLF, CR). YAML also breaks lines at NEL, LS and PS (U+0085, U+2028,
U+2029); positions are always given in the editor's terms.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any, TypeAlias

Loc: TypeAlias = tuple[str | int, ...]  # ("scenes", 2, "duration_seconds")


@dataclass
class SourceMap:
    """1-based (line, column) of every value node and of every mapping key, by loc path."""

    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: Loc) -> tuple[int, int]:
        """The value node at `loc`, or the nearest enclosing node that exists."""
        loc = tuple(loc)
        while loc:
            if loc in self.values:
                return self.values[loc]
            loc = loc[:-1]
        return self.values.get((), (1, 1))

    def key_position(self, loc: Loc) -> tuple[int, int]:
        """The key of the mapping entry at `loc` (falls back to the value's position)."""
        loc = tuple(loc)
        return self.keys.get(loc) or self.position(loc)


# The line breaks editors, git and GitHub annotations count. YAML also breaks lines at NEL,
# LS and PS (U+0085, U+2028, U+2029); positions are always given in the editor's terms.
LINE_BREAK = re.compile("\r\n|[\r\n]")
YAML_ONLY_BREAK = re.compile("[\x85\u2028\u2029]")


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of text[offset] (offset may be len(text))."""
    prefix = text[:offset]
    line_start, line = 0, 1
    for match in LINE_BREAK.finditer(prefix):
        line += 1
        line_start = match.end()
    return line, len(prefix) - line_start + 1


class EditorPositions:
    """Parser marks → the 1-based line:column an editor shows. The parser counts YAML's extra
    line breaks; when the text holds any, a mark is re-placed from its character offset."""

    def __init__(self, text: str) -> None:
        self._starts: list[int] | None = None
        if YAML_ONLY_BREAK.search(text):
            self._starts = [0] + [match.end() for match in LINE_BREAK.finditer(text)]

    def of(self, mark: Any) -> tuple[int, int]:  # a ruamel Mark
        if self._starts is None:
            return mark.line + 1, mark.column + 1
        index = bisect.bisect_right(self._starts, mark.index) - 1
        return index + 1, mark.index - self._starts[index] + 1


def clamp(text: str, line: int, column: int) -> tuple[int, int]:
    """Keep a parser's position inside the file: errors "at end of input" go to the last line's end."""
    lines = LINE_BREAK.split(text)
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # a final newline does not start a line
    if line > len(lines):
        return len(lines), len(lines[-1]) + 1
    line = max(1, line)
    return line, max(1, min(column, len(lines[line - 1]) + 1))
