"""Progressive key resolution against the cache: before executing, walk the graph in order;
a step's key is known once every dependency is cached (their outputs digests feed it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from storyc.graph.keys import outputs_digest, step_key
from storyc.graph.steps import StepGraph


class StepCache(Protocol):
    def get_step(self, key: str) -> dict[str, Any] | None: ...


@dataclass
class Resolution:
    """Where each step stands before executing: its key (None = pending upstream) and cache entry."""

    keys: dict[str, str | None]
    entries: dict[str, dict[str, Any] | None]

    def cached(self, sid: str) -> bool:
        return self.entries.get(sid) is not None

    @property
    def all_cached(self) -> bool:
        return all(e is not None for e in self.entries.values())


def resolve(graph: StepGraph, cache: StepCache, *, force: set[str] | None = None) -> Resolution:
    """Walk the graph in order: a step's key is known when all its deps are cached."""
    force = force or set()
    keys: dict[str, str | None] = {}
    entries: dict[str, dict[str, Any] | None] = {}
    upstream: dict[str, str] = {}
    for sid, step in graph.steps.items():
        if all(d in upstream for d in step.deps):
            key = step_key(step, upstream)
            keys[sid] = key
            entry = None if sid in force else cache.get_step(key)
            entries[sid] = entry
            if entry is not None:
                upstream[sid] = outputs_digest(entry["files"], entry["outputs"])
        else:
            keys[sid] = None
            entries[sid] = None
    return Resolution(keys=keys, entries=entries)
