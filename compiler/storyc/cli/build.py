"""`storyc build`: compile a story into final_video.mp4 and print how it went."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from storyc.backend_name import default_backend_name
from storyc.build.options import BuildOptions, BuildResult
from storyc.build.pipeline import needs_prefect, run_build
from storyc.cli.completion import complete_target
from storyc.cli.errors import (
    EXIT_INTERRUPTED,
    fail,
    input_errors_exit,
    require_file,
    require_folder_or_nothing,
    require_prompts_folder,
    story_or_default,
    usage_error,
)
from storyc.cli.help import examples
from storyc.cli.options import (
    BackendOpt,
    CacheDirOpt,
    IgnoreCacheOpt,
    OutDirOpt,
    PromptsDirOpt,
    QuietOpt,
    SelectOpt,
    Stage,
    StoryArg,
    VerboseOpt,
    output_level,
)
from storyc.cli.output import out
from storyc.cli.progress import BuildProgress, build_summary, low_scores_summary
from storyc.cli.server import build_in_engine
from storyc.cli.watch import watch_builds
from storyc.graph.select import SelectionError
from storyc.model.targets import STEP_KIND_TARGETS
from storyc.store.state import BuildLocked

EXAMPLES = examples(
    "storyc build                                           # ./story.yaml; offline without XAI_API_KEY",
    "storyc build stories/fox_and_owl.yaml --dry-run        # planned calls and cost, no call",
    "storyc build story.yaml --select scene:3+ --max-cost 2",
    "storyc build story.yaml --draft                        # a quick 480p preview",
    "storyc build story.yaml --draft --watch                # rebuild on every save; the storyboard reloads",
    "storyc build story.yaml --until keyframes              # review the keyframes before paying for clips",
    "storyc build story.yaml --redo scene:2 --note 'the scarf is green'",
    "storyc -q build story.yaml --out build/ci              # only errors and the result line",
)


def build_command(
    story: StoryArg = None,
    backend: BackendOpt = None,
    out_dir: OutDirOpt = None,
    cache: CacheDirOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the planned calls and estimated cost; call nothing.")
    ] = False,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost", metavar="USD", help="Stop before a call that could take the build past this many USD."
        ),
    ] = None,
    select: SelectOpt = None,
    force: IgnoreCacheOpt = False,
    prompts: PromptsDirOpt = None,
    until: Annotated[
        Stage | None,
        typer.Option("--until", help="Stop after this stage, with the storyboard, to review the takes first."),
    ] = None,
    redo: Annotated[
        str | None,
        typer.Option(
            "--redo",
            metavar="TARGET",
            help="Generate this target again even if cached: scene:2, character:Ember, clip:2.",
            autocompletion=complete_target,
        ),
    ] = None,
    note: Annotated[
        str | None,
        typer.Option("--note", metavar="TEXT", help="With --redo: appended to its prompt (kept until it is approved)."),
    ] = None,
    draft: Annotated[
        bool,
        typer.Option(
            "--draft",
            help="A quick preview: a 480p fast-encoded final video (on xai, 480p clips without video corrections "
            "and one take per picture too). Cached beside the full build, which reuses what it can.",
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Exit 1 when a kept take's score is below the story's consistency_threshold (for CI)."
        ),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Build again on every save of the story or its templates, with the storyboard on localhost "
            "reloading itself; Ctrl-C stops.",
        ),
    ] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Compile a story into final_video.mp4 (incremental: only what changed is rendered).

    --verbose adds the plan and a line per call and retry.
    """
    quiet, verbose = output_level("storyc build", quiet, verbose)
    if max_cost is not None and max_cost < 0:
        usage_error("storyc build", "--max-cost must not be negative")
    if note is not None and redo is None:
        usage_error("storyc build", "--note goes with --redo TARGET (e.g. --redo scene:2 --note 'the scarf is green')")
    if watch and (dry_run or redo):
        usage_error("storyc build", "--watch builds on every save: leave out " + ("--dry-run" if dry_run else "--redo"))
    story = story_or_default("storyc build", story)
    require_file("storyc build", story)
    require_prompts_folder("storyc build", prompts)
    require_folder_or_nothing("storyc build", "--out", out_dir)
    require_folder_or_nothing("storyc build", "--cache", cache)
    chosen = backend.value if backend else default_backend_name()
    opts = BuildOptions(
        story=story,
        backend=chosen,
        out_dir=out_dir,
        cache_dir=cache,
        prompts_dir=prompts,
        dry_run=dry_run,
        max_cost=max_cost,
        select=select,
        force=force,
        until=until.value if until else None,
        redo=redo,
        note=note,
        draft=draft,
    )
    if watch:  # a long-lived process of its own: warm after its first build, no engine needed
        watch_builds(opts, quiet=quiet, verbose=verbose)
        return
    # Before anything is loaded or printed: a warm engine (storyc.run.engine) runs this very
    # command in a fork of itself, printing here; asked only when none runs, needs_prefect
    # keeps refusals, no-ops and local-only builds from starting one.
    engine_exit = None if dry_run else build_in_engine(lambda: needs_prefect(opts), quiet=quiet)
    if engine_exit is not None:
        raise typer.Exit(engine_exit)
    if not quiet:
        out(f"storyc build: backend {chosen}" + _default_note(backend, chosen))
    progress = None

    def on_event(event: str, data: Any) -> None:
        nonlocal progress
        if quiet:
            return
        if progress is None:
            progress = BuildProgress(total=0, verbose=verbose)
        progress(event, data)

    opts.on_event = on_event
    folders = {
        "backend": backend,
        "out_dir": out_dir,
        "cache": cache,
        "prompts": prompts,
        "select": select,
        "draft": draft,
    }
    # An interrupted --until build resumes up to the same stage (no clip paid for before the
    # review). --redo is not repeated: a redo that finished would be paid for again (its
    # note stays in approved/approvals.json, so the resumed build still sends it).
    resume = _resume_command(story, **folders, until=until)
    try:
        with input_errors_exit("storyc build", usage=(SelectionError,), refused=(BuildLocked,)):
            result = run_build(opts)
    except KeyboardInterrupt:  # outside the flow (loading, restoring from the cache): nothing half-done
        typer.echo(f"storyc build: interrupted; state saved. Resume with: {resume}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if progress is not None:
            progress.stop()
    for diag in [] if quiet else result.warnings:
        typer.echo(diag.format(), err=True)
    if result.status == "stopped":
        _print_stopped(result, story, _resume_command(story, **folders), out_dir, cache, quiet)
    else:
        _print_outcome(result, resume)
    if result.status == "dry_run":
        _check_dry_run_budget(result.dry_run, max_cost)
    _check_scores(result, strict)


def _check_dry_run_budget(d: dict[str, Any], max_cost: float | None) -> None:
    """--dry-run --max-cost: exit 1 when even the cheapest run (every check passing first time)
    cannot fit; a note when the dearest one would not."""
    if max_cost is None:
        return
    if d["cost_min_usd"] > max_cost:
        fail(
            "storyc build",
            f"--max-cost ${max_cost:.2f} cannot fit this build: it costs at least ${d['cost_min_usd']:.2f} "
            "(every check passing first time); raise --max-cost or build less (--select, --until)",
        )
    if d["cost_max_usd"] > max_cost:
        typer.echo(
            f"storyc build: note: --max-cost ${max_cost:.2f} fits the cheapest run but not the dearest "
            f"(${d['cost_max_usd']:.2f}): the build stops before a call that would pass it",
            err=True,
        )


def _check_scores(result: BuildResult, strict: bool) -> None:
    """Kept takes below the threshold: named on stderr after the result line; an error with --strict."""
    summary = low_scores_summary(result.report)
    if summary is None:
        return
    if strict:
        fail("storyc build", f"--strict: {summary}")
    typer.echo(f"storyc build: warning: {summary}", err=True)


def _default_note(backend: str | None, chosen: str) -> str:
    if backend:
        return ""
    return " (default: " + ("XAI_API_KEY is set)" if chosen == "xai" else "no XAI_API_KEY)")


def _resume_command(story: Path, **options: Any) -> str:
    """The command that resumes this build: the same folders and options, or the resumed
    build would miss the cache and pay again."""
    flags = [
        f"--{name.removesuffix('_dir')}" + ("" if value is True else f" {shlex.quote(str(value))}")
        for name, value in options.items()
        if value
    ]
    return " ".join(["storyc build", shlex.quote(str(story)), *flags])


def _print_outcome(result: BuildResult, resume: str) -> None:
    if result.status == "dry_run":
        _print_dry_run(result.dry_run)
        return
    rep = result.report
    if result.status == "missing":
        fail("storyc build", result.message)
    if result.status == "up_to_date":
        out(f"up to date: {result.out_dir}  (0 API calls, {rep.get('cache_hits', 0)} cached steps)")
        return
    summary = build_summary(rep)
    if result.status == "built":
        out(f"{result.message}  ({summary})")
        return
    if result.status == "interrupted":
        typer.echo(f"storyc build: interrupted ({summary}); state saved. Resume with: {resume}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    fail("storyc build", f"{result.message}  ({summary})")


def _print_stopped(
    result: BuildResult, story: Path, rest_command: str, out_dir: Path | None, cache: Path | None, quiet: bool
) -> None:
    """The end of `storyc build --until`: what was built (the result line, alone with
    --quiet), what waits, what the rest would cost (the dry-run figures), how to approve,
    and the command that builds the rest."""
    until = result.until
    built = until["built"]
    out(f"{result.message}: {len(built)} step(s) ready to review  ({build_summary(result.report)})")
    if quiet:
        return
    for sid, deps in until["waiting"].items():
        out(f"  not built: {sid} (needs {', '.join(deps)}: it is chained from that clip's last frame)")
    rest = until["rest"]
    if rest["steps"]:
        at_xai_prices = " at xAI prices" if result.backend == "offline" else ""
        out(
            f"the rest: {len(rest['steps'])} step(s), {rest['calls_min_total']} to {rest['calls_max_total']} call(s), "
            f"${rest['cost_min_usd']:.2f} to ${rest['cost_max_usd']:.2f}{at_xai_prices}"
        )
    out(f"review: {result.out_dir / 'storyboard.html'} (every take, numbered, with its approve command)")
    steps = (sid.partition(":") for sid in built)
    targets = [f"{STEP_KIND_TARGETS[kind].name}:{ident}" for kind, _, ident in steps if kind in STEP_KIND_TARGETS]
    if targets:
        folders = "".join(
            f" {flag} {shlex.quote(str(path))}" for flag, path in (("--out", out_dir), ("--cache", cache)) if path
        )
        out(f"approve: storyc approve {shlex.quote(str(story))} {targets[-1]} [--take N]{folders}")
    out(f"continue: {rest_command}")


def _print_dry_run(d: dict[str, Any]) -> None:
    draft = " (--draft)" if d.get("draft") else ""
    out(f"dry run{draft}: {len(d['steps_to_run'])} step(s) to run, {len(d['steps_cached'])} cached")
    for kind in ("image", "video", "vision", "chat", "tts"):
        lo, hi = d["calls_min"][kind], d["calls_max"][kind]
        if hi:
            out(f"  {kind:<7}{lo:>5} to {hi} call(s)")
    out(f"  total  {d['calls_min_total']:>5} to {d['calls_max_total']} call(s)")
    out(
        f"estimated cost: ${d['cost_min_usd']:.2f} (every check passes first time) to "
        f"${d['cost_max_usd']:.2f} (every loop exhausted)"
        + (" at xAI prices; the offline backend itself is free" if d["backend"] == "offline" else "")
    )
    out(json.dumps(d, sort_keys=True))
