"""Writing the approvals sidecar (`approved/approvals.json` beside the story; its records
are storyc.model.approvals, reading it is storyc.load.approvals): atomically, small, sorted
and indented for readable diffs, under a lock on the story file (approve and build --redo
may run at once).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from storyc.hashing import digest
from storyc.load.approvals import load_approvals, sidecar_path
from storyc.model.approvals import APPROVED_DIR, Approvals
from storyc.model.targets import Target
from storyc.store.fsutil import atomic_write_bytes, flock, open_lock_file


def save_approvals(base_dir: Path, approvals: Approvals) -> Path:
    """Write the sidecar atomically (removed when it records nothing)."""
    path = sidecar_path(base_dir)
    if not approvals.pins and not approvals.notes:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    data = approvals.model_dump(mode="json", exclude_defaults=False)
    for record in data["pins"].values():  # empty optional parts only add diff noise
        for key in ("note", "source", "generated"):
            if not record.get(key):
                record.pop(key, None)
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


@contextlib.contextmanager
def story_lock(story_path: Path) -> Iterator[None]:
    """An exclusive flock on the story file itself for a read-modify-write of the story and
    its sidecar (two approves at once must not lose one). No lock file is created."""
    fd = open_lock_file(Path(story_path), create=False)
    try:
        flock(fd, exclusive=True, wait=True)
        yield
    finally:
        os.close(fd)


def approved_file_name(target: Target, suffix: str, used: Mapping[str, str]) -> str:
    """The stable story-relative name of a target's approved copy: `approved/keyframe_scene_2.jpg`,
    `approved/sheet_Ember.png`, `approved/clip_scene_2.mp4`. Re-approving a target rewrites the
    same file, so the story's pin line does not change. `used` maps names other targets' pins
    already use to those targets: a name that only differs in case or punctuation gets a suffix."""
    kind = target.kind
    owner = re.sub(r"[^A-Za-z0-9_-]+", "_", target.ident).strip("_") or "x"
    if kind.id_field != "name":
        owner = f"{kind.section.rstrip('s')}_{owner}"
    name = f"{APPROVED_DIR}/{kind.noun}_{owner}{suffix.lower()}"
    taken = {k.casefold(): v for k, v in used.items()}
    if taken.get(name.casefold(), target.id) != target.id:
        name = f"{APPROVED_DIR}/{kind.noun}_{owner}_{digest(target.id)[:8]}{suffix.lower()}"
    return name


def set_redo_note(story_path: Path, target: Target, note: str | None) -> None:
    """Record (or, with an empty note, drop) the redo note of an unpinned target: the builds
    that follow append it to the target's prompt until the target is approved."""
    story_path = Path(story_path)
    with story_lock(story_path):
        approvals = load_approvals(story_path.parent)
        text = " ".join((note or "").split())
        if text:
            approvals.notes[target.id] = text
        else:
            approvals.notes.pop(target.id, None)
        save_approvals(story_path.parent, approvals)
