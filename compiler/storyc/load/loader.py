"""Load a story file safely, keeping the position of every node.

The YAML is composed into nodes by ruamel's libyaml-based parser (fast, positions on
every node); storyc then builds plain Python values itself, so nothing but strings,
numbers, booleans, null, mappings and sequences can ever be constructed: any other
tag is an error at its line and executes nothing. Duplicate keys are errors, alias
expansion is bounded (a billion-laughs document is refused quickly), and the file
size is bounded. Pydantic's validation errors are mapped back to the node they name.
"""

from __future__ import annotations

import bisect
import difflib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from storyc.diagnostics import Diagnostic, Severity, StorycError
from storyc.model.story import MAX_DURATION_S, MIN_DURATION_S, Story

MAX_FILE_BYTES = 4 * 1024 * 1024
# Node visits while building values; aliases are re-walked, so this bounds expansion.
# A 1,000-scene story needs ~30k.
MAX_NODE_VISITS = 200_000
MAX_DEPTH = 64

# Loader codes (documented with the lint rules: `storyc lint --list-rules`).
E_SYNTAX = "E101"
E_TAG = "E102"
E_DUPLICATE_KEY = "E103"
E_ALIAS = "E104"
E_FILE = "E105"
E_DOCUMENT = "E106"
E_SCHEMA = "E201"
E_UNKNOWN_FIELD = "E202"
E_MISSING_FIELD = "E203"
E_DURATION = "E204"

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = _T + "str", _T + "int", _T + "float", _T + "bool", _T + "null"
_MAP, _SEQ, _MERGE = _T + "map", _T + "seq", _T + "merge"
_SCALAR_TAGS = {_STR, _INT, _FLOAT, _BOOL, _NULL}

Loc = tuple  # ("scenes", 2, "duration_seconds")


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


@dataclass
class LoadedStory:
    story: Story
    path: Path
    source: SourceMap
    data: dict  # the plain values the story was validated from

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
        raise StorycError(_diag(shown, 1, 1, E_FILE, "is a directory, not a story file"))
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise StorycError(
            _diag(
                shown, 1, 1, E_FILE, f"file is {size:,} bytes; storyc reads story files of at most {MAX_FILE_BYTES:,}"
            )
        )
    raw = _read_bounded(path)
    if len(raw) > MAX_FILE_BYTES:  # a pipe or device (stat says 0 bytes): /dev/zero must not hang
        raise StorycError(_diag(shown, 1, 1, E_FILE, f"input is longer than {MAX_FILE_BYTES:,} bytes"))
    return load_story_text(raw, shown, path=path)


def _read_bounded(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(MAX_FILE_BYTES + 1)


def load_story_text(raw: bytes | str, display_path: str = "<string>", *, path: Path | None = None) -> LoadedStory:
    text = _decode(raw, display_path) if isinstance(raw, bytes) else raw
    if len(text) > MAX_FILE_BYTES:
        raise StorycError(_diag(display_path, 1, 1, E_FILE, f"document is longer than {MAX_FILE_BYTES:,} characters"))
    _check_control_chars(text, display_path)
    is_json = path is not None and path.suffix.lower() == ".json"
    try:
        positions = _Positions(text)
        root = _compose(text, display_path, positions)
        data, source = _Builder(display_path, positions).build(root)
    except StorycError as exc:
        # Only a YAML *syntax* error falls back to the JSON parser; a duplicate key or a tag
        # is already reported at its exact position.
        if not is_json or exc.diagnostics[0].code != E_SYNTAX:
            raise
        # JSON that YAML cannot parse (e.g. tab-indented): positions are then only approximate.
        data, source = _load_json(text, display_path), SourceMap(values={(): (1, 1)})
    if not isinstance(data, dict):
        line, column = source.position(())
        kind = "empty" if data is None else f"a {_type_name(data)}"
        raise StorycError(
            _diag(
                display_path, line, column, E_DOCUMENT, f"a story must be a mapping of fields, this document is {kind}"
            )
        )
    story = _validate(data, source, display_path)
    return LoadedStory(story=story, path=path or Path(display_path), source=source, data=data)


# ─── decoding ────────────────────────────────────────────────────────────────


def _decode(raw: bytes, shown: str) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise StorycError(_diag(shown, 1, 1, E_FILE, "file is UTF-16 encoded; save it as UTF-8"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Position in characters of the text as an editor shows it (bad bytes as one character each).
        line, column = _line_col(raw[: exc.start].decode("utf-8", errors="replace"), exc.start)
        raise StorycError(
            _diag(
                shown, line, column, E_FILE, f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save it as UTF-8"
            )
        ) from None


_BAD_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def _check_control_chars(text: str, shown: str) -> None:
    match = _BAD_CONTROL.search(text)
    if match:
        line, column = _line_col(text, match.start())
        raise StorycError(
            _diag(
                shown,
                line,
                column,
                E_FILE,
                f"control character U+{ord(match.group()):04X} is not allowed (binary file?)",
            )
        )


# The line breaks editors, git and GitHub annotations count. YAML also breaks lines at NEL,
# LS and PS (U+0085, U+2028, U+2029); positions are always given in the editor's terms.
_LINE_BREAK = re.compile("\r\n|[\r\n]")
_YAML_ONLY_BREAK = re.compile("[\x85\u2028\u2029]")


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of text[offset] (offset may be len(text))."""
    prefix = text[:offset]
    line_start, line = 0, 1
    for match in _LINE_BREAK.finditer(prefix):
        line += 1
        line_start = match.end()
    return line, len(prefix) - line_start + 1


class _Positions:
    """Parser marks → the 1-based line:column an editor shows. The parser counts YAML's extra
    line breaks; when the text holds any, a mark is re-placed from its character offset."""

    def __init__(self, text: str) -> None:
        self._starts: list[int] | None = None
        if _YAML_ONLY_BREAK.search(text):
            self._starts = [0] + [match.end() for match in _LINE_BREAK.finditer(text)]

    def of(self, mark) -> tuple[int, int]:
        if self._starts is None:
            return mark.line + 1, mark.column + 1
        index = bisect.bisect_right(self._starts, mark.index) - 1
        return index + 1, mark.index - self._starts[index] + 1


def _clamp(text: str, line: int, column: int) -> tuple[int, int]:
    """Keep a parser's position inside the file: errors "at end of input" go to the last line's end."""
    lines = _LINE_BREAK.split(text)
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # a final newline does not start a line
    if line > len(lines):
        return len(lines), len(lines[-1]) + 1
    line = max(1, line)
    return line, max(1, min(column, len(lines[line - 1]) + 1))


# ─── parsing ─────────────────────────────────────────────────────────────────


def _composer_class():
    try:
        from ruamel.yaml.cyaml import CParser
        from ruamel.yaml.nodes import ScalarNode
        from ruamel.yaml.resolver import VersionedResolver
        from ruamel.yaml.tag import Tag

        class _CComposer(CParser, VersionedResolver):
            def __init__(self, stream: str) -> None:
                CParser.__init__(self, stream)
                VersionedResolver.__init__(self, loadumper=self)
                # ruamel re-derives the YAML-version table for every scalar (about a third of a
                # big story's load time); the version cannot change within one C parse, so look
                # it up once.
                self._scalar_resolvers = self.versioned_resolver

            def resolve(self, kind, value, implicit):
                if kind is ScalarNode and implicit[0] and not self.yaml_path_resolvers:
                    for tag, regexp in self._scalar_resolvers.get(value[:1], ()):
                        if regexp.match(value):
                            return Tag(suffix=tag)
                    return self.DEFAULT_SCALAR_TAG
                return VersionedResolver.resolve(self, kind, value, implicit)

        return _CComposer
    except ImportError:  # pure Python fallback: same nodes, slower
        from ruamel.yaml.composer import Composer
        from ruamel.yaml.parser import Parser
        from ruamel.yaml.reader import Reader
        from ruamel.yaml.resolver import VersionedResolver
        from ruamel.yaml.scanner import Scanner

        class _PyComposer(Reader, Scanner, Parser, Composer, VersionedResolver):
            def __init__(self, stream: str) -> None:
                Reader.__init__(self, stream, loader=self)
                Scanner.__init__(self, loader=self)
                Parser.__init__(self, loader=self)
                Composer.__init__(self, loader=self)
                VersionedResolver.__init__(self, loadumper=self)

        return _PyComposer


_COMPOSER = None


# The C composer recurses on the C stack and crashes the process (SIGSEGV) somewhere past
# ~20,000 nested collections, e.g. "[[[[...". Each level needs a '[', '{', '-' or '?' (block
# mappings also need indentation, which the file-size bound keeps shallow), so only a file with
# many of them gets the event-stream depth check below, which is iterative and stops early.
_DEPTH_CHECK_OPENERS = 10_000


def _may_nest_deeply(text: str) -> bool:
    return text.count("[") + text.count("{") + text.count("-") + text.count("?") > _DEPTH_CHECK_OPENERS


def _check_depth(text: str, shown: str, positions: _Positions) -> None:
    from ruamel.yaml.error import YAMLError

    parser = _COMPOSER(text)
    depth = 0
    try:
        while True:
            event = parser.get_event()
            kind = type(event).__name__
            if kind in ("SequenceStartEvent", "MappingStartEvent"):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    line, column = _clamp(text, *positions.of(mark))
                    raise StorycError(
                        _diag(shown, line, column, E_DOCUMENT, f"document nests deeper than {MAX_DEPTH} levels")
                    )
            elif kind in ("SequenceEndEvent", "MappingEndEvent"):
                depth -= 1
            elif kind == "StreamEndEvent":
                return
    except YAMLError:
        return  # composing reports the syntax error at the same place, before any deep nesting
    finally:
        try:
            parser.dispose()
        except Exception:
            pass


def _compose(text: str, shown: str, positions: _Positions):
    global _COMPOSER
    if _COMPOSER is None:
        _COMPOSER = _composer_class()
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if _may_nest_deeply(text):
        _check_depth(text, shown, positions)
    composer = _COMPOSER(text)
    try:
        node = composer.get_single_node()
    except MarkedYAMLError as exc:
        context = str(exc.context or "")
        # Point where the broken token starts: an unclosed quote or bracket is blamed at its
        # opening, not at the end of the file where the parser gave up. Block-level contexts
        # ("while parsing a block mapping") may start far above the problem, so not those.
        token_level = context.startswith(("while scanning", "while parsing a flow"))
        mark = (exc.context_mark if token_level else None) or exc.problem_mark or exc.context_mark
        line, column = positions.of(mark) if mark is not None else (1, 1)
        line, column = _clamp(text, line, column)
        problem = exc.problem or exc.context or "invalid YAML"
        if token_level and exc.problem:
            problem = f"{exc.problem} {context}"
        elif exc.problem_mark is not None:
            runaway = _runaway_quote(text, exc.problem_mark.index, positions)
            if runaway is not None:
                # `title: "Ember` closed by the next quote lines below: the parser only fails
                # there, but the broken token is the quoted value that ran on.
                (line, column), (end_line, end_column) = runaway
                problem = (
                    f"the quoted value that starts here runs on to line {end_line}, column {end_column}, "
                    f"where parsing fails ({problem}); is its closing quote missing?"
                )
        if "expected a single document" in str(problem) or "but found another document" in str(exc):
            raise StorycError(
                _diag(shown, line, column, E_DOCUMENT, "a story file holds exactly one YAML document")
            ) from None
        raise StorycError(_diag(shown, line, column, E_SYNTAX, f"YAML syntax error: {problem}")) from None
    except YAMLError as exc:
        raise StorycError(
            _diag(shown, 1, 1, E_SYNTAX, f"YAML error: {str(exc).splitlines()[0] if str(exc) else 'invalid YAML'}")
        ) from None
    except RecursionError:
        raise StorycError(_diag(shown, 1, 1, E_DOCUMENT, "document nests deeper than storyc allows")) from None
    finally:
        try:
            composer.dispose()
        except Exception:
            pass
    return node


def _runaway_quote(
    text: str, problem_index: int, positions: _Positions
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(start, end) positions of a quoted scalar spanning several lines that ends right
    where the parser gave up (on that same line, only blanks between): the likely
    missing closing quote. Only runs after a syntax error, so the slow pure scanner is fine."""
    before = text[:problem_index].rstrip(" \t")
    if not before.endswith(('"', "'")):
        return None  # cheap test first: the pure scanner needs seconds for a 4 MiB file
    from ruamel.yaml import YAML

    last = None
    try:
        for token in YAML(typ="safe", pure=True).scan(text):
            if token.start_mark.index >= problem_index:
                break
            last = token
    except Exception:
        pass
    if last is None or type(last).__name__ != "ScalarToken" or getattr(last, "style", None) not in ('"', "'"):
        return None
    start, end = last.start_mark, last.end_mark
    if start.line == end.line or end.index > problem_index or text[end.index : problem_index].strip():
        return None
    return positions.of(start), positions.of(end)


class _ExpansionTooLarge(Exception):
    """Raised at the node visit that crosses MAX_NODE_VISITS; `blame` is filled in while
    unwinding: the deepest node walked for the first time, i.e. the collection whose
    aliases blew up (not some scalar inside the anchored value)."""

    def __init__(self) -> None:
        self.blame = None


class _Builder:
    """Turns composed nodes into plain values + a SourceMap, refusing anything unsafe."""

    def __init__(self, shown: str, positions: _Positions) -> None:
        self.shown = shown
        self.positions = positions
        self.visits = 0
        self.source = SourceMap()
        self.active: set[int] = set()
        self.walked: set[int] = set()  # ids of nodes built once: seeing one again means an alias

    def build(self, root) -> tuple[Any, SourceMap]:
        if root is None:
            self.source.values[()] = (1, 1)
            return None, self.source
        try:
            return self._value(root, ()), self.source
        except _ExpansionTooLarge as exc:
            node = exc.blame or root
            raise self._fail(
                node,
                E_ALIAS,
                f"the aliases in this value expand the document to more than {MAX_NODE_VISITS:,} nodes (alias bomb?)",
            ) from None

    def _fail(self, node, code: str, message: str) -> StorycError:
        return StorycError(_diag(self.shown, *self.positions.of(node.start_mark), code, message))

    def _value(self, node, loc: Loc) -> Any:
        self.visits += 1
        if self.visits > MAX_NODE_VISITS:
            raise _ExpansionTooLarge()
        if len(loc) > MAX_DEPTH:
            raise self._fail(node, E_DOCUMENT, f"document nests deeper than {MAX_DEPTH} levels")
        self.source.values[loc] = self.positions.of(node.start_mark)
        tag = node.tag
        if not isinstance(tag, str):  # ruamel may wrap tags
            tag = getattr(tag, "value", str(tag))
        node_id = id(node)
        if node_id in self.active:
            raise self._fail(node, E_ALIAS, "recursive alias: a node contains itself")
        if node.id == "scalar":
            return self._scalar(node, tag)
        first_walk = node_id not in self.walked
        self.walked.add(node_id)
        expected = {"sequence": _SEQ, "mapping": _MAP}.get(node.id)
        if expected is None:
            raise self._fail(node, E_SYNTAX, "unsupported YAML node")
        if tag != expected:
            raise self._fail(node, E_TAG, f"tag {_short(tag)} is not allowed; storyc reads plain YAML only")
        self.active.add(node_id)
        try:
            if node.id == "sequence":
                return [self._value(item, loc + (i,)) for i, item in enumerate(node.value)]
            return self._mapping(node, loc)
        except _ExpansionTooLarge as exc:
            if exc.blame is None and first_walk:
                exc.blame = node
            raise
        finally:
            self.active.discard(node_id)

    def _mapping(self, node, loc: Loc) -> dict:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            self.visits += 1
            if key_node.id != "scalar":
                raise self._fail(key_node, E_SCHEMA, "mapping keys must be plain names, not collections")
            key_tag = (
                key_node.tag if isinstance(key_node.tag, str) else getattr(key_node.tag, "value", str(key_node.tag))
            )
            if key_tag == _MERGE:
                raise self._fail(key_node, E_TAG, "merge keys (<<) are not supported; write the fields out")
            key = self._scalar(key_node, key_tag)
            if not isinstance(key, str):
                key = str(key_node.value)
            if key in result:
                first = self.source.keys.get(loc + (key,))
                where = f" (first defined at line {first[0]})" if first else ""
                raise self._fail(key_node, E_DUPLICATE_KEY, f"duplicate key '{key}'{where}")
            self.source.keys[loc + (key,)] = self.positions.of(key_node.start_mark)
            result[key] = self._value(value_node, loc + (key,))
        return result

    def _scalar(self, node, tag: str) -> Any:
        value: str = node.value
        if tag not in _SCALAR_TAGS:
            raise self._fail(node, E_TAG, f"tag {_short(tag)} is not allowed; storyc reads plain YAML only")
        if tag == _STR:
            return value
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return value.lower() in ("true", "yes", "on", "y")
        if tag == _INT:
            try:
                return _parse_int(value)
            except ValueError:
                raise self._fail(node, E_SCHEMA, f"'{value}' is not a valid integer") from None
        try:
            return _parse_float(value)
        except ValueError:
            raise self._fail(node, E_SCHEMA, f"'{value}' is not a valid number") from None


def _parse_int(text: str) -> int:
    t = text.replace("_", "")
    sign = -1 if t.startswith("-") else 1
    t = t.lstrip("+-")
    if t[:2] in ("0x", "0X"):
        return sign * int(t[2:], 16)
    if t[:2] in ("0o", "0O"):
        return sign * int(t[2:], 8)
    if t[:2] in ("0b", "0B"):
        return sign * int(t[2:], 2)
    return sign * int(t, 10)


def _parse_float(text: str) -> float:
    t = text.replace("_", "").lower()
    if t in (".inf", "+.inf"):
        return math.inf
    if t == "-.inf":
        return -math.inf
    if t == ".nan":
        return math.nan
    return float(t)


def _load_json(text: str, shown: str) -> Any:
    def no_duplicates(pairs):
        seen: dict = {}
        for k, v in pairs:
            if k in seen:
                raise StorycError(_diag(shown, 1, 1, E_DUPLICATE_KEY, f"duplicate key '{k}'"))
            seen[k] = v
        return seen

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise StorycError(_diag(shown, exc.lineno, exc.colno, E_SYNTAX, f"JSON syntax error: {exc.msg}")) from None


# ─── validation ──────────────────────────────────────────────────────────────


def _validate(data: dict, source: SourceMap, shown: str) -> Story:
    try:
        return Story.model_validate(data)
    except ValidationError as exc:
        diagnostics = _map_validation_errors(exc, data, source, shown)
    # Diagnostics compare by position and code only: dedupe on the message too, or two
    # different problems at one node would collapse into one.
    unique = {(d.path, d.line, d.column, d.code, d.message): d for d in diagnostics}
    raise StorycError(sorted(unique.values()))


def _map_validation_errors(exc: ValidationError, data: dict, source: SourceMap, shown: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen_locs: set[tuple] = set()
    missing: dict[tuple, list[str]] = {}  # mapping loc -> its missing fields, reported as one diagnostic
    misspelt: set[tuple] = set()  # loc of a missing field that an unknown key's hint already names
    for err in exc.errors(include_url=False):
        loc = _data_loc(tuple(err["loc"]), data)
        kind = err["type"]
        field_name = loc[-1] if loc and isinstance(loc[-1], str) else None
        where = _describe(loc)
        if kind == "extra_forbidden":
            line, column = source.key_position(loc)
            parent_model = _model_at(loc[:-1], data)
            hint = _did_you_mean(str(field_name), list(parent_model.model_fields) if parent_model else [])
            if hint.startswith("; did you mean '"):
                misspelt.add(loc[:-1] + (hint[len("; did you mean '") : -2],))
            out.append(
                _diag(
                    shown, line, column, E_UNKNOWN_FIELD, f"unknown field '{field_name}' in {_describe(loc[:-1])}{hint}"
                )
            )
            continue
        if kind == "missing":
            missing.setdefault(loc[:-1], []).append(str(field_name))
            continue
        if loc in seen_locs:  # unions report one error per member: keep the first
            continue
        seen_locs.add(loc)
        line, column = source.position(loc)
        value = _value_at(loc, data)
        if field_name == "duration_seconds" and isinstance(value, int) and not isinstance(value, bool):
            out.append(
                _diag(
                    shown,
                    line,
                    column,
                    E_DURATION,
                    f"duration_seconds is {value}; it must be between {MIN_DURATION_S} and {MAX_DURATION_S}",
                )
            )
            continue
        if field_name == "chain_from":  # a union: pydantic's first member error ("whole number") tells half of it
            unquote = " (write the number without quotes)" if isinstance(value, str) and value.strip().isdigit() else ""
            out.append(
                _diag(
                    shown,
                    line,
                    column,
                    E_SCHEMA,
                    f"{where}: must be an earlier scene_id or none, not {_shorten(value)}{unquote}",
                )
            )
            continue
        out.append(_diag(shown, line, column, E_SCHEMA, f"{where}: {_friendly(err, value)}"))
    for parent, names in missing.items():
        # `titel: ...` is one mistake: its E202 says "did you mean 'title'?", so 'title' is
        # not also reported missing.
        names = [name for name in names if parent + (name,) not in misspelt]
        if not names:
            continue
        line, column = source.position(parent)
        quoted = [f"'{name}'" for name in names]
        what = f"field {quoted[0]}" if len(quoted) == 1 else f"fields {', '.join(quoted[:-1])} and {quoted[-1]}"
        out.append(_diag(shown, line, column, E_MISSING_FIELD, f"{_describe(parent)} is missing required {what}"))
    return out


def _data_loc(loc: tuple, data: Any) -> tuple:
    """Pydantic locs may carry union member names ('int', "literal['none']"); keep the data path."""
    out: list = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not out[-1:] == [part]:
            out.append(part)  # a missing or unknown key: keep it as the last element
            node = None
        else:
            break
    return tuple(out)


def _value_at(loc: tuple, data: Any) -> Any:
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


_SUBMODELS = {"characters": "Character", "scenes": "Scene", "models": "Models", "quality": "Quality", "audio": "Audio"}


def _model_at(loc: tuple, data: Any) -> type[BaseModel] | None:
    from storyc.model import story as model

    if not loc:
        return Story
    if len(loc) >= 3 and loc[0] == "scenes" and loc[2] == "dialogue":  # scenes[i].dialogue[j]
        return model.DialogueLine
    name = _SUBMODELS.get(str(loc[0]))
    return getattr(model, name) if name else None


def _describe(loc: tuple) -> str:
    if not loc:
        return "the story"
    parts = []
    for part in loc:
        parts.append(f"[{part + 1}]" if isinstance(part, int) else (("." if parts else "") + str(part)))
    text = "".join(parts)
    return text.replace(".[", "[")


def _friendly(err: dict, value: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if value is None:
        got = " (got an empty value)" if kind.endswith("_type") else ""
    else:
        got = f" (got {_type_name(value)} {_shorten(value)})"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}, not {_shorten(value)}"
    if kind in ("string_type",):
        return f"must be text{got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number{got}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number{got}"
    if kind == "bool_type":
        return f"must be true or false{got}"
    if kind == "list_type":
        return f"must be a list{got}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping of fields{got}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}, not {_shorten(value)}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}, not {_shorten(value)}"
    if kind == "finite_number":
        return "must be a finite number"
    message = str(err.get("msg", "invalid value"))
    return message[0].lower() + message[1:]


def _type_name(value: Any) -> str:
    return {
        type(None): "null",
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "text",
        list: "list",
        dict: "mapping",
    }.get(type(value), type(value).__name__)


def _shorten(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _did_you_mean(name: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else (f"; expected one of: {', '.join(choices)}" if choices else "")


def _short(tag: str) -> str:
    return "!!" + tag[len(_T) :] if tag.startswith(_T) else tag


def _diag(path: str, line: int, column: int, code: str, message: str) -> Diagnostic:
    return Diagnostic(path, max(1, line), max(1, column), code, Severity.ERROR, message)
