"""`storyc serve`: a build's storyboard on localhost, reloading itself after each build."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from storyc.build.options import default_out_dir
from storyc.cli.errors import describe_os_error, fail, require_file, story_or_default, usage_error
from storyc.cli.help import examples
from storyc.cli.options import OutDirOpt, StoryArg
from storyc.cli.output import out
from storyc.report.serve import start_server

EXAMPLES = examples(
    "storyc serve                          # ./story.yaml's output folder (build/story/)",
    "storyc serve story.yaml --port 8470   # a fixed port to bookmark",
    "storyc serve --out build/ci",
)


def serve_command(
    story: StoryArg = None,
    out_dir: OutDirOpt = None,
    port: Annotated[
        int,
        typer.Option(
            "--port", metavar="PORT", help="The port on 127.0.0.1 (default: any free one).", show_default=False
        ),
    ] = 0,
) -> None:
    """Show a build's storyboard on http://127.0.0.1 (this machine only), reloading itself
    whenever a build rewrites it. Ctrl-C stops. (storyc build --watch serves it too.)"""
    if not 0 <= port <= 65535:
        usage_error("storyc serve", f"--port {port}: not a port number (0 to 65535)")
    if out_dir is None:
        story = story_or_default("storyc serve", story)
        require_file("storyc serve", story)
        out_dir = default_out_dir(story)
    try:
        server = start_server(Path(out_dir), port)
    except OSError as exc:
        fail("storyc serve", f"cannot serve {out_dir} on port {port}: {describe_os_error(exc)}")
    out(f"storyboard: {server.url}  (serving {out_dir}; reloads after each build; Ctrl-C stops)")
    try:
        threading.Event().wait()  # until Ctrl-C (or SIGTERM, which storyc turns into one)
    except KeyboardInterrupt:
        typer.echo("storyc serve: stopped", err=True)
    finally:
        server.close()
