"""--max-cost: every paid call reserves its worst-case estimate before it starts."""

from __future__ import annotations

import threading

from storyc.run.errors import BudgetExceeded


class Budget:
    """A call starts only if spent + in-flight estimates + its own estimate fit."""

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
                in_flight = f" + ${self.reserved:.4f} in flight" if self.reserved else ""
                self.stopped = (
                    f"stopped before {what} (estimated ${estimate:.4f}): ${self.spent:.4f} spent"
                    f"{in_flight} of the --max-cost ${self.max_usd:.2f} budget"
                )
                raise BudgetExceeded(self.stopped)
            self.reserved += estimate

    def settle(self, estimate: float, actual: float) -> None:
        with self._lock:
            self.reserved = max(0.0, self.reserved - estimate)
            self.spent += actual
