"""The approvals sidecar (`approved/approvals.json` beside the story) and staleness hashes.

`storyc approve` copies a chosen take into `approved/` and pins it in the story; this file
records, per pinned target, what the take was approved against: the hashes of its inputs
(its prompt, the visual descriptions in it, the sheets, keyframe or clip it was made from,
other values such as a clip's duration). When one of them changes, the pin is stale: lint
warns at the pin's line, `storyc approve --list` and the storyboard say so. It also keeps
the redo notes of `storyc build --redo TARGET --note TEXT` (they are part of the story's
inputs until the target is approved). The folder is meant to be committed: CI then
renders exactly what was approved, with no paid call for it.

The file is small, sorted and indented for readable diffs; written atomically under a lock
on the story file (approve and build --redo may run at once).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from storyc.diagnostics import StorycError, error
from storyc.load.codes import E_FILE
from storyc.model.state import BuildState
from storyc.model.story import Story
from storyc.model.targets import TARGET_KINDS, Target, all_targets, describe, pinned_targets
from storyc.store.fsutil import atomic_write_bytes, flock, open_lock_file
from storyc.store.hashing import digest, file_sha256

APPROVED_DIR = "approved"
SIDECAR_FILE = "approvals.json"
FORMAT_VERSION = 1


class ApprovalsError(Exception):
    """The sidecar cannot be read (bad JSON, wrong shape): one clear line."""


class PinRecord(BaseModel):
    """One approval: the file, the take it was, and what it was approved against."""

    model_config = ConfigDict(extra="ignore")

    file: str  # story-relative path of the approved copy
    sha256: str
    take: int  # the take number, as the storyboard and --take number them
    inputs: dict[str, str | None] = {}  # input name → hash at approval (None: not known then)
    note: str | None = None  # the redo note the take was made with
    source: dict[str, Any] = {}  # the build it came from: folder, file, backend, draft (storyc build --draft)
    generated: dict[str, Any] = {}  # what its step paid when it was generated: calls, cost_usd


class Approvals(BaseModel):
    model_config = ConfigDict(extra="ignore")

    storyc_approvals: int = FORMAT_VERSION
    pins: dict[str, PinRecord] = {}  # target id ("scene:2") → its approval
    notes: dict[str, str] = {}  # target id → redo note, until the target is approved


# ─── the file ────────────────────────────────────────────────────────────────


def approved_dir(base_dir: Path) -> Path:
    return Path(base_dir) / APPROVED_DIR


def sidecar_path(base_dir: Path) -> Path:
    return approved_dir(base_dir) / SIDECAR_FILE


def load_approvals(base_dir: Path) -> Approvals:
    """The sidecar beside a story (empty when there is none). Raises ApprovalsError."""
    path = sidecar_path(base_dir)
    shown = f"{APPROVED_DIR}/{SIDECAR_FILE}"  # relative to the story, as committed
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Approvals()
    except OSError as exc:
        raise ApprovalsError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    try:
        return Approvals.model_validate(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApprovalsError(f"{shown}: not valid JSON ({exc}); restore it from git") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApprovalsError(f"{shown}: {where}: {first['msg']}; restore it from git") from None


def approvals_for_build(base_dir: Path) -> Approvals:
    """The sidecar as a build reads it: a broken one is a positioned error (StorycError)."""
    try:
        return load_approvals(base_dir)
    except ApprovalsError as exc:
        raise StorycError(error(str(sidecar_path(base_dir)), 1, 1, E_FILE, str(exc).split(": ", 1)[-1])) from None


def redo_notes(base_dir: Path) -> dict[str, str]:
    """The redo notes a build appends to its prompts (target id → note)."""
    return dict(approvals_for_build(base_dir).notes)


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


# ─── staleness ───────────────────────────────────────────────────────────────


def _file_hash(base_dir: Path, rel: str | None) -> str | None:
    if not rel:
        return None
    try:
        return file_sha256(Path(base_dir) / rel)
    except (OSError, ValueError):
        return None


def pinned_hashes(story: Story, base_dir: Path) -> dict[str, str]:
    """target id → content hash of its pinned file, for every pin whose file exists."""
    out = {}
    for target in pinned_targets(story):
        sha = _file_hash(base_dir, target.pin(story))
        if sha is not None:
            out[target.id] = sha
    return out


def built_hashes(story: Story, state: BuildState | None) -> dict[str, str]:
    """target id → hash of the output a build made for it (what its dependents were made from)."""
    if state is None:
        return {}
    out = {}
    for target in all_targets(story):
        record = state.steps.get(target.step_id)
        if record is not None and record.status == "done" and target.kind.role in record.sha256:
            out[target.id] = record.sha256[target.kind.role]
    return out


def approval_inputs(
    story: Story, prompts: Any, base_dir: Path, target: Target, upstream: Mapping[str, str | None]
) -> dict[str, str | None]:
    """What a take of `target` is made from, as hashes: `prompt` (its main prompt, before any
    redo note), `description:NAME` (each visual description in it), `value:FIELD` (other
    values that determine it), and each upstream target (`character:Ember`, `scene:1`,
    `clip:1`: the sheet, keyframe or clip it was made from, from `upstream`). A value that
    cannot be known is None (e.g. an unpinned sheet when no build says which one)."""
    kind = target.kind
    inputs: dict[str, str | None] = {}
    try:
        inputs["prompt"] = digest(kind.prompt_of(prompts, story, target.index))
    except StorycError:  # a broken template (lint's E501): unknown
        inputs["prompt"] = None
    for name in kind.described(story, target.index):
        character = story.character(name)
        inputs[f"description:{name}"] = digest(character.visual_description) if character else None
    for field_name, value in kind.values(story, target.index).items():
        if field_name.endswith("_image") and value:
            inputs[f"value:{field_name}"] = _file_hash(base_dir, value) or digest(value)
        else:
            inputs[f"value:{field_name}"] = digest(value)
    for up in kind.upstream(story, target.index):
        inputs[up] = upstream.get(up)
    return inputs


def stale_reasons(target_id: str, recorded: Mapping[str, str | None], current: Mapping[str, str | None]) -> list[str]:
    """Why a pin approved against `recorded` no longer matches `current` inputs; [] when it
    does (inputs unknown on either side are not compared). The most specific reasons come
    first; the prompt is named only when nothing more specific explains its change."""
    what = describe(target_id)
    own: list[str] = []  # its own text changed
    upstream: list[str] = []  # what it was made from changed
    prompt_changed = False
    for name, old in recorded.items():
        new = current.get(name)
        # inputs on one side only (a character joined or left) changed the prompt, compared below
        if old is None or new is None or old == new:
            continue
        kind, _, rest = name.partition(":")
        if name == "prompt":
            prompt_changed = True
        elif kind == "description":
            own.append(f"{what} was approved with {rest}'s previous visual_description")
        elif kind == "value":
            own.append(f"{what} was approved with a different {rest}")
        elif kind in TARGET_KINDS:
            owner, _, noun = describe(name).rpartition("'s ")
            upstream.append(f"{what} was approved with {owner}'s previous {noun}")
    if prompt_changed and not own:
        own.append(f"{what} was approved with a different prompt (the story or a template changed since)")
    return own + upstream


@dataclass
class PinCheck:
    """Where one pin of a story stands."""

    target: Target
    file: str  # as written in the story
    status: str  # current | stale | changed | missing | unrecorded
    reasons: list[str] = field(default_factory=list)
    record: PinRecord | None = None


def check_pins(
    story: Story,
    prompts: Any,
    base_dir: Path,
    approvals: Approvals,
    built: Mapping[str, str] | None = None,
) -> list[PinCheck]:
    """Every pin of the story checked against its approval record. `built` (target id →
    output hash, from a build) fills in upstream inputs that are not pinned; pinned ones
    are what a build will use, so they win."""
    pinned = pinned_hashes(story, base_dir)
    upstream = {**(built or {}), **pinned}
    checks = []
    for target in pinned_targets(story):
        rel = target.pin(story)
        record = approvals.pins.get(target.id)
        sha = pinned.get(target.id)
        if sha is None:
            checks.append(PinCheck(target, rel, "missing", [f"{rel} does not exist"], record))
            continue
        if record is None:
            checks.append(PinCheck(target, rel, "unrecorded", [], None))
            continue
        if record.sha256 != sha:  # a moved or renamed copy of the same take is still that take
            why = f"{rel} is not the file approved for {target.what()} ({record.file}, take {record.take})"
            checks.append(PinCheck(target, rel, "changed", [why], record))
            continue
        current = approval_inputs(story, prompts, base_dir, target, upstream)
        reasons = stale_reasons(target.id, record.inputs, current)
        checks.append(PinCheck(target, rel, "stale" if reasons else "current", reasons, record))
    return checks


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
