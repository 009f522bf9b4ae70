"""Separating figures from backgrounds in the offline backend's pictures.

A figure is every pixel that cannot be reached from the border through background-coloured
pixels. Backgrounds are one colour per row: the sheet's grey, the keyframe's sky/ground
gradient, and any zoom/pan of those. The painter (draw.py) cuts figures out of sheets with
this, and the judge (judge.py) finds the figures it compares.
"""

from __future__ import annotations

from PIL import Image, ImageChops

from storyc.backends.offline.masks import fill_enclosed

FOREGROUND_THRESHOLD = 20
INTERIOR_SAMPLES = 16  # strips per row consulted when a figure covers a frame edge


def pixels(img: Image.Image) -> list:
    """All pixel values, row by row (Pillow 13 renamed getdata)."""
    flat = getattr(img, "get_flattened_data", None)
    return list(flat() if flat else img.getdata())


def row_background(rgb: Image.Image) -> Image.Image:
    """Each row's background colour, estimated from the left and right edge strips.

    A camera push-in or pan can carry a figure across a frame edge; that edge strip then
    shows the figure, not the background. Where the two edges disagree, the row takes
    the sample (edges and a few interior strips) that continues the row above
    (backgrounds change smoothly downwards, and the top of a frame is sky); where none
    does (a horizon behind occluded edges), the colour most samples share."""
    w, h = rgb.size
    edge = max(1, w * 3 // 100)
    left = pixels(rgb.crop((0, 0, edge, h)).resize((1, h), Image.Resampling.BOX))
    right = pixels(rgb.crop((w - edge, 0, w, h)).resize((1, h), Image.Resampling.BOX))
    inner_cols = max(1, min(INTERIOR_SAMPLES, w // 2))
    inner = pixels(rgb.resize((inner_cols, h), Image.Resampling.BOX))

    def gap(a, b) -> float:
        return max(abs(x - y) for x, y in zip(a, b, strict=False))

    rows: list[tuple[int, ...]] = []
    for y in range(h):
        a, b = left[y], right[y]
        agree = gap(a, b) <= FOREGROUND_THRESHOLD
        if agree or not rows:
            rows.append(tuple((x + z) // 2 for x, z in zip(a, b, strict=False)))
            continue
        above = rows[-1]
        best = min((a, b), key=lambda c: gap(c, above))
        if gap(best, above) > FOREGROUND_THRESHOLD:  # a horizon behind an occluded edge
            samples = [a, b, *inner[y * inner_cols : (y + 1) * inner_cols]]
            best = max(samples, key=lambda c: (sum(gap(c, o) <= FOREGROUND_THRESHOLD for o in samples), -gap(c, above)))
        rows.append(tuple(best))
    column = Image.new("RGB", (1, h))
    column.putdata(rows)
    return column.resize((w, h), Image.Resampling.NEAREST)


def foreground_mask(rgb: Image.Image) -> Image.Image:
    """L mask, 255 on figures (including their enclosed insides), 0 on the background."""
    rgb = rgb.convert("RGB")
    r, g, b = ImageChops.difference(rgb, row_background(rgb)).split()
    diff = ImageChops.lighter(ImageChops.lighter(r, g), b)
    return fill_enclosed(diff.point(lambda v: 255 if v > FOREGROUND_THRESHOLD else 0))


def extract_figure(sheet: Image.Image) -> Image.Image:
    """The figure of a sheet (or any image) as RGBA, cropped to its bounding box: every
    pixel not reachable from the border through background-coloured pixels."""
    rgb = sheet.convert("RGB")
    mask = foreground_mask(rgb)
    bbox = mask.getbbox() or (0, 0, rgb.width, rgb.height)
    figure = rgb.crop(bbox).convert("RGBA")
    figure.putalpha(mask.crop(bbox))
    return figure
