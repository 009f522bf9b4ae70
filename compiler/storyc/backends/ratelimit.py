"""Per-kind request rate limiting: one thread-safe token bucket per call kind.

xAI limits grok-imagine-image to 5 requests/s and grok-imagine-video to 1 request/s
(xai-facts.md). Every backend call of a limited kind first takes a token from its
bucket, so concurrent steps never flood the API. The default burst is 1: with a
larger bucket a burst plus the refill could exceed the provider's per-second limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from storyc.backends.envspec import parse_numbers

DEFAULT_RATES: dict[str, float] = {"image": 5.0, "video": 1.0}


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`. `acquire` blocks until one is free."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token (possibly going into debt) and return how long to wait for it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            # Reserving under the lock, sleeping outside it: waiters queue in order
            # without holding the lock while they sleep.
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Block until a token is available; return the seconds waited."""
        wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


class RateLimiter:
    """One `TokenBucket` per call kind ("image", "video", "chat", "vision").

    Kinds without a configured rate are not limited.
    """

    def __init__(
        self,
        rates: Mapping[str, float] | None = None,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        rates = DEFAULT_RATES if rates is None else rates
        self.rates = {kind: float(r) for kind, r in rates.items() if r and r > 0}
        self._buckets = {kind: TokenBucket(rate, burst, clock=clock, sleep=sleep) for kind, rate in self.rates.items()}

    def acquire(self, kind: str) -> float:
        bucket = self._buckets.get(kind)
        return bucket.acquire() if bucket else 0.0

    @classmethod
    def from_spec(cls, spec: str | None, **kwargs) -> RateLimiter:
        """Build from "image=5,video=1" (a spec's kinds override the defaults)."""
        return cls({**DEFAULT_RATES, **parse_rates(spec or "")}, **kwargs)


def parse_rates(spec: str, what: str = "requests per second") -> dict[str, float]:
    """Parse "image=5,video=0.5" into {"image": 5.0, "video": 0.5}. Raises ValueError."""
    return parse_numbers(spec, what)
