"""`storyc init`: scaffold a storyboard project (story, schema, .gitignore, pre-commit, CI).

The files are package data in `scaffold_data/` (inside the package, so every install ships
them; not under prompts/, whose files users override) and are copied byte for byte. The
schema is the one storyc ships, so the story's modeline resolves offline.

An existing file is never replaced without `force`; a file already identical to the
scaffold is left alone even with `force` (nothing to change, mtime kept).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from storyc.resources import schema_path

_DATA_DIR = Path(__file__).resolve().parent / "scaffold_data"

SCHEMA_FILE = "story.schema.json"

# (path in the project, template in scaffold_data/; None = storyc's JSON Schema)
FILES: tuple[tuple[str, str | None], ...] = (
    ("story.yaml", "story.yaml"),
    (SCHEMA_FILE, None),
    (".gitignore", "gitignore"),
    (".pre-commit-config.yaml", "pre-commit-config.yaml"),
    (".github/workflows/storyc.yml", "storyc-workflow.yml"),
)

CREATED, UNCHANGED, SKIPPED, OVERWRITTEN, FAILED = "created", "unchanged", "skipped", "overwritten", "failed"


class InitError(Exception):
    """The project folder itself cannot be used (it is a file, or cannot be created)."""


@dataclass(frozen=True)
class FileOutcome:
    rel: str  # path inside the project, with forward slashes
    status: str  # CREATED, UNCHANGED, SKIPPED, OVERWRITTEN or FAILED
    reason: str = ""


def template_bytes(source: str | None) -> bytes:
    if source is None:
        return schema_path().read_bytes()
    return (_DATA_DIR / source).read_bytes()


def scaffold(target: Path, *, force: bool = False) -> list[FileOutcome]:
    """Write the scaffold into `target` (created if missing); one outcome per file."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise InitError(f"{target} exists and is not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InitError(f"cannot create {target}: {exc.strerror or exc}") from None
    return [_place(target, rel, template_bytes(source), force) for rel, source in FILES]


def _place(target: Path, rel: str, data: bytes, force: bool) -> FileOutcome:
    dest = target / rel
    try:
        if dest.is_symlink() or dest.exists():
            if dest.is_dir():
                return FileOutcome(rel, FAILED, "a folder is in the way")
            if dest.is_file() and dest.read_bytes() == data:
                return FileOutcome(rel, UNCHANGED)
            if not force:
                return FileOutcome(rel, SKIPPED, "exists")
            _write(dest, data, replace=True)
            return FileOutcome(rel, OVERWRITTEN)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not _write(dest, data, replace=False):  # appeared meanwhile: still never clobbered
            return FileOutcome(rel, SKIPPED, "exists")
        return FileOutcome(rel, CREATED)
    except OSError as exc:
        return FileOutcome(rel, FAILED, exc.strerror or str(exc))


def _write(dest: Path, data: bytes, *, replace: bool) -> bool:
    """Write through a temp file beside `dest`, so no half-written file is ever left. Without
    `replace`, link it into place (fails if `dest` exists) instead of renaming over it."""
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        if replace:
            os.replace(tmp, dest)
            return True
        try:
            os.link(tmp, dest)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive create
            try:
                with open(dest, "xb") as f:
                    f.write(data)
            except FileExistsError:
                return False
        return True
    finally:
        tmp.unlink(missing_ok=True)
