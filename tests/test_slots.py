"""The 3-image budget (design section 6): one pure function, table-driven plus properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storyc.model.story import Story
from storyc.prompts.slots import Slot, SlotPlan, allocate_slots, judge_characters

pytestmark = pytest.mark.unit

NAMES = ["Ada", "Bo", "Cy", "Di", "Ed"]
WORDS = " ".join(["word"] * 80)


def make_story(scenes: list[dict], names: list[str] = NAMES) -> Story:
    base = {
        "description": "Something happens.",
        "setting": "a quiet park at noon",
        "camera": "wide shot, static",
        "mood": "soft daylight",
        "action": "they wave",
        "duration_seconds": 6,
        "characters_present": [],
    }
    return Story.model_validate(
        {
            "title": "T",
            "style": "flat vector animation with bold outlines and soft pastel shading everywhere",
            "color_palette": "pastel blue, cream",
            "characters": [
                {
                    "name": n,
                    "role": "supporting",
                    "visual_description": f"{n} is drawn as {WORDS}.",
                    "personality_cues": ["calm"],
                }
                for n in names
            ],
            "scenes": [{"scene_id": i + 1, "title": f"Scene {i + 1}", **base, **spec} for i, spec in enumerate(scenes)],
        }
    )


def char(name: str) -> Slot:
    return Slot(kind="character", name=name)


def chain(scene_id: int, source: str = "last_frame") -> Slot:
    return Slot(kind="chain", scene_id=scene_id, source=source)


# (previous scenes, the scene under test, expected slots, expected text-only)
CASES = [
    # the design's table
    pytest.param([], {"characters_present": ["Ada"]}, [char("Ada")], [], id="1 char, first scene: no chain"),
    pytest.param([{}], {"characters_present": ["Ada"]}, [char("Ada"), chain(1)], [], id="1 char + prev frame"),
    pytest.param(
        [{}], {"characters_present": ["Ada", "Bo"]}, [char("Ada"), char("Bo"), chain(1)], [], id="2 chars full coverage"
    ),
    pytest.param(
        [{}],
        {"characters_present": ["Ada", "Bo"], "chain_from": "none"},
        [char("Ada"), char("Bo")],
        [],
        id="2 chars, no chain",
    ),
    pytest.param(
        [{}],
        {"characters_present": ["Ada", "Bo", "Cy"]},
        [char("Ada"), char("Bo"), chain(1)],
        ["Cy"],
        id="3 chars chained: third is text-only",
    ),
    pytest.param(
        [{}],
        {"characters_present": ["Ada", "Bo", "Cy"], "chain_from": "none"},
        [char("Ada"), char("Bo"), char("Cy")],
        [],
        id="3 chars fresh: all three get a sheet",
    ),
    pytest.param(
        [],
        {"characters_present": ["Ada", "Bo", "Cy", "Di", "Ed"]},
        [char("Ada"), char("Bo"), char("Cy")],
        ["Di", "Ed"],
        id="5 chars fresh",
    ),
    # storyc's extensions
    pytest.param([{}], {"characters_present": []}, [chain(1)], [], id="no characters, chained"),
    pytest.param(
        [{}, {}],
        {"characters_present": ["Bo"], "chain_from": 1, "chain_source": "keyframe"},
        [char("Bo"), chain(1, "keyframe")],
        [],
        id="explicit chain_from with keyframe source",
    ),
    pytest.param(
        [{}],
        {"characters_present": ["Bo", "Ada", "Bo"]},
        [char("Bo"), char("Ada"), chain(1)],
        [],
        id="characters_present order, duplicates once",
    ),
    pytest.param(
        [{}],
        {"characters_present": ["Ghost", "Ada"]},
        [char("Ada"), chain(1)],
        [],
        id="unknown names skipped (lint error)",
    ),
    pytest.param(
        [{}],
        {"characters_present": ["Ada", "Bo", "Cy"], "keyframe_image": "pinned.png"},
        [],
        [],
        id="pinned keyframe needs no slots",
    ),
]


@pytest.mark.parametrize("before, scene, slots, text_only", CASES)
def test_budget_table(before, scene, slots, text_only):
    story = make_story([*before, scene])
    assert allocate_slots(story, len(before)) == SlotPlan(slots=tuple(slots), text_only=tuple(text_only))


def test_chain_from_later_scene_is_no_chain():
    # Lint reports it; the allocator must not invent a slot for an unusable source.
    story = make_story([{"chain_from": 2}, {}])
    assert allocate_slots(story, 0).chain is None


def test_judge_sees_every_present_character_even_text_only():
    story = make_story([{}, {"characters_present": ["Ada", "Bo", "Cy", "Ada"]}])
    assert allocate_slots(story, 1).text_only == ("Cy",)
    assert judge_characters(story, 1) == ("Ada", "Bo", "Cy")


scene_specs = st.fixed_dictionaries(
    {"characters_present": st.lists(st.sampled_from([*NAMES, "Ghost"]), max_size=7)},
    optional={
        "chain_from": st.one_of(st.just("none"), st.integers(1, 8)),
        "chain_source": st.sampled_from(["last_frame", "keyframe"]),
        "keyframe_image": st.just("k.png"),
    },
)


@settings(max_examples=150, deadline=None)
@given(st.lists(scene_specs, min_size=1, max_size=8), st.data())
def test_budget_properties(specs, data):
    story = make_story(specs)
    index = data.draw(st.integers(0, len(specs) - 1))
    scene = story.scenes[index]
    plan = allocate_slots(story, index)
    assert len(plan.slots) <= 3
    if scene.keyframe_image:
        assert plan == SlotPlan((), ())
        return
    present = list(dict.fromkeys(n for n in scene.characters_present if n in NAMES))
    names = [s.name for s in plan.slots if s.kind == "character"]
    # characters first, in order, then the rest text-only: together exactly the present ones
    assert names + list(plan.text_only) == present
    kinds = [s.kind for s in plan.slots]
    assert kinds == sorted(kinds, key=lambda k: k == "chain"), "the chain frame comes last"
    parent = story.chain_parent(index)
    if parent is None:
        assert plan.chain is None and len(names) == min(3, len(present))
    else:
        assert plan.chain == Slot(kind="chain", scene_id=parent.scene_id, source=scene.chain_source)
        assert len(names) == min(2, len(present))
    # pure: same answer twice
    assert allocate_slots(story, index) == plan
