"""The `name=number,...` settings storyc reads from environment variables, parsed by one
parser: STORYC_RATE_LIMITS and STORYC_CONCURRENCY (the executor), STORYC_OFFLINE_LATENCY
and STORYC_OFFLINE_FAULTS (the offline backend)."""

from __future__ import annotations


def parse_numbers(spec: str | None, what: str) -> dict[str, float]:
    """'image=5, video=0.5' → {'image': 5.0, 'video': 0.5}. Names are lower-cased, empty
    parts skipped, a repeated name's last value wins; every value must be a number, zero or
    more. Raises ValueError whose message starts with `what` (the variable's name)."""
    numbers: dict[str, float] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key or not value:
            raise ValueError(f"{what}: expected name=value, got {part!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{what}: {key}={value!r} is not a number") from None
        if not number >= 0:  # negative, or NaN
            raise ValueError(f"{what}: {key}={value!r} must be zero or more")
        numbers[key] = number
    return numbers
