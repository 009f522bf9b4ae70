"""The offline backend: the embedded default renderer. Real pictures and real video,
made locally, deterministically and for free (cost 0.0), with calls counted like a
paid backend's.

- Character sheets: a stylised figure coloured by the colour words of the description,
  on plain light grey (offline_draw). From a user's reference image: that image,
  stylised, on the same grey.
- Keyframes: a background from the setting/mood/palette words (blended with the chain
  frame when there is one), each slot character's figure cut from its sheet and placed
  at its slot, text-only characters drawn from their description, then mood lighting.
  Like a real model it sometimes gets a character's colours wrong (decided by a hash
  of the request), so the check → targeted fix loop has work to do; a fix edit
  redraws the named character from its description and measurably raises the score.
- Videos: ffmpeg moves the keyframe as the camera words say, with a quiet tone for
  audio; some clips drift in colour over time (hash of the request), which the
  last-frame check catches and `edit_video` (drift measured and ramped back out) fixes.
- judge: compares pictures for real (offline_judge): each figure's grid of colours
  against its reference sheet's, allowing for scene lighting.

Same request (prompt, model, size, hints, reference *contents*) → byte-identical file,
wherever `dest` is. Every file is written to a temp file beside `dest`, then renamed.
Hints the executor sends are documented in base.py; `attempt` in the hints makes a
regeneration a different request (a new draw), as with a real model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storyc.backends.base import (
    BackendError,
    CallResult,
    ImageRequest,
    JobJournal,
    JudgeRequest,
    RateLimited,
    TransientError,
    VideoRequest,
)
from storyc.backends.offline import faults as offline_faults
from storyc.model.story import VIDEO_EDIT_MAX_S
from storyc.model.story_plan import PlanCharacter, PlanScene, StoryPlan
from storyc.model.vision import ConsistencyScore

DEFAULT_THRESHOLD = 0.8
# how often the "model" errs, per 100 draws (decided by a hash of the request)
SHEET_ERROR_RATE = 25
KEYFRAME_ERROR_RATE = 30
TEXT_ONLY_ERROR_RATE = 60  # a character without a reference image is drawn from words
VIDEO_DRIFT_RATE = 45  # of which about half mild, half strong
# A simulated error is either large enough for the check to catch (>= 45 degrees of hue)
# or too small to see (<= 8): a colour that visibly wanders between scenes must never pass.


def _fault_errors() -> dict[str, type[BackendError]]:
    from storyc.backends.download import AssetExpired, DownloadTruncated

    return {
        "transient": TransientError,
        "ratelimit": RateLimited,
        "expired": AssetExpired,
        "truncated": DownloadTruncated,
    }


_FAULT_MESSAGES = {
    "transient": "service unavailable (simulated transient error)",
    "ratelimit": "rate limited (simulated 429)",
    "expired": "result URL expired before download (simulated)",
    "truncated": "download cut short (simulated)",
}


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise BackendError(f"cannot read input {Path(path).name}: {exc.strerror}") from None
    return h.hexdigest()


def _h(*parts: object) -> int:
    from storyc.backends.offline.draw import stable_hash

    return stable_hash(*parts)


class OfflineBackend:
    name = "offline"

    def __init__(self, latency: dict[str, float] | None = None, faults: str | None = None):
        env_latency = offline_faults.parse_latency(os.environ.get(offline_faults.LATENCY_ENV))
        self.latency: dict[str, float] = {
            **env_latency,
            **{("chat" if k == "vision" else k): float(v) for k, v in (latency or {}).items()},
        }
        spec = faults if faults is not None else os.environ.get(offline_faults.FAULTS_ENV)
        self.fault_plan = offline_faults.parse_faults(spec)
        self._tries = offline_faults.TryCounter()
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()  # successful calls by kind
        self.faults_injected: Counter[str] = Counter()  # injected faults by type

    # ── plumbing ────────────────────────────────────────────────────────────

    def _identity(self, method: str, **fields: Any) -> str:
        """A content identity of the request: paths are replaced by file hashes, so the
        same request gives the same bytes wherever its files live."""

        def norm(value: Any) -> Any:
            if isinstance(value, Path):
                return {"sha256": _file_digest(value)}
            if isinstance(value, Mapping):
                return {str(k): norm(v) for k, v in value.items() if k != "step_id"}
            if isinstance(value, (list, tuple)):
                return [norm(v) for v in value]
            return value

        text = json.dumps({"method": method, **{k: norm(v) for k, v in fields.items()}}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _enter(self, kind: str, latency_kind: str, identity: str, dest: Path | None) -> None:
        """Simulated latency, then maybe an injected fault (nothing is left at `dest`)."""
        attempt = self._tries.next(identity)
        fault = self.fault_plan.decide(identity, attempt)
        if fault != "ratelimit":  # a 429 comes back at once; everything else takes its time
            delay = self.latency.get(latency_kind, 0.0)
            if delay:
                time.sleep(delay)
        if fault is None:
            return
        with self._lock:
            self.faults_injected[fault] += 1
        if fault == "truncated" and dest is not None:  # a partial download, cleaned up as a real one would be
            from storyc.media.ffmpeg import temp_path_for

            partial = temp_path_for(Path(dest))
            partial.write_bytes(b"\0" * 512)
            partial.unlink()
        raise _fault_errors()[fault](f"offline {kind} call: {_FAULT_MESSAGES[fault]}")

    def _done(self, kind: str, path: Path | None, **meta: Any) -> CallResult:
        with self._lock:
            self.calls[kind] += 1
        return CallResult(path=path, cost_usd=0.0, kind=kind, calls=1, meta={"backend": "offline", **meta})  # type: ignore[arg-type]

    @property
    def fault_counts(self) -> dict[str, int]:
        return dict(self.faults_injected)

    # ── images ──────────────────────────────────────────────────────────────

    def generate_image(self, req: ImageRequest) -> CallResult:
        return self._image("generate_image", req)

    def edit_image(self, req: ImageRequest) -> CallResult:
        if not 1 <= len(req.references) <= 3:
            raise BackendError(f"image edit takes 1 to 3 reference images, got {len(req.references)}")
        return self._image("edit_image", req)

    def _image(self, method: str, req: ImageRequest) -> CallResult:
        from storyc.media import ffmpeg as media

        identity = self._identity(
            method,
            prompt=req.prompt,
            model=req.model,
            aspect_ratio=req.aspect_ratio,
            resolution=req.resolution,
            references=list(req.references),
            hints=dict(req.hints),
        )
        self._enter("image", "image", identity, req.dest)
        size = media.dimensions(req.aspect_ratio, req.resolution)
        hints = req.hints
        step = str(hints.get("step", ""))
        try:
            if step == "fix" or (step != "keyframe" and len(req.references) == 1 and not hints.get("name")):
                image = self._fix(req, size)
            elif step == "character" or (step != "keyframe" and hints.get("name")):
                image = self._sheet(req, size, identity)
            else:
                image = self._keyframe(req, size, identity)
        except OSError as exc:
            raise BackendError(f"offline image: cannot read a reference image ({exc})") from None
        media.save_jpeg(image, req.dest)
        return self._done("image", Path(req.dest), model=req.model, request_id=identity[:16])

    def _description(self, hints: Mapping[str, Any], name: str, fallback: str) -> str:
        chars = hints.get("characters")
        if isinstance(chars, Mapping) and chars.get(name):
            return str(chars[name])
        if hints.get("name") == name and hints.get("visual_description"):
            return str(hints["visual_description"])
        return fallback

    def _sheet(self, req: ImageRequest, size: tuple[int, int], identity: str):
        from PIL import Image

        from storyc.backends.offline import draw as draw

        hints = req.hints
        name = str(hints.get("name") or "character")
        description = str(hints.get("visual_description") or req.prompt)
        if req.references:  # a user's reference image, stylised into a sheet
            with Image.open(req.references[0]) as photo:
                return draw.sheet_from_reference(photo, size)
        h = _h("sheet-error", identity)
        error = (50 + h // 100 % 80) if h % 100 < SHEET_ERROR_RATE else 0
        return draw.draw_sheet(name, description, size, hue_error=error)

    def _keyframe(self, req: ImageRequest, size: tuple[int, int], identity: str):
        from PIL import Image

        from storyc.backends.offline import draw as draw
        from storyc.backends.offline import framing as framing

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
        for slot, ref in zip(slots, req.references):
            if isinstance(slot, Mapping) and slot.get("kind") == "character":
                sheets[str(slot.get("name"))] = Path(ref)
            else:
                with Image.open(ref) as im:
                    chain = im.convert("RGB")
        figures = []
        layout = draw.figure_layout(hints, list(sheets))
        for name in layout:
            h = _h("keyframe-error", identity, name)
            if name in sheets:
                with Image.open(sheets[name]) as sheet:
                    figure = draw.extract_figure(sheet)
                error = (50 + h // 100 % 70) if h % 100 < KEYFRAME_ERROR_RATE else 0
            else:  # text only: drawn from the words alone, so it drifts (design section 6)
                figure = draw.draw_figure(name, self._description(hints, name, name), int(size[1] * 0.8))
                error = (50 + h // 100 % 40) if h % 100 < TEXT_ONLY_ERROR_RATE else h // 100 % 6
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

    def _fix(self, req: ImageRequest, size: tuple[int, int]):
        """A targeted edit: redraw the named character(s) where they stand, leaving the
        rest of the picture as it was: from the sheet given as reference image 2 (the
        character named in hints["element"]), else from the description."""
        from PIL import Image

        from storyc.backends.offline import draw as draw
        from storyc.backends.offline import framing as framing
        from storyc.backends.offline import judge as judge

        hints = req.hints
        with Image.open(req.references[0]) as im:
            image = im.convert("RGB")
        if image.size != size:
            image = image.resize(size, Image.LANCZOS)
        layout = draw.figure_layout(hints, list((hints.get("characters") or {}).keys()))
        target = str(hints.get("element") or "")
        named = [n for n in layout if n == target] or [
            n for n in layout if re.search(rf"\b{re.escape(n)}\b", req.prompt)
        ]
        targets = named or layout
        if not layout:
            return image
        # erase each target's figure back to the (row-uniform) background, then redraw it;
        # the props stay where they are
        scene = framing.scene_framing(size, hints, layout)
        mask = judge.foreground_mask(image)
        framing.clear_boxes(mask, framing.excluded_boxes(scene, "keyframe", hints), size[0], (0, size[1]))
        background = judge.row_background(image)
        colour, strength = draw.lighting(str(hints.get("mood", "")), str(hints.get("setting", "")))
        for index, name in enumerate(layout):
            if name not in targets:
                continue
            box = judge.strip_box(index, len(layout), size)
            image.paste(background.crop(box), box[:2], mask.crop(box))
            if len(req.references) > 1 and name == target:
                with Image.open(req.references[1]) as sheet:
                    figure = draw.extract_figure(sheet)
            else:
                figure = draw.draw_figure(name, self._description(hints, name, name), int(size[1] * 0.8))
            figure = draw.tint(figure, colour, strength / 2)  # relit to match the scene, gently
            draw.place_figure(image, figure, index, len(layout), scene.shot)
        return image

    # ── videos ──────────────────────────────────────────────────────────────

    def image_to_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        from storyc.backends.offline import video as video
        from storyc.media import ffmpeg as media

        if req.image is None:
            raise BackendError("image→video needs an image")
        identity = self._identity(
            "image_to_video",
            prompt=req.prompt,
            model=req.model,
            image=Path(req.image),
            duration_s=req.duration_s,
            aspect_ratio=req.aspect_ratio,
            resolution=req.resolution,
            hints=dict(req.hints),
        )
        self._enter("video", "video", identity, req.dest)
        request_id = f"offline-{identity[:16]}"
        if journal is not None:
            journal.started(job_key, request_id)
        width, height = media.dimensions(req.aspect_ratio, req.resolution)
        h = _h("drift", identity)
        roll = h % 100
        if roll < VIDEO_DRIFT_RATE // 2:
            drift = 3 + h // 100 % 6  # mild: too small to see, passes the check
        elif roll < VIDEO_DRIFT_RATE:
            drift = 45 + h // 100 % 45  # strong: the check should catch it
        else:
            drift = 0
        drift = -drift if (h >> 20) % 2 else drift
        video.render_clip(
            Path(req.image),
            Path(req.dest),
            width=width,
            height=height,
            duration_s=float(req.duration_s),
            camera=str(req.hints.get("camera") or req.prompt),
            drift_degrees=drift,
            tone_hz=180 + h // 10_000 % 340,
            **self._caption(req.hints, float(req.duration_s), width),
        )
        if journal is not None:
            journal.finished(job_key)
        return self._done("video", Path(req.dest), model=req.model, request_id=request_id, drift_degrees=drift)

    def _caption(self, hints: Mapping[str, Any], duration_s: float, width: int) -> dict[str, Any]:
        """The caption band of a clip (scene, title, action, camera, timed lines) and its
        name tags under the figures' slots, from the request hints."""
        from storyc.backends.offline import captions as captions
        from storyc.backends.offline import draw as draw

        names = draw.figure_layout(hints, list((hints.get("characters") or {}).keys()))
        card = captions.card_from_hints(hints, names, duration_s)
        return {"caption": card, "tag_xs": [x / width for x in draw.slot_centres(len(names), width)] if names else []}

    def edit_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        from storyc.backends.offline import video as video
        from storyc.media import ffmpeg as media

        if req.video is None:
            raise BackendError("video edit needs a video")
        duration = media.probe(req.video).duration_s
        if duration > VIDEO_EDIT_MAX_S + 0.05:
            raise BackendError(f"video edit input is {duration:.1f} s; the limit is {VIDEO_EDIT_MAX_S} s")
        identity = self._identity(
            "edit_video",
            prompt=req.prompt,
            model=req.model,
            video=Path(req.video),
            hints=dict(req.hints),
        )
        self._enter("video", "video", identity, req.dest)
        request_id = f"offline-{identity[:16]}"
        if journal is not None:
            journal.started(job_key, request_id)
        removed = video.correct_drift(Path(req.video), Path(req.dest))
        if journal is not None:
            journal.finished(job_key)
        return self._done("video", Path(req.dest), model=req.model, request_id=request_id, drift_removed=removed)

    # ── vision and planning ─────────────────────────────────────────────────

    def judge(self, req: JudgeRequest) -> tuple[ConsistencyScore, CallResult]:
        identity = self._identity(
            "judge",
            kind=req.kind,
            prompt=req.prompt,
            model=req.model,
            image=Path(req.image),
            references=list(req.references),
            names=list(req.names),
            hints=dict(req.hints),
        )
        self._enter("vision", "chat", identity, None)
        try:
            score = self._score(req)
        except OSError as exc:
            raise BackendError(f"offline judge: cannot read an image ({exc})") from None
        return score, self._done("vision", None, model=req.model)

    def _score(self, req: JudgeRequest) -> ConsistencyScore:
        from PIL import Image

        from storyc.backends.offline import draw as draw
        from storyc.backends.offline import framing as framing
        from storyc.backends.offline import judge as judge

        hints = req.hints
        threshold = float(hints.get("threshold", DEFAULT_THRESHOLD))
        layout = draw.figure_layout(hints, list(req.names))
        with Image.open(req.image) as im:
            frame_size = im.size
            scene = framing.scene_framing(frame_size, hints, layout)
            # only the rows between the caption bands; the props the action names left out
            region, (_, top) = framing.analysis_region(im.convert("RGB"), req.kind)
            picture = judge.analysis_copy(region, framing.analysis_width(scene, req.kind))
        mask = judge.foreground_mask(picture)
        if req.kind != "sheet":
            excluded = framing.excluded_boxes(scene, req.kind, hints)
            framing.clear_boxes(mask, excluded, frame_size[0], (top, top + region.height))

        def reference(name: str, index: int, full: bool = False) -> Image.Image:
            """The reference figure: from the sheet (at full size, as a keyframe is drawn
            from it, when `full`), or drawn from the description for a text-only one."""
            if index < len(req.references):
                with Image.open(req.references[index]) as ref:
                    sheet = ref.convert("RGB")
                if req.kind == "sheet":  # the user's reference image, stylised as the sheet would be
                    sheet = draw.sheet_from_reference(sheet, picture.size)
                return draw.extract_figure(sheet if full else judge.analysis_copy(sheet, 320))
            description = self._description(hints, name, req.prompt)
            height = int(frame_size[1] * 0.8) if full else judge.REFERENCE_HEIGHT * 2
            return draw.draw_figure(name, description, height)

        per: dict[str, float] = {}
        issues: list[str] = []
        if req.kind == "sheet":
            names = [str(req.names[0] if req.names else hints.get("name") or "character")]
            boxes = [None]
        else:
            names = draw.figure_layout(hints, list(req.names))
            boxes = [judge.strip_box(i, len(names), picture.size) for i in range(len(names))]
        ref_index = {n: i for i, n in enumerate(req.names)}
        background = None
        for index, (name, box) in enumerate(zip(names, boxes)):
            strip, strip_mask = framing.figure_in(picture, mask, box)
            found = judge.describe(strip, strip_mask)
            ref = ref_index.get(name, 0 if req.kind == "sheet" else len(req.references))
            if box is not None and scene.shot.visible < 1.0:
                # a cut shot shows the figure's top part: compare with the sheet's figure
                # where the frame should show it, cut the same way
                rows = (top, top + region.height)
                background = background or judge.row_background(picture)
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
            worst = min(per, key=per.get)
            # the form the check prompt asks for: "Change ONLY <element>: <fix>"
            source = "their character sheet" if worst in ref_index and req.kind != "sheet" else "their description"
            fix_prompt = f"Change ONLY {worst}'s colours: restore them to match {source}."
        return ConsistencyScore(
            overall_score=round(overall, 4), per_character=per, issues=issues, fix_prompt=fix_prompt
        )

    def plan(self, system_prompt: str, user_prompt: str, model: str) -> tuple[StoryPlan, CallResult]:
        identity = self._identity("plan", system=system_prompt, user=user_prompt, model=model)
        self._enter("chat", "chat", identity, None)
        return skeleton_plan(user_prompt), self._done("chat", None, model=model)

    def close(self) -> None:
        pass


_NAMED = re.compile(r"\bnamed\s+([A-Z][\w'-]*)")
_CAPITALISED = re.compile(r"\b([A-Z][a-z][\w'-]*)\b")
_STOP = {"A", "An", "The", "In", "On", "At", "They", "He", "She", "It", "Create", "Story", "When", "Then", "And"}


def skeleton_plan(user_prompt: str) -> StoryPlan:
    """A clearly marked skeleton from the concept's words: the offline backend invents
    nothing and says so; every creative field is a TODO for the author."""
    concept = re.split(r"\bfor:\s*", user_prompt, maxsplit=1)[-1].strip() or user_prompt.strip()
    concept = " ".join(concept.split())
    words = re.findall(r"[\w'-]+", concept)
    title = " ".join(words[:6]).title() or "Untitled"
    names = _NAMED.findall(concept) or [w for w in _CAPITALISED.findall(concept) if w not in _STOP][:2] or ["Hero"]
    names = list(dict.fromkeys(names))[:3]
    characters = [
        PlanCharacter(
            name=n,
            role="protagonist" if i == 0 else "supporting",
            visual_description=f"TODO: describe {n}'s appearance (offline skeleton: nothing was generated). "
            "Give age, build, colours of fur/hair/skin and clothing, and distinguishing marks.",
            personality_cues=["TODO"],
        )
        for i, n in enumerate(names)
    ]
    scenes = [
        PlanScene(
            scene_id=i,
            title=f"TODO: scene {i} title",
            description=f"TODO: describe what happens in scene {i} ({concept[:80]}).",
            characters_present=names,
            setting="TODO: describe the setting",
            camera="medium shot, static",
            mood="TODO: describe the mood",
            action="TODO: describe the main motion",
            duration_seconds=8,
            transition="cut",
        )
        for i in (1, 2, 3)
    ]
    return StoryPlan(
        title=f"{title} (offline skeleton)",
        style="TODO: describe the visual style (offline skeleton)",
        aspect_ratio="16:9",
        color_palette="TODO: describe the colour palette",
        characters=characters,
        scenes=scenes,
    )
