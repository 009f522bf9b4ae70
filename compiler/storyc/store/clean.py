"""`storyc clean`: remove one story's build output folder, safely.

Only a folder that is storyc output is removed (it holds the `.storyc.lock` every build
creates, or a state.json / report.json that storyc wrote), never while a build holds its
lock, never a folder that holds the story itself, a git repository or the current
directory, and never through a symbolic link: links are removed, not followed. The build
cache is not touched (`storyc cache prune` manages it). Nothing here prints.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc.store.fsutil import lock_holder
from storyc.store.state import LOCK_FILE, STATE_FILE, BuildLock, BuildLocked

REPORT_FILE = "report.json"


class CleanRefused(Exception):
    """The folder is not storyc output, is in use, or removing it would hit something else."""


@dataclass
class CleanResult:
    folder: Path
    missing: bool = False  # nothing to clean
    files: list[tuple[str, int]] = field(default_factory=list)  # folder-relative path, bytes
    removed: bool = False  # False for --dry-run

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def _json_dict(path: Path) -> dict[str, Any] | None:
    try:
        if path.is_symlink() or not path.is_file():
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def looks_like_output(folder: Path) -> bool:
    """Every executing build creates `.storyc.lock`; state.json and report.json carry
    fields only storyc writes."""
    lock = folder / LOCK_FILE
    if lock.is_file() and not lock.is_symlink():
        return True
    state = _json_dict(folder / STATE_FILE)
    if state is not None and "storyc_version" in state and "steps" in state:
        return True
    report = _json_dict(folder / REPORT_FILE)
    return report is not None and "api_calls_total" in report and "steps" in report


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _check_safe(folder: Path, story: Path | None) -> None:
    if folder.is_symlink():
        raise CleanRefused(f"{folder} is a symbolic link; storyc does not follow it (remove the link yourself)")
    if not folder.is_dir():
        raise CleanRefused(f"{folder} is not a folder")
    real = folder.resolve()
    if _inside(Path.cwd().resolve(), real):
        raise CleanRefused(f"{folder} is the current folder or holds it; not removing it")
    if story is not None and _inside(Path(story).resolve(), real):
        raise CleanRefused(f"{folder} holds the story {story}; not removing it")
    if (folder / LOCK_FILE).is_symlink():  # taking the lock would open (and truncate) its target
        raise CleanRefused(f"{folder / LOCK_FILE} is a symbolic link; not removing {folder}")
    if (folder / ".git").exists():
        raise CleanRefused(f"{folder} is a git repository; not removing it")
    if not looks_like_output(folder):
        raise CleanRefused(
            f"{folder} does not look like storyc build output (no {LOCK_FILE}, {STATE_FILE} or {REPORT_FILE}); not removing it"
        )


def _walk(folder: Path, rel: str = "") -> list[tuple[str, int, bool]]:
    """(relative path, bytes, is_dir) of everything under `folder`, children before their
    folder. Symbolic links are listed as themselves and never followed."""
    out: list[tuple[str, int, bool]] = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            name = f"{rel}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                out.extend(_walk(Path(entry.path), name + "/"))
                out.append((name, 0, True))
            else:
                out.append((name, entry.stat(follow_symlinks=False).st_size, False))
    return out


def clean_output(folder: Path, *, story: Path | None = None, dry_run: bool = False) -> CleanResult:
    """Remove (or, with dry_run, list) the build output folder. Raises CleanRefused."""
    folder = Path(folder)
    result = CleanResult(folder=folder)
    if not os.path.lexists(folder):
        result.missing = True
        return result
    _check_safe(folder, story)
    if dry_run:
        holder = lock_holder(folder / LOCK_FILE)
        if holder is not None:
            raise CleanRefused(f"a storyc build (pid {holder}) is writing {folder}; wait for it to finish")
        result.files = [(rel, size) for rel, size, is_dir in _walk(folder) if not is_dir]
        return result
    try:
        # Hold the build lock while removing: a build started meanwhile refuses instead of
        # writing into a folder that is disappearing.
        lock = BuildLock(folder).acquire()
    except BuildLocked:
        holder = lock_holder(folder / LOCK_FILE) or "?"
        raise CleanRefused(f"a storyc build (pid {holder}) is writing {folder}; wait for it to finish") from None
    try:
        listing = _walk(folder)
        for rel, size, is_dir in listing:
            if rel == LOCK_FILE:
                continue
            path = folder / rel
            if is_dir:
                os.rmdir(path)
            else:
                os.unlink(path)  # a symbolic link is removed, its target is not
            if not is_dir:
                result.files.append((rel, size))
    finally:
        lock.release()
    lock_path = folder / LOCK_FILE
    result.files.append((LOCK_FILE, lock_path.lstat().st_size))
    lock_path.unlink()
    os.rmdir(folder)
    result.removed = True
    return result
