"""Rules about the story's own prompt templates: a `prompts/` folder beside the story
overrides the packaged ones, and a build renders them before its first call. Lint renders
them too, so a broken override fails in CI's `storyc lint`, not at build time."""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from storyc.diagnostics import Diagnostic, Severity, StorycError
from storyc.lint.base import LintContext, Rule
from storyc.prompts.listing import prompt_listing
from storyc.prompts.promptset import TEMPLATE_NAMES, PromptSet
from storyc.resources import prompts_dir

# Sample inputs for the templates whose inputs only exist during a build (a vision
# check's fix, a drift report, a blocked prompt).
_SAMPLE_ELEMENT = "the scarf"
_SAMPLE_FIX = "make it emerald green"
_SAMPLE_ISSUES = ["the scarf turned red"]


def _render_every_template(ctx: LintContext) -> None:
    """Render every prompt a build of this story renders; raises StorycError (E501)."""
    prompts = PromptSet(ctx.story, story_path=ctx.loaded.path)
    entries = prompt_listing(prompts)
    # fix_edit.j2 branches on whether a character's sheet anchors the fix (<IMAGE_2>): both
    prompts.fix_edit(_SAMPLE_ELEMENT, _SAMPLE_FIX)
    sheet_of = ctx.story.characters[0].name if ctx.story.characters else "the hero"
    prompts.fix_edit(_SAMPLE_ELEMENT, _SAMPLE_FIX, sheet_of=sheet_of)
    if ctx.story.scenes:
        prompts.video_fix(0, _SAMPLE_ISSUES)
    # reword.j2 branches on whether the blocked prompt starts with the style lock (an
    # image or video prompt) or not (a vision check): render one of each.
    first: dict[bool, str] = {}
    for entry in entries:
        if entry["prompt"]:
            first.setdefault(entry["kind"].startswith("check_"), entry["prompt"])
    for prompt in first.values():
        prompts.reword(prompt)


class E501TemplateError(Rule):
    """A template in the story's ``prompts/`` folder fails to render: a syntax error, an
    unknown variable (templates run with StrictUndefined), or an attempt the sandbox
    refuses. The diagnostic points at the template's line. Only checked when the folder
    exists; the packaged templates are tested with storyc.

    In ``prompts/video.j2``.

    Bad::

        {{ style }} {{ scene.descripton }}

    Good::

        {{ style | sentence }} {{ scene.action | capfirst | sentence }}
    """

    code = "E501"
    summary = "template in the story's prompts/ folder fails to render"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        folder = ctx.loaded.base_dir / "prompts"
        if not folder.is_dir() or not any(folder.glob("*.j2")):
            return
        if folder.resolve() == prompts_dir().resolve():
            return  # a story in storyc's own source folder: these are the packaged templates
        try:
            _render_every_template(ctx)
        except StorycError as exc:
            yield from (d for d in exc.diagnostics if d.code == self.code)
        except Exception:
            # A story with semantic errors (unknown character, bad chain_from) cannot be
            # rendered; those errors are reported by their own rules.
            return


class W414UnknownTemplateOverride(Rule):
    """A ``.j2`` file in the story's ``prompts/`` folder has no template's name, so it
    overrides nothing and is silently unused: usually a typo. Partials that other
    templates include are fine (by convention their names start with ``_``).

    Bad::

        prompts/vidoe.j2

    Good::

        prompts/video.j2
        prompts/_lines.j2      (included by video.j2)
    """

    code = "W414"
    summary = "file in the story's prompts/ folder overrides no template (a typo?)"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        folder = ctx.loaded.base_dir / "prompts"
        if not folder.is_dir():
            return
        known = set(TEMPLATE_NAMES)
        files = sorted(folder.glob("*.j2"))
        texts = {}
        for path in files:
            try:
                texts[path.name] = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                texts[path.name] = ""
        for path in files:
            name = path.name[: -len(".j2")]
            if name in known or name.startswith("_"):
                continue
            if any(path.name in text for other, text in texts.items() if other != path.name):
                continue  # included by another template
            match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean {match[0]}.j2?" if match else f"templates are: {', '.join(sorted(known))}"
            yield Diagnostic(str(path), 1, 1, self.code, self.severity, f"{path.name} overrides no template; {hint}")
