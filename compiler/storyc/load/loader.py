"""Load a story file safely, keeping the position of every node.

The file size is bounded, the text must be UTF-8 without control characters, the YAML is
composed safely (storyc.load.yaml_tree; a seed StoryPlan may also be JSON) and validated
against the Story model with positioned errors (storyc.load.validation).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyc.diagnostics import Diagnostic, Severity, StorycError, error
from storyc.load.codes import E_DOCUMENT, E_DUPLICATE_KEY, E_FILE, E_SYNTAX
from storyc.load.positions import Loc, SourceMap, line_col
from storyc.load.validation import type_name, validate_story
from storyc.load.yaml_tree import parse_yaml
from storyc.model.story import Story

MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass
class LoadedStory:
    story: Story
    path: Path
    source: SourceMap
    data: dict[str, Any]  # the plain values the story was validated from

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def display_path(self) -> str:
        return str(self.path)

    def at(
        self, loc: Loc, code: str, message: str, severity: Severity = Severity.ERROR, *, key: bool = False
    ) -> Diagnostic:
        line, column = self.source.key_position(loc) if key else self.source.position(loc)
        return Diagnostic(self.display_path, line, column, code, severity, message)


def load_story(path: str | Path, *, display_path: str | None = None) -> LoadedStory:
    """Read, parse and validate a story file (YAML, or a seed StoryPlan as JSON).

    Raises StorycError (with positioned diagnostics) for any bad input; never anything else
    for a readable path. A missing/unreadable path raises FileNotFoundError/OSError.
    """
    path = Path(path)
    shown = display_path or str(path)
    if path.is_dir():
        raise StorycError(error(shown, 1, 1, E_FILE, "is a directory, not a story file"))
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise StorycError(
            error(
                shown, 1, 1, E_FILE, f"file is {size:,} bytes; storyc reads story files of at most {MAX_FILE_BYTES:,}"
            )
        )
    raw = _read_bounded(path)
    if len(raw) > MAX_FILE_BYTES:  # a pipe or device (stat says 0 bytes): /dev/zero must not hang
        raise StorycError(error(shown, 1, 1, E_FILE, f"input is longer than {MAX_FILE_BYTES:,} bytes"))
    return load_story_text(raw, shown, path=path)


def _read_bounded(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(MAX_FILE_BYTES + 1)


def load_story_text(raw: bytes | str, display_path: str = "<string>", *, path: Path | None = None) -> LoadedStory:
    text = _decode(raw, display_path) if isinstance(raw, bytes) else raw
    if len(text) > MAX_FILE_BYTES:
        raise StorycError(error(display_path, 1, 1, E_FILE, f"document is longer than {MAX_FILE_BYTES:,} characters"))
    _check_control_chars(text, display_path)
    is_json = path is not None and path.suffix.lower() == ".json"
    try:
        data, source = parse_yaml(text, display_path)
    except StorycError as exc:
        # Only a YAML *syntax* error falls back to the JSON parser; a duplicate key or a tag
        # is already reported at its exact position.
        if not is_json or exc.diagnostics[0].code != E_SYNTAX:
            raise
        # JSON that YAML cannot parse (e.g. tab-indented): positions are then only approximate.
        data, source = _load_json(text, display_path), SourceMap(values={(): (1, 1)})
    if not isinstance(data, dict):
        line, column = source.position(())
        kind = "empty" if data is None else f"a {type_name(data)}"
        raise StorycError(
            error(
                display_path, line, column, E_DOCUMENT, f"a story must be a mapping of fields, this document is {kind}"
            )
        )
    story = validate_story(data, source, display_path)
    return LoadedStory(story=story, path=path or Path(display_path), source=source, data=data)


# ─── decoding ────────────────────────────────────────────────────────────────


def _decode(raw: bytes, shown: str) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise StorycError(error(shown, 1, 1, E_FILE, "file is UTF-16 encoded; save it as UTF-8"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Position in characters of the text as an editor shows it (bad bytes as one character each).
        line, column = line_col(raw[: exc.start].decode("utf-8", errors="replace"), exc.start)
        raise StorycError(
            error(
                shown, line, column, E_FILE, f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save it as UTF-8"
            )
        ) from None


_BAD_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def _check_control_chars(text: str, shown: str) -> None:
    match = _BAD_CONTROL.search(text)
    if match:
        line, column = line_col(text, match.start())
        raise StorycError(
            error(
                shown,
                line,
                column,
                E_FILE,
                f"control character U+{ord(match.group()):04X} is not allowed (binary file?)",
            )
        )


def _load_json(text: str, shown: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in pairs:
            if k in seen:
                raise StorycError(error(shown, 1, 1, E_DUPLICATE_KEY, f"duplicate key '{k}'"))
            seen[k] = v
        return seen

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise StorycError(error(shown, exc.lineno, exc.colno, E_SYNTAX, f"JSON syntax error: {exc.msg}")) from None
