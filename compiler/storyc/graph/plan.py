"""The build graph: one step per character sheet, keyframe, video, plus assemble and script.

Edges come from the story: a keyframe needs the sheets of the characters in its
reference slots (storyc.prompts.render.allocate_slots) and its chain source (`video:<src>` for
`chain_source: last_frame`, `keyframe:<src>` for `keyframe`); a video needs its keyframe
and the sheets its drift check compares against; assemble needs every video; script
needs everything.

Each step has a static fingerprint: the digest of everything known before running it
(kind, rendered prompts, model names, parameters, template digests, the content hashes
of user input files). Its cache key adds the OUTPUT hashes of its upstream steps
(Hamilton-style), so keys resolve progressively: a regenerated frame gives every step
chained after it a new key, an identical regeneration keeps them. The plan knows
nothing of Prefect.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc import __version__
from storyc.model.story import VIDEO_EDIT_MAX_S, Story
from storyc.store.hashing import KEY_VERSION, digest, file_sha256

KINDS = ("character", "keyframe", "video", "assemble", "script")
API_KINDS = ("image", "video", "vision", "chat")


@dataclass
class Step:
    id: str
    kind: str
    deps: tuple[str, ...]
    static: dict[str, Any]  # everything that determines the output, except upstream outputs
    fingerprint: str
    scene_index: int | None = None
    scene_id: int | None = None
    character: str | None = None
    # Planned paid calls: min = every check passes first time, max = every loop exhausted.
    calls_min: dict[str, int] = field(default_factory=dict)
    calls_max: dict[str, int] = field(default_factory=dict)
    cost_min: float = 0.0
    cost_max: float = 0.0


@dataclass
class StepGraph:
    story: Story
    story_path: Path
    steps: dict[str, Step]  # in topological order
    backend: str

    @property
    def order(self) -> list[str]:
        return list(self.steps)

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {sid: [] for sid in self.steps}
        for step in self.steps.values():
            for dep in step.deps:
                out[dep].append(step.id)
        return out

    def descendants(self, roots: Iterable[str]) -> set[str]:
        children = self.dependents()
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            sid = todo.pop()
            for child in children[sid]:
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen

    def ancestors(self, roots: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            for dep in self.steps[todo.pop()].deps:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    def select(self, spec: str | None) -> set[str]:
        return select(self, spec)


# ─── keys ─────────────────────────────────────────────────────────────────────


def outputs_digest(files: Mapping[str, str], outputs: Mapping[str, str]) -> str:
    """What downstream keys see of a finished step: the content hashes of its output roles."""
    return digest({role: files[path] for role, path in sorted(outputs.items())})


def step_key(step: Step, upstream: Mapping[str, str]) -> str:
    """The cache key of `step` once every dependency's outputs digest is known."""
    return digest({"v": KEY_VERSION, "step": step.fingerprint, "deps": {d: upstream[d] for d in step.deps}})


# ─── building the graph ──────────────────────────────────────────────────────


def _text(rendered: Any) -> str:
    # PromptSet methods return text (or an object carrying .text)
    return rendered if isinstance(rendered, str) else str(getattr(rendered, "text", rendered))


def _digests(prompts: Any, names: Iterable[str]) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = prompts.template_digest(name)
        except Exception:  # an unknown template name: nothing to pin
            continue
    return out


# Which templates each step kind renders (including the ones it renders only when a
# check fails): a changed template re-keys exactly the steps that use it.
STEP_TEMPLATES = {
    "character": ("character_sheet", "character_from_reference", "check_sheet", "reword"),
    "keyframe": ("keyframe", "check_keyframe", "fix_edit", "reword"),
    "video": ("video", "check_last_frame", "video_fix", "reword"),
    "assemble": (),
    "script": (),
}


def render_scale() -> str:
    # Tiny test renders must never share cache entries with full-size ones.
    return os.environ.get("STORYC_RENDER_SCALE", "1") or "1"


def _input_hash(base_dir: Path, rel: str) -> dict[str, str]:
    path = base_dir / rel
    try:
        return {"path": rel, "sha256": file_sha256(path)}
    except OSError:
        return {"path": rel, "sha256": "missing"}


def build_graph(loaded: Any, prompts: Any, *, backend: str = "offline", slots_fn: Callable | None = None) -> StepGraph:
    """Compile a loaded story into its step graph (no I/O but hashing user input files)."""
    from storyc.model import prices as pricing
    from storyc.prompts.render import allocate_slots, judge_characters

    slots_fn = slots_fn or allocate_slots
    story: Story = loaded.story
    base_dir = Path(loaded.base_dir)
    q = story.quality
    common = {
        "storyc_key": KEY_VERSION,
        "backend": backend,
        "aspect_ratio": story.aspect_ratio,
        "resolution": story.resolution,
        "render_scale": render_scale(),
    }
    steps: dict[str, Step] = {}

    def add(step: Step) -> None:
        steps[step.id] = step

    # character sheets
    for c in story.characters:
        sid = f"character:{c.name}"
        if c.reference_image:
            sheet = _text(prompts.character_from_reference(c))
            ref = _input_hash(base_dir, c.reference_image)
        else:
            sheet, ref = _text(prompts.character_sheet(c)), None
        static = {
            **common,
            "kind": "character",
            "name": c.name,
            "prompts": {"sheet": sheet, "check": _text(prompts.check_sheet(c))},
            "models": {"image": story.models.image, "vision": story.models.vision},
            "quality": {"threshold": q.consistency_threshold, "attempts": q.max_character_attempts},
            "reference_image": ref,
            "templates": _digests(prompts, STEP_TEMPLATES["character"]),
            "visual_description": c.visual_description,
        }
        n_in = 1 if ref else 0
        sheet_usd = pricing.image_cost(n_in, story.models.image) + pricing.chat_cost(
            None, n_images=1, model=story.models.vision
        )
        add(
            Step(
                sid,
                "character",
                (),
                static,
                digest(static),
                character=c.name,
                calls_min={"image": 1, "vision": 1},
                calls_max={"image": q.max_character_attempts, "vision": q.max_character_attempts},
                cost_min=sheet_usd,
                cost_max=q.max_character_attempts * sheet_usd,
            )
        )

    # keyframes and videos, in story order (chain sources always come earlier)
    for i, scene in enumerate(story.scenes):
        plan = slots_fn(story, i)
        slots = [{"kind": s.kind, "name": s.name, "scene_id": s.scene_id, "source": s.source} for s in plan.slots]
        # The keyframe edit sends the slot characters' sheets; its check (and the video's
        # drift check) sends every present character's sheet, text-only ones included.
        judged = tuple(
            dict.fromkeys([s.name for s in plan.slots if s.kind == "character"] + list(judge_characters(story, i)))
        )
        char_deps = tuple(f"character:{n}" for n in judged)
        chain_deps = tuple(
            (f"video:{s.scene_id}" if s.source == "last_frame" else f"keyframe:{s.scene_id}")
            for s in plan.slots
            if s.kind == "chain"
        )
        kid = f"keyframe:{scene.scene_id}"
        if scene.keyframe_image:
            static = {
                **common,
                "kind": "keyframe",
                "scene_id": scene.scene_id,
                "pinned": _input_hash(base_dir, scene.keyframe_image),
            }
            add(Step(kid, "keyframe", (), static, digest(static), scene_index=i, scene_id=scene.scene_id))
        else:
            static = {
                **common,
                "kind": "keyframe",
                "scene_id": scene.scene_id,
                "prompts": {"compose": _text(prompts.keyframe(i)), "check": _text(prompts.check_keyframe(i))},
                "slots": slots,
                "text_only": list(plan.text_only),
                "models": {"image": story.models.image, "vision": story.models.vision},
                "quality": {"threshold": q.consistency_threshold, "iterations": q.max_keyframe_iterations},
                "templates": _digests(prompts, STEP_TEMPLATES["keyframe"]),
                # the offline renderer draws from these, so they are inputs too
                "hints": {
                    "setting": scene.setting,
                    "mood": scene.mood,
                    "camera": scene.camera,
                    "palette": story.color_palette,
                    "characters": {
                        n: story.character(n).visual_description for n in scene.characters_present if story.character(n)
                    },
                },
            }
            n_refs = len(slots)
            per_iter_image = pricing.image_cost(n_refs, story.models.image)
            fix_image = pricing.image_cost(2, story.models.image)  # the keyframe + the target's sheet
            vision = pricing.chat_cost(None, n_images=1 + len(char_deps), model=story.models.vision)
            iters = q.max_keyframe_iterations
            add(
                Step(
                    kid,
                    "keyframe",
                    char_deps + chain_deps,
                    static,
                    digest(static),
                    scene_index=i,
                    scene_id=scene.scene_id,
                    calls_min={"image": 1, "vision": 1},
                    calls_max={"image": iters, "vision": iters},
                    cost_min=per_iter_image + vision,
                    cost_max=iters * (max(per_iter_image, fix_image) + vision),
                )
            )
        vid = f"video:{scene.scene_id}"
        correctable = scene.duration_seconds <= VIDEO_EDIT_MAX_S
        clips_max = 1 + (q.max_video_corrections if correctable else 0)
        static = {
            **common,
            "kind": "video",
            "scene_id": scene.scene_id,
            "prompts": {"video": _text(prompts.video(i)), "check": _text(prompts.check_last_frame(i))},
            "duration_s": scene.duration_seconds,
            "models": {"video": story.models.video, "vision": story.models.vision},
            "quality": {"threshold": q.consistency_threshold, "corrections": q.max_video_corrections},
            "templates": _digests(prompts, STEP_TEMPLATES["video"]),
            "hints": {"camera": scene.camera, "action": scene.action, "mood": scene.mood},
        }
        # prices per model (prices.py); a correction is a video edit, which bills its input seconds too
        clip = pricing.video_cost(scene.duration_seconds, story.resolution, story.models.video)
        edit = pricing.video_cost(
            scene.duration_seconds, story.resolution, story.models.video, input_s=scene.duration_seconds
        )
        vision = pricing.chat_cost(None, n_images=1 + len(char_deps), model=story.models.vision)
        add(
            Step(
                vid,
                "video",
                (kid,) + char_deps,
                static,
                digest(static),
                scene_index=i,
                scene_id=scene.scene_id,
                calls_min={"video": 1, "vision": 1},
                calls_max={"video": clips_max, "vision": clips_max},
                cost_min=clip + vision,
                cost_max=clip + vision + (clips_max - 1) * (edit + vision),
            )
        )

    videos = tuple(f"video:{s.scene_id}" for s in story.scenes)
    static = {
        **common,
        "kind": "assemble",
        "clips": [
            {"scene_id": s.scene_id, "duration_s": s.duration_seconds, "transition": s.transition} for s in story.scenes
        ],
        "fps": 24,
    }
    add(Step("assemble", "assemble", videos, static, digest(static)))
    static = {**common, "kind": "script", "story": story.model_dump(mode="json"), "storyc": __version__}
    add(Step("script", "script", tuple(s for s in steps), static, digest(static)))
    return StepGraph(story=story, story_path=Path(loaded.path), steps=steps, backend=backend)


# ─── selection (dbt-style) ────────────────────────────────────────────────────


class SelectionError(ValueError):
    pass


_TOKEN = re.compile(r"^(\+?)([a-z]+)(?::(.+?))?(\+?)$")


def select(graph: StepGraph, spec: str | None) -> set[str]:
    """`scene:3+` (that scene and everything downstream), `character:Ember+`, `scene:2`,
    `keyframe:3`, `+video:2` (with everything upstream); several separated by commas or
    spaces form a union. None/empty selects everything."""
    if not spec or not spec.strip():
        return set(graph.steps)
    chosen: set[str] = set()
    for token in filter(None, re.split(r"[,\s]+", spec.strip())):
        m = _TOKEN.match(token)
        if not m:
            raise SelectionError(f"bad selector {token!r}: expected e.g. scene:3+, character:Ember, keyframe:2")
        up, kind, arg, down = m.groups()
        if kind == "scene":
            base = {f"keyframe:{arg}", f"video:{arg}"}
        elif kind in KINDS and arg is None and kind in ("assemble", "script"):
            base = {kind}
        elif kind in ("character", "keyframe", "video") and arg:
            base = {f"{kind}:{arg}"}
        else:
            raise SelectionError(
                f"bad selector {token!r}: kinds are scene:<id>, character:<name>, keyframe:<id>, video:<id>, assemble, script"
            )
        missing = base - set(graph.steps)
        if missing:
            raise SelectionError(f"selector {token!r} matches no step ({', '.join(sorted(missing))} not in the story)")
        chosen |= base
        if down:
            chosen |= graph.descendants(base)
        if up:
            chosen |= graph.ancestors(base)
    return chosen


# ─── progressive key resolution against a cache ──────────────────────────────


@dataclass
class Resolution:
    """Where each step stands before executing: its key (None = pending upstream) and cache entry."""

    keys: dict[str, str | None]
    entries: dict[str, dict | None]

    def cached(self, sid: str) -> bool:
        return self.entries.get(sid) is not None

    @property
    def all_cached(self) -> bool:
        return all(e is not None for e in self.entries.values())


def resolve(graph: StepGraph, cache: Any, *, force: set[str] | None = None) -> Resolution:
    """Walk the graph in order: a step's key is known when all its deps are cached."""
    force = force or set()
    keys: dict[str, str | None] = {}
    entries: dict[str, dict | None] = {}
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


def planned_calls(graph: StepGraph, steps: Iterable[str]) -> dict[str, Any]:
    """Calls per kind and estimated cost for running `steps` (dry-run)."""
    mins: dict[str, int] = dict.fromkeys(API_KINDS, 0)
    maxs: dict[str, int] = dict.fromkeys(API_KINDS, 0)
    cost_min = cost_max = 0.0
    for sid in steps:
        step = graph.steps[sid]
        for k, n in step.calls_min.items():
            mins[k] += n
        for k, n in step.calls_max.items():
            maxs[k] += n
        cost_min += step.cost_min
        cost_max += step.cost_max
    return {
        "calls_min": mins,
        "calls_max": maxs,
        "calls_min_total": sum(mins.values()),
        "calls_max_total": sum(maxs.values()),
        "cost_min_usd": round(cost_min, 4),
        "cost_max_usd": round(cost_max, 4),
    }


# ─── rendering the graph (storyc graph) ──────────────────────────────────────


def graph_json(graph: StepGraph, res: Resolution) -> dict:
    return {
        "story": str(graph.story_path),
        "backend": graph.backend,
        "steps": [
            {
                "id": s.id,
                "kind": s.kind,
                "deps": list(s.deps),
                "key": res.keys[s.id] or "pending",
                "cached": res.cached(s.id),
            }
            for s in graph.steps.values()
        ],
    }


def _node_name(sid: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", sid)


def _node_facts(step_id: str, res: Resolution) -> tuple[str, str]:
    """What a graph node shows besides its id: the key's first 12 digits, and its state."""
    return (res.keys[step_id] or "pending")[:12], "cached" if res.cached(step_id) else "to build"


def graph_mermaid(graph: StepGraph, res: Resolution) -> str:
    lines = ["flowchart LR"]
    for s in graph.steps.values():
        key, state = _node_facts(s.id, res)
        label = f"{s.id}<br/>{key}<br/>{state}".replace('"', "'")
        lines.append(f'    {_node_name(s.id)}["{label}"]')
    for s in graph.steps.values():
        for d in s.deps:
            lines.append(f"    {_node_name(d)} --> {_node_name(s.id)}")
    lines.append("    classDef cached fill:#d4f7d4,stroke:#2a2;")
    cached = [_node_name(s) for s in graph.steps if res.cached(s)]
    if cached:
        lines.append(f"    class {','.join(cached)} cached;")
    return "\n".join(lines)


def graph_dot(graph: StepGraph, res: Resolution) -> str:
    lines = ["digraph storyc {", "  rankdir=LR;", "  node [shape=box, fontname=monospace];"]
    for s in graph.steps.values():
        key, state = _node_facts(s.id, res)
        color = ', style=filled, fillcolor="#d4f7d4"' if res.cached(s.id) else ""
        label = f"{s.id}\\n{key}\\n{state}".replace('"', "'")
        lines.append(f'  "{s.id}" [label="{label}"{color}];')
    for s in graph.steps.values():
        for d in s.deps:
            lines.append(f'  "{d}" -> "{s.id}";')
    lines.append("}")
    return "\n".join(lines)
