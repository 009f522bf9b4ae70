"""`storyc build --watch`: build, then build again on every save of the story or its
templates, printing what changed, which steps ran and what it cost, with the storyboard
served on localhost (storyc.report.serve) and reloading itself after each build.

A bad edit never ends the watch: lint errors (or any other refused build) print their
diagnostics and the watch waits for the next save. Ctrl-C while waiting stops it (exit 0);
Ctrl-C during a build stops that build as usual (state saved, exit 130).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from storyc.backends.base import BackendError
from storyc.build.options import BuildOptions, BuildResult, default_out_dir
from storyc.build.pipeline import run_build
from storyc.build.watch import Sources, saves, sources_of
from storyc.cli.errors import EXIT_INTERRUPTED, describe_os_error, print_diagnostics
from storyc.cli.output import out
from storyc.cli.progress import BuildProgress, build_summary, low_scores_summary
from storyc.diagnostics import StorycError
from storyc.graph.select import SelectionError
from storyc.redact import redact
from storyc.report.serve import start_server
from storyc.store.state import BuildLocked

COMMAND = "storyc build --watch"


def watch_builds(opts: BuildOptions, *, quiet: bool, verbose: bool, serve: bool = True, port: int = 0) -> None:
    """Build `opts`, then again after each save, until Ctrl-C (typer.Exit: 0, or 130 when a
    build was interrupted)."""
    sources = sources_of(opts.story, opts.prompts_dir)
    out_dir = Path(opts.out_dir) if opts.out_dir else default_out_dir(opts.story)
    server = None
    if serve:
        try:
            server = start_server(out_dir, port)
        except OSError as exc:
            _say(f"cannot serve the storyboard on port {port}: {describe_os_error(exc)}; watching without it")
    try:
        if server is not None:
            out(f"storyboard: {server.url}  (reloads after each build)")
        _build_once(opts, quiet, verbose, first=True)
        waiting = False
        for changed in saves(sources):
            if not changed:  # the watch is set up: every save from now on is seen
                if not waiting:
                    _say(_waiting(sources))
                    waiting = True
                continue
            _say(f"changed: {', '.join(changed)}")
            _build_once(opts, quiet, verbose, first=False)
            waiting = False
    except KeyboardInterrupt:
        _say("stopped watching")
        raise typer.Exit(0) from None
    finally:
        if server is not None:
            server.close()


def _build_once(opts: BuildOptions, quiet: bool, verbose: bool, *, first: bool) -> None:
    """One build of the watch, its outcome printed; nothing it finds wrong ends the watch,
    except an interrupted build (exit 130, as any build). After the first, only the steps
    that run get a line."""
    progress: BuildProgress | None = None

    def on_event(event: str, data: Any) -> None:
        nonlocal progress
        if quiet:
            return
        if progress is None:
            progress = BuildProgress(total=0, verbose=verbose, show_cached=first)
        progress(event, data)

    try:
        result = _refused_or(lambda: run_build(dataclasses.replace(opts, on_event=on_event)))
    except KeyboardInterrupt:  # while loading or restoring: nothing half-done
        _say("interrupted; state saved")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if progress is not None:
            progress.stop()
    if result is None:
        _say("fix it and save: the watch goes on")
        return
    for diag in [] if quiet else result.warnings:
        typer.echo(diag.format(), err=True)
    if result.status == "interrupted":
        _say(f"interrupted ({build_summary(result.report)}); state saved")
        raise typer.Exit(EXIT_INTERRUPTED)
    out(_outcome(result, first))
    low = low_scores_summary(result.report)
    if low is not None:
        _say(f"warning: {low}")


def _refused_or(build: Callable[[], BuildResult]) -> BuildResult | None:
    """The build's result, or None after printing why it was refused (a lint error, a bad
    --select, a folder another build holds, an unusable backend or folder)."""
    try:
        return build()
    except StorycError as exc:
        print_diagnostics(exc)
    except (SelectionError, BuildLocked) as exc:
        _say(str(exc))
    except BackendError as exc:
        _say(redact(exc))
    except OSError as exc:
        _say(describe_os_error(exc))
    return None


def _outcome(result: BuildResult, first: bool) -> str:
    """One line: which steps ran and what they cost."""
    rep = result.report
    if result.status == "up_to_date":
        why = "" if first else ": no step uses what changed"
        return f"up to date{why} ({rep.get('cache_hits', 0)} cached step(s))"
    ran = [s["id"] for s in rep.get("steps", []) if not s.get("cached") and s.get("status") == "done"]
    steps = f"{len(ran)} step(s) ran: {', '.join(ran)}" if ran else "no step ran"
    if result.status in ("built", "stopped"):
        return f"rebuilt: {steps}  ({build_summary(rep)})"
    return f"{result.status}: {result.message}"


def _waiting(sources: Sources) -> str:
    watched = [sources.shown(sources.story)] + [f"{sources.shown(d)}/*.j2" for d in sources.template_dirs if d.is_dir()]
    return f"watching {', '.join(watched)} (Ctrl-C stops)"


def _say(message: str) -> None:
    typer.echo(f"{COMMAND}: {message}", err=True)
