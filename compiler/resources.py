"""Where the packaged data lives: default prompt templates and the JSON Schema.

Installed (wheel): storyc/_data/{prompts,schemas}. From a source checkout or an
editable install: the repository's top-level prompts/ and schemas/.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def data_dir(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"storyc's packaged '{name}' folder is missing; reinstall storyc")


def prompts_dir() -> Path:
    return data_dir("prompts")


def schema_path() -> Path:
    return data_dir("schemas") / "story.schema.json"
