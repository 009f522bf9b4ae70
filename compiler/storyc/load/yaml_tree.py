"""Safe composition of a YAML document into plain values and their positions.

The YAML is composed into nodes by ruamel's libyaml-based parser (fast, positions on
every node); storyc then builds plain Python values itself, so nothing but strings,
numbers, booleans, null, mappings and sequences can ever be constructed: any other
tag is an error at its line and executes nothing. Duplicate keys are errors, alias
expansion is bounded (a billion-laughs document is refused quickly), and so is nesting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Protocol

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.parser import Parser
from ruamel.yaml.reader import Reader
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scanner import Scanner
from ruamel.yaml.tag import Tag

from storyc.diagnostics import StorycError, error
from storyc.load.codes import E_ALIAS, E_DOCUMENT, E_DUPLICATE_KEY, E_SCHEMA, E_SYNTAX, E_TAG
from storyc.load.positions import EditorPositions, Loc, SourceMap, clamp, line_col

try:
    from ruamel.yaml.cyaml import CParser  # type: ignore[attr-defined]  # ruamel re-exports it from its untyped C extension
except ImportError:  # no libyaml build on this platform: the pure Python composer, same nodes, slower
    CParser = None

# Node visits while building values; aliases are re-walked, so this bounds expansion.
# A 1,000-scene story needs ~30k.
MAX_NODE_VISITS = 200_000
MAX_DEPTH = 64

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = _T + "str", _T + "int", _T + "float", _T + "bool", _T + "null"
_MAP, _SEQ, _MERGE = _T + "map", _T + "seq", _T + "merge"
_SCALAR_TAGS = {_STR, _INT, _FLOAT, _BOOL, _NULL}


def parse_yaml(text: str, shown: str) -> tuple[Any, SourceMap]:
    """The plain value of a one-document YAML text and the position of each of its nodes.
    Raises StorycError (positioned at `shown`) for a syntax error or anything unsafe."""
    positions = EditorPositions(text)
    root = _compose(text, shown, positions)
    return _Builder(shown, positions).build(root)


class _Composer(Protocol):
    def get_event(self) -> Any: ...
    def get_single_node(self) -> Node | None: ...
    def dispose(self) -> None: ...


def _composer_class(c_parser: Any = CParser) -> Callable[[str], _Composer]:
    """The libyaml composer when there is one, else ruamel's pure Python one."""
    if c_parser is not None:

        class _CComposer(c_parser, VersionedResolver):  # type: ignore[misc]  # the C parser class is untyped
            def __init__(self, stream: str) -> None:
                c_parser.__init__(self, stream)
                VersionedResolver.__init__(self, loadumper=self)
                # ruamel re-derives the YAML-version table for every scalar (about a third of a
                # big story's load time); the version cannot change within one C parse, so look
                # it up once.
                self._scalar_resolvers = self.versioned_resolver

            def resolve(self, kind: Any, value: str, implicit: tuple[bool, bool]) -> Any:
                if kind is ScalarNode and implicit[0] and not self.yaml_path_resolvers:
                    for tag, regexp in self._scalar_resolvers.get(value[:1], ()):
                        if regexp.match(value):
                            return Tag(suffix=tag)
                    return self.DEFAULT_SCALAR_TAG
                return VersionedResolver.resolve(self, kind, value, implicit)

        return _CComposer

    class _PyComposer(Reader, Scanner, Parser, Composer, VersionedResolver):
        max_depth = None  # ruamel's Composer asks its loader; storyc bounds the depth itself

        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream, loader=self)
            Scanner.__init__(self, loader=self)
            Parser.__init__(self, loader=self)
            Composer.__init__(self, loader=self)
            VersionedResolver.__init__(self, loadumper=self)

    return _PyComposer


_COMPOSER = _composer_class()


# The C composer recurses on the C stack and crashes the process (SIGSEGV) somewhere past
# ~20,000 nested collections, e.g. "[[[[...". Each level needs a '[', '{', '-' or '?' (block
# mappings also need indentation, which the file-size bound keeps shallow), so only a file with
# many of them gets the event-stream depth check below, which is iterative and stops early.
_DEPTH_CHECK_OPENERS = 10_000


def _may_nest_deeply(text: str) -> bool:
    return text.count("[") + text.count("{") + text.count("-") + text.count("?") > _DEPTH_CHECK_OPENERS


def _check_depth(text: str, shown: str, positions: EditorPositions) -> None:
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
                    line, column = clamp(text, *positions.of(mark))
                    raise StorycError(
                        error(shown, line, column, E_DOCUMENT, f"document nests deeper than {MAX_DEPTH} levels")
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


def _compose(text: str, shown: str, positions: EditorPositions) -> Node | None:
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
        line, column = clamp(text, line, column)
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
        tab = _indentation_tab(text, exc)
        if tab is not None:
            line, column = line_col(text, tab)
            raise StorycError(
                error(
                    shown,
                    line,
                    column,
                    E_SYNTAX,
                    "a tab in the indentation; use spaces (YAML indents with spaces only)",
                )
            ) from None
        if "expected a single document" in str(problem) or "but found another document" in str(exc):
            raise StorycError(
                error(shown, line, column, E_DOCUMENT, "a story file holds exactly one YAML document")
            ) from None
        raise StorycError(error(shown, line, column, E_SYNTAX, f"YAML syntax error: {problem}")) from None
    except YAMLError as exc:
        raise StorycError(
            error(shown, 1, 1, E_SYNTAX, f"YAML error: {str(exc).splitlines()[0] if str(exc) else 'invalid YAML'}")
        ) from None
    except RecursionError:
        raise StorycError(error(shown, 1, 1, E_DOCUMENT, "document nests deeper than storyc allows")) from None
    finally:
        try:
            composer.dispose()
        except Exception:
            pass
    return node


_TAB_INDENT = re.compile(r"^[ ]*\t", re.M)


def _indentation_tab(text: str, exc: MarkedYAMLError) -> int | None:
    """The offset of the tab a tab-related syntax error is about: the first tab in a line's
    indentation from the line the parser was reading (it reports where the token before the
    tab started, often the line above). None when the error is not about a tab."""
    problem = str(exc.problem or "")
    mark = exc.context_mark or exc.problem_mark
    at_tab = exc.problem_mark is not None and text[exc.problem_mark.index : exc.problem_mark.index + 1] == "\t"
    if mark is None or not ("tab character" in problem or at_tab):
        return None
    line_start = text.rfind("\n", 0, mark.index) + 1
    found = _TAB_INDENT.search(text, line_start)
    return found.end() - 1 if found is not None else None


def _runaway_quote(
    text: str, problem_index: int, positions: EditorPositions
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(start, end) positions of a quoted scalar spanning several lines that ends right
    where the parser gave up (on that same line, only blanks between): the likely
    missing closing quote. Only runs after a syntax error, so the slow pure scanner is fine."""
    before = text[:problem_index].rstrip(" \t")
    if not before.endswith(('"', "'")):
        return None  # cheap test first: the pure scanner needs seconds for a 4 MiB file
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
        self.blame: Node | None = None


class _Builder:
    """Turns composed nodes into plain values + a SourceMap, refusing anything unsafe."""

    def __init__(self, shown: str, positions: EditorPositions) -> None:
        self.shown = shown
        self.positions = positions
        self.visits = 0
        self.source = SourceMap()
        self.active: set[int] = set()
        self.walked: set[int] = set()  # ids of nodes built once: seeing one again means an alias

    def build(self, root: Node | None) -> tuple[Any, SourceMap]:
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

    def _fail(self, node: Node, code: str, message: str) -> StorycError:
        return StorycError(error(self.shown, *self.positions.of(node.start_mark), code, message))

    def _value(self, node: Node, loc: Loc) -> Any:
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
        if isinstance(node, ScalarNode):
            return self._scalar(node, tag)
        first_walk = node_id not in self.walked
        self.walked.add(node_id)
        expected = _SEQ if isinstance(node, SequenceNode) else _MAP if isinstance(node, MappingNode) else None
        if expected is None:
            raise self._fail(node, E_SYNTAX, "unsupported YAML node")
        if tag != expected:
            raise self._fail(node, E_TAG, f"tag {_short(tag)} is not allowed; storyc reads plain YAML only")
        self.active.add(node_id)
        try:
            if isinstance(node, SequenceNode):
                return [self._value(item, loc + (i,)) for i, item in enumerate(node.value)]  # noqa: RUF005
            return self._mapping(node, loc)
        except _ExpansionTooLarge as exc:
            if exc.blame is None and first_walk:
                exc.blame = node
            raise
        finally:
            self.active.discard(node_id)

    def _mapping(self, node: Node, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            self.visits += 1
            if not isinstance(key_node, ScalarNode):
                raise self._fail(key_node, E_SCHEMA, "mapping keys must be plain names, not collections")
            key_tag = (
                key_node.tag if isinstance(key_node.tag, str) else getattr(key_node.tag, "value", str(key_node.tag))
            )
            if key_tag == _MERGE:
                raise self._fail(key_node, E_TAG, "merge keys (<<) are not supported; write the fields out")
            key = self._scalar(key_node, key_tag)
            if not isinstance(key, str):
                key = str(key_node.value)
            child = loc + (key,)  # noqa: RUF005 (twice as fast as unpacking, on every node)
            if key in result:
                first = self.source.keys.get(child)
                where = f" (first defined at line {first[0]})" if first else ""
                raise self._fail(key_node, E_DUPLICATE_KEY, f"duplicate key '{key}'{where}")
            self.source.keys[child] = self.positions.of(key_node.start_mark)
            result[key] = self._value(value_node, child)
        return result

    def _scalar(self, node: Node, tag: str) -> Any:
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


def _short(tag: str) -> str:
    return "!!" + tag[len(_T) :] if tag.startswith(_T) else tag
