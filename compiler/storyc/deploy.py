"""`storyc deploy`: register a Prefect deployment that builds one story on a work pool.

A team renders many stories on workers on other machines (`prefect worker start --pool
NAME`), with the story, the output folder and the build cache on shared storage mounted
at the same path everywhere. This module has two halves:

- `deploy(...)` (run by `storyc deploy`): load and lint the story (a bad story registers
  nothing), check the Prefect server and the work pool, then register the deployment.
- `storyc_render` (run by a worker): the deployed flow. A worker loads it by the module
  entrypoint `storyc.deploy.storyc_render` from the installed storyc package, so workers
  need storyc installed, never the source tree; nothing is pulled or uploaded.

The flow calls `storyc.build.pipeline.run_build`, the very code path of `storyc build`. run_build's
executor starts its own `storyc-build` flow for the steps; inside the worker's flow run
that becomes a subflow (same process, same thread), so the server shows
`storyc-render` → `storyc-build` → one task run per step, exactly as a local build records
it. Making the deployed flow the build flow itself would need a second executor path.

With `--approve keyframes` each run builds up to the keyframes, pauses for a review (a form
in the Prefect UI listing each scene's takes, or `storyc approve --run RUN_ID`), pins what
the reviewer approved, records redo notes, and then builds the rest (storyc.approval_flow).

Prefect is imported lazily: the flow object is made on first access (PEP 562 module
`__getattr__`), so importing this module, and linting a story before registering it,
costs no Prefect import.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyc.run.prefect_settings import quiet_prefect_env, run_logger_levels_kept

FLOW_NAME = "storyc-render"
DEFAULT_APPROVAL_TIMEOUT_S = 24 * 3600  # how long a paused review waits (then the run fails; the cache keeps its work)
APPROVAL_STAGES = ("keyframes",)
ENTRYPOINT = "storyc.deploy.storyc_render"  # module-path form: import storyc.deploy, get storyc_render
TAGS = ["storyc"]


class DeployError(Exception):
    """A deployment could not be registered (no server, no pool...): one clear line."""


class RenderFailed(Exception):
    """The build run by a worker did not finish: its status and storyc's one-line reason."""


@dataclass
class Deployed:
    deployment_id: str
    full_name: str  # FLOW/DEPLOYMENT, what `prefect deployment run` takes
    pool: str
    pool_created: bool
    pool_type: str
    api_url: str
    parameters: dict
    flow_run_id: str | None = None


# ─── the flow a worker runs ──────────────────────────────────────────────────


def render_story(
    story: str,
    out: str,
    cache: str,
    backend: str | None = None,
    select: str | None = None,
    force: bool = False,
    prompts: str | None = None,
    approve: str | None = None,
    approval_timeout_s: int = DEFAULT_APPROVAL_TIMEOUT_S,
) -> dict:
    """Build `story` into `out` with the cache in `cache` (absolute paths on shared storage).
    `backend` None means the worker's choice: xai when XAI_API_KEY is set in the worker's
    environment, else offline; the key itself never travels through Prefect.
    `approve="keyframes"`: build up to the keyframes, pause the flow run for a review
    (storyc.approval_flow), apply the answer, then build the rest."""
    from storyc.build.backend_choice import default_backend_name
    from storyc.build.options import BuildOptions
    from storyc.build.pipeline import run_build
    from storyc.diagnostics import StorycError
    from storyc.redact import redact

    story_path = Path(story)
    if not story_path.is_file():
        raise RenderFailed(
            f"story {story} is not a file on worker {socket.gethostname()}: mount the shared storage at the same path"
        )
    chosen = backend or default_backend_name()
    print(f"storyc render: {story} with backend {chosen} → {out}", flush=True)

    def on_event(event: str, data: Mapping[str, Any]) -> None:
        # The worker's console shows the flow run's stdout: one line per finished step.
        if event == "step_finished":
            rec = data["record"]
            print(f"{'cached' if rec.cached else 'done':<7} {rec.id}  {rec.api_calls} call(s)", flush=True)
        elif event == "step_failed":
            print(f"failed  {data['step']}: {redact(data.get('error', ''))}", flush=True)

    def build(until: str | None = None) -> Any:
        try:
            return run_build(
                BuildOptions(
                    story=story_path,
                    backend=chosen,
                    out_dir=Path(out),
                    cache_dir=Path(cache),
                    prompts_dir=Path(prompts) if prompts else None,
                    select=select,
                    force=force and until is None,
                    on_event=on_event,
                    until=until,
                )
            )
        except StorycError as exc:  # the story changed since it was deployed
            raise RenderFailed("the story does not lint:\n" + "\n".join(d.format() for d in exc.diagnostics)) from None
        except Exception as exc:  # BuildLocked, a backend that cannot start, an unwritable folder
            raise RenderFailed(redact(f"{type(exc).__name__}: {exc}")) from None

    reviewed: list[str] = []
    # The executor silences Prefect's run loggers for its own flow; this flow run's
    # summary (and a failure's reason) should still reach the server's logs.
    with run_logger_levels_kept():
        if approve:
            reviewed = _review_stage(story_path, build(until=approve), out, cache, prompts, approval_timeout_s)
        result = build()
    rep = result.report
    summary = {
        "status": result.status,
        "backend": chosen,
        "out": str(result.out_dir),
        "final_video": rep.get("final_video"),
        "api_calls": rep.get("api_calls_total", 0),
        "cache_hits": rep.get("cache_hits", 0),
        "cost_usd": rep.get("cost_usd", 0.0),
        "build_flow_run_id": (rep.get("prefect") or {}).get("flow_run_id"),
        "reviewed": reviewed,
        "approvals": rep.get("approvals"),
    }
    if not result.ok:
        raise RenderFailed(redact(f"storyc build {story}: {result.status}: {result.message}"))
    print(f"storyc render: {result.status}: {result.message or result.out_dir}", flush=True)
    return summary


def _review_stage(
    story_path: Path, stopped: Any, out: str, cache: str, prompts: str | None, timeout_s: int
) -> list[str]:
    """After the `--until keyframes` build: pause for the review, then pin the approved
    takes and record the redo notes. Returns what was done, one line each."""
    from storyc.approval_flow import apply_decision, pause_for_review, scenes_to_review
    from storyc.load.loader import load_story
    from storyc.redact import redact
    from storyc.store.state import load_state

    if not stopped.ok:
        raise RenderFailed(f"storyc build {story_path} --until keyframes: {stopped.status}: {stopped.message}")
    scenes = scenes_to_review(load_story(story_path).story, load_state(Path(out)))
    if not scenes:
        print("storyc render: every keyframe is approved already; no review", flush=True)
        return []
    print(f"storyc render: paused for the review of {len(scenes)} keyframe(s)", flush=True)
    decision = pause_for_review(scenes, Path(out), story_path, timeout_s)
    try:
        done = apply_decision(
            decision,
            story_path,
            out_dir=Path(out),
            cache_dir=Path(cache),
            prompts_dir=Path(prompts) if prompts else None,
        )
    except Exception as exc:  # a take gone, a story edited meanwhile: the run says why
        raise RenderFailed(redact(f"applying the review: {type(exc).__name__}: {exc}")) from None
    for line in done:
        print(f"storyc render: {line}", flush=True)
    return done


_flow: Any = None


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"render {Path(str((flow_run.parameters or {}).get('story', 'story'))).stem}"


def __getattr__(name: str) -> Any:
    """`storyc_render`, the Prefect flow wrapping `render_story`, made on first access."""
    global _flow
    if name != "storyc_render":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _flow is None:
        from prefect import flow

        _flow = flow(
            render_story,
            name=FLOW_NAME,
            flow_run_name=_run_name,  # "render fox_and_owl", not a random "essential-saluki"
            persist_result=False,  # the summary is logged; a worker keeps no result files
            log_prints=False,
        )
        # The deployment's entrypoint is computed from these: storyc.deploy.storyc_render.
        _flow.__name__ = "storyc_render"
        _flow.__module__ = __name__
    return _flow


# ─── registering the deployment ──────────────────────────────────────────────


def validate_story(
    story: Path, *, select: str | None = None, backend: str | None = None, prompts: Path | None = None
) -> Any:
    """Load, lint and plan the story as a build would; raises StorycError (positioned
    diagnostics) or SelectionError (bad --select). Imports no Prefect."""
    from storyc.build.prepare import prepare

    prep = prepare(story, backend=backend or "offline", prompts_dir=prompts, lint=True)
    prep.graph.select(select)
    return prep


def api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def deploy(
    story: Path,
    *,
    pool: str,
    name: str | None = None,
    out: Path | None = None,
    cache: Path | None = None,
    backend: str | None = None,
    select: str | None = None,
    force: bool = False,
    prompts: Path | None = None,
    create_pool: bool = False,
    run: bool = False,
    approve: str | None = None,
) -> Deployed:
    """Validate the story, then register (or update) the deployment FLOW_NAME/name on
    `pool`. Paths are stored absolute: workers must see them at the same place."""
    from storyc.build.options import default_out_dir
    from storyc.store.cache import default_cache_dir

    prep = validate_story(story, select=select, backend=backend, prompts=prompts)
    story_abs = prep.loaded.path.resolve()
    parameters: dict[str, Any] = {
        "story": str(story_abs),
        "out": str((out or default_out_dir(story_abs)).resolve()),
        "cache": str((cache or default_cache_dir(story_abs)).resolve()),
    }
    if backend:
        parameters["backend"] = backend  # otherwise each worker decides (XAI_API_KEY or not)
    if select:
        parameters["select"] = select
    if force:
        parameters["force"] = True
    if prompts is not None:
        parameters["prompts"] = str(Path(prompts).resolve())
    if approve is not None:
        if approve not in APPROVAL_STAGES:
            raise DeployError(f"--approve must be {' or '.join(APPROVAL_STAGES)}, not {approve!r}")
        parameters["approve"] = approve  # each run pauses after that stage for a review
    deployment_name = name or story_abs.stem

    quiet_prefect_env()
    url = api_url()
    if not url:
        # Without it Prefect would register on a temporary server that dies with us.
        raise DeployError(
            "no Prefect server: set PREFECT_API_URL=http://HOST:4200/api (start one with `prefect server start`)"
        )
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    pool_created, pool_type = False, "process"
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
        if problem is not None:
            raise DeployError(f"Prefect server at {url} is not reachable: {_first_line(problem)}")
        try:
            pool_type = client.read_work_pool(pool).type
        except ObjectNotFound:
            if not create_pool:
                raise DeployError(
                    f"work pool {pool!r} does not exist on {url}; create it with "
                    f"`prefect work-pool create {pool} --type process`, or pass --create-pool"
                ) from None
            _create_process_pool(client, pool)
            pool_created = True

    from prefect.client.schemas.objects import VersionInfo

    from storyc import __version__

    flow_obj = __getattr__("storyc_render")
    from prefect.types.entrypoint import EntrypointType

    deployment = flow_obj.to_deployment(
        name=deployment_name,
        parameters=parameters,
        description=f"storyc build of {prep.graph.story.title!r} ({story_abs})",
        tags=TAGS,
        version=__version__,
        entrypoint_type=EntrypointType.MODULE_PATH,
        # One output folder per deployment, guarded by storyc's build lock: a second run
        # waits in the queue (Prefect's ENQUEUE) instead of failing on the lock.
        concurrency_limit=1,
    )
    try:
        # An explicit version: otherwise Prefect infers one from the git repository of the
        # current directory, which says nothing about the story.
        deployment_id = deployment.apply(
            work_pool_name=pool, version_info=VersionInfo(version=__version__, type="prefect:simple")
        )
    except Exception as exc:
        raise DeployError(f"could not register the deployment on {url}: {_first_line(exc)}") from None
    result = Deployed(
        deployment_id=str(deployment_id),
        full_name=f"{FLOW_NAME}/{deployment_name}",
        pool=pool,
        pool_created=pool_created,
        pool_type=pool_type,
        api_url=url,
        parameters=parameters,
    )
    if run:
        with get_client(sync_client=True) as client:
            flow_run = client.create_flow_run_from_deployment(deployment_id)
        result.flow_run_id = str(flow_run.id)
    return result


def _create_process_pool(client: Any, pool: str) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    client.create_work_pool(
        WorkPoolCreate(
            name=pool,
            type="process",
            base_job_template=ProcessWorker.get_default_base_job_template(),
        )
    )


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]
