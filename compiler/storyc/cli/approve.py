"""`storyc approve` and `storyc unapprove`: keep the takes you like, pinned in the story.

Thin commands over storyc.author.approve (and, for `--run`, storyc.approval_flow: the answer
to a paused Prefect flow run). Registered in cli/app.py with one line each.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, NoReturn

import typer

EXIT_ERROR = 1
EXIT_USAGE = 2


def _fail(command: str, message: str, code: int = EXIT_ERROR) -> NoReturn:
    typer.echo(f"{command}: {message}", err=True)
    raise typer.Exit(code)


def _score(score: float | None) -> str:
    return "" if score is None else f", score {score:.2f}"


def _default_out(story: Path) -> Path:
    from storyc.build.options import default_out_dir

    return default_out_dir(story)


APPROVE_EPILOG = (
    "Examples:\n\n"
    "  storyc build story.yaml --until keyframes          # look at the storyboard, then:\n\n"
    "  storyc approve story.yaml scene:2 --take 2         # take 2 of scene 2's keyframe\n\n"
    "  storyc approve story.yaml character:Ember          # the kept sheet\n\n"
    "  storyc approve story.yaml --list                   # every pin, current or stale\n\n"
    "  storyc approve --run 5f0c... scene:1 scene:2@2     # a paused `deploy --approve keyframes` run\n\n"
    "Targets: character:NAME (its sheet), scene:ID (its keyframe), clip:ID (its video). The take is copied "
    "into approved/ beside the story and pinned in the story (sheet_image, keyframe_image, clip_video); "
    "commit both: builds then use it with no paid call, even on a fresh cache."
)


def approve_command(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="STORY TARGET",
            help="The story file and the target: character:NAME, scene:ID or clip:ID. "
            "With --run: only targets, each optionally TARGET@TAKE.",
            show_default=False,
        ),
    ] = None,
    take: Annotated[
        int | None,
        typer.Option(
            "--take", min=1, help="The take to approve, as numbered in the storyboard (default: the kept one)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="The build folder the takes are in (default build/<story stem>/).")
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="The build's cache (default .storyc/cache/ beside the story): what a take cost."),
    ] = None,
    prompts: Annotated[
        Path | None, typer.Option("--prompts", help="The template override folder the build used.")
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List every pin of the story and whether it is current.")
    ] = False,
    run: Annotated[
        str | None,
        typer.Option(
            "--run", metavar="RUN_ID", help="Answer a flow run paused by `storyc deploy --approve keyframes`."
        ),
    ] = None,
    redo: Annotated[
        list[str] | None,
        typer.Option("--redo", metavar="TARGET", help="With --run: regenerate this target before the clips."),
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="With --run --redo: appended to the redo's prompt.")
    ] = None,
) -> None:
    """Approve a take: copy it into approved/ beside the story and pin it in the story file."""
    args = list(arguments or [])
    if run is not None:
        _approve_run(run, args, take, redo or [], note)
        return
    if redo or note is not None:
        _fail(
            "storyc approve",
            "--redo and --note go with --run (or use storyc build --redo TARGET --note TEXT)",
            EXIT_USAGE,
        )
    if not args:
        _fail("storyc approve", "give the story file and a target (or --list, or --run RUN_ID)", EXIT_USAGE)
    story = Path(args[0])
    if not story.is_file():
        _fail("storyc approve", f"{story}: no such file", EXIT_USAGE)
    if prompts is not None and not prompts.is_dir():
        _fail("storyc approve", f"--prompts {prompts}: no such folder", EXIT_USAGE)
    if list_:
        if len(args) > 1 or take is not None:
            _fail("storyc approve", "--list takes only the story file", EXIT_USAGE)
        _list(story, out or _default_out(story), prompts)
        return
    if len(args) != 2:
        _fail("storyc approve", "give the story file and ONE target, e.g. scene:2", EXIT_USAGE)
    _approve(story, args[1], take, out or _default_out(story), cache, prompts)


def _diagnostics(exc) -> NoReturn:
    for diag in exc.diagnostics:
        typer.echo(diag.format(), err=True)
    raise typer.Exit(EXIT_ERROR)


def _approve(story: Path, target: str, take: int | None, out: Path, cache: Path | None, prompts: Path | None) -> None:
    from storyc.author.approve import ApproveError, approve
    from storyc.author.pins import PinEditError
    from storyc.diagnostics import StorycError
    from storyc.model.targets import TargetError
    from storyc.store.cache import default_cache_dir

    try:
        done = approve(
            story, target, out_dir=out, take=take, cache_dir=cache or default_cache_dir(story), prompts_dir=prompts
        )
    except StorycError as exc:
        _diagnostics(exc)
    except TargetError as exc:
        _fail("storyc approve", str(exc), EXIT_USAGE)
    except PinEditError as exc:
        _fail("storyc approve", f"cannot edit {story} safely ({exc}): the take is in approved/; pin it by hand")
    except (ApproveError, OSError) as exc:
        _fail("storyc approve", str(exc))
    t = done.take
    field = done.target.kind.pin_field
    what = f"take {t.number} of {len(done.takes)} ({t.path}{_score(t.score)}{', the kept one' if t.kept else ''})"
    if done.unchanged:
        typer.echo(f"already approved: {done.target.id} {what} is {done.file}")
    else:
        edit = f"{story}: {field}: {done.file}" if done.story_edited else f"{story} already pins {done.file}"
        typer.echo(f"approved {done.target.id} {what} → {done.file}; {edit}")
    for check in done.now_stale:
        typer.echo(f"now stale: {check.target.id}: {check.reasons[0]}", err=True)
    for hint in done.hints:
        typer.echo(f"note: {hint}", err=True)


def _list(story: Path, out: Path, prompts: Path | None) -> None:
    from storyc.author.approve import ApproveError, list_pins
    from storyc.diagnostics import StorycError

    try:
        listing = list_pins(story, out_dir=out, prompts_dir=prompts)
    except StorycError as exc:
        _diagnostics(exc)
    except ApproveError as exc:
        _fail("storyc approve", str(exc))
    rows = []
    for check in listing.checks:
        take = f"take {check.record.take}" if check.record else "–"
        status = {
            "current": "current",
            "stale": "STALE: " + "; ".join(check.reasons),
            "changed": "CHANGED: " + "; ".join(check.reasons),
            "missing": "MISSING: " + "; ".join(check.reasons),
            "unrecorded": "pinned by hand (no approval record)",
        }[check.status]
        rows.append((check.target.id, check.file, take, status))
    for tid, record in listing.unpinned_records:
        rows.append((tid, record.file, f"take {record.take}", "recorded but not pinned in the story: approve it again"))
    if not rows and not listing.notes:
        typer.echo(f"{story}: no pins")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    for row in rows:
        typer.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    for tid, text in sorted(listing.notes.items()):
        typer.echo(f"{tid}  redo note: {text!r} (appended to its prompt until it is approved)")
    stale = sum(c.status != "current" and c.status != "unrecorded" for c in listing.checks)
    typer.echo(f"{len(listing.checks)} pin(s), {stale} not current", err=True)


UNAPPROVE_EPILOG = (
    "Examples:\n\n  storyc unapprove story.yaml scene:2      # the next build renders scene 2's keyframe again"
)


def unapprove_command(
    story: Annotated[Path, typer.Argument(help="The story file.")],
    target: Annotated[str, typer.Argument(help="character:NAME, scene:ID or clip:ID.")],
) -> None:
    """Remove a pin from the story, and its file from approved/ unless another pin uses it."""
    from storyc.author.approve import ApproveError, unapprove
    from storyc.author.pins import PinEditError
    from storyc.diagnostics import StorycError
    from storyc.model.targets import TargetError

    if not story.is_file():
        _fail("storyc unapprove", f"{story}: no such file", EXIT_USAGE)
    try:
        done = unapprove(story, target)
    except StorycError as exc:
        _diagnostics(exc)
    except TargetError as exc:
        _fail("storyc unapprove", str(exc), EXIT_USAGE)
    except PinEditError as exc:
        _fail("storyc unapprove", f"cannot edit {story} safely ({exc}); remove {_pin_field(target)} by hand")
    except (ApproveError, OSError) as exc:
        _fail("storyc unapprove", str(exc))
    kept = f"; kept {', '.join(done.kept)} (used by another pin, or not in approved/)" if done.kept else ""
    removed = f"; removed {', '.join(done.removed)}" if done.removed else ""
    typer.echo(
        f"unapproved {done.target.id}: {done.target.kind.pin_field} {done.pin} removed from {story}{removed}{kept}"
    )


def _pin_field(target: str) -> str:
    from storyc.model.targets import TARGET_KINDS

    kind = TARGET_KINDS.get(target.partition(":")[0])
    return kind.pin_field if kind else "the pin"


def _approve_run(run_id: str, args: list[str], take: int | None, redo: list[str], note: str | None) -> None:
    """Answer a paused `storyc deploy --approve keyframes` flow run (storyc.approval_flow)."""
    from storyc.approval_flow import ReviewError, answer_paused_run

    approvals: dict[str, int | None] = {}
    for arg in args:
        target, _, n = arg.partition("@")
        if n and not n.isdigit():
            _fail("storyc approve", f"bad take in {arg!r}: TARGET@N, e.g. scene:2@2", EXIT_USAGE)
        approvals[target] = int(n) if n else None
    if take is not None:
        if len(approvals) != 1:
            _fail("storyc approve", "--take goes with exactly one target; write TARGET@N for several", EXIT_USAGE)
        approvals = dict.fromkeys(approvals, take)
    if note is not None and not redo:
        _fail("storyc approve", "--note goes with --redo TARGET", EXIT_USAGE)
    try:
        decision = answer_paused_run(run_id, approvals, dict.fromkeys(redo, note or ""))
    except ReviewError as exc:
        _fail("storyc approve", str(exc))
    parts = [f"{t} take {n}" for t, n in decision.approve.items()]
    typer.echo(
        f"answered flow run {run_id}: approve {', '.join(parts) or 'nothing'}"
        + (f"; redo {', '.join(decision.redo)}" if decision.redo else "")
        + f"; it resumes and renders the clips (follow it: prefect flow-run inspect {shlex.quote(run_id)})"
    )


# ─── storyc build's review options (--until, --redo, --note) ─────────────────

STAGES = ("sheets", "keyframes", "videos")
_STAGE_TARGETS = {"character": "character", "keyframe": "scene", "video": "clip"}


def check_build_review_options(until: str | None, redo: str | None, note: str | None) -> None:
    if until is not None and until not in STAGES:
        _fail("storyc build", f"--until must be sheets, keyframes or videos, not {until!r}", EXIT_USAGE)
    if note is not None and redo is None:
        _fail(
            "storyc build",
            "--note goes with --redo TARGET (e.g. --redo scene:2 --note 'the scarf is green')",
            EXIT_USAGE,
        )


def print_stopped(result, story: Path, summary: str, again: list[tuple[str, object]]) -> None:
    """The end of `storyc build --until`: what was built, what waits, what the rest would
    cost (the dry-run figures), how to approve, and the command that continues."""
    until = result.until
    built = until["built"]
    typer.echo(f"{result.message}: {len(built)} step(s) ready to review  ({summary})")
    for sid, deps in until["waiting"].items():
        typer.echo(f"  not built: {sid} (needs {', '.join(deps)}: it is chained from that clip's last frame)")
    rest = until["rest"]
    if rest["steps"]:
        offline = " at xAI prices" if result.backend == "offline" else ""
        typer.echo(
            f"the rest: {len(rest['steps'])} step(s), {rest['calls_min_total']} to {rest['calls_max_total']} call(s), "
            f"${rest['cost_min_usd']:.2f} to ${rest['cost_max_usd']:.2f}{offline}"
        )
    typer.echo(f"review: {result.out_dir / 'storyboard.html'} (every take, numbered, with its approve command)")
    targets = [f"{_STAGE_TARGETS[sid.split(':')[0]]}:{sid.split(':', 1)[1]}" for sid in built if ":" in sid]
    if targets:
        out = [f"--out {shlex.quote(str(value))}" for flag, value in again if flag == "--out" and value]
        typer.echo(
            f"approve: storyc approve {shlex.quote(str(story))} {targets[-1]} [--take N] {' '.join(out)}".rstrip()
        )
    cont = " ".join(
        ["storyc build", shlex.quote(str(story))]
        + [f"{flag} {shlex.quote(str(value))}" for flag, value in again if value]
    )
    typer.echo(f"continue: {cont}")


def deploy_review_hint(stage: str, flow_run_id: str | None) -> str:
    run = flow_run_id or "RUN_ID"
    return (
        f"each run pauses after the {stage} for a review: answer the form in the Prefect UI, or "
        f"storyc approve --run {run} [scene:ID[@TAKE]...] [--redo scene:ID --note TEXT]"
    )
