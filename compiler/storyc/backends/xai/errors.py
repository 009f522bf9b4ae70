"""What an xAI failure means for money: the errors the backend raises, and `classify`,
which sorts every gRPC failure into what storyc may do about it.

| gRPC failure                                   | billed?   | storyc                                    |
|------------------------------------------------|-----------|-------------------------------------------|
| UNAVAILABLE                                    | no        | retried with backoff, each retry counted  |
| RESOURCE_EXHAUSTED (rate limit)                | no        | retried with backoff, each retry counted  |
| RESOURCE_EXHAUSTED "Sent message larger than"  | no (never | final: the request is over the 20 MiB     |
|   (client side, the request over the cap)      |  sent)    |   cap, sending it again changes nothing   |
| RESOURCE_EXHAUSTED "Received message larger"   | maybe     | paid: possibly billed, not repeated;      |
|   (the answer over the cap)                    |           |   a poll: final                           |
| DEADLINE_EXCEEDED on a paid call               | maybe     | possibly billed, not repeated             |
| DEADLINE_EXCEEDED on a poll                    | no (free) | retried                                   |
| INVALID_ARGUMENT / PERMISSION_DENIED naming    | no        | one reworded attempt (the caller)         |
|   moderation / content policy                  |           |                                           |
| anything else                                  | no        | final                                     |
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from storyc.backends.base import BackendError, CallKind, CallResult, RateLimited, TransientError

# How the service words a refusal on content grounds (an RPC error at submission, or a
# video job's FAILED code and message, which are strings such as "content_moderation").
MODERATION_WORDS = re.compile(
    r"moderat|content[ _-]?polic|safety|usage[ _-]?(?:guidelines|policy)|inappropriate|nsfw|violat", re.I
)


class Verdict(enum.Enum):
    RETRY = "retry"  # not billed; try again after a backoff (counted as a retry)
    OVERSIZED = "oversized"  # not billed, never sent: final
    POSSIBLY_BILLED = "possibly_billed"  # the service may have done (and billed) the work: final
    MODERATION = "moderation"  # refused on content grounds, not billed: the caller rewords once
    FINAL = "final"  # not billed, not retried


def classify(code: grpc.StatusCode | None, details: str, *, paid: bool) -> Verdict:
    """What a failed RPC means (see the module table). `paid`: the method bills its work
    (GenerateImage, GenerateVideo, GetCompletion); polls are free and idempotent."""
    details = details or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return Verdict.RETRY
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        low = details.lower()
        if "larger than max" in low:
            # gRPC's own message-size check: the request never left ("Sent message larger
            # than max"), or the answer was refused on arrival, after the work was done
            # ("Stream removed (CLIENT: Received message larger than max (...))").
            if "received message" in low:
                return Verdict.POSSIBLY_BILLED if paid else Verdict.FINAL
            return Verdict.OVERSIZED
        return Verdict.RETRY
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Verdict.POSSIBLY_BILLED if paid else Verdict.RETRY
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED) and MODERATION_WORDS.search(
        details
    ):
        return Verdict.MODERATION
    return Verdict.FINAL


def is_moderation(*texts: str) -> bool:
    return any(MODERATION_WORDS.search(t or "") for t in texts)


class XaiApiError(BackendError):
    """A gRPC call failed for good; `code` is the gRPC status name."""

    def __init__(self, message: str, *, code: str, retryable: bool = False):
        BackendError.__init__(self, message, retryable=retryable)  # not super(): see the mixins below
        self.code = code


class XaiRateLimited(XaiApiError, RateLimited):
    """RESOURCE_EXHAUSTED after storyc's bounded retries (final: `retryable` is False)."""


class XaiUnavailable(XaiApiError, TransientError):
    """UNAVAILABLE (or a poll's DEADLINE_EXCEEDED) after the retries allowed (final)."""


class RequestTooLarge(XaiApiError):
    """The request is over the gRPC message cap: never sent, so never billed; final."""


class PossiblyBilled(XaiApiError):
    """A paid call whose outcome is unknown (DEADLINE_EXCEEDED, an answer too large to
    receive): the service may have done and billed the work. Counted as billed, never
    repeated automatically."""


class ModerationRefused(BackendError):
    """Internal: the service refused a prompt on content grounds at submission (an RPC
    error, not billed). The image/video/chat code turns it into one reworded attempt."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.code = code


class VideoJobFailed(BackendError):
    """The provider reported the video job FAILED (for a reason other than moderation)."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message, retryable=False)
        self.code = code


class InvalidAnswer(BackendError):
    """A structured-output answer that does not validate. `answer` is its raw JSON text
    (so `storyc plan` can still write it for the author to fix), `cost_usd` the call's cost."""

    def __init__(self, message: str, *, answer: str | None, cost_usd: float):
        super().__init__(message, retryable=False)
        self.answer = answer
        self.cost_usd = cost_usd


def api_error(message: str, code: grpc.StatusCode | None, verdict: Verdict) -> XaiApiError:
    """The final error of an RPC. Never retryable: the transient codes were already retried
    within storyc's bound (a step-level retry on top would multiply it), and every other
    code is not retried at all."""
    name = code.name if code is not None else "UNKNOWN"
    if verdict is Verdict.OVERSIZED:
        return RequestTooLarge(message, code=name)
    if verdict is Verdict.POSSIBLY_BILLED:
        return PossiblyBilled(message, code=name)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return XaiRateLimited(message, code=name, retryable=False)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return XaiUnavailable(message, code=name, retryable=False)
    return XaiApiError(message, code=name)


# ─── accounting: what one public call spent ──────────────────────────────────


@dataclass
class Tally:
    """Billed calls, retries, possibly billed calls and cost of one public call."""

    calls: int = 0  # requests the service accepted (and so billed)
    retries: int = 0  # requests that reached the service and were retried (not billed), and re-downloads
    possibly_billed: int = 0  # of `calls`: outcome unknown (deadline exceeded), counted as billed
    cost: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    sources: dict[str, int] = field(default_factory=dict)  # billed requests by where their cost came from

    def bill(self, usd: float, source: str) -> None:
        """One billed request at `usd`; `source` is usage (reported) or price_table."""
        self.calls += 1
        self.cost += usd
        self.sources[source] = self.sources.get(source, 0) + 1

    def settle(self, estimate: float, actual: float) -> None:
        """A request billed at the table's `estimate` whose reported cost is `actual`."""
        self.cost += actual - estimate
        self.sources["price_table"] -= 1
        self.sources["usage"] = self.sources.get("usage", 0) + 1

    def result(self, path: Path | None, kind: CallKind) -> CallResult:
        meta = dict(self.meta)
        used = [source for source, n in self.sources.items() if n > 0]
        if used:
            meta["cost_source"] = used[0] if len(used) == 1 else "mixed"
        if self.possibly_billed:
            meta["possibly_billed"] = self.possibly_billed
        return CallResult(
            path=path, cost_usd=round(self.cost, 6), kind=kind, calls=self.calls, retries=self.retries, meta=meta
        )


@contextmanager
def spent_on_error(tally: Tally) -> Iterator[None]:
    """A call that fails after paid work (a video delivered to a dead URL, a reworded
    attempt blocked again, a deadline exceeded) still cost money, and its retries reached
    the service: the error carries `spent_calls`, `spent_usd`, `spent_retries` and
    `possibly_billed`, so the caller counts them in report.json and against --max-cost."""
    try:
        yield
    except BackendError as exc:
        exc.spent_calls = tally.calls  # type: ignore[attr-defined]
        exc.spent_usd = round(tally.cost, 6)  # type: ignore[attr-defined]
        exc.spent_retries = tally.retries  # type: ignore[attr-defined]
        exc.possibly_billed = tally.possibly_billed  # type: ignore[attr-defined]
        raise
