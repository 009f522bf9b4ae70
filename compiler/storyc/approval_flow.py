"""Approval inside Prefect: a deployment run (`storyc deploy ... --approve keyframes`) builds
up to the keyframes, pauses with a form listing each scene's takes, and resumes with the
reviewer's answer: approved takes are pinned in the story (storyc.author.approve), redo
notes recorded (storyc.store.approvals), and the run goes on to render the clips.

The form is a Prefect `RunInput` made for the build at hand, three flat fields per scene
(Prefect's UI renders flat fields best): `scene_<id>_take` (1 to the number of takes, the
kept one by default), `scene_<id>_approve` (default true: "approve & continue") and
`scene_<id>_redo_note` (a note asks for a new take with it instead). Its description lists
every take with its score and file. A reviewer answers in the Prefect UI, or with
`storyc approve --run RUN_ID [TARGET[@TAKE]...] [--redo TARGET --note TEXT]`
(`answer_paused_run`), which reads the form Prefect stored for the pause and resumes the
run through Prefect's client; the server validates the answer against the form.

Prefect is imported lazily (only a deployed run and `--run` use this module).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc.author.approve import approve
from storyc.load.loader import load_story
from storyc.model.state import BuildState
from storyc.model.targets import Take, parse_target, takes
from storyc.run.prefect_settings import quiet_prefect_env
from storyc.store.approvals import set_redo_note

DEFAULT_TIMEOUT_S = 24 * 3600  # a reviewer has a day; then the run fails (nothing is lost: the cache keeps it all)
POLL_S = 5  # how often the paused run checks whether it was resumed
_FIELD = re.compile(r"^scene_(\d+)_(take|approve|redo_note)$")


class ReviewError(Exception):
    """The paused run cannot be answered as asked: one clear line."""


@dataclass
class SceneTakes:
    scene_id: int
    takes: list[Take]

    @property
    def kept(self) -> int:
        return next((t.number for t in self.takes if t.kept), len(self.takes))


@dataclass
class Decision:
    """The reviewer's answer, per scene target (`scene:2`)."""

    approve: dict[str, int] = field(default_factory=dict)  # target → take number
    redo: dict[str, str] = field(default_factory=dict)  # target → note


def scenes_to_review(story: Any, state: BuildState) -> list[SceneTakes]:
    """Each scene whose keyframe this build generated (pinned ones are already approved)."""
    out = []
    for scene in story.scenes:
        record = state.steps.get(f"keyframe:{scene.scene_id}")
        if scene.keyframe_image or record is None or record.status != "done":
            continue
        found = takes(record, "keyframe")
        if found:
            out.append(SceneTakes(scene.scene_id, found))
    return out


def _describe(scenes: list[SceneTakes], out_dir: Path, story_path: Path) -> str:
    lines = [
        f"**Review the keyframes** of `{story_path}` (storyboard: `{out_dir / 'storyboard.html'}`).",
        "",
        "For each scene: the take to approve (it is pinned in the story and the clip starts from it), "
        "or untick *approve* to render the clip from the kept take without pinning it, "
        "or write a *redo note* to generate a new keyframe with that note appended to its prompt.",
        "",
    ]
    for s in scenes:
        lines.append(f"- **Scene {s.scene_id}**")
        for t in s.takes:
            score = "" if t.score is None else f" · score {t.score:.2f}"
            lines.append(f"  - take {t.number}{score}{' · kept' if t.kept else ''}: `{out_dir / t.path}`")
    return "\n".join(lines)


def review_form(scenes: list[SceneTakes], out_dir: Path, story_path: Path) -> type:
    """The RunInput class the paused run waits for, with this build's takes as defaults."""
    from prefect.input import RunInput
    from pydantic import Field, create_model

    fields: dict[str, Any] = {}
    for s in scenes:
        n = s.scene_id
        fields[f"scene_{n}_take"] = (
            int,
            Field(
                default=s.kept,
                ge=1,
                le=len(s.takes),
                title=f"Scene {n}: take",
                description=f"1 to {len(s.takes)}, as numbered in the storyboard (kept: {s.kept})",
            ),
        )
        fields[f"scene_{n}_approve"] = (bool, Field(default=True, title=f"Scene {n}: approve"))
        fields[f"scene_{n}_redo_note"] = (
            str,
            Field(default="", title=f"Scene {n}: redo note", description="Non-empty: generate a new keyframe with it"),
        )
    model = create_model("KeyframeReview", __base__=RunInput, **fields)
    model._description = _describe(scenes, out_dir, story_path)
    return model


def decision_of(answer: Any) -> Decision:
    """The reviewer's answer (an instance of the form) as targets to approve and redo."""
    values = answer.model_dump() if hasattr(answer, "model_dump") else dict(answer)
    decision = Decision()
    scene_ids = sorted({int(m.group(1)) for key in values if (m := _FIELD.match(key))})
    for n in scene_ids:
        note = (values.get(f"scene_{n}_redo_note") or "").strip()
        if note:
            decision.redo[f"scene:{n}"] = note
        elif values.get(f"scene_{n}_approve"):
            decision.approve[f"scene:{n}"] = int(values[f"scene_{n}_take"])
    return decision


def pause_for_review(scenes: list[SceneTakes], out_dir: Path, story_path: Path, timeout_s: int) -> Decision:
    """Inside a flow run: pause until the reviewer answers the form; their decision."""
    from prefect.flow_runs import pause_flow_run

    form = review_form(scenes, out_dir, story_path)
    answer = pause_flow_run(wait_for_input=form, timeout=timeout_s, poll_interval=POLL_S)
    return decision_of(answer)


def apply_decision(
    decision: Decision, story_path: Path, *, out_dir: Path, cache_dir: Path, prompts_dir: Path | None
) -> list[str]:
    """Pin the approved takes and record the redo notes; one line per action, for the log."""
    done = []
    for target, take in decision.approve.items():
        result = approve(story_path, target, out_dir=out_dir, take=take, cache_dir=cache_dir, prompts_dir=prompts_dir)
        done.append(f"approved {target} take {take} → {result.file}")
    story = load_story(story_path).story
    for target, note in decision.redo.items():
        set_redo_note(story_path, parse_target(story, target), note)
        done.append(f"redo {target} with the note {note!r}")
    return done


# ─── answering from the command line ─────────────────────────────────────────


def _form_fields(client: Any, flow_run: Any) -> dict[str, dict]:
    import json

    keyset = flow_run.state.state_details.run_input_keyset if flow_run.state else None
    if not keyset:
        raise ReviewError(f"flow run {flow_run.id} is paused but waits for no input (not a storyc review)")
    try:
        schema = json.loads(client.read_flow_run_input(flow_run.id, keyset["schema"]))
    except Exception as exc:
        raise ReviewError(f"cannot read the review form of flow run {flow_run.id}: {exc}") from None
    props = schema.get("properties") or {}
    if not props or not all(_FIELD.match(k) for k in props):
        raise ReviewError(f"flow run {flow_run.id} does not wait for a storyc keyframe review")
    return props


def answer_paused_run(run_id: str, approvals: Mapping[str, int | None], redo: Mapping[str, str]) -> Decision:
    """Resume a paused review run: approve `approvals` (target → take, None = the kept one;
    none given = every kept take, the form's defaults), redo `redo` (target → note)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL

    quiet_prefect_env()
    if not PREFECT_API_URL.value():
        raise ReviewError("no Prefect server: set PREFECT_API_URL=http://HOST:4200/api (the deployment's server)")
    try:
        flow_run_id = UUID(run_id)
    except ValueError:
        raise ReviewError(f"{run_id!r} is not a flow run id") from None
    try:
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(flow_run_id)
            if not flow_run.state or not flow_run.state.is_paused():
                state = flow_run.state.name if flow_run.state else "no state"
                raise ReviewError(f"flow run {run_id} is not paused for a review ({state})")
            props = _form_fields(client, flow_run)
    except ObjectNotFound:
        raise ReviewError(f"no flow run {run_id} on {PREFECT_API_URL.value()}") from None
    values = {key: spec.get("default") for key, spec in props.items()}
    scene_ids = {int(_FIELD.match(k).group(1)) for k in props}
    for target in [*approvals, *redo]:
        kind, _, ident = target.partition(":")
        if kind != "scene" or not ident.isdigit() or int(ident) not in scene_ids:
            known = ", ".join(f"scene:{n}" for n in sorted(scene_ids))
            raise ReviewError(f"{target}: the review form has {known}")
    if approvals:  # only the named ones are approved
        for n in scene_ids:
            values[f"scene_{n}_approve"] = f"scene:{n}" in approvals
    for target, take in approvals.items():
        n = target.partition(":")[2]
        if take is not None:
            high = props[f"scene_{n}_take"].get("maximum")
            if high is not None and not 1 <= take <= high:
                raise ReviewError(f"{target} has {high} take(s): @1 to @{high}")
            values[f"scene_{n}_take"] = take
    for target, note in redo.items():
        n = target.partition(":")[2]
        if not note.strip():
            raise ReviewError(f"--redo {target} needs a --note (the form asks a new take with a note)")
        values[f"scene_{n}_redo_note"] = note
        values[f"scene_{n}_approve"] = False
    try:
        resume_flow_run(flow_run_id, run_input=values)
    except (NotPausedError, FlowPauseTimeout, RuntimeError) as exc:
        raise ReviewError(f"cannot resume flow run {run_id}: {exc}") from None
    return decision_of(values)
