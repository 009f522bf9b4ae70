"""The shared state of one build's run: what every step runner and the executor read."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc.backends.base import Backend, OnEvent
from storyc.graph.keys import step_key
from storyc.graph.steps import Step, StepGraph
from storyc.model.state import BuildState
from storyc.model.story import Story
from storyc.prompts.promptset import PromptSet
from storyc.report.review import Review
from storyc.run.budget import Budget
from storyc.run.errors import MissingUpstream
from storyc.run.outcome import StepOutcome
from storyc.run.retry import RetryPolicy
from storyc.store.cache import Cache
from storyc.store.state import StateJournal, StateStore


def no_throttle(kind: str) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


@dataclass
class BuildContext:
    graph: StepGraph
    prompts: PromptSet
    backend: Backend | None  # None when every step to run is API-free
    cache: Cache
    out_dir: Path
    store: StateStore
    journal: StateJournal
    budget: Budget = field(default_factory=lambda: Budget(None))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    throttle: Callable[[str], AbstractContextManager[None]] = no_throttle  # per-kind limits (the executor's)
    cancel: threading.Event = field(default_factory=threading.Event)
    on_event: OnEvent | None = None
    force: frozenset[str] = frozenset()  # step ids whose cache entry is ignored
    review: Callable[[BuildState], Review] | None = None  # the storyboard's approvals (storyc.build.approvals)
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)  # finished steps
    failed: dict[str, StepOutcome] = field(default_factory=dict)  # failed steps (record status "failed")

    @property
    def story(self) -> Story:
        return self.graph.story

    @property
    def base_dir(self) -> Path:
        return self.graph.story_path.parent

    def require_backend(self) -> Backend:
        if self.backend is None:
            raise RuntimeError("this build has no backend: only API-free steps were to run")
        return self.backend

    def emit(self, event: str, **data: Any) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event, data)
            except Exception:  # progress display must never break a build
                pass

    def path(self, rel: str) -> Path:
        return self.out_dir / rel

    def upstream(self, step: Step) -> Mapping[str, StepOutcome]:
        """The outcomes of the step's dependencies; MissingUpstream if one did not finish."""
        missing = [d for d in step.deps if d not in self.outcomes]
        if missing:
            raise MissingUpstream(f"{step.id} cannot run: {', '.join(missing)} did not finish")
        return {d: self.outcomes[d] for d in step.deps}

    def output(self, sid: str, role: str) -> Path:
        """Where a finished step's output of `role` is (e.g. a character's "sheet")."""
        return self.path(self.outcomes[sid].outputs[role])

    def key_of(self, step: Step) -> str:
        return step_key(step, {d: o.digest for d, o in self.upstream(step).items()})
