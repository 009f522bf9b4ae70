"""`storyc lint`: check stories; diagnostics on stdout (so --format json pipes), the summary on stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from storyc.cli.errors import DEFAULT_STORY, EXIT_ERROR, EXIT_OK, EXIT_USAGE, usage_error
from storyc.cli.help import examples
from storyc.cli.options import LintFormat
from storyc.cli.output import write
from storyc.lint import format as lint_format
from storyc.lint.registry import ALL_RULES, RULES_BY_CODE, SEMANTIC_RULES
from storyc.lint.runner import lint_paths

EXAMPLES = examples(
    "storyc lint stories/*.yaml",
    "storyc lint story.yaml --strict --ignore W403,W404",
    "storyc lint story.yaml --format github                 # GitHub Actions annotations",
    "storyc lint --list-rules",
)


def lint_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="STORY",
            help="Story files (YAML, or seed StoryPlans as JSON). Default: ./story.yaml.",
            show_default=False,
        ),
    ] = None,
    format: Annotated[
        LintFormat, typer.Option("--format", help="text, json or github (markdown with --list-rules).")
    ] = LintFormat.text,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too.")] = False,
    ignore: Annotated[
        str | None,
        typer.Option(
            "--ignore", metavar="CODES", help="Comma-separated rule codes to skip, e.g. W403,W404.", show_default=False
        ),
    ] = None,
    list_rules: Annotated[
        bool, typer.Option("--list-rules", help="List every rule (code, severity, summary) and exit.")
    ] = False,
) -> None:
    """Check stories for errors and likely problems; print path:line:col: severity CODE message."""
    if hasattr(sys.stdout, "reconfigure"):  # an ASCII-only terminal or pipe must not turn 'é' into a traceback
        sys.stdout.reconfigure(errors="backslashreplace")
    if list_rules:
        renderers = {
            LintFormat.text: lint_format.rules_text,
            LintFormat.json: lint_format.rules_json,
            LintFormat.markdown: lint_format.rules_markdown,
        }
        if format not in renderers:
            usage_error("storyc lint", f"--list-rules --format must be text, json or markdown, not {format.value!r}")
        write(renderers[format](ALL_RULES))
        return
    if format.value not in lint_format.FORMATS:
        usage_error("storyc lint", f"--format must be text, json or github, not {format.value!r}")
    if not paths:
        if not DEFAULT_STORY.is_file():
            usage_error(
                "storyc lint", f"give at least one story file (or --list-rules): there is no {DEFAULT_STORY} here"
            )
        paths = [DEFAULT_STORY]
    skipped = {code.strip().upper() for code in (ignore or "").split(",") if code.strip()}
    unknown = sorted(code for code in skipped if code not in RULES_BY_CODE)
    not_skippable = sorted(code for code in skipped if code in RULES_BY_CODE and RULES_BY_CODE[code].checked_by_loader)
    if unknown or not_skippable:
        why = (
            f"unknown rule code {', '.join(unknown)}"
            if unknown
            else f"{', '.join(not_skippable)} cannot be ignored (the story cannot load)"
        )
        usage_error("storyc lint", f"--ignore: {why}; see storyc lint --list-rules")
    missing = [p for p in paths if not p.exists()]
    if missing:
        for p in missing:
            typer.echo(f"storyc lint: {p}: no such file", err=True)
        raise typer.Exit(EXIT_USAGE)

    diagnostics = lint_paths(paths, tuple(r for r in SEMANTIC_RULES if r.code not in skipped))
    write(lint_format.format_diagnostics(diagnostics, format.value))
    if format == LintFormat.text:
        typer.echo(lint_format.summary_line(diagnostics, len(paths)), err=True)
    failed = any(d.is_error for d in diagnostics) or (strict and bool(diagnostics))
    raise typer.Exit(EXIT_ERROR if failed else EXIT_OK)
