"""Positioned diagnostics and storyc's own error type.

Every problem storyc reports about an input, from a YAML syntax error to a lint
warning, is a `Diagnostic`: `path:line:col: CODE message`, 1-based line and column.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):  # str(Severity.ERROR) == "error"
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Diagnostic:
    path: str
    line: int  # 1-based
    column: int  # 1-based
    code: str
    severity: Severity = field(compare=False)
    message: str = field(compare=False)

    def format(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.severity} {self.code} {self.message}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        return data

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


class StorycError(Exception):
    """The one exception type storyc raises for bad input; it carries diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


def error(path: str, line: int, column: int, code: str, message: str) -> Diagnostic:
    """An error diagnostic; a position a parser reports as 0 or less becomes 1."""
    return Diagnostic(path, max(1, line), max(1, column), code, Severity.ERROR, message)
