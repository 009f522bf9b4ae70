"""What each step of the graph does: the design's consistency loops, backend-agnostic.

- character: generate the sheet (or stylise the user's reference_image by an edit),
  vision-verify it, retry up to max_character_attempts keeping the best.
- keyframe: compose from the slot references, check, targeted fix edit, re-check,
  regenerate, up to max_keyframe_iterations keeping the best; a pinned keyframe_image
  is used as is.
- video: image → video, extract first/last frame, drift check on the last frame,
  video-edit correction (only when the clip is at most 8.7 s and its last frame scores
  below its keyframe's, i.e. it drifted) up to max_video_corrections, keeping the best.
- assemble: one ffmpeg pass (storyc.media.assemble.assemble). script: script.md + storyboard.

Every attempt stays on disk in the output folder. Every paid call goes through
`StepRun.call`: budget check, per-kind throttle, bounded-backoff retries of retryable
BackendErrors, and a per-call memo in the cache, so a build killed mid-loop resumes
without paying again for the calls that had finished.

The executor (Prefect) calls `run_step(ctx, step_id)` once per step; nothing here
imports Prefect.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager

from storyc.backends.base import BackendError, CallResult, ImageRequest, JudgeRequest, ModerationBlocked, VideoRequest
from storyc.graph.keys import outputs_digest, step_key
from storyc.graph.steps import Step, StepGraph
from storyc.model.state import StepRecord
from storyc.model.story import VIDEO_EDIT_MAX_S
from storyc.model.vision import ConsistencyScore
from storyc.store.cache import Cache
from storyc.store.fsutil import atomic_copy
from storyc.store.hashing import digest, file_sha256

# ─── errors ──────────────────────────────────────────────────────────────────


class Cancelled(Exception):
    """The build was interrupted (Ctrl-C) or stopped; no new call starts."""


class BudgetExceeded(Exception):
    """The next call could take the build past --max-cost."""


class MissingUpstream(Exception):
    """A step's dependency has no outputs (it failed or was not built)."""


# ─── shared build context ────────────────────────────────────────────────────


@dataclass
class RetryPolicy:
    max_retries: int = 4  # per call, for retryable BackendErrors
    base_s: float = 0.5  # backoff: base * 2^(n-1), capped
    cap_s: float = 8.0


class Budget:
    """--max-cost: a call starts only if spent + in-flight estimates + its own estimate fit."""

    def __init__(self, max_usd: float | None):
        self.max_usd = max_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.stopped: str | None = None  # the message of the call that was refused
        self._lock = threading.Lock()

    def reserve(self, estimate: float, what: str) -> None:
        with self._lock:
            if self.stopped:  # another call already hit the budget: this one never starts
                raise BudgetExceeded(f"not started ({what}): the budget stopped the build")
            if self.max_usd is not None and self.spent + self.reserved + estimate > self.max_usd + 1e-9:
                self.stopped = (
                    f"stopped before {what} (estimated ${estimate:.4f}): ${self.spent:.4f} spent"
                    f"{f' + ${self.reserved:.4f} in flight' if self.reserved else ''} of the --max-cost ${self.max_usd:.2f} budget"
                )
                raise BudgetExceeded(self.stopped)
            self.reserved += estimate

    def settle(self, estimate: float, actual: float) -> None:
        with self._lock:
            self.reserved = max(0.0, self.reserved - estimate)
            self.spent += actual


@dataclass
class StepOutcome:
    id: str
    key: str
    files: dict[str, str]  # out-relative path → sha256 (every file the step wrote)
    outputs: dict[str, str]  # role → out-relative path
    record: StepRecord
    asset: dict | None = None
    cached: bool = False
    retries: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    replayed: int = 0  # calls served from the per-call memo (a resumed step)

    @property
    def digest(self) -> str:
        return outputs_digest(self.files, self.outputs)


@dataclass
class BuildContext:
    graph: StepGraph
    prompts: Any
    backend: Any
    cache: Cache
    out_dir: Path
    store: Any  # buildstate.StateStore
    journal: Any  # buildstate.StateJournal
    budget: Budget = field(default_factory=lambda: Budget(None))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    throttle: Callable[[str], ContextManager] = lambda kind: contextlib.nullcontext()
    cancel: threading.Event = field(default_factory=threading.Event)
    on_event: Callable[[str, Mapping[str, Any]], None] | None = None
    force: frozenset = frozenset()  # step ids whose cache entry is ignored
    review: Callable[[Any], Any] | None = None  # state → the storyboard's approvals (storyc.build.approvals)
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)
    failed: dict[str, tuple[StepRecord, StepRun]] = field(default_factory=dict)

    @property
    def story(self):
        return self.graph.story

    @property
    def base_dir(self) -> Path:
        return self.graph.story_path.parent

    def emit(self, event: str, **data: Any) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event, data)
            except Exception:  # progress display must never break a build
                pass

    def path(self, rel: str) -> Path:
        return self.out_dir / rel

    def upstream(self, step: Step) -> dict[str, StepOutcome]:
        missing = [d for d in step.deps if d not in self.outcomes]
        if missing:
            raise MissingUpstream(f"{step.id} cannot run: {', '.join(missing)} did not finish")
        return {d: self.outcomes[d] for d in step.deps}

    def key_of(self, step: Step) -> str:
        return step_key(step, {d: o.digest for d, o in self.upstream(step).items()})


# ─── one step's paid calls ───────────────────────────────────────────────────


class StepRun:
    """Counters and the call wrapper of one step execution."""

    def __init__(self, ctx: BuildContext, step: Step, key: str):
        self.ctx, self.step, self.key = ctx, step, key
        self.calls: Counter[str] = Counter()
        self.cost = 0.0
        self.failed_spend_usd = 0.0  # billed by calls that then failed
        self.retries = 0
        self.replayed = 0  # calls served from the per-call memo (a resumed step)
        self.files: dict[str, str] = {}
        self.prompts: dict[str, str] = {}
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
        invoke: Callable[[str], Any],
        *,
        prompt: str,
        refs: tuple[Path, ...] = (),
        dest: Path | None = None,
        estimate: float,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[Any, str]:
        """Make one paid call (or replay it from the memo). `invoke(prompt)` performs it and
        returns a CallResult, or (ConsistencyScore, CallResult) for a judge.
        Returns (the invoke's result, the prompt actually sent)."""
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
            }
        )
        # --force means new generations: the memo is bypassed (but still written, for a resume)
        memo = None if self.step.id in self.ctx.force else self.ctx.cache.get_call(memo_key)
        if memo is not None and (dest is None or self.rel(dest) in memo.get("files", {})):
            for rel, sha in memo.get("files", {}).items():
                self.ctx.cache.materialize(sha, self.ctx.path(rel))
            self.replayed += 1
            return _replay(memo, dest), memo.get("prompt", prompt)

        if self.ctx.cancel.is_set():
            raise Cancelled()
        self.ctx.budget.reserve(estimate, f"{self.step.id} {what}")
        self.ctx.emit("call_started", step=self.step.id, kind=kind, what=what)
        actual = 0.0
        failed_before = self.failed_spend_usd
        try:
            sent, out = self._with_retries(kind, invoke, prompt)
            result: CallResult = out[1] if isinstance(out, tuple) else out
            actual = float(result.cost_usd or 0.0)
        finally:
            # failed attempts that were billed (a video whose URL expired, a blocked image)
            # count against the budget too
            self.ctx.budget.settle(estimate, actual + (self.failed_spend_usd - failed_before))
        self.cost += actual
        self.calls[result.kind or kind] += max(1, int(result.calls or 1))
        self.retries += int(result.retries or 0)
        self.ctx.emit("call", step=self.step.id, kind=kind, what=what, cost_usd=actual)

        files = {}
        if dest is not None:
            files[self.rel(dest)] = self.ctx.cache.put_file(dest)
        entry = {
            "step_key": self.key,  # lets `storyc cache prune` keep exactly a resumable step's calls
            "files": files,
            "prompt": sent,
            "cost_usd": actual,
            "kind": result.kind or kind,
            "meta": _jsonable(result.meta),
        }
        if isinstance(out, tuple):
            entry["score"] = out[0].model_dump(mode="json")
        self.ctx.cache.put_call(memo_key, entry)
        return out, sent

    def _count_failed_spend(self, kind: str, exc: BaseException) -> None:
        """A failed call may still have been billed (the backend says so on the error)."""
        calls = int(getattr(exc, "spent_calls", 0) or 0)
        usd = float(getattr(exc, "spent_usd", 0.0) or 0.0)
        if calls:
            self.calls[kind] += calls
        if usd:
            self.cost += usd
            self.failed_spend_usd += usd

    def _with_retries(self, kind: str, invoke: Callable[[str], Any], prompt: str) -> tuple[str, Any]:
        policy = self.ctx.retry
        attempt = 0
        while True:
            try:
                with self.ctx.throttle(kind):
                    return prompt, invoke(prompt)
            except ModerationBlocked as exc:
                # The backend already made its one reworded attempt (design: reword once,
                # then give up); paying for more would not be honest about cost.
                self._count_failed_spend(kind, exc)
                raise
            except BackendError as exc:
                self._count_failed_spend(kind, exc)
                if not exc.retryable or attempt >= policy.max_retries:
                    raise
                attempt += 1
                self.retries += 1
                self.ctx.emit("retry", step=self.step.id, kind=kind, attempt=attempt, error=str(exc))
                # interruptible backoff: Ctrl-C does not wait for the sleep
                if self.ctx.cancel.wait(min(policy.cap_s, policy.base_s * 2 ** (attempt - 1))):
                    raise Cancelled() from None


def _image_call(ctx: Any, dest: Path, refs: tuple[Path, ...], hints: Mapping[str, Any]) -> Callable[[str], CallResult]:
    """One image call of the story's model and frame: an edit when there are references."""
    story = ctx.story

    def make(prompt: str) -> CallResult:
        req = ImageRequest(
            prompt=prompt,
            model=story.models.image,
            aspect_ratio=story.aspect_ratio,
            resolution=story.resolution,
            dest=dest,
            references=refs,
            hints=hints,
        )
        return ctx.backend.edit_image(req) if refs else ctx.backend.generate_image(req)

    return make


def _jsonable(meta: Mapping[str, Any] | None) -> dict:
    out = {}
    for k, v in (meta or {}).items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[str(k)] = v
    return out


def _replay(memo: dict, dest: Path | None) -> Any:
    result = CallResult(path=dest, cost_usd=0.0, kind=memo.get("kind", "image"), calls=0, meta=memo.get("meta", {}))
    if "score" in memo:
        return ConsistencyScore.model_validate(memo["score"]), result
    return result


# ─── estimates used by the budget (worst case of one call) ───────────────────


def _est_image(n_inputs: int) -> float:
    from storyc.model.prices import image_cost

    return image_cost(n_inputs)


def _est_video(duration_s: float, resolution: str) -> float:
    from storyc.model.prices import video_cost

    return video_cost(duration_s, resolution)


def _est_vision(n_images: int) -> float:
    from storyc.model.prices import chat_cost

    return chat_cost(None, n_images=n_images)


# ─── the steps ───────────────────────────────────────────────────────────────


DRIFT_MARGIN = 0.05  # a last frame this much below its keyframe's score has drifted


def _better(score: float, best: float | None) -> bool:
    return best is None or score > best


# The fix_edit template already says "Change ONLY <element>: ... Keep everything else
# identical. Do not alter any character not mentioned."; a judge asked for a fix_prompt
# "of the form Change ONLY <element>: <fix>" returns that frame too, so it is unwrapped
# here rather than sent twice.
_CHANGE_ONLY = re.compile(r"^\s*change\s+only\s+(?:(?P<element>[^:]{1,120}):\s*)?(?P<fix>.*)$", re.I | re.S)
_BOILERPLATE = re.compile(
    r"\s*(keep everything else (?:exactly )?identical|do not (?:alter|change) (?:any|anything|any character)[^.]*?not mentioned)\s*[.!]?",
    re.I,
)


def _fix_target(score: ConsistencyScore) -> tuple[str, str, str]:
    """What a targeted fix edit should change: (the worst-scoring character, the element
    to name in the edit prompt, the fix itself without the template's own framing)."""
    character = min(score.per_character, key=score.per_character.get) if score.per_character else "the scene"
    element, fix = character, score.fix_prompt or ""
    match = _CHANGE_ONLY.match(fix)
    if match:
        element = (match.group("element") or "").strip() or character
        fix = match.group("fix")
        # the judge's own element ("Sage's ribbon") names whose sheet anchors the fix
        named = [n for n in score.per_character if re.match(rf"{re.escape(n)}\b", element)]
        character = max(named, key=len) if named else character
    fix = _BOILERPLATE.sub(" ", fix).strip()
    if fix.rstrip(" .") in (element, character):  # "Change ONLY Ember." says what, not how
        fix = ""
    if not fix:
        fix = "; ".join(score.issues) or "match the reference images exactly"
    return character, element, fix


def _url(result: CallResult, rel: str) -> str:
    return str(result.meta.get("url") or rel)


def run_character(ctx: BuildContext, run: StepRun) -> tuple[dict, dict, float | None, int, int]:
    story, step = ctx.story, run.step
    c = story.character(step.character)
    q = story.quality
    reference = (ctx.base_dir / c.reference_image) if c.reference_image else None
    prompt = step.static["prompts"]["sheet"]
    check = step.static["prompts"]["check"]
    run.prompts.update(sheet=prompt, check=check)
    hints = {"step_id": step.id, "step": "character", "name": c.name, "visual_description": c.visual_description}
    best: tuple[float, str, str] | None = None  # score, rel path, url
    attempts = 0
    for attempt in range(1, q.max_character_attempts + 1):
        attempts = attempt
        dest = ctx.path(f"character_sheets/{c.name}_v{attempt}.jpg")
        refs = (reference,) if reference else ()
        req_hints = {**hints, "attempt": attempt}

        make = _image_call(ctx, dest, refs, req_hints)

        result, _ = run.call(
            "image",
            f"sheet v{attempt}",
            make,
            prompt=prompt,
            refs=refs,
            dest=dest,
            estimate=_est_image(len(refs)),
            params={"attempt": attempt},
        )
        rel = run.keep(dest)

        def judge(p: str, dest=dest) -> tuple[ConsistencyScore, CallResult]:
            return ctx.backend.judge(
                JudgeRequest(
                    kind="sheet",
                    prompt=p,
                    model=story.models.vision,
                    image=dest,
                    references=(reference,) if reference else (),
                    names=(c.name,),
                    hints={
                        "step_id": step.id,
                        "step": "check_sheet",
                        "name": c.name,
                        "attempt": attempt,
                        "visual_description": c.visual_description,
                    },
                )
            )

        (score, _), _ = run.call(
            "vision", f"check sheet v{attempt}", judge, prompt=check, refs=(dest,), estimate=_est_vision(1)
        )
        run.attempt_scores[rel] = score.overall_score
        if _better(score.overall_score, best[0] if best else None):
            best = (score.overall_score, rel, _url(result, rel))
        if score.overall_score >= q.consistency_threshold:
            break
    outputs = {"sheet": best[1]}
    asset = {
        "name": c.name,
        "portrait_url": best[2],
        "portrait_path": best[1],
        "visual_description": c.visual_description,
        "consistency_score": best[0],
        "generation_attempts": attempts,
    }
    return outputs, asset, best[0], attempts, 0


def _sheet(ctx: BuildContext, up: Mapping[str, StepOutcome], name: str) -> Path:
    return ctx.path(up[f"character:{name}"].outputs["sheet"])


def run_keyframe(ctx: BuildContext, run: StepRun) -> tuple[dict, dict, float | None, int, int]:
    from storyc.prompts.slots import allocate_slots, judge_characters

    story, step = ctx.story, run.step
    i = step.scene_index
    scene = story.scenes[i]
    q = story.quality
    up = ctx.upstream(step)
    video_prompt = ctx.prompts.video(i)

    slots = allocate_slots(story, i)
    refs: list[Path] = []
    for s in slots.slots:
        if s.kind == "character":
            refs.append(_sheet(ctx, up, s.name))
        elif s.source == "last_frame":
            refs.append(ctx.path(up[f"video:{s.scene_id}"].outputs["last_frame"]))
        else:
            refs.append(ctx.path(up[f"keyframe:{s.scene_id}"].outputs["keyframe"]))
    judged = judge_characters(story, i)
    judge_refs = tuple(_sheet(ctx, up, n) for n in judged)
    compose = step.static["prompts"]["compose"]
    check = step.static["prompts"]["check"]
    run.prompts.update(compose=compose, check=check)
    hints = {
        "step_id": step.id,
        "step": "keyframe",
        "scene_id": scene.scene_id,
        "setting": scene.setting,
        "mood": scene.mood,
        "palette": story.color_palette,
        "camera": scene.camera,
        "slots": [
            {"kind": s.kind, "name": s.name} if s.kind == "character" else {"kind": s.kind, "scene_id": s.scene_id}
            for s in slots.slots
        ],
        "text_only": list(slots.text_only),
        "characters": {n: story.character(n).visual_description for n in judged},
    }

    best: tuple[float, Path, str, str] | None = None  # score, path, rel, url
    action, attempts, edits, fix_note = "compose", 0, 0, None
    for iteration in range(1, q.max_keyframe_iterations + 1):
        attempts = iteration
        dest = ctx.path(f"keyframes/scene_{scene.scene_id}_v{iteration}.jpg")
        if action == "compose":
            req_refs = tuple(refs)
            prompt = compose
            req_hints = {**hints, "attempt": iteration}
        else:  # targeted fix of the best so far, re-anchored on the character's sheet
            character, element, fix = fix_note
            sheet = judge_refs[judged.index(character)] if character in judged else None
            if sheet is not None:  # design technique 7: fix against the sheet, not from memory
                fix = f"{fix.rstrip('. ')}. {character} must look exactly as in reference image 2 (their character sheet)."
            prompt = ctx.prompts.fix_edit(element, fix)
            run.prompts[f"fix_{iteration}"] = prompt
            req_refs = (best[1], sheet) if sheet is not None else (best[1],)
            req_hints = {**hints, "step": "fix", "attempt": iteration, "element": character, "fix": fix}
            edits += 1

        make = _image_call(ctx, dest, req_refs, req_hints)

        result, _ = run.call(
            "image",
            f"{action} v{iteration}",
            make,
            prompt=prompt,
            refs=req_refs,
            dest=dest,
            estimate=_est_image(len(req_refs)),
            params={"iteration": iteration, "action": action},
        )
        rel = run.keep(dest)

        def judge(p: str, dest=dest) -> tuple[ConsistencyScore, CallResult]:
            return ctx.backend.judge(
                JudgeRequest(
                    kind="keyframe",
                    prompt=p,
                    model=story.models.vision,
                    image=dest,
                    references=judge_refs,
                    names=tuple(judged),
                    hints={**hints, "step": "check_keyframe", "attempt": iteration},
                )
            )

        (score, _), _ = run.call(
            "vision",
            f"check v{iteration}",
            judge,
            prompt=check,
            refs=(dest, *judge_refs),
            estimate=_est_vision(1 + len(judge_refs)),
        )
        run.attempt_scores[rel] = score.overall_score
        if _better(score.overall_score, best[0] if best else None):
            best = (score.overall_score, dest, rel, _url(result, rel))
        if score.overall_score >= q.consistency_threshold:
            break
        # compose → fix → regenerate → fix ...: a fix only follows a fresh composition
        if action == "compose" and (score.issues or score.fix_prompt or score.per_character):
            action, fix_note = "fix", _fix_target(score)
        else:
            action = "compose"
    asset = {
        "scene_id": scene.scene_id,
        "keyframe_url": best[3],
        "keyframe_path": best[2],
        "consistency_score": best[0],
        "generation_attempts": attempts,
        "edit_passes": edits,
        "video_prompt": video_prompt,
    }
    return {"keyframe": best[2]}, asset, best[0], attempts, edits


def run_video(ctx: BuildContext, run: StepRun) -> tuple[dict, dict, float | None, int, int]:
    from storyc.media.probe import extract_frame, probe
    from storyc.prompts.slots import judge_characters

    story, step = ctx.story, run.step
    i = step.scene_index
    scene = story.scenes[i]
    q = story.quality
    up = ctx.upstream(step)
    keyframe = ctx.path(up[f"keyframe:{scene.scene_id}"].outputs["keyframe"])
    judged = judge_characters(story, i)
    judge_refs = tuple(_sheet(ctx, up, n) for n in judged if f"character:{n}" in up)
    judged = tuple(n for n in judged if f"character:{n}" in up)
    prompt = step.static["prompts"]["video"]
    check = step.static["prompts"]["check"]
    run.prompts.update(video=prompt, check=check)
    hints = {
        "step_id": step.id,
        "step": "video",
        "scene_id": scene.scene_id,
        "camera": scene.camera,
        "action": scene.action,
        "mood": scene.mood,
    }
    sid = scene.scene_id

    def judge_clip(clip: Path, suffix: str, attempt: int) -> tuple[ConsistencyScore, Path, Path]:
        first = ctx.path(f"frames/scene_{sid}{suffix}_first.jpg")
        last = ctx.path(f"frames/scene_{sid}{suffix}_last.jpg")
        extract_frame(clip, first, "first")
        extract_frame(clip, last, "last")
        run.keep(first)
        run.keep(last)

        def judge(p: str) -> tuple[ConsistencyScore, CallResult]:
            return ctx.backend.judge(
                JudgeRequest(
                    kind="last_frame",
                    prompt=p,
                    model=story.models.vision,
                    image=last,
                    references=judge_refs,
                    names=judged,
                    hints={**hints, "step": "check_last_frame", "attempt": attempt},
                )
            )

        (score, _), _ = run.call(
            "vision",
            f"drift check{suffix}",
            judge,
            prompt=check,
            refs=(last, *judge_refs),
            estimate=_est_vision(1 + len(judge_refs)),
        )
        return score, first, last

    dest = ctx.path(f"videos/scene_{sid}.mp4")

    def make(p: str) -> CallResult:
        req = VideoRequest(
            prompt=p,
            model=story.models.video,
            dest=dest,
            image=keyframe,
            duration_s=scene.duration_seconds,
            aspect_ratio=story.aspect_ratio,
            resolution=story.resolution,
            hints={**hints, "attempt": 1},
        )
        return ctx.backend.image_to_video(req, job_key=f"{run.key[:20]}:clip", journal=ctx.journal)

    result, _ = run.call(
        "video",
        "image→video",
        make,
        prompt=prompt,
        refs=(keyframe,),
        dest=dest,
        estimate=_est_video(scene.duration_seconds, story.resolution),
    )
    rel = run.keep(dest)
    score, first, last = judge_clip(dest, "", 1)
    run.attempt_scores[rel] = score.overall_score
    best = (score.overall_score, dest, rel, _url(result, rel), first, last)
    corrections = 0
    correctable = scene.duration_seconds <= VIDEO_EDIT_MAX_S
    # A correction fixes drift *during* the clip: a last frame that scores about as well as
    # the keyframe it started from (say, a keyframe whose own loop ended below the
    # threshold) did not drift, and a video edit cannot make it better than its start.
    start_score = up[f"keyframe:{sid}"].record.score  # None for a pinned keyframe: unknown

    def drifted(s: ConsistencyScore) -> bool:
        return start_score is None or s.overall_score < start_score - DRIFT_MARGIN

    while (
        score.overall_score < q.consistency_threshold
        and correctable
        and drifted(score)
        and corrections < q.max_video_corrections
    ):
        corrections += 1
        fix = ctx.prompts.video_fix(i, list(score.issues) or [score.fix_prompt or "keep every character on model"])
        run.prompts[f"fix_{corrections}"] = fix
        source = best[1]
        dest_c = ctx.path(f"videos/scene_{sid}_c{corrections}.mp4")

        def edit(p: str, dest_c=dest_c, source=source, n=corrections) -> CallResult:
            req = VideoRequest(
                prompt=p,
                model=story.models.video,
                dest=dest_c,
                video=source,
                duration_s=scene.duration_seconds,
                aspect_ratio=story.aspect_ratio,
                resolution=story.resolution,
                hints={**hints, "step": "video_fix", "attempt": 1 + n, "issues": list(score.issues)},
            )
            return ctx.backend.edit_video(req, job_key=f"{run.key[:20]}:c{n}", journal=ctx.journal)

        result, _ = run.call(
            "video",
            f"correction c{corrections}",
            edit,
            prompt=fix,
            refs=(source,),
            dest=dest_c,
            estimate=_est_video(scene.duration_seconds, story.resolution),
            params={"correction": corrections},
        )
        rel_c = run.keep(dest_c)
        score, first, last = judge_clip(dest_c, f"_c{corrections}", 1 + corrections)
        run.attempt_scores[rel_c] = score.overall_score
        if _better(score.overall_score, best[0]):
            best = (score.overall_score, dest_c, rel_c, _url(result, rel_c), first, last)
    duration = float(scene.duration_seconds)
    with contextlib.suppress(Exception):
        duration = round(probe(best[1]).duration_s, 3)
    outputs = {"video": best[2], "first_frame": run.rel(best[4]), "last_frame": run.rel(best[5])}
    asset = {
        "scene_id": sid,
        "video_url": best[3],
        "video_path": best[2],
        "duration": duration,
        "first_frame_path": outputs["first_frame"],
        "last_frame_path": outputs["last_frame"],
        "consistency_score": best[0],
        "correction_passes": corrections,
    }
    return outputs, asset, best[0], 1 + corrections, corrections


def run_assemble(ctx: BuildContext, run: StepRun) -> tuple[dict, dict, float | None, int, int]:
    from storyc.media.assemble import Clip, assemble
    from storyc.media.ffmpeg import dimensions

    story = ctx.story
    up = ctx.upstream(run.step)
    clips = [
        Clip(
            path=ctx.path(up[f"video:{s.scene_id}"].outputs["video"]),
            duration_s=float(s.duration_seconds),
            transition_in=s.transition,  # a scene's transition is how it is entered
        )
        for s in story.scenes
    ]
    width, height = dimensions(story.aspect_ratio, story.resolution)
    dest = ctx.path("final_video.mp4")
    assemble(clips, dest, width, height, fps=run.step.static.get("fps", 24))
    rel = run.keep(dest)
    return {"final_video": rel}, {"final_video_path": rel}, None, 1, 0


def run_script(ctx: BuildContext, run: StepRun) -> tuple[dict, dict, float | None, int, int]:
    state = ctx.store.snapshot()
    outputs = {}
    try:
        from storyc.report import documents as report
    except ImportError:  # reports land separately: a bare script.md until then
        dest = ctx.path("script.md")
        from storyc.store.fsutil import atomic_write_bytes

        lines = [f"# {ctx.story.title}", ""] + [
            f"- scene {k.scene_id}: keyframe `{k.keyframe_path}`" for k in state.keyframes
        ]
        atomic_write_bytes(dest, ("\n".join(lines) + "\n").encode())
        return {"script": run.keep(dest)}, None, None, 1, 0
    review = ctx.review(state) if ctx.review is not None else None
    written = report.write_script_md(ctx.out_dir, ctx.story, state, review=review)
    outputs["script"] = run.keep(Path(written) if written else ctx.path("script.md"))
    with contextlib.suppress(AttributeError):
        html = report.write_storyboard_html(ctx.out_dir, ctx.story, state, review=review)
        outputs["storyboard"] = run.keep(Path(html) if html else ctx.path("storyboard.html"))
    return outputs, None, None, 1, 0


def run_pinned(ctx: BuildContext, run: StepRun) -> tuple[dict, dict, float | None, int, int]:
    """A pinned target (storyc.graph.builder._pinned_step): its file copied into the output
    folder as is, no call. A pinned clip's first and last frames are extracted locally, as
    for a generated one (a chained scene reads its last frame)."""
    step, story = run.step, ctx.story
    src = ctx.base_dir / step.pinned
    suffix = src.suffix.lower()
    if step.kind == "character":
        c = story.character(step.character)
        dest = ctx.path(f"character_sheets/{c.name}_pinned{suffix or '.jpg'}")
        atomic_copy(src, dest)
        rel = run.keep(dest)
        asset = {
            "name": c.name,
            "portrait_url": rel,
            "portrait_path": rel,
            "visual_description": c.visual_description,
            "consistency_score": 1.0,
            "generation_attempts": 0,
        }
        return {"sheet": rel}, asset, None, 0, 0
    sid = step.scene_id
    if step.kind == "keyframe":
        dest = ctx.path(f"keyframes/scene_{sid}_pinned{suffix or '.jpg'}")
        atomic_copy(src, dest)
        rel = run.keep(dest)
        asset = {
            "scene_id": sid,
            "keyframe_url": rel,
            "keyframe_path": rel,
            "consistency_score": 1.0,
            "generation_attempts": 0,
            "edit_passes": 0,
            "video_prompt": ctx.prompts.video(step.scene_index),
        }
        return {"keyframe": rel}, asset, None, 0, 0
    from storyc.media.probe import extract_frame, probe

    dest = ctx.path(f"videos/scene_{sid}_pinned{suffix or '.mp4'}")
    atomic_copy(src, dest)
    rel = run.keep(dest)
    first, last = ctx.path(f"frames/scene_{sid}_pinned_first.jpg"), ctx.path(f"frames/scene_{sid}_pinned_last.jpg")
    extract_frame(dest, first, "first")
    extract_frame(dest, last, "last")
    outputs = {"video": rel, "first_frame": run.keep(first), "last_frame": run.keep(last)}
    asset = {
        "scene_id": sid,
        "video_url": rel,
        "video_path": rel,
        "duration": round(probe(dest).duration_s, 3),
        "first_frame_path": outputs["first_frame"],
        "last_frame_path": outputs["last_frame"],
        "consistency_score": 1.0,
        "correction_passes": 0,
    }
    return outputs, asset, None, 0, 0


RUNNERS = {
    "character": run_character,
    "keyframe": run_keyframe,
    "video": run_video,
    "assemble": run_assemble,
    "script": run_script,
}


# ─── running one step (what the executor schedules) ─────────────────────────


def restore_cached(ctx: BuildContext, sid: str, key: str, entry: dict, *, save: bool = True) -> StepOutcome:
    """Put a cached step's files in the output folder and record it, without any call."""
    for rel, sha in entry["files"].items():
        ctx.cache.materialize(sha, ctx.path(rel))
    data = dict(entry.get("record") or {})
    data.update(cached=True, api_calls=0, wall_s=0.0, cost_usd=0.0, status="done", key=key, error=None)
    record = StepRecord.model_validate(data)
    outcome = StepOutcome(
        id=sid,
        key=key,
        files=dict(entry["files"]),
        outputs=dict(entry["outputs"]),
        record=record,
        asset=entry.get("asset"),
        cached=True,
    )
    ctx.outcomes[sid] = outcome
    ctx.store.record(record, outcome.asset, save=save)
    ctx.emit("step_finished", step=sid, cached=True, record=record)
    return outcome


def run_step(ctx: BuildContext, sid: str) -> StepOutcome:
    """Compute the step's key from its upstream outputs; serve it from the cache when the
    key is there (an upstream that re-ran but produced the same bytes keeps it valid);
    otherwise run its loop, store every file and the entry in the cache, record state."""
    step = ctx.graph.steps[sid]
    if ctx.cancel.is_set():
        raise Cancelled()
    key = ctx.key_of(step)
    if sid not in ctx.force:
        entry = ctx.cache.get_step(key)
        if entry is not None:
            return restore_cached(ctx, sid, key, entry)
    ctx.emit("step_started", step=sid)
    started = time.perf_counter()
    run = StepRun(ctx, step, key)
    try:
        runner = run_pinned if step.pinned else RUNNERS[step.kind]
        outputs, asset, score, attempts, edits = runner(ctx, run)
    except BaseException as exc:
        record = StepRecord(
            id=sid,
            kind=step.kind,
            key=key,
            status="failed",
            api_calls=sum(run.calls.values()),
            wall_s=round(time.perf_counter() - started, 3),
            cost_usd=round(run.cost, 6),
            prompts=run.prompts,
            attempt_scores=run.attempt_scores,
            error=_describe(exc),
        )
        ctx.failed[sid] = (record, run)
        with contextlib.suppress(Exception):
            ctx.store.record(record)
        ctx.emit("step_failed", step=sid, record=record, error=_describe(exc))
        raise
    for rel, sha in run.files.items():
        ctx.cache.put_file(ctx.path(rel), sha)
    record = StepRecord(
        id=sid,
        kind=step.kind,
        key=key,
        status="done",
        cached=False,
        api_calls=sum(run.calls.values()),
        attempts=attempts,
        edit_passes=edits,
        score=score,
        wall_s=round(time.perf_counter() - started, 3),
        cost_usd=round(run.cost, 6),
        outputs=outputs,
        sha256={role: run.files[rel] for role, rel in outputs.items()},
        prompts=run.prompts,
        attempt_scores=run.attempt_scores,
    )
    ctx.cache.put_step(
        key,
        {"step": sid, "files": run.files, "outputs": outputs, "asset": asset, "record": record.model_dump(mode="json")},
    )
    outcome = StepOutcome(
        id=sid,
        key=key,
        files=run.files,
        outputs=outputs,
        record=record,
        asset=asset,
        retries=run.retries,
        calls=dict(run.calls),
        replayed=run.replayed,
    )
    ctx.outcomes[sid] = outcome
    ctx.store.record(record, asset)
    ctx.emit("step_finished", step=sid, cached=False, record=record, retries=run.retries)
    return outcome


def _describe(exc: BaseException) -> str:
    if isinstance(exc, Cancelled):
        return "interrupted"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
