"""The seed's StoryPlan: the planning contract (the structured output `storyc plan` asks
for) and the view of a Story a planner would have written. No I/O here."""

from __future__ import annotations

from pydantic import BaseModel, Field

from storyc.model.story import MAX_DURATION_S, MAX_SCENE_S, MIN_DURATION_S, Story


class PlanCharacter(BaseModel):
    name: str
    role: str
    visual_description: str
    personality_cues: list[str]


class PlanScene(BaseModel):
    scene_id: int
    title: str
    description: str
    characters_present: list[str]
    setting: str
    camera: str
    mood: str
    action: str
    duration_seconds: int = Field(ge=MIN_DURATION_S, le=MAX_DURATION_S)
    transition: str = "cut"


class StoryPlan(BaseModel):
    """Exactly the seed's StoryPlan, the structured output of the planning call."""

    title: str
    style: str
    aspect_ratio: str = "16:9"
    color_palette: str
    characters: list[PlanCharacter]
    scenes: list[PlanScene]


class RecordedScene(PlanScene):
    """A scene as the build state records it: the seed's fields, with storyc's longer scenes
    (the planning schema above keeps the seed's 15 s bound)."""

    duration_seconds: int = Field(ge=MIN_DURATION_S, le=MAX_SCENE_S)


class RecordedPlan(StoryPlan):
    """The seed's StoryPlan view of a story, as state.json records it."""

    # a narrower item type than the seed's list[PlanScene] (lists are invariant; pydantic validates as declared)
    scenes: list[RecordedScene]  # type: ignore[assignment]


def story_to_plan(story: Story) -> RecordedPlan:
    """The seed's StoryPlan view of a story (drops storyc's extensions)."""
    return RecordedPlan(
        title=story.title,
        style=story.style,
        aspect_ratio=story.aspect_ratio,
        color_palette=story.color_palette,
        characters=[
            PlanCharacter(
                name=c.name, role=c.role, visual_description=c.visual_description, personality_cues=c.personality_cues
            )
            for c in story.characters
        ],
        scenes=[
            RecordedScene(
                **s.model_dump(
                    include={
                        "scene_id",
                        "title",
                        "description",
                        "characters_present",
                        "setting",
                        "camera",
                        "mood",
                        "action",
                        "duration_seconds",
                        "transition",
                    }
                )
            )
            for s in story.scenes
        ],
    )
