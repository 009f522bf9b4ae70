"""storyc's command line. The only module that prints and sets exit codes.

Commands are thin: each parses options, calls one module, and turns StorycError into
positioned diagnostics and exit code 1. Heavy modules (Prefect, xai-sdk, PyAV) are
imported inside the commands that need them, never at import time.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from storyc import __version__

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="storyc",
    help="A declarative YAML storyboard compiler: lint, plan and render consistent multi-scene videos.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"storyc {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
) -> None:
    """storyc: story.yaml → lint → plan → render → final_video.mp4."""


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("storyc: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _print_diagnostics(exc) -> None:
    for diag in exc.diagnostics:
        typer.echo(diag.format(), err=True)


@app.command("graph")
def graph_command(
    story: Annotated[Path, typer.Argument(help="The story file (YAML, or a seed StoryPlan as JSON).")],
    format: Annotated[str, typer.Option("--format", help="mermaid, dot or json.")] = "mermaid",
    backend: Annotated[
        Optional[str], typer.Option("--backend", help="offline or xai (part of every key). Default: xai when XAI_API_KEY is set.")
    ] = None,
    cache: Annotated[Optional[Path], typer.Option("--cache", help="Cache folder (default .storyc/cache/ beside the story).")] = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="Template override folder.")] = None,
) -> None:
    """Print the build graph with each step's cache key ('pending' until its inputs are known) and whether it is cached."""
    import json

    from storyc.build import prepare
    from storyc.diagnostics import StorycError
    from storyc.plan import graph_dot, graph_json, graph_mermaid, resolve

    if format not in ("mermaid", "dot", "json"):
        typer.echo(f"storyc graph: --format must be mermaid, dot or json, not {format!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    if backend not in (None, "offline", "xai"):
        typer.echo(f"storyc graph: --backend must be offline or xai, not {backend!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    if not story.is_file():
        typer.echo(f"storyc graph: {story}: no such file", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        prep = prepare(story, backend=backend, cache_dir=cache, prompts_dir=prompts)
    except StorycError as exc:
        _print_diagnostics(exc)
        raise typer.Exit(EXIT_ERROR)
    res = resolve(prep.plan, prep.cache)
    if format == "json":
        typer.echo(json.dumps(graph_json(prep.plan, res), indent=2))
    elif format == "dot":
        typer.echo(graph_dot(prep.plan, res))
    else:
        typer.echo(graph_mermaid(prep.plan, res))


@app.command("prompts")
def prompts_command(
    story: Annotated[Path, typer.Argument(help="The story file (YAML, or a seed StoryPlan as JSON).")],
    scene: Annotated[Optional[int], typer.Option("--scene", help="Only this scene_id's prompts.")] = None,
    format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    prompts: Annotated[
        Optional[Path], typer.Option("--prompts", help="Template override folder (before <story dir>/prompts/).")
    ] = None,
) -> None:
    """Print every prompt a build would send, with the images sent alongside (reference slots)."""
    import json

    from storyc.diagnostics import StorycError
    from storyc.loader import load_story
    from storyc.prompts import PromptSet, format_listing, prompt_listing

    if format not in ("text", "json"):
        typer.echo(f"storyc prompts: --format must be text or json, not {format!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    if not story.is_file():
        typer.echo(f"storyc prompts: {story}: no such file", err=True)
        raise typer.Exit(EXIT_USAGE)
    if prompts is not None and not prompts.is_dir():
        typer.echo(f"storyc prompts: --prompts {prompts}: no such folder", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        loaded = load_story(story)
        if scene is not None and loaded.story.scene_index(scene) is None:
            typer.echo(f"storyc prompts: {story} has no scene {scene}", err=True)
            raise typer.Exit(EXIT_USAGE)
        entries = prompt_listing(PromptSet(loaded.story, story_path=loaded.path, override_dir=prompts), scene)
    except StorycError as exc:
        for diag in exc.diagnostics:
            typer.echo(diag.format(), err=True)
        raise typer.Exit(EXIT_ERROR)
    if format == "json":
        typer.echo(json.dumps(entries, indent=2, ensure_ascii=False))
    else:
        typer.echo(format_listing(entries), nl=False)


@app.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of the story format (the committed copy is schemas/story.schema.json)."""
    from storyc.schema_export import story_json_schema_text

    typer.echo(story_json_schema_text(), nl=False)
