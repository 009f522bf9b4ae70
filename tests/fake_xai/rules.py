"""What the real xAI service refuses (INVALID_ARGUMENT) and what it charges, as the fake
applies them. Limits are the public ones in ../shared/design/xai-facts.md; where the docs
give no number (prompt length, per-input size) the fake uses a plausible one and says so.

The prices are the fake's own copy, deliberately not imported from storyc: the fake is
the service, and storyc's table has to agree with it, not the other way round.
"""

from __future__ import annotations

import base64
import re

from xai_sdk.proto import chat_pb2, image_pb2, video_pb2

from .media import probe_duration

MAX_PROMPT_CHARS = 4096  # (not documented: the length the fake refuses beyond)
MAX_IMAGE_INPUTS = 3  # an image edit
MAX_REFERENCE_IMAGES = 7  # reference-to-video
MAX_INPUT_IMAGE_BYTES = 10 << 20  # one input image, decoded (chat images: 10 MiB, docs)
MAX_N = 10  # images per request
VIDEO_SECONDS = (1, 15)
REFERENCE_VIDEO_MAX_S = 10
VIDEO_EDIT_MAX_S = 8.7
EXTENSION_SECONDS = (2, 10)  # one extension's new seconds (docs; the SDK docstring says 1-10)
EXTENSION_INPUT_S = (2, 15)  # the clip an extension continues (docs; the SDK docstring says up to 30)
MAX_KEYFRAMES = 4
MAX_REFERENCE_AUDIOS = 3
MESSAGE_CAP = 20 << 20  # gRPC messages each way
# What only grok-imagine-video-1.5 (and its -preview alias) takes: the SDK says so of
# last_frame, keyframes and reference_audios; a first frame beside reference images is the
# 1.5 notes' "image_url together with references pins the first frame"; and 1080p.
ONLY_1_5 = "grok-imagine-video-1.5"

IMAGE_RATIOS = {v for k, v in image_pb2.ImageAspectRatio.items() if k != "IMG_ASPECT_RATIO_INVALID"}
IMAGE_RESOLUTIONS = {image_pb2.IMG_RESOLUTION_1K, image_pb2.IMG_RESOLUTION_2K}
IMAGE_FORMATS = {image_pb2.IMG_FORMAT_URL, image_pb2.IMG_FORMAT_BASE64}
VIDEO_RATIOS = {v for k, v in video_pb2.VideoAspectRatio.items() if k != "VIDEO_ASPECT_RATIO_UNSPECIFIED"}
VIDEO_RESOLUTIONS = {video_pb2.VIDEO_RESOLUTION_480P, video_pb2.VIDEO_RESOLUTION_720P}

# ─── prices (USD) ────────────────────────────────────────────────────────────
IMAGE_USD = 0.02
IMAGE_INPUT_USD = 0.002
VIDEO_USD_PER_S = {
    "grok-imagine-video": {"480p": 0.05, "720p": 0.07},
    "grok-imagine-video-1.5": {"480p": 0.08, "720p": 0.14, "1080p": 0.25},
}
VIDEO_INPUT_USD_PER_S = 0.01
CHAT_USD_PER_TOKEN = {"input": 0.20e-6, "output": 0.50e-6}
_RESOLUTION_NAME = {
    video_pb2.VIDEO_RESOLUTION_480P: "480p",
    video_pb2.VIDEO_RESOLUTION_720P: "720p",
    video_pb2.VIDEO_RESOLUTION_1080P: "1080p",
}


def is_1_5(model: str) -> bool:
    return model.removesuffix("-preview") == ONLY_1_5


def offers_1080p(model: str) -> bool:
    return is_1_5(model)


def video_usd(model: str, resolution: int, duration_s: float, input_s: float = 0.0) -> float:
    row = VIDEO_USD_PER_S.get(model.removesuffix("-preview"), VIDEO_USD_PER_S["grok-imagine-video"])
    per_s = row.get(_RESOLUTION_NAME.get(resolution, "720p"), max(row.values()))
    return per_s * duration_s + VIDEO_INPUT_USD_PER_S * input_s


def image_usd(n: int, n_inputs: int) -> float:
    return IMAGE_USD * n + IMAGE_INPUT_USD * n_inputs


# ─── inputs ──────────────────────────────────────────────────────────────────
_DATA_URI = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)$", re.S)
_MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG", "image/webp": b"RIFF"}


def decode_data_uri(uri: str) -> bytes | None:
    match = _DATA_URI.match(uri)
    return base64.b64decode(match.group(2)) if match else None


def input_problem(url: str, kind: str) -> str | None:
    """Why the service would refuse one input URL of `kind` ("image" or "video")."""
    if url.startswith("https://"):
        return None
    match = _DATA_URI.match(url)
    if not match:
        return f"input {kind}s must be https URLs or base64 data URIs"
    mime, data = match.group(1), base64.b64decode(match.group(2))
    if kind == "image":
        if mime not in _MAGIC:
            return f"unsupported image type {mime}"
        if not data.startswith(_MAGIC[mime]):
            return f"the data URI says {mime} but its bytes are not"
        if len(data) > MAX_INPUT_IMAGE_BYTES:
            return f"an input image is {len(data)} bytes, over {MAX_INPUT_IMAGE_BYTES}"
    else:
        if mime != "video/mp4" or data[4:8] != b"ftyp":
            return f"the data URI says {mime} but its bytes are not an MP4 video"
    return None


def _prompt_problem(prompt: str) -> str | None:
    if not prompt.strip():
        return "prompt is empty"
    if len(prompt) > MAX_PROMPT_CHARS:
        return f"prompt is {len(prompt)} characters, over {MAX_PROMPT_CHARS}"
    return None


def image_problem(r: image_pb2.GenerateImageRequest) -> str | None:
    problem = _prompt_problem(r.prompt)
    if problem or not r.model:
        return problem or "model is empty"
    if r.HasField("image") and len(r.images):
        return "image and images are exclusive"
    inputs = ([r.image.image_url] if r.HasField("image") else []) + [i.image_url for i in r.images]
    if len(inputs) > MAX_IMAGE_INPUTS:
        return f"at most {MAX_IMAGE_INPUTS} input images, got {len(inputs)}"
    if r.HasField("n") and not 1 <= r.n <= MAX_N:
        return f"n must be 1-{MAX_N}, got {r.n}"
    if r.HasField("aspect_ratio") and r.aspect_ratio not in IMAGE_RATIOS:
        return "unsupported aspect_ratio"
    if r.HasField("resolution") and r.resolution not in IMAGE_RESOLUTIONS:
        return "resolution must be 1k or 2k"
    if r.format not in IMAGE_FORMATS:
        return "format must be url or base64"
    for url in inputs:
        problem = input_problem(url, "image")
        if problem:
            return problem
    return None


def video_problem(r: video_pb2.GenerateVideoRequest) -> str | None:
    problem = _prompt_problem(r.prompt)
    if problem or not r.model:
        return problem or "model is empty"
    one_five = is_1_5(r.model)
    for name, what in (
        ("last_frame", "last_frame"),
        ("keyframes", "keyframes"),
        ("reference_audios", "reference_audios"),
    ):
        present = r.HasField(name) if name == "last_frame" else bool(getattr(r, name))
        if present and not one_five:
            return f"{what} is only supported for {ONLY_1_5}, not {r.model}"
    modes = [name for name in ("image", "video") if r.HasField(name)] + (
        ["reference_images"] if r.reference_images else []
    )
    first_frame_with_references = modes == ["image", "reference_images"] and one_five
    if len(modes) > 1 and not first_frame_with_references:
        return f"{' and '.join(modes)} are exclusive: one mode per request"
    if r.HasField("video"):  # an edit keeps its input's duration, ratio and resolution
        for name in ("duration", "aspect_ratio", "resolution"):
            if r.HasField(name):
                return f"a video edit takes no {name}"
        if r.HasField("last_frame") or r.keyframes:
            return "a video edit takes no last_frame or keyframes"
        problem = input_problem(r.video.url, "video")
        if problem:
            return problem
        data = decode_data_uri(r.video.url)
        seconds = probe_duration(data) if data else None
        if seconds is not None and seconds > VIDEO_EDIT_MAX_S + 0.05:
            return f"video edit input is {seconds:.2f} s, over {VIDEO_EDIT_MAX_S} s"
        return None
    reference_mode = bool(r.reference_images) and not r.HasField("image")
    top = REFERENCE_VIDEO_MAX_S if reference_mode else VIDEO_SECONDS[1]
    if r.HasField("duration") and not VIDEO_SECONDS[0] <= r.duration <= top:
        return f"duration must be {VIDEO_SECONDS[0]}-{top} s, got {r.duration}"
    if r.HasField("aspect_ratio") and r.aspect_ratio not in VIDEO_RATIOS:
        return "unsupported aspect_ratio"
    if r.HasField("resolution"):
        allowed = set(VIDEO_RESOLUTIONS)
        if offers_1080p(r.model) and not reference_mode:
            allowed.add(video_pb2.VIDEO_RESOLUTION_1080P)
        if r.resolution not in allowed:
            return f"resolution {_RESOLUTION_NAME.get(r.resolution, '?')} is not offered for this model and mode"
    if len(r.reference_images) > MAX_REFERENCE_IMAGES:
        return f"at most {MAX_REFERENCE_IMAGES} reference images, got {len(r.reference_images)}"
    if len(r.keyframes) > MAX_KEYFRAMES or len(r.reference_audios) > MAX_REFERENCE_AUDIOS:
        return f"at most {MAX_KEYFRAMES} keyframes and {MAX_REFERENCE_AUDIOS} reference audios"
    urls = ([r.image.image_url] if r.HasField("image") else []) + [i.image_url for i in r.reference_images]
    urls += [r.last_frame.image_url] if r.HasField("last_frame") else []
    for url in urls:
        problem = input_problem(url, "image")
        if problem:
            return problem
    return None


def extend_problem(r: video_pb2.ExtendVideoRequest) -> str | None:
    """An extension: a prompt, an MP4 of 2-15 s, 2-10 new seconds (docs)."""
    problem = _prompt_problem(r.prompt)
    if problem or not r.model:
        return problem or "model is empty"
    if not r.HasField("video"):
        return "an extension needs the video to extend"
    if r.HasField("duration") and not EXTENSION_SECONDS[0] <= r.duration <= EXTENSION_SECONDS[1]:
        return f"an extension adds {EXTENSION_SECONDS[0]}-{EXTENSION_SECONDS[1]} s, got {r.duration}"
    problem = input_problem(r.video.url, "video")
    if problem:
        return problem
    data = decode_data_uri(r.video.url)
    seconds = probe_duration(data) if data else None
    low, high = EXTENSION_INPUT_S
    if seconds is not None and not low - 0.05 <= seconds <= high + 0.05:
        return f"an extension's input must be {low}-{high} s, got {seconds:.2f} s"
    return None


def chat_problem(r: chat_pb2.GetCompletionsRequest) -> str | None:
    if not r.model:
        return "model is empty"
    if not r.messages:
        return "no messages"
    for message in r.messages:
        for content in message.content:
            if content.HasField("image_url"):
                problem = input_problem(content.image_url.image_url, "image")
                if problem:
                    return problem
    return None
