"""storyc's command line: the typer root, the global options, and main().

The cli package is the only one that prints and sets exit codes. Each command lives in
its own module and stays thin: it checks its arguments, calls its stage, and prints. The
stages import Prefect, xai-sdk, PyAV and httpx only when they run, so `storyc --help`,
lint and every completion TAB load none of them.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Annotated

import typer

from storyc import __version__
from storyc.cli import (
    approve,
    build,
    clean,
    completion,
    deploy,
    graph,
    init,
    lint,
    plan,
    prompts,
    schema,
    serve,
    server,
)
from storyc.cli.errors import EXIT_INTERRUPTED, EXIT_OK
from storyc.cli.help import Command, Group
from storyc.cli.options import set_global_output_level

app = typer.Typer(
    name="storyc",
    cls=Group,
    help="A declarative YAML storyboard compiler: lint, plan and render consistent multi-scene videos.",
    no_args_is_help=True,
    # `storyc completion bash|zsh|fish` prints the script instead: typer's install options
    # would detect the shell on every start.
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n  storyc lint stories/fox_and_owl.yaml\n\n  storyc build stories/fox_and_owl.yaml\n\n"
        "  storyc COMMAND -h    # each command's options and examples\n\n"
        "Exit codes: 0 ok, 1 bad input or a failed build, 2 usage error, 130 interrupted. "
        "--quiet/--verbose (-q/-v) before a command (or after it on build, clean, cache prune) set the output level; "
        "NO_COLOR=1 turns colour off; storyc completion bash|zsh|fish prints shell completion. "
        "Commands that take one STORY read ./story.yaml when it is left out."
    ),
)

app.command("graph", cls=Command, epilog=graph.EXAMPLES)(graph.graph_command)
app.command("prompts", cls=Command, epilog=prompts.EXAMPLES)(prompts.prompts_command)
app.command("schema", cls=Command, epilog=schema.EXAMPLES)(schema.schema_command)
app.command("init", cls=Command, epilog=init.EXAMPLES)(init.init_command)
app.command("lint", cls=Command, epilog=lint.EXAMPLES)(lint.lint_command)
app.command("build", cls=Command, epilog=build.EXAMPLES)(build.build_command)
app.command("plan", cls=Command, epilog=plan.EXAMPLES)(plan.plan_command)
app.command("serve", cls=Command, epilog=serve.EXAMPLES)(serve.serve_command)
app.command("deploy", cls=Command, epilog=deploy.EXAMPLES)(deploy.deploy_command)
app.command("approve", cls=Command, epilog=approve.APPROVE_EXAMPLES)(approve.approve_command)
app.command("unapprove", cls=Command, epilog=approve.UNAPPROVE_EXAMPLES)(approve.unapprove_command)
app.command("clean", cls=Command, epilog=clean.CLEAN_EXAMPLES)(clean.clean_command)
cache_app = typer.Typer(
    cls=Group, help="Manage the build cache (default .storyc/cache/ beside the story).", no_args_is_help=True
)
cache_app.command("prune", cls=Command, epilog=clean.PRUNE_EXAMPLES)(clean.cache_prune_command)
app.add_typer(cache_app, name="cache")
app.add_typer(server.server_app, name="server")
app.command("completion", cls=Command, epilog=completion.EXAMPLES)(completion.completion_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"storyc {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final result line.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Per-step and per-call detail.")] = False,
) -> None:
    """storyc: story.yaml → lint → plan → render → final_video.mp4."""
    set_global_output_level(quiet, verbose)


def main() -> None:
    server.entry.is_main = True  # `storyc build` may hand this process's argv to the warm engine
    signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)
    _honour_no_color()
    completion.enable_completion()
    try:
        app(prog_name="storyc")  # also under `python -m storyc`: the same usage lines and completion variable
    except KeyboardInterrupt:
        typer.echo("storyc: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _terminate_like_ctrl_c(signum: int, frame: FrameType | None) -> None:
    # CI runners and `timeout` cancel with SIGTERM: stop as cleanly as on Ctrl-C
    # (calls in flight recorded, state saved, exit 130) instead of dying mid-write.
    raise KeyboardInterrupt


def _honour_no_color() -> None:
    """NO_COLOR (no-color.org) wins over FORCE_COLOR: typer's rich help and error panels
    and the build progress print no escape sequences at all (rich alone keeps bold, and
    typer forces a terminal under FORCE_COLOR). typer reads this switch when it first
    renders help, so setting it costs nothing at start-up (importing typer.rich_utils to
    patch it would cost ~60 ms on every command)."""
    if os.environ.get("NO_COLOR"):
        os.environ["_TYPER_FORCE_DISABLE_TERMINAL"] = "1"
