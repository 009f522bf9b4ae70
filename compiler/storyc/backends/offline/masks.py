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


_FOREGROUND_RUN = re.compile(rb"[^\x00]+")


def largest_component(mask: Image.Image) -> Image.Image:
    """`mask` (L, 0 = background) with only its largest 8-connected foreground part: a
    figure without the bits of a neighbour (a tail, an arm) that reach into its strip."""
    w, h = mask.size
    data = mask.convert("L").tobytes()
    runs: list[tuple[int, int, int]] = []  # (row, start, end)
    row_start: list[int] = []
    for y in range(h):
        base = y * w
        row_start.append(len(runs))
        runs += [(y, m.start() - base, m.end() - base) for m in _FOREGROUND_RUN.finditer(data, base, base + w)]
    row_start.append(len(runs))
    if not runs:
        return mask.copy()
    parent = list(range(len(runs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for y in range(1, h):
        above = range(row_start[y - 1], row_start[y])
        for i in range(row_start[y], row_start[y + 1]):
            _, a, b = runs[i]
            for j in above:
                _, c, d = runs[j]
                if c <= b and a <= d:  # overlapping or touching diagonally: 8-connected
                    ri, rj = find(i), find(j)
                    if ri != rj:
                        parent[ri] = rj
    sizes: dict[int, int] = {}
    for i, (_, a, b) in enumerate(runs):
        root = find(i)
        sizes[root] = sizes.get(root, 0) + b - a
    keep = max(sizes, key=lambda r: (sizes[r], -r))
    out = bytearray(w * h)
    for i, (y, a, b) in enumerate(runs):
        if find(i) == keep:
            out[y * w + a : y * w + b] = data[y * w + a : y * w + b]
    return Image.frombytes("L", (w, h), bytes(out))
