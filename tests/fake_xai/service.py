"""A fake xAI gRPC service built on the SDK's own generated servicer bases.

Implements what storyc calls: Image/GenerateImage, Video/GenerateVideo +
GetDeferredVideo (PENDING for `pending_polls` polls, then DONE), Chat/GetCompletion
(answering the JSON schema of `chat.parse`). Result URLs point at a local
`AssetServer` serving real JPEGs and MP4s. Every request is recorded with its
metadata; faults are injected per method, consumed in order:

    fake.inject("GenerateImage", "resource_exhausted", times=2)

Requests the real service would refuse (empty prompt, more than 3 input images, a
duration outside 1-15 s, a video edit input over 8.7 s, inputs that are neither https nor
data URIs) end in INVALID_ARGUMENT, so a wrong call fails here as it would there.

Faults: unavailable, resource_exhausted, deadline_exceeded, echo_key (an error whose
details echo the authorization header), moderation, failed / expired (GenerateVideo:
the job ends so), asset_404, truncated / truncated_once (the result URL's body),
bad_json (GetCompletion).
"""

from __future__ import annotations

import base64
import itertools
import re
import threading
import time
from collections import defaultdict, deque
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from xai_sdk.proto import (
    chat_pb2,
    chat_pb2_grpc,
    deferred_pb2,
    image_pb2,
    image_pb2_grpc,
    usage_pb2,
    video_pb2,
    video_pb2_grpc,
)

from .answers import answer_for
from .assets import AssetServer
from .media import make_jpeg, make_mp4, probe_duration

RPC_FAULTS = {
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "resource_exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "deadline_exceeded": grpc.StatusCode.DEADLINE_EXCEEDED,
    "echo_key": grpc.StatusCode.PERMISSION_DENIED,
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
}
ASSET_FAULTS = {"asset_404": "404", "truncated": "truncated", "truncated_once": "truncated_once"}
METHODS = ("GenerateImage", "GenerateVideo", "GetDeferredVideo", "GetCompletion")


@dataclass
class Recorded:
    method: str
    request: Any  # the request proto
    metadata: dict[str, str]
    at: float

    @property
    def prompt(self) -> str:
        return getattr(self.request, "prompt", "")

    def image_urls(self) -> list[str]:
        """Input image URLs in order: `image` (single edit / image→video) or `images` (multi edit)."""
        r = self.request
        if self.method == "GetCompletion":
            return [c.image_url.image_url for m in r.messages for c in m.content if c.HasField("image_url")]
        urls = []
        if r.HasField("image"):
            urls.append(r.image.image_url)
        urls.extend(i.image_url for i in getattr(r, "images", []))
        return urls

    def texts(self) -> list[str]:
        if self.method != "GetCompletion":
            return [self.prompt]
        return [c.text for m in self.request.messages for c in m.content if c.text]


@dataclass
class Job:
    request: video_pb2.GenerateVideoRequest
    polls_left: int
    outcome: str = "done"  # done | failed | expired | moderation
    asset_mode: str = "ok"
    url: str = ""
    duration: float = 0.0


# What the real service refuses (xai-facts.md limits), so a wrong call fails here as there.
MAX_IMAGE_INPUTS = 3
VIDEO_SECONDS = (1, 15)
VIDEO_EDIT_MAX_S = 8.7


def request_problem(method: str, request) -> str | None:
    """Why the real service would refuse `request` (INVALID_ARGUMENT), else None."""
    if not request.prompt.strip():
        return "prompt is empty"
    if not request.model:
        return "model is empty"
    inputs = ([request.image.image_url] if request.HasField("image") else []) + [
        i.image_url for i in getattr(request, "images", [])
    ]
    if method == "GenerateImage":
        if request.HasField("image") and len(request.images):
            return "image and images are exclusive"
        if len(inputs) > MAX_IMAGE_INPUTS:
            return f"at most {MAX_IMAGE_INPUTS} input images, got {len(inputs)}"
    if method == "GenerateVideo":
        if request.HasField("image") and request.HasField("video"):
            return "image and video are exclusive"
        if request.HasField("duration") and not VIDEO_SECONDS[0] <= request.duration <= VIDEO_SECONDS[1]:
            return f"duration must be {VIDEO_SECONDS[0]}-{VIDEO_SECONDS[1]} s, got {request.duration}"
        if request.HasField("video"):
            url = request.video.url
            if not (url.startswith("https://") or url.startswith("data:video/")):
                return "video url must be https or a data:video/ URI"
            data = decode_data_uri(url)
            seconds = probe_duration(data) if data else None
            if seconds is not None and seconds > VIDEO_EDIT_MAX_S + 0.05:
                return f"video edit input is {seconds:.2f} s, over {VIDEO_EDIT_MAX_S} s"
    for url in inputs:
        if not (url.startswith("https://") or url.startswith("data:image/")):
            return "input images must be https URLs or data:image/ URIs"
        if url.startswith("data:") and decode_data_uri(url) is None:
            return "malformed data URI"
    return None


def decode_data_uri(uri: str) -> bytes | None:
    match = re.match(r"data:[\w/+.-]+;base64,(.*)$", uri, re.S)
    return base64.b64decode(match.group(1)) if match else None


@dataclass
class FakeXai:
    pending_polls: int = 2
    report_media_cost: bool = False  # set usage.cost_in_usd_ticks on media responses
    default_score: float = 0.92
    scores: deque = field(default_factory=deque)  # next ConsistencyScore values, then default_score
    plan_patch: Any = None  # callable(dict) -> dict applied to the StoryPlan answer (bad plans)
    score_fn: Any = None  # callable(user_text) -> float | None, consulted before `scores`

    def __post_init__(self) -> None:
        self.assets = AssetServer()
        self.calls: list[Recorded] = []
        self.jobs: dict[str, Job] = {}
        self._faults: dict[str, list[list]] = defaultdict(list)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: grpc.Server | None = None
        self.port = 0

    # ── lifecycle ─────────────────────────────────────────────────────────
    def start(self) -> FakeXai:
        self.assets.start()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)],
        )
        image_pb2_grpc.add_ImageServicer_to_server(_Image(self), server)
        video_pb2_grpc.add_VideoServicer_to_server(_Video(self), server)
        chat_pb2_grpc.add_ChatServicer_to_server(_Chat(self), server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
        self.assets.stop()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self, api_key: str) -> dict[str, str]:
        """Environment variables pointing storyc's xai backend at this fake."""
        return {"XAI_API_KEY": api_key, "XAI_API_HOST": self.host, "STORYC_XAI_INSECURE": "1"}

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.jobs.clear()
            self._faults.clear()
            self.scores.clear()
            self.plan_patch = None
            self.score_fn = None

    # ── faults and records ────────────────────────────────────────────────
    def inject(self, method: str, fault: str, times: int = 1) -> None:
        assert method in METHODS, method
        assert fault in RPC_FAULTS or fault in ASSET_FAULTS or fault in ("moderation", "failed", "expired", "bad_json")
        with self._lock:
            self._faults[method].append([fault, times])

    def pending_faults(self) -> dict[str, list]:
        with self._lock:
            return {m: [f for f in fs if f[1] > 0] for m, fs in self._faults.items() if any(f[1] > 0 for f in fs)}

    def requests(self, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [c for c in self.calls if method is None or c.method == method]

    def count(self, method: str) -> int:
        return len(self.requests(method))

    def _enter(self, method: str, request, context) -> str | None:
        """Record the call; apply an RPC fault (aborts) or return a result fault."""
        metadata = dict(context.invocation_metadata())
        with self._lock:
            self.calls.append(Recorded(method, request, metadata, time.monotonic()))
            fault = None
            for entry in self._faults[method]:
                if entry[1] > 0:
                    entry[1] -= 1
                    fault = entry[0]
                    break
        if fault in RPC_FAULTS:
            details = f"fake {fault}"
            if fault == "echo_key":
                details = f"invalid credentials: authorization={metadata.get('authorization', '')}"
            context.abort(RPC_FAULTS[fault], details)
        return fault

    def _validate(self, method: str, request, context) -> None:
        problem = request_problem(method, request)
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid {method} request: {problem}")

    def _media_usage(self, usd: float) -> usage_pb2.SamplingUsage:
        if self.report_media_cost:
            return usage_pb2.SamplingUsage(cost_in_usd_ticks=round(usd / 1e-10))
        return usage_pb2.SamplingUsage()

    def _next_score(self, user_text: str = "") -> float:
        if self.score_fn is not None:
            chosen = self.score_fn(user_text)
            if chosen is not None:
                return chosen
        with self._lock:
            return self.scores.popleft() if self.scores else self.default_score


_IMG_RATIO = {
    image_pb2.IMG_ASPECT_RATIO_1_1: "1:1",
    image_pb2.IMG_ASPECT_RATIO_16_9: "16:9",
    image_pb2.IMG_ASPECT_RATIO_9_16: "9:16",
    image_pb2.IMG_ASPECT_RATIO_4_3: "4:3",
    image_pb2.IMG_ASPECT_RATIO_3_4: "3:4",
    image_pb2.IMG_ASPECT_RATIO_3_2: "3:2",
    image_pb2.IMG_ASPECT_RATIO_2_3: "2:3",
}
_VID_RATIO = {
    video_pb2.VIDEO_ASPECT_RATIO_1_1: "1:1",
    video_pb2.VIDEO_ASPECT_RATIO_16_9: "16:9",
    video_pb2.VIDEO_ASPECT_RATIO_9_16: "9:16",
    video_pb2.VIDEO_ASPECT_RATIO_4_3: "4:3",
    video_pb2.VIDEO_ASPECT_RATIO_3_4: "3:4",
    video_pb2.VIDEO_ASPECT_RATIO_3_2: "3:2",
    video_pb2.VIDEO_ASPECT_RATIO_2_3: "2:3",
}


class _Image(image_pb2_grpc.ImageServicer):
    def __init__(self, fake: FakeXai):
        self.fake = fake

    def GenerateImage(self, request, context):
        fault = self.fake._enter("GenerateImage", request, context)
        self.fake._validate("GenerateImage", request, context)
        ratio = _IMG_RATIO.get(request.aspect_ratio, "16:9")
        n = request.n or 1
        images = []
        for _ in range(n):
            if fault == "moderation":
                images.append(image_pb2.GeneratedImage(url="", respect_moderation=False))
                continue
            body = make_jpeg(ratio, seed=next(self.fake._ids))
            url = self.fake.assets.add(body, "jpg", ASSET_FAULTS.get(fault or "", "ok"))
            images.append(image_pb2.GeneratedImage(url=url, respect_moderation=True))
        n_inputs = (1 if request.HasField("image") else 0) + len(request.images)
        return image_pb2.ImageResponse(
            images=images, model=request.model, usage=self.fake._media_usage(0.02 * (n + n_inputs))
        )


class _Video(video_pb2_grpc.VideoServicer):
    def __init__(self, fake: FakeXai):
        self.fake = fake

    def GenerateVideo(self, request, context):
        fault = self.fake._enter("GenerateVideo", request, context)
        self.fake._validate("GenerateVideo", request, context)
        request_id = f"vid-{next(self.fake._ids):06d}"
        duration = float(request.duration or 8)
        if request.HasField("video"):  # an edit keeps its input's duration
            data = decode_data_uri(request.video.url)
            duration = (probe_duration(data) if data else None) or duration
        job = Job(request=request, polls_left=self.fake.pending_polls, duration=duration)
        if fault in ("failed", "expired", "moderation"):
            job.outcome = fault
        job.asset_mode = ASSET_FAULTS.get(fault or "", "ok")
        with self.fake._lock:
            self.fake.jobs[request_id] = job
        return deferred_pb2.StartDeferredResponse(request_id=request_id)

    def GetDeferredVideo(self, request, context):
        self.fake._enter("GetDeferredVideo", request, context)
        with self.fake._lock:
            job = self.fake.jobs.get(request.request_id)
            if job is not None and job.polls_left > 0:
                job.polls_left -= 1
                return video_pb2.GetDeferredVideoResponse(status=deferred_pb2.PENDING)
        if job is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no deferred request {request.request_id}")
        if job.outcome == "expired":
            return video_pb2.GetDeferredVideoResponse(status=deferred_pb2.EXPIRED)
        if job.outcome == "failed":
            return video_pb2.GetDeferredVideoResponse(
                status=deferred_pb2.FAILED,
                response=video_pb2.VideoResponse(
                    error=video_pb2.VideoError(code="INTERNAL", message="the fake renderer gave up")
                ),
            )
        if job.outcome == "moderation":
            video = video_pb2.GeneratedVideo(url="", duration=int(job.duration), respect_moderation=False)
        else:
            if not job.url:
                ratio = _VID_RATIO.get(job.request.aspect_ratio, "16:9")
                job.url = self.fake.assets.add(make_mp4(job.duration, ratio), "mp4", job.asset_mode)
            video = video_pb2.GeneratedVideo(url=job.url, duration=round(job.duration), respect_moderation=True)
        per_s = 0.05 if job.request.resolution == video_pb2.VIDEO_RESOLUTION_480P else 0.07
        return video_pb2.GetDeferredVideoResponse(
            status=deferred_pb2.DONE,
            response=video_pb2.VideoResponse(
                video=video, model=job.request.model, usage=self.fake._media_usage(per_s * job.duration), progress=100
            ),
        )


class _Chat(chat_pb2_grpc.ChatServicer):
    def __init__(self, fake: FakeXai):
        self.fake = fake

    def GetCompletion(self, request, context):
        fault = self.fake._enter("GetCompletion", request, context)
        user_text = "\n".join(
            c.text for m in request.messages if m.role == chat_pb2.ROLE_USER for c in m.content if c.text
        )
        if fault == "bad_json":
            content = '{"overall_score": "not a number"'
        else:
            content = answer_for(
                request.response_format.schema, user_text, self.fake._next_score(user_text), self.fake.plan_patch
            )
        n_images = sum(1 for m in request.messages for c in m.content if c.HasField("image_url"))
        prompt_tokens = len(user_text.split()) * 2 + 1_500 * n_images
        completion_tokens = len(content.split()) * 2
        return chat_pb2.GetChatCompletionResponse(
            id=f"chat-{next(self.fake._ids)}",
            model=request.model,
            outputs=[
                chat_pb2.CompletionOutput(
                    index=0,
                    message=chat_pb2.CompletionMessage(role=chat_pb2.ROLE_ASSISTANT, content=content),
                )
            ],
            usage=usage_pb2.SamplingUsage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )
