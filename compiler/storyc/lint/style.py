"""Rules about how well a story's text will hold the generations together."""

from __future__ import annotations

import re
from collections.abc import Iterator

from storyc.diagnostics import Diagnostic, Severity
from storyc.lint.base import LintContext, Rule

MIN_DESCRIPTION_WORDS = 80
MIN_STYLE_WORDS = 8

_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
# Words that say nothing about a place; without this, "in the forest" and "in the city" would match.
_STOPWORDS = frozenset(
    [
        "the",
        "and",
        "with",
        "from",
        "into",
        "onto",
        "over",
        "under",
        "near",
        "behind",
        "beside",
        "between",
        "through",
        "across",
        "along",
        "around",
        "for",
        "of",
        "at",
        "in",
        "on",
        "by",
        "to",
        "its",
        "it",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "some",
        "very",
        "more",
        "less",
        "few",
        "many",
        "much",
        "all",
        "any",
        "each",
        "every",
        "one",
        "two",
        "three",
    ]
)


def _words(text: str) -> int:
    return len(text.split())


def setting_terms(text: str) -> set[str]:
    """Meaningful, crudely stemmed words of a setting ("oaks" and "oak" match)."""
    terms = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        terms.add(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return terms


class W403ShortVisualDescription(Rule):
    """visual_description is the frozen identity of a character, copied verbatim into every image
    prompt; under 80 words the model invents details and they change from scene to scene.

    Bad::

        visual_description: A red fox with a green scarf.

    Good::

        visual_description: >-
          A young red fox of slender, agile build ... (80+ words: age, build, fur or hair,
          eyes, face, exact clothing and colours, distinguishing marks)
    """

    code = "W403"
    summary = "visual_description under 80 words"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        for i, character in enumerate(ctx.story.characters):
            count = _words(character.visual_description)
            if count < MIN_DESCRIPTION_WORDS:
                yield self.report(
                    ctx,
                    ("characters", i, "visual_description"),
                    f"{character.name}'s visual_description has {count} word{'s' if count != 1 else ''}; give at least {MIN_DESCRIPTION_WORDS} "
                    "(age, build, hair or fur, eyes, face, exact clothing, distinguishing marks)",
                )


class W404VagueStyle(Rule):
    """style starts every prompt and is the strongest consistency lever; a vague style is
    interpreted differently by each generation.

    Bad::

        style: animated

    Good::

        style: Studio Ghibli-inspired watercolor animation with soft edges, warm tones and hand-drawn texture
    """

    code = "W404"
    summary = "style is vague (under 8 words)"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        count = _words(ctx.story.style)
        if count < MIN_STYLE_WORDS:
            yield self.report(
                ctx,
                ("style",),
                f"style has {count} word{'s' if count != 1 else ''}; name the medium, technique, lighting and texture "
                f"in at least {MIN_STYLE_WORDS} words",
            )


class W405ChainSettingMismatch(Rule):
    """A scene chains from a scene whose setting shares no meaningful word with its own. The chain
    frame then drags the old place into the new one, and the chain forces the two scenes to
    render one after the other.

    Bad::

        - scene_id: 3
          setting: enchanted autumn forest at dusk
        - scene_id: 4
          setting: busy harbour market at noon        # chains from scene 3 by default

    Good::

        - scene_id: 4
          setting: busy harbour market at noon
          chain_from: none                            # a fresh branch, rendered in parallel
    """

    code = "W405"
    summary = "chained scene's setting shares nothing with its chain source"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        scenes = ctx.story.scenes
        terms_cache: dict[int, set[str]] = {}

        def terms(index: int) -> set[str]:
            if index not in terms_cache:
                terms_cache[index] = setting_terms(scenes[index].setting)
            return terms_cache[index]

        for i, scene in enumerate(scenes):
            parent = ctx.story.chain_parent_index(i)
            if parent is None or scene.keyframe_image is not None:
                continue
            mine, theirs = terms(i), terms(parent)
            if mine and theirs and not (mine & theirs):
                yield self.report(
                    ctx,
                    ("scenes", i, "setting"),
                    f"scene {scene.scene_id} chains from scene {scenes[parent].scene_id} but their settings share no words; "
                    "if this is a new place, chain_from: none starts a fresh branch that renders in parallel",
                )


class W406UnusedCharacter(Rule):
    """A character appears in no scene's characters_present. Its sheet is still generated and paid for.

    Bad::

        characters:
          - name: Moss        # never in any characters_present

    Good::

        # remove Moss, or add it to the scenes it appears in
    """

    code = "W406"
    summary = "character never appears in any scene"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        used = {name for scene in ctx.story.scenes for name in scene.characters_present}
        for i, character in enumerate(ctx.story.characters):
            if character.name not in used:
                yield self.report(
                    ctx,
                    ("characters", i, "name"),
                    f"character '{character.name}' appears in no scene; its sheet would be generated for nothing",
                )


class W407SceneWithoutAnchor(Rule):
    """A scene with no characters, no chain frame and no pinned keyframe is composed from text
    alone, so nothing ties its look to the rest of the story.

    Bad::

        - scene_id: 5
          characters_present: []
          chain_from: none

    Good::

        - scene_id: 5
          characters_present: []
          chain_from: 4          # the previous frame anchors lighting and place
    """

    code = "W407"
    summary = "scene has no characters, no chain frame and no keyframe image"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        for i, scene in enumerate(ctx.story.scenes):
            if scene.characters_present or scene.keyframe_image is not None or ctx.story.chain_parent_index(i) is not None:
                continue
            yield self.report(
                ctx,
                ("scenes", i, "characters_present"),
                f"scene {scene.scene_id} has no characters and no chain frame: nothing anchors its look to the other scenes",
            )


class W408RepeatedCharacterInScene(Rule):
    """characters_present lists the same character twice; the second entry adds nothing but can
    take a reference slot.

    Bad::

        characters_present: [Ember, Sage, Ember]

    Good::

        characters_present: [Ember, Sage]
    """

    code = "W408"
    summary = "characters_present lists a character twice"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        for i, scene in enumerate(ctx.story.scenes):
            present = scene.characters_present
            if len(present) == len(set(present)):
                continue
            seen: set[str] = set()
            for j, name in enumerate(present):
                if name in seen:
                    yield self.report(
                        ctx, ("scenes", i, "characters_present", j), f"scene {scene.scene_id} lists '{name}' twice"
                    )
                seen.add(name)
