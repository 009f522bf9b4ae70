"""The offline backend's vision check: it really compares pictures.

Figures are found by segment.foreground_mask (every pixel that cannot be reached from the
border through background-coloured pixels). A figure's descriptor is
the mean colour of a 6×3 grid over its bounding box, so it survives moves and zooms
but not colour changes. The score is 1 minus the scaled mean colour distance between
a figure and its reference (the character sheet's figure, or for a sheet check the
figure its description's colour words call for).
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageStat

from storyc.backends.offline.draw import slot_bounds
from storyc.backends.offline.segment import pixels

ANALYSIS_WIDTH = 192
GRID_ROWS, GRID_COLS = 6, 3
# score = 1 - RESIDUAL_SCALE × colour distance left after allowing for lighting
#           - RAW_SCALE × colour distance as is (distances 0..1 of the RGB cube diagonal)
RESIDUAL_SCALE = 3.0
RAW_SCALE = 0.8
LIGHT_GAIN = (0.6, 1.4)
LIGHT_OFFSET = 60.0
REFERENCE_HEIGHT = 64
MIN_CELL_FILL = 0.12
MISSING_CELL_DISTANCE = 0.3

Cell = tuple[float, float, float, float] | None  # median r, g, b and how full the cell is


@dataclass(frozen=True)
class Descriptor:
    cells: tuple[Cell, ...]
    mean: tuple[float, float, float]  # mean colour of the whole figure
    area: float  # figure pixels / box pixels


def analysis_copy(img: Image.Image, width: int = ANALYSIS_WIDTH) -> Image.Image:
    img = img.convert("RGB")
    if img.width <= width:
        return img
    return img.resize((width, max(2, round(img.height * width / img.width))), Image.Resampling.BOX)


def _extent(counts: Sequence[float]) -> tuple[int, int] | None:
    """First and last index with at least 2 figure pixels (lone speckles don't count)."""
    hits = [i for i, v in enumerate(counts) if v >= 2.0]
    return (hits[0], hits[-1] + 1) if hits else None


def describe(rgb: Image.Image, mask: Image.Image, box: tuple[int, int, int, int] | None = None) -> Descriptor | None:
    """The figure inside `box` (default: the whole image), or None if there is none."""
    if box is not None:
        rgb, mask = rgb.crop(box), mask.crop(box)
    w, h = mask.size
    # per-column / per-row figure pixel counts (BOX-averaged mask × length / 255)
    cols = _extent([v * h / 255 for v in pixels(mask.resize((w, 1), Image.Resampling.BOX))])
    rows = _extent([v * w / 255 for v in pixels(mask.resize((1, h), Image.Resampling.BOX))])
    if cols is None or rows is None:
        return None
    x0, x1 = cols
    y0, y1 = rows
    if x1 - x0 < 3 or y1 - y0 < 6:
        return None
    # colour statistics from the figure's inside only: edge pixels are half background
    inner = mask.filter(ImageFilter.MinFilter(3))
    cells: list[Cell] = []
    for gy in range(GRID_ROWS):
        for gx in range(GRID_COLS):
            cx0 = x0 + (x1 - x0) * gx // GRID_COLS
            cx1 = x0 + (x1 - x0) * (gx + 1) // GRID_COLS
            cy0 = y0 + (y1 - y0) * gy // GRID_ROWS
            cy1 = y0 + (y1 - y0) * (gy + 1) // GRID_ROWS
            cell_box = (cx0, cy0, max(cx1, cx0 + 1), max(cy1, cy0 + 1))
            cell_mask = inner.crop(cell_box)
            stat = ImageStat.Stat(rgb.crop(cell_box), cell_mask)
            # a cell counts when the figure fills a fair part of it (slivers are alignment noise)
            fill = stat.count[0] / max(1, cell_mask.width * cell_mask.height)
            enough = stat.count[0] >= 2 and fill >= MIN_CELL_FILL
            cells.append((*(float(v) for v in stat.median), fill) if enough else None)  # type: ignore[arg-type]
    whole = ImageStat.Stat(rgb.crop((x0, y0, x1, y1)), inner.crop((x0, y0, x1, y1)))
    area = whole.count[0] / max(1, w * h)
    return Descriptor(tuple(cells), tuple(whole.mean) if whole.count[0] else (0.0, 0.0, 0.0), area)  # type: ignore[arg-type]


def describe_figure(figure: Image.Image) -> Descriptor | None:
    """Descriptor of an RGBA figure (its alpha is the mask)."""
    if figure.height > REFERENCE_HEIGHT:  # about the scale figures have in analysis copies
        figure = figure.resize(
            (max(2, figure.width * REFERENCE_HEIGHT // figure.height), REFERENCE_HEIGHT), Image.Resampling.BOX
        )
    alpha = figure.getchannel("A").point(lambda v: 255 if v >= 128 else 0)
    return describe(figure.convert("RGB"), alpha)


def _pairs(
    a: Descriptor, b: Descriptor
) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]], float]:
    xs, ys, missing = [], [], 0.0
    for ca, cb in zip(a.cells, b.cells, strict=False):
        if ca is None and cb is None:
            continue
        if ca is None or cb is None:
            # a cell the figure fills well on one side only is a shape mismatch; one it
            # barely touches is alignment noise
            missing += min(1.0, max(0.0, ((ca or cb)[3] - 0.3) / 0.5))  # type: ignore[index]
            continue
        xs.append(ca[:3])
        ys.append(cb[:3])
    return xs, ys, missing


def _relight(xs: list[tuple[float, float, float]], ys: list[tuple[float, float, float]]) -> list[tuple[float, ...]]:
    """xs with the best per-channel gain and offset toward ys (bounded): the part of a
    colour difference that scene lighting explains. A hue change cannot be explained
    this way, so it stays in the residual."""
    n = len(xs)
    out = [list(x) for x in xs]
    for ch in range(3):
        x = [v[ch] for v in xs]
        y = [v[ch] for v in ys]
        mx, my = sum(x) / n, sum(y) / n
        var = sum((v - mx) ** 2 for v in x)
        gain = sum((u - mx) * (v - my) for u, v in zip(x, y, strict=False)) / var if var > 1e-6 else 1.0
        gain = min(LIGHT_GAIN[1], max(LIGHT_GAIN[0], gain))
        offset = min(LIGHT_OFFSET, max(-LIGHT_OFFSET, my - gain * mx))
        for row, v in zip(out, x, strict=False):
            row[ch] = gain * v + offset
    return [tuple(r) for r in out]


def distance(a: Descriptor, b: Descriptor) -> tuple[float, float]:
    """(residual, raw): mean colour distance between matching grid cells (0..1) after
    and before allowing for lighting."""
    xs, ys, missing = _pairs(a, b)
    cells = len(xs) + sum(1 for ca, cb in zip(a.cells, b.cells, strict=False) if (ca is None) != (cb is None))
    if not xs:
        return 1.0, 1.0
    raw = sum(math.dist(x, y) for x, y in zip(xs, ys, strict=False)) / 441.673
    fitted = sum(math.dist(x, y) for x, y in zip(_relight(xs, ys), ys, strict=False)) / 441.673
    penalty = missing * MISSING_CELL_DISTANCE
    return (fitted + penalty) / cells, (raw + penalty) / cells


def similarity(a: Descriptor | None, b: Descriptor | None) -> float:
    if a is None or b is None:
        return 0.0
    residual, raw = distance(a, b)
    score = 1.0 - RESIDUAL_SCALE * residual - RAW_SCALE * raw
    return round(max(0.0, min(1.0, score)), 4)


def _hsv(colour: tuple[float, float, float]) -> tuple[float, float, float]:
    return colorsys.rgb_to_hsv(*(c / 255.0 for c in colour))


def _hue_gap(a: tuple[float, float, float], b: tuple[float, float, float]) -> float | None:
    """Hue difference in degrees of two colours, None when either is nearly grey."""
    ha, sa, va = _hsv(a)
    hb, sb, vb = _hsv(b)
    if min(sa, sb) < 0.2 or min(va, vb) < 0.15:
        return None
    return min(abs(ha - hb), 1 - abs(ha - hb)) * 360


def problem(found: Descriptor | None, expected: Descriptor | None) -> str:
    """A short human reason for a low score: 'colours off (hue shift)', 'too dark', ..."""
    if found is None:
        return "not found in its place"
    if expected is None:
        return "no reference to compare"
    gaps = [
        g
        for a, b in zip(found.cells, expected.cells, strict=False)
        if a and b
        for g in [_hue_gap(a[:3], b[:3])]
        if g is not None
    ]
    if gaps and max(gaps) > 25:
        return "colours off (hue shift)"
    _, sf, vf = _hsv(found.mean)
    _, se, ve = _hsv(expected.mean)
    if vf - ve < -0.1:
        return "colours off (too dark)"
    if vf - ve > 0.1:
        return "colours off (too light)"
    if sf - se < -0.12:
        return "colours off (washed out)"
    if sf - se > 0.12:
        return "colours off (oversaturated)"
    return "colours off"


def strip_box(index: int, count: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part of the frame where figure `index` of `count` stands: its slot of the
    safe area, the outer ones extended to the frame edges."""
    w, h = size
    bounds = slot_bounds(count, w)
    x0 = 0 if index == 0 else round(bounds[index][0])
    x1 = w if index == count - 1 else round(bounds[index][1])
    return (x0, 0, x1, h)
