"""Keep secrets out of every message storyc produces.

Provider errors (gRPC details, debug strings, HTTP bodies) may echo request metadata,
including the `authorization: Bearer <key>` header. Everything that turns such an error
into text goes through `redact`, which removes the registered secrets and anything that
looks like a bearer token or an xAI key.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable

REDACTED = "[REDACTED]"

# Secrets are registered once (the backend registers its key) and scrubbed everywhere.
_secrets: set[str] = set()
_lock = threading.Lock()

# Bearer tokens and xAI-style keys, even ones storyc never saw (e.g. a server echoing a header).
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"),
    re.compile(r"\bxai-[A-Za-z0-9]{20,}"),  # xAI keys: "xai-" + a long alphanumeric run
)

# Environment variables whose values are secrets when set.
SECRET_ENV_VARS = ("XAI_API_KEY", "XAI_MANAGEMENT_KEY")


def register_secret(value: str | None) -> None:
    """Remember a secret so that every later `redact` call removes it."""
    if value and len(value) >= 4:  # a 1-3 character "secret" would shred ordinary text
        with _lock:
            _secrets.add(value)


def known_secrets() -> list[str]:
    with _lock:
        found = set(_secrets)
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            found.add(value)
    # longest first, so a secret containing another is removed whole
    return sorted(found, key=len, reverse=True)


def redact(text: object, extra: Iterable[str] = ()) -> str:
    """`text` as a string with every known secret (and bearer-looking token) replaced."""
    out = str(text)
    for secret in [*extra, *known_secrets()]:
        if secret:
            out = out.replace(secret, REDACTED)
    out = _PATTERNS[0].sub(lambda m: m.group(1) + REDACTED, out)
    out = _PATTERNS[1].sub(REDACTED, out)
    return out
