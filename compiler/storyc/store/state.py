"""The build's durable state: state.json, the video job journal and the build lock.

state.json (BuildState: a record per step and the pending video jobs, plus the seed's
PipelineState view derived from the records) is rewritten atomically after every step and
every journal change, so a build killed at any moment leaves a complete file that the
next build resumes from.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

from storyc import __version__
from storyc.model.state import STATE_VERSION, BuildState, StepRecord, seed_view
from storyc.model.story import Story
from storyc.model.story_plan import story_to_plan
from storyc.store.fsutil import (
    atomic_write_bytes,
    flock,
    holder_pid,
    open_lock_file,
    read_holder,
    unlock,
    wait_for_dead_holder,
)

STATE_FILE = "state.json"
LOCK_FILE = ".storyc.lock"


class BuildLocked(Exception):
    """Another build is writing the same output folder."""


class BuildLock:
    """An exclusive, non-blocking flock on `<out>/.storyc.lock`: a second build of the same
    output refuses at once with a clear message (the kernel releases it if we die)."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> BuildLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = open_lock_file(self.path)  # never through a link (it would truncate the link's target)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise BuildLocked(f"{self.path} is a symbolic link, not storyc's lock file; remove it") from None
            raise
        try:
            locked = flock(fd, exclusive=True, wait=False) or wait_for_dead_holder(fd, self.path)
        except BaseException:
            os.close(fd)
            raise
        if not locked:
            os.close(fd)
            raise BuildLocked(
                f"another storyc build (pid {read_holder(self.path)}) is writing {self.path.parent}; "
                "wait for it to finish or use --out for a different folder"
            )
        os.ftruncate(fd, 0)
        os.write(fd, str(holder_pid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            unlock(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> BuildLock:
        return self if self._fd is not None else self.acquire()  # may be acquired beforehand

    def __exit__(self, *exc: Any) -> None:
        self.release()


def write_state(out_dir: Path, state: BuildState) -> Path:
    """state.json, atomically and fsynced: readers see the old or the new complete file."""
    path = Path(out_dir) / STATE_FILE
    atomic_write_bytes(path, state_json(state))
    return path


def load_state(out_dir: Path) -> BuildState | None:
    """The previous build's state.json, or None when absent, unreadable or of another version."""
    try:
        data = json.loads((Path(out_dir) / STATE_FILE).read_bytes())
        if not isinstance(data, dict) or data.get("state_version") != STATE_VERSION:
            return None
        return BuildState.model_validate(data)
    except (OSError, ValueError):
        return None


def state_json(state: BuildState) -> bytes:
    """state.json's bytes: the step records with the seed's PipelineState view beside them."""
    data = state.model_dump(mode="json")
    steps, jobs = data.pop("steps"), data.pop("jobs")
    data.update(seed_view(state).model_dump(mode="json"), steps=steps, jobs=jobs)
    return json.dumps(data, indent=2, ensure_ascii=False).encode() + b"\n"


class StateStore:
    """Thread-safe holder of the BuildState; every change is saved atomically at once."""

    def __init__(
        self, out_dir: Path, story: Story, *, backend: str, story_path: Path, story_sha256: str, draft: bool = False
    ):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / STATE_FILE
        self.lock = threading.RLock()
        previous = load_state(self.out_dir)
        self.state = BuildState(
            plan=story_to_plan(story),
            storyc_version=__version__,
            backend=backend,
            draft=draft,
            story_path=str(story_path),
            story_sha256=story_sha256,
            # Video jobs started by an interrupted build: the backend re-attaches to them.
            jobs=dict(previous.jobs) if previous else {},
        )

    def save(self) -> None:
        with self.lock:
            write_state(self.out_dir, self.state)

    def record(self, record: StepRecord, *, save: bool = True) -> None:
        """Store one step's record and save (batched callers save once)."""
        with self.lock:
            self.state.steps[record.id] = record
            if save:
                self.save()

    def clear_jobs(self) -> None:
        """Forget every journaled video job (each belongs to a step no longer in the story)."""
        with self.lock:
            self.state.jobs.clear()

    def snapshot(self) -> BuildState:
        with self.lock:
            return self.state.model_copy(deep=True)


class StateJournal:
    """The JobJournal of backends/base.py, persisted in state.json's `jobs`: a video
    request id is on disk before the backend polls for it, so a crash never loses a paid job."""

    def __init__(self, store: StateStore):
        self.store = store

    def pending(self, key: str) -> str | None:
        with self.store.lock:
            return self.store.state.jobs.get(key)

    def started(self, key: str, request_id: str) -> None:
        with self.store.lock:
            self.store.state.jobs[key] = request_id
            self.store.save()

    def finished(self, key: str) -> None:
        with self.store.lock:
            if self.store.state.jobs.pop(key, None) is not None:
                self.store.save()
