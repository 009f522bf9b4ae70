"""One scene's framing, from the request hints alone, shared by the painter and the
judge: the shot (from the camera words), the figure slots, the props the action names
and where they stand; and, for the judge, which part of a frame to analyse (the rows
between the caption bands, without the props) and how much of a cut figure shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from storyc.backends.offline import camera, captions, draw, judge, masks, props, segment, shots


@dataclass(frozen=True)
class Framing:
    size: tuple[int, int]
    shot: shots.Shot
    count: int  # figure slots, left to right
    prop_boxes: tuple[props.PropBox, ...]


def scene_framing(size: tuple[int, int], hints: Mapping[str, object], names: Sequence[str]) -> Framing:
    """The framing of a keyframe of `size` with figures `names` (left to right)."""
    shot = shots.shot_from_camera(str(hints.get("camera") or ""))
    found = props.props_in(str(hints.get("action") or ""), exclude=names)
    boxes = props.place(found, size, draw.slot_bounds(len(names), size[0]) if names else [], shot)
    return Framing(size, shot, len(names), tuple(boxes))


# ─── what the judge looks at ─────────────────────────────────────────────────


def _end_transform(kind: str, hints: Mapping[str, object]) -> tuple[float, float, float]:
    """Where the keyframe is in the frame being judged: a keyframe is itself; a last
    frame is the keyframe moved by the clip's camera to its end."""
    if kind != "last_frame":
        return 1.0, 0.0, 0.0
    return camera.transform(camera.camera_motion(str(hints.get("camera") or "")), 1.0)


def analysis_region(image: Image.Image, kind: str) -> tuple[Image.Image, tuple[int, int]]:
    """The part of a frame the judge analyses: the rows between the caption bands (a
    keyframe has no bands, but the same rows keep keyframe and clip frames alike), and
    the offset of that part in the frame. A sheet is analysed whole."""
    if kind == "sheet":
        return image, (0, 0)
    top, bottom = captions.picture_rows(image.height)
    return image.crop((0, top, image.width, bottom)), (0, top)


def analysis_width(scene: Framing, kind: str) -> int:
    """The analysis copy's width: the judge's usual one, wider for a wide shot's small
    figures (so a figure spans about as many pixels as in a full shot)."""
    if kind == "sheet":
        return judge.ANALYSIS_WIDTH
    return round(judge.ANALYSIS_WIDTH * max(1.0, min(2.5, 0.55 / scene.shot.height)))


def excluded_boxes(framing: Framing, kind: str, hints: Mapping[str, object]) -> list[tuple[int, int, int, int]]:
    """The props' boxes (shape and label, with a small margin) where they are in the
    judged frame, in frame pixels: a last frame's props moved with the camera."""
    scale, x0, y0 = _end_transform(kind, hints)
    w, h = framing.size
    pad = max(2, round(h * 0.01))
    out = []
    for pb in framing.prop_boxes:
        a, b, c, d = pb.box
        box = (scale * a - x0 * w - pad, scale * b - y0 * h - pad, scale * c - x0 * w + pad, scale * d - y0 * h + pad)
        out.append(tuple(round(v) for v in box))
    return out  # type: ignore[return-value]


def clear_boxes(
    mask: Image.Image, boxes: Sequence[tuple[int, int, int, int]], frame_width: int, region: tuple[int, int]
) -> None:
    """Zero `mask` inside `boxes` (frame pixels), in place. `mask` is an analysis copy of
    the frame rows region = (top, bottom), scaled to its own width."""
    top, bottom = region
    fx = mask.width / frame_width
    fy = mask.height / max(1, bottom - top)
    d = ImageDraw.Draw(mask)
    for a, b, c, e in boxes:
        d.rectangle([a * fx, (b - top) * fy, c * fx, (e - top) * fy], fill=0)


def figure_in(
    picture: Image.Image, mask: Image.Image, box: tuple[int, int, int, int] | None
) -> tuple[Image.Image, Image.Image]:
    """The picture and mask of one figure's strip, the mask keeping only the largest
    connected part (what reaches in from a neighbour is not this figure)."""
    if box is None:
        return picture, mask
    return picture.crop(box), masks.largest_component(mask.crop(box))


def figure_extent(mask: Image.Image) -> tuple[int, int, int, int] | None:
    """The box of the figure pixels of `mask`, counting only columns and rows with at
    least two of them (as the descriptor does), or None."""
    w, h = mask.size
    cols = [i for i, v in enumerate(segment.pixels(mask.resize((w, 1), Image.Resampling.BOX))) if v * h / 255 >= 2.0]
    rows = [i for i, v in enumerate(segment.pixels(mask.resize((1, h), Image.Resampling.BOX))) if v * w / 255 >= 2.0]
    if not cols or not rows:
        return None
    return cols[0], rows[0], cols[-1] + 1, rows[-1] + 1


def expected_view(
    figure: Image.Image,
    scene: Framing,
    index: int,
    kind: str,
    hints: Mapping[str, object],
    rows: tuple[int, int],
    background: Image.Image,
) -> tuple[Image.Image, Image.Image]:
    """A reference figure (RGBA, as the keyframe was drawn from it) where the judged frame
    should show it: placed in its slot as the shot places it, moved by the camera for a
    last frame, lit as the scene, over the frame's `background` (the analysis copy's row
    colours), cut by the caption band and reduced to the analysis copy as the judged
    frame was. Returns that picture and its figure mask, found as the judged frame's is,
    so a cut figure's cells line up with the found figure's."""
    w, h = scene.size
    at = shots.place(figure.size, scene.size, draw.slot_bounds(scene.count, w)[index], scene.shot)
    scale, x0, y0 = _end_transform(kind, hints)
    size = (max(1, round(at.width * scale)), max(1, round(at.height * scale)))
    light = draw.lighting(str(hints.get("mood", "")), str(hints.get("setting", "")))
    placed = draw.tint(figure.resize(size, Image.Resampling.LANCZOS), *light)
    frame = background.resize((w, rows[1] - rows[0]), Image.Resampling.NEAREST)
    frame.paste(placed, (round(scale * at.left - x0 * w), round(scale * at.top - y0 * h) - rows[0]), placed)
    view = judge.analysis_copy(frame, background.width)
    return view, segment.foreground_mask(view)
