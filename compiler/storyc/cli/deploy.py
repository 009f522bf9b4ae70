"""`storyc deploy`: register a Prefect deployment that builds a story on a work pool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from storyc.cli.errors import (
    input_errors_exit,
    require_file,
    require_prompts_folder,
    story_or_default,
)
from storyc.cli.help import examples
from storyc.cli.options import (
    Backend,
    IgnoreCacheOpt,
    QuietOpt,
    ReviewedStage,
    SelectOpt,
    VerboseOpt,
    output_level,
)
from storyc.cli.output import out
from storyc.deploy import Deployed, DeployError, deploy
from storyc.graph.select import SelectionError

EXAMPLES = examples(
    "storyc deploy stories/fox_and_owl.yaml --pool renders --cache /mnt/shared/cache --out /mnt/shared/out/fox",
    "storyc deploy story.yaml --pool renders --create-pool --run     # create a process pool, start one run",
    "storyc deploy story.yaml --pool renders --approve keyframes --run   # each run pauses for a review",
    "PREFECT_API_URL=http://render-host:4200/api prefect worker start --pool renders    # on each worker",
)


def deploy_command(
    pool: Annotated[
        str, typer.Option("--pool", metavar="NAME", help="The Prefect work pool whose workers run the builds.")
    ],
    story: Annotated[
        Path | None,
        typer.Argument(
            metavar="STORY",
            help="The story file; workers must see it at the same absolute path. Default: ./story.yaml.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", metavar="NAME", help="Deployment name (default: the story's file stem).")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="DIR", help="Output folder, on storage the workers mount (default build/<stem>/ here)."
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            metavar="DIR",
            help="Cache folder, on shared storage (default .storyc/cache/ beside the story).",
        ),
    ] = None,
    backend: Annotated[
        Backend | None,
        typer.Option(
            "--backend",
            help="Default: each worker's choice (xai when XAI_API_KEY is set there).",
            show_default=False,
        ),
    ] = None,
    select: SelectOpt = None,
    force: IgnoreCacheOpt = False,
    prompts: Annotated[
        Path | None,
        typer.Option(
            "--prompts",
            metavar="DIR",
            help="Template override folder, on shared storage (default: prompts/ beside the story).",
        ),
    ] = None,
    create_pool: Annotated[
        bool, typer.Option("--create-pool", help="Create the pool (type process) if it does not exist.")
    ] = False,
    run: Annotated[bool, typer.Option("--run", help="Also start one run of the deployment now.")] = False,
    approve: Annotated[
        ReviewedStage | None,
        typer.Option(
            "--approve",
            help="Each run pauses after this stage for a review (Prefect UI or storyc approve --run).",
            show_default=False,
        ),
    ] = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Register a Prefect deployment that builds STORY on a work pool (needs PREFECT_API_URL).

    --quiet prints only the result line (and the flow run started); --verbose is the default output.
    """
    quiet, verbose = output_level("storyc deploy", quiet, verbose)
    story = story_or_default("storyc deploy", story)
    require_file("storyc deploy", story)
    require_prompts_folder("storyc deploy", prompts)
    with input_errors_exit("storyc deploy", usage=(SelectionError,), refused=(DeployError,)):
        done = deploy(
            story,
            pool=pool,
            name=name,
            out=out_dir,
            cache=cache,
            backend=backend.value if backend else None,
            select=select,
            force=force,
            prompts=prompts,
            create_pool=create_pool,
            run=run,
            approve=approve.value if approve else None,
        )
    _print_deployed(done, quiet)


def _print_deployed(done: Deployed, quiet: bool) -> None:
    params = done.parameters
    out(
        f"deployed {done.full_name} (id {done.deployment_id}) on work pool {done.pool!r}"
        + (" (created, type process)" if done.pool_created else "")
        + f" at {done.api_url}"
    )
    if quiet:
        if done.flow_run_id:
            out(f"started flow run {done.flow_run_id}")
        return
    if params.get("prompts"):
        out(f"  prompts {params['prompts']}")
    out(f"  story   {params['story']}\n  out     {params['out']}\n  cache   {params['cache']}")
    out(
        "  backend "
        + (params.get("backend") or "each worker's: xai when XAI_API_KEY is set in its environment, else offline")
    )
    if done.pool_type != "process":
        out(f"note: pool type {done.pool_type!r}: its job image must have storyc installed and these paths mounted")
    out("start a worker on each machine that has storyc installed and mounts these paths:")
    out(f"  PREFECT_API_URL={done.api_url} prefect worker start --pool {done.pool}")
    out("run it:")
    out(f"  prefect deployment run '{done.full_name}'")
    if done.flow_run_id:
        out(
            f"started flow run {done.flow_run_id} (named 'render {Path(params['story']).stem}' once a worker starts it); "
            f"follow it: prefect flow-run inspect {done.flow_run_id}"
        )
    if params.get("approve"):
        out(
            f"each run pauses after the {params['approve']} for a review: answer the form in the Prefect UI, or "
            f"storyc approve --run {done.flow_run_id or 'RUN_ID'} [scene:ID[@TAKE]...] [--redo scene:ID --note TEXT]"
        )
