"""`storyc build`: load → lint → plan → resolve the cache → execute → assemble → reports.

This module orchestrates and never imports Prefect itself: when every step is already
in the cache the build is "up to date" without starting Prefect (storyc.run.executor is
imported only when something must run). A bad --select and a --max-cost that no first
step fits are refused before anything starts; `needs_prefect` tells the CLI, before any
of that, whether the build would start Prefect (and so the warm engine).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc.diagnostics import StorycError
from storyc.graph.builder import build_graph
from storyc.graph.estimate import planned_calls
from storyc.graph.resolve import Resolution, resolve
from storyc.graph.steps import StepGraph
from storyc.report.documents import write_report, write_script_md, write_storyboard_html
from storyc.store.cache import Cache, default_cache_dir
from storyc.store.fsutil import remove_stale_temps


def default_backend_name() -> str:
    return "xai" if os.environ.get("XAI_API_KEY") else "offline"


@dataclass
class Prepared:
    loaded: Any
    prompts: Any
    graph: StepGraph
    cache: Cache


def prepare(
    story_path: str | Path,
    *,
    backend: str | None = None,
    cache_dir: str | Path | None = None,
    prompts_dir: str | Path | None = None,
    lint: bool = False,
) -> Prepared:
    """Load (and optionally lint) the story and compile its plan. Raises StorycError."""
    from storyc.load.loader import load_story
    from storyc.prompts.promptset import PromptSet

    loaded = load_story(story_path)
    if lint:
        errors = [d for d in lint_diagnostics(loaded, prompts_dir=prompts_dir) if d.is_error]
        if errors:
            raise StorycError(errors)
    prompts = PromptSet(loaded.story, story_path=loaded.path, override_dir=Path(prompts_dir) if prompts_dir else None)
    graph = build_graph(loaded, prompts, backend=backend or default_backend_name())
    cache = Cache(Path(cache_dir) if cache_dir else default_cache_dir(loaded.path))
    return Prepared(loaded=loaded, prompts=prompts, graph=graph, cache=cache)


def lint_diagnostics(loaded: Any, *, prompts_dir: str | Path | None = None) -> list:
    from storyc.lint import lint_story

    diagnostics = list(lint_story(loaded))
    if prompts_dir is not None:
        # Lint's E501 renders the templates beside the story; with --prompts some of those
        # are replaced. The plan has already rendered the templates really in use (a
        # broken one raised E501 there), so lint's view of the story folder is moot.
        diagnostics = [d for d in diagnostics if d.code != "E501"]
    return diagnostics


# ─── the build ───────────────────────────────────────────────────────────────


@dataclass
class BuildOptions:
    story: Path
    backend: str | None = None
    out_dir: Path | None = None
    cache_dir: Path | None = None
    prompts_dir: Path | None = None
    dry_run: bool = False
    max_cost: float | None = None
    select: str | None = None
    force: bool = False
    rates: Mapping[str, float] | None = None
    concurrency: Mapping[str, int] | None = None
    retry: Any = None  # steps.RetryPolicy
    backend_factory: Callable[[str], Any] | None = None  # tests wrap the backend
    on_event: Callable[[str, Mapping[str, Any]], None] | None = None


@dataclass
class BuildResult:
    status: str  # up_to_date | built | dry_run | failed | interrupted | budget | missing
    backend: str
    out_dir: Path
    message: str = ""
    report: dict = field(default_factory=dict)
    dry_run: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("up_to_date", "built", "dry_run")


class SelectionMissing(Exception):
    """--select left out a step that a selected step needs and that is not cached."""


def default_out_dir(story_path: Path) -> Path:
    return Path("build") / Path(story_path).stem


def make_backend(name: str, prompts: Any = None) -> Any:
    """The named backend. `prompts` (a PromptSet) supplies the moderation rewording template."""
    if name == "offline":
        from storyc.backends.base import BackendError
        from storyc.backends.offline.backend import OfflineBackend

        try:
            return OfflineBackend()
        except ValueError as exc:  # a malformed STORYC_OFFLINE_FAULTS / STORYC_OFFLINE_LATENCY
            raise BackendError(str(exc)) from None
    if name == "xai":
        from storyc.backends.ratelimit import RateLimiter
        from storyc.backends.xai.backend import XaiBackend

        # The executor already throttles every call per kind; a second limiter inside the
        # backend would only slow the build. The backend owns the one reworded attempt
        # after a moderation block, through the story's `reword` template.
        return XaiBackend(reword=getattr(prompts, "reword", None), rate_limiter=RateLimiter({}))
    raise ValueError(f"unknown backend {name!r}: expected offline or xai")


def run_build(opts: BuildOptions) -> BuildResult:
    """Build a story. Raises StorycError (bad story / lint errors), SelectionError (bad
    --select), BuildLocked (another build holds the output folder)."""

    t0 = time.perf_counter()
    backend_name = opts.backend or default_backend_name()
    prep = prepare(opts.story, backend=backend_name, cache_dir=opts.cache_dir, prompts_dir=opts.prompts_dir)
    diagnostics = lint_diagnostics(prep.loaded, prompts_dir=opts.prompts_dir)
    if any(d.is_error for d in diagnostics):
        raise StorycError(diagnostics)
    warnings = [d for d in diagnostics if not d.is_error]
    if opts.dry_run or not prep.cache.root.is_dir():
        # a missing cache is created (and locked) only when the build executes
        return _resolve_and_run(opts, prep, backend_name, warnings, t0, cache_locked=False)
    from storyc.store.cache import cache_in_use

    # What resolution finds cached must still be there when it is restored: a
    # `storyc cache prune` is refused while this build uses the cache.
    with cache_in_use(prep.cache.root):
        return _resolve_and_run(opts, prep, backend_name, warnings, t0, cache_locked=True)


def _resolve_and_run(
    opts: BuildOptions, prep, backend_name: str, warnings: list, t0: float, *, cache_locked: bool
) -> BuildResult:
    graph, cache = prep.graph, prep.cache
    out_dir = Path(opts.out_dir) if opts.out_dir else default_out_dir(prep.loaded.path)

    selected, force, res, to_run, needed_by = _steps_to_run(opts, graph, cache)
    base = BuildResult(status="", backend=backend_name, out_dir=out_dir, warnings=warnings)
    if needed_by:
        base.status = "missing"
        base.message = (
            "--select leaves out steps that are neither selected nor cached: "
            + "; ".join(f"{d} (needed by {', '.join(users)})" for d, users in needed_by.items())
            + f". Select them too (e.g. --select '+{opts.select.split(',')[0].strip().lstrip('+').rstrip('+')}')"
            " or build without --select."
        )
        return base

    if opts.dry_run:
        base.status = "dry_run"
        base.dry_run = {
            "backend": backend_name,
            "steps_to_run": to_run,
            "steps_cached": [sid for sid in graph.order if res.cached(sid)],
            **planned_calls(graph, to_run),
        }
        return base
    over_budget = _over_budget(opts, graph, to_run)
    if over_budget:
        base.status = "budget"
        base.message = over_budget
        return base
    if opts.on_event is not None:
        opts.on_event("plan", {"steps": len(graph.steps), "to_run": len(to_run), "selected": len(selected)})
    return _execute_build(opts, prep, res, selected, to_run, force, out_dir, base, t0, cache_locked)


def _steps_to_run(opts: BuildOptions, graph: StepGraph, cache: Cache):
    """(selected, force, resolution, steps to run, {missing step: the selected steps needing it})."""
    selected = graph.select(opts.select)
    force = frozenset(selected) if opts.force else frozenset()
    res = resolve(graph, cache, force=set(force))
    to_run = [sid for sid in graph.order if sid in selected and not res.cached(sid)]
    needed_by: dict[str, list[str]] = {}
    for sid in to_run:
        for d in graph.steps[sid].deps:
            if d not in selected and not res.cached(d):
                needed_by.setdefault(d, []).append(sid)
    return selected, force, res, to_run, needed_by


def _over_budget(opts: BuildOptions, graph: StepGraph, to_run: list[str]) -> str | None:
    """--max-cost below the minimum cost (every check passing first time) of each step that
    could run first: no step could finish, so the build is refused before anything starts.
    A budget that pays for some steps lets them run (they are kept, and cached), as before."""
    if opts.max_cost is None or not to_run:
        return None
    pending = set(to_run)
    first = [sid for sid in to_run if not any(d in pending for d in graph.steps[sid].deps)]
    cheapest = min(first, key=lambda sid: graph.steps[sid].cost_min)
    cost = graph.steps[cheapest].cost_min
    if cost <= opts.max_cost + 1e-9:
        return None
    prices = " at xAI prices (the offline backend rehearses the budget)" if graph.backend == "offline" else ""
    return (
        f"budget: the cheapest step that could run first ({cheapest}) costs at least ${cost:.2f}{prices}, more than "
        f"--max-cost ${opts.max_cost:.2f}; nothing was started. Raise --max-cost (see --dry-run for the estimate)."
    )


def needs_prefect(opts: BuildOptions) -> bool:
    """Whether this build would run a step through Prefect, decided before anything starts
    (no Prefect import, no output folder): False when it stops first (bad story, bad or
    incomplete --select, --max-cost below any first step's minimum cost, a dry run), is up to date, or
    has only local steps to run (assembly, the storyboard). Errors are left to the build."""
    if opts.dry_run:
        return False
    try:
        prep = prepare(opts.story, backend=opts.backend, cache_dir=opts.cache_dir, prompts_dir=opts.prompts_dir)
        if any(d.is_error for d in lint_diagnostics(prep.loaded, prompts_dir=opts.prompts_dir)):
            return False
        _selected, _force, _res, to_run, needed_by = _steps_to_run(opts, prep.graph, prep.cache)
    except Exception:  # the build itself reports it, in this process
        return False
    if needed_by or _over_budget(opts, prep.graph, to_run):
        return False
    return any(not _is_local(prep.graph.steps[sid]) for sid in to_run)


def _execute_build(
    opts,
    prep,
    res: Resolution,
    selected,
    to_run,
    force,
    out_dir: Path,
    base: BuildResult,
    t0: float,
    cache_locked: bool,
):
    from storyc.run.steps import Budget, BuildContext, RetryPolicy, restore_cached
    from storyc.store.hashing import file_sha256
    from storyc.store.state import BuildLock, StateJournal, StateStore

    graph, cache = prep.graph, prep.cache
    # The backend first: a missing XAI_API_KEY or a bad fault spec must fail before the
    # output folder (and its lock file) is created.
    backend = None
    if any(not _is_local(graph.steps[sid]) for sid in to_run):
        backend = (
            opts.backend_factory(base.backend) if opts.backend_factory else make_backend(base.backend, prep.prompts)
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = BuildLock(out_dir).acquire()
    except BaseException:  # a locked, read-only or full folder: nothing was started
        if backend is not None:
            with contextlib.suppress(Exception):
                backend.close()
        raise
    from storyc.store.cache import cache_in_use

    with lock, contextlib.nullcontext() if cache_locked else cache_in_use(cache.root):
        cache.clean_temps()
        # We hold the output folder's lock, so every temp file left here is a killed
        # (or interrupted in-process) build's, whatever pid it names: remove them all.
        remove_stale_temps(out_dir, any_writer=True)
        store = StateStore(
            out_dir,
            graph.story,
            backend=base.backend,
            story_path=prep.loaded.path,
            story_sha256=file_sha256(prep.loaded.path),
        )
        ctx = BuildContext(
            graph=graph,
            prompts=prep.prompts,
            backend=backend,
            cache=cache,
            out_dir=out_dir,
            store=store,
            journal=StateJournal(store),
            budget=Budget(opts.max_cost),
            retry=opts.retry or RetryPolicy(),
            on_event=opts.on_event,
            force=force,
        )
        # Everything already cached goes into the output folder first (no call, no Prefect).
        for sid in graph.order:
            if res.cached(sid):
                restore_cached(ctx, sid, res.keys[sid], res.entries[sid], save=False)
        store.save()  # once for all restored steps
        exec_info = None
        try:
            if to_run and all(_is_local(graph.steps[sid]) for sid in to_run):
                # e.g. only a transition changed: re-assembling takes a second, starting
                # Prefect's temporary server several; local steps make no API call.
                exec_info = _run_local(ctx, to_run)
            elif to_run:
                from storyc.run.executor import Limits, execute

                exec_info = execute(ctx, to_run, limits=Limits(opts.rates, opts.concurrency))
        finally:
            if backend is not None:
                with contextlib.suppress(Exception):
                    backend.close()
            if len(ctx.outcomes) == len(graph.steps) and store.state.jobs:
                # every step finished: a job left in the journal belongs to an edited-away step
                store.state.jobs.clear()
            store.save()
        report = build_report(ctx, selected, to_run, exec_info, time.perf_counter() - t0)
        write_report(out_dir, report)
    base.report = report
    if not to_run:
        base.status = "up_to_date"
        base.message = "up to date"
    elif exec_info.error:
        base.status = "failed"
        base.message = f"{exec_info.error}. Finished steps are kept."
    elif exec_info.interrupted and not ctx.budget.stopped:
        base.status = "interrupted"
        base.message = "interrupted; finished steps are saved. Run the same command again to resume."
    elif ctx.budget.stopped:
        base.status = "budget"
        base.message = (
            f"budget: {ctx.budget.stopped}. Finished steps are kept; rerun with a higher --max-cost to continue."
        )
    elif exec_info.failed or exec_info.not_run:
        base.status = "failed"
        base.failed = dict(exec_info.failed)
        names = ", ".join(f"{s} ({e})" for s, e in exec_info.failed.items()) or "none"
        base.message = f"{len(exec_info.failed)} step(s) failed: {names}; {len(exec_info.not_run)} not run. Finished steps are kept."
    else:
        base.status = "built"
        base.message = (
            f"built {out_dir / 'final_video.mp4'}" if "assemble" in ctx.outcomes else f"built {len(to_run)} step(s)"
        )
    report["status"] = base.status
    write_report(out_dir, report)
    if to_run and "script" not in ctx.outcomes:
        _write_unfinished_storyboard(out_dir, graph.story, store.state, base, opts.select)
    return base


def _write_unfinished_storyboard(out_dir: Path, story: Any, state: Any, base: BuildResult, select: str | None) -> None:
    """A build that stopped before its storyboard step (a failed step, Ctrl-C, the budget,
    a --select without it) still leaves script.md and storyboard.html showing what it has
    and why it stopped, instead of the last finished build's pages."""
    if base.status == "built":
        notice = (
            f"Partial build (--select {select}): the storyboard and video were not rebuilt; steps outside "
            "the selection show their cached result, or nothing yet."
        )
    else:
        notice = f"This build did not finish ({base.status}): {base.message}"
    with contextlib.suppress(OSError):  # the build's own outcome is already recorded
        write_script_md(out_dir, story, state, notice)
        write_storyboard_html(out_dir, story, state, notice)


def _is_local(step: Any) -> bool:
    """A step that never calls the API: assembly, the storyboard, a pinned keyframe."""
    return step.kind in ("assemble", "script") or (step.kind == "keyframe" and "pinned" in step.static)


def _run_local(ctx: Any, to_run: list[str]) -> Any:
    """Run API-free steps in order, in this process (no Prefect)."""
    from storyc.run.executor import ExecResult
    from storyc.run.steps import run_step

    result = ExecResult()
    t0 = time.perf_counter()
    try:
        for sid in to_run:
            if any(d in result.failed or d in result.not_run for d in ctx.graph.steps[sid].deps):
                result.not_run.append(sid)
                continue
            try:
                run_step(ctx, sid)
                result.done.append(sid)
            except Exception as exc:  # recorded in ctx.failed by run_step
                result.failed[sid] = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    except KeyboardInterrupt:
        ctx.cancel.set()
        result.interrupted = True
        result.not_run.extend(
            s for s in to_run if s not in result.done and s not in result.failed and s not in result.not_run
        )
    result.flow_s = time.perf_counter() - t0
    result.local = True
    return result


def build_report(ctx: Any, selected, to_run, exec_info: Any, wall_s: float) -> dict:
    calls: dict[str, int] = dict.fromkeys(("image", "video", "vision", "chat"), 0)
    cost = 0.0
    retries = 0
    replayed = 0
    steps = []
    for sid in ctx.graph.order:
        outcome = ctx.outcomes.get(sid)
        if outcome is not None:
            rec = outcome.record
            for k, n in outcome.calls.items():
                calls[k] = calls.get(k, 0) + n
            cost += rec.cost_usd
            retries += outcome.retries
            replayed += outcome.replayed
            status = rec.status
        elif sid in ctx.failed:
            rec, run = ctx.failed[sid]
            for k, n in run.calls.items():
                calls[k] = calls.get(k, 0) + n
            cost += run.cost
            retries += run.retries
            replayed += run.replayed
            status = "failed"
        else:
            steps.append(
                {
                    "id": sid,
                    "status": "skipped" if sid not in selected else "pending",
                    "cached": False,
                    "api_calls": 0,
                    "attempts": 0,
                    "score": None,
                    "wall_s": 0.0,
                    "retries": 0,
                    "calls": {},
                }
            )
            continue
        steps.append(
            {
                "id": sid,
                "status": status,
                "cached": rec.cached,
                "api_calls": rec.api_calls,
                "attempts": rec.attempts,
                "score": rec.score,
                "wall_s": rec.wall_s,
                "retries": outcome.retries if outcome else ctx.failed[sid][1].retries,
                "cost_usd": rec.cost_usd,
                "calls": dict(outcome.calls if outcome else ctx.failed[sid][1].calls),
            }
        )
    report = {
        "backend": ctx.graph.backend,
        "story": str(ctx.graph.story_path),
        "api_calls": calls,
        "api_calls_total": sum(calls.values()),
        "cache_hits": sum(1 for o in ctx.outcomes.values() if o.cached),
        "cost_usd": round(cost, 6),
        "wall_s": round(wall_s, 3),
        "retries": retries,
        "calls_replayed": replayed,  # finished calls of an interrupted build, not paid again
        "steps": steps,
    }
    if exec_info is not None and not getattr(exec_info, "local", False):
        report["prefect"] = {
            "startup_s": round(exec_info.startup_s, 3),
            "flow_s": round(exec_info.flow_s, 3),
            "flow_run_id": exec_info.flow_run_id,
        }
    if "assemble" in ctx.outcomes:
        report["final_video"] = ctx.outcomes["assemble"].outputs["final_video"]
    return report
