"""The offline animatic's caption band: what a viewer needs to follow the story, on
every frame of a clip.

- a top bar: "Scene 2 · Meeting the Old Owl" on the left, the camera words on the right;
- a bottom band: each figure's name tag under its slot, the action line, and the line
  being said (speaker: words) while it is said, from an optional list of timed lines.

The bands are drawn with Pillow in a real TrueType font (Pillow's bundled Aileron via
ImageFont.load_default(size=...), else DejaVu Sans; never a system font lookup), as
RGBA overlays the clip renderer lays over the moving picture. The judge never looks at
the bands' rows (`picture_rows`), and keyframes keep their figures out of them (shots).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# the bands' geometry (bands.py, no Pillow), part of this module's names too
from storyc.backends.offline.bands import ACTION_ROWS, TAG_ROW
from storyc.backends.offline.bands import BOTTOM_BAND as BOTTOM_BAND
from storyc.backends.offline.bands import MIN_FONT_PX as MIN_FONT_PX
from storyc.backends.offline.bands import TOP_BAR as TOP_BAR
from storyc.backends.offline.bands import Layout as Layout

# neutral colours only: a clip's colour drift and its correction rotate hues, and the drift
# estimate counts chroma; white, greys and black are left alone by both
BAND_FILL = (14, 14, 14, 178)  # translucent: the picture shows through, dimmed
TITLE_FILL = (255, 255, 255, 255)
CAMERA_FILL = (200, 200, 200, 255)
ACTION_FILL = (232, 232, 232, 255)
SUBTITLE_FILL = (255, 255, 255, 255)
NARRATION_FILL = (200, 200, 200, 255)
TAG_FILL = (246, 246, 246, 235)
TAG_TEXT = (20, 20, 20, 255)
DASHES = str.maketrans({"—": "-", "–": "-", "…": "...", "\u00a0": " "})


@dataclass(frozen=True)
class TimedLine:
    """One thing said in the clip: its words, who says them (None: narration), and when
    (seconds from the clip's first frame)."""

    text: str
    start_s: float
    end_s: float
    speaker: str | None = None

    @property
    def caption(self) -> str:
        return f"{self.speaker}: {self.text}" if self.speaker else self.text


@dataclass(frozen=True)
class Card:
    """Everything a scene's caption band shows."""

    scene_id: int | str
    title: str
    action: str = ""
    camera: str = ""
    names: tuple[str, ...] = ()  # left to right, one tag per figure slot
    lines: tuple[TimedLine, ...] = ()


def picture_rows(height: int) -> tuple[int, int]:
    """First and last+1 row of a frame that the bands leave to the picture."""
    return round(height * TOP_BAR), height - round(height * BOTTOM_BAND)


# ─── fonts ───────────────────────────────────────────────────────────────────

_DEJAVU = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)


@functools.lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font of `size` px: Pillow's bundled one (the same on every machine, so
    frames stay byte-identical across machines), else DejaVu Sans, else Pillow's bitmap."""
    size = max(MIN_FONT_PX, int(size))
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, OSError, ImportError):
        pass
    for path in _DEJAVU:
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default()


@functools.lru_cache(maxsize=4096)
def _has_glyph(size: int, char: str) -> bool:
    f = font(size)
    if not hasattr(f, "getmask") or char.isspace():
        return True
    missing = bytes(f.getmask("\uffff"))
    return bytes(f.getmask(char)) != missing


def printable(text: str, size: int) -> str:
    """`text` on one line, with dashes the font lacks made plain and any other missing
    glyph shown as '?', not as an empty box."""
    text = " ".join(str(text).translate(DASHES).split())
    return "".join(c if _has_glyph(size, c) else "?" for c in text)


def text_width(text: str, size: int) -> float:
    return font(size).getlength(text)


def fit_line(text: str, size: int, width: float) -> str:
    """`text`, cut at a word with '...' if it is wider than `width`."""
    if text_width(text, size) <= width:
        return text
    words = text.split()
    while words and text_width(" ".join(words) + "...", size) > width:
        words.pop()
    if words:
        return " ".join(words) + "..."
    cut = text
    while cut and text_width(cut + "...", size) > width:
        cut = cut[:-1]
    return cut + "..." if cut else ""


def wrap(text: str, size: int, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap into at most `max_lines` lines; the last one cut with '...'."""
    lines: list[str] = []
    words = text.split()
    while words and len(lines) < max_lines:
        line = words.pop(0)
        while words and text_width(f"{line} {words[0]}", size) <= width:
            line = f"{line} {words.pop(0)}"
        lines.append(line)
    if words and lines:
        lines[-1] = fit_line(f"{lines[-1]} {' '.join(words)}", size, width)
    return [fit_line(line, size, width) for line in lines]


def sentence(text: str) -> str:
    text = " ".join(str(text).split())
    return text[:1].upper() + text[1:] if text else ""


# ─── timed lines ─────────────────────────────────────────────────────────────

LEAD_IN_S = 0.3
GAP_S = 0.25
TAIL_S = 0.3


def timed_lines(
    items: Iterable[Mapping[str, object]] = (), duration_s: float = 0.0, narration: str | None = None
) -> tuple[TimedLine, ...]:
    """Timed lines from hints: items with `text` (or `line`), `speaker`, and `start_s` /
    `end_s` when the caller already placed them (the sound pass does); items without times
    share the clip after a short lead-in, in order, in proportion to their word counts.
    `narration` (optional) is said first."""
    raw: list[tuple[str, str | None, float | None, float | None]] = []
    if narration and str(narration).strip():
        raw.append((str(narration), None, None, None))
    for item in items:
        text = str(item.get("text") or item.get("line") or "").strip()
        if not text:
            continue
        speaker = item.get("speaker")
        start, end = item.get("start_s"), item.get("end_s")
        raw.append(
            (
                text,
                str(speaker) if speaker else None,
                None if start is None else float(start),  # type: ignore[arg-type]  # hints are JSON: numbers here
                None if end is None else float(end),  # type: ignore[arg-type]
            )
        )
    if not raw:
        return ()
    untimed = [r for r in raw if r[2] is None or r[3] is None]
    free = max(0.0, duration_s - LEAD_IN_S - TAIL_S - GAP_S * max(0, len(untimed) - 1))
    words = [max(1, len(r[0].split())) for r in untimed]
    out: list[TimedLine] = []
    t = LEAD_IN_S
    for text, speaker, start, end in raw:
        if start is not None and end is not None:
            out.append(TimedLine(text, start, end, speaker))
            continue
        length = free * max(1, len(text.split())) / sum(words) if free else duration_s / len(untimed)
        out.append(TimedLine(text, round(t, 3), round(t + length, 3), speaker))
        t += length + GAP_S
    return tuple(out)


def card_from_hints(hints: Mapping[str, object], names: Sequence[str], duration_s: float) -> Card:
    """The card of a clip from the video request's hints (scene_id, title, action,
    camera, and optionally `lines`, or `dialogue` + `narration`)."""
    lines = hints.get("lines") or hints.get("dialogue") or ()
    return Card(
        scene_id=hints.get("scene_id") or "",  # type: ignore[arg-type]
        title=str(hints.get("title") or ""),
        action=str(hints.get("action") or ""),
        camera=str(hints.get("camera") or ""),
        names=tuple(str(n) for n in names),
        lines=timed_lines(lines, duration_s, hints.get("narration")),  # type: ignore[arg-type]
    )


# ─── drawing ─────────────────────────────────────────────────────────────────


def title_text(card: Card) -> str:
    return f"Scene {card.scene_id} · {card.title}" if str(card.scene_id) else card.title


def draw_static(card: Card, size: tuple[int, int]) -> Image.Image:
    """The parts of the band that stay put for the whole clip: the top bar (scene number,
    title, camera words), the bottom band's backing and the action line. RGBA, frame-sized."""
    lay = Layout(*size)
    w, h = size
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, w, lay.top - 1], fill=BAND_FILL)
    d.rectangle([0, lay.band_top, w, h], fill=BAND_FILL)
    pad = lay.pad
    # top bar: the title left, the camera words right (given what the title leaves)
    tpx, cpx = lay.title_px, lay.camera_px
    title = printable(title_text(card), tpx)
    camera = printable(card.camera, cpx)
    room = w - 2 * pad
    title = fit_line(title, tpx, room * (0.68 if camera else 1.0))
    used = text_width(title, tpx)
    camera = fit_line(camera, cpx, room - used - 3 * pad) if camera else ""
    stroke = 1 if tpx >= 14 else 0  # a faux bold: the bundled font has one weight
    d.text(
        (pad, lay.top / 2),
        title,
        font=font(tpx),
        fill=TITLE_FILL,
        anchor="lm",
        stroke_width=stroke,
        stroke_fill=TITLE_FILL,
    )
    if camera:
        d.text((w - pad, lay.top / 2), camera, font=font(cpx), fill=CAMERA_FILL, anchor="rm")
    # the action, up to two lines
    apx = lay.action_px
    action = wrap(printable(sentence(card.action), apx), apx, room, 2)
    line_h = round(apx * 1.15)
    y = lay.action_top + max(0, (round(h * ACTION_ROWS) - line_h * len(action)) // 2)
    for line in action:
        d.text((pad, y), line, font=font(apx), fill=ACTION_FILL, anchor="la")
        y += line_h
    return img


def draw_tag(name: str, size: tuple[int, int]) -> Image.Image:
    """A figure's name tag: dark text on a light pill, RGBA, sized to the name."""
    px = Layout(*size).tag_px
    text = printable(name, px)
    f = font(px)
    pad_x, pad_y = max(2, px // 2), max(1, px // 5)
    tw = max(1, round(f.getlength(text)))
    th = px + 2 * pad_y
    img = Image.new("RGBA", (tw + 2 * pad_x, th), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([0, 0, img.width - 1, th - 1], radius=th // 2, fill=TAG_FILL)
    d.text((img.width / 2, th / 2), text, font=f, fill=TAG_TEXT, anchor="mm")
    return img


def tag_left(centre_x: float, tag_width: int, frame_width: int) -> int:
    """Left edge of a tag centred under `centre_x`, kept inside the frame."""
    return max(0, min(frame_width - tag_width, round(centre_x - tag_width / 2)))


def tag_y(size: tuple[int, int]) -> int:
    """Top row of the name tags: centred in the bottom band's tag row."""
    lay = Layout(*size)
    tag_h = lay.tag_px + 2 * max(1, lay.tag_px // 5)
    return (lay.band_top + max(0, (round(lay.height * TAG_ROW) - tag_h) // 2)) // 2 * 2  # even, as subtitle_top


def draw_subtitle(line: TimedLine, size: tuple[int, int]) -> Image.Image:
    """One timed line as a frame-wide RGBA strip for the subtitle rows (up to two lines,
    centred): 'Speaker: words' in white, narration in light grey."""
    lay = Layout(*size)
    w, h = size
    strip_h = h - lay.subtitle_top
    img = Image.new("RGBA", (w, max(1, strip_h)), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    spx = lay.subtitle_px
    lines = wrap(printable(line.caption, spx), spx, w - 2 * lay.pad, 2)
    line_h = round(spx * 1.15)
    y = max(0, (strip_h - line_h * len(lines)) // 2)
    fill = SUBTITLE_FILL if line.speaker else NARRATION_FILL
    for text in lines:
        d.text((w / 2, y), text, font=font(spx), fill=fill, anchor="ma")
        y += line_h
    return img


def draw_frame(card: Card, size: tuple[int, int], t: float, tag_centres: Sequence[float] = ()) -> Image.Image:
    """The whole band as it looks `t` seconds into the clip with tags at `tag_centres`
    (x in pixels): for tests and stills; the clip renderer lays the same pieces over the
    picture with ffmpeg."""
    img = draw_static(card, size)
    top = tag_y(size)
    for name, cx in zip(card.names, tag_centres, strict=False):
        tag = draw_tag(name, size)
        img.alpha_composite(tag, (tag_left(cx, tag.width, size[0]), top))
    for line in card.lines:
        if line.start_s <= t < line.end_s:
            sub = draw_subtitle(line, size)
            img.alpha_composite(sub, (0, Layout(*size).subtitle_top))
    return img
