"""Bounded, interruptible exponential backoff for retryable backend errors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from storyc.backends.base import BackendError, ModerationBlocked
from storyc.run.errors import Cancelled

T = TypeVar("T")


@dataclass
class RetryPolicy:
    max_retries: int = 4  # per call, for retryable BackendErrors
    base_s: float = 0.5  # backoff: base * 2^(n-1), capped
    cap_s: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * 2 ** (attempt - 1))


def with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    cancel: threading.Event,
    *,
    on_error: Callable[[BackendError], None],
    on_retry: Callable[[int, BackendError], None],
) -> T:
    """`call()`, retried while it raises a retryable BackendError, at most
    `policy.max_retries` times. `on_error` sees every failure (a failed call may still have
    been billed), `on_retry` every retry. Cancelling stops the backoff at once."""
    attempt = 0
    while True:
        try:
            return call()
        except ModerationBlocked as exc:
            # The backend already made its one reworded attempt (design: reword once,
            # then give up); paying for more would not be honest about cost.
            on_error(exc)
            raise
        except BackendError as exc:
            on_error(exc)
            if not exc.retryable or attempt >= policy.max_retries:
                raise
            attempt += 1
            on_retry(attempt, exc)
            if cancel.wait(policy.delay(attempt)):  # Ctrl-C does not wait for the sleep
                raise Cancelled() from None
