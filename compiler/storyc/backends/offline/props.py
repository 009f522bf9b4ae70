"""Props: a thing the scene's action names (a lantern, a crystal) drawn as a simple
labelled shape in the gap between figures, so the animatic shows what the action is
about. A small table: noun → shape and colour; a colour word right before the noun
("a red ball") wins over the table's colour.

Where a prop goes depends only on the hints (the action, the number of figure slots and
the shot), so the judge can leave the same boxes out of its figure analysis.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from storyc.backends.offline import captions
from storyc.backends.offline.shots import EDGE, Shot, picture_limits
from storyc.model.colours import RGB, colour_words, shade

OUTLINE: RGB = (35, 35, 40)
MAX_PROPS = 2
PROP_HEIGHT = 0.1  # of the frame height, at most
LABEL_PX = 0.024  # label font size, of the frame height

# noun → (shape, colour)
PROPS: dict[str, tuple[str, RGB]] = {
    **dict.fromkeys(("lantern", "lamp"), ("lantern", (250, 190, 80))),
    "candle": ("candle", (250, 240, 205)),
    **dict.fromkeys(("crystal", "gem", "jewel", "diamond", "shard", "gemstone"), ("gem", (140, 220, 255))),
    **dict.fromkeys(("book", "diary", "journal", "notebook"), ("book", (150, 60, 40))),
    **dict.fromkeys(("map", "letter", "scroll", "envelope"), ("sheet", (238, 222, 170))),
    **dict.fromkeys(("ball", "orb", "apple", "egg", "pearl", "coin", "acorn", "compass", "globe"), ("orb", (220, 70, 60))),
    **dict.fromkeys(("sword", "dagger", "knife"), ("blade", (200, 205, 215))),
    **dict.fromkeys(("staff", "walking stick", "wand", "cane", "broom", "torch"), ("stick", (140, 95, 55))),
    **dict.fromkeys(("box", "gift", "package", "parcel", "crate", "treasure chest"), ("box", (170, 110, 60))),
    **dict.fromkeys(("basket", "bucket", "pot"), ("basket", (190, 150, 90))),
    **dict.fromkeys(("cup", "mug", "teacup", "bowl"), ("cup", (240, 240, 235))),
    **dict.fromkeys(("flower", "daisy", "tulip", "sunflower", "bouquet"), ("flower", (240, 120, 170))),
    "key": ("key", (230, 180, 40)),
    "umbrella": ("umbrella", (60, 110, 200)),
    "bell": ("bell", (230, 180, 40)),
    "kite": ("kite", (230, 60, 60)),
    **dict.fromkeys(("bottle", "jar", "potion", "flask", "vial"), ("bottle", (80, 170, 120))),
}  # fmt: skip
# default colours per shape for table entries that share a shape but not a colour
_COLOURS: dict[str, RGB] = {"apple": (200, 40, 40), "egg": (245, 240, 225), "pearl": (240, 238, 230),
                            "coin": (230, 180, 40), "acorn": (150, 100, 50), "compass": (200, 170, 80),
                            "globe": (70, 140, 210), "torch": (140, 95, 55), "treasure chest": (200, 150, 50),
                            "wand": (60, 45, 40), "sunflower": (245, 200, 40),
                            "potion": (150, 80, 200)}  # fmt: skip
_NOUN = re.compile(r"\b(" + "|".join(sorted(map(re.escape, PROPS), key=len, reverse=True)) + r")(?:s|es)?\b")


@dataclass(frozen=True)
class Prop:
    name: str
    shape: str
    colour: RGB


def props_in(action: str, exclude: Sequence[str] = ()) -> list[Prop]:
    """The props an action names, in order, at most MAX_PROPS, each once."""
    text = " ".join(str(action).lower().split())
    skip = {n.lower() for n in exclude}
    found: list[Prop] = []
    for m in _NOUN.finditer(text):
        noun = m.group(1)
        if noun in skip or any(p.name == noun for p in found):
            continue
        shape, colour = PROPS[noun]
        colour = _COLOURS.get(noun, colour)
        before = colour_words(" ".join(text[: m.start()].split()[-2:]))
        if before:
            colour = before[-1][1]
        found.append(Prop(noun, shape, colour))
        if len(found) == MAX_PROPS:
            break
    return found


# ─── placement ───────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class PropBox:
    prop: Prop
    shape: tuple[int, int, int, int]  # where the shape is drawn
    label: tuple[int, int, int, int]  # where its label is
    label_px: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Shape and label together: what the judge leaves out."""
        return (
            min(self.shape[0], self.label[0]),
            min(self.shape[1], self.label[1]),
            max(self.shape[2], self.label[2]),
            max(self.shape[3], self.label[3]),
        )


def _gaps(slots: Sequence[tuple[float, float]], width: int, shot: Shot) -> list[tuple[float, float]]:
    """(centre x, room) of the places between figures where props can stand."""
    if not slots:
        return [(width / 2, width * 0.3), (width * 0.3, width * 0.2)]
    if len(slots) == 1:
        (a, b), span = slots[0], slots[0][1] - slots[0][0]
        room = span * (1 - shot.slot_width) / 2
        return [(b - room / 2 - span * 0.02, room), (a + room / 2 + span * 0.02, room)]
    out = []
    for (a, b), (c, d) in itertools.pairwise(slots):
        room = min(b - a, d - c) * (1 - shot.slot_width)
        out.append(((b + c) / 2, room))
    return out


def place(
    props: Sequence[Prop], frame: tuple[int, int], slots: Sequence[tuple[float, float]], shot: Shot
) -> list[PropBox]:
    w, h = frame
    _, bottom, _, safe_bottom = picture_limits()
    boxes: list[PropBox] = []
    for prop, (cx, room) in zip(props, _gaps(slots, w, shot), strict=False):
        width = max(4.0, min(PROP_HEIGHT * h * 0.7, room * 0.8))
        height = min(PROP_HEIGHT * h, width * 1.5)
        px = max(captions.MIN_FONT_PX, round(LABEL_PX * min(w, h)))
        text = captions.printable(prop.name, px)
        label_w = captions.text_width(text, px)
        if shot.visible >= 1.0:  # on the ground, its label below it (in front, where no figure is)
            foot = (safe_bottom - EDGE) * h
            shape = (cx - width / 2, foot - height, cx + width / 2, foot)
            lw = label_w + px * 0.6
            label = (cx - lw / 2, foot + px * 0.15, cx + lw / 2, foot + px * 1.35)
        else:  # between the cut figures, its label above it, no wider than the gap
            while px > captions.MIN_FONT_PX and captions.text_width(text, px) > room * 0.9:
                px -= 1
            label_w = captions.text_width(text, px)
            base = (bottom - 0.05) * h
            shape = (cx - width / 2, base - height, cx + width / 2, base)
            lw = min(label_w + px * 0.6, room * 0.95)
            label = (cx - lw / 2, shape[1] - px * 1.4, cx + lw / 2, shape[1] - px * 0.2)
        boxes.append(
            PropBox(prop, tuple(round(v) for v in shape), tuple(round(v) for v in label), px)  # type: ignore[arg-type]
        )
    return boxes


# ─── drawing ─────────────────────────────────────────────────────────────────


def draw(canvas: Image.Image, boxes: Sequence[PropBox]) -> None:
    """Each prop's shape and label, on `canvas` (RGB), in place."""
    d = ImageDraw.Draw(canvas)
    for pb in boxes:
        _shape(d, pb.prop, pb.shape)
        x0, y0, x1, y1 = pb.label
        d.rounded_rectangle([x0, y0, x1, y1], radius=max(1, (y1 - y0) // 2), fill=(250, 248, 240), outline=OUTLINE)
        text = captions.fit_line(captions.printable(pb.prop.name, pb.label_px), pb.label_px, x1 - x0)
        d.text(((x0 + x1) / 2, (y0 + y1) / 2), text, font=captions.font(pb.label_px), fill=OUTLINE, anchor="mm")


def _shape(d: ImageDraw.ImageDraw, prop: Prop, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    lw = max(1, round(min(w, h) / 18))
    c, dark, light = prop.colour, shade(prop.colour, -0.45), shade(prop.colour, 0.55)

    def at(u0: float, v0: float, u1: float, v1: float) -> list[float]:
        return [x0 + u0 * w, y0 + v0 * h, x0 + u1 * w, y0 + v1 * h]

    kind = prop.shape
    if kind == "lantern":
        d.arc(at(0.3, 0.0, 0.7, 0.3), 180, 360, fill=OUTLINE, width=lw)
        d.rectangle(at(0.2, 0.15, 0.8, 0.25), fill=dark, outline=OUTLINE, width=lw)
        d.rounded_rectangle(at(0.22, 0.25, 0.78, 0.9), radius=lw * 2, fill=light, outline=OUTLINE, width=lw)
        d.ellipse(at(0.36, 0.42, 0.64, 0.75), fill=c)
        d.rectangle(at(0.15, 0.9, 0.85, 1.0), fill=dark, outline=OUTLINE, width=lw)
    elif kind == "candle":
        d.rectangle(at(0.3, 0.3, 0.7, 1.0), fill=c, outline=OUTLINE, width=lw)
        d.ellipse(at(0.38, 0.02, 0.62, 0.28), fill=(255, 200, 60), outline=OUTLINE, width=lw)
    elif kind == "gem":
        d.polygon([(cx, y0), (x1, y0 + 0.4 * h), (cx, y1), (x0, y0 + 0.4 * h)], fill=c, outline=OUTLINE, width=lw)
        d.polygon([(cx, y0 + 0.1 * h), (x0 + 0.75 * w, y0 + 0.4 * h), (cx, y0 + 0.55 * h)], fill=light)
    elif kind == "book":
        d.rectangle(at(0.1, 0.35, 0.9, 1.0), fill=c, outline=OUTLINE, width=lw)
        d.rectangle(at(0.1, 0.35, 0.25, 1.0), fill=dark, outline=OUTLINE, width=lw)
    elif kind == "sheet":
        d.polygon(
            [(x0 + 0.1 * w, y0 + 0.3 * h), (x1 - 0.1 * w, y0 + 0.25 * h), (x1, y1), (x0, y1 - 0.05 * h)],
            fill=c,
            outline=OUTLINE,
            width=lw,
        )
    elif kind == "orb":
        r = min(w, h) / 2
        d.ellipse([cx - r, y1 - 2 * r, cx + r, y1], fill=c, outline=OUTLINE, width=lw)
        d.ellipse([cx - r * 0.5, y1 - 1.6 * r, cx - r * 0.1, y1 - 1.2 * r], fill=light)
    elif kind == "blade":
        d.polygon(
            [
                (cx, y0),
                (cx + 0.12 * w, y0 + 0.15 * h),
                (cx + 0.12 * w, y0 + 0.7 * h),
                (cx - 0.12 * w, y0 + 0.7 * h),
                (cx - 0.12 * w, y0 + 0.15 * h),
            ],
            fill=c,
            outline=OUTLINE,
            width=lw,
        )
        d.rectangle(at(0.1, 0.7, 0.9, 0.78), fill=dark, outline=OUTLINE, width=lw)
        d.rectangle(at(0.4, 0.78, 0.6, 1.0), fill=(110, 70, 40), outline=OUTLINE, width=lw)
    elif kind == "stick":
        d.rounded_rectangle(at(0.4, 0.0, 0.6, 1.0), radius=lw, fill=c, outline=OUTLINE, width=lw)
    elif kind == "box":
        d.rectangle(at(0.05, 0.4, 0.95, 1.0), fill=c, outline=OUTLINE, width=lw)
        d.rectangle(at(0.0, 0.3, 1.0, 0.45), fill=dark, outline=OUTLINE, width=lw)
    elif kind == "basket":
        d.arc(at(0.2, 0.1, 0.8, 0.8), 180, 360, fill=OUTLINE, width=lw * 2)
        d.chord(at(0.0, 0.2, 1.0, 1.0), 0, 180, fill=c, outline=OUTLINE, width=lw)
    elif kind == "cup":
        d.polygon(
            [(x0 + 0.1 * w, y0 + 0.45 * h), (x1 - 0.25 * w, y0 + 0.45 * h), (x1 - 0.32 * w, y1), (x0 + 0.17 * w, y1)],
            fill=c,
            outline=OUTLINE,
            width=lw,
        )
        d.arc(at(0.6, 0.5, 0.95, 0.85), 270, 90, fill=OUTLINE, width=lw * 2)
    elif kind == "flower":
        d.line([(cx, y0 + 0.4 * h), (cx, y1)], fill=(60, 130, 50), width=lw * 2)
        r = min(w, h) * 0.22
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            ox, oy = cx + dx * r, y0 + 0.3 * h + dy * r
            d.ellipse([ox - r, oy - r, ox + r, oy + r], fill=c, outline=OUTLINE, width=lw)
        d.ellipse([cx - r * 0.7, y0 + 0.3 * h - r * 0.7, cx + r * 0.7, y0 + 0.3 * h + r * 0.7], fill=(250, 210, 60))
    elif kind == "key":
        d.ellipse(at(0.25, 0.0, 0.75, 0.35), outline=c, width=lw * 3)
        d.line([(cx, y0 + 0.35 * h), (cx, y1)], fill=c, width=lw * 3)
        d.line([(cx, y1 - 0.1 * h), (cx + 0.25 * w, y1 - 0.1 * h)], fill=c, width=lw * 3)
    elif kind == "umbrella":
        d.pieslice(at(0.0, 0.0, 1.0, 0.7), 180, 360, fill=c, outline=OUTLINE, width=lw)
        d.line([(cx, y0 + 0.35 * h), (cx, y1)], fill=OUTLINE, width=lw * 2)
    elif kind == "bell":
        d.chord(at(0.1, 0.1, 0.9, 1.3), 180, 360, fill=c, outline=OUTLINE, width=lw)
        d.rectangle(at(0.05, 0.62, 0.95, 0.75), fill=dark, outline=OUTLINE, width=lw)
    elif kind == "kite":
        d.polygon(
            [(cx, y0), (x1, y0 + 0.35 * h), (cx, y0 + 0.8 * h), (x0, y0 + 0.35 * h)], fill=c, outline=OUTLINE, width=lw
        )
        d.line([(cx, y0 + 0.8 * h), (cx + 0.2 * w, y1)], fill=OUTLINE, width=lw)
    elif kind == "bottle":
        d.rectangle(at(0.4, 0.0, 0.6, 0.3), fill=dark, outline=OUTLINE, width=lw)
        d.rounded_rectangle(at(0.2, 0.3, 0.8, 1.0), radius=lw * 3, fill=c, outline=OUTLINE, width=lw)
