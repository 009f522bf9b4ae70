"""`storyc server status|stop`, and the hand-over of `storyc build` to the warm engine.

The engine (storyc.run.engine) is started by the first build that needs Prefect and stops
itself after some idle minutes; these commands show it and stop it early.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated

import typer


def _examples(*lines: str) -> str:
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)


server_app = typer.Typer(
    epilog=_examples("storyc server status", "storyc server stop", "STORYC_ENGINE=off storyc build story.yaml"),
    help=(
        "The build engine: a local Prefect server and a warm storyc, started by the first build that needs "
        "them and reused by later ones; it stops after some idle minutes (STORYC_ENGINE_IDLE_SECONDS, default "
        "1200). STORYC_ENGINE=off builds without it; with PREFECT_API_URL set, builds run on that server instead."
    ),
    no_args_is_help=True,
)

# Set by storyc's main(): this process is the `storyc` command itself, whose argv the
# engine can run (not a program calling the CLI in-process, such as a test runner).
entry = {"is_main": False}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@server_app.command("status", epilog=_examples("storyc server status", "storyc server status --json"))
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (null when no engine runs).")] = False,
) -> None:
    """Show the build engine: pid, Prefect server URL, uptime, idle time, builds, memory."""
    from storyc.run.engine.client import status
    from storyc.run.engine.home import engine_home, why_no_engine

    home = engine_home()
    info = status(home)
    if as_json:
        typer.echo(json.dumps(info, sort_keys=True))
        return
    if info is None:
        starting = home.read_info()
        state = "starting" if starting and starting.get("state") == "starting" else "not running"
        typer.echo(f"build engine: {state}  ({home.root})")
    else:
        rss = info.get("rss_mb") or {}
        memory = sum(v for v in rss.values() if v)
        running = info["builds_running"]
        typer.echo(
            f"build engine: {info['state']}, pid {info['pid']}, Prefect server {info['api_url']} "
            f"(pid {info['server_pid']})\n"
            f"  up {_duration(info['uptime_s'])} (ready in {info['ready_s']:.1f}s), "
            + (f"{len(running)} build(s) running" if running else f"idle {_duration(info['idle_s'])}")
            + f", stops after {_duration(info['idle_limit_s'])} idle; {info['builds_served']} build(s) served; "
            f"{memory:.0f} MB\n  {info['home']}"
        )
        for build in running:
            typer.echo(f"  running: pid {build['pid']} for pid {build['client_pid']}: {' '.join(build['argv'][1:])}")
    why = why_no_engine()
    if why:
        typer.echo(f"  builds in this shell do not use it: {why}")


@server_app.command("stop", epilog=_examples("storyc server stop"))
def stop_command() -> None:
    """Stop the build engine (after the builds it is running finish)."""
    from storyc.run.engine.client import stop

    t0 = time.perf_counter()
    reply = stop()
    if reply is None:
        typer.echo("build engine: not running")
        return
    waited = f" after {reply['builds']} running build(s)" if reply.get("builds") else ""
    if reply.get("stopped"):
        typer.echo(f"build engine: stopped (pid {reply['pid']}){waited} in {time.perf_counter() - t0:.1f}s")
    else:
        typer.echo(f"build engine: pid {reply['pid']} is still stopping{waited}", err=True)
        raise typer.Exit(1)


def build_in_engine(needs_engine: Callable[[], bool], *, quiet: bool) -> int | None:
    """Run this `storyc build` in the warm engine (started if none runs and the build needs
    Prefect): its exit code, or None to build in this process."""
    if not entry["is_main"]:
        return None
    from storyc.run.engine.client import hand_off

    def say(line: str, problem: bool) -> None:
        if problem or not quiet:
            typer.echo(f"storyc build: {line}", err=problem)

    return hand_off(needs_engine=needs_engine, say=say)
