"""Shot size from the camera words: how much of each figure a keyframe shows and how
large, and where the horizon sits. A wide shot shows small full figures, a medium shot
cuts them at the waist, a close-up shows head and shoulders; a low angle drops the
horizon and makes figures loom, a high angle does the opposite.

Figures stay clear of the caption bands however the camera moves: full figures stand
inside the rows every camera motion keeps in the picture; cut figures (medium, close-up)
are cut by the bottom band, and their tops stay below the top bar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from storyc.backends.offline.camera import safe_rows
from storyc.backends.offline.captions import BOTTOM_BAND, TOP_BAR


@dataclass(frozen=True)
class Shot:
    name: str
    visible: float  # fraction of a figure's height shown, from the top (1.0: full body)
    height: float  # height of the shown part, as a fraction of the frame height (at most)
    horizon: float  # the horizon row, as a fraction of the frame height
    slot_width: float = 0.8  # a figure's width at most, as a fraction of its slot


# the first entry whose words appear wins (so "medium close-up" is not "close-up")
SHOT_WORDS: list[tuple[tuple[str, ...], Shot]] = [
    (("extreme close-up", "extreme closeup", "extreme close up", "ecu"), Shot("extreme close-up", 0.42, 0.68, 0.6)),
    (("medium close-up", "medium closeup", "medium close up", "mcu"), Shot("medium close-up", 0.6, 0.64, 0.6)),
    (("close-up", "closeup", "close up", "tight shot"), Shot("close-up", 0.5, 0.66, 0.6)),
    (("medium shot", "mid shot", "mid-shot", "medium", "waist"), Shot("medium", 0.75, 0.6, 0.58)),
    (
        ("extreme wide", "extreme long", "establishing", "aerial", "bird's-eye", "birds-eye", "bird's eye"),
        Shot("extreme wide", 1.0, 0.22, 0.45),
    ),
    (("wide shot", "wide", "long shot", "full shot", "full-body", "full body"), Shot("wide", 1.0, 0.36, 0.52)),
]
DEFAULT_SHOT = Shot("full", 1.0, 0.52, 0.55)
# angles change a shot: (words, horizon, height factor)
ANGLES: list[tuple[tuple[str, ...], float, float]] = [
    (("low angle", "low-angle", "worm's-eye", "worms-eye", "looking up"), 0.74, 1.12),
    (("high angle", "high-angle", "overhead", "top-down", "top down", "looking down"), 0.32, 0.82),
]
EDGE = 0.012  # a little air between a full figure and the rows it must stay within


def _has(text: str, words: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text) for w in words)


def shot_from_camera(camera: str) -> Shot:
    text = " ".join(str(camera).lower().split())
    shot = next((s for words, s in SHOT_WORDS if _has(text, words)), DEFAULT_SHOT)
    for words, horizon, factor in ANGLES:
        if _has(text, words):
            shot = replace(shot, name=f"{shot.name}, {words[0]}", horizon=horizon, height=shot.height * factor)
            break
    return shot


def picture_limits() -> tuple[float, float, float, float]:
    """(top, bottom, safe top, safe bottom) as fractions of the height: the rows between
    the caption bands, and the keyframe rows that stay between them under any motion."""
    top, bottom = TOP_BAR, 1.0 - BOTTOM_BAND
    safe_top, safe_bottom = safe_rows(top, bottom)
    return top, bottom, safe_top, safe_bottom


@dataclass(frozen=True)
class Placement:
    width: int
    height: int  # the whole figure's height (its lower part may be cut by the band)
    left: int
    top: int


def place(figure_size: tuple[int, int], frame: tuple[int, int], slot: tuple[float, float], shot: Shot) -> Placement:
    """Size and position of a figure in its slot (x from `slot`'s edges, in pixels)."""
    fw, fh = figure_size
    _w, h = frame
    _, bottom, safe_top, safe_bottom = picture_limits()
    slot_w = slot[1] - slot[0]
    if shot.visible >= 1.0:
        foot = (safe_bottom - EDGE) * h
        shown = min(shot.height * h, foot - (safe_top + EDGE) * h)
    else:
        foot = bottom * h  # the band cuts the figure here (in the keyframe itself)
        shown = min(shot.height * h, foot - (safe_top + EDGE) * h)
    full = shown / shot.visible
    scale = min(full / fh, slot_w * shot.slot_width / fw)
    new_w, new_h = max(2, int(fw * scale)), max(2, int(fh * scale))
    top = foot - new_h * shot.visible
    return Placement(new_w, new_h, round((slot[0] + slot[1]) / 2 - new_w / 2), round(top))
