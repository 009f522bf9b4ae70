"""Simulated latency and injected faults for the offline backend (benchmarks, reliability).

STORYC_OFFLINE_LATENCY="image=0.3,video=1.0,chat=0.1"  seconds slept per call by kind
    (chat covers judge and plan; vision= is an alias of chat).
STORYC_OFFLINE_FAULTS="transient=0.2,ratelimit=0.1,expired=0.05,truncated=0.05,seed=7"
    each call fails at those rates, decided by a hash of the seed, the request and how
    many times this request was tried, so a run is repeatable. `max=N` (default 2) caps
    consecutive injected faults on one request: the executor's retries always get through.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

from storyc.backends.envspec import parse_numbers

LATENCY_ENV = "STORYC_OFFLINE_LATENCY"
FAULTS_ENV = "STORYC_OFFLINE_FAULTS"
LATENCY_KINDS = ("image", "video", "chat")
FAULT_KINDS = ("transient", "ratelimit", "expired", "truncated")


def parse_latency(spec: str | None, env: str = LATENCY_ENV) -> dict[str, float]:
    """'image=0.3,video=1.0,chat=0.1' → {'image': 0.3, 'video': 1.0, 'chat': 0.1}."""
    latency: dict[str, float] = {}
    for key, seconds in parse_numbers(spec, env).items():
        kind = "chat" if key == "vision" else key
        if kind not in LATENCY_KINDS:
            raise ValueError(f"{env}: unknown kind {key!r} (expected image, video, chat or vision)")
        latency[kind] = seconds
    return latency


@dataclass(frozen=True)
class FaultPlan:
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    max_consecutive: int = 2

    @property
    def active(self) -> bool:
        return any(self.rates.values())

    def decide(self, identity: str, attempt: int) -> str | None:
        """The fault for the `attempt`-th try (1-based) of a request, or None."""
        if not self.active or attempt > self.max_consecutive:
            return None
        digest = hashlib.sha256(f"{self.seed}\x1f{identity}\x1f{attempt}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += self.rates.get(kind, 0.0)
            if u < edge:
                return kind
        return None


def parse_faults(spec: str | None, env: str = FAULTS_ENV) -> FaultPlan:
    rates: dict[str, float] = {}
    seed, max_consecutive = 0, 2
    for key, number in parse_numbers(spec, env).items():
        if key == "seed":
            seed = int(number)
        elif key == "max":
            max_consecutive = int(number)
        elif key in FAULT_KINDS:
            if number > 1:
                raise ValueError(f"{env}: {key}={number:g} is a rate between 0 and 1")
            rates[key] = number
        else:
            raise ValueError(f"{env}: unknown fault {key!r} (expected {', '.join(FAULT_KINDS)}, seed or max)")
    if sum(rates.values()) > 1:
        raise ValueError(f"{env}: the fault rates add up to more than 1")
    return FaultPlan(rates=rates, seed=seed, max_consecutive=max_consecutive)


class TryCounter:
    """How many times each request identity has been tried, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tries: dict[str, int] = {}

    def next(self, identity: str) -> int:
        with self._lock:
            self._tries[identity] = self._tries.get(identity, 0) + 1
            return self._tries[identity]
