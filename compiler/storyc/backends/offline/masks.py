"""Binary-mask helpers for the offline judge, in whole runs of pixels rather than pixel
by pixel (Pillow's floodfill is pure Python: ~1.3 s per 720p frame; this is ~100× faster
and gives the same mask)."""

from __future__ import annotations

import re

from PIL import Image

_BACKGROUND_RUN = re.compile(rb"\x00+")


def fill_enclosed(binary: Image.Image) -> Image.Image:
    """An L mask (0 background, 255 foreground) with every background pixel that is not
    4-connected to the image border turned into foreground: a figure with its enclosed
    insides. Same result as flood-filling the background from every border pixel.

    Each row's background runs are found with a regex (C speed); a run connects to the
    runs of the rows above and below that overlap it in x (4-connectivity)."""
    w, h = binary.size
    data = binary.convert("L").tobytes()
    runs: list[list[tuple[int, int]]] = []
    for y in range(h):
        base = y * w
        runs.append([(m.start() - base, m.end() - base) for m in _BACKGROUND_RUN.finditer(data, base, base + w)])
    reached = [[False] * len(row) for row in runs]
    stack: list[tuple[int, int]] = []
    for y, row in enumerate(runs):
        edge_row = y in (0, h - 1)
        for i, (a, b) in enumerate(row):
            if edge_row or a == 0 or b == w:
                reached[y][i] = True
                stack.append((y, i))
    while stack:
        y, i = stack.pop()
        a, b = runs[y][i]
        for ny in (y - 1, y + 1):
            if 0 <= ny < h:
                for j, (c, d) in enumerate(runs[ny]):
                    if c < b and a < d and not reached[ny][j]:
                        reached[ny][j] = True
                        stack.append((ny, j))
    out = bytearray(b"\xff" * (w * h))
    for y, row in enumerate(runs):
        base = y * w
        for i, (a, b) in enumerate(row):
            if reached[y][i]:
                out[base + a : base + b] = bytes(b - a)
    return Image.frombytes("L", (w, h), bytes(out))
