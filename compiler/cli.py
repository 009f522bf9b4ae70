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
