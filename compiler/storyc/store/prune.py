"""`storyc cache prune`: which cache entries the given stories can still use, and removing the rest.

Reachability follows the build's own key resolution (plan.resolve): a step's key is the
digest of its static fingerprint and the OUTPUT hashes of its upstream steps, so keys are
derived progressively, in graph order, from the entries already in the cache. For each
story and each backend (a story may be previewed offline and rendered with xai into the
same cache; both are part of every key):

- a step whose key is computable and whose entry is in the cache is *finished*: its
  steps/ entry and the objects it names are kept;
- every other step is *open* (its key is computable but not cached, or pending on an
  upstream that is not cached): a build would run it, and a run replays the per-call
  entries (calls/) its key made before a crash. Open steps count for the backends a
  story was built with into this cache (or, never built, the one a build would choose).

calls/ entries are keyed by digest({step key, call number, kind, what, prompt, input
hashes, destination, parameters}) and record their step's key (`step_key`): an entry is
kept exactly when that key is one of the stories' computable keys (an entry without one
is not storyc's: removed).

Objects are kept when a kept entry names them; everything else goes, and so do the temp
files of dead processes. Nothing here prints: the CLI reports.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from storyc.backend_name import BACKEND_NAMES, default_backend_name
from storyc.diagnostics import StorycError
from storyc.graph.builder import build_graph
from storyc.graph.resolve import Resolution, resolve
from storyc.graph.steps import StepGraph
from storyc.lint import lint_for_build
from storyc.load.approvals import redo_notes
from storyc.load.loader import load_story
from storyc.prompts.promptset import PromptSet
from storyc.store.cache import Cache, default_cache_dir
from storyc.store.fsutil import stale_temps


@dataclass
class Removal:
    table: str  # objects | steps | calls | temps
    path: Path
    size: int


@dataclass
class PrunePlan:
    cache_dir: Path
    removals: list[Removal] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # table → entries kept
    kept_bytes: int = 0
    open_steps: int = 0  # steps a build would run (their calls are kept for it to resume from)
    # stories with no finished step in this cache under either backend: never built here,
    # or built with other --prompts or STORYC_RENDER_SCALE (both are part of every key)
    unbuilt_stories: list[str] = field(default_factory=list)

    @property
    def freed_bytes(self) -> int:
        return sum(r.size for r in self.removals)

    def removed(self, table: str) -> int:
        return sum(1 for r in self.removals if r.table == table)


@dataclass
class _Reach:
    finished: set[str] = field(default_factory=set)  # step keys with a cache entry
    computable: set[str] = field(default_factory=set)  # every key known now (finished or open)
    open_steps: int = 0
    unbuilt_stories: list[str] = field(default_factory=list)


def load_plans(stories: Iterable[Path], *, prompts_dir: Path | None = None) -> list[StepGraph]:
    """Every story's plan under every backend. Raises StorycError (all stories' diagnostics)
    before anything is removed."""
    plans: list[StepGraph] = []
    errors = []
    for story in stories:
        try:
            loaded = load_story(story)
            found = [d for d in lint_for_build(loaded, prompts_dir=prompts_dir) if d.is_error]
            if found:
                raise StorycError(found)
            prompts = PromptSet(loaded.story, story_path=loaded.path, override_dir=prompts_dir)
            notes = redo_notes(loaded.base_dir)  # part of the keys of the steps they apply to
            # a draft (storyc build --draft) and a full build of a story share the cache
            plans.extend(
                build_graph(loaded, prompts, backend=b, notes=notes, draft=draft)
                for b in BACKEND_NAMES
                for draft in (False, True)
            )
        except StorycError as exc:
            errors.extend(exc.diagnostics)
    if errors:
        raise StorycError(errors)
    return plans


class _Lookup:
    """plan.resolve's view of the cache, from the listing: an entry hits when it parses and
    every blob it names exists. No hashing (a build also verifies the bytes; a corrupt blob
    only makes prune keep more), and no side effects, so --dry-run and the real prune agree."""

    def __init__(self, steps: dict[str, tuple[Path, dict[str, Any] | None]], blobs: dict[str, Path]):
        self.steps, self.blobs = steps, blobs

    def get_step(self, key: str) -> dict[str, Any] | None:
        _, entry = self.steps.get(key, (None, None))
        if entry is None or not all(sha in self.blobs for sha in entry.get("files", {}).values()):
            return None
        return entry


def _reachability(plans: list[StepGraph], lookup: _Lookup) -> _Reach:
    reach = _Reach()
    resolved = [(plan, resolve(plan, lookup)) for plan in plans]
    # A story counts as built with a backend when one of its steps is in the cache under
    # it; a story built with neither (say, a first build that crashed) counts with the
    # backend a build would choose. Only those plans have open steps worth resuming.
    # A draft (`storyc build --draft`) shares most steps with the full build: it counts as
    # built only when a step of its own (its final video, say) is in the cache.
    full_keys = {
        (str(plan.story_path), plan.backend): set(res.keys.values()) for plan, res in resolved if not plan.draft
    }

    def was_built(plan: StepGraph, res: Resolution) -> bool:
        own = full_keys.get((str(plan.story_path), plan.backend), set()) if plan.draft else set()
        return any(entry is not None and res.keys[sid] not in own for sid, entry in res.entries.items())

    built = {(str(plan.story_path), plan.backend, plan.draft) for plan, res in resolved if was_built(plan, res)}
    stories = {str(plan.story_path) for plan in plans}
    reach.unbuilt_stories = sorted(s for s in stories if not any(b[0] == s for b in built))
    active = built | {(s, default_backend_name(), False) for s in reach.unbuilt_stories}
    for plan, res in resolved:
        is_active = (str(plan.story_path), plan.backend, plan.draft) in active
        for sid in plan.steps:
            key, entry = res.keys[sid], res.entries[sid]
            if key is not None:
                reach.computable.add(key)
            if entry is not None and key is not None:
                reach.finished.add(key)
            elif is_active:
                reach.open_steps += 1
    return reach


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def plan_prune(stories: list[Path], *, cache_dir: Path | None = None, prompts_dir: Path | None = None) -> PrunePlan:
    """Decide what to remove (nothing is removed). Raises StorycError for a bad story."""
    plans = load_plans(stories, prompts_dir=prompts_dir)
    cache = Cache(Path(cache_dir) if cache_dir else default_cache_dir(stories[0]))
    blobs = cache.list_blobs()
    steps = cache.list_entries("steps")
    calls = cache.list_entries("calls")
    reach = _reachability(plans, _Lookup(steps, blobs))
    result = PrunePlan(cache_dir=cache.root, open_steps=reach.open_steps, unbuilt_stories=reach.unbuilt_stories)

    # steps/: exactly the finished entries the stories resolve to
    kept_files: list[dict[str, str]] = []
    for key, (path, entry) in sorted(steps.items()):
        if key in reach.finished:
            kept_files.append((entry or {}).get("files", {}))
        else:
            result.removals.append(Removal("steps", path, _size(path)))

    # calls/: exactly those a step with a computable key made
    kept_calls = 0
    for _, (path, entry) in sorted(calls.items()):
        if _made_by(entry, reach.computable):
            kept_calls += 1
            kept_files.append(entry["files"])
        else:  # unreadable, or of a step no build of these stories can reach
            result.removals.append(Removal("calls", path, _size(path)))

    # objects/: named by a kept entry, or removed
    needed = {sha for files in kept_files for sha in files.values()}
    for sha, path in sorted(blobs.items()):
        if sha not in needed:
            result.removals.append(Removal("objects", path, _size(path)))
    # temp files of dead processes (live ones belong to a running build: left alone)
    for folder in cache.tables():
        result.removals.extend(Removal("temps", p, _size(p)) for p in stale_temps(folder))

    removed = {r.path for r in result.removals}
    result.kept = {
        "steps": len(steps) - result.removed("steps"),
        "calls": kept_calls,
        "objects": len(blobs) - result.removed("objects"),
    }
    every = [p for p, _ in steps.values()] + [p for p, _ in calls.values()] + list(blobs.values())
    result.kept_bytes = sum(_size(p) for p in every if p not in removed)
    return result


def _made_by(entry: dict[str, Any] | None, keys: set[str]) -> TypeGuard[dict[str, Any]]:
    """Whether a calls/ entry (None: unreadable) was made by a step of one of `keys`."""
    step_key = entry.get("step_key") if entry is not None else None
    return isinstance(step_key, str) and step_key in keys


def apply_prune(plan: PrunePlan) -> int:
    """Remove what `plan` lists; returns the bytes freed (files already gone count 0).
    Objects go last: an entry never outlives a blob it names."""
    freed = 0
    order = {"temps": 0, "steps": 1, "calls": 2, "objects": 3}
    for removal in sorted(plan.removals, key=lambda r: order[r.table]):
        try:
            size = removal.path.lstat().st_size
            removal.path.unlink()
        except FileNotFoundError:
            continue
        freed += size
    # empty shard folders
    for folder in Cache(plan.cache_dir).tables():
        if folder.is_dir():
            for shard in folder.iterdir():
                if shard.is_dir() and not shard.is_symlink():
                    try:
                        os.rmdir(shard)
                    except OSError:
                        pass  # not empty
    return freed
