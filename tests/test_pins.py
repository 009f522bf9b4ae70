"""Pin editing (storyc.author.pins): `storyc approve` and `unapprove` change only the pin's
line; comments, order, folding, flow style, indentation and line endings stay byte for byte.
Removing a pin that was added gives back the original file exactly."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storyc.author.pins import PinEditError, set_field, set_pin_in_file
from storyc.load.loader import load_story_text
from test_loader import dump, story_dicts

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
STORIES = sorted((ROOT / "stories").glob("*.yaml"))

ODD = """\
# yaml-language-server: $schema=../schemas/story.schema.json
title: The Odd One   # a comment after a value
style: >-
  Folded style text that runs
  over two lines

color_palette: 'single quoted, with: a colon'
characters:
   # characters are indented by three spaces here
   -   name: Ember
       role: r
       visual_description: |
         Literal text.
           Indented more.
       personality_cues: [a, b]   # flow list

   - {name: Sage, role: r, visual_description: d,
      personality_cues: []}
scenes:
- scene_id: 1   # no indent before the dash
  title: "double \\"quoted\\""
  description: d
  characters_present: [Ember]
  setting: s
  camera: c
  mood: m
  action: a
  duration_seconds: 8
  dialogue:
  - speaker: Ember
    line: >
      hello there
# a comment between scenes, at column 1
- {scene_id: 2, title: t, description: d, characters_present: [Sage], setting: s, camera: c, mood: m, action: a, duration_seconds: 4}
-
  scene_id: 3
  title: t
  description: d
  characters_present: []
  setting: s
  camera: c
  mood: m
  action: a
  duration_seconds: 4
  narration: |+
    kept trailing line

"""

PIN_FIELDS = (("characters", "sheet_image"), ("scenes", "keyframe_image"), ("scenes", "clip_video"))


def _changed_lines(before: str, after: str) -> list[tuple[str, list[str], list[str]]]:
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    return [(tag, a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def _check_set_and_remove(text: str, section: str, index: int, field: str, value: str) -> str:
    edited = set_field(text, (section, index, field), value)
    changes = _changed_lines(text, edited)
    assert len(changes) == 1, changes
    _tag, old, new = changes[0]
    assert len(old) <= 1 and len(new) == 1, changes  # one line inserted, or one line rewritten
    assert value in new[0] and field in new[0]
    loaded = load_story_text(edited, "edited.yaml")
    assert getattr(getattr(loaded.story, section)[index], field) == value
    assert set_field(edited, (section, index, field), value) == edited  # already set: no change
    assert set_field(edited, (section, index, field), None) == text  # removing gives the file back
    return edited


@pytest.mark.parametrize("story", STORIES, ids=lambda p: p.stem)
def test_every_pin_of_the_example_stories_edits_one_line(story: Path) -> None:
    text = story.read_text(encoding="utf-8")
    data = load_story_text(text, story.name).data
    for section, field in PIN_FIELDS:
        for index in range(len(data[section])):
            _check_set_and_remove(text, section, index, field, f"approved/{field}_{index}.png")


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("bom", [False, True], ids=["", "bom"])
def test_an_odd_story_keeps_every_other_byte(newline: str, bom: bool) -> None:
    text = ("\ufeff" if bom else "") + ODD.replace("\n", newline)
    for section, field in PIN_FIELDS:
        count = 2 if section == "characters" else 3
        for index in range(count):
            edited = _check_set_and_remove(text, section, index, field, "approved/x 1.png")
            assert edited.startswith("\ufeff") == bom
            if newline == "\r\n":
                assert "\n" not in edited.replace("\r\n", "")  # no bare LF was written


def test_placement_in_each_layout() -> None:
    edited = set_field(ODD, ("characters", 0, "sheet_image"), "approved/sheet_Ember.png")
    # after the last content line of the item (the flow list with its comment), at the keys' column
    assert "       personality_cues: [a, b]   # flow list\n       sheet_image: approved/sheet_Ember.png\n" in edited
    edited = set_field(ODD, ("characters", 1, "sheet_image"), "approved/sheet_Sage.png")
    assert "personality_cues: [], sheet_image: approved/sheet_Sage.png}" in edited
    edited = set_field(ODD, ("scenes", 0, "keyframe_image"), "approved/k.jpg")
    # after the folded dialogue line, before the comment that introduces the next scene
    assert "      hello there\n  keyframe_image: approved/k.jpg\n# a comment between scenes" in edited
    edited = set_field(ODD, ("scenes", 2, "clip_video"), "approved/c.mp4")
    # a keep-chomped scalar keeps its trailing blank line: the pin comes after it
    assert "    kept trailing line\n\n  clip_video: approved/c.mp4\n" in edited
    assert load_story_text(edited, "e.yaml").story.scenes[2].narration == "kept trailing line\n\n"


def test_an_existing_value_is_replaced_in_place() -> None:
    text = ODD.replace("  duration_seconds: 8\n", "  duration_seconds: 8\n  keyframe_image: mine/first.png  # mine\n")
    edited = set_field(text, ("scenes", 0, "keyframe_image"), "approved/keyframe_scene_1.jpg")
    assert _changed_lines(text, edited) == [
        (
            "replace",
            ["  keyframe_image: mine/first.png  # mine\n"],
            ["  keyframe_image: approved/keyframe_scene_1.jpg  # mine\n"],
        )
    ]
    removed = set_field(text, ("scenes", 0, "keyframe_image"), None)
    assert removed == ODD  # the whole line, its comment included


def test_a_pin_first_in_its_list_item_is_removed_without_breaking_the_item() -> None:
    text = ODD.replace("- scene_id: 1   # no indent", "- keyframe_image: k.png\n  scene_id: 1   # no indent")
    removed = set_field(text, ("scenes", 0, "keyframe_image"), None)
    assert "- scene_id: 1   # no indent before the dash\n" in removed
    assert load_story_text(removed, "r.yaml").story.scenes[0].keyframe_image is None


def test_values_that_would_not_read_back_as_text_are_quoted() -> None:
    for value in ("approved/a b.png", "true", "1e3", "x: y.png", "#x.png", "approved/é.png"):
        edited = set_field(ODD, ("scenes", 1, "keyframe_image"), value)
        assert load_story_text(edited, "q.yaml").story.scenes[1].keyframe_image == value


def test_a_json_story_stays_json(tmp_path: Path) -> None:
    data = load_story_text(ODD, "o.yaml").data
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    before = path.read_text()
    assert set_pin_in_file(path, ("scenes", 1, "keyframe_image"), "approved/k.png")
    after = json.loads(path.read_text())
    assert after["scenes"][1]["keyframe_image"] == "approved/k.png"
    assert set_pin_in_file(path, ("scenes", 1, "keyframe_image"), None)
    assert path.read_text() == before
    assert not set_pin_in_file(path, ("scenes", 1, "keyframe_image"), None)  # nothing to remove


def test_unsafe_documents_are_refused() -> None:
    anchored = ODD.replace("- scene_id: 1   # no indent", "- &first\n  scene_id: 1   # no indent")
    with pytest.raises(PinEditError, match="anchor"):
        set_field(anchored, ("scenes", 0, "keyframe_image"), "k.png")
    with pytest.raises(PinEditError, match="not in the file"):
        set_field(ODD, ("scenes", 7, "keyframe_image"), "k.png")


def test_file_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "story.yaml"
    path.write_text(ODD)
    path.chmod(0o640)
    set_pin_in_file(path, ("scenes", 0, "clip_video"), "approved/c.mp4")
    assert path.stat().st_mode & 0o777 == 0o640


def _flow_dump(data: dict) -> str:
    """The same story with every scene on one flow line (json is valid flow YAML)."""
    head = {k: v for k, v in data.items() if k != "scenes"}
    return dump(head) + "scenes:\n" + "".join(f"  - {json.dumps(s, ensure_ascii=False)}\n" for s in data["scenes"])


@settings(max_examples=60, deadline=None)
@given(data=story_dicts(), flow=st.booleans(), pick=st.data())
def test_generated_stories_edit_one_line_and_round_trip(data: dict, flow: bool, pick) -> None:
    text = _flow_dump(data) if flow else dump(data)
    section, field = pick.draw(st.sampled_from(PIN_FIELDS))
    index = pick.draw(st.integers(0, len(data[section]) - 1))
    _check_set_and_remove(text, section, index, field, "approved/pin.png")
