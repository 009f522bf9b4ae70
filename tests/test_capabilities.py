"""The one table of models (storyc.model.capabilities), the clip plan it drives
(storyc.model.clips), the budgets of the slot allocator with locations and reference
clips, and what the dry run prices. Pure: no backend, no media."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storyc.model import capabilities as caps
from storyc.model import prices
from storyc.model.clips import clip_plan, split_seconds
from storyc.model.story import VOICE_VIDEO_MODELS, Story
from storyc.prompts.slots import Slot, allocate_slots

pytestmark = pytest.mark.unit

WORDS = " ".join(["word"] * 80)
ONE_FIVE = "grok-imagine-video-1.5"


def make_story(scenes: list[dict], **top) -> Story:
    base = {
        "description": "Something happens.",
        "setting": "a quiet harbour at dawn",
        "camera": "wide shot, static",
        "mood": "soft light",
        "action": "they wave",
        "duration_seconds": 6,
        "characters_present": ["Ada"],
    }
    return Story.model_validate(
        {
            "title": "T",
            "style": "flat vector animation with bold outlines and soft pastel shading everywhere",
            "color_palette": "teal, cream",
            "characters": [
                {"name": n, "role": "r", "visual_description": f"{n} {WORDS}", "personality_cues": []}
                for n in ("Ada", "Bo", "Cy", "Di", "Ed", "Fi", "Gus", "Hal")
            ],
            "locations": [{"name": "Harbour", "visual_description": "a stone harbour"}],
            "scenes": [{"scene_id": i + 1, "title": f"S{i + 1}", **base, **spec} for i, spec in enumerate(scenes)],
            **top,
        }
    )


# ─── the table ───────────────────────────────────────────────────────────────


def test_the_table_holds_every_model_the_issue_names():
    for name in ("grok-imagine-image", "grok-imagine-image-2.0", "grok-imagine-video", ONE_FIVE):
        assert caps.known(name)
    assert caps.canonical("grok-imagine-video-1.5-preview") == ONE_FIVE
    one_five, video = caps.info_of(ONE_FIVE, "video"), caps.info_of("grok-imagine-video", "video")
    assert one_five.offers("1080p") and not video.offers("1080p")
    assert one_five.can(caps.SEAMLESS) and not video.can(caps.SEAMLESS)
    assert one_five.can(caps.IMAGE_WITH_REFERENCES) and not video.can(caps.IMAGE_WITH_REFERENCES)
    assert video.max_reference_images == 7 and video.reference_max_s == 10 and video.extension_s == (2, 10)
    assert caps.info_of("grok-imagine-image-2.0", "image").can(caps.IMAGE_QUALITY)
    assert caps.info_of("grok-imagine-image", "image").max_candidates == 10


def test_prices_and_voices_read_the_one_table():
    assert {name: row.price for name, row in caps.MODELS.items()} == prices.MODELS
    assert prices.price_of("grok-imagine-video-1.5-preview", "video") is caps.MODELS[ONE_FIVE].price
    assert {ONE_FIVE} == VOICE_VIDEO_MODELS


def test_an_unknown_model_is_taken_as_its_kinds_default():
    assert caps.info_of("my-video-model", "video") is caps.MODELS["grok-imagine-video"]
    assert caps.info_of("grok-imagine-video", "image") is caps.MODELS["grok-imagine-image"]  # wrong kind
    assert caps.models_with("video", caps.SEAMLESS) == [ONE_FIVE]
    assert caps.models_with("video", resolution="1080p") == [ONE_FIVE]


def test_a_mode_caps_the_resolution():
    assert caps.lower_resolution("1080p", ("480p", "720p")) == "720p"
    assert caps.lower_resolution("480p", ("480p", "720p")) == "480p"
    assert caps.lower_resolution("720p", ("480p", "720p", "1080p")) == "720p"


# ─── the clip plan ───────────────────────────────────────────────────────────


@settings(max_examples=200, deadline=None)
@given(
    duration=st.integers(3, 60),
    mode=st.sampled_from(["image", "reference"]),
    pinned=st.booleans(),
    model=st.sampled_from(["grok-imagine-video", ONE_FIVE]),
)
def test_every_clip_plan_keeps_the_documented_limits(duration, mode, pinned, model):
    video = caps.info_of(model, "video")
    lengths = split_seconds(duration, video, mode, pinned)
    assert sum(lengths) == duration and all(n >= 1 for n in lengths)
    story = make_story(
        [{"duration_seconds": duration, "video_mode": mode}]
        + ([{"chain_source": "seamless"}] if pinned and mode == "image" else []),
        models={"video": model},
    )
    plan = clip_plan(story, 0)
    assert plan.seconds == duration
    for segment in plan.segments:
        top = video.reference_max_s if segment.mode == "reference" else video.duration_s[1]
        assert 1 <= segment.base_s <= top
        length = segment.base_s
        for seconds in segment.extensions:
            assert video.extension_input_s[0] <= length <= video.extension_input_s[1]  # what it continues
            assert video.extension_s[0] <= seconds <= video.extension_s[1]
            length += seconds
        assert segment.mode == (mode if segment.number == 1 else "image")
    if plan.end_on is not None:
        assert not plan.segments[-1].extensions  # an extension cannot pin its last frame
    if plan.extensions or plan.mode == "reference":
        assert plan.resolution == "720p"


def test_a_scene_up_to_15_s_is_one_generation_as_in_the_seed():
    plan = clip_plan(make_story([{"duration_seconds": 15}]), 0)
    assert [(s.base_s, s.extensions) for s in plan.segments] == [(15, ())] and not plan.long


def test_long_scenes_extend_then_cut_into_segments():
    story = make_story([{"duration_seconds": 20}, {"duration_seconds": 40}, {"duration_seconds": 60}])
    assert [(s.base_s, s.extensions) for s in clip_plan(story, 0).segments] == [(15, (5,))]
    assert [(s.base_s, s.extensions) for s in clip_plan(story, 1).segments] == [(15, (5,)), (15, (5,))]
    assert len(clip_plan(story, 2).segments) == 3


def test_a_seamless_parent_ends_on_the_childs_keyframe():
    story = make_story([{}, {"chain_source": "seamless"}, {"chain_from": 1, "chain_source": "keyframe"}])
    assert clip_plan(story, 0).end_on == 2
    assert clip_plan(story, 1).end_on is None and clip_plan(story, 2).end_on is None


def test_sheets_go_beside_the_first_frame_only_where_the_model_takes_them():
    on_one_five = make_story([{}], models={"video": ONE_FIVE})
    assert clip_plan(on_one_five, 0).sheet_references
    assert not clip_plan(make_story([{}]), 0).sheet_references
    off = make_story([{}], models={"video": ONE_FIVE}, quality={"video_reference_images": False})
    assert not clip_plan(off, 0).sheet_references


# ─── the slot allocator: locations and reference clips ──────────────────────


def plate() -> Slot:
    return Slot(kind="location", name="Harbour")


@pytest.mark.parametrize(
    ("present", "chained", "expected"),
    [
        (["Ada"], True, ["Ada", "plate", "chain"]),  # one character: the plate fits
        (["Ada", "Bo"], True, ["Ada", "Bo", "chain"]),  # no slot left: text only
        (["Ada", "Bo"], False, ["Ada", "Bo", "plate"]),
        (["Ada", "Bo", "Cy"], False, ["Ada", "Bo", "Cy"]),  # characters first
        ([], True, ["plate", "chain"]),
    ],
)
def test_the_plate_takes_a_keyframe_slot_left_over(present, chained, expected):
    scenes = [{}, {"characters_present": present, "location": "Harbour", **({} if chained else {"chain_from": "none"})}]
    plan = allocate_slots(make_story(scenes), 1)
    names = ["chain" if s.kind == "chain" else "plate" if s.kind == "location" else s.name for s in plan.slots]
    assert names == expected
    assert names[-1] == "chain" or not chained  # the chain frame stays last


def test_a_reference_clip_takes_the_sheets_then_the_plate_up_to_7():
    few = make_story([{"characters_present": ["Ada", "Bo"], "location": "Harbour", "video_mode": "reference"}])
    plan = allocate_slots(few, 0)
    assert plan.video_references == (Slot("character", "Ada"), Slot("character", "Bo"), plate())
    crowd = ["Ada", "Bo", "Cy", "Di", "Ed", "Fi", "Gus", "Hal"]
    many = make_story([{"characters_present": crowd, "location": "Harbour", "video_mode": "reference"}])
    plan = allocate_slots(many, 0)
    assert [s.name for s in plan.video_references] == crowd[:7] and plan.video_text_only == ("Hal",)


def test_a_seamless_chain_sends_the_parents_keyframe():
    story = make_story([{}, {"chain_source": "seamless"}], models={"video": ONE_FIVE})
    assert allocate_slots(story, 1).chain == Slot("chain", scene_id=1, source="seamless")


# ─── what the dry run prices ─────────────────────────────────────────────────


def test_the_dry_run_prices_long_scenes_and_candidates(tmp_path):
    from storyc.graph.builder import build_graph
    from storyc.load.loader import load_story
    from storyc.prompts.promptset import PromptSet

    path = tmp_path / "story.yaml"
    path.write_text(
        "title: T\nstyle: flat vector animation with bold outlines and soft pastel shading everywhere\n"
        "color_palette: teal\nquality: {keyframe_candidates: 4, max_video_corrections: 0}\n"
        "characters:\n  - {name: Ada, role: r, visual_description: d, personality_cues: []}\n"
        "scenes:\n  - {scene_id: 1, title: t, description: d, characters_present: [Ada], setting: s, camera: c,"
        " mood: m, action: a, duration_seconds: 40}\n"
    )
    loaded = load_story(path)
    graph = build_graph(loaded, PromptSet(loaded.story, story_path=loaded.path))
    video, keyframe = graph.steps["video:1"], graph.steps["keyframe:1"]
    assert video.calls_min == {"video": 4, "vision": 2}  # 2 generations, 2 extensions; each segment checked
    assert video.cost_min == pytest.approx(
        prices.video_cost(40, "720p", "grok-imagine-video") + 2 * prices.chat_cost(None, n_images=2), abs=1e-6
    )
    assert keyframe.calls_min == {"image": 1, "vision": 4}  # one n=4 request, every candidate judged
    assert keyframe.cost_min == pytest.approx(
        prices.image_cost(1, "grok-imagine-image", n=4) + 4 * prices.chat_cost(None, n_images=2), abs=1e-6
    )
