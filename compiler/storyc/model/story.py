"""The story format and the build state as pydantic models. No I/O here.

Field names, defaults and bounds are the seed design's StoryPlan
(../shared/design/pipeline.md, section 3); storyc's extensions are optional and
absent means the seed's behaviour.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3")
TRANSITIONS = ("cut", "crossfade", "match-cut")
RESOLUTIONS = ("720p", "480p")

AspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3"]
Transition = Literal["cut", "crossfade", "match-cut"]
Resolution = Literal["720p", "480p"]
ChainSource = Literal["last_frame", "keyframe"]

MIN_DURATION_S = 3
MAX_DURATION_S = 15
# The video-edit endpoint takes inputs of at most 8.7 s (xai-facts.md).
VIDEO_EDIT_MAX_S = 8.7
MAX_REFERENCE_IMAGES = 3
NO_CHAIN = "none"


class _Strict(BaseModel):
    # strict: "8" is not a duration and 3 is not a title; unknown keys are errors.
    model_config = ConfigDict(extra="forbid", strict=True)


# ─── the story file ──────────────────────────────────────────────────────────


class Character(_Strict):
    """A character. visual_description is the sole source of truth for its appearance:
    used verbatim in every image prompt that shows it."""

    name: str = Field(description="Short unique name, e.g. 'Luna'. Used in file names: letters, digits, space, '-', '_'.")
    role: str = Field(description="protagonist / antagonist / supporting")
    visual_description: str = Field(
        description="Exhaustive visual description, minimum 80 words; copied verbatim into every image prompt."
    )
    personality_cues: list[str] = Field(description="3-5 adjectives or phrases for expression guidance")
    reference_image: Optional[str] = Field(
        default=None,
        description="storyc: a user's photo or drawing (path relative to the story file), the base of the character sheet.",
    )


class Scene(_Strict):
    scene_id: int = Field(description="Unique scene number")
    title: str = Field(description="Brief scene title, 3-6 words")
    description: str = Field(description="What happens in 2-3 sentences")
    characters_present: list[str] = Field(description="Character names (must match Character.name exactly)")
    setting: str = Field(description="Physical environment, time of day, weather")
    camera: str = Field(description="Shot type + movement: 'medium shot, slow dolly forward'")
    mood: str = Field(description="Lighting/atmosphere: 'warm golden hour, soft shadows'")
    action: str = Field(description="Primary motion for video: 'fox leaps over a fallen log'")
    duration_seconds: int = Field(ge=MIN_DURATION_S, le=MAX_DURATION_S, description="Video duration, 8 is a good default")
    transition: Transition = Field(default="cut", description="cut / crossfade / match-cut")
    chain_from: Union[int, Literal["none"], None] = Field(
        default=None,
        description="storyc: the scene whose frame anchors this one. Default: the previous scene; 'none' starts a fresh branch.",
    )
    chain_source: ChainSource = Field(
        default="last_frame",
        description="storyc: chain from the source scene's video last frame (default) or its keyframe.",
    )
    keyframe_image: Optional[str] = Field(
        default=None, description="storyc: pin a user-supplied keyframe (path relative to the story file), used as is."
    )


class Models(_Strict):
    image: str = "grok-imagine-image"
    video: str = "grok-imagine-video"
    chat: str = "grok-4-1-fast-non-reasoning"
    vision: str = "grok-4-1-fast-reasoning"


class Quality(_Strict):
    consistency_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    max_character_attempts: int = Field(default=3, ge=1, le=10)
    max_keyframe_iterations: int = Field(default=3, ge=1, le=10)
    max_video_corrections: int = Field(default=2, ge=0, le=10)


class Story(_Strict):
    """A storyboard: the seed's StoryPlan plus storyc's optional extensions."""

    model_config = ConfigDict(title="storyc story", extra="forbid", strict=True)

    version: Literal[1] = Field(default=1, description="storyc: story format version")
    title: str
    style: str = Field(description="Visual style for ALL images/videos. This prefix starts every prompt.")
    aspect_ratio: AspectRatio = Field(default="16:9", description=" / ".join(ASPECT_RATIOS))
    resolution: Resolution = Field(default="720p", description="storyc: 720p or 480p")
    color_palette: str = Field(description="Dominant colors: 'deep forest greens, amber, moonlight silver'")
    characters: list[Character]
    scenes: list[Scene]
    models: Models = Field(default_factory=Models, description="storyc: model names")
    quality: Quality = Field(default_factory=Quality, description="storyc: consistency loop settings")

    # ── derived views used by lint, prompts and plan ──
    def character(self, name: str) -> Character | None:
        return next((c for c in self.characters if c.name == name), None)

    def scene_index(self, scene_id: int) -> int | None:
        # Built once: chain lookups run per scene, and a scan each time is quadratic.
        # Keyed by the scenes list object, so a model_copy with new scenes rebuilds it.
        stamp = (id(self.scenes), len(self.scenes))
        cached = self.__dict__.get("_scene_index_cache")
        if cached is None or cached[0] != stamp:
            index: dict[int, int] = {}
            for i, s in enumerate(self.scenes):
                index.setdefault(s.scene_id, i)
            cached = (stamp, index)
            self.__dict__["_scene_index_cache"] = cached
        i = cached[1].get(scene_id)
        if i is not None and self.scenes[i].scene_id != scene_id:  # edited in place: rebuild
            self.__dict__.pop("_scene_index_cache")
            return self.scene_index(scene_id)
        return i

    def chain_parent(self, index: int) -> Scene | None:
        """The scene whose frame anchors scenes[index], or None when it starts a branch."""
        scene = self.scenes[index]
        if scene.chain_from == NO_CHAIN:
            return None
        if scene.chain_from is None:
            return self.scenes[index - 1] if index > 0 else None
        parent = self.scene_index(scene.chain_from)
        return self.scenes[parent] if parent is not None and parent < index else None


# ─── the seed's planning contract (chat.parse target) ────────────────────────


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


# ─── vision checks and build state (seed section 3) ─────────────────────────


class ConsistencyScore(BaseModel):
    overall_score: float = Field(ge=0.0, le=1.0, description="0 = completely wrong, 1 = perfect match")
    per_character: dict[str, float] = Field(default_factory=dict, description="Score per character name")
    issues: list[str] = Field(default_factory=list, description="Specific problems: 'hair is brown, should be red'")
    fix_prompt: Optional[str] = Field(default=None, description="Surgical edit prompt to fix issues if any")


class CharacterAsset(BaseModel):
    name: str
    portrait_url: str
    portrait_path: str
    visual_description: str
    consistency_score: float
    generation_attempts: int


class KeyframeAsset(BaseModel):
    scene_id: int
    keyframe_url: str
    keyframe_path: str
    consistency_score: float
    generation_attempts: int
    edit_passes: int
    video_prompt: str


class VideoAsset(BaseModel):
    scene_id: int
    video_url: str
    video_path: str
    duration: float
    first_frame_path: str
    last_frame_path: str
    consistency_score: float
    correction_passes: int


class PipelineState(BaseModel):
    plan: StoryPlan
    characters: list[CharacterAsset] = []
    keyframes: list[KeyframeAsset] = []
    videos: list[VideoAsset] = []
    final_video_path: Optional[str] = None


# ─── storyc's build state: the seed's PipelineState plus cache keys ─────────

StepKind = Literal["character", "keyframe", "video", "assemble", "script"]
StepStatus = Literal["done", "failed", "pending", "skipped"]


class StepRecord(BaseModel):
    """One step of the build graph as it stands after this build."""

    id: str  # "character:Ember", "keyframe:3", "video:3", "assemble", "script"
    kind: StepKind
    key: str  # content-addressed cache key (sha256 hex)
    status: StepStatus = "pending"
    cached: bool = False  # served from the cache in this build
    api_calls: int = 0  # paid calls made for it in this build
    attempts: int = 0  # generations (sheets / keyframes / clips) it took
    edit_passes: int = 0
    score: Optional[float] = None
    wall_s: float = 0.0
    cost_usd: float = 0.0
    outputs: dict[str, str] = Field(default_factory=dict)  # role → path relative to the output folder
    sha256: dict[str, str] = Field(default_factory=dict)  # role → content hash
    prompts: dict[str, str] = Field(default_factory=dict)  # role → rendered prompt sent
    # every judged attempt, in order: its file (relative to the output folder) → its score;
    # the storyboard shows each attempt with its score, not only the one kept
    attempt_scores: dict[str, float] = Field(default_factory=dict)
    error: Optional[str] = None


class BuildState(PipelineState):
    """state.json: rewritten atomically after every step."""

    storyc_version: str = ""
    backend: str = ""
    story_path: str = ""
    story_sha256: str = ""
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    # video jobs started but not yet downloaded: job key → provider request id
    jobs: dict[str, str] = Field(default_factory=dict)


def story_to_plan(story: Story) -> StoryPlan:
    """The seed's StoryPlan view of a story (drops storyc's extensions)."""
    return StoryPlan(
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
            PlanScene(
                **s.model_dump(
                    include={
                        "scene_id", "title", "description", "characters_present", "setting",
                        "camera", "mood", "action", "duration_seconds", "transition",
                    }
                )
            )
            for s in story.scenes
        ],
    )
