"""`storyc approve` and `storyc unapprove`: keep a take of a build, pinned in the story.

Approving copies the chosen take from the build's output folder into `approved/` beside the
story under a stable name, records what it was approved against in
`approved/approvals.json` (storyc.store.approvals), and pins it in the story file
(storyc.author.pins: only the pin's line changes). A build then uses the pinned file as is,
with no paid call, even on a fresh cache, and lint warns when the pin goes stale.

The order of the writes survives a kill at any point: the copy first, then the record, then
the pin line. A record without its pin is shown by `storyc approve --list` and completed by
approving again. Everything runs under a lock on the story file.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc.author.pins import set_pin_in_file
from storyc.diagnostics import StorycError
from storyc.hashing import file_sha256
from storyc.lint.staleness import PinCheck, approval_inputs, built_hashes, check_pins
from storyc.load.approvals import ApprovalsError, approved_dir, load_approvals
from storyc.load.loader import LoadedStory, load_story
from storyc.model.approvals import Approvals, PinRecord
from storyc.model.state import BuildState
from storyc.model.targets import Take, Target, parse_target, pinned_targets, takes
from storyc.prompts.promptset import PromptSet
from storyc.prompts.text import with_note
from storyc.store.approvals import approved_file_name, save_approvals, story_lock
from storyc.store.cache import Cache
from storyc.store.fsutil import atomic_copy
from storyc.store.state import load_state


class ApproveError(Exception):
    """Approving or unapproving is not possible as asked: one clear line."""


@dataclass
class Approved:
    target: Target
    file: str  # story-relative
    take: Take
    takes: list[Take]
    source: Path  # the take in the build folder
    story_edited: bool  # False: the pin line already named this file
    unchanged: bool  # the same take was already approved
    now_stale: list[PinCheck] = field(default_factory=list)  # other pins this approval made stale
    hints: list[str] = field(default_factory=list)


@dataclass
class Unapproved:
    target: Target
    pin: str
    removed: list[str]  # files deleted from approved/
    kept: list[str]  # files left: used by another pin, or not storyc's (outside approved/)


@dataclass
class Listing:
    checks: list[PinCheck]
    unpinned_records: list[tuple[str, PinRecord]]  # approvals whose pin is gone from the story
    notes: dict[str, str]


def _load(story_path: Path) -> LoadedStory:
    return load_story(story_path)  # StorycError: positioned diagnostics


def _approvals(base_dir: Path) -> Approvals:
    try:
        return load_approvals(base_dir)
    except ApprovalsError as exc:
        raise ApproveError(str(exc)) from None


def _prompts(loaded: LoadedStory, prompts_dir: Path | None) -> PromptSet:
    return PromptSet(loaded.story, story_path=loaded.path, override_dir=Path(prompts_dir) if prompts_dir else None)


def _build_state(out_dir: Path, story_path: Path) -> BuildState:
    state = load_state(out_dir)
    if state is None:
        raise ApproveError(
            f"no build in {out_dir}: build the story first (storyc build {story_path} --until keyframes), "
            "or give --out with the build's folder"
        )
    # by name: a build folder may have moved with its story (a CI artifact, a copied project)
    if state.story_path and Path(state.story_path).name != story_path.name:
        raise ApproveError(f"{out_dir} is a build of {state.story_path}, not of {story_path}")
    return state


def _generated_cost(record: Any, cache_dir: Path | None) -> dict[str, Any]:
    """What the take's step paid when it was generated: this build's record, or, when the
    build restored it from the cache, the record the cache kept from the build that paid."""
    if not record.cached:
        return {"calls": record.api_calls, "cost_usd": record.cost_usd}
    if cache_dir is None:
        return {}
    with contextlib.suppress(Exception):  # a missing or pruned entry: unknown
        entry = Cache(cache_dir).get_step(record.key)
        original = (entry or {}).get("record") or {}
        if "api_calls" in original:
            return {"calls": original["api_calls"], "cost_usd": original.get("cost_usd", 0.0)}
    return {}


def _pin_names(loaded: LoadedStory, approvals: Approvals, skip: str) -> dict[str, str]:
    """story-relative file → target id, for every pin and record of targets other than `skip`."""
    used = {r.file: tid for tid, r in approvals.pins.items() if tid != skip}
    for target in pinned_targets(loaded.story):
        if target.id != skip:
            used[target.pin(loaded.story) or ""] = target.id
    return used


def approve(
    story_path: Path,
    target_text: str,
    *,
    out_dir: Path,
    take: int | None = None,
    cache_dir: Path | None = None,
    prompts_dir: Path | None = None,
) -> Approved:
    """Approve take `take` (default: the kept one) of `target_text` from the build in
    `out_dir`. Raises StorycError (the story does not load), TargetError (bad target),
    ApproveError or PinEditError."""
    story_path = Path(story_path)
    out_dir = Path(out_dir)
    with story_lock(story_path):
        loaded = _load(story_path)
        story, base_dir = loaded.story, loaded.base_dir
        target = parse_target(story, target_text)
        kind = target.kind
        state = _build_state(out_dir, story_path)
        record = state.steps.get(target.step_id)
        if record is None or record.status != "done" or not record.outputs.get(kind.role):
            status = "not built" if record is None else record.status
            raise ApproveError(
                f"{target.id} has no finished take in {out_dir} ({target.step_id}: {status}); build it first"
            )
        available = takes(record, kind.role)
        if take is None:
            chosen = next(t for t in available if t.kept)
        elif 1 <= take <= len(available):
            chosen = available[take - 1]
        else:
            raise ApproveError(
                f"{target.id} has {len(available)} take(s) in {out_dir}: --take 1 to {len(available)}"
                " (numbered as in the storyboard)"
            )
        source = out_dir / chosen.path
        if not source.is_file():
            raise ApproveError(f"{source} is gone: build again ({target.step_id}) and approve then")

        prompts = _prompts(loaded, prompts_dir)
        approvals = _approvals(base_dir)
        note = approvals.notes.get(target.id)
        made_with = record.prompts.get(kind.prompt_role)
        if made_with is not None:  # a generated take (a pinned one has no prompt)
            try:
                expected = with_note(kind.prompt_of(prompts, story, target.index), note)
            except StorycError:
                expected = None
            if expected is not None and made_with != expected:
                raise ApproveError(
                    f"{target.what()} in {out_dir} was made from an earlier version of the story or its "
                    f"templates (its prompt differs from today's): build again and approve then"
                )
        inputs = approval_inputs(story, prompts, base_dir, target, built_hashes(story, state))
        sha = file_sha256(source)
        suffix = source.suffix.lower() or (".mp4" if kind.role == "video" else ".jpg")
        previous = approvals.pins.get(target.id)
        name = approved_file_name(target, suffix, _pin_names(loaded, approvals, target.id))
        dest = base_dir / name
        unchanged = previous is not None and previous.sha256 == sha and target.pin(story) == name
        approved_dir(base_dir).mkdir(parents=True, exist_ok=True)
        if not (dest.is_file() and file_sha256(dest) == sha):
            atomic_copy(source, dest)
        approvals.pins[target.id] = PinRecord(
            file=name,
            sha256=sha,
            take=chosen.number,
            inputs=inputs,
            note=note if made_with is not None else (previous.note if previous else None),
            source={
                "build": str(out_dir),
                "file": chosen.path,
                "backend": state.backend,
                **({"draft": True} if state.draft else {}),  # storyc build --draft
            },
            generated=_generated_cost(record, cache_dir),
        )
        approvals.notes.pop(target.id, None)  # the approved take is what the note asked for
        save_approvals(base_dir, approvals)
        edited = set_pin_in_file(story_path, target.loc, name)
        if previous is not None and previous.file != name:
            _remove_if_unused(base_dir, previous.file, _load(story_path), approvals)
        # what this approval made stale (e.g. keyframes approved with this character's previous sheet)
        after = _load(story_path)
        stale = [
            c
            for c in check_pins(after.story, _prompts(after, prompts_dir), base_dir, approvals)
            if c.status == "stale" and c.target.id != target.id
        ]
    hints = []
    if kind.name == "clip" and not story.scenes[target.index].keyframe_image:
        hints.append(
            f"scene:{target.ident}'s keyframe is not approved: a build on a fresh cache generates it again "
            f"(for the storyboard); storyc approve {story_path} scene:{target.ident}"
        )
    return Approved(target, name, chosen, available, source, edited, unchanged, stale, hints)


def _inside_approved(base_dir: Path, rel: str) -> Path | None:
    """The file `rel` names when it lies inside approved/ (storyc's own copies), else None."""
    try:
        path = (base_dir / rel).resolve()
        return path if path.is_relative_to(approved_dir(base_dir).resolve()) else None
    except (OSError, ValueError, RuntimeError):
        return None


def _remove_if_unused(base_dir: Path, rel: str, loaded: LoadedStory, approvals: Approvals) -> bool:
    path = _inside_approved(base_dir, rel)
    if path is None or not path.is_file():
        return False
    users = [t.id for t in pinned_targets(loaded.story) if _same(base_dir, t.pin(loaded.story) or "", path)]
    users += [tid for tid, r in approvals.pins.items() if _same(base_dir, r.file, path)]
    if users:
        return False
    path.unlink()
    return True


def _same(base_dir: Path, rel: str, path: Path) -> bool:
    try:
        return (base_dir / rel).resolve() == path
    except (OSError, ValueError, RuntimeError):
        return False


def unapprove(story_path: Path, target_text: str) -> Unapproved:
    """Remove a target's pin from the story, its record, and its file in approved/ unless
    another pin uses it. A pin to a file outside approved/ (the user's own) keeps the file."""
    story_path = Path(story_path)
    with story_lock(story_path):
        loaded = _load(story_path)
        base_dir = loaded.base_dir
        target = parse_target(loaded.story, target_text)
        approvals = _approvals(base_dir)
        pin = target.pin(loaded.story)
        record = approvals.pins.pop(target.id, None)
        if pin is None and record is None:
            raise ApproveError(f"{target.id} is not pinned in {story_path}")
        set_pin_in_file(story_path, target.loc, None)
        save_approvals(base_dir, approvals)
        after = _load(story_path)
        removed, kept = [], []
        for rel in dict.fromkeys(r for r in (pin, record.file if record else None) if r):
            if _remove_if_unused(base_dir, rel, after, approvals):
                removed.append(rel)
            else:
                kept.append(rel)
        with contextlib.suppress(OSError):  # an empty approved/ goes too
            approved_dir(base_dir).rmdir()
    return Unapproved(target, pin or (record.file if record else ""), removed, kept)


def list_pins(story_path: Path, *, out_dir: Path | None = None, prompts_dir: Path | None = None) -> Listing:
    """Every pin of the story and whether it is current; with a build folder, unpinned
    inputs (a sheet that is not approved) are compared with what that build made."""
    loaded = _load(Path(story_path))
    approvals = _approvals(loaded.base_dir)
    state = load_state(out_dir) if out_dir is not None and Path(out_dir).is_dir() else None
    checks = check_pins(
        loaded.story, _prompts(loaded, prompts_dir), loaded.base_dir, approvals, built_hashes(loaded.story, state)
    )
    pinned = {c.target.id for c in checks}
    orphans = [(tid, r) for tid, r in sorted(approvals.pins.items()) if tid not in pinned]
    return Listing(checks, orphans, dict(approvals.notes))
