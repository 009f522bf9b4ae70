"""`storyc plan`: a story from a concept (one structured-output call, or an offline skeleton)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from storyc.author.planner import run_plan
from storyc.backend_name import default_backend_name
from storyc.cli.errors import fail, input_errors_exit, require_prompts_folder, usage_error
from storyc.cli.help import examples
from storyc.cli.options import Backend, PromptsDirOpt
from storyc.cli.output import out
from storyc.lint.content import E316Placeholder

PLACEHOLDER_CODE = E316Placeholder.code

EXAMPLES = examples(
    'storyc plan "A curious fox meets a wise old owl" -o stories/ember.yaml --characters 2 --scenes 3',
)


def plan_command(
    concept: Annotated[str, typer.Argument(metavar="CONCEPT", help="The story idea in a sentence or two.")],
    out_file: Annotated[Path, typer.Option("-o", "--out", metavar="FILE", help="Where to write the story.")] = Path(
        "story.yaml"
    ),
    characters: Annotated[
        int | None, typer.Option("--characters", metavar="N", min=1, max=10, help="Exact number of characters.")
    ] = None,
    scenes: Annotated[
        int | None, typer.Option("--scenes", metavar="N", min=1, max=50, help="Exact number of scenes.")
    ] = None,
    backend: Annotated[
        Backend | None,
        typer.Option(
            "--backend",
            help="offline writes a marked skeleton to fill in. Default: xai when XAI_API_KEY is set.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", metavar="NAME", help="Chat model (default: the story default).")
    ] = None,
    prompts: PromptsDirOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
) -> None:
    """Plan a story from a concept: one structured-output call, written as commented YAML, then linted."""
    if not concept.strip():
        usage_error("storyc plan", "the concept is empty")
    if out_file.exists() and not force:
        usage_error("storyc plan", f"{out_file} exists; choose another -o or pass --force")
    require_prompts_folder("storyc plan", prompts)
    chosen = backend.value if backend else default_backend_name()
    typer.echo(
        f"storyc plan: backend {chosen}"
        + ("" if backend else " (default: " + ("XAI_API_KEY is set)" if chosen == "xai" else "no XAI_API_KEY)")),
        err=True,
    )
    with input_errors_exit("storyc plan"):
        outcome = run_plan(
            concept,
            out_file,
            backend_name=chosen,
            characters=characters,
            scenes=scenes,
            model=model,
            prompts_dir=prompts,
        )
    # A skeleton is all placeholders (E316) on purpose: counted, not listed (storyc lint lists them)
    todos = [d for d in outcome.diagnostics if d.code == PLACEHOLDER_CODE] if outcome.skeleton else []
    shown = [d for d in outcome.diagnostics if d not in todos]
    for diag in shown:
        typer.echo(diag.format(), err=True)
    for note in outcome.notes:
        typer.echo(f"storyc plan: note: {note}", err=True)
    if any(d.is_error for d in shown):
        fail(
            "storyc plan",
            f"wrote {outcome.path} but it fails lint: {len(outcome.errors)} error(s); "
            f"fix them and run storyc lint {outcome.path}",
        )
    if outcome.skeleton:  # the offline backend generates nothing: no model, no call, no cost
        what = (
            f"wrote skeleton {outcome.path} (offline: no model was called; fill in its {len(todos)} TODO(s), "
            f"which fail lint until written: storyc lint {outcome.path} lists them"
        )
    else:
        what = f"wrote story {outcome.path} ({outcome.backend}, {outcome.calls} call(s), ${outcome.cost_usd:.4f}"
    warnings = len(shown)
    checked = (f", {warnings} warning(s)" if warnings else ", lints clean") if outcome.lint_ran else ""
    out(what + checked + ")" + ("" if outcome.lint_ran else " (lint unavailable: not checked)"))
