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

from PIL import Image, ImageOps

from storyc.backends.base import ImageRequest, JudgeRequest
from storyc.backends.offline import chance, draw, framing, judge, segment
from storyc.model.vision import ConsistencyScore

DEFAULT_THRESHOLD = 0.8
PLATE_SCALE = 4.0  # plate score = 1 - PLATE_SCALE × mean row colour distance (0..1 of the RGB diagonal)


def description(hints: Mapping[str, Any], name: str, fallback: str) -> str:
    """A character's description from the request's hints."""
    chars = hints.get("characters")
    if isinstance(chars, Mapping) and chars.get(name):
        return str(chars[name])
    if hints.get("name") == name and hints.get("visual_description"):
        return str(hints["visual_description"])
    return fallback


def paint(req: ImageRequest, size: tuple[int, int], identity: str) -> Image.Image:
    """The picture an image request asks for: a location plate, a targeted fix, a character
    sheet or a keyframe."""
    hints = req.hints
    step = str(hints.get("step", ""))
    if step == "location":
        return plate(req, size, identity)
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
            picture = draw.sheet_from_reference(photo, size)
    else:
        error = chance.sheet_hue_error(identity) or chance.candidate_jitter(identity)
        picture = draw.draw_sheet(name, words, size, hue_error=error)
    return turnaround(picture) if hints.get("turnaround") else picture


def turnaround(sheet_image: Image.Image) -> Image.Image:
    """A sheet's figure three times on one sheet, left to right: front, side (narrower,
    facing right) and back (mirrored) views, the same height, feet on one line."""
    size = sheet_image.size
    figure = segment.extract_figure(sheet_image)
    third = size[0] / 3
    height = min(draw.sheet_figure_height(size), int(figure.height * (third * 0.9) / max(1, figure.width)))
    front = figure.resize(
        (max(1, round(figure.width * height / figure.height)), max(1, height)), Image.Resampling.LANCZOS
    )
    side = front.resize((max(1, round(front.width * 0.55)), front.height), Image.Resampling.LANCZOS)
    back = ImageOps.mirror(front)
    canvas = Image.new("RGB", size, draw.SHEET_BACKGROUND)
    for index, view in enumerate((front, side, back)):
        draw.paste_centered(canvas, view, third * (index + 0.5), size[1] * 0.91)
    return canvas


def front_view(sheet_image: Image.Image, hints: Mapping[str, Any]) -> Image.Image:
    """The figure a keyframe and the judge take from a sheet: a turnaround's front view
    (its left third), else the whole sheet."""
    if not hints.get("turnaround"):
        return sheet_image
    return sheet_image.crop((0, 0, sheet_image.width // 3, sheet_image.height))


def open_sheet(path: Path, hints: Mapping[str, Any]) -> Image.Image:
    with Image.open(path) as opened:
        return front_view(opened.convert("RGB"), hints)


# ─── locations: a plate is the place's rows of colour (every row one colour, as a
# keyframe background is, so the judge still finds figures placed over it) ───────


def expected_plate(hints: Mapping[str, Any], size: tuple[int, int], photo: Path | None = None) -> Image.Image:
    """The plate a location's words (or the user's photo of it) call for."""
    if photo is not None:
        with Image.open(photo) as opened:
            return draw.chain_rows(opened, size[1]).resize(size, Image.Resampling.NEAREST)
    words = str(hints.get("visual_description") or "")
    return draw.draw_background(size, words, "", str(hints.get("palette") or ""))


def plate(req: ImageRequest, size: tuple[int, int], identity: str) -> Image.Image:
    """A location's background plate; sometimes (a hash of the request) its colours are off,
    as a model's can be, for the plate check to catch."""
    picture = expected_plate(req.hints, size, req.references[0] if req.references else None)
    return draw.hue_rotate(picture, chance.plate_hue_error(identity) or chance.candidate_jitter(identity))


def score_plate(req: JudgeRequest) -> ConsistencyScore:
    """A plate against what its words (or photo) call for: row colours compared."""
    name = str(req.names[0] if req.names else req.hints.get("name") or "location")
    with Image.open(req.image) as opened:
        found = opened.convert("RGB").resize((1, 64), Image.Resampling.BOX)
    expected = expected_plate(req.hints, (32, 64), req.references[0] if req.references else None)
    expected = expected.resize((1, 64), Image.Resampling.BOX)
    diagonal = (3 * 255**2) ** 0.5
    distance = sum(  # the two 1 × 64 columns, row by row
        sum((a - b) ** 2 for a, b in zip(f, e, strict=True)) ** 0.5
        for f, e in zip(segment.pixels(found), segment.pixels(expected), strict=True)
    ) / (64 * diagonal)
    value = round(max(0.0, min(1.0, 1 - PLATE_SCALE * distance)), 4)
    threshold = float(req.hints.get("threshold", DEFAULT_THRESHOLD))
    issues = [] if value >= threshold else [f"{name}: the colours of the place are off"]
    fix_prompt = f"Change ONLY the colours of {name}: restore them to match its description." if issues else None
    return ConsistencyScore(overall_score=value, per_character={name: value}, issues=issues, fix_prompt=fix_prompt)


def reference_frame(references: tuple[Path, ...], hints: Mapping[str, Any], size: tuple[int, int]) -> Image.Image:
    """What a reference clip starts from offline: the sheets' figures composed over the
    plate (or a background from the setting words), as a keyframe would be."""
    req = ImageRequest(
        prompt="",
        model="",
        aspect_ratio="",
        resolution="",
        dest=Path("."),
        references=references,
        hints={**hints, "faithful": True},
    )
    return keyframe(req, size, "reference-clip")


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
    chain = location = None
    for slot, ref in zip(slots, req.references, strict=False):
        if isinstance(slot, Mapping) and slot.get("kind") == "character":
            sheets[str(slot.get("name"))] = Path(ref)
        elif isinstance(slot, Mapping) and slot.get("kind") == "location":
            with Image.open(ref) as im:
                location = im.convert("RGB")
        else:
            with Image.open(ref) as im:
                chain = im.convert("RGB")
    figures = []
    layout = draw.figure_layout(hints, list(sheets))
    for name in layout:
        if name in sheets:
            figure = segment.extract_figure(open_sheet(sheets[name], hints))
        else:  # text only: drawn from the words alone, so it drifts (design section 6)
            figure = draw.draw_figure(name, description(hints, name, name), int(size[1] * 0.8))
        # a reference clip conditions on the sheets themselves: no composing mistakes
        faithful = hints.get("faithful") and name in sheets
        error = 0 if faithful else chance.keyframe_hue_error(identity, name, from_sheet=name in sheets)
        error = error or chance.candidate_jitter(f"{identity}:{name}")
        figures.append(draw.hue_rotate(figure, error))
    scene = framing.scene_framing(size, hints, layout)
    if location is not None:  # the plate is the place: its rows, the chain frame's blended in
        rows = draw.chain_rows(location, size[1])
        chain = rows if chain is None else Image.blend(rows, draw.chain_rows(chain, size[1]), 0.35)
        chain = chain.resize(size, Image.Resampling.NEAREST)
    return draw.compose(
        size,
        str(hints.get("setting", "")),
        str(hints.get("mood", "")),
        str(hints.get("palette", "")),
        figures,
        chain=chain,
        shot=scene.shot,
        prop_boxes=scene.prop_boxes,
        chain_weight=1.0 if location is not None else None,
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
            figure = segment.extract_figure(open_sheet(req.references[1], hints))
        else:
            figure = draw.draw_figure(name, description(hints, name, name), int(size[1] * 0.8))
        figure = draw.tint(figure, colour, strength / 2)  # relit to match the scene, gently
        draw.place_figure(image, figure, index, len(layout), scene.shot)
    return image


def score(req: JudgeRequest) -> ConsistencyScore:
    """The vision check: each figure in the picture against its reference."""
    hints = req.hints
    if req.kind == "plate":
        return score_plate(req)
    threshold = float(hints.get("threshold", DEFAULT_THRESHOLD))
    layout = draw.figure_layout(hints, list(req.names))
    with Image.open(req.image) as opened:
        im = front_view(opened.convert("RGB"), hints) if req.kind == "sheet" else opened.convert("RGB")
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
            else:
                sheet_image = front_view(sheet_image, hints)
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
