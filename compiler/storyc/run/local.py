"""API-free steps (assembly, the storyboard, a pinned target) run in this process, in
order, without starting Prefect: re-assembling after a transition edit takes a second,
Prefect's temporary server several."""

from __future__ import annotations

import time

from storyc.graph.steps import Step
from storyc.run.context import BuildContext
from storyc.run.dispatch import run_step
from storyc.run.executor import ExecResult


def is_local(step: Step) -> bool:
    """A step that never calls the API: assembly, the storyboard, a pinned target."""
    return step.kind in ("assemble", "script") or step.pinned is not None


def run_local(ctx: BuildContext, to_run: list[str]) -> ExecResult:
    """Run `to_run` (API-free steps, in topological order) one after the other."""
    result = ExecResult(local=True)
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
    return result
