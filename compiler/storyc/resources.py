"""Where the packaged data lives: default prompt templates and the JSON Schema.

A source checkout (an editable install, or tests run from the repository) reads the
repository's top-level prompts/ and schemas/ in place, so an edit shows at once. An
installed wheel reads the copies hatchling put in storyc/_data/.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
# compiler/storyc/ -> the repository root, when this file is in a checkout.
_CHECKOUT_ROOT = _PACKAGE_DIR.parent.parent


def _in_checkout() -> bool:
    return (_CHECKOUT_ROOT / "pyproject.toml").is_file() and (_CHECKOUT_ROOT / "compiler" / "storyc").is_dir()


@cache
def data_dir(name: str) -> Path:
    candidate = _CHECKOUT_ROOT / name if _in_checkout() else _PACKAGE_DIR / "_data" / name
    if candidate.is_dir():
        return candidate
    raise FileNotFoundError(f"storyc's packaged '{name}' folder is missing; reinstall storyc")


def prompts_dir() -> Path:
    return data_dir("prompts")


def schema_path() -> Path:
    return data_dir("schemas") / "story.schema.json"
