"""`storyc build`: load → lint → graph → resolve the cache → execute → assemble → reports.

This module orchestrates and never imports Prefect itself: when every step is already
in the cache the build is "up to date" without starting Prefect, and API-free steps run
in this process (storyc.run.local); only the executor starts Prefect. A bad --select and
a --max-cost that no first step fits are refused before anything starts; `needs_prefect`
tells the CLI, before any of that, whether the build would start Prefect (and so the
warm engine).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from storyc.backend_name import default_backend_name
from storyc.backends.base import Backend
from storyc.build.approvals import approval_savings, out_argument, storyboard_review
from storyc.build.backend_choice import make_backend
from storyc.build.options import BuildOptions, BuildResult, default_out_dir
from storyc.build.prepare import Prepared, prepare
from storyc.build.report_json import build_report
from storyc.diagnostics import Diagnostic
from storyc.graph.estimate import planned_calls
from storyc.graph.resolve import Resolution, resolve
from storyc.graph.select import SelectionError
from storyc.graph.steps import STAGES, StepGraph
from storyc.hashing import file_sha256
from storyc.load.loader import load_story
from storyc.model.state import BuildState
from storyc.model.story import Story
from storyc.model.targets import Target, TargetError, parse_target
from storyc.report.documents import write_report, write_script_md
from storyc.report.html import write_storyboard_html
from storyc.report.review import Review
from storyc.run.budget import Budget
from storyc.run.context import BuildContext
from storyc.run.dispatch import restore_cached
from storyc.run.executor import ExecResult, Limits, execute
from storyc.run.local import is_local, run_local
from storyc.run.retry import RetryPolicy
from storyc.store.approvals import set_redo_note
from storyc.store.cache import Cache, cache_in_use
from storyc.store.fsutil import remove_stale_temps
from storyc.store.state import BuildLock, StateJournal, StateStore

SCENE_KINDS = ("character", "keyframe", "video")  # the steps the storyboard shows per character and scene


def run_build(opts: BuildOptions) -> BuildResult:
    """Build a story. Raises StorycError (bad story / lint errors), SelectionError (bad
    --select), BuildLocked (another build holds the output folder)."""
    t0 = time.perf_counter()
    backend_name = opts.backend or default_backend_name()
    if opts.redo and opts.note is not None and not opts.dry_run:
        # before the graph: the note is part of the target's key
        set_redo_note(opts.story, _redo_target(opts, load_story(opts.story).story), opts.note)
    prep = _prepare(opts)
    warnings = prep.warnings
    if opts.dry_run or not prep.cache.root.is_dir():
        # a missing cache is created (and locked) only when the build executes
        return _resolve_and_run(opts, prep, backend_name, warnings, t0, cache_locked=False)
    # What resolution finds cached must still be there when it is restored: a
    # `storyc cache prune` is refused while this build uses the cache.
    with cache_in_use(prep.cache.root):
        return _resolve_and_run(opts, prep, backend_name, warnings, t0, cache_locked=True)


def _resolve_and_run(
    opts: BuildOptions, prep: Prepared, backend_name: str, warnings: list[Diagnostic], t0: float, *, cache_locked: bool
) -> BuildResult:
    graph = prep.graph
    out_dir = Path(opts.out_dir) if opts.out_dir else default_out_dir(prep.loaded.path)
    selected, force, res, to_run = _steps_to_run(opts, graph, prep.cache)
    base = BuildResult(status="", backend=backend_name, out_dir=out_dir, warnings=warnings)
    missing = _missing_upstream(prep, res, selected, to_run)
    if missing:
        base.status, base.message = "missing", _missing_message(missing, opts.select or "")
        return base
    if opts.dry_run:
        base.status = "dry_run"
        base.dry_run = {
            "backend": backend_name,
            "draft": opts.draft,
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
    backend = _backend_for(opts, prep, base.backend, to_run)
    lock = _lock_output(out_dir, backend)
    with lock, contextlib.nullcontext() if cache_locked else cache_in_use(prep.cache.root):
        ctx = _start(opts, prep, res, backend, out_dir, force)
        exec_info = _run(ctx, opts, to_run)
        _restore_now_known(ctx)
        report = build_report(ctx, selected, exec_info, time.perf_counter() - t0)
        savings = approval_savings(graph, ctx.outcomes, prep.approvals)
        if savings:
            report["approvals"] = savings  # the calls and dollars the approved targets did not cost
        if opts.redo:
            report["redo"] = {"target": opts.redo, "note": prep.approvals.notes.get(opts.redo)}
        write_report(out_dir, report)
    base.report = report
    _conclude(base, ctx, to_run, exec_info)
    if opts.until and base.status in ("built", "up_to_date"):
        base.status, base.message = "stopped", f"stopped after the {opts.until} (--until {opts.until})"
        base.until = report["until"] = _until_summary(graph, prep.cache, selected, opts.until)
    report["status"] = base.status
    write_report(out_dir, report)
    if (to_run or opts.until) and "script" not in ctx.outcomes:
        review = ctx.review(ctx.store.state) if ctx.review is not None else None
        _write_unfinished_storyboard(out_dir, ctx.story, ctx.store.state, base, opts.select, review)
    return base


def _steps_to_run(
    opts: BuildOptions, graph: StepGraph, cache: Cache
) -> tuple[set[str], frozenset[str], Resolution, list[str]]:
    """(selected, forced, the resolution, the steps to run in order): --select, cut at the
    --until stage, with --force and the --redo target generated again."""
    selected = graph.select(opts.select)
    if opts.until:
        selected &= graph.up_to(opts.until)
    force = frozenset(selected) if opts.force else frozenset()
    if opts.redo:
        force |= {_redo_target(opts, graph.story).step_id}
    res = resolve(graph, cache, force=set(force))
    to_run = [sid for sid in graph.order if sid in selected and not res.cached(sid)]
    return selected, force, res, to_run


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
    (no Prefect import, no output folder, no --note written): False when it stops first (bad
    story, bad or incomplete --select, a bad --redo, --max-cost below any first step's minimum
    cost, a dry run), is up to date, or has only local steps to run (assembly, the storyboard,
    approved files). Errors are left to the build."""
    if opts.dry_run:
        return False
    try:
        prep = _prepare(opts)
        selected, _force, res, to_run = _steps_to_run(opts, prep.graph, prep.cache)
    except Exception:  # the build itself reports it, in this process
        return False
    if _missing_upstream(prep, res, selected, to_run) or _over_budget(opts, prep.graph, to_run):
        return False
    return any(not is_local(prep.graph.steps[sid]) for sid in to_run)


def _prepare(opts: BuildOptions) -> Prepared:
    """The build's front end, the same for the build and for needs_prefect: the story loaded
    and linted (errors raise StorycError) and its graph (the draft's with --draft) compiled."""
    return prepare(
        opts.story,
        backend=opts.backend or default_backend_name(),
        cache_dir=opts.cache_dir,
        prompts_dir=opts.prompts_dir,
        lint=True,
        draft=opts.draft,
    )


def _redo_target(opts: BuildOptions, story: Story) -> Target:
    """The --redo target; SelectionError (a usage error) when it names nothing, or a pinned
    target (its approved file is used as is)."""
    try:
        target = parse_target(story, opts.redo or "")
    except TargetError as exc:
        raise SelectionError(f"--redo: {exc}") from None
    if target.pin(story):
        raise SelectionError(
            f"--redo {target.id}: it is approved ({target.kind.pin_field}: {target.pin(story)}); "
            f"storyc unapprove {opts.story} {target.id} first"
        )
    return target


def _until_summary(graph: StepGraph, cache: Cache, selected: set[str], stage: str) -> dict[str, Any]:
    """What `--until STAGE` built, what of that stage waits for a later one, and what the
    rest of the build would call and cost (the dry-run figures of every step not cached)."""
    res = resolve(graph, cache)
    rest = [sid for sid in graph.order if not res.cached(sid)]
    waiting = {
        sid: [d for d in step.deps if graph.steps[d].kind not in STAGES[stage]]
        for sid, step in graph.steps.items()
        if step.kind in STAGES[stage] and sid not in selected
    }
    return {
        "stage": stage,
        "built": [sid for sid in graph.order if sid in selected],
        "waiting": {sid: deps for sid, deps in waiting.items() if deps},
        "rest": {"steps": rest, **planned_calls(graph, rest)},
    }


def _missing_upstream(prep: Prepared, res: Resolution, selected: set[str], to_run: list[str]) -> dict[str, list[str]]:
    """Steps a step to run needs that are neither selected nor cached → the steps needing them."""
    needed_by: dict[str, list[str]] = {}
    for sid in to_run:
        for d in prep.graph.steps[sid].deps:
            if d not in selected and not res.cached(d):
                needed_by.setdefault(d, []).append(sid)
    return needed_by


def _missing_message(missing: dict[str, list[str]], select: str) -> str:
    first = select.split(",")[0].strip().lstrip("+").rstrip("+")
    return (
        "--select leaves out steps that are neither selected nor cached: "
        + "; ".join(f"{d} (needed by {', '.join(users)})" for d, users in missing.items())
        + f". Select them too (e.g. --select '+{first}') or build without --select."
    )


def _backend_for(opts: BuildOptions, prep: Prepared, name: str, to_run: list[str]) -> Backend | None:
    """The backend, made before the output folder (and its lock file) is created, so a
    missing XAI_API_KEY or a bad fault spec fails first; None when no step calls the API."""
    if all(is_local(prep.graph.steps[sid]) for sid in to_run):
        return None
    return opts.backend_factory(name) if opts.backend_factory else make_backend(name, prep.prompts)


def _lock_output(out_dir: Path, backend: Backend | None) -> BuildLock:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return BuildLock(out_dir).acquire()
    except BaseException:  # a locked, read-only or full folder: nothing was started
        if backend is not None:
            with contextlib.suppress(Exception):
                backend.close()
        raise


def _start(
    opts: BuildOptions, prep: Prepared, res: Resolution, backend: Backend | None, out_dir: Path, force: frozenset[str]
) -> BuildContext:
    """With the output folder locked: sweep a killed build's temp files, open the state,
    and put every cached step in the output folder (no call, no Prefect)."""
    prep.cache.clean_temps()
    # We hold the output folder's lock, so every temp file left here is a killed
    # (or interrupted in-process) build's, whatever pid it names: remove them all.
    remove_stale_temps(out_dir, any_writer=True)
    store = StateStore(
        out_dir,
        prep.graph.story,
        backend=prep.graph.backend,
        story_path=prep.loaded.path,
        story_sha256=file_sha256(prep.loaded.path),
        draft=prep.graph.draft,
    )
    ctx = BuildContext(
        graph=prep.graph,
        prompts=prep.prompts,
        backend=backend,
        cache=prep.cache,
        out_dir=out_dir,
        store=store,
        journal=StateJournal(store),
        budget=Budget(opts.max_cost),
        retry=opts.retry or RetryPolicy(),
        on_event=opts.on_event,
        force=force,
        review=storyboard_review(
            prep.graph,
            prep.prompts,
            prep.approvals,
            str(opts.story),
            out_argument(out_dir, default_out_dir(prep.loaded.path)),
        ),
    )
    for sid in prep.graph.order:
        entry, key = res.entries[sid], res.keys[sid]
        if entry is not None and key is not None:
            restore_cached(ctx, sid, key, entry, save=False)
    store.save()  # once for all restored steps
    return ctx


def _run(ctx: BuildContext, opts: BuildOptions, to_run: list[str]) -> ExecResult | None:
    """Run the steps: API-free ones in this process, any other through the Prefect flow."""
    try:
        if to_run and all(is_local(ctx.graph.steps[sid]) for sid in to_run):
            # e.g. only a transition changed: re-assembling takes a second, starting
            # Prefect's temporary server several; local steps make no API call.
            return run_local(ctx, to_run)
        if to_run:
            return execute(ctx, to_run, limits=Limits(opts.rates, opts.concurrency))
        return None
    finally:
        if ctx.backend is not None:
            with contextlib.suppress(Exception):
                ctx.backend.close()
        if len(ctx.outcomes) == len(ctx.graph.steps):
            # every step finished: a job left in the journal belongs to an edited-away step
            ctx.store.clear_jobs()
        ctx.store.save()


def _restore_now_known(ctx: BuildContext) -> None:
    """Scene steps a --select build left out whose keys could not be known before it ran
    (chained after a step it re-ran): now that their upstream outputs are known, the cached
    ones are restored, so the storyboard shows their takes and scores, not "–"."""
    restored = False
    for sid in ctx.graph.order:
        step = ctx.graph.steps[sid]
        if step.kind not in SCENE_KINDS or sid in ctx.outcomes or sid in ctx.failed or sid in ctx.force:
            continue
        if any(d not in ctx.outcomes for d in step.deps):
            continue
        key = ctx.key_of(step)
        entry = ctx.cache.get_step(key)
        if entry is not None:
            restore_cached(ctx, sid, key, entry, save=False)
            restored = True
    if restored:
        ctx.store.save()


def _conclude(base: BuildResult, ctx: BuildContext, to_run: list[str], exec_info: ExecResult | None) -> None:
    """The build's status and one-line message."""
    if not to_run or exec_info is None:
        base.status, base.message = "up_to_date", "up to date"
    elif exec_info.error:
        base.status, base.message = "failed", f"{exec_info.error}. Finished steps are kept."
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
        base.message = (
            f"{len(exec_info.failed)} step(s) failed: {names}; {len(exec_info.not_run)} not run. "
            "Finished steps are kept."
        )
    else:
        base.status = "built"
        base.message = (
            f"built {base.out_dir / 'final_video.mp4'}"
            if "assemble" in ctx.outcomes
            else f"built {len(to_run)} step(s)"
        )


def _write_unfinished_storyboard(
    out_dir: Path, story: Story, state: BuildState, base: BuildResult, select: str | None, review: Review | None
) -> None:
    """A build that stopped before its storyboard step (a failed step, Ctrl-C, the budget,
    a --select without it, --until) still leaves script.md and storyboard.html showing
    what it has and why it stopped, instead of the last finished build's pages."""
    if base.status == "stopped":
        stage = base.until["stage"]
        notice = (
            f"Stopped after the {stage} (--until {stage}): review the takes below and approve the ones you like "
            "(each target lists its storyc approve commands); build again to continue."
        )
    elif base.status == "built":
        notice = (
            f"Partial build (--select {select}): the storyboard and video were not rebuilt; steps outside "
            "the selection show their cached result, or nothing yet."
        )
    else:
        notice = f"This build did not finish ({base.status}): {base.message}"
    with contextlib.suppress(OSError):  # the build's own outcome is already recorded
        write_script_md(out_dir, story, state, notice, review)
        write_storyboard_html(out_dir, story, state, notice, review)
