"""Options and arguments several commands share, and the choices they offer.

Choices are Enums, so `--help` lists them and shell completion offers them. Every option
that takes a value has a metavar (DIR, STEPS...): help shows what to type, never a Python
type.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from storyc.cli.completion import complete_select
from storyc.cli.errors import usage_error


class Backend(StrEnum):
    offline = "offline"
    xai = "xai"


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    json = "json"


class PromptsFormat(StrEnum):
    text = "text"
    json = "json"


class LintFormat(StrEnum):
    """text, json or github for diagnostics; text, json or markdown for --list-rules."""

    text = "text"
    json = "json"
    github = "github"
    markdown = "markdown"


class Stage(StrEnum):
    """`storyc build --until STAGE` (storyc.graph.steps.STAGES): stop after it, for a review."""

    sheets = "sheets"
    keyframes = "keyframes"
    videos = "videos"


class ReviewedStage(StrEnum):
    """`storyc deploy --approve STAGE` (storyc.deploy.APPROVAL_STAGES): each run pauses after it."""

    keyframes = "keyframes"


StoryArg = Annotated[
    Path | None,
    typer.Argument(
        metavar="STORY",
        help="The story file (YAML, or a seed StoryPlan as JSON). Default: ./story.yaml.",
        show_default=False,
    ),
]

BackendOpt = Annotated[
    Backend | None,
    typer.Option("--backend", help="Default: xai when XAI_API_KEY is set, else offline.", show_default=False),
]
OutDirOpt = Annotated[
    Path | None, typer.Option("--out", metavar="DIR", help="Output folder (default build/<story stem>/).")
]
CacheDirOpt = Annotated[
    Path | None, typer.Option("--cache", metavar="DIR", help="Cache folder (default .storyc/cache/ beside the story).")
]
PromptsDirOpt = Annotated[
    Path | None,
    typer.Option("--prompts", metavar="DIR", help="Template override folder (before <story dir>/prompts/)."),
]
SelectOpt = Annotated[
    str | None,
    typer.Option(
        "--select",
        metavar="STEPS",
        help="Build only these steps: scene:3+, character:Ember+, scene:2, keyframe:3, +video:2.",
        autocompletion=complete_select,
    ),
]
IgnoreCacheOpt = Annotated[bool, typer.Option("--force", help="Ignore the cache for the selected steps.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final result line.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="More detail (see the command's description).")]


class _Verbosity:
    """The global --quiet/--verbose (before the command), which commands whose output
    matters accept after it too."""

    quiet = False
    verbose = False


def set_global_output_level(quiet: bool, verbose: bool) -> None:
    if quiet and verbose:
        usage_error("storyc", "--quiet and --verbose exclude each other")
    _Verbosity.quiet, _Verbosity.verbose = quiet, verbose


def output_level(command: str, quiet: bool, verbose: bool) -> tuple[bool, bool]:
    """(quiet, verbose) from the command's flags and the global ones."""
    quiet, verbose = quiet or _Verbosity.quiet, verbose or _Verbosity.verbose
    if quiet and verbose:
        usage_error(command, "--quiet and --verbose exclude each other")
    return quiet, verbose
