"""Every prompt storyc sends, rendered from the Jinja templates in `prompts/<name>.j2`.

`PromptSet` renders the prompts of one story (image, video and vision-check prompts, each
cached per instance); `render_plan_prompts` renders the two messages of `storyc plan`.
Rendered text is whitespace-collapsed: lines of a template paragraph join with single
spaces, and a blank line in a template starts a new output line. That lets templates be
written readably while every image/video prompt comes out as one clean paragraph.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from storyc.model.clips import clip_plan
from storyc.model.speech import clip_voice_references
from storyc.model.story import (
    ASPECT_RATIOS,
    MAX_DURATION_S,
    MAX_REFERENCE_IMAGES,
    MIN_DURATION_S,
    TRANSITIONS,
    VIDEO_EDIT_MAX_S,
    Character,
    Location,
    Scene,
    Story,
)
from storyc.prompts.sandbox import Templates, template_search_path
from storyc.prompts.slots import allocate_slots, judge_characters, present_characters, scene_location
from storyc.prompts.text import brief, normalize_space

# Every template a build or `storyc plan` renders. Overrides may add partials
# (e.g. `_lines.j2`) and `{% include %}` them.
TEMPLATE_NAMES = (
    "character_sheet",
    "character_from_reference",
    "location_plate",
    "location_from_reference",
    "keyframe",
    "video",
    "video_extend",
    "fix_edit",
    "check_sheet",
    "check_plate",
    "check_keyframe",
    "check_last_frame",
    "video_fix",
    "reword",
    "plan_system",
    "plan_user",
)


# What the templates' context names are in the story (for `storyc prompts`: which fields
# feed which prompt). Names not listed are the build's own inputs (a fix, the blocked prompt).
_STORY_NAMES = {"style": "style", "palette": "color_palette", "title": "title", "aspect_ratio": "aspect_ratio"}
_STORY_NAMES |= {"resolution": "resolution", "turnaround": "quality.turnaround"}
_SCENE_NAMES = {"scene"}
_CHARACTER_NAMES = {"character", "characters", "referenced", "text_only"}
_CHARACTER_FIELDS = {
    "name": "name",
    "role": "role",
    "visual_description": "visual_description",
    "brief": "visual_description (its first sentences)",
    "personality_cues": "personality_cues",
    "reference_image": "reference_image",
}


def _positions(count: int) -> list[str]:
    """Where each of `count` characters stands in the frame (left to right)."""
    table = {
        1: ["in the center"],
        2: ["on the left side", "on the right side"],
        3: ["on the left", "in the center", "on the right"],
    }
    if count in table:
        return table[count]
    four = ["on the far left", "left of center", "right of center", "on the far right"]
    return four + ["in the background"] * max(0, count - 4)


class PromptSet:
    """Renders every prompt of one story; results are cached per instance."""

    def __init__(self, story: Story, *, story_path: Path | None = None, override_dir: Path | None = None):
        self.story = story
        self.story_path = Path(story_path) if story_path is not None else None
        self.override_dir = Path(override_dir) if override_dir is not None else None
        self._templates = Templates(template_search_path(self.story_path, self.override_dir))
        self._cache: dict[tuple[Hashable, ...], str] = {}
        self._characters: dict[str, dict[str, Any]] = {}
        self._style = normalize_space(story.style)
        self._palette = normalize_space(story.color_palette)

    # ── context builders (plain dicts of normalized strings) ──

    def _character_view(self, character: Character) -> dict[str, Any]:
        view = self._characters.get(character.name)
        if view is None:
            description = normalize_space(character.visual_description)
            view = self._characters[character.name] = {
                "name": character.name,
                "role": normalize_space(character.role),
                "visual_description": description,
                "brief": brief(description),
                "personality_cues": [normalize_space(c) for c in character.personality_cues if c.strip()],
                "reference_image": character.reference_image,
            }
        return view

    def _named_view(self, name: str) -> dict[str, Any]:
        character = self.story.character(name)
        assert character is not None, f"{name} is not a character"  # present_characters names known ones only
        return self._character_view(character)

    def _scene_view(self, scene: Scene) -> dict[str, Any]:
        return {
            "scene_id": scene.scene_id,
            "title": normalize_space(scene.title),
            "description": normalize_space(scene.description),
            "setting": normalize_space(scene.setting),
            "camera": normalize_space(scene.camera),
            "mood": normalize_space(scene.mood),
            "action": normalize_space(scene.action),
            "duration_seconds": scene.duration_seconds,
            "transition": scene.transition,
            "chain_source": scene.chain_source,
            "video_mode": scene.video_mode,
            "characters_present": list(scene.characters_present),
        }

    def _base(self) -> dict[str, Any]:
        return {
            "title": normalize_space(self.story.title),
            "style": self._style,
            "palette": self._palette,
            "aspect_ratio": self.story.aspect_ratio,
            "resolution": self.story.resolution,
            "turnaround": self.story.quality.turnaround,
        }

    def _location_view(self, location: Location) -> dict[str, Any]:
        return {
            "name": location.name,
            "visual_description": normalize_space(location.visual_description),
            "reference_image": location.reference_image,
        }

    def _scene_location(self, scene_index: int) -> dict[str, Any] | None:
        name = scene_location(self.story, scene_index)
        location = self.story.location(name)
        return None if location is None else self._location_view(location)

    def _judge_views(self, scene_index: int) -> list[dict[str, Any]]:
        views = []
        for image, name in enumerate(judge_characters(self.story, scene_index), start=2):
            view = dict(self._named_view(name))
            view["image"] = image
            views.append(view)
        return views

    def _render(self, key: tuple[Hashable, ...], name: str, build: Callable[[], dict[str, Any]]) -> str:
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._templates.render(name, build())
        return cached

    # ── image prompts ──

    def character_sheet(self, character: Character) -> str:
        """Text → image: the style lock, then the frozen description, on a neutral sheet."""
        return self._render(
            ("character_sheet", character.name),
            "character_sheet",
            lambda: {**self._base(), "character": self._character_view(character)},
        )

    def character_from_reference(self, character: Character) -> str:
        """Single-image edit that restyles the user's reference_image into a sheet."""
        return self._render(
            ("character_from_reference", character.name),
            "character_from_reference",
            lambda: {**self._base(), "character": self._character_view(character)},
        )

    def location_plate(self, location: Location) -> str:
        """Text → image: the place alone, no characters, as every scene there will frame it."""
        return self._render(
            ("location_plate", location.name),
            "location_plate",
            lambda: {**self._base(), "location": self._location_view(location)},
        )

    def location_from_reference(self, location: Location) -> str:
        """Single-image edit that restyles the user's photo of the place into its plate."""
        return self._render(
            ("location_from_reference", location.name),
            "location_from_reference",
            lambda: {**self._base(), "location": self._location_view(location)},
        )

    def sheet(self, character: Character) -> tuple[str, str]:
        """The sheet prompt a build sends, as (template name, text): restyling the user's
        reference_image when there is one, else from text."""
        if character.reference_image:
            return "character_from_reference", self.character_from_reference(character)
        return "character_sheet", self.character_sheet(character)

    def plate(self, location: Location) -> tuple[str, str]:
        """The plate prompt a build sends, as (template name, text): restyling the user's
        photo of the place when there is one, else from text."""
        if location.reference_image:
            return "location_from_reference", self.location_from_reference(location)
        return "location_plate", self.location_plate(location)

    def keyframe(self, scene_index: int) -> str:
        """Multi-image edit composing the scene; binds each slot as 'reference image N'. For a
        scene whose keyframe is pinned, the prompt a generation would send (what its approval
        is checked against)."""
        return self._render(("keyframe", scene_index), "keyframe", lambda: self._keyframe_context(scene_index))

    def _keyframe_context(self, scene_index: int) -> dict[str, Any]:
        scene = self.story.scenes[scene_index]
        slot_plan = allocate_slots(self.story, scene_index, ignore_pin=True)
        names = present_characters(self.story, scene_index)
        slot_of = {s.name: i for i, s in enumerate(slot_plan.slots, start=1) if s.kind == "character"}
        characters = []
        for name, position in zip(names, _positions(len(names)), strict=False):
            view = dict(self._named_view(name))
            view["slot"] = slot_of.get(name)
            view["position"] = position
            characters.append(view)
        chain = None
        if slot_plan.chain is not None:
            chain = {
                "slot": len(slot_plan.slots),
                "scene_id": slot_plan.chain.scene_id,
                "source": slot_plan.chain.source,
            }
        location = self._scene_location(scene_index)
        if location is not None:
            plate = slot_plan.location
            location["slot"] = slot_plan.slots.index(plate) + 1 if plate is not None else None
        return {
            **self._base(),
            "scene": self._scene_view(scene),
            "characters": characters,
            "referenced": [c for c in characters if c["slot"] is not None],
            "text_only": [c for c in characters if c["slot"] is None],
            "chain": chain,
            "location": location,
            "slot_count": len(slot_plan.slots),
        }

    def fix_edit(self, element: str, fix: str, sheet_of: str | None = None) -> str:
        """Image edit repairing one element of a keyframe (input 1); nothing else changes.
        `sheet_of`: the character whose sheet is sent as input 2 to anchor the fix."""
        return self._render(
            ("fix_edit", element, fix, sheet_of),
            "fix_edit",
            lambda: {
                **self._base(),
                "element": normalize_space(element),
                "fix": normalize_space(fix),
                "sheet_of": sheet_of,
            },
        )

    # ── video prompts: motion only ──

    def video(self, scene_index: int, segment: int = 1, *, spoken: bool | None = None) -> str:
        """The clip's prompt, motion first. In video_mode image the keyframe carries every
        character's appearance, so the context holds no visual_description (appearance text
        in an image→video prompt causes drift); reference images, when sent, are bound by
        position. In video_mode reference there is no keyframe: the prompt binds each sheet
        and the plate and describes the place. `segment` > 1: a later segment of a long
        scene, starting from the previous segment's last frame.

        `spoken`: whether the video model speaks the scene's dialogue (then each line is in
        the prompt, bound to its speaker and voice <AUDIO_n>); None means what the story asks
        for (audio.native, for a clip of one generation), the build passes
        storyc.model.speech.clip_speaks_dialogue for its backend.

        The scene's description (what happens over the clip) is there, with its action and
        camera."""
        scene = self.story.scenes[scene_index]
        plan = clip_plan(self.story, scene_index)
        if spoken is None:
            spoken = self.story.audio.native and not plan.long
        spoken = spoken and segment == 1  # a later segment starts mid-scene: it says nothing

        def context() -> dict[str, Any]:
            view = self._scene_view(scene)
            slot_plan = allocate_slots(self.story, scene_index)
            references = [
                {"image": n, "kind": ref.kind, "name": ref.name}
                for n, ref in enumerate(slot_plan.video_references, start=1)
            ]
            reference_mode = segment == 1 and slot_plan.video_mode == "reference"
            if not reference_mode:  # a first frame carries the place: only the sheets go along
                references = [r for r in references if r["kind"] == "character"]
            last_segment = segment == len(plan.segments)
            return {
                **self._base(),
                "scene": view,
                "names": list(present_characters(self.story, scene_index)),
                "mode": "reference" if reference_mode else "image",
                "references": references,
                "text_only": list(slot_plan.video_text_only) if reference_mode else [],
                "location": self._scene_location(scene_index) if reference_mode else None,
                "segment": segment,
                "ends_on": plan.end_on if last_segment else None,
                "dialogue": self._dialogue(scene_index) if spoken else [],
            }

        return self._render(("video", scene_index, segment, spoken), "video", context)

    def _dialogue(self, scene_index: int) -> list[dict[str, Any]]:
        voices = {r.speaker: r.number for r in clip_voice_references(self.story, scene_index)}
        return [
            {"speaker": line.speaker, "line": normalize_space(line.line), "audio": voices.get(line.speaker)}
            for line in self.story.scenes[scene_index].dialogue
            if line.line.strip()
        ]

    def video_extend(self, scene_index: int) -> str:
        """Extension of a clip (video.extend): what happens next, continuing from its end."""
        scene = self.story.scenes[scene_index]

        def context() -> dict[str, Any]:
            view = self._scene_view(scene)
            return {**self._base(), "scene": view, "names": list(present_characters(self.story, scene_index))}

        return self._render(("video_extend", scene_index), "video_extend", context)

    def video_fix(self, scene_index: int, issues: list[str]) -> str:
        """Video edit correcting drift found in the last frame; motion stays identical."""
        scene = self.story.scenes[scene_index]
        cleaned = tuple(normalize_space(i) for i in issues if i and i.strip())

        def context() -> dict[str, Any]:
            view = self._scene_view(scene)
            view.pop("description")
            return {
                **self._base(),
                "scene": view,
                "names": list(present_characters(self.story, scene_index)),
                "issues": list(cleaned),
            }

        return self._render(("video_fix", scene_index, cleaned), "video_fix", context)

    def reword(self, prompt: str) -> str:
        """The one softened re-attempt after a moderation block."""
        return self._render(("reword", prompt), "reword", lambda: {**self._base(), "prompt": prompt})

    # ── vision checks (the judge) ──

    def check_sheet(self, character: Character) -> str:
        return self._render(
            ("check_sheet", character.name),
            "check_sheet",
            lambda: {**self._base(), "character": self._character_view(character)},
        )

    def check_plate(self, location: Location) -> str:
        return self._render(
            ("check_plate", location.name),
            "check_plate",
            lambda: {**self._base(), "location": self._location_view(location)},
        )

    def check_keyframe(self, scene_index: int) -> str:
        scene = self.story.scenes[scene_index]
        return self._render(
            ("check_keyframe", scene_index),
            "check_keyframe",
            lambda: {
                **self._base(),
                "scene": self._scene_view(scene),
                "characters": self._judge_views(scene_index),
                "location": self._scene_location(scene_index),
            },
        )

    def check_last_frame(self, scene_index: int) -> str:
        scene = self.story.scenes[scene_index]
        return self._render(
            ("check_last_frame", scene_index),
            "check_last_frame",
            lambda: {**self._base(), "scene": self._scene_view(scene), "characters": self._judge_views(scene_index)},
        )

    # ── template bookkeeping (cache keys, reports) ──

    def template_digest(self, name: str) -> str:
        return self._templates.digest(name)

    def fields_fed(self, name: str) -> dict[str, list[str]]:
        """The story fields template `name` (as overridden, with its partials) reads, by
        where they are: {"story": [...], "scene": [...], "characters": [...], "location": [...]}."""
        fed: dict[str, set[str]] = {"story": set(), "scene": set(), "characters": set(), "location": set()}
        for var, field in self._templates.names_used(name):
            if var in _STORY_NAMES and field is None:
                fed["story"].add(_STORY_NAMES[var])
            elif var in _SCENE_NAMES and field is not None:
                fed["scene"].add(field)
            elif var == "names":  # the names of the scene's characters, in frame order
                fed["scene"].add("characters_present")
            elif var == "dialogue":  # the lines the clip speaks (audio.native on a paid backend)
                fed["scene"].add("dialogue")
            elif (
                var == "location"
                and self.story.locations
                and field in ("name", "visual_description", "reference_image")
            ):
                fed["location"].add(field)
            elif var in _CHARACTER_NAMES and field in _CHARACTER_FIELDS:
                fed["characters"].add(_CHARACTER_FIELDS[field])
        return {where: sorted(names) for where, names in fed.items() if names}

    def templates_used(self) -> dict[str, Path]:
        return {name: self._templates.path(name) for name in TEMPLATE_NAMES}


def render_plan_prompts(
    concept: str,
    *,
    characters: int | None = None,
    scenes: int | None = None,
    override_dir: Path | None = None,
) -> tuple[str, str]:
    """(system, user) messages of the planning call that turns a concept into a StoryPlan."""
    templates = Templates(template_search_path(None, override_dir))
    context = {
        "concept": normalize_space(concept),
        "characters": characters,
        "scenes": scenes,
        "min_duration": MIN_DURATION_S,
        "max_duration": MAX_DURATION_S,
        "edit_max_s": VIDEO_EDIT_MAX_S,
        "max_references": MAX_REFERENCE_IMAGES,
        "aspect_ratios": list(ASPECT_RATIOS),
        "transitions": list(TRANSITIONS),
    }
    return templates.render("plan_system", context), templates.render("plan_user", context)
