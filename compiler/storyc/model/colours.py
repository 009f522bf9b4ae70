"""Colour words: the vocabulary that turns story text ("burnt orange fur", "pale pink") into RGB.

Shared by the offline painter (which paints figures and backgrounds in the words' colours)
and the storyboard (which shows the palette as swatches), so both read a story's colours
the same way. Pure Python: no Pillow.
"""

from __future__ import annotations

import re

RGB = tuple[int, int, int]

COLOUR_WORDS: dict[str, RGB] = {
    "burnt orange": (204, 85, 0),
    "forest green": (35, 95, 40),
    "sky blue": (120, 180, 235),
    "navy blue": (20, 30, 100),
    "royal blue": (50, 80, 200),
    "blood red": (140, 10, 15),
    "olive green": (110, 120, 40),
    "sea green": (46, 139, 87),
    "midnight blue": (25, 25, 90),
    "red": (200, 40, 40),
    "crimson": (170, 20, 50),
    "scarlet": (230, 40, 30),
    "maroon": (120, 20, 30),
    "burgundy": (128, 0, 32),
    "pink": (240, 150, 180),
    "rose": (220, 110, 130),
    "coral": (250, 120, 90),
    "salmon": (250, 140, 120),
    "peach": (250, 190, 150),
    "orange": (240, 130, 30),
    "rust": (170, 70, 30),
    "copper": (184, 115, 51),
    "amber": (255, 176, 0),
    "gold": (230, 180, 40),
    "golden": (230, 180, 40),
    "yellow": (245, 220, 50),
    "mustard": (210, 170, 40),
    "ochre": (200, 140, 40),
    "cream": (245, 235, 200),
    "ivory": (250, 245, 225),
    "beige": (220, 200, 160),
    "tan": (210, 180, 140),
    "khaki": (195, 176, 120),
    "sand": (215, 195, 150),
    "brown": (120, 75, 40),
    "chestnut": (150, 75, 40),
    "chocolate": (90, 50, 25),
    "auburn": (165, 42, 42),
    "bronze": (160, 110, 50),
    "green": (50, 150, 60),
    "emerald": (20, 150, 90),
    "jade": (0, 168, 107),
    "olive": (120, 125, 40),
    "lime": (150, 210, 50),
    "mint": (150, 220, 180),
    "teal": (0, 128, 128),
    "turquoise": (60, 200, 190),
    "cyan": (40, 200, 220),
    "blue": (40, 80, 200),
    "navy": (20, 30, 100),
    "azure": (60, 140, 230),
    "cobalt": (0, 70, 170),
    "indigo": (75, 0, 130),
    "violet": (140, 70, 200),
    "purple": (120, 50, 160),
    "lavender": (180, 160, 220),
    "lilac": (200, 162, 200),
    "magenta": (200, 40, 160),
    "plum": (140, 60, 110),
    "white": (245, 245, 245),
    "snow": (250, 250, 252),
    "silver": (190, 195, 205),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "slate": (90, 100, 115),
    "charcoal": (55, 55, 60),
    "black": (25, 25, 25),
    "ebony": (30, 25, 25),
}
_SHADES = {"light": 0.45, "pale": 0.55, "dark": -0.45, "deep": -0.35}
_COLOUR_RE = re.compile(
    r"\b(?:(light|pale|dark|deep)[\s-]+)?("
    + "|".join(re.escape(w) for w in sorted(COLOUR_WORDS, key=len, reverse=True))
    + r")(?:s|es)?\b"
)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=False))  # type: ignore[return-value]


def shade(colour: RGB, amount: float) -> RGB:
    """amount > 0 lightens toward white, < 0 darkens toward black."""
    return mix(colour, (255, 255, 255), amount) if amount >= 0 else mix(colour, (0, 0, 0), -amount)


def colour_words(text: str) -> list[tuple[str, RGB]]:
    """The colour words of `text` in order of appearance, with their RGB."""
    found: list[tuple[str, RGB]] = []
    for match in _COLOUR_RE.finditer(text.lower()):
        modifier, word = match.group(1), match.group(2)
        colour = COLOUR_WORDS[word]
        if modifier:
            colour = shade(colour, _SHADES[modifier])
        found.append((match.group(0), colour))
    return found
