"""`storyc init`: scaffold a storyboard project."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from storyc.author.scaffold import FAILED, SKIPPED, InitError, scaffold
from storyc.cli.errors import EXIT_ERROR, input_errors_exit
from storyc.cli.help import examples
from storyc.cli.options import QuietOpt, VerboseOpt, output_level
from storyc.cli.output import out

EXAMPLES = examples(
    "storyc init my-story && cd my-story && storyc build story.yaml",
    "storyc init                                  # into the current folder",
    "storyc init . --force                        # restore the scaffold's files",
)


def init_command(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="DIR", help="Project folder (created if missing). Default: the current folder.", show_default=False
        ),
    ] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite existing files that differ from the scaffold.")
    ] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Scaffold a storyboard project: story.yaml with its JSON Schema, .gitignore, .pre-commit-config.yaml, a GitHub workflow.

    One line per file (--verbose adds nothing); existing files are kept and listed unless --force (--quiet: only those and the result line).
    Exit 0 when every file is in place, 1 when the folder or a file cannot be written.
    """
    quiet, verbose = output_level("storyc init", quiet, verbose)
    with input_errors_exit("storyc init", refused=(InitError,)):
        outcomes = scaffold(directory, force=force)
    if not quiet:
        for o in outcomes:
            out(f"{o.status:<12}{o.rel}" + (f"  ({o.reason})" if o.reason else ""))
    skipped = [o.rel for o in outcomes if o.status == SKIPPED]
    failed = [o for o in outcomes if o.status == FAILED]
    if skipped:
        typer.echo(
            f"storyc init: kept {len(skipped)} existing file(s) that differ from the scaffold: "
            f"{', '.join(skipped)}; rerun with --force to overwrite them",
            err=True,
        )
    if failed:
        for o in failed:
            typer.echo(f"storyc init: cannot write {directory / o.rel}: {o.reason}", err=True)
        raise typer.Exit(EXIT_ERROR)
    where = "" if directory.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(str(directory))} && "
    out(f"next: {where}storyc lint story.yaml && storyc build story.yaml")
