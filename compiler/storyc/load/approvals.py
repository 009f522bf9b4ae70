"""Reading the approvals sidecar beside a story (its records: storyc.model.approvals)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from storyc.diagnostics import StorycError, error
from storyc.load.codes import E_FILE
from storyc.model.approvals import APPROVED_DIR, SIDECAR_FILE, Approvals


class ApprovalsError(Exception):
    """The sidecar cannot be read (bad JSON, wrong shape): one clear line."""


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
