"""The caption band laid over a moving clip: Pillow draws the pieces (captions), ffmpeg
lays them over the picture after the camera motion and any colour drift, so the text
stays put and stays neutral: the static band for the whole clip, each name tag following
its figure as the camera moves, each timed line while it is said.

Every piece is white, grey or near-black: a hue rotation (drift, or its correction) leaves
them as they are, and the drift estimate (chroma angles) does not see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storyc.backends.offline import camera, captions


@dataclass(frozen=True)
class Overlays:
    inputs: list[Path]  # PNG files, to add as ffmpeg inputs in this order
    chain: str  # filtergraph from [pic] to [cap]


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def write(
    card: captions.Card,
    tag_xs: Sequence[float],
    motion: str,
    size: tuple[int, int],
    duration_s: float,
    folder: Path,
    first_input: int,
) -> Overlays:
    """Write the band's pieces into `folder` and the filter chain that lays them over
    `[pic]` (inputs numbered from `first_input`), ending in `[cap]`. `tag_xs`: each name
    tag's figure centre in the keyframe, as a fraction of the width."""
    w, h = size
    inputs: list[Path] = []
    steps: list[str] = []

    def add(image, placement: str) -> None:
        path = folder / f"overlay_{len(inputs)}.png"
        image.save(path, format="PNG", optimize=False)
        inputs.append(path)
        src = "pic" if len(steps) == 0 else f"c{len(steps) - 1}"
        steps.append(f"[{src}][{first_input + len(inputs) - 1}:v]overlay={placement}[c{len(steps)}]")

    add(captions.draw_static(card, size), "x=0:y=0")
    tag_top = captions.tag_y(size)
    for name, fx in zip(card.names, tag_xs, strict=False):
        tag = captions.draw_tag(name, size)
        centre = camera.x_expression(motion, fx, w, duration_s)
        x = f"max(0,min({w - tag.width},{centre}-{tag.width / 2:.1f}))"
        add(tag, f"x='{x}':y={tag_top}:eval=frame")
    subtitle_top = captions.Layout(w, h).subtitle_top
    for line in card.lines:
        start, end = max(0.0, line.start_s), min(duration_s, line.end_s)
        if end <= start:
            continue
        add(
            captions.draw_subtitle(line, size),
            f"x=0:y={subtitle_top}:enable='between(t,{_seconds(start)},{_seconds(end)})'",
        )
    chain = ";".join(steps) + f";[c{len(steps) - 1}]null[cap]"
    return Overlays(inputs, chain)
