"""The story format as pydantic models. No I/O here.

Field names, defaults and bounds are the seed design's StoryPlan
(../shared/design/pipeline.md, section 3); storyc's extensions are optional and
absent means the seed's behaviour.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from storyc.model.capabilities import VOICES, models_with

ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3")
TRANSITIONS = ("cut", "crossfade", "match-cut")
RESOLUTIONS = ("720p", "480p", "1080p")
CHAIN_SOURCES = ("last_frame", "keyframe", "seamless")
VIDEO_MODES = ("image", "reference")

AspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3"]
Transition = Literal["cut", "crossfade", "match-cut"]
Resolution = Literal["720p", "480p", "1080p"]
ChainSource = Literal["last_frame", "keyframe", "seamless"]
VideoMode = Literal["image", "reference"]

MIN_DURATION_S = 3
MAX_DURATION_S = 15  # the seed's bound: one generation, and the planning schema's limit
MAX_SCENE_S = 60  # storyc: longer scenes are extended or rendered as segments
MAX_CANDIDATES = 10  # images per request (xAI's `n`)
# The video-edit endpoint takes inputs of at most 8.7 s (xai-facts.md).
VIDEO_EDIT_MAX_S = 8.7
MAX_REFERENCE_IMAGES = 3
NO_CHAIN: Final = "none"

# Sound (issue 12). The xAI voice ids; every voice field takes one of them.
VOICE_IDS = ("eve", "ara", "leo", "rex", "sal")
DEFAULT_NARRATION_VOICE = "eve"
# The video models that speak a character's lines in their own voices (from the capability table).
VOICE_VIDEO_MODELS = frozenset(models_with("video", VOICES))
SUBTITLE_MODES = ("soft", "burned", "none")
SubtitleMode = Literal["soft", "burned", "none"]


class _Strict(BaseModel):
    # strict: "8" is not a duration and 3 is not a title; unknown keys are errors.
    model_config = ConfigDict(extra="forbid", strict=True)


# ─── the story file ──────────────────────────────────────────────────────────


class Character(_Strict):
    """A character. visual_description is the sole source of truth for its appearance:
    used verbatim in every image prompt that shows it."""

    name: str = Field(
        description="Short unique name, e.g. 'Luna'. Used in file names: letters, digits, space, '-', '_'. "
        "Names the character in every prompt that shows it and on the offline animatic's name tags."
    )
    role: str = Field(description="protagonist / antagonist / supporting. For you and the planner: no prompt reads it.")
    visual_description: str = Field(
        description="Exhaustive visual description, minimum 80 words. Copied whole and verbatim into every image "
        "prompt that shows the character (its sheet, every keyframe) and into the vision checks, so every "
        "distinguishing mark counts; never into a video prompt (the keyframe carries the appearance)."
    )
    personality_cues: list[str] = Field(
        description="3-5 adjectives or phrases for expression guidance: the keyframe prompt says the character "
        "'looks <cues>'."
    )
    reference_image: str | None = Field(
        default=None,
        description="storyc: a user's photo or drawing (path relative to the story file), the base of the character sheet.",
    )
    sheet_image: str | None = Field(
        default=None,
        description="storyc: pin the character sheet (path relative to the story file), used as is with no call; "
        "`storyc approve STORY character:NAME` writes it.",
    )
    voice: str | None = Field(
        default=None,
        description="storyc: the voice this character speaks its dialogue in, an xAI voice id: eve, ara, leo, rex or sal. "
        "Feeds the clip's voice reference on grok-imagine-video-1.5 and picks the offline backend's local voice; "
        "without it the offline voice follows from the name.",
    )


class DialogueLine(_Strict):
    """One spoken line of a scene."""

    speaker: str = Field(description="Who says the line: a name from the scene's characters_present.")
    line: str = Field(
        description="The words spoken. Feeds the video prompt (xai), the offline speech, the subtitles "
        "(prefixed with the speaker's name) and the scene's timing."
    )


class Scene(_Strict):
    scene_id: int = Field(description="Unique scene number: how messages, targets (scene:2) and files name the scene.")
    title: str = Field(
        description="Brief scene title, 3-6 words: the storyboard, the vision checks and the offline animatic's "
        "caption; no image or video prompt reads it."
    )
    description: str = Field(
        description="What happens in 2-3 sentences: the keyframe prompt (the moment to compose) and the video "
        "prompt (what happens over the clip)."
    )
    characters_present: list[str] = Field(
        description="Character names (must match Character.name exactly): who the keyframe shows (their sheets are "
        "its reference images), the vision checks and the video prompt's names."
    )
    setting: str = Field(
        description="Physical environment, time of day, weather: the keyframe prompt and its check "
        "(offline: the background)."
    )
    camera: str = Field(
        description="Shot type + movement: 'medium shot, slow dolly forward'. The keyframe prompt (framing) and "
        "the video prompt (movement); offline: the shot size and the camera motion."
    )
    mood: str = Field(
        description="Lighting/atmosphere: 'warm golden hour, soft shadows'. The keyframe and video prompts "
        "(offline: the lighting)."
    )
    action: str = Field(
        description="Primary motion for video: 'fox leaps over a fallen log'. The video prompt, the keyframe "
        "prompt and its check; offline: the caption and the props it names."
    )
    duration_seconds: int = Field(
        ge=MIN_DURATION_S,
        le=MAX_SCENE_S,
        description="Video duration, 8 is a good default: the clip's length and price. storyc: up to 60; a scene "
        "longer than 15 s is rendered by video extension, or as segments chained by their last frames (the "
        "planning schema keeps 15).",
    )
    transition: Transition = Field(default="cut", description="cut / crossfade / match-cut")
    chain_from: int | Literal["none"] | None = Field(
        default=None,
        description="storyc: the scene whose frame anchors this one. Default: the previous scene; 'none' starts a fresh branch.",
    )
    chain_source: ChainSource = Field(
        default="last_frame",
        description="storyc: chain from the source scene's video last frame (default) or its keyframe; seamless: the "
        "source scene's clip ends exactly on this scene's keyframe (grok-imagine-video-1.5: last_frame_url).",
    )
    video_mode: VideoMode = Field(
        default="image",
        description="storyc: image animates the keyframe (the seed); reference renders the clip from the character "
        "sheets and the location plate as reference images (reference-to-video: up to 7 images, up to 10 s per "
        "generation, 720p at most).",
    )
    location: str | None = Field(
        default=None,
        description="storyc: the name of one of the story's locations: its plate is a reference image where the "
        "budget allows and its visual_description is used verbatim in the prompts.",
    )
    keyframe_image: str | None = Field(
        default=None,
        description="storyc: pin the scene's keyframe (path relative to the story file), used as is with no call: "
        "your own image, or the take `storyc approve STORY scene:ID` chose.",
    )
    clip_video: str | None = Field(
        default=None,
        description="storyc: pin the scene's clip (an MP4, path relative to the story file), used as is with no call; "
        "`storyc approve STORY clip:ID` writes it.",
    )
    dialogue: list[DialogueLine] = Field(
        default_factory=list,
        description="storyc: the lines spoken in this scene, in order. Each is voiced (by the video model on xai, "
        "locally offline), subtitled and placed within the scene after the narration, with short gaps.",
    )
    narration: str | None = Field(
        default=None,
        description="storyc: a narrator's words over this scene, spoken in audio.narration_voice before the dialogue "
        "(text-to-speech on xai, locally offline) and subtitled.",
    )


class Location(_Strict):
    """A place scenes happen in. visual_description is its frozen look: used verbatim in every
    prompt of a scene there; its background plate is generated once and vision-checked."""

    name: str = Field(description="Short unique name, e.g. 'Old Oak'. Used in file names, like a character's.")
    visual_description: str = Field(
        description="The place without any character: layout, landmarks, materials, light. Copied verbatim into "
        "the prompts of every scene set there."
    )
    reference_image: str | None = Field(
        default=None,
        description="A photo or drawing of the place (path relative to the story file), the base of its plate.",
    )
    plate_image: str | None = Field(
        default=None,
        description="Pin the background plate (path relative to the story file), used as is with no call; "
        "`storyc approve STORY location:NAME` writes it.",
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
    keyframe_candidates: int = Field(
        default=1,
        ge=1,
        le=MAX_CANDIDATES,
        description="storyc: keyframes composed per request (one request with n), every one judged, the best kept "
        "and fixed from.",
    )
    sheet_candidates: int = Field(
        default=1,
        ge=1,
        le=MAX_CANDIDATES,
        description="storyc: character sheets (and location plates) generated per request, every one judged, the "
        "best kept.",
    )
    turnaround: bool = Field(
        default=False,
        description="storyc: character sheets show front, side and back views in one image (still one reference slot).",
    )
    video_reference_images: bool | None = Field(
        default=None,
        description="storyc: in video_mode image, also send the scene's character sheets as reference images. "
        "Default (absent): true on a video model that takes references with a first frame "
        "(grok-imagine-video-1.5), false elsewhere.",
    )


# `storyc build --draft` (graph.builder): the final video's resolution and, on a paid backend,
# the clips' (with no video corrections: each clip is judged once and kept) and one take per
# picture (no best-of-N). Pictures are otherwise rendered as in a full build, so a story
# without best-of-N shares them with the full build, and approved takes carry over.
DRAFT_RESOLUTION: Resolution = "480p"
DRAFT_VIDEO_CORRECTIONS = 0
DRAFT_CANDIDATES = 1


class Audio(_Strict):
    """The soundtrack of the final video. Absent from a story without dialogue or narration:
    the clips' own sound, as before."""

    native: bool = Field(
        default=True,
        description="Keep the video model's own sound (xai: generate_audio); false renders silent clips.",
    )
    narration_voice: str = Field(
        default=DEFAULT_NARRATION_VOICE,
        description="The voice of every scene's narration, an xAI voice id: eve, ara, leo, rex or sal.",
    )
    music: str | None = Field(
        default=None,
        description="A music file (path relative to the story file) under the whole video, looped or trimmed to "
        "its length and ducked under speech.",
    )
    music_volume_db: float = Field(
        default=-18.0, ge=-60.0, le=0.0, description="Music level in dB; under speech it ducks further."
    )
    subtitles: SubtitleMode = Field(
        default="soft",
        description="soft: a subtitle track in final_video.mp4; burned: drawn into the picture; none. "
        "final_video.srt and final_video.vtt are written beside the video either way unless none.",
    )
    loudness_lufs: float = Field(
        default=-16.0, ge=-70.0, le=-5.0, description="Integrated loudness of the final mix (EBU R128, LUFS)."
    )


class Story(_Strict):
    """A storyboard: the seed's StoryPlan plus storyc's optional extensions."""

    model_config = ConfigDict(title="storyc story", extra="forbid", strict=True)

    version: Literal[1] = Field(default=1, description="storyc: story format version")
    title: str = Field(description="The story's title: the storyboard and script.md; no prompt reads it.")
    style: str = Field(description="Visual style for ALL images/videos. This prefix starts every prompt.")
    aspect_ratio: AspectRatio = Field(default="16:9", description=" / ".join(ASPECT_RATIOS))
    resolution: Resolution = Field(
        default="720p", description="storyc: 720p or 480p; 1080p on a video model that offers it"
    )
    color_palette: str = Field(
        description="Dominant colors: 'deep forest greens, amber, moonlight silver'. The keyframe prompt "
        "(offline: the colours painted)."
    )
    characters: list[Character]
    scenes: list[Scene]
    locations: list[Location] = Field(
        default_factory=list,
        description="storyc: the places scenes happen in (a scene names one in `location`).",
    )
    models: Models = Field(default_factory=Models, description="storyc: model names")
    quality: Quality = Field(default_factory=Quality, description="storyc: consistency loop settings")
    audio: Audio = Field(
        default_factory=Audio,
        description="storyc: the soundtrack: native clip sound, narration voice, music, subtitles and loudness.",
    )

    # ── derived views used by lint, prompts and plan ──
    def has_sound(self) -> bool:
        """True when the final video gets a sound pass: some scene speaks, or `audio:` is written."""
        return "audio" in self.model_fields_set or any(s.dialogue or s.narration for s in self.scenes)

    def character(self, name: str) -> Character | None:
        return next((c for c in self.characters if c.name == name), None)

    def location(self, name: str | None) -> Location | None:
        return next((loc for loc in self.locations if loc.name == name), None) if name else None

    def scene_index(self, scene_id: int) -> int | None:
        # Built once: chain lookups run per scene, and a scan each time is quadratic.
        # Keyed by the scenes list object, so a model_copy with new scenes rebuilds it.
        stamp = (id(self.scenes), len(self.scenes))
        cached = self.__dict__.get("_scene_index_cache")
        if cached is None or cached[0] != stamp:
            index: dict[int, int] = {}
            for position, s in enumerate(self.scenes):
                index.setdefault(s.scene_id, position)
            cached = (stamp, index)
            self.__dict__["_scene_index_cache"] = cached
        i = cached[1].get(scene_id)
        if i is not None and self.scenes[i].scene_id != scene_id:  # edited in place: rebuild
            self.__dict__.pop("_scene_index_cache")
            return self.scene_index(scene_id)
        return i

    def chain_parent_index(self, index: int) -> int | None:
        """Index of the scene whose frame anchors scenes[index], or None when it starts a
        branch: `chain_from: none`, the first scene, or a chain_from naming no earlier scene."""
        scene = self.scenes[index]
        if scene.chain_from == NO_CHAIN:
            return None
        if scene.chain_from is None:
            return index - 1 if index > 0 else None
        parent = self.scene_index(scene.chain_from)
        return parent if parent is not None and parent < index else None

    def chain_parent(self, index: int) -> Scene | None:
        """The scene whose frame anchors scenes[index], or None when it starts a branch."""
        parent = self.chain_parent_index(index)
        return None if parent is None else self.scenes[parent]

    def seamless_child_index(self, index: int) -> int | None:
        """Index of the scene whose keyframe scenes[index]'s clip must end on: the first later
        scene with `chain_source: seamless` anchored on it (lint refuses a second one)."""
        stamp = (id(self.scenes), len(self.scenes))
        cached = self.__dict__.get("_seamless_cache")
        if cached is None or cached[0] != stamp:
            children: dict[int, int] = {}
            for i, s in enumerate(self.scenes):
                if s.chain_source == "seamless":
                    parent = self.chain_parent_index(i)
                    if parent is not None:
                        children.setdefault(parent, i)
            cached = (stamp, children)
            self.__dict__["_seamless_cache"] = cached
        child = cached[1].get(index)
        if child is not None and (
            self.scenes[child].chain_source != "seamless" or self.chain_parent_index(child) != index
        ):  # edited in place: rebuild
            self.__dict__.pop("_seamless_cache")
            return self.seamless_child_index(index)
        return child
