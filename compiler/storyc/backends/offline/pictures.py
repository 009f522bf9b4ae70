"""The offline backend's pictures: character sheets, keyframes, targeted fixes and the
vision check's score, with Pillow (draw.py paints, framing.py says where the shot puts
figures and props, segment.py finds figures, judge.py compares them). backend.py imports
this module when the first picture is asked for, so importing the backend costs no Pillow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from storyc.backends.base import ImageRequest, JudgeRequest
from storyc.backends.offline import chance, draw, framing, judge, segment
from storyc.model.vision import ConsistencyScore

DEFAULT_THRESHOLD = 0.8


def description(hints: Mapping[str, Any], name: str, fallback: str) -> str:
    """A character's description from the request's hints."""
    chars = hints.get("characters")
    if isinstance(chars, Mapping) and chars.get(name):
        return str(chars[name])
    if hints.get("name") == name and hints.get("visual_description"):
        return str(hints["visual_description"])
    return fallback


def paint(req: ImageRequest, size: tuple[int, int], identity: str) -> Image.Image:
    """The picture an image request asks for: a targeted fix, a character sheet or a keyframe."""
    hints = req.hints
    step = str(hints.get("step", ""))
    if step == "fix" or (step != "keyframe" and len(req.references) == 1 and not hints.get("name")):
        return fix(req, size)
    if step == "character" or (step != "keyframe" and hints.get("name")):
        return sheet(req, size, identity)
    return keyframe(req, size, identity)


def sheet(req: ImageRequest, size: tuple[int, int], identity: str) -> Image.Image:
    hints = req.hints
    name = str(hints.get("name") or "character")
    words = str(hints.get("visual_description") or req.prompt)
    if req.references:  # a user's reference image, stylised into a sheet
        with Image.open(req.references[0]) as photo:
            return draw.sheet_from_reference(photo, size)
    return draw.draw_sheet(name, words, size, hue_error=chance.sheet_hue_error(identity))


def keyframe(req: ImageRequest, size: tuple[int, int], identity: str) -> Image.Image:
    hints = req.hints
    slots = list(hints.get("slots") or [])
    if not slots:  # no slot plan: every reference is a character sheet, in order
        names = list((hints.get("characters") or {}).keys())
        slots = [
            {"kind": "character", "name": names[i] if i < len(names) else f"character {i + 1}"}
            for i in range(len(req.references))
        ]
    sheets: dict[str, Path] = {}
    chain = None
    for slot, ref in zip(slots, req.references, strict=False):
        if isinstance(slot, Mapping) and slot.get("kind") == "character":
            sheets[str(slot.get("name"))] = Path(ref)
        else:
            with Image.open(ref) as im:
                chain = im.convert("RGB")
    figures = []
    layout = draw.figure_layout(hints, list(sheets))
    for name in layout:
        if name in sheets:
            with Image.open(sheets[name]) as sheet_image:
                figure = segment.extract_figure(sheet_image)
        else:  # text only: drawn from the words alone, so it drifts (design section 6)
            figure = draw.draw_figure(name, description(hints, name, name), int(size[1] * 0.8))
        error = chance.keyframe_hue_error(identity, name, from_sheet=name in sheets)
        figures.append(draw.hue_rotate(figure, error))
    scene = framing.scene_framing(size, hints, layout)
    return draw.compose(
        size,
        str(hints.get("setting", "")),
        str(hints.get("mood", "")),
        str(hints.get("palette", "")),
        figures,
        chain=chain,
        shot=scene.shot,
        prop_boxes=scene.prop_boxes,
    )


def fix(req: ImageRequest, size: tuple[int, int]) -> Image.Image:
    """A targeted edit: redraw the named character(s) where they stand, leaving the
    rest of the picture as it was: from the sheet given as reference image 2 (the
    character named in hints["element"]), else from the description."""
    hints = req.hints
    with Image.open(req.references[0]) as im:
        image = im.convert("RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    layout = draw.figure_layout(hints, list((hints.get("characters") or {}).keys()))
    target = str(hints.get("element") or "")
    named = [n for n in layout if n == target] or [n for n in layout if re.search(rf"\b{re.escape(n)}\b", req.prompt)]
    targets = named or layout
    if not layout:
        return image
    # erase each target's figure back to the (row-uniform) background, then redraw it;
    # the props stay where they are
    scene = framing.scene_framing(size, hints, layout)
    mask = segment.foreground_mask(image)
    framing.clear_boxes(mask, framing.excluded_boxes(scene, "keyframe", hints), size[0], (0, size[1]))
    background = segment.row_background(image)
    colour, strength = draw.lighting(str(hints.get("mood", "")), str(hints.get("setting", "")))
    for index, name in enumerate(layout):
        if name not in targets:
            continue
        box = judge.strip_box(index, len(layout), size)
        image.paste(background.crop(box), box[:2], mask.crop(box))
        if len(req.references) > 1 and name == target:
            with Image.open(req.references[1]) as sheet_image:
                figure = segment.extract_figure(sheet_image)
        else:
            figure = draw.draw_figure(name, description(hints, name, name), int(size[1] * 0.8))
        figure = draw.tint(figure, colour, strength / 2)  # relit to match the scene, gently
        draw.place_figure(image, figure, index, len(layout), scene.shot)
    return image


def score(req: JudgeRequest) -> ConsistencyScore:
    """The vision check: each figure in the picture against its reference."""
    hints = req.hints
    threshold = float(hints.get("threshold", DEFAULT_THRESHOLD))
    layout = draw.figure_layout(hints, list(req.names))
    with Image.open(req.image) as im:
        frame_size = im.size
        scene = framing.scene_framing(frame_size, hints, layout)
        # only the rows between the caption bands; the props the action names left out
        region, (_, top) = framing.analysis_region(im.convert("RGB"), req.kind)
        picture = judge.analysis_copy(region, framing.analysis_width(scene, req.kind))
    mask = segment.foreground_mask(picture)
    if req.kind != "sheet":
        excluded = framing.excluded_boxes(scene, req.kind, hints)
        framing.clear_boxes(mask, excluded, frame_size[0], (top, top + region.height))

    def reference(name: str, index: int, full: bool = False) -> Image.Image:
        """The reference figure: from the sheet (at full size, as a keyframe is drawn
        from it, when `full`), or drawn from the description for a text-only one."""
        if index < len(req.references):
            with Image.open(req.references[index]) as ref:
                sheet_image = ref.convert("RGB")
            if req.kind == "sheet":  # the user's reference image, stylised as the sheet would be
                sheet_image = draw.sheet_from_reference(sheet_image, picture.size)
            return segment.extract_figure(sheet_image if full else judge.analysis_copy(sheet_image, 320))
        words = description(hints, name, req.prompt)
        height = int(frame_size[1] * 0.8) if full else judge.REFERENCE_HEIGHT * 2
        return draw.draw_figure(name, words, height)

    per: dict[str, float] = {}
    issues: list[str] = []
    if req.kind == "sheet":
        names = [str(req.names[0] if req.names else hints.get("name") or "character")]
        boxes: list[tuple[int, int, int, int] | None] = [None]
    else:
        names = draw.figure_layout(hints, list(req.names))
        boxes = [judge.strip_box(i, len(names), picture.size) for i in range(len(names))]
    ref_index = {n: i for i, n in enumerate(req.names)}
    background = None
    for index, (name, box) in enumerate(zip(names, boxes, strict=False)):
        strip, strip_mask = framing.figure_in(picture, mask, box)
        found = judge.describe(strip, strip_mask)
        ref = ref_index.get(name, 0 if req.kind == "sheet" else len(req.references))
        if box is not None and scene.shot.visible < 1.0:
            # a cut shot shows the figure's top part: compare with the sheet's figure
            # where the frame should show it, cut the same way
            rows = (top, top + region.height)
            background = background or segment.row_background(picture)
            view, view_mask = framing.expected_view(
                reference(name, ref, full=True), scene, index, req.kind, hints, rows, background
            )
            # over the found figure's box: a pixel more or less of a thin ear tip
            # must not shift the grid
            view, view_mask = framing.figure_in(view, view_mask, box)
            expected = judge.describe(view, view_mask, framing.figure_extent(strip_mask))
        else:
            expected = judge.describe_figure(reference(name, ref))
        per[name] = judge.similarity(found, expected)
        if per[name] < threshold:
            issues.append(f"{name}: {judge.problem(found, expected)}")
    overall = min(per.values()) if per else 0.0
    fix_prompt = None
    if issues:
        worst = min(per, key=per.__getitem__)
        # the form the check prompt asks for: "Change ONLY <element>: <fix>"
        source = "their character sheet" if worst in ref_index and req.kind != "sheet" else "their description"
        fix_prompt = f"Change ONLY {worst}'s colours: restore them to match {source}."
    return ConsistencyScore(overall_score=round(overall, 4), per_character=per, issues=issues, fix_prompt=fix_prompt)
