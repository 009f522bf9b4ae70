"""What a build reports about approvals: the storyboard's review facts (each pin current or
stale against what this build made, the redo notes, the approve command) and, for
report.json, what the pins saved: the calls and dollars their targets would have cost
to generate in this build (the dry-run estimate of each replaced step), and what the
approved takes cost when they were generated."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from storyc.graph.estimate import StepEstimate, estimate_totals
from storyc.graph.steps import Step, StepGraph
from storyc.lint.staleness import built_hashes, check_pins
from storyc.model.approvals import Approvals
from storyc.model.state import BuildState
from storyc.model.targets import target_of_step
from storyc.report.review import PinView, Review


def storyboard_review(
    graph: StepGraph, prompts: Any, approvals: Approvals, story_arg: str, out_arg: str | None
) -> Callable[[BuildState], Review]:
    """The Review of a build, computed when its storyboard is written (staleness is judged
    against the outputs this build made for unpinned upstream targets)."""
    story = graph.story
    base_dir = graph.story_path.parent
    notes = {
        target.id: step.note
        for step in graph.steps.values()
        if step.note and (target := target_of_step(story, step.id)) is not None
    }

    def review(state: BuildState) -> Review:
        checks = check_pins(story, prompts, base_dir, approvals, built_hashes(story, state))
        pins = {
            c.target.id: PinView(c.file, c.record.take if c.record else None, c.status, list(c.reasons)) for c in checks
        }
        return Review(story=story_arg, out=out_arg, pins=pins, notes=notes)

    return review


def _saved(step: Step) -> StepEstimate:
    """What generating a pinned step would have called and cost (recorded in its `saves`)."""
    saves = step.saves
    return StepEstimate(
        dict(saves.get("calls_min", {})),
        dict(saves.get("calls_max", {})),
        float(saves.get("cost_min", 0.0)),
        float(saves.get("cost_max", 0.0)),
    )


def approval_savings(graph: StepGraph, done: Iterable[str], approvals: Approvals) -> dict[str, Any] | None:
    """report.json's `approvals`: every pinned step this build used, what generating it would
    have called and cost here (min: every check passes first time; max: every loop
    exhausted), and the calls and dollars its take cost when it was generated."""
    done = set(done)
    pinned = [s for s in graph.steps.values() if s.pinned and s.id in done]
    if not pinned:
        return None
    saved = [_saved(step) for step in pinned]
    generated_cost = 0.0
    generated_calls = 0
    targets = []
    for step, saves in zip(pinned, saved, strict=True):
        target = target_of_step(graph.story, step.id)
        record = approvals.pins.get(target.id) if target else None
        generated = dict(record.generated) if record and record.generated else None
        if generated:
            generated_calls += int(generated.get("calls", 0))
            generated_cost += float(generated.get("cost_usd", 0.0))
        targets.append(
            {
                "target": target.id if target else step.id,
                "step": step.id,
                "file": step.pinned,
                "take": record.take if record else None,
                "calls_min": sum(saves.calls_min.values()),
                "calls_max": sum(saves.calls_max.values()),
                "cost_min_usd": round(saves.cost_min, 4),
                "cost_max_usd": round(saves.cost_max, 4),
                "generated": generated,
            }
        )
    return {
        "pinned": len(pinned),
        "saved": estimate_totals(saved),
        # what the approved takes cost when they were made (recorded at approval, when known)
        "generated": {"calls": generated_calls, "cost_usd": round(generated_cost, 6)},
        "targets": targets,
    }


def out_argument(out_dir: Path, default: Path) -> str | None:
    """`--out` as the approve command needs it: None when the build used the default folder."""
    try:
        same = Path(out_dir).resolve() == Path(default).resolve()
    except OSError:
        same = False
    return None if same else str(out_dir)
