"""What a step produced: a runner's result, and the outcome the build keeps per step."""

from __future__ import annotations

from dataclasses import dataclass, field

from storyc.graph.keys import outputs_digest
from storyc.model.state import SpokenLineRecord, StepRecord


@dataclass(frozen=True)
class StepResult:
    """What a step runner returns: its kept files by role and how its loop went."""

    outputs: dict[str, str]  # role → out-relative path
    score: float | None = None  # the kept output's score (None: not judged)
    attempts: int = 1
    edit_passes: int = 0
    urls: dict[str, str] = field(default_factory=dict)  # role → the provider's URL, when it gave one
    duration_s: float | None = None  # a clip's measured length
    lines: tuple[SpokenLineRecord, ...] = ()  # a speech step's placed lines


@dataclass
class StepOutcome:
    """A finished (or failed) step of this build: its record, every file it wrote, and
    the call counters that report.json adds up."""

    record: StepRecord
    files: dict[str, str] = field(default_factory=dict)  # out-relative path → sha256 (every file written)
    retries: int = 0
    calls: dict[str, int] = field(default_factory=dict)  # paid calls by kind
    replayed: int = 0  # calls served from the per-call memo (a resumed step)
    possibly_billed: int = 0  # paid calls with an unknown outcome (counted in calls and cost)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def key(self) -> str:
        return self.record.key

    @property
    def outputs(self) -> dict[str, str]:
        return self.record.outputs

    @property
    def cached(self) -> bool:
        return self.record.cached

    @property
    def digest(self) -> str:
        """What downstream keys see of this step: the content hashes of its output roles."""
        return outputs_digest(self.files, self.outputs)
