"""Cache keys of steps.

A step's fingerprint is the digest of everything known before running it (kind, rendered
prompts, model names, parameters, template digests, the content hashes of user input files).
Its cache key adds the OUTPUT hashes of its upstream steps (Hamilton-style), so keys resolve
progressively: a regenerated frame gives every step chained after it a new key, an identical
regeneration keeps them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

from storyc.graph.steps import Step
from storyc.hashing import KEY_VERSION, digest, file_sha256
from storyc.model.voices import ENGINE_PACKAGE
from storyc.prompts.promptset import PromptSet

# Which templates each step kind renders (including the ones it renders only when a
# check fails): a changed template re-keys exactly the steps that use it.
STEP_TEMPLATES = {
    "character": ("character_sheet", "character_from_reference", "check_sheet", "reword"),
    "location": ("location_plate", "location_from_reference", "check_plate", "reword"),
    "keyframe": ("keyframe", "check_keyframe", "fix_edit", "reword"),
    "video": ("video", "video_extend", "check_last_frame", "video_fix", "reword"),
    "speech": (),
    "assemble": (),
    "script": (),
}


def outputs_digest(files: Mapping[str, str], outputs: Mapping[str, str]) -> str:
    """What downstream keys see of a finished step: the content hashes of its output roles."""
    return digest({role: files[path] for role, path in sorted(outputs.items())})


def step_key(step: Step, upstream: Mapping[str, str]) -> str:
    """The cache key of `step` once every dependency's outputs digest is known."""
    return digest({"v": KEY_VERSION, "step": step.fingerprint, "deps": {d: upstream[d] for d in step.deps}})


def template_digests(prompts: PromptSet, names: Iterable[str]) -> dict[str, str]:
    """The source digest of each named template (with its partials), as a step's static input."""
    out = {}
    for name in names:
        try:
            out[name] = prompts.template_digest(name)
        except Exception:  # an unknown template name: nothing to pin
            continue
    return out


def render_scale() -> str:
    # Tiny test renders must never share cache entries with full-size ones.
    return os.environ.get("STORYC_RENDER_SCALE", "1") or "1"


def speech_engine() -> str:
    """The offline speech engine for cache keys: its wheel and version (the wheel ships
    libespeak-ng and its data), read without loading the library."""
    try:
        version = metadata.version(ENGINE_PACKAGE)
    except metadata.PackageNotFoundError:
        version = "missing"  # the speech step then fails with the engine's own message
    return f"{ENGINE_PACKAGE} {version}"


def input_hash(base_dir: Path, rel: str) -> dict[str, str]:
    """A user input file (reference image, pinned keyframe) by path and content hash."""
    path = base_dir / rel
    try:
        return {"path": rel, "sha256": file_sha256(path)}
    except OSError:
        return {"path": rel, "sha256": "missing"}
