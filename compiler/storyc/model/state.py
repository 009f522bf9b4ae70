"""The build state (state.json) as pydantic models. No I/O here.

The step records are the only truth: one `StepRecord` per step of the graph, with its
cache key, outputs and every judged attempt. The seed's `PipelineState` view (characters,
keyframes, videos, final video) is derived from them by `seed_view` when state.json is
written, for readers of the seed's format; nothing reads it back.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from storyc.model.story_plan import RecordedPlan

# Bump when the shape of state.json changes: a state of another version is not read back.
STATE_VERSION = 2

StepKind = Literal["character", "location", "keyframe", "video", "speech", "assemble", "script"]
StepStatus = Literal["done", "failed", "pending", "skipped"]


class SpokenLineRecord(BaseModel):
    """One line a speech step placed in its scene: its words, voice, and when it plays."""

    kind: Literal["narration", "dialogue"]
    speaker: str | None = None  # None for narration
    text: str
    voice: str | None = None  # the xAI voice id (None: a character without one)
    local_voice: str | None = None  # the offline backend's voice (espeak-ng voice and settings)
    source: Literal["local", "tts", "clip"]  # who makes its sound: offline speech, text-to-speech, the clip
    duration_s: float
    estimated: bool = False  # the length is an estimate from the words (the clip speaks it)
    start_s: float  # from the scene's first frame
    end_s: float
    audio: str | None = None  # the rendered line (out-relative), None when the clip speaks it


class StepRecord(BaseModel):
    """One step of the build graph as it stands after this build."""

    id: str  # "character:Ember", "keyframe:3", "video:3", "speech:3", "assemble", "script"
    kind: StepKind
    key: str  # content-addressed cache key (sha256 hex)
    status: StepStatus = "pending"
    cached: bool = False  # served from the cache in this build
    api_calls: int = 0  # paid calls made for it in this build
    attempts: int = 0  # generations (sheets / keyframes / clips) it took
    edit_passes: int = 0  # keyframe fix edits, or video corrections
    score: float | None = None  # the kept output's score (None: not judged, e.g. a pinned keyframe)
    wall_s: float = 0.0
    cost_usd: float = 0.0
    outputs: dict[str, str] = Field(default_factory=dict)  # role → path relative to the output folder
    sha256: dict[str, str] = Field(default_factory=dict)  # role → content hash
    urls: dict[str, str] = Field(default_factory=dict)  # role → the provider's (temporary) URL, when it gave one
    duration_s: float | None = None  # a clip's measured length (video steps)
    prompts: dict[str, str] = Field(default_factory=dict)  # role → rendered prompt sent
    # every judged attempt, in order: its file (relative to the output folder) → its score;
    # the storyboard shows each attempt with its score, not only the one kept
    attempt_scores: dict[str, float] = Field(default_factory=dict)
    lines: list[SpokenLineRecord] = Field(default_factory=list)  # a speech step's lines, in order
    error: str | None = None


class BuildState(BaseModel):
    """state.json: rewritten atomically after every step."""

    state_version: int = STATE_VERSION
    storyc_version: str = ""
    backend: str = ""
    draft: bool = False  # storyc build --draft
    story_path: str = ""
    story_sha256: str = ""
    plan: RecordedPlan
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    # video jobs started but not yet downloaded: job key → provider request id
    jobs: dict[str, str] = Field(default_factory=dict)


# ─── the seed's PipelineState, derived from the step records ────────────────


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
    plan: RecordedPlan
    characters: list[CharacterAsset] = []
    keyframes: list[KeyframeAsset] = []
    videos: list[VideoAsset] = []
    final_video_path: str | None = None


def seed_view(state: BuildState) -> PipelineState:
    """The seed's PipelineState of a build: an asset per finished step, in story order.
    A keyframe's `video_prompt` is the one its video step sent ("" before that step ran);
    a pinned keyframe, used as is, scores 1.0."""
    done = {sid: r for sid, r in state.steps.items() if r.status == "done"}
    view = PipelineState(plan=state.plan)
    for c in state.plan.characters:
        if (r := done.get(f"character:{c.name}")) is not None:
            view.characters.append(
                CharacterAsset(
                    name=c.name,
                    portrait_url=r.urls.get("sheet", r.outputs["sheet"]),
                    portrait_path=r.outputs["sheet"],
                    visual_description=c.visual_description,
                    consistency_score=r.score or 0.0,
                    generation_attempts=r.attempts,
                )
            )
    for s in state.plan.scenes:
        video = done.get(f"video:{s.scene_id}")
        if (r := done.get(f"keyframe:{s.scene_id}")) is not None:
            sent = state.steps.get(f"video:{s.scene_id}")
            view.keyframes.append(
                KeyframeAsset(
                    scene_id=s.scene_id,
                    keyframe_url=r.urls.get("keyframe", r.outputs["keyframe"]),
                    keyframe_path=r.outputs["keyframe"],
                    consistency_score=1.0 if r.score is None else r.score,
                    generation_attempts=r.attempts,
                    edit_passes=r.edit_passes,
                    video_prompt=sent.prompts.get("video", "") if sent else "",
                )
            )
        if video is not None:
            view.videos.append(
                VideoAsset(
                    scene_id=s.scene_id,
                    video_url=video.urls.get("video", video.outputs["video"]),
                    video_path=video.outputs["video"],
                    duration=video.duration_s if video.duration_s is not None else float(s.duration_seconds),
                    first_frame_path=video.outputs["first_frame"],
                    last_frame_path=video.outputs["last_frame"],
                    consistency_score=video.score or 0.0,
                    correction_passes=video.edit_passes,
                )
            )
    if (assemble := done.get("assemble")) is not None:
        view.final_video_path = assemble.outputs.get("final_video")
    return view
