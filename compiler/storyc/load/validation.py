"""Validation of a story's plain values against the Story model, with pydantic's errors
turned into diagnostics positioned at the node they name, in the author's words, with a
did-you-mean for a misspelt field."""

from __future__ import annotations

import difflib
import json
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from storyc.diagnostics import Diagnostic, StorycError, error
from storyc.load.codes import E_DURATION, E_MISSING_FIELD, E_SCHEMA, E_UNKNOWN_FIELD
from storyc.load.positions import Loc, SourceMap
from storyc.model.story import (
    MAX_SCENE_S,
    MIN_DURATION_S,
    Audio,
    Character,
    DialogueLine,
    Location,
    Models,
    Quality,
    Scene,
    Story,
)


def validate_story(data: dict[str, Any], source: SourceMap, shown: str) -> Story:
    try:
        return Story.model_validate(data)
    except ValidationError as exc:
        diagnostics = _map_validation_errors(exc, data, source, shown)
    # Diagnostics compare by position and code only: dedupe on the message too, or two
    # different problems at one node would collapse into one.
    unique = {(d.path, d.line, d.column, d.code, d.message): d for d in diagnostics}
    raise StorycError(sorted(unique.values()))


def _map_validation_errors(
    exc: ValidationError, data: dict[str, Any], source: SourceMap, shown: str
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen_locs: set[Loc] = set()
    missing: dict[Loc, list[str]] = {}  # mapping loc -> its missing fields, reported as one diagnostic
    misspelt: set[Loc] = set()  # loc of a missing field that an unknown key's hint already names
    for err in exc.errors(include_url=False):
        loc = _data_loc(tuple(err["loc"]), data)
        kind = err["type"]
        field_name = loc[-1] if loc and isinstance(loc[-1], str) else None
        where = _describe(loc, data)
        if kind == "extra_forbidden":
            line, column = source.key_position(loc)
            parent_model = _model_at(loc[:-1])
            hint = _did_you_mean(str(field_name), list(parent_model.model_fields) if parent_model else [])
            if hint.startswith("; did you mean '"):
                misspelt.add((*loc[:-1], hint[len("; did you mean '") : -2]))
            out.append(
                error(
                    shown,
                    line,
                    column,
                    E_UNKNOWN_FIELD,
                    f"unknown field '{field_name}' in {_describe(loc[:-1], data)}{hint}",
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
                error(
                    shown,
                    line,
                    column,
                    E_DURATION,
                    f"duration_seconds is {value}; it must be between {MIN_DURATION_S} and {MAX_SCENE_S}",
                )
            )
            continue
        if field_name == "chain_from":  # a union: pydantic's first member error ("whole number") tells half of it
            unquote = " (write the number without quotes)" if isinstance(value, str) and value.strip().isdigit() else ""
            out.append(
                error(
                    shown,
                    line,
                    column,
                    E_SCHEMA,
                    f"{where}: must be an earlier scene_id or none, not {_shorten(value)}{unquote}",
                )
            )
            continue
        out.append(error(shown, line, column, E_SCHEMA, f"{where}: {_friendly(err, value)}"))
    for parent, names in missing.items():
        # `titel: ...` is one mistake: its E202 says "did you mean 'title'?", so 'title' is
        # not also reported missing.
        names = [name for name in names if (*parent, name) not in misspelt]
        if not names:
            continue
        line, column = source.position(parent)
        quoted = [f"'{name}'" for name in names]
        what = f"field {quoted[0]}" if len(quoted) == 1 else f"fields {', '.join(quoted[:-1])} and {quoted[-1]}"
        out.append(error(shown, line, column, E_MISSING_FIELD, f"{_describe(parent, data)} is missing required {what}"))
    return out


def _data_loc(loc: Loc, data: Any) -> Loc:
    """Pydantic locs may carry union member names ('int', "literal['none']"); keep the data path."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:  # noqa: SIM114 (two branches: each narrows `part` for the checker)
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and out[-1:] != [part]:
            out.append(part)  # a missing or unknown key: keep it as the last element
            node = None
        else:
            break
    return tuple(out)


def _value_at(loc: Loc, data: Any) -> Any:
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


_SUBMODELS: dict[str, type[BaseModel]] = {
    "characters": Character,
    "locations": Location,
    "scenes": Scene,
    "models": Models,
    "quality": Quality,
    "audio": Audio,
}


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model whose fields the mapping at `loc` holds (top level or one list/section down)."""
    if not loc:
        return Story
    if len(loc) >= 3 and loc[0] == "scenes" and loc[2] == "dialogue":  # scenes[i].dialogue[j]
        return DialogueLine
    return _SUBMODELS.get(str(loc[0]))


def _describe(loc: Loc, data: Any = None) -> str:
    """Where a problem is, in the author's terms: a scene by its id ("scene 4", as lint's
    reference errors say it), a character or a location by its name, then the field; a list
    position ("scenes[2]", counted from 1) only for an item with no usable id or name."""
    if not loc:
        return "the story"
    owner, rest = "", loc
    if len(loc) >= 2 and loc[0] in ("scenes", "characters", "locations") and isinstance(loc[1], int):
        owner, rest = _owner(str(loc[0]), loc[1], _value_at(loc[:2], data)), loc[2:]
    parts: list[str] = []
    for part in rest:
        parts.append(f"[{part + 1}]" if isinstance(part, int) else (("." if parts else "") + str(part)))
    path = "".join(parts).replace(".[", "[")
    return ", ".join(p for p in (owner, path) if p)


def _owner(section: str, index: int, item: Any) -> str:
    """ "scene 4" / "character 'Ava'" for the item at `index` of `section`, or its position."""
    if isinstance(item, dict):
        scene_id, name = item.get("scene_id"), item.get("name")
        if section == "scenes" and isinstance(scene_id, int) and not isinstance(scene_id, bool):
            return f"scene {scene_id}"
        if section in ("characters", "locations") and isinstance(name, str) and name.strip():
            return f"{section.removesuffix('s')} {name.strip()!r}"
    return f"{section}[{index + 1}]"


def _friendly(err: ErrorDetails, value: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if value is None:
        got = " (got an empty value)" if kind.endswith("_type") else ""
    else:
        got = f" (got {type_name(value)} {_shorten(value)})"
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


def type_name(value: Any) -> str:
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
