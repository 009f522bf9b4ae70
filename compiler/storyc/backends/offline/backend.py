"""The offline backend: the embedded default renderer. Real pictures and real video,
made locally, deterministically and for free (cost 0.0), with calls counted like a
paid backend's.

- Character sheets: a stylised figure coloured by the colour words of the description,
  on plain light grey (draw.py). From a user's reference image: that image,
  stylised, on the same grey.
- Keyframes: a background from the setting/mood/palette words (blended with the chain
  frame when there is one), each slot character's figure cut from its sheet and placed
  at its slot, text-only characters drawn from their description, then mood lighting.
  Like a real model it sometimes gets a character's colours wrong (decided by a hash
  of the request: chance.py), so the check → targeted fix loop has work to do; a fix edit
  redraws the named character from its description and measurably raises the score.
- Videos: ffmpeg moves the keyframe as the camera words say, with a quiet tone for
  audio (none with `generate_audio` off) and a caption band (scene and title, camera,
  action, name tags, spoken lines: video.py, captions.py); some clips drift in colour over
  time (hash of the request), which the last-frame check catches and `edit_video` (drift
  measured and ramped back out) fixes.
- Speech (text_to_speech): espeak-ng, the voice id's local voice (speech.py).
- judge: compares pictures for real (judge.py): each figure's grid of colours
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
import sys
import tempfile
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
    SpeechRequest,
    TransientError,
    VideoRequest,
)
from storyc.backends.download import AssetExpired, DownloadTruncated
from storyc.backends.offline import chance
from storyc.backends.offline import faults as offline_faults
from storyc.media import ffmpeg as media
from storyc.media.probe import probe
from storyc.model.story import VIDEO_EDIT_MAX_S
from storyc.model.story_plan import PlanCharacter, PlanScene, StoryPlan
from storyc.model.vision import ConsistencyScore
from storyc.store.fsutil import temp_path_for

_FAULT_ERRORS: dict[str, type[BackendError]] = {
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


# Pillow-based modules (pictures.py, video.py) are imported on first use, inside the
# methods that draw or film: importing this module (every build does) stays light.


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
        sys.audit("storyc.offline.call_started", kind, identity)  # every try; tests count them (CONTRIBUTING.md)
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
            partial = temp_path_for(Path(dest))
            partial.write_bytes(b"\0" * 512)
            partial.unlink()
        raise _FAULT_ERRORS[fault](f"offline {kind} call: {_FAULT_MESSAGES[fault]}")

    def _done(self, kind: str, path: Path | None, **meta: Any) -> CallResult:
        with self._lock:
            self.calls[kind] += 1
        sys.audit("storyc.offline.call_done", kind, path)
        return CallResult(path=path, cost_usd=0.0, kind=kind, calls=1, meta={"backend": "offline", **meta})  # type: ignore[arg-type]

    # ── images ──────────────────────────────────────────────────────────────

    def generate_image(self, req: ImageRequest) -> CallResult:
        return self._image("generate_image", req)

    def edit_image(self, req: ImageRequest) -> CallResult:
        if not 1 <= len(req.references) <= 3:
            raise BackendError(f"image edit takes 1 to 3 reference images, got {len(req.references)}")
        return self._image("edit_image", req)

    def _image(self, method: str, req: ImageRequest) -> CallResult:
        from storyc.backends.offline import pictures  # Pillow

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
        # best-of-N: one request, N draws; each candidate is its own draw (and its own mistakes)
        dests = req.candidates or (req.dest,)
        for index, dest in enumerate(dests):
            draw_identity = identity if index == 0 else f"{identity}{chance.CANDIDATE_MARK}{index + 1}"
            try:
                image = pictures.paint(req, size, draw_identity)
            except OSError as exc:
                raise BackendError(f"offline image: cannot read a reference image ({exc})") from None
            media.save_jpeg(image, dest)
        return self._done("image", Path(req.dest), model=req.model, request_id=identity[:16], candidates=len(dests))

    # ── videos ──────────────────────────────────────────────────────────────

    def image_to_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        """A clip from its first frame, or (no image) from its reference images: the sheets'
        figures over the plate, as a keyframe is composed. With `last_frame` the picture
        dissolves into that frame, which the clip ends on exactly (as the next clip frames it,
        `hints["end_camera"]`). Reference images beside a first frame keep identity: the
        clip's colour drift is cut to a third."""
        from storyc.backends.offline import pictures, video  # Pillow

        if req.image is None and not req.references:
            raise BackendError("image→video needs an image or reference images")
        # the seed's fields first; references, an end frame and silence only when sent, so a
        # seed request (a clip with sound) keeps its identity (and its draws)
        extra: dict[str, Any] = {}
        if req.references:
            extra["references"] = [Path(r) for r in req.references]
        if req.last_frame is not None:
            extra["last_frame"] = Path(req.last_frame)
        if not req.generate_audio:
            extra["generate_audio"] = False
        identity = self._identity(
            "image_to_video",
            prompt=req.prompt,
            model=req.model,
            image=Path(req.image) if req.image is not None else None,
            duration_s=req.duration_s,
            aspect_ratio=req.aspect_ratio,
            resolution=req.resolution,
            hints=dict(req.hints),
            **extra,
        )
        self._enter("video", "video", identity, req.dest)
        request_id = f"offline-{identity[:16]}"
        if journal is not None:
            journal.started(job_key, request_id)
        width, height = media.dimensions(req.aspect_ratio, req.resolution)
        drift, tone_hz = chance.video_drift(identity)
        if req.image is not None and req.references:
            drift = int(drift / 3)
        with tempfile.TemporaryDirectory(prefix="storyc-offline-") as folder:
            start = Path(req.image) if req.image is not None else Path(folder) / "start.png"
            if req.image is None:
                try:
                    pictures.reference_frame(tuple(req.references), req.hints, (width, height)).save(start)
                except OSError as exc:
                    raise BackendError(f"offline video: cannot read a reference image ({exc})") from None
            video.render_clip(
                start,
                Path(req.dest),
                width=width,
                height=height,
                duration_s=float(req.duration_s),
                camera=str(req.hints.get("camera") or req.prompt),
                drift_degrees=drift,
                tone_hz=tone_hz if req.generate_audio else None,
                last_frame=Path(req.last_frame) if req.last_frame is not None else None,
                end_camera=str(req.hints.get("end_camera") or ""),
                **video.clip_caption(req.hints, float(req.duration_s), width),
            )
        if journal is not None:
            journal.finished(job_key)
        return self._done("video", Path(req.dest), model=req.model, request_id=request_id, drift_degrees=drift)

    def extend_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        """The clip continued from its last frame by `req.duration_s` seconds (a gentle push-in
        that starts exactly on that frame), the output holding both; silent without
        `generate_audio`, as the clip it continues."""
        from storyc.backends.offline import video  # Pillow

        if req.video is None:
            raise BackendError("video extension needs a video")
        identity = self._identity(
            "extend_video",
            prompt=req.prompt,
            model=req.model,
            video=Path(req.video),
            duration_s=req.duration_s,
            hints=dict(req.hints),
            **({} if req.generate_audio else {"generate_audio": False}),
        )
        self._enter("video", "video", identity, req.dest)
        request_id = f"offline-{identity[:16]}"
        if journal is not None:
            journal.started(job_key, request_id)
        info = probe(req.video)
        drift, tone_hz = chance.video_drift(identity)
        video.extend_clip(
            Path(req.video),
            Path(req.dest),
            seconds=float(req.duration_s),
            width=info.width,
            height=info.height,
            drift_degrees=drift,
            tone_hz=tone_hz if req.generate_audio else None,
            **video.clip_caption(req.hints, float(req.duration_s), info.width),
        )
        if journal is not None:
            journal.finished(job_key)
        return self._done("video", Path(req.dest), model=req.model, request_id=request_id, drift_degrees=drift)

    def edit_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        from storyc.backends.offline import video  # Pillow

        if req.video is None:
            raise BackendError("video edit needs a video")
        duration = probe(req.video).duration_s
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
        from storyc.backends.offline import pictures  # Pillow

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
            score = pictures.score(req)
        except OSError as exc:
            raise BackendError(f"offline judge: cannot read an image ({exc})") from None
        return score, self._done("vision", None, model=req.model)

    def text_to_speech(self, req: SpeechRequest) -> CallResult:
        """The line in the local voice of its voice id (offline builds speak their lines in the
        speech step itself; this is the same speech behind the backend interface)."""
        from storyc.backends.offline import speech

        identity = self._identity("text_to_speech", text=req.text, voice=req.voice)
        self._enter("tts", "tts", identity, req.dest)
        try:
            rendered = speech.render_speech(req.text, speech.voice_for(req.voice), req.dest)
        except speech.SpeechError as exc:
            raise BackendError(f"offline speech: {exc}") from None
        return self._done("tts", rendered.path, duration_s=round(rendered.duration_s, 6))

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
