"""Rules about references between parts of a story: ids, names, chains and image files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from storyc.diagnostics import Diagnostic, Severity
from storyc.lint.base import LintContext, Rule, did_you_mean
from storyc.load.positions import Loc

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4",)


class E301DuplicateSceneId(Rule):
    """Two scenes share a scene_id. Ids name output files and chain targets, so they must be unique.

    Bad::

        scenes:
          - scene_id: 1
            title: Ember Explores
          - scene_id: 1
            title: Meeting the Owl

    Good::

        scenes:
          - scene_id: 1
            title: Ember Explores
          - scene_id: 2
            title: Meeting the Owl
    """

    code = "E301"
    summary = "duplicate scene_id"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        first = ctx.scene_index_by_id
        for i, scene in enumerate(ctx.story.scenes):
            if first[scene.scene_id] != i:
                line = ctx.loaded.source.position(("scenes", first[scene.scene_id], "scene_id"))[0]
                yield self.report(
                    ctx,
                    ("scenes", i, "scene_id"),
                    f"scene_id {scene.scene_id} is already used by the scene at line {line}",
                )


class E302DuplicateCharacterName(Rule):
    """Two characters share a name. Names bind characters_present entries and name the character sheets.

    Bad::

        characters:
          - name: Ember
          - name: Ember

    Good::

        characters:
          - name: Ember
          - name: Sage
    """

    code = "E302"
    summary = "duplicate character name"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        seen: dict[str, int] = {}
        for i, character in enumerate(ctx.story.characters):
            if character.name in seen:
                line = ctx.loaded.source.position(("characters", seen[character.name], "name"))[0]
                yield self.report(
                    ctx, ("characters", i, "name"), f"character '{character.name}' is already defined at line {line}"
                )
            else:
                seen[character.name] = i


class E303UnknownCharacter(Rule):
    """characters_present names a character that is not defined under characters (names match exactly).

    Bad::

        characters:
          - name: Ember
        scenes:
          - characters_present: [ember, Sage]

    Good::

        characters:
          - name: Ember
          - name: Sage
        scenes:
          - characters_present: [Ember, Sage]
    """

    code = "E303"
    summary = "unknown character in characters_present"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        known = ctx.character_names
        hints: dict[str, str] = {}  # one fuzzy match per distinct unknown name, not per mention
        for i, scene in enumerate(ctx.story.scenes):
            for j, name in enumerate(scene.characters_present):
                if name in known:
                    continue
                if name not in hints:
                    hints[name] = did_you_mean(name, known, "defined characters")
                hint = hints[name]
                yield self.report(
                    ctx,
                    ("scenes", i, "characters_present", j),
                    f"scene {scene.scene_id}: unknown character '{name}'{hint}",
                )


class E304BadChainFrom(Rule):
    """chain_from must name an earlier scene by its scene_id (or be ``none``). A scene cannot chain
    from itself, from a later scene, or from an id no scene has: its frame would not exist yet.

    Bad::

        scenes:
          - scene_id: 1
            chain_from: 2
          - scene_id: 2

    Good::

        scenes:
          - scene_id: 1
          - scene_id: 2
            chain_from: 1      # or: none, to start a fresh branch
    """

    code = "E304"
    summary = "chain_from names an unknown, later or the same scene"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        for i, scene in enumerate(ctx.story.scenes):
            target = scene.chain_from
            if target is None or target == "none":
                continue
            where = ("scenes", i, "chain_from")
            parent = ctx.scene_index_by_id.get(target)
            if parent is None:
                yield self.report(
                    ctx,
                    where,
                    f"scene {scene.scene_id}: chain_from {target} names no scene; use an earlier scene_id or none",
                )
            elif parent == i or target == scene.scene_id:
                yield self.report(
                    ctx, where, f"scene {scene.scene_id} cannot chain from itself; use an earlier scene_id or none"
                )
            elif parent > i:
                yield self.report(
                    ctx,
                    where,
                    f"scene {scene.scene_id}: chain_from {target} is a later scene; a scene can only chain from an earlier one",
                )


# Every field naming a file beside the story, with the suffixes it may have.
_FILE_FIELDS = {
    "characters": (("reference_image", IMAGE_SUFFIXES), ("sheet_image", IMAGE_SUFFIXES)),
    "scenes": (("keyframe_image", IMAGE_SUFFIXES), ("clip_video", VIDEO_SUFFIXES)),
    "locations": (("reference_image", IMAGE_SUFFIXES), ("plate_image", IMAGE_SUFFIXES)),
}


def _file_fields(ctx: LintContext) -> Iterator[tuple[Loc, str, tuple[str, ...]]]:
    for section, fields in _FILE_FIELDS.items():
        for i, item in enumerate(getattr(ctx.story, section)):
            for name, suffixes in fields:
                value = getattr(item, name)
                if value is not None:
                    yield (section, i, name), value, suffixes


def _image_fields(ctx: LintContext) -> Iterator[tuple[Loc, str]]:
    for loc, text, _ in _file_fields(ctx):
        yield loc, text


def _resolve(ctx: LintContext, text: str) -> Path:
    return ctx.loaded.base_dir / Path(text).expanduser()


class E306MissingImageFile(Rule):
    """reference_image, and the pins sheet_image, keyframe_image, clip_video and plate_image, must
    name an existing file, relative to the story file.

    Bad::

        characters:
          - name: Ember
            reference_image: photos/embr.png     # no such file

    Good::

        characters:
          - name: Ember
            reference_image: photos/ember.png    # beside the story: photos/ember.png
    """

    code = "E306"
    summary = "referenced image file missing or not a file"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        for loc, text in _image_fields(ctx):
            field = loc[-1]
            if not text.strip():
                yield self.report(ctx, loc, f"{field} is empty; remove the field or name an image file")
                continue
            try:
                path = _resolve(ctx, text)
                exists, is_file = path.exists(), path.is_file()
            except (OSError, ValueError):  # e.g. a NUL byte or a name too long for the OS
                exists = is_file = False
            if not exists:
                yield self.report(ctx, loc, f"{field} '{text}' does not exist (paths are relative to the story file)")
            elif not is_file:
                yield self.report(ctx, loc, f"{field} '{text}' is not a file")


class W410ImageOutsideStoryFolder(Rule):
    """An image path leaves the story's folder (absolute, or through ``..``). The build uploads
    that file to the image API, so a story from someone else could send any readable file;
    keep images beside the story.

    Bad::

        reference_image: /home/me/Pictures/ember.png
        reference_image: ../../secrets/id_card.jpg

    Good::

        reference_image: images/ember.png
    """

    code = "W410"
    summary = "image path points outside the story's folder"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        try:
            base = ctx.loaded.base_dir.resolve()
        except (OSError, RuntimeError):
            return
        for loc, text in _image_fields(ctx):
            try:
                target = _resolve(ctx, text).resolve()
            except (OSError, RuntimeError, ValueError):
                continue
            if not target.is_relative_to(base):
                yield self.report(
                    ctx, loc, f"{loc[-1]} '{text}' is outside the story's folder; the build would upload it"
                )


class W411ImageFormat(Rule):
    """The image API takes PNG, JPEG and WebP images; other files (GIF, HEIC, PDF ...) fail at build time.
    A pinned clip_video must be an MP4 (the clips are assembled and chained as MP4).

    Bad::

        keyframe_image: frames/opening.heic
        clip_video: approved/clip_scene_2.mov

    Good::

        keyframe_image: frames/opening.png
        clip_video: approved/clip_scene_2.mp4
    """

    code = "W411"
    summary = "image file is not PNG, JPEG or WebP (a pinned clip: not MP4)"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        for loc, text, suffixes in _file_fields(ctx):
            if text.strip() and not text.lower().endswith(suffixes):
                kinds = ", ".join(suffixes[:-1]) + (" or " if len(suffixes) > 1 else "") + suffixes[-1]
                yield self.report(ctx, loc, f"{loc[-1]} '{text}' is not a {kinds} file")


class W412ChainSourceWithoutChain(Rule):
    """chain_source only says which frame of the chain source to use; on a scene that starts a
    fresh branch (``chain_from: none``, or the first scene) it does nothing, which usually means
    the chain was removed by mistake.

    Bad::

        - scene_id: 4
          chain_from: none
          chain_source: keyframe

    Good::

        - scene_id: 4
          chain_from: 3
          chain_source: keyframe
    """

    code = "W412"
    summary = "chain_source set on a scene that does not chain"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        data_scenes = ctx.loaded.data.get("scenes", [])
        for i, scene in enumerate(ctx.story.scenes):
            written = i < len(data_scenes) and isinstance(data_scenes[i], dict) and "chain_source" in data_scenes[i]
            if written and ctx.story.chain_parent_index(i) is None:
                yield self.report(
                    ctx,
                    ("scenes", i, "chain_source"),
                    f"scene {scene.scene_id} starts a fresh branch, so chain_source has no effect",
                )


class W413SceneIdsOutOfOrder(Rule):
    """scene_ids should increase down the file. Chaining by default follows the order of the list,
    while file names, selections (``--scene 3``) and readers go by id, so an out-of-order id makes
    the two disagree.

    Bad::

        scenes:
          - scene_id: 2
          - scene_id: 1

    Good::

        scenes:
          - scene_id: 1
          - scene_id: 2
    """

    code = "W413"
    summary = "scene_ids do not increase down the file"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        scenes = ctx.story.scenes
        for i in range(1, len(scenes)):
            if scenes[i].scene_id < scenes[i - 1].scene_id:
                yield self.report(
                    ctx,
                    ("scenes", i, "scene_id"),
                    f"scene_id {scenes[i].scene_id} comes after scene_id {scenes[i - 1].scene_id}; number scenes in file order",
                )
