"""`storyc approve` and `storyc unapprove`: keep the takes you like, pinned in the story.

Thin commands over storyc.author.approve (and, for `approve --run`, storyc.approval_flow:
the answer to a flow run paused by `storyc deploy --approve keyframes`).
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from storyc.approval_flow import ReviewError, answer_paused_run
from storyc.author.approve import ApproveError, Listing, approve, list_pins, unapprove
from storyc.author.pins import PinEditError
from storyc.build.options import default_out_dir
from storyc.cli.completion import complete_target
from storyc.cli.errors import (
    fail,
    input_errors_exit,
    require_file,
    require_prompts_folder,
    story_or_default,
    usage_error,
)
from storyc.cli.help import examples
from storyc.cli.options import CacheDirOpt
from storyc.cli.output import out
from storyc.model.targets import TARGET_KINDS, TargetError
from storyc.store.cache import default_cache_dir

APPROVE_EXAMPLES = examples(
    "storyc build story.yaml --until keyframes          # look at the storyboard, then:",
    "storyc approve story.yaml scene:2 --take 2         # take 2 of scene 2's keyframe",
    "storyc approve character:Ember                     # ./story.yaml: Ember's kept sheet",
    "storyc approve story.yaml --list                   # every pin, current or stale",
    "storyc approve --run 5f0c... scene:1 scene:2@2     # a paused `deploy --approve keyframes` run",
)
UNAPPROVE_EXAMPLES = examples(
    "storyc unapprove story.yaml scene:2      # the next build renders scene 2's keyframe again",
)


def approve_command(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[STORY] TARGET",
            help="The story file (default ./story.yaml) and the target: "
            "character:NAME, location:NAME, scene:ID or clip:ID. "
            "With --run: only targets, each optionally TARGET@TAKE.",
            show_default=False,
        ),
    ] = None,
    take: Annotated[
        int | None,
        typer.Option(
            "--take",
            metavar="N",
            min=1,
            help="The take to approve, as numbered in the storyboard (default: the kept one).",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="The build folder the takes are in (default build/<story stem>/)."),
    ] = None,
    cache: CacheDirOpt = None,
    prompts: Annotated[
        Path | None,
        typer.Option("--prompts", metavar="DIR", help="The template override folder the build used."),
    ] = None,
    list_pins_: Annotated[
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
        typer.Option(
            "--redo",
            metavar="TARGET",
            help="With --run: generate this target again before the clips.",
            autocompletion=complete_target,
        ),
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", metavar="TEXT", help="With --run --redo: appended to the redo's prompt.")
    ] = None,
) -> None:
    """Approve a take: copy it into approved/ beside the story and pin it in the story file.

    Targets: character:NAME (its sheet), location:NAME (its plate), scene:ID (its keyframe),
    clip:ID (its video). The pin fields are sheet_image, plate_image, keyframe_image and
    clip_video; commit the story and approved/ together: builds then use the take with no
    paid call, even on a fresh cache.
    """
    args = list(arguments or [])
    if run is not None:
        _approve_run(run, args, take, redo or [], note)
        return
    if redo or note is not None:
        usage_error("storyc approve", "--redo and --note go with --run (or use storyc build --redo TARGET --note TEXT)")
    story, targets = _story_and_targets("storyc approve", args)
    require_prompts_folder("storyc approve", prompts)
    out_dir = out_dir or default_out_dir(story)
    if list_pins_:
        if targets or take is not None:
            usage_error("storyc approve", "--list takes only the story file")
        with input_errors_exit("storyc approve", refused=(ApproveError,)):
            listing = list_pins(story, out_dir=out_dir, prompts_dir=prompts)
        _print_listing(story, listing)
        return
    if len(targets) != 1:
        usage_error("storyc approve", "give the story file and ONE target, e.g. scene:2 (or --list, or --run RUN_ID)")
    with (
        _pin_edit_refused("storyc approve", story, "the take is in approved/; pin it by hand"),
        input_errors_exit("storyc approve", usage=(TargetError,), refused=(ApproveError,)),
    ):
        done = approve(
            story,
            targets[0],
            out_dir=out_dir,
            take=take,
            cache_dir=cache or default_cache_dir(story),
            prompts_dir=prompts,
        )
    t = done.take
    score = "" if t.score is None else f", score {t.score:.2f}"
    what = f"take {t.number} of {len(done.takes)} ({t.path}{score}{', the kept one' if t.kept else ''})"
    if done.unchanged:
        out(f"already approved: {done.target.id} {what} is {done.file}")
    else:
        field = done.target.kind.pin_field
        edit = f"{story}: {field}: {done.file}" if done.story_edited else f"{story} already pins {done.file}"
        out(f"approved {done.target.id} {what} → {done.file}; {edit}")
    for check in done.now_stale:
        typer.echo(f"now stale: {check.target.id}: {check.reasons[0]}", err=True)
    for hint in done.hints:
        typer.echo(f"note: {hint}", err=True)


def unapprove_command(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[STORY] TARGET",
            help="The story file (default ./story.yaml) and the target: "
            "character:NAME, location:NAME, scene:ID or clip:ID.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Remove a pin from the story, and its file from approved/ unless another pin uses it."""
    story, targets = _story_and_targets("storyc unapprove", list(arguments or []))
    if len(targets) != 1:
        usage_error("storyc unapprove", "give the story file and ONE target, e.g. scene:2")
    field = _pin_field(targets[0])
    with (
        _pin_edit_refused("storyc unapprove", story, f"remove {field} by hand"),
        input_errors_exit("storyc unapprove", usage=(TargetError,), refused=(ApproveError,)),
    ):
        done = unapprove(story, targets[0])
    kept = f"; kept {', '.join(done.kept)} (used by another pin, or not in approved/)" if done.kept else ""
    removed = f"; removed {', '.join(done.removed)}" if done.removed else ""
    out(f"unapproved {done.target.id}: {done.target.kind.pin_field} {done.pin} removed from {story}{removed}{kept}")


def _story_and_targets(command: str, args: list[str]) -> tuple[Path, list[str]]:
    """[STORY] TARGET...: the story is left out when the first word names a target (and no
    file), as every command that takes one STORY reads ./story.yaml then."""
    if args and not _names_a_target(args[0]):
        story, targets = Path(args[0]), args[1:]
    else:
        story, targets = story_or_default(command, None), args
    require_file(command, story)
    return story, targets


def _names_a_target(word: str) -> bool:
    return word.partition(":")[0] in TARGET_KINDS and not Path(word).exists()


def _pin_field(target: str) -> str:
    kind = TARGET_KINDS.get(target.partition(":")[0])
    return kind.pin_field if kind else "the pin"


@contextlib.contextmanager
def _pin_edit_refused(command: str, story: Path, by_hand: str) -> Iterator[None]:
    """A story file that cannot be edited safely (storyc.author.pins): exit 1 with what to do by hand."""
    try:
        yield
    except PinEditError as exc:
        fail(command, f"cannot edit {story} safely ({exc}); {by_hand}")


def _print_listing(story: Path, listing: Listing) -> None:
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
        out(f"{story}: no pins")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    for row in rows:
        out("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    for tid, text in sorted(listing.notes.items()):
        out(f"{tid}  redo note: {text!r} (appended to its prompt until it is approved)")
    not_current = sum(c.status not in ("current", "unrecorded") for c in listing.checks)
    typer.echo(f"{len(listing.checks)} pin(s), {not_current} not current", err=True)


def _approve_run(run_id: str, args: list[str], take: int | None, redo: list[str], note: str | None) -> None:
    """Answer a paused `storyc deploy --approve keyframes` flow run (storyc.approval_flow)."""
    approvals: dict[str, int | None] = {}
    for arg in args:
        target, _, n = arg.partition("@")
        if n and not n.isdigit():
            usage_error("storyc approve", f"bad take in {arg!r}: TARGET@N, e.g. scene:2@2")
        approvals[target] = int(n) if n else None
    if take is not None:
        if len(approvals) != 1:
            usage_error("storyc approve", "--take goes with exactly one target; write TARGET@N for several")
        approvals = dict.fromkeys(approvals, take)
    if note is not None and not redo:
        usage_error("storyc approve", "--note goes with --redo TARGET")
    with input_errors_exit("storyc approve", refused=(ReviewError,)):
        decision = answer_paused_run(run_id, approvals, dict.fromkeys(redo, note or ""))
    parts = [f"{t} take {n}" for t, n in decision.approve.items()]
    out(
        f"answered flow run {run_id}: approve {', '.join(parts) or 'nothing'}"
        + (f"; redo {', '.join(decision.redo)}" if decision.redo else "")
        + f"; it resumes and renders the clips (follow it: prefect flow-run inspect {shlex.quote(run_id)})"
    )
