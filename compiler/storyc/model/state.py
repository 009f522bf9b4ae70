"""The build state (state.json) as pydantic models: the seed's PipelineState plus a record
per step with its cache key. No I/O here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from storyc.model.story_plan import StoryPlan


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
    final_video_path: str | None = None


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
    score: float | None = None
    wall_s: float = 0.0
    cost_usd: float = 0.0
    outputs: dict[str, str] = Field(default_factory=dict)  # role → path relative to the output folder
    sha256: dict[str, str] = Field(default_factory=dict)  # role → content hash
    prompts: dict[str, str] = Field(default_factory=dict)  # role → rendered prompt sent
    # every judged attempt, in order: its file (relative to the output folder) → its score;
    # the storyboard shows each attempt with its score, not only the one kept
    attempt_scores: dict[str, float] = Field(default_factory=dict)
    error: str | None = None


class BuildState(PipelineState):
    """state.json: rewritten atomically after every step."""

    storyc_version: str = ""
    backend: str = ""
    story_path: str = ""
    story_sha256: str = ""
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    # video jobs started but not yet downloaded: job key → provider request id
    jobs: dict[str, str] = Field(default_factory=dict)
