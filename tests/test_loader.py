"""The loader: only StorycError for any input, exact positions, and a faithful round trip.

hypothesis drives most of it: arbitrary text and bytes, mutated valid stories, and
generated Story-shaped documents dumped with ruamel.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from storyc.diagnostics import Diagnostic, StorycError
from storyc.load import yaml_tree
from storyc.load.loader import MAX_FILE_BYTES, load_story, load_story_text
from storyc.load.yaml_tree import MAX_NODE_VISITS
from storyc.model.story import Story

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
FOX = (ROOT / "stories" / "fox_and_owl.yaml").read_text(encoding="utf-8")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def lines_of(text: str) -> list[str]:
    # The line breaks an editor shows: \r\n, \r, \n (YAML also breaks at NEL, LS and PS;
    # storyc reports positions in the editor's terms).
    return re.split(r"\r\n|[\r\n]", text)


def assert_inside(diag: Diagnostic, text: str) -> None:
    lines = lines_of(text)
    if lines and lines[-1] == "" and len(lines) > 1:
        lines = lines[:-1]  # a final newline does not start a line
    lines = lines or [""]
    assert 1 <= diag.line <= len(lines), f"{diag.format()} (file has {len(lines)} lines)"
    assert 1 <= diag.column <= len(lines[diag.line - 1]) + 1, f"{diag.format()} (line is {lines[diag.line - 1]!r})"


def load_or_diagnostics(raw: bytes | str) -> list[Diagnostic]:
    try:
        load_story_text(raw, "story.yaml")
    except StorycError as exc:
        assert exc.diagnostics, "a StorycError without diagnostics"
        return exc.diagnostics
    return []


# ─── only StorycError, on anything ───────────────────────────────────────────


@SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_text_raises_only_storyc_errors(text: str) -> None:
    for diag in load_or_diagnostics(text):
        assert_inside(diag, text)


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_storyc_errors(raw: bytes) -> None:
    diagnostics = load_or_diagnostics(raw)
    text = raw.decode("utf-8", errors="replace")
    for diag in diagnostics:
        assert_inside(diag, text)


YAMLISH = st.text(alphabet=st.sampled_from(list("abc:-[]{}&*!|>'\"#%@`, \n\t?0123456789.")), max_size=300)


@SETTINGS
@given(YAMLISH)
def test_yaml_punctuation_soup_raises_only_storyc_errors(text: str) -> None:
    for diag in load_or_diagnostics(text):
        assert_inside(diag, text)


@st.composite
def mutated_story(draw) -> str:
    """The fox story with a few line- and character-level edits a person might make."""
    lines = FOX.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "indent", "dedent", "swap", "insert", "truncate"]))
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(1, 4)) + lines[i]
        elif kind == "dedent":
            lines[i] = lines[i].lstrip(" ")[: len(lines[i])]
        elif kind == "swap" and len(lines[i]) > 1:
            j = draw(st.integers(0, len(lines[i]) - 2))
            s = lines[i]
            lines[i] = s[:j] + s[j + 1] + s[j] + s[j + 2 :]
        elif kind == "insert":
            j = draw(st.integers(0, len(lines[i])))
            ch = draw(st.sampled_from([*list(":-[]{}&*!|>'\"#\t "), "é", "\u2028", "999", "none", "~"]))
            lines[i] = lines[i][:j] + ch + lines[i][j:]
        elif kind == "truncate":
            lines = lines[: i + 1]
    return "\n".join(lines)


@SETTINGS
@given(mutated_story())
def test_mutated_stories_raise_only_storyc_errors(text: str) -> None:
    for diag in load_or_diagnostics(text):
        assert_inside(diag, text)


# ─── generated valid stories round-trip ──────────────────────────────────────

SAFE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn"), blacklist_characters="\ufeff"),
    min_size=0,
    max_size=40,
)
NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9 _-]{0,10}[A-Za-z0-9]", fullmatch=True)


@st.composite
def story_dicts(draw) -> dict:
    names = draw(st.lists(NAME, min_size=1, max_size=4, unique=True))
    characters = []
    for name in names:
        character = {
            "name": name,
            "role": draw(SAFE_TEXT),
            "visual_description": draw(SAFE_TEXT),
            "personality_cues": draw(st.lists(SAFE_TEXT, max_size=3)),
        }
        if draw(st.booleans()):
            character["reference_image"] = draw(st.sampled_from(["images/a.png", "b.jpg"]))
        characters.append(character)
    n = draw(st.integers(1, 5))
    scenes = []
    for i in range(n):
        scene = {
            "scene_id": i + 1,
            "title": draw(SAFE_TEXT),
            "description": draw(SAFE_TEXT),
            "characters_present": draw(st.lists(st.sampled_from(names), max_size=3)),
            "setting": draw(SAFE_TEXT),
            "camera": draw(SAFE_TEXT),
            "mood": draw(SAFE_TEXT),
            "action": draw(SAFE_TEXT),
            "duration_seconds": draw(st.integers(3, 15)),
        }
        if draw(st.booleans()):
            scene["transition"] = draw(st.sampled_from(["cut", "crossfade", "match-cut"]))
        if i and draw(st.booleans()):
            scene["chain_from"] = draw(st.sampled_from(["none", *range(1, i + 1)]))
        if draw(st.booleans()):
            scene["chain_source"] = draw(st.sampled_from(["last_frame", "keyframe"]))
        scenes.append(scene)
    story = {
        "title": draw(SAFE_TEXT),
        "style": draw(SAFE_TEXT),
        "color_palette": draw(SAFE_TEXT),
        "characters": characters,
        "scenes": scenes,
    }
    if draw(st.booleans()):
        story["aspect_ratio"] = draw(st.sampled_from(["16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3"]))
    if draw(st.booleans()):
        story["version"] = 1
    if draw(st.booleans()):
        story["quality"] = {
            "consistency_threshold": draw(st.floats(0, 1, allow_nan=False)),
            "max_video_corrections": draw(st.integers(0, 10)),
        }
    return story


def dump(data: dict) -> str:
    yaml = YAML()  # round-trip dumper: the writer `storyc init/plan` would use
    yaml.width = 80
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


@pytest.mark.slow
@SETTINGS
@given(story_dicts())
def test_generated_stories_load_to_the_same_model(data: dict) -> None:
    text = dump(data)
    loaded = load_story_text(text, "gen.yaml")
    assert loaded.story == Story.model_validate(data)
    assert loaded.data == data


@pytest.mark.slow
@SETTINGS
@given(story_dicts())
def test_dump_load_dump_is_stable(data: dict) -> None:
    first = dump(data)
    second = dump(load_story_text(first, "gen.yaml").data)
    assert second == first


def _line_col_of(text: str, needle: str) -> tuple[int, int]:
    offset = text.index(needle)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


@pytest.mark.slow
@SETTINGS
@given(story_dicts(), st.data())
def test_bad_duration_points_at_its_line(data: dict, pick) -> None:
    k = pick.draw(st.integers(0, len(data["scenes"]) - 1))
    bad = pick.draw(st.sampled_from([0, 2, 61, 99, -4]))
    data["scenes"][k]["duration_seconds"] = bad
    text = dump(data)
    diagnostics = load_or_diagnostics(text)
    durations = [d for d in diagnostics if d.code == "E204"]
    assert len(durations) == 1, diagnostics
    key_line, key_column = _line_col_of(text, f"duration_seconds: {bad}\n")
    assert (durations[0].line, durations[0].column) == (key_line, key_column + len("duration_seconds: "))
    for diag in diagnostics:
        assert_inside(diag, text)


@pytest.mark.slow
@SETTINGS
@given(story_dicts(), st.data())
def test_wrong_type_points_at_the_value(data: dict, pick) -> None:
    k = pick.draw(st.integers(0, len(data["scenes"]) - 1))
    field = pick.draw(st.sampled_from(["title", "setting", "camera", "action"]))
    data["scenes"][k][field] = 123456789
    text = dump(data)
    diagnostics = [d for d in load_or_diagnostics(text) if d.code == "E201"]
    assert len(diagnostics) == 1
    assert (diagnostics[0].line, diagnostics[0].column) == _line_col_of(text, "123456789")


@pytest.mark.slow
@SETTINGS
@given(story_dicts(), st.data())
def test_unknown_field_points_at_its_key(data: dict, pick) -> None:
    k = pick.draw(st.integers(0, len(data["scenes"]) - 1))
    data["scenes"][k]["duraton_secs"] = 8
    text = dump(data)
    diagnostics = [d for d in load_or_diagnostics(text) if d.code == "E202"]
    assert len(diagnostics) == 1
    assert (diagnostics[0].line, diagnostics[0].column) == _line_col_of(text, "duraton_secs")


@pytest.mark.slow
@SETTINGS
@given(story_dicts(), st.data())
def test_unknown_character_points_at_its_list_item(data: dict, pick) -> None:
    from storyc.lint import lint_story

    k = pick.draw(st.integers(0, len(data["scenes"]) - 1))
    present = data["scenes"][k]["characters_present"]
    present.insert(pick.draw(st.integers(0, len(present))), "Qzxv Unknown")
    text = dump(data)
    found = [d for d in lint_story(load_story_text(text, "gen.yaml")) if d.code == "E303"]
    assert len(found) == 1
    assert (found[0].line, found[0].column) == _line_col_of(text, "Qzxv Unknown")


# ─── unit cases ──────────────────────────────────────────────────────────────


def test_fox_story_loads_with_positions() -> None:
    loaded = load_story(ROOT / "stories" / "fox_and_owl.yaml")
    assert loaded.story.characters[0].name == "Ember"
    line, column = loaded.source.position(("scenes", 0, "duration_seconds"))
    assert FOX.splitlines()[line - 1][column - 1 :].startswith("8")
    key_line, key_column = loaded.source.key_position(("scenes", 0, "duration_seconds"))
    assert FOX.splitlines()[key_line - 1][key_column - 1 :].startswith("duration_seconds:")


def test_python_tag_executes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "owned"
    text = f'title: !!python/object/apply:os.system ["touch {marker}"]\n'
    with pytest.raises(StorycError) as info:
        load_story_text(text)
    assert info.value.diagnostics[0].code == "E102"
    assert not marker.exists()


def test_billion_laughs_is_refused() -> None:
    levels = ["a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    for i in range(1, 10):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(StorycError) as info:  # how fast: bench/lint_speed.py
        load_story_text("\n".join(levels) + "\n")
    assert info.value.diagnostics[0].code == "E104"
    assert f"{MAX_NODE_VISITS:,}" in info.value.diagnostics[0].message
    # a0..a4 expand to ~123k nodes, a5 alone to 1.1M: the diagnostic names a5's value
    assert (info.value.diagnostics[0].line, info.value.diagnostics[0].column) == (6, 5)


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no megabytes written
    with pytest.raises(StorycError) as info:
        load_story(big)
    assert info.value.diagnostics[0].code == "E105"


def test_directory_is_a_diagnostic(tmp_path: Path) -> None:
    with pytest.raises(StorycError) as info:
        load_story(tmp_path)
    assert info.value.diagnostics[0].code == "E105"


def test_utf8_bom_is_accepted() -> None:
    loaded_text = "\ufefftitle: T\nstyle: s\ncolor_palette: c\ncharacters: []\nscenes: []\n"
    assert load_story_text(loaded_text.encode("utf-8"), "bom.yaml").story.title == "T"


def test_seed_json_plan_loads(tmp_path: Path) -> None:
    import json

    plan = {
        "title": "T",
        "style": "s",
        "aspect_ratio": "16:9",
        "color_palette": "c",
        "characters": [{"name": "Ember", "role": "r", "visual_description": "d", "personality_cues": ["x"]}],
        "scenes": [
            {
                "scene_id": 1,
                "title": "t",
                "description": "d",
                "characters_present": ["Ember"],
                "setting": "s",
                "camera": "c",
                "mood": "m",
                "action": "a",
                "duration_seconds": 8,
                "transition": "cut",
            }
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan, indent="\t"))  # tabs: not YAML, still JSON
    assert load_story(path).story.scenes[0].duration_seconds == 8


def test_non_ascii_before_an_error_keeps_columns_in_characters() -> None:
    text = "title: ééééé\nstyle: [é, é\n"
    diagnostics = load_or_diagnostics(text)
    assert diagnostics and diagnostics[0].code == "E101"
    for diag in diagnostics:
        assert_inside(diag, text)


@pytest.mark.parametrize(
    ("raw", "code", "line", "column"),
    [
        (b"title: T\nstyle: caf\xe9\n", "E105", 2, 11),  # Latin-1 byte: column in characters
        (b"title: \xc3\xa9\xc3\xa9 \xff\n", "E105", 1, 11),
        (b"\xff\xfet\x00i\x00", "E105", 1, 1),
        (b"t\x00i\x00t\x00", "E105", 1, 2),  # UTF-16 without BOM: NUL bytes
        (b"title: a\rstyle: b\x01\n", "E105", 2, 9),  # old Mac line ends still count lines
    ],
)
def test_encoding_and_control_positions(raw: bytes, code: str, line: int, column: int) -> None:
    diagnostics = load_or_diagnostics(raw)
    assert [(d.code, d.line, d.column) for d in diagnostics] == [(code, line, column)]


@pytest.mark.parametrize(
    ("text", "closed_at"),
    [
        # closed by the first quote of "16:9"
        ('title: "Ember and the Crystal\nstyle: s\naspect_ratio: "16:9"\ncharacters: []\n', (3, 16)),
        # closed by the apostrophe of "fox's"
        ("title: 'Ember and the Crystal\nstyle: s\nnote: the fox's den\nscenes: []\n", (3, 15)),
    ],
)
def test_a_quote_closed_lines_later_is_blamed_where_it_opens(text: str, closed_at: tuple[int, int]) -> None:
    # The parser only fails lines below, after the next quote closed the runaway value;
    # the broken token is the value whose closing quote is missing.
    diagnostics = load_or_diagnostics(text)
    assert [(d.code, d.line, d.column) for d in diagnostics] == [("E101", 1, 8)], [d.format() for d in diagnostics]
    assert f"runs on to line {closed_at[0]}, column {closed_at[1]}" in diagnostics[0].message
    assert "closing quote missing" in diagnostics[0].message


def test_a_quote_error_on_one_line_stays_where_the_parser_failed() -> None:
    text = "title: 'Ember's Crystal'\nstyle: s\n"
    diagnostics = load_or_diagnostics(text)
    assert [(d.code, d.line, d.column) for d in diagnostics] == [("E101", 1, 15)]
    assert "closing quote" not in diagnostics[0].message


@pytest.mark.parametrize(
    ("text", "tab_at"),
    [
        # the parser blames the previous line's value ("while scanning a plain scalar")
        ("title: x\nstyle: s\ncolor_palette: c\ncharacters:\n  - name: A\n\trole: r\n", (6, 1)),
        ("title: x\n\tstyle: s\n", (2, 1)),
        ("a:\n\t- 1\n", (2, 1)),  # "found character that cannot start any token"
        ("a:\n  - x: 1\n  \t y: 2\n", (3, 3)),  # spaces, then the tab
        ("a: |\n  text\n\tmore\n", (3, 1)),  # in a block scalar's indentation
    ],
)
def test_a_tab_in_the_indentation_is_reported_at_the_tab_with_use_spaces(text: str, tab_at: tuple[int, int]) -> None:
    diagnostics = load_or_diagnostics(text)
    assert [(d.code, d.line, d.column) for d in diagnostics] == [("E101", *tab_at)], [d.format() for d in diagnostics]
    assert "use spaces" in diagnostics[0].message and "tab" in diagnostics[0].message
    assert "scanning" not in diagnostics[0].message  # the parser's own wording is not the message


@pytest.mark.parametrize("yaml_only_break", ["\x85", "\u2028", "\u2029"])
@pytest.mark.parametrize("source", ["yaml", "json"])
def test_yaml_only_line_breaks_keep_editor_positions(yaml_only_break: str, source: str) -> None:
    # YAML breaks lines at NEL, LS and PS; editors, git and GitHub do not. A later error
    # must still point at the line and column an editor shows.
    if source == "yaml":
        text = f'title: "a{yaml_only_break}b"\nstyle: s\nscenes: 7\n'
    else:
        text = f'{{"title": "a{yaml_only_break}b", "style": "s", "scenes": 7}}'
    diagnostics = load_or_diagnostics(text)
    scenes = [d for d in diagnostics if d.code == "E201" and "scenes" in d.message]
    assert scenes, [d.format() for d in diagnostics]
    assert (scenes[0].line, scenes[0].column) == _line_col_of(text, "7"), scenes[0].format()
    for diag in diagnostics:
        assert 1 <= diag.line <= text.count("\n") + 1, diag.format()


def test_a_syntax_error_after_a_nel_is_on_the_editor_line() -> None:
    text = 'title: "a\x85b"\nstyle: [s\n'
    diagnostics = load_or_diagnostics(text)
    assert [(d.code, d.line) for d in diagnostics] == [("E101", 2)], [d.format() for d in diagnostics]


def test_the_pure_python_composer_reads_like_the_libyaml_one(monkeypatch) -> None:
    """Without libyaml (ruamel.yaml.clib is only required on CPython) storyc composes with
    ruamel's pure Python classes: the same values and positions, and diagnostics with the same
    code at the same place (a syntax error's wording is the parser's own)."""
    texts = [
        FOX,
        FOX.replace("title:", "title: [unclosed", 1),
        "title: !!python/object:os.system x\n",
        "a: 1\na: 2\n",
        "a: &x [1, 2]\nb: *x\n",
    ]

    def outcome(text: str):
        try:
            data, source = yaml_tree.parse_yaml(text, "story.yaml")
        except StorycError as exc:
            return [(d.line, d.column, d.code) for d in exc.diagnostics]
        return data, source.values, source.keys

    with_libyaml = [outcome(text) for text in texts]
    assert yaml_tree._COMPOSER.__name__ == "_CComposer"  # the comparison is against libyaml
    monkeypatch.setattr(yaml_tree, "_COMPOSER", yaml_tree._composer_class(c_parser=None))
    assert [outcome(text) for text in texts] == with_libyaml
