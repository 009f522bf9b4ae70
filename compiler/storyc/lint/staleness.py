"""Staleness of approved pins: the hashes of what a take is made from, compared with what
it was approved against (lint's W417, `storyc approve --list`, the storyboard's review)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from storyc.diagnostics import StorycError
from storyc.hashing import digest, file_sha256
from storyc.model.approvals import Approvals, PinRecord
from storyc.model.state import BuildState
from storyc.model.story import Story
from storyc.model.targets import TARGET_KINDS, Prompts, Target, all_targets, describe, pinned_targets


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
    story: Story, prompts: Prompts, base_dir: Path, target: Target, upstream: Mapping[str, str | None]
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
    prompts: Prompts,
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
        rel = target.pin(story) or ""  # never empty: pinned_targets yields the pinned ones
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
