"""`storyc clean` (a story's build output) and `storyc cache prune` (cache entries no story uses)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from storyc.build.options import default_out_dir
from storyc.cli.errors import (
    DEFAULT_STORY,
    EXIT_USAGE,
    input_errors_exit,
    require_folder_or_nothing,
    require_prompts_folder,
    usage_error,
)
from storyc.cli.help import examples
from storyc.cli.options import CacheDirOpt, PromptsDirOpt, QuietOpt, VerboseOpt, output_level
from storyc.cli.output import human_size, out
from storyc.store.cache import CacheBusy, cache_in_use, default_cache_dir
from storyc.store.clean import CleanRefused, clean_output
from storyc.store.prune import PrunePlan, apply_prune, plan_prune

RemoveDryRunOpt = Annotated[bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")]

CLEAN_EXAMPLES = examples(
    "storyc clean stories/fox_and_owl.yaml       # removes build/fox_and_owl/",
    "storyc clean story.yaml --out build/preview --dry-run",
)


def clean_command(
    story: Annotated[
        Path | None,
        typer.Argument(
            metavar="STORY", help="The story whose build output to remove. Default: ./story.yaml.", show_default=False
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="The output folder (default build/<story stem>/, as build)."),
    ] = None,
    dry_run: RemoveDryRunOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Remove a story's build output folder (the cache is not touched).

    Only storyc output is removed (a folder with .storyc.lock, state.json or report.json),
    never while a build writes it and never through a symbolic link. The cache is NOT
    touched: use storyc cache prune for that. A missing folder is not an error.
    --verbose lists every file removed.
    """
    quiet, verbose = output_level("storyc clean", quiet, verbose)
    story = story or DEFAULT_STORY
    if out_dir is None and not story.is_file():
        usage_error("storyc clean", f"{story}: no such file (give --out to clean a folder whose story is gone)")
    folder = out_dir if out_dir is not None else default_out_dir(story)
    with input_errors_exit("storyc clean", refused=(CleanRefused,)):
        result = clean_output(folder, story=story if story.is_file() else None, dry_run=dry_run)
    if result.missing:
        out(f"{folder}: nothing to clean")
        return
    if (dry_run and not quiet) or verbose:
        for rel, size in result.files:
            out(f"{'would remove' if dry_run else 'removed'} {folder / rel}  ({human_size(size)})")
    summary = f"{folder}: {len(result.files)} file(s), {human_size(result.total_bytes)} ({result.total_bytes} bytes)"
    out(f"would remove {summary}" if dry_run else f"removed {summary} (the cache is kept)")


PRUNE_EXAMPLES = examples(
    "storyc cache prune stories/fox_and_owl.yaml --dry-run",
    "storyc cache prune stories/*.yaml --cache /mnt/shared/cache",
)


def cache_prune_command(
    stories: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="STORY",
            help="Every story whose entries to keep. Default: ./story.yaml.",
            show_default=False,
        ),
    ] = None,
    cache: CacheDirOpt = None,
    prompts: PromptsDirOpt = None,
    dry_run: RemoveDryRunOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Remove cache entries the given stories can no longer use; report what was freed.

    Keys are resolved as a build resolves them (under either backend): every step still
    reachable is kept with its objects, and so are the per-call entries an unfinished
    step may resume from. Temp files of dead processes go too. Name every story that
    shares the cache: entries of stories not named are removed. The default cache is the
    first story's. --verbose lists every file removed.
    """
    quiet, verbose = output_level("storyc cache prune", quiet, verbose)
    stories = stories or [DEFAULT_STORY]
    missing = [s for s in stories if not s.is_file()]
    if missing:
        for s in missing:
            typer.echo(f"storyc cache prune: {s}: no such file", err=True)
        raise typer.Exit(EXIT_USAGE)
    require_prompts_folder("storyc cache prune", prompts)
    require_folder_or_nothing("storyc cache prune", "--cache", cache)
    with input_errors_exit("storyc cache prune", refused=(CacheBusy,)):
        if dry_run:
            plan = plan_prune(stories, cache_dir=cache, prompts_dir=prompts)
            freed = plan.freed_bytes
        else:
            # Builds of any story hold the cache shared: refused while one runs, and
            # none starts between deciding and removing.
            with cache_in_use(cache or default_cache_dir(stories[0]), exclusive=True):
                plan = plan_prune(stories, cache_dir=cache, prompts_dir=prompts)
                freed = apply_prune(plan)
    _print_pruned(plan, freed, dry_run=dry_run, quiet=quiet, verbose=verbose)


def _print_pruned(plan: PrunePlan, freed: int, *, dry_run: bool, quiet: bool, verbose: bool) -> None:
    if (dry_run and not quiet) or verbose:
        for r in plan.removals:
            out(f"{'would remove' if dry_run else 'removed'} {r.path}  ({human_size(r.size)})")
    for story in plan.unbuilt_stories:
        typer.echo(
            f"storyc cache prune: warning: {story} has no finished step in this cache (never built into it, or "
            "built with other --prompts or STORYC_RENDER_SCALE, which are part of every key)",
            err=True,
        )
    counts = ", ".join(
        f"{plan.removed(kind)} {name}"
        for kind, name in (
            ("steps", "step entries"),
            ("calls", "call entries"),
            ("objects", "objects"),
            ("temps", "temp files"),
        )
    )
    kept = (
        f"kept {plan.kept['steps']} step, {plan.kept['calls']} call entries and {plan.kept['objects']} objects, "
        f"{human_size(plan.kept_bytes)}"
    )
    out(
        f"{'would free' if dry_run else 'freed'} {human_size(freed)} ({freed} bytes) in {plan.cache_dir}: {counts}; {kept}"
    )
