"""Run a build's steps as one Prefect flow: THE ONLY MODULE THAT IMPORTS PREFECT.

One flow run per build, one task run per step, submitted with `wait_for=` the futures
of its real dependencies, so independent branches (character sheets, `chain_from: none`
sequences) run concurrently and a chain waits only for its source. Paid calls are capped
per kind (concurrency semaphores) and rate limited (token buckets: image 5/s, video 1/s
by default; `STORYC_RATE_LIMITS="image=5,video=1"`, `STORYC_CONCURRENCY="image=5,video=4"`).

Without PREFECT_API_URL Prefect starts a temporary local server for the run; with it,
the run is recorded on that server (the user's, or the warm engine's when this process is
an engine's build: storyc.run.engine). The temporary server is a child process that would
outlive a killed build, so a tiny watchdog process stops it (and ffmpeg) if we die.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from storyc.backends.envspec import parse_numbers
from storyc.backends.ratelimit import DEFAULT_RATES, RateLimiter
from storyc.graph.steps import StepGraph
from storyc.run.context import BuildContext
from storyc.run.dispatch import run_step
from storyc.run.engine.home import engine_client_pid
from storyc.run.prefect_settings import quiet_prefect_env, silence_run_loggers

RATE_LIMITS_ENV = "STORYC_RATE_LIMITS"
CONCURRENCY_ENV = "STORYC_CONCURRENCY"
DEFAULT_CONCURRENCY = {"image": 5, "video": 4, "vision": 8, "chat": 4}
MAX_WORKERS = 64


class Limits:
    """Per-kind concurrency (semaphores) and request rate (token buckets)."""

    def __init__(self, rates: Mapping[str, float] | None = None, concurrency: Mapping[str, int] | None = None):
        rates = {**DEFAULT_RATES, **parse_numbers(os.environ.get(RATE_LIMITS_ENV), RATE_LIMITS_ENV), **(rates or {})}
        conc = {
            **DEFAULT_CONCURRENCY,
            **{k: int(v) for k, v in parse_numbers(os.environ.get(CONCURRENCY_ENV), CONCURRENCY_ENV).items()},
            **(concurrency or {}),
        }
        self.rates = {k: float(v) for k, v in rates.items() if v and v > 0}
        self.concurrency = {k: max(1, int(v)) for k, v in conc.items()}
        self._limiter = RateLimiter(self.rates)
        self._sems = {k: threading.BoundedSemaphore(n) for k, n in self.concurrency.items()}

    @contextlib.contextmanager
    def throttle(self, kind: str) -> Iterator[None]:
        sem = self._sems.get(kind)
        if sem is None:
            self._limiter.acquire(kind)
            yield
            return
        with sem:
            self._limiter.acquire(kind)
            yield


@dataclass
class ExecResult:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # step → error
    not_run: list[str] = field(default_factory=list)  # upstream failed / interrupted
    interrupted: bool = False
    startup_s: float = 0.0  # flow start → first step started (Prefect's fixed cost)
    flow_s: float = 0.0
    flow_run_id: str | None = None
    local: bool = False  # run in-process without Prefect (API-free steps only)
    error: str | None = None  # the executor itself failed (not a step)


# ─── the watchdog: no orphaned temporary Prefect server after a kill ─────────

_WATCHDOG = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
parent = int(sys.argv[1]); me = os.getpid(); seen = set()
def children(pid):
    out = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat') as f:
                    if int(f.read().rsplit(')', 1)[1].split()[1]) == pid: out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out
def alive(pid):
    try: os.kill(pid, 0); return True
    except ProcessLookupError: return False
    except PermissionError: return True
while alive(parent) and os.getppid() == parent:
    for c in children(parent):
        if c != me: seen.add(c)
    time.sleep(0.3)
# A child started in the last poll interval was never seen, and is init's child now:
# find it by the tag every child inherited in its environment.
needle = ('STORYC_WATCHDOG_TAG=' + sys.argv[2]).encode()
for d in os.listdir('/proc'):
    if d.isdigit() and int(d) != me:
        try:
            with open(f'/proc/{d}/environ', 'rb') as f:
                if needle in f.read().split(b'\0'): seen.add(int(d))
        except OSError:
            pass
for c in seen:
    try: os.kill(c, signal.SIGTERM)
    except OSError: pass
time.sleep(3)
for c in seen:
    try: os.kill(c, signal.SIGKILL)
    except OSError: pass
"""


_watchdog: subprocess.Popen | None = None


def start_watchdog() -> subprocess.Popen | None:
    """One process per storyc process that, when storyc dies (even by SIGKILL), stops the
    children it left (the temporary Prefect server). It lives as long as we do."""
    global _watchdog
    # With the user's PREFECT_API_URL there is no server of ours to stop; an engine's build
    # (a fork of the engine, killed when its client dies) still has ffmpeg children to stop.
    if not sys.platform.startswith("linux") or (os.environ.get("PREFECT_API_URL") and engine_client_pid() is None):
        return None
    if _watchdog is not None and _watchdog.poll() is None:
        return _watchdog
    # Every child (the server, ffmpeg) inherits this tag, so the watchdog finds it even
    # when we die right after starting it, before its next poll.
    tag = os.environ["STORYC_WATCHDOG_TAG"] = f"{os.getpid()}-{os.urandom(6).hex()}"
    try:
        _watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), tag],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,  # outside our process group: Ctrl-C does not reach it
        )
    except OSError:
        _watchdog = None
    return _watchdog


class _OwnSessionSubprocess:
    """`subprocess` for Prefect's server module: its Popen starts a new session."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen:
        kwargs.setdefault("start_new_session", True)
        return subprocess.Popen(*args, **kwargs)


def _temporary_server_in_own_session() -> None:
    """A terminal's Ctrl-C reaches the whole foreground process group. The temporary
    Prefect server in that group died with it, and the interrupted build then waited
    ~70 s for the dead server and ended in a traceback instead of exit 130. Started in
    its own session it lives until storyc stops it (Prefect's atexit), or the watchdog
    does when storyc is killed (it is still our child and carries our env tag)."""
    if os.environ.get("PREFECT_API_URL"):
        return
    from prefect.server.api import server as prefect_server

    if not isinstance(getattr(prefect_server, "subprocess", None), _OwnSessionSubprocess):
        prefect_server.subprocess = _OwnSessionSubprocess()  # type: ignore[attr-defined, assignment]  # a module's stand-in


_no_heartbeat_settings: Any = None


def _no_heartbeats_on_our_server() -> contextlib.AbstractContextManager:
    """A flow run's heartbeat thread costs ~1 s at the end of every run (it sleeps in 1 s
    steps and the run joins it). Heartbeats let a shared server's automations notice a
    crashed run: kept on the user's server (PREFECT_API_URL), off on storyc's own (the
    engine's or the temporary one), unless PREFECT_FLOWS_HEARTBEAT_FREQUENCY is set.
    The settings object is built once per process (~0.4 s of pydantic validation; the
    engine builds it before it forks its builds)."""
    global _no_heartbeat_settings
    user_server = os.environ.get("PREFECT_API_URL") and engine_client_pid() is None
    if user_server or os.environ.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY"):
        return contextlib.nullcontext()
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    current = get_settings_context()
    if _no_heartbeat_settings is None or _no_heartbeat_settings[0] is not current.settings:
        updated = current.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
        _no_heartbeat_settings = (current.settings, updated)
    return SettingsContext(profile=current.profile, settings=_no_heartbeat_settings[1])


def prepare_engine() -> None:
    """Called by the warm engine before it forks builds: what every build would otherwise
    compute first (Prefect's quiet settings)."""
    quiet_prefect_env()
    with _no_heartbeats_on_our_server():
        pass


# ─── the flow ────────────────────────────────────────────────────────────────


def _by_depth(plan: StepGraph, to_run: list[str]) -> list[str]:
    """Submission order: by depth in the graph, then story order. A submitted task holds a
    worker thread while it waits for its dependencies, so the shallowest (soonest ready)
    steps go first and a long chain never fills the pool with waiters."""
    depth: dict[str, int] = {}
    for sid in plan.order:
        depth[sid] = 1 + max((depth[d] for d in plan.steps[sid].deps), default=-1)
    index = {sid: i for i, sid in enumerate(plan.order)}
    return sorted(to_run, key=lambda sid: (depth[sid], index[sid]))


def execute(
    ctx: BuildContext, to_run: list[str], *, limits: Limits | None = None, flow_name: str = "storyc-build"
) -> ExecResult:
    """Run `to_run` (step ids in topological order) of `ctx.graph` as one Prefect flow.
    Steps outside `to_run` must already have outcomes in `ctx.outcomes`."""
    ctx.throttle = (limits or Limits()).throttle
    result = ExecResult()
    t0 = time.perf_counter()
    first_start: list[float] = []
    user_on_event = ctx.on_event

    def on_event(event: str, data: Mapping[str, Any]) -> None:
        if event in ("step_started", "step_finished") and not first_start:
            first_start.append(time.perf_counter())
        if user_on_event:
            user_on_event(event, data)

    ctx.on_event = on_event
    quiet_prefect_env()
    start_watchdog()
    try:
        with _sigint_cancels(ctx):
            ctx.emit("prefect_starting")  # the first seconds of a build, before any step runs
            _run_flow(ctx, to_run, flow_name, result)
    except KeyboardInterrupt:
        ctx.cancel.set()
        result.interrupted = True
    except Exception as exc:  # Prefect itself failed (server start-up, API unreachable...)
        ctx.cancel.set()
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        where = os.environ.get("PREFECT_API_URL") or "its temporary local server"
        result.error = f"Prefect could not run the build flow ({where}): {first}"
    finally:
        ctx.on_event = user_on_event
    result.flow_s = time.perf_counter() - t0
    result.startup_s = (first_start[0] - t0) if first_start else result.flow_s
    for sid in to_run:
        if sid in ctx.outcomes:
            result.done.append(sid)
        elif sid in ctx.failed:
            result.failed[sid] = ctx.failed[sid].record.error or "failed"
        else:
            result.not_run.append(sid)
    if ctx.cancel.is_set() and not result.error:
        result.interrupted = True
    return result


@contextlib.contextmanager
def _sigint_cancels(ctx: BuildContext) -> Iterator[None]:
    """Ctrl-C stops new calls at once (ctx.cancel), then unwinds as usual."""

    def on_sigint(signum: int, frame: Any) -> None:
        ctx.cancel.set()
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not installed from Python, nothing to restore
            signal.signal(signal.SIGINT, previous)


def _run_flow(ctx: BuildContext, to_run: list[str], flow_name: str, result: ExecResult) -> None:
    """One flow run of one task run per step, each submitted after its dependencies."""
    from prefect import flow, task

    _temporary_server_in_own_session()

    silence_run_loggers()
    from prefect.cache_policies import NO_CACHE
    from prefect.futures import PrefectFuture, wait
    from prefect.task_runners import ThreadPoolTaskRunner

    @task(persist_result=False, cache_policy=NO_CACHE, retries=0)
    def storyc_step(step_id: str) -> str:
        return run_step(ctx, step_id).key

    runner: ThreadPoolTaskRunner[str] = ThreadPoolTaskRunner(max_workers=max(4, min(MAX_WORKERS, len(to_run))))

    @flow(
        name=flow_name,
        task_runner=runner,  # type: ignore[arg-type]  # Prefect types TaskRunner as invariant in its future type
        persist_result=False,
        validate_parameters=False,
        log_prints=False,
    )
    def storyc_build() -> None:
        from prefect.runtime import flow_run

        result.flow_run_id = str(flow_run.id) if flow_run.id else None
        futures: dict[str, PrefectFuture[str]] = {}
        for sid in _by_depth(ctx.graph, to_run):
            deps = [futures[d] for d in ctx.graph.steps[sid].deps if d in futures]
            step_task = storyc_step.with_options(name=sid, task_run_name=sid)
            futures[sid] = step_task.submit(sid, wait_for=deps, return_state=False)
        wait(list(futures.values()))

    run_name = f"{ctx.graph.story_path.stem}: {len(to_run)} step(s)"
    with _no_heartbeats_on_our_server():
        storyc_build.with_options(flow_run_name=run_name)(return_state=True)
