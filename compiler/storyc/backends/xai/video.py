"""Video jobs on xAI (`video.start`, then storyc's own `video.get` polling), paid for
exactly once.

- Before the paid start, the journal gets an intent marker for the job key; the request
  id replaces it as soon as the start answers, before the first poll. A build killed
  while starting leaves the marker: the next build reports that start as possibly billed
  (its id was never seen) instead of silently paying again with nothing said. A build
  killed later leaves the id: the next build re-attaches and pays nothing.
- A job is counted when the service accepts it: one call, at the price table's cost,
  which its outcome's reported `usage.cost_in_usd_ticks` then replaces. A call that fails
  reports its job on the error; the journal marks the id reported, so the step's retry or
  the next build re-attaches without counting it again. A job re-attached from a build
  that was killed (which wrote no report) is counted by the build that re-attaches it.
- Polls are free but rate limited: every poll takes a token of the "video" bucket that
  starts share, so any number of concurrent jobs stays within the documented limit.
  `VideoResponse.progress` goes to the request's `progress` hook (the progress line).
- DONE: downloaded at once; a failed download (not a gone URL) is fetched again, and if
  it still fails the journal keeps the id, so the step's retry re-attaches and downloads
  the same video without a new job. A gone URL (404/410) needs a new job: the retry pays
  again and is reported as such.
- EXPIRED restarts the job once. FAILED with a moderation code, a refusal at submission
  and a DONE without URL with `respect_moderation=false` each get one reworded job, then
  `ModerationBlocked`. Any other FAILED is final (`VideoJobFailed`, code and message).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xai_sdk.proto import deferred_pb2
from xai_sdk.video import VideoResponse

from storyc.backends.base import BackendError, CallResult, JobJournal, VideoRequest
from storyc.backends.download import (
    MAX_VIDEO_BYTES,
    AssetExpired,
    DownloadError,
    DownloadRefused,
    download,
)
from storyc.backends.xai.errors import (
    ModerationRefused,
    Tally,
    VideoJobFailed,
    is_moderation,
    spent_on_error,
)
from storyc.backends.xai.inputs import (
    MAX_INLINE_IMAGE_BYTES,
    MAX_INLINE_VIDEO_BYTES,
    inline_image,
    inline_video,
    probe_duration,
)
from storyc.backends.xai.transport import XaiTransport
from storyc.model import prices as pricing
from storyc.model.capabilities import info_of, lower_resolution
from storyc.model.story import VIDEO_EDIT_MAX_S
from storyc.redact import redact

VIDEO_EDIT_TOLERANCE_S = 0.05  # container durations overshoot by a frame or an AAC packet
STARTING = "starting:"  # journal value while a start is in flight (no request id yet)
REPORTED = "#reported"  # suffix of a journaled id whose call and cost a failed call already reported
TERMINAL = (deferred_pb2.DeferredStatus.DONE, deferred_pb2.DeferredStatus.EXPIRED, deferred_pb2.DeferredStatus.FAILED)


class MemoryJournal:
    """Used when the caller gives no journal: ids live only as long as this backend."""

    def __init__(self) -> None:
        self._jobs: dict[str, str] = {}
        self._lock = threading.Lock()

    def pending(self, key: str) -> str | None:
        with self._lock:
            return self._jobs.get(key)

    def started(self, key: str, request_id: str) -> None:
        with self._lock:
            self._jobs[key] = request_id

    def finished(self, key: str) -> None:
        with self._lock:
            self._jobs.pop(key, None)


class VideoCalls(XaiTransport):
    """Mixed into XaiBackend (uses XaiTransport's `_rpc`, `_reword`, `_blocked`, `_closed`)."""

    _client: Any

    def _init_video(self) -> None:
        self._journal = MemoryJournal()
        # request id → (the table cost counted at its start, the call's tally that counted it)
        self._estimated: dict[str, tuple[float, Tally]] = {}
        self._estimated_lock = threading.Lock()

    def image_to_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        """image→video from `req.image` (the first frame), or reference-to-video from
        `req.references` alone; with both, the references keep identity beside the first frame
        (grok-imagine-video-1.5). `req.last_frame` pins the clip's exact last frame (1.5)."""
        step = self._step(req, job_key)
        if req.image is None and not req.references:
            raise BackendError(f"{step}: a clip needs a start image or reference images")
        video = info_of(req.model, "video")
        if len(req.references) > video.max_reference_images:
            raise BackendError(
                f"{step}: {req.model} takes at most {video.max_reference_images} reference images, "
                f"got {len(req.references)}"
            )
        images = [p for p in (req.image, req.last_frame) if p is not None] + list(req.references)
        budget = min(MAX_INLINE_IMAGE_BYTES, self.config.inline_budget_bytes // len(images))
        start: dict[str, Any] = {
            "duration": int(req.duration_s),
            "aspect_ratio": req.aspect_ratio,
            "resolution": req.resolution,
            "generate_audio": req.generate_audio,  # audio.native: the clip's own sound, or a silent clip
        }
        if req.image is not None:
            start["image_url"] = lambda: inline_image(req.image, budget, step=step)
        if req.last_frame is not None:
            start["last_frame_url"] = lambda: inline_image(req.last_frame, budget, step=step)
        if req.references:  # in the order the prompt's <IMAGE_N> count them
            start["reference_image_urls"] = lambda: [inline_image(p, budget, step=step) for p in req.references]
        if req.voices:  # the speakers' voices (grok-imagine-video-1.5), <AUDIO_1>... in the prompt
            start["reference_audios"] = [{"voice_id": voice} for voice in req.voices]
        table = pricing.video_cost(req.duration_s, req.resolution, req.model)
        return self._video_job(req, step, job_key, journal, start, table)

    def extend_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        """`video.extend_start`: the clip continued by `req.duration_s` new seconds; the
        output holds both. Billed for the new seconds (at most 720p)."""
        step = self._step(req, job_key)
        if req.video is None:
            raise BackendError(f"{step}: a video extension needs an input clip")
        video = info_of(req.model, "video")
        low, high = video.extension_input_s
        duration = probe_duration(req.video)
        if duration is not None and not low - VIDEO_EDIT_TOLERANCE_S <= duration <= high + VIDEO_EDIT_TOLERANCE_S:
            raise BackendError(f"{step}: an extension takes clips of {low}-{high} s; this one is {duration:.2f} s")
        budget = min(MAX_INLINE_VIDEO_BYTES, self.config.inline_budget_bytes)
        start = {"video_url": lambda: inline_video(req.video, budget, step=step), "duration": int(req.duration_s)}
        resolution = lower_resolution(req.resolution, video.extension_resolutions)
        table = pricing.video_cost(req.duration_s, resolution, req.model)
        return self._video_job(req, step, job_key, journal, start, table, method="extend_start")

    def edit_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        step = self._step(req, job_key)
        if req.video is None:
            raise BackendError(f"{step}: a video edit needs an input clip")
        duration = probe_duration(req.video) or float(req.duration_s)
        if duration > VIDEO_EDIT_MAX_S + VIDEO_EDIT_TOLERANCE_S:
            raise BackendError(
                f"{step}: the video edit endpoint takes clips of at most {VIDEO_EDIT_MAX_S} s; this one is {duration:.2f} s"
            )
        # Output keeps the input's duration, ratio and resolution: no custom ones for an edit.
        budget = min(MAX_INLINE_VIDEO_BYTES, self.config.inline_budget_bytes)
        start = {"video_url": lambda: inline_video(req.video, budget, step=step)}
        table = pricing.video_cost(duration, req.resolution, req.model, input_s=duration)
        return self._video_job(req, step, job_key, journal, start, table)

    def _video_job(
        self,
        req: VideoRequest,
        step: str,
        job_key: str,
        journal: JobJournal | None,
        start_args: dict[str, Any],
        table_usd: float,
        method: str = "start",
    ) -> CallResult:
        journal = journal if journal is not None else self._journal
        tally = Tally(meta={"model": req.model})
        request_id = journal.pending(job_key)
        if request_id is not None and request_id.startswith(STARTING):
            # A build was stopped while this job was being started: the service may have
            # accepted (and billed) it, but its id never arrived. Say so; start anew.
            tally.bill(table_usd, "price_table")
            tally.possibly_billed += 1
            tally.meta["orphaned_start"] = True
            journal.finished(job_key)
            request_id = None
        reattached = request_id is not None
        if request_id is not None:
            request_id, reported, _ = request_id.partition(REPORTED)
            tally.meta["reattached"] = request_id
            if not reported and not self._started_here(request_id):
                # Started by a build that was killed (it wrote no report): counted here, once.
                self._count_start(request_id, tally, table_usd)
        try:
            with spent_on_error(tally):
                return self._run_job(
                    req, step, job_key, journal, start_args, table_usd, tally, request_id, reattached, method
                )
        except BackendError:
            # The error reports this job's call and cost (spent_calls / spent_usd): a retry or
            # the next build that re-attaches to it must not report them again.
            current = journal.pending(job_key)
            if current is not None and not current.startswith(STARTING) and REPORTED not in current:
                journal.started(job_key, current + REPORTED)
            raise

    def _started_here(self, request_id: str) -> bool:
        with self._estimated_lock:
            return request_id in self._estimated

    def _count_start(self, request_id: str, tally: Tally, table_usd: float) -> None:
        """An accepted job is billed: one call, at the table's price until its outcome
        reports the actual cost (`_settle`)."""
        tally.bill(table_usd, "price_table")
        with self._estimated_lock:
            self._estimated[request_id] = (table_usd, tally)

    def _settle(self, request_id: str, tally: Tally, response: VideoResponse | None) -> None:
        """The job's outcome: its reported cost replaces the table estimate counted at its start."""
        with self._estimated_lock:
            counted = self._estimated.pop(request_id, None)
        if counted is None or counted[1] is not tally:
            return  # settled already, or counted by another call (one interrupted) or build
        estimate = counted[0]
        usage = response.usage if response is not None else None
        actual, source = pricing.reported_or(usage, estimate)
        if source == "usage":
            tally.settle(estimate, actual)

    def _run_job(
        self,
        req: VideoRequest,
        step: str,
        job_key: str,
        journal: JobJournal,
        start_args: dict[str, Any],
        table_usd: float,
        tally: Tally,
        request_id: str | None,
        reattached: bool,
        method: str = "start",
    ) -> CallResult:
        prompt = req.prompt
        start = getattr(self._client.video, method)  # video.start, or video.extend_start
        reworded = False
        restarts = 0
        inline: dict[str, Any] | None = None  # data URIs built only if a job must be started
        while True:
            if request_id is None:
                if inline is None:
                    inline = {k: (v() if callable(v) else v) for k, v in start_args.items()}
                journal.started(job_key, f"{STARTING}{time.time():.0f}")
                try:
                    started = self._rpc(
                        "video",
                        step,
                        tally,
                        functools.partial(start, prompt=prompt, model=req.model, **inline),
                        paid=True,
                        table_usd=table_usd,
                    )
                except ModerationRefused as exc:
                    journal.finished(job_key)
                    if reworded:
                        raise self._blocked(step, "video", req, f"refused at submission: {exc}"[:200]) from None
                    reworded, prompt = True, self._reword(prompt)
                    tally.retries += 1
                    tally.meta["reworded"] = True
                    continue
                except BackendError:
                    # No job to re-attach to: refused (not billed), or possibly billed and
                    # reported now (the marker must not make the next build report it again).
                    journal.finished(job_key)
                    raise
                request_id = started.request_id
                self._count_start(request_id, tally, table_usd)
                # Persist the id before the first poll: a crash from here on loses no paid job.
                journal.started(job_key, request_id)
                reattached = False
            tally.meta["request_id"] = request_id
            try:
                result = self._poll(request_id, step, tally, req.progress)
            except BackendError as exc:
                if reattached and getattr(exc, "code", None) == "NOT_FOUND":
                    # The provider no longer knows the journaled job: start a new one.
                    journal.finished(job_key)
                    request_id, reattached = None, False
                    continue
                raise
            response = VideoResponse(result.response) if result.HasField("response") else None
            self._settle(request_id, tally, response)
            if result.status == deferred_pb2.DeferredStatus.EXPIRED:
                journal.finished(job_key)
                if restarts >= self.config.expired_restarts:
                    # final: a step retry would start (and pay for) more jobs
                    raise BackendError(f"{step}: the video job expired again after a restart")
                restarts += 1
                tally.retries += 1
                request_id = None
                continue
            if result.status == deferred_pb2.DeferredStatus.FAILED:
                journal.finished(job_key)
                code, message = "unknown", "no error details"
                if response is not None and result.response.HasField("error"):
                    code = result.response.error.code or code
                    message = result.response.error.message or message
                if is_moderation(code, message):
                    if reworded:
                        raise self._blocked(step, "video", req, f"job failed [{code}]")
                    reworded, prompt, request_id = True, self._reword(prompt), None
                    tally.retries += 1
                    tally.meta["reworded"] = True
                    continue
                raise VideoJobFailed(redact(f"{step}: video generation failed [{code}]: {message}"), code=code)
            # DONE
            if response is None:
                journal.finished(job_key)
                raise BackendError(f"{step}: the video job finished without a result", retryable=True)
            try:
                url = response.url
            except ValueError:
                journal.finished(job_key)
                if response.respect_moderation:
                    raise BackendError(f"{step}: xAI returned no video URL", retryable=True) from None
                if reworded:
                    raise self._blocked(step, "video", req, "result blocked") from None
                reworded, prompt, request_id = True, self._reword(prompt), None
                tally.retries += 1
                tally.meta["reworded"] = True
                continue
            try:
                self._download(url, req.dest, step, tally)
            except (AssetExpired, DownloadRefused):
                journal.finished(job_key)  # re-attaching would only find the same dead URL
                raise
            # Any other download error keeps the journal entry: the step's retry (or the
            # next build) re-attaches and downloads again without paying for a new job.
            journal.finished(job_key)
            tally.meta["duration_s"] = response.duration
            return tally.result(req.dest, "video")

    def _poll(self, request_id: str, step: str, tally: Tally, progress: Callable[[int], None] | None):
        """Poll until the job leaves PENDING; returns the GetDeferredVideo response."""
        deadline = time.monotonic() + self.config.video_timeout_s
        shown = None
        while True:
            result = self._rpc("video", step, tally, lambda: self._client.video.get(request_id), paid=False)
            if result.status in TERMINAL:
                return result
            percent = result.response.progress if result.HasField("response") else None
            if progress is not None and percent is not None and percent != shown:
                shown = percent
                try:
                    progress(int(percent))
                except Exception:  # a display hook never breaks a paid job
                    pass
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"{step}: video job {request_id} still pending after {self.config.video_timeout_s:.0f} s; "
                    f"the next build re-attaches to it"
                )  # final: STORYC_XAI_VIDEO_TIMEOUT is the polling limit, not a fifth of it
            self._closed.wait(self.config.poll_interval_s)  # close() ends the wait at once

    def _download(self, url: str, dest: Path, step: str, tally: Tally) -> Path:
        """Fetch the clip; a failure that may pass (truncated body, timeout, 5xx, reset) is
        fetched again, up to `download_attempts` in all. A gone URL or refused content is not."""
        attempts = self.config.download_attempts
        for attempt in range(attempts):
            try:
                return download(
                    url,
                    dest,
                    max_bytes=MAX_VIDEO_BYTES,
                    allowed_kinds=("mp4",),
                    allow_loopback_http=self._allow_loopback_http,
                )
            except AssetExpired as exc:
                raise AssetExpired(redact(f"{step}: {exc}")) from None
            except DownloadRefused as exc:
                raise DownloadRefused(redact(f"{step}: {exc}")) from None
            except DownloadError as exc:
                if not exc.retryable or attempt + 1 >= attempts:
                    raise DownloadError(
                        redact(f"{step}: {exc}; the job stays journaled: a retry downloads it again, paying nothing"),
                        retryable=exc.retryable,
                    ) from None
                tally.retries += 1
                self._closed.wait(min(2.0, self.config.retry_base_s * (2**attempt)))
        raise AssertionError("unreachable")
