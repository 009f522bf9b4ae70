"""The offline backend's deliberate mistakes, decided without randomness.

Like a real model, the offline "model" sometimes gets a character's colours wrong and
some clips drift in colour, so the check → fix loop has work to do. Every such choice is
a stable hash of the request (its content identity), so the same request always makes
the same mistake, in any process. No Pillow here: importing the backend stays light.
"""

from __future__ import annotations

import hashlib

# how often the "model" errs, per 100 draws
SHEET_ERROR_RATE = 25
KEYFRAME_ERROR_RATE = 30
TEXT_ONLY_ERROR_RATE = 60  # a character without a reference image is drawn from words
VIDEO_DRIFT_RATE = 45  # of which about half mild, half strong
# A simulated error is either large enough for the check to catch (>= 45 degrees of hue)
# or too small to see (<= 8): a colour that visibly wanders between scenes must never pass.


def stable_hash(*parts: object) -> int:
    """A process-independent hash (Python's hash() is salted per process)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def sheet_hue_error(identity: str) -> int:
    """Degrees a character sheet's colours are off (0: drawn right)."""
    h = stable_hash("sheet-error", identity)
    return (50 + h // 100 % 80) if h % 100 < SHEET_ERROR_RATE else 0


def plate_hue_error(identity: str) -> int:
    """Degrees a location plate's colours are off (0: drawn right)."""
    h = stable_hash("plate-error", identity)
    return (50 + h // 100 % 80) if h % 100 < SHEET_ERROR_RATE else 0


def keyframe_hue_error(identity: str, name: str, *, from_sheet: bool) -> int:
    """Degrees a keyframe figure's colours are off: a figure cut from its sheet is sometimes
    wrong; a text-only one, drawn from the words alone, more often (and otherwise off by
    a few degrees, too little to see)."""
    h = stable_hash("keyframe-error", identity, name)
    if from_sheet:
        return (50 + h // 100 % 70) if h % 100 < KEYFRAME_ERROR_RATE else 0
    return (50 + h // 100 % 40) if h % 100 < TEXT_ONLY_ERROR_RATE else h // 100 % 6


def video_drift(identity: str) -> tuple[int, int]:
    """(signed degrees of colour drift over the clip, the audio tone's Hz) for a clip."""
    h = stable_hash("drift", identity)
    roll = h % 100
    if roll < VIDEO_DRIFT_RATE // 2:
        drift = 3 + h // 100 % 6  # mild: too small to see, passes the check
    elif roll < VIDEO_DRIFT_RATE:
        drift = 45 + h // 100 % 45  # strong: the check should catch it
    else:
        drift = 0
    drift = -drift if (h >> 20) % 2 else drift
    return drift, 180 + h // 10_000 % 340


CANDIDATE_MARK = ":candidate"  # the offline backend's identity of a best-of-N request's 2nd, 3rd ... draw


def candidate_jitter(identity: str) -> int:
    """A best-of-N request's later draws are other takes: when no mistake is made their
    colours still differ a little (1-8 degrees: too small to see, enough to score apart)."""
    if CANDIDATE_MARK not in identity:
        return 0
    return 1 + stable_hash("candidate", identity) % 8
