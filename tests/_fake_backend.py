"""A minimal deterministic backend for storyc's build tests (real JPEGs and MP4s)."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from pathlib import Path

from storyc.backends.base import BackendError, CallResult
from storyc.model.vision import ConsistencyScore


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class FakeBackend:
    name = "offline"

    def __init__(self, scores=None, fail_after=None, transient_every=0):
        self.scores = scores or {}  # (step_id, judge kind) -> list of scores by call order
        self.calls = Counter()
        self.log = []
        self.fail_after = fail_after  # raise a permanent error once this many calls were made
        self.transient_every = transient_every
        self._judged = Counter()
        self.image_requests = []  # (step_id, step, reference file names) per image call
        self._n = 0
        self._lock = threading.Lock()

    def _tick(self, kind, what):
        with self._lock:
            self._n += 1
            if self.fail_after is not None and self._n > self.fail_after:
                raise BackendError(f"injected crash at call {self._n}")
            if self.transient_every and self._n % self.transient_every == 0:
                self.log.append(("transient", what))
                raise BackendError("injected transient", retryable=True)
            self.calls[kind] += 1
            self.log.append((kind, what))

    def _image(self, req):
        from PIL import Image

        from storyc.media import ffmpeg as media

        self._tick("image", req.hints.get("step_id"))
        with self._lock:
            self.image_requests.append(
                (req.hints.get("step_id"), req.hints.get("step"), tuple(Path(r).name for r in req.references))
            )
        w, h = media.dimensions(req.aspect_ratio, req.resolution)
        refs = "".join(_sha(r) for r in req.references)  # like a real model, the output follows its inputs
        seed = hashlib.sha256((req.prompt + refs + repr(sorted(req.hints.items(), key=str))).encode()).digest()
        img = Image.new("RGB", (w, h), tuple(seed[:3]))
        media.save_jpeg(img, req.dest)
        return CallResult(path=req.dest, cost_usd=0.02, kind="image")

    generate_image = _image
    edit_image = _image

    def _video(self, req, job_key, journal, source):
        from storyc.media import ffmpeg as media
        from storyc.store.fsutil import atomic_output

        self._tick("video", req.hints.get("step_id"))
        w, h = media.dimensions(req.aspect_ratio, req.resolution)
        color = hashlib.sha256((req.prompt + _sha(source) + str(req.hints.get("attempt"))).encode()).hexdigest()[:6]
        with atomic_output(req.dest) as tmp:
            media.run_ffmpeg(
                [
                    "-f",
                    "lavfi",
                    "-i",
                    f"color=c=0x{color}:s={w}x{h}:r=24:d={req.duration_s}",
                    "-f",
                    "lavfi",
                    "-i",
                    f"sine=frequency=440:sample_rate=44100:duration={req.duration_s}",
                    "-shortest",
                    *media.encoder_args(24),
                    "-f",
                    "mp4",
                    str(tmp),
                ]
            )
        return CallResult(path=req.dest, cost_usd=0.07 * req.duration_s, kind="video")

    def image_to_video(self, req, *, job_key, journal=None):
        return self._video(req, job_key, journal, req.image)

    def edit_video(self, req, *, job_key, journal=None):
        return self._video(req, job_key, journal, req.video)

    def judge(self, req):
        self._tick("vision", req.hints.get("step_id"))
        # scores by attempt (not by call order), so a resumed build sees the same scores
        key = (req.hints.get("step_id"), req.kind)
        n = int(req.hints.get("attempt", 1)) - 1
        seq = self.scores.get(key, self.scores.get("*", [0.9]))
        score = seq[min(n, len(seq) - 1)]
        issues = [] if score >= 0.8 else ["colours drifted"]
        return (
            ConsistencyScore(
                overall_score=score,
                per_character=dict.fromkeys(req.names, score),
                issues=issues,
                fix_prompt=None if not issues else "restore the colours",
            ),
            CallResult(path=None, cost_usd=0.001, kind="vision"),
        )

    def plan(self, *a, **k):
        raise NotImplementedError

    def close(self):
        pass
