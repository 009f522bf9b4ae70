"""The approvals sidecar's records (`approved/approvals.json` beside the story).

`storyc approve` copies a chosen take into `approved/` and pins it in the story; the sidecar
records, per pinned target, what the take was approved against: the hashes of its inputs
(its prompt, the visual descriptions in it, the sheets, keyframe or clip it was made from,
other values such as a clip's duration). It also keeps the redo notes of
`storyc build --redo TARGET --note TEXT` (they are part of the story's inputs until the
target is approved). The folder is meant to be committed: CI then renders exactly what was
approved, with no paid call for it. Read by storyc.load.approvals, written by
storyc.store.approvals; storyc.lint.staleness says which pins are stale.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

APPROVED_DIR = "approved"
SIDECAR_FILE = "approvals.json"
FORMAT_VERSION = 1


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
