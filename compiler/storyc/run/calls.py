"""One step execution's paid calls: `StepRun.call` (an image or a clip) and
`StepRun.check` (a vision check) are the only ways a runner pays.

Each call: replay from the per-call memo in the cache when this step already made it (a
build killed mid-loop resumes without paying again), else budget check, per-kind
throttle, bounded-backoff retries of retryable BackendErrors, counters, and the memo
entry written before the result can be lost.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from storyc.backends.base import BackendError, CallResult, ImageRequest
from storyc.graph.steps import Step
from storyc.hashing import digest, file_sha256
from storyc.model.vision import ConsistencyScore
from storyc.run.context import BuildContext
from storyc.run.errors import Cancelled
from storyc.run.retry import with_retries

Judged = tuple[ConsistencyScore, CallResult]  # what a vision check returns


class StepRun:
    """Counters and the call wrapper of one step execution."""

    def __init__(self, ctx: BuildContext, step: Step, key: str):
        self.ctx, self.step, self.key = ctx, step, key
        self.calls: Counter[str] = Counter()
        self.cost = 0.0
        self.failed_spend_usd = 0.0  # billed by calls that then failed
        self.retries = 0
        self.possibly_billed = 0  # paid calls whose outcome is unknown (deadline exceeded)
        self.replayed = 0  # calls served from the per-call memo (a resumed step)
        self.files: dict[str, str] = {}  # out-relative path → sha256 of every file written
        self.prompts: dict[str, str] = {}  # role → prompt sent (recorded in state.json)
        self.attempt_scores: dict[str, float] = {}  # judged attempt (out-relative) → score
        self._seq = 0

    def rel(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.ctx.out_dir.resolve()).as_posix()

    def keep(self, path: Path) -> str:
        """Record a file this step wrote (every attempt is kept)."""
        rel = self.rel(path)
        self.files[rel] = file_sha256(path)
        return rel

    def call(
        self,
        kind: str,
        what: str,
        invoke: Callable[[str], CallResult],
        *,
        prompt: str,
        refs: tuple[Path, ...] = (),
        dest: Path,
        estimate: float,
        params: Mapping[str, Any] | None = None,
        candidates: tuple[Path, ...] = (),
    ) -> CallResult:
        """One paid image or video call writing `dest` (or its replay from the memo):
        `invoke(prompt)` performs it. `candidates`: a best-of-N request's destinations
        (`dest` first); the ones written are `written(result, candidates)`."""
        out = self._call(
            kind,
            what,
            invoke,
            prompt=prompt,
            refs=refs,
            dest=dest,
            estimate=estimate,
            params=params,
            candidates=candidates,
        )
        return cast(CallResult, out)

    def check(
        self, what: str, invoke: Callable[[str], Judged], *, prompt: str, refs: tuple[Path, ...], estimate: float
    ) -> ConsistencyScore:
        """One paid vision check (or its replay from the memo): `invoke(prompt)` asks the judge."""
        score, _ = cast(Judged, self._call("vision", what, invoke, prompt=prompt, refs=refs, estimate=estimate))
        return score

    def _call(
        self,
        kind: str,
        what: str,
        invoke: Callable[[str], CallResult | Judged],
        *,
        prompt: str,
        refs: tuple[Path, ...],
        dest: Path | None = None,
        estimate: float,
        params: Mapping[str, Any] | None = None,
        candidates: tuple[Path, ...] = (),
    ) -> CallResult | Judged:
        self._seq += 1
        memo_key = digest(
            {
                "step": self.key,
                "seq": self._seq,
                "kind": kind,
                "what": what,
                "prompt": prompt,
                "refs": [file_sha256(r) for r in refs],
                "dest": self.rel(dest) if dest else None,
                "params": dict(params or {}),
                **({"candidates": [self.rel(c) for c in candidates]} if candidates else {}),
            }
        )
        # --force means new generations: the memo is bypassed (but still written, for a resume)
        memo = None if self.step.id in self.ctx.force else self.ctx.cache.get_call(memo_key)
        if memo is not None and (dest is None or self.rel(dest) in memo.get("files", {})):
            return self._replay(memo, dest)
        out = self._pay(kind, what, invoke, prompt, estimate)
        self._remember(memo_key, kind, prompt, written(_call_result(out), candidates) if candidates else (dest,), out)
        return out

    def _replay(self, memo: dict, dest: Path | None) -> CallResult | Judged:
        for rel, sha in memo.get("files", {}).items():
            self.ctx.cache.materialize(sha, self.ctx.path(rel))
        self.replayed += 1
        result = CallResult(path=dest, cost_usd=0.0, kind=memo.get("kind", "image"), calls=0, meta=memo.get("meta", {}))
        if "score" in memo:
            return ConsistencyScore.model_validate(memo["score"]), result
        return result

    def _pay(
        self, kind: str, what: str, invoke: Callable[[str], CallResult | Judged], prompt: str, estimate: float
    ) -> CallResult | Judged:
        ctx = self.ctx
        if ctx.cancel.is_set():
            raise Cancelled()
        ctx.budget.reserve(estimate, f"{self.step.id} {what}")
        ctx.emit("call_started", step=self.step.id, kind=kind, what=what)
        actual = 0.0
        failed_before = self.failed_spend_usd

        def throttled() -> CallResult | Judged:
            with ctx.throttle(kind):
                return invoke(prompt)

        def on_retry(attempt: int, exc: BackendError) -> None:
            self.retries += 1
            ctx.emit("retry", step=self.step.id, kind=kind, attempt=attempt, error=str(exc))

        try:
            out = with_retries(
                throttled,
                ctx.retry,
                ctx.cancel,
                on_error=lambda exc: self._count_failed_spend(kind, exc),
                on_retry=on_retry,
            )
            result = _call_result(out)
            actual = float(result.cost_usd or 0.0)
        finally:
            # failed attempts that were billed (a video whose URL expired, a blocked image)
            # count against the budget too
            ctx.budget.settle(estimate, actual + (self.failed_spend_usd - failed_before))
        self.cost += actual
        self.calls[result.kind or kind] += max(1, int(result.calls or 1))
        self.retries += int(result.retries or 0)
        self.possibly_billed += int(result.meta.get("possibly_billed", 0) or 0)
        ctx.emit("call", step=self.step.id, kind=kind, what=what, cost_usd=actual)
        return out

    def _remember(
        self, memo_key: str, kind: str, prompt: str, dests: tuple[Path | None, ...], out: CallResult | Judged
    ) -> None:
        result = _call_result(out)
        files = {self.rel(d): self.ctx.cache.put_file(d) for d in dests if d is not None}
        entry: dict[str, Any] = {
            "step_key": self.key,  # lets `storyc cache prune` keep exactly a resumable step's calls
            "files": files,
            "prompt": prompt,
            "cost_usd": float(result.cost_usd or 0.0),
            "kind": result.kind or kind,
            "meta": _jsonable(result.meta),
        }
        if isinstance(out, tuple):
            entry["score"] = out[0].model_dump(mode="json")
        self.ctx.cache.put_call(memo_key, entry)
        # the result is durable now: tests and benchmarks that kill builds count these (CONTRIBUTING.md)
        sys.audit("storyc.run.call_cached", memo_key, self.key, entry["kind"])

    def _count_failed_spend(self, kind: str, exc: BackendError) -> None:
        """A failed call may still have been billed (the backend says so on the error)."""
        calls = int(getattr(exc, "spent_calls", 0) or 0)
        usd = float(getattr(exc, "spent_usd", 0.0) or 0.0)
        self.retries += int(getattr(exc, "spent_retries", 0) or 0)  # they reached the service too
        self.possibly_billed += int(getattr(exc, "possibly_billed", 0) or 0)
        if calls:
            self.calls[kind] += calls
        if usd:
            self.cost += usd
            self.failed_spend_usd += usd


def image_call(
    ctx: BuildContext,
    dest: Path,
    refs: tuple[Path, ...],
    hints: Mapping[str, Any],
    candidates: tuple[Path, ...] = (),
) -> Callable[[str], CallResult]:
    """One image call of the story's model and frame: an edit when there are references;
    best-of-N when `candidates` holds more than one destination."""
    story, backend = ctx.story, ctx.require_backend()

    def make(prompt: str) -> CallResult:
        req = ImageRequest(
            prompt=prompt,
            model=story.models.image,
            aspect_ratio=story.aspect_ratio,
            resolution=story.resolution,
            dest=dest,
            references=refs,
            hints=hints,
            candidates=candidates if len(candidates) > 1 else (),
        )
        return backend.edit_image(req) if refs else backend.generate_image(req)

    return make


def candidate_paths(dest: Path, n: int) -> tuple[Path, ...]:
    """Where a best-of-N request's candidates go: `x_v1.jpg` for one, `x_v1_1.jpg` ...
    `x_v1_N.jpg` for N."""
    if n <= 1:
        return (dest,)
    return tuple(dest.with_name(f"{dest.stem}_{k}{dest.suffix}") for k in range(1, n + 1))


def written(result: CallResult, candidates: tuple[Path, ...]) -> tuple[Path, ...]:
    """The candidates a best-of-N call wrote (the backend fills the first ones, in order)."""
    count = int(result.meta.get("candidates", len(candidates)) or 0)
    return candidates[: max(1, min(count, len(candidates)))]


def provider_urls(role: str, result: CallResult) -> dict[str, str]:
    """{role: url} when the backend returned the asset's URL (xai does; offline does not)."""
    url = result.meta.get("url")
    return {role: str(url)} if url else {}


def _call_result(out: CallResult | Judged) -> CallResult:
    return out[1] if isinstance(out, tuple) else out


def _jsonable(meta: Mapping[str, Any] | None) -> dict:
    return {str(k): v for k, v in (meta or {}).items() if v is None or isinstance(v, (str, int, float, bool))}
