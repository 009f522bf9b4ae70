"""Set or remove one pin field (`keyframe_image: approved/keyframe_scene_2.jpg`) in a story
file, changing nothing else: comments, key order, folded and literal scalars, flow style,
odd indentation and line endings stay byte for byte outside the edited lines.

ruamel's round-trip composer gives every node of the file with its start and end marks;
the edit is then a splice of the text at those marks (a re-dump would re-indent, re-wrap
and re-quote the whole file). Block mappings get a new line after their last content line,
at their keys' indentation; flow mappings (`{scene_id: 1, ...}`) get `, key: value` before
their closing brace; an existing value is replaced in place. The result is parsed again
with storyc's own loader and must equal the old document with exactly that one change,
or nothing is written.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from storyc.diagnostics import StorycError
from storyc.load.yaml_tree import parse_yaml
from storyc.store.fsutil import atomic_write_bytes

_BREAK = re.compile("\r\n|[\r\n]")
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./@+-]*$")
_BOM = "\ufeff"


class PinEditError(Exception):
    """The field cannot be edited safely (the story must then be edited by hand)."""


def set_field(text: str, loc: tuple, value: str | None, *, json_style: bool = False) -> str:
    """`text` with the scalar field at `loc` (e.g. ("scenes", 2, "keyframe_image")) set to
    `value`, or removed when `value` is None. Only the lines of that field change. Raises
    PinEditError when the document does not allow a safe edit."""
    bom = text.startswith(_BOM)
    body = text[1:] if bom else text
    try:
        root = YAML(typ="rt").compose(body)
    except YAMLError as exc:
        raise PinEditError(f"the file is not valid YAML: {str(exc).splitlines()[0]}") from None
    *path, field = loc
    mapping = _walk(root, path)
    edited = _Splice(body, json_style).edit(mapping, field, value)
    _verify(body, edited, loc, value)
    return (_BOM if bom else "") + edited


def set_pin_in_file(story_path: Path, loc: tuple, value: str | None) -> bool:
    """Edit the story file in place (atomically, keeping its mode). Returns False when the
    field already had that value (nothing written)."""
    story_path = Path(story_path)
    raw = story_path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PinEditError("the file is not UTF-8") from None
    edited = set_field(text, loc, value, json_style=story_path.suffix.lower() == ".json")
    if edited == text:
        return False
    mode = os.stat(story_path).st_mode & 0o7777
    atomic_write_bytes(story_path, edited.encode("utf-8"))
    os.chmod(story_path, mode)
    return True


# ─── finding the node ────────────────────────────────────────────────────────


def _walk(node: Node | None, path: list) -> MappingNode:
    where = []
    for step in path:
        where.append(str(step))
        if isinstance(step, int):
            if not isinstance(node, SequenceNode) or step >= len(node.value):
                raise PinEditError(f"{'.'.join(where)} is not in the file")
            node = node.value[step]
        else:
            if not isinstance(node, MappingNode):
                raise PinEditError(f"{'.'.join(where)} is not in the file")
            node = next((v for k, v in node.value if isinstance(k, ScalarNode) and k.value == step), None)
            if node is None:
                raise PinEditError(f"{'.'.join(where)} is not in the file")
    if not isinstance(node, MappingNode):
        raise PinEditError(f"{'.'.join(where)} is not a mapping")
    if getattr(node, "anchor", None):
        # the same mapping is used elsewhere through an alias: one edit would change both
        raise PinEditError(f"{'.'.join(where)} carries a YAML anchor (&{node.anchor}); edit it by hand")
    if any(isinstance(k, ScalarNode) and k.value == "<<" for k, _ in node.value):
        raise PinEditError(f"{'.'.join(where)} uses a merge key (<<); edit it by hand")
    return node


# ─── the splice ──────────────────────────────────────────────────────────────


class _Splice:
    def __init__(self, text: str, json_style: bool):
        self.text = text
        self.json_style = json_style
        found = _BREAK.search(text)
        self.newline = found.group() if found else "\n"

    def edit(self, mapping: MappingNode, field: str, value: str | None) -> str:
        pairs = mapping.value
        index = next((i for i, (k, _) in enumerate(pairs) if isinstance(k, ScalarNode) and k.value == field), None)
        if value is None:
            return self.text if index is None else self._remove(mapping, index)
        if index is None:
            return self._insert(mapping, field, value)
        return self._replace(pairs[index][0], pairs[index][1], value)

    # ── pieces ──

    def _scalar(self, value: str) -> str:
        if self.json_style or not _PLAIN.match(value):
            return json.dumps(value, ensure_ascii=False)
        try:  # plain only when it reads back as this string (not a number, bool, null...)
            data, _ = parse_yaml(f"k: {value}\n", "<pin>")
        except StorycError:
            data = None
        return value if data == {"k": value} else json.dumps(value, ensure_ascii=False)

    def _key(self, field: str) -> str:
        return json.dumps(field) if self.json_style else field

    def _line_start(self, pos: int) -> int:
        return max(self.text.rfind("\n", 0, pos), self.text.rfind("\r", 0, pos)) + 1

    def _after_line(self, pos: int) -> int | None:
        """The index just after the line break ending the line that holds `pos` (None at EOF)."""
        found = _BREAK.search(self.text, pos)
        return found.end() if found else None

    def _content_end(self, node: Node) -> int:
        """Just after the last character that belongs to `node` (a block scalar's trailing
        line breaks and the comments after a block collection do not)."""
        if isinstance(node, ScalarNode):
            if node.style in ("|", ">"):
                header = self.text[node.start_mark.index : node.end_mark.index].split("\n", 1)[0]
                if "+" in header:  # keep chomping: its trailing blank lines are content
                    return node.end_mark.index
                return node.start_mark.index + len(self.text[node.start_mark.index : node.end_mark.index].rstrip())
            return node.end_mark.index
        if getattr(node, "flow_style", False) or not node.value:
            return node.end_mark.index
        if isinstance(node, MappingNode):
            key, val = node.value[-1]
            return max(self._content_end(key), self._content_end(val))
        return self._content_end(node.value[-1])

    def _is_line_start(self, pos: int) -> bool:
        return pos == 0 or self.text[pos - 1] in "\r\n"

    # ── edits ──

    def _replace(self, key: Node, node: Node, value: str) -> str:
        if not isinstance(node, ScalarNode):
            raise PinEditError(f"{key.value} holds a {'list' if isinstance(node, SequenceNode) else 'mapping'}")
        start, end = node.start_mark.index, self._content_end(node)
        scalar = self._scalar(value)
        if start == end:  # `field:` with no value, or an explicit empty one
            colon = self.text.find(":", key.end_mark.index)
            if colon < 0:
                raise PinEditError(f"cannot find the ':' after {key.value}")
            return self.text[: colon + 1] + " " + scalar + self.text[colon + 1 :]
        if self.text[start:end] == scalar:
            return self.text
        return self.text[:start] + scalar + self.text[end:]

    def _insert(self, mapping: MappingNode, field: str, value: str) -> str:
        entry = f"{self._key(field)}: {self._scalar(value)}"
        if mapping.flow_style:
            close = mapping.end_mark.index - 1
            if self.text[close : close + 1] != "}":
                raise PinEditError("cannot find the closing '}' of the mapping")
            last = close
            while last > 0 and self.text[last - 1] in " \t\r\n":
                last -= 1
            empty = self.text[last - 1 : last] == "{"
            joiner = "" if empty else (" " if self.text[last - 1 : last] == "," else ", ")
            return self.text[:last] + joiner + entry + self.text[last:]
        if not mapping.value:
            raise PinEditError("the mapping is empty")
        indent = " " * mapping.value[0][0].start_mark.column
        end = self._content_end(mapping)
        line = indent + entry + self.newline
        if self._is_line_start(end):
            return self.text[:end] + line + self.text[end:]
        after = self._after_line(end)
        if after is None:  # the last line of the file has no line break
            return self.text + self.newline + indent + entry
        return self.text[:after] + line + self.text[after:]

    def _remove(self, mapping: MappingNode, index: int) -> str:
        pairs = mapping.value
        key, node = pairs[index]
        start, end = key.start_mark.index, self._content_end(node)
        if mapping.flow_style:
            if index + 1 < len(pairs):
                return self.text[:start] + self.text[pairs[index + 1][0].start_mark.index :]
            if index > 0:
                return self.text[: self._content_end(pairs[index - 1][1])] + self.text[end:]
            return self.text[:start] + self.text[end:]
        line_start = self._line_start(start)
        if self.text[line_start:start].strip(" \t") == "":  # the key starts its line: drop whole lines
            after = self._after_line(end)
            rest = self.text[end : after if after is not None else len(self.text)]
            if rest.strip() and not rest.strip().startswith("#"):
                raise PinEditError(f"{key.value}'s line holds more than the field")
            return self.text[:line_start] + (self.text[after:] if after is not None else "")
        # `- field: value` opens a list item: the next key moves up onto the dash's line
        if index + 1 >= len(pairs):
            raise PinEditError(f"{key.value} is the mapping's only field")
        return self.text[:start] + self.text[pairs[index + 1][0].start_mark.index :]


# ─── verification ────────────────────────────────────────────────────────────


def _verify(before: str, after: str, loc: tuple, value: str | None) -> None:
    try:
        old, _ = parse_yaml(before, "<before>")
        new, _ = parse_yaml(after, "<after>")
    except StorycError as exc:
        raise PinEditError(f"the edit would break the file ({exc.diagnostics[0].message})") from None
    expected: Any = copy.deepcopy(old)
    target = expected
    for step in loc[:-1]:
        target = target[step]
    if value is None:
        target.pop(loc[-1], None)
    else:
        target[loc[-1]] = value
    if new != expected:
        raise PinEditError("the edit would change more than the field; set it by hand")
