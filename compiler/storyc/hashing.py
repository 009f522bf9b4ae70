"""Canonical-JSON sha256 hashing: the one way storyc turns inputs into cache keys.

Why canonical: a key must be the same in every process and on every machine, so the
JSON is written with sorted keys, no whitespace and no NaN, and types whose order or
text is not stable (sets, arbitrary objects) are refused instead of silently hashed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePath
from typing import Any

# Bump when the meaning of a key changes (e.g. what a step stores): every old entry misses.
KEY_VERSION = 2
_CHUNK = 1 << 20


def _default(value: Any) -> Any:
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (set, frozenset)):
        # Iteration order of sets of str differs between processes (hash randomisation).
        raise TypeError("sets have no stable order; pass a sorted list")
    if hasattr(value, "model_dump"):  # pydantic models
        return value.model_dump(mode="json")
    raise TypeError(f"cannot hash a {type(value).__name__} canonically")


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
    ).encode("utf-8")


def digest(value: Any) -> str:
    """sha256 hex of the canonical JSON of `value`."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | PurePath) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
