"""A strict fake of the xAI gRPC service, built on the SDK's own generated servicer bases.

Implements what storyc calls: Image/GenerateImage (with `n`), Video/GenerateVideo and
Video/ExtendVideo + GetDeferredVideo (PENDING with a rising `progress` for `pending_polls`
polls, then DONE; an extension's result holds its input plus the new seconds), Chat/GetCompletion
(answering the JSON schema of the request's response_format). Result URLs point at a
local `AssetServer` serving real JPEGs and MP4s; they expire after `url_ttl_s`.

Strict: it refuses what the real service refuses (rules.py: parameter values per kind, n,
durations, edit requests carrying duration/ratio/resolution, more than 3 edit inputs,
more than 7 reference images, reference clips over 10 s or above 720p, last_frame,
keyframes, voices and a first frame beside references on any model but
grok-imagine-video-1.5, 1080p elsewhere, extensions outside 2-10 s or of inputs outside
2-15 s, per-input size caps, a data URI whose MIME type does not match its bytes,
over-long prompts; rate limits per model when `rate_limits` is set; messages over 20 MiB).

It keeps the bill: `bills` lists every request the service would charge for, with its
price (rules.py), so a test compares what storyc reported with what was billed. Media and
chat responses report their cost (`usage.cost_in_usd_ticks`) unless `report_cost` is off.
Media are deterministic: the same request gives the same bytes, so a build that met
faults can be compared byte for byte with one that did not.

Faults are injected per method, consumed in order (optionally only by requests `match`
accepts):

    fake.inject("GenerateImage", "resource_exhausted", times=2)
    fake.inject("GenerateImage", "moderation", match=is_edit)

RPC faults (not billed unless said): unavailable, resource_exhausted, invalid_argument,
echo_key (an error whose details echo the authorization header), moderation_rpc (refused
at submission on content grounds), deadline_exceeded (paid methods: the work is done and
billed, the answer lost; polls: just late), oversized_answer (billed; the answer is over
the client's 20 MiB receive cap).
Result faults (billed): moderation (image/video without bytes, respect_moderation=false),
empty_images (an ImageResponse with no image), failed (job FAILED "internal_error"),
failed_moderation (job FAILED "content_moderation"), expired (job EXPIRED), bad_json.
Asset faults on the result URL (GenerateVideo/GenerateImage with url format): asset_404,
truncated, truncated_once, http_500_once, reset_once.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
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

from . import rules
from .answers import answer_for
from .assets import AssetServer
from .media import make_jpeg, make_mp4, probe_duration, probe_height
from .rules import decode_data_uri

RPC_FAULTS = {
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "resource_exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "echo_key": grpc.StatusCode.PERMISSION_DENIED,
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "moderation_rpc": grpc.StatusCode.INVALID_ARGUMENT,
}
BILLED_RPC_FAULTS = ("deadline_exceeded", "oversized_answer")  # the work is done, the answer lost
ASSET_FAULTS = {
    "asset_404": "404",
    "truncated": "truncated",
    "truncated_once": "truncated_once",
    "http_500_once": "http_500_once",
    "reset_once": "reset_once",
}
RESULT_FAULTS = ("moderation", "empty_images", "failed", "failed_moderation", "expired", "bad_json")
FAULTS = (*RPC_FAULTS, *BILLED_RPC_FAULTS, *ASSET_FAULTS, *RESULT_FAULTS)
METHODS = ("GenerateImage", "GenerateVideo", "ExtendVideo", "GetDeferredVideo", "GetCompletion")
FAILED_CODES = {
    "failed": ("internal_error", "the fake renderer gave up"),
    "failed_moderation": ("content_moderation", "the video was blocked by content moderation"),
}
MODERATION_DETAILS = "Your request was rejected by content moderation (usage guidelines)."
OVERSIZED = "x" * (rules.MESSAGE_CAP + 1024)  # an answer over the client's receive cap


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
        if r.HasField("image") if hasattr(r, "image") else False:
            urls.append(r.image.image_url)
        urls.extend(i.image_url for i in getattr(r, "images", []))
        return urls

    def reference_urls(self) -> list[str]:
        """A video request's reference images, in order."""
        return [i.image_url for i in getattr(self.request, "reference_images", [])]

    def last_frame_url(self) -> str | None:
        r = self.request
        return r.last_frame.image_url if self.method == "GenerateVideo" and r.HasField("last_frame") else None

    def texts(self) -> list[str]:
        if self.method != "GetCompletion":
            return [self.prompt]
        return [c.text for m in self.request.messages for c in m.content if c.text]


@dataclass
class Bill:
    method: str
    model: str
    usd: float
    what: str  # "image x1", "video job vid-000004", "chat", and the fault that left it unanswered
    key: str = ""  # digest of the request's content: the same asset asked (and paid) for twice shares it


@dataclass
class Job:
    request: video_pb2.GenerateVideoRequest
    polls_left: int
    usd: float
    outcome: str = "done"  # done | failed | failed_moderation | expired | moderation
    asset_mode: str = "ok"
    url: str = ""
    duration: float = 0.0
    polls: int = 0
    resolution: int = 0
    ratio: str = "16:9"


@dataclass
class FakeXai:
    pending_polls: int = 2
    report_cost: bool = True  # usage.cost_in_usd_ticks on every billed response
    default_score: float = 0.92
    scores: deque = field(default_factory=deque)  # next ConsistencyScore values, then default_score
    plan_patch: Any = None  # callable(dict) -> dict applied to the StoryPlan answer (bad plans)
    score_fn: Any = None  # callable(user_text) -> float | None, consulted before `scores`
    url_ttl_s: float = 24 * 3600.0  # result URLs expire (video URLs: about 24 h)
    # requests per second allowed per model, a token bucket holding `rate_burst` (grok-imagine-video:
    # about 70 a minute, docs); RESOURCE_EXHAUSTED beyond, not billed. Empty: no limit.
    rate_limits: dict[str, float] = field(default_factory=dict)
    rate_burst: float = 5.0
    price_factor: float = 1.0  # the service's prices change (a promotion): reported usage must win

    def __post_init__(self) -> None:
        self.assets = AssetServer()
        self.calls: list[Recorded] = []
        self.bills: list[Bill] = []
        self.jobs: dict[str, Job] = {}
        self.rate_refusals = 0
        self._faults: dict[str, list[list]] = defaultdict(list)
        self._buckets: dict[str, list[float]] = {}  # model → [tokens, last refill]
        self._made: dict[str, tuple[int, str]] = {}  # sha256 of a clip this fake made → (resolution, ratio)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: grpc.Server | None = None
        self.port = 0

    # ── lifecycle ─────────────────────────────────────────────────────────
    def start(self) -> FakeXai:
        self.assets.start()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16),
            options=[
                ("grpc.max_receive_message_length", rules.MESSAGE_CAP),
                ("grpc.max_send_message_length", 64 << 20),  # so oversized_answer can be sent
            ],
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
            self.bills.clear()
            self.jobs.clear()
            self._faults.clear()
            self._buckets.clear()
            self.scores.clear()
            self.rate_refusals = 0
            self.plan_patch = None
            self.score_fn = None
            self.pending_polls = 2
            self.report_cost = True
            self.url_ttl_s = 24 * 3600.0
            self.assets.clock = time.monotonic
            self.rate_limits = {}
            self.rate_burst = 5.0
            self.price_factor = 1.0

    # ── faults, records and the bill ──────────────────────────────────────
    def inject(self, method: str, fault: str, times: int = 1, match: Callable[[Any], bool] | None = None) -> None:
        assert method in METHODS, method
        assert fault in FAULTS, fault
        with self._lock:
            self._faults[method].append([fault, times, match])

    def pending_faults(self) -> dict[str, list]:
        with self._lock:
            return {m: [f[:2] for f in fs if f[1] > 0] for m, fs in self._faults.items() if any(f[1] > 0 for f in fs)}

    def requests(self, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [c for c in self.calls if method is None or c.method == method]

    def count(self, method: str) -> int:
        return len(self.requests(method))

    def billed_count(self) -> int:
        with self._lock:
            return len(self.bills)

    def billed_usd(self) -> float:
        with self._lock:
            return round(sum(b.usd for b in self.bills), 6)

    def _bill(self, method: str, request, usd: float, what: str) -> None:
        key = hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()[:16]
        with self._lock:
            self.bills.append(Bill(method, request.model, round(usd, 8), what, key))

    def _usage(self, usd: float, **tokens: int) -> usage_pb2.SamplingUsage:
        usage = usage_pb2.SamplingUsage(**tokens)
        if self.report_cost:
            usage.cost_in_usd_ticks = round(usd / 1e-10)
        return usage

    def _enter(self, method: str, request, context, model: str) -> str | None:
        """Record the call; refuse it over the model's rate limit; apply an RPC fault
        (aborts) or return a result fault."""
        metadata = dict(context.invocation_metadata())
        now = time.monotonic()
        with self._lock:
            self.calls.append(Recorded(method, request, metadata, now))
            rate = self.rate_limits.get(model)
            over = False
            if rate is not None:
                bucket = self._buckets.setdefault(model, [self.rate_burst, now])
                bucket[0] = min(self.rate_burst, bucket[0] + (now - bucket[1]) * rate)
                bucket[1] = now
                over = bucket[0] < 1.0
                if over:
                    self.rate_refusals += 1
                else:
                    bucket[0] -= 1.0
            fault = None
            if not over:
                for entry in self._faults[method]:
                    if entry[1] > 0 and (entry[2] is None or entry[2](request)):
                        entry[1] -= 1
                        fault = entry[0]
                        break
        if over:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit exceeded for model {model}")
        if fault in RPC_FAULTS:
            details = f"fake {fault}"
            if fault == "echo_key":
                details = f"invalid credentials: authorization={metadata.get('authorization', '')}"
            elif fault == "moderation_rpc":
                details = MODERATION_DETAILS
            context.abort(RPC_FAULTS[fault], details)
        return fault

    def _made_as(self, data: bytes) -> tuple[int, str]:
        """(resolution, ratio) of an input clip: as this fake made it, else by its frame height."""
        with self._lock:
            made = self._made.get(hashlib.sha256(data).hexdigest())
        if made is not None:
            return made
        height = probe_height(data) or 720
        return (video_pb2.VIDEO_RESOLUTION_480P if height <= 480 else video_pb2.VIDEO_RESOLUTION_720P), "16:9"

    def _refuse_invalid(self, problem: str | None, method: str, context) -> None:
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid {method} request: {problem}")

    def _next_score(self, user_text: str = "") -> float:
        if self.score_fn is not None:
            chosen = self.score_fn(user_text)
            if chosen is not None:
                return chosen
        with self._lock:
            return self.scores.popleft() if self.scores else self.default_score


def _seed(*parts: Any) -> int:
    """A deterministic seed from a request's content: the same request, the same media."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "big")


def _lost_answer(fault: str | None, context) -> None:
    """After billing: the answer never reaches the client whole."""
    if fault == "deadline_exceeded":
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")


_IMG_RATIO = {v: k.removeprefix("IMG_ASPECT_RATIO_").replace("_", ":") for k, v in image_pb2.ImageAspectRatio.items()}
_VID_RATIO = {v: k.removeprefix("VIDEO_ASPECT_RATIO_").replace("_", ":") for k, v in video_pb2.VideoAspectRatio.items()}
_MP4_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3")
_RESOLUTION_ORDER = [
    video_pb2.VIDEO_RESOLUTION_UNSPECIFIED,
    video_pb2.VIDEO_RESOLUTION_480P,
    video_pb2.VIDEO_RESOLUTION_720P,
    video_pb2.VIDEO_RESOLUTION_1080P,
]


class _Image(image_pb2_grpc.ImageServicer):
    def __init__(self, fake: FakeXai):
        self.fake = fake

    def GenerateImage(self, request, context):
        fake = self.fake
        fault = fake._enter("GenerateImage", request, context, request.model)
        fake._refuse_invalid(rules.image_problem(request), "GenerateImage", context)
        ratio = _IMG_RATIO.get(request.aspect_ratio, "16:9")
        if ratio not in ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3"):
            ratio = "16:9"
        n = request.n or 1
        n_inputs = (1 if request.HasField("image") else 0) + len(request.images)
        usd = rules.image_usd(n, n_inputs) * fake.price_factor
        fake._bill("GenerateImage", request, usd, f"image x{n}" + (f" ({fault})" if fault else ""))
        _lost_answer(fault, context)
        inputs = tuple(
            hashlib.sha256(u.encode()).hexdigest() for u in Recorded("GenerateImage", request, {}, 0).image_urls()
        )
        images = []
        for index in range(n if fault != "empty_images" else 0):
            if fault == "moderation":
                images.append(image_pb2.GeneratedImage(respect_moderation=False))
                continue
            body = make_jpeg(ratio, seed=_seed(request.model, request.prompt, inputs, ratio, index))
            if fault == "oversized_answer":
                images.append(image_pb2.GeneratedImage(base64=OVERSIZED, respect_moderation=True))
            elif request.format == image_pb2.IMG_FORMAT_BASE64:
                encoded = "data:image/jpeg;base64," + base64.b64encode(body).decode("ascii")
                images.append(image_pb2.GeneratedImage(base64=encoded, respect_moderation=True))
            else:
                url = fake.assets.add(body, "jpg", ASSET_FAULTS.get(fault or "", "ok"), fake.url_ttl_s)
                images.append(image_pb2.GeneratedImage(url=url, respect_moderation=True))
        return image_pb2.ImageResponse(images=images, model=request.model, usage=fake._usage(usd))


class _Video(video_pb2_grpc.VideoServicer):
    def __init__(self, fake: FakeXai):
        self.fake = fake

    def GenerateVideo(self, request, context):
        fake = self.fake
        fault = fake._enter("GenerateVideo", request, context, request.model)
        fake._refuse_invalid(rules.video_problem(request), "GenerateVideo", context)
        request_id = f"vid-{next(fake._ids):06d}"
        duration = float(request.duration or 8)
        input_s = 0.0
        resolution = request.resolution
        ratio = _VID_RATIO.get(request.aspect_ratio, "16:9")
        if request.HasField("video"):  # an edit keeps its input's duration and resolution, and bills the input
            data = decode_data_uri(request.video.url) or b""
            input_s = probe_duration(data) or duration
            duration = input_s
            resolution, ratio = fake._made_as(data)
        usd = rules.video_usd(request.model, resolution, duration, input_s) * fake.price_factor
        job = Job(
            request=request,
            polls_left=fake.pending_polls,
            usd=usd,
            duration=duration,
            resolution=resolution,
            ratio=ratio if ratio in _MP4_RATIOS else "16:9",
        )
        if fault in ("failed", "failed_moderation", "expired", "moderation"):
            job.outcome = fault
        job.asset_mode = ASSET_FAULTS.get(fault or "", "ok")
        with fake._lock:
            fake.jobs[request_id] = job
        fake._bill("GenerateVideo", request, usd, f"video job {request_id}" + (f" ({fault})" if fault else ""))
        _lost_answer(fault, context)
        return deferred_pb2.StartDeferredResponse(request_id=request_id)

    def ExtendVideo(self, request, context):
        """The input clip continued by `duration` new seconds (6 by default): the result holds
        both, at the input's resolution capped at 720p; billed for the new seconds."""
        fake = self.fake
        fault = fake._enter("ExtendVideo", request, context, request.model)
        fake._refuse_invalid(rules.extend_problem(request), "ExtendVideo", context)
        request_id = f"vid-{next(fake._ids):06d}"
        data = decode_data_uri(request.video.url) or b""
        input_s = probe_duration(data) or 0.0
        added = float(request.duration or 6)
        resolution, ratio = fake._made_as(data)
        resolution = min(resolution, video_pb2.VIDEO_RESOLUTION_720P, key=_RESOLUTION_ORDER.index)
        usd = rules.video_usd(request.model, resolution, added) * fake.price_factor
        job = Job(
            request=request,
            polls_left=fake.pending_polls,
            usd=usd,
            duration=input_s + added,
            resolution=resolution,
            ratio=ratio,
        )
        if fault in ("failed", "failed_moderation", "expired", "moderation"):
            job.outcome = fault
        job.asset_mode = ASSET_FAULTS.get(fault or "", "ok")
        with fake._lock:
            fake.jobs[request_id] = job
        fake._bill("ExtendVideo", request, usd, f"extension job {request_id}" + (f" ({fault})" if fault else ""))
        _lost_answer(fault, context)
        return deferred_pb2.StartDeferredResponse(request_id=request_id)

    def GetDeferredVideo(self, request, context):
        fake = self.fake
        with fake._lock:
            job = fake.jobs.get(request.request_id)
        fault = fake._enter("GetDeferredVideo", request, context, job.request.model if job else "")
        if fault == "deadline_exceeded":
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if job is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no deferred request {request.request_id}")
        with fake._lock:
            job.polls += 1
            if job.polls_left > 0:
                job.polls_left -= 1
                progress = min(95, 100 * job.polls // (job.polls + job.polls_left + 1))
                pending = video_pb2.GetDeferredVideoResponse(
                    status=deferred_pb2.PENDING, response=video_pb2.VideoResponse(progress=progress)
                )
                if fault == "oversized_answer":
                    pending.response.model = OVERSIZED
                return pending
        usage = fake._usage(job.usd)
        if job.outcome == "expired":
            return video_pb2.GetDeferredVideoResponse(status=deferred_pb2.EXPIRED)
        if job.outcome in FAILED_CODES:
            code, message = FAILED_CODES[job.outcome]
            return video_pb2.GetDeferredVideoResponse(
                status=deferred_pb2.FAILED,
                response=video_pb2.VideoResponse(
                    model=job.request.model, usage=usage, error=video_pb2.VideoError(code=code, message=message)
                ),
            )
        if job.outcome == "moderation":
            video = video_pb2.GeneratedVideo(url="", duration=int(job.duration), respect_moderation=False)
        else:
            if not job.url:
                seed = _seed(job.request.SerializeToString(deterministic=True))
                body = make_mp4(job.duration, job.ratio, seed=seed)
                with fake._lock:
                    fake._made[hashlib.sha256(body).hexdigest()] = (job.resolution, job.ratio)
                job.url = fake.assets.add(body, "mp4", job.asset_mode, fake.url_ttl_s)
            video = video_pb2.GeneratedVideo(url=job.url, duration=round(job.duration), respect_moderation=True)
        if fault == "oversized_answer":
            video.url = OVERSIZED
        return video_pb2.GetDeferredVideoResponse(
            status=deferred_pb2.DONE,
            response=video_pb2.VideoResponse(video=video, model=job.request.model, usage=usage, progress=100),
        )


class _Chat(chat_pb2_grpc.ChatServicer):
    def __init__(self, fake: FakeXai):
        self.fake = fake

    def GetCompletion(self, request, context):
        fake = self.fake
        fault = fake._enter("GetCompletion", request, context, request.model)
        fake._refuse_invalid(rules.chat_problem(request), "GetCompletion", context)
        user_text = "\n".join(
            c.text for m in request.messages if m.role == chat_pb2.ROLE_USER for c in m.content if c.text
        )
        if fault == "bad_json":
            content = '{"overall_score": "not a number"'
        else:
            content = answer_for(
                request.response_format.schema, user_text, fake._next_score(user_text), fake.plan_patch
            )
        n_images = sum(1 for m in request.messages for c in m.content if c.HasField("image_url"))
        all_text = " ".join(c.text for m in request.messages for c in m.content if c.text)
        prompt_tokens = len(all_text.split()) * 2 + 1_500 * n_images
        completion_tokens = len(content.split()) * 2
        usd = fake.price_factor * (
            prompt_tokens * rules.CHAT_USD_PER_TOKEN["input"] + completion_tokens * rules.CHAT_USD_PER_TOKEN["output"]
        )
        fake._bill("GetCompletion", request, usd, "chat" + (f" ({fault})" if fault else ""))
        _lost_answer(fault, context)
        if fault == "oversized_answer":
            content = OVERSIZED
        return chat_pb2.GetChatCompletionResponse(
            id=f"chat-{next(fake._ids)}",
            model=request.model,
            outputs=[
                chat_pb2.CompletionOutput(
                    index=0,
                    message=chat_pb2.CompletionMessage(role=chat_pb2.ROLE_ASSISTANT, content=content),
                )
            ],
            usage=fake._usage(
                usd,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )
