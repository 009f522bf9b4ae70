"""`storyc prompts`: every prompt a build would send."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from storyc.build.prepare import lint_diagnostics
from storyc.cli.errors import input_errors_exit, require_file, require_prompts_folder, story_or_default, usage_error
from storyc.cli.help import examples
from storyc.cli.options import PromptsDirOpt, PromptsFormat, StoryArg
from storyc.cli.output import out
from storyc.diagnostics import StorycError
from storyc.load.loader import load_story
from storyc.prompts.listing import format_listing, prompt_listing
from storyc.prompts.promptset import PromptSet
from storyc.store.approvals import redo_notes

EXAMPLES = examples(
    "storyc prompts stories/fox_and_owl.yaml",
    "storyc prompts stories/fox_and_owl.yaml --scene 2 --format json",
    "storyc prompts story.yaml --prompts my_prompts/        # try a template override",
)


def prompts_command(
    story: StoryArg = None,
    scene: Annotated[int | None, typer.Option("--scene", metavar="ID", help="Only this scene_id's prompts.")] = None,
    format: Annotated[PromptsFormat, typer.Option("--format")] = PromptsFormat.text,
    prompts: PromptsDirOpt = None,
) -> None:
    """Print every prompt a build would send, with the images sent alongside (reference slots)."""
    story = story_or_default("storyc prompts", story)
    require_file("storyc prompts", story)
    require_prompts_folder("storyc prompts", prompts)
    with input_errors_exit("storyc prompts"):
        loaded = load_story(story)
        # Semantic errors (unknown character, bad chain_from...) would make prompts lie.
        errors = [d for d in lint_diagnostics(loaded, prompts_dir=prompts) if d.is_error]
        if errors:
            raise StorycError(errors)
        if scene is not None and loaded.story.scene_index(scene) is None:
            usage_error("storyc prompts", f"{story} has no scene {scene}")
        prompt_set = PromptSet(loaded.story, story_path=loaded.path, override_dir=prompts)
        # a redo note is part of the prompt a build sends
        entries = prompt_listing(prompt_set, scene, notes=redo_notes(loaded.base_dir))
    if format == PromptsFormat.json:
        out(json.dumps(entries, indent=2, ensure_ascii=False))
    else:
        out(format_listing(entries), nl=False)
