"""`storyc server status|stop`, and the hand-over of `storyc build` to the warm engine.

The engine (storyc.run.engine) is started by the first build that needs Prefect and stops
itself after some idle minutes; these commands show it and stop it early.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from storyc.cli.errors import EXIT_ERROR
from storyc.cli.help import Command, Group, examples
from storyc.cli.output import out
from storyc.run.engine.client import hand_off, status, stop
from storyc.run.engine.home import engine_home, why_no_engine

server_app = typer.Typer(
    cls=Group,
    epilog=examples("storyc server status", "storyc server stop", "STORYC_ENGINE=off storyc build story.yaml"),
    help=(
        "The build engine: a local Prefect server and a warm storyc, started by the first build that needs "
        "them and reused by later ones; it stops after some idle minutes (STORYC_ENGINE_IDLE_SECONDS, default "
        "1200). STORYC_ENGINE=off builds without it; with PREFECT_API_URL set, builds run on that server instead."
    ),
    no_args_is_help=True,
)


class _Entry:
    """Set by storyc's main(): this process is the `storyc` command itself, whose argv the
    engine can run (not a program calling the CLI in-process, such as a test runner)."""

    is_main = False


entry = _Entry


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _describe(info: dict[str, Any]) -> list[str]:
    rss = info.get("rss_mb") or {}
    memory = sum(v for v in rss.values() if v)
    running = info["builds_running"]
    activity = f"{len(running)} build(s) running" if running else f"idle {_duration(info['idle_s'])}"
    lines = [
        f"build engine: {info['state']}, pid {info['pid']}, Prefect server {info['api_url']} "
        f"(pid {info['server_pid']})",
        f"  up {_duration(info['uptime_s'])} (ready in {info['ready_s']:.1f}s), {activity}, stops after "
        f"{_duration(info['idle_limit_s'])} idle; {info['builds_served']} build(s) served; {memory:.0f} MB",
        f"  {info['home']}",
    ]
    lines += [
        f"  running: pid {build['pid']} for pid {build['client_pid']}: {' '.join(build['argv'][1:])}"
        for build in running
    ]
    return lines


def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (null when no engine runs).")] = False,
) -> None:
    """Show the build engine: pid, Prefect server URL, uptime, idle time, builds, memory."""
    home = engine_home()
    info = status(home)
    if as_json:
        out(json.dumps(info, sort_keys=True))
        return
    if info is None:
        starting = home.read_info()
        state = "starting" if starting and starting.get("state") == "starting" else "not running"
        out(f"build engine: {state}  ({home.root})")
    else:
        for line in _describe(info):
            out(line)
    why = why_no_engine()
    if why:
        out(f"  builds in this shell do not use it: {why}")


def stop_command() -> None:
    """Stop the build engine (after the builds it is running finish)."""
    t0 = time.perf_counter()
    reply = stop()
    if reply is None:
        out("build engine: not running")
        return
    waited = f" after {reply['builds']} running build(s)" if reply.get("builds") else ""
    if reply.get("stopped"):
        out(f"build engine: stopped (pid {reply['pid']}){waited} in {time.perf_counter() - t0:.1f}s")
    else:
        typer.echo(f"build engine: pid {reply['pid']} is still stopping{waited}", err=True)
        raise typer.Exit(EXIT_ERROR)


STATUS_EXAMPLES = examples("storyc server status", "storyc server status --json")
server_app.command("status", cls=Command, epilog=STATUS_EXAMPLES)(status_command)
server_app.command("stop", cls=Command, epilog=examples("storyc server stop"))(stop_command)


def build_in_engine(needs_engine: Callable[[], bool], *, quiet: bool) -> int | None:
    """Run this `storyc build` in the warm engine (started if none runs and the build needs
    Prefect): its exit code, or None to build in this process."""
    if not entry.is_main:
        return None

    def say(line: str, problem: bool) -> None:
        if problem or not quiet:
            typer.echo(f"storyc build: {line}", err=problem)

    return hand_off(needs_engine=needs_engine, say=say)
