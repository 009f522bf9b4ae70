"""The xai backend through the real xai-sdk client against the local fake xAI service."""

from __future__ import annotations

import base64
import io
import random
import traceback
from pathlib import Path

import av
import pytest
from PIL import Image
from xai_sdk.proto import image_pb2, video_pb2

from fake_xai import decode_data_uri
from fake_xai.fixtures import TEST_KEY, _fake_xai_server, fake_xai, xai_env  # noqa: F401 (fixtures)
from fake_xai.media import make_jpeg, make_mp4
from storyc.backends.base import (
    BackendError,
    ImageRequest,
    JudgeRequest,
    ModerationBlocked,
    RateLimited,
    TransientError,
    VideoRequest,
)
from storyc.backends.download import AssetExpired, DownloadError
from storyc.backends.ratelimit import RateLimiter
from storyc.backends.xai.backend import (
    REWORD_NOTE,
    PossiblyBilled,
    VideoJobFailed,
    XaiApiError,
    XaiBackend,
    XaiConfig,
    inline_image,
)
from storyc.model.story_plan import StoryPlan
from storyc.model.vision import ConsistencyScore

MAX_RETRIES = 3


def fast_config(fake, **overrides) -> XaiConfig:
    values = {
        "api_key": TEST_KEY,
        "api_host": fake.host,
        "insecure": True,
        "timeout_s": 10.0,
        "poll_interval_s": 0.02,
        "video_timeout_s": 10.0,
        "retry_base_s": 0.005,
        "retry_max_delay_s": 0.05,
        "max_retries": MAX_RETRIES,
    }
    values.update(overrides)
    return XaiConfig(**values)


@pytest.fixture
def backend(fake_xai):
    b = XaiBackend(fast_config(fake_xai), rate_limiter=RateLimiter({}))
    yield b
    b.close()


class RecordingJournal:
    """A JobJournal that remembers what happened, and what the service had seen by then."""

    def __init__(self, fake=None):
        self.jobs: dict[str, str] = {}
        self.events: list[tuple] = []
        self.fake = fake

    def pending(self, key):
        return self.jobs.get(key)

    def started(self, key, request_id):
        polls = self.fake.count("GetDeferredVideo") if self.fake else None
        self.events.append(("started", key, request_id, polls))
        self.jobs[key] = request_id

    def finished(self, key):
        self.events.append(("finished", key))
        self.jobs.pop(key, None)


def write_jpeg(path: Path, seed: int, ratio: str = "16:9") -> Path:
    path.write_bytes(make_jpeg(ratio, seed=seed))
    return path


def write_clip(path: Path, seconds: float) -> Path:
    path.write_bytes(make_mp4(seconds))
    return path


def duration_of(path: Path) -> float:
    with av.open(str(path)) as container:
        return container.duration / 1_000_000


def image_req(tmp_path: Path, refs=(), step="keyframe:3", name="out.jpg") -> ImageRequest:
    return ImageRequest(
        prompt="Watercolor style. A fox in a forest.",
        model="grok-imagine-image",
        aspect_ratio="16:9",
        resolution="720p",
        dest=tmp_path / name,
        references=tuple(refs),
        hints={"step_id": step},
    )


def video_req(tmp_path: Path, *, image=None, video=None, seconds=3, step="video:1") -> VideoRequest:
    return VideoRequest(
        prompt="Slow dolly forward. The fox leaps.",
        model="grok-imagine-video",
        dest=tmp_path / "clip.mp4",
        image=image,
        video=video,
        duration_s=seconds,
        aspect_ratio="16:9",
        resolution="480p",
        hints={"step_id": step},
    )


# ─── each call kind ──────────────────────────────────────────────────────────


@pytest.mark.integration
def test_generate_image_arrives_inside_the_answer_and_sends_the_key(backend, fake_xai, tmp_path):
    """The image is requested as base64: its bytes come in the response, so no result URL
    can expire and no download can fail after it was paid for."""
    from xai_sdk.proto import image_pb2

    result = backend.generate_image(image_req(tmp_path))
    assert result.path == tmp_path / "out.jpg"
    assert result.path.read_bytes()[:3] == b"\xff\xd8\xff"
    assert (result.kind, result.calls, result.retries, result.cost_usd) == ("image", 1, 0, 0.02)
    assert fake_xai.assets.fetches(fake_xai.assets.base_url + "/assets/00001.jpg") == 0  # nothing hosted
    [call] = fake_xai.requests("GenerateImage")
    assert call.request.format == image_pb2.IMG_FORMAT_BASE64
    assert call.prompt == "Watercolor style. A fox in a forest."
    assert call.request.model == "grok-imagine-image"
    assert call.image_urls() == []
    assert call.metadata["authorization"] == f"Bearer {TEST_KEY}"
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.integration
def test_single_edit_uses_image_url_and_multi_edit_image_urls_in_slot_order(backend, fake_xai, tmp_path):
    refs = [write_jpeg(tmp_path / f"ref{i}.jpg", seed=i) for i in range(3)]

    backend.edit_image(image_req(tmp_path, refs[:1], name="one.jpg"))
    backend.edit_image(image_req(tmp_path, refs, name="three.jpg"))

    single, multi = fake_xai.requests("GenerateImage")
    assert single.request.HasField("image") and len(single.request.images) == 0
    assert decode_data_uri(single.request.image.image_url) == refs[0].read_bytes()
    assert not multi.request.HasField("image")
    assert [decode_data_uri(i.image_url) for i in multi.request.images] == [r.read_bytes() for r in refs]
    assert (tmp_path / "three.jpg").exists()


@pytest.mark.integration
@pytest.mark.parametrize("ratio, story_resolution", [("16:9", "720p"), ("9:16", "480p"), ("1:1", "720p")])
def test_wire_values_are_the_sdk_enums_the_service_expects(backend, fake_xai, tmp_path, ratio, story_resolution):
    """Images: the SDK's ImageResolution is "1k"/"2k" only (~1 MP, above a 720p frame), so a
    story's 720p/480p sends 1k; videos send the story's 480p/720p, ratio and duration."""
    from xai_sdk.proto import image_pb2, video_pb2

    start = write_jpeg(tmp_path / "kf.jpg", seed=3, ratio=ratio)
    req = ImageRequest(
        prompt="Watercolor style. A fox.",
        model="grok-imagine-image",
        aspect_ratio=ratio,
        resolution=story_resolution,
        dest=tmp_path / "i.jpg",
        hints={"step_id": "keyframe:1"},
    )
    backend.generate_image(req)
    video = VideoRequest(
        prompt="Slow dolly.",
        model="grok-imagine-video",
        dest=tmp_path / "v.mp4",
        image=start,
        duration_s=4,
        aspect_ratio=ratio,
        resolution=story_resolution,
        hints={"step_id": "video:1"},
    )
    backend.image_to_video(video, job_key="video:1")
    backend.edit_video(
        VideoRequest(**{**video.__dict__, "image": None, "video": tmp_path / "v.mp4", "dest": tmp_path / "c.mp4"}),
        job_key="video:1:c1",
    )
    [image] = fake_xai.requests("GenerateImage")
    assert image.request.resolution == image_pb2.IMG_RESOLUTION_1K
    assert image_pb2.ImageAspectRatio.Name(image.request.aspect_ratio) == "IMG_ASPECT_RATIO_" + ratio.replace(":", "_")
    assert image.request.format == image_pb2.IMG_FORMAT_BASE64 and image.request.n == 1
    start_call, edit_call = fake_xai.requests("GenerateVideo")
    assert (
        video_pb2.VideoResolution.Name(start_call.request.resolution) == f"VIDEO_RESOLUTION_{story_resolution.upper()}"
    )
    assert video_pb2.VideoAspectRatio.Name(start_call.request.aspect_ratio) == "VIDEO_ASPECT_RATIO_" + ratio.replace(
        ":", "_"
    )
    assert start_call.request.duration == 4 and start_call.request.HasField("image")
    # a video edit keeps its input's duration, ratio and resolution: none are sent
    for name in ("duration", "aspect_ratio", "resolution", "image"):
        assert not edit_call.request.HasField(name), name
    assert edit_call.request.video.url.startswith("data:video/mp4;base64,")


@pytest.mark.integration
def test_the_fake_refuses_what_the_real_service_refuses(fake_xai):
    """The fake's request checks have teeth: a wrong call fails with INVALID_ARGUMENT."""
    import grpc
    import xai_sdk

    client = xai_sdk.Client(api_key=TEST_KEY, api_host=fake_xai.host, use_insecure_channel=True, timeout=10)
    uri = "data:image/jpeg;base64," + base64.b64encode(make_jpeg(seed=1)).decode()
    try:
        for call in (
            lambda: client.image.sample(prompt="p", model="m", image_urls=[uri] * 4),
            lambda: client.image.sample(prompt="p", model="m", image_url="file:///etc/passwd"),
            lambda: client.video.start(prompt="p", model="m", image_url=uri, duration=16),
            lambda: client.video.start(
                prompt="p", model="m", video_url="data:video/mp4;base64," + base64.b64encode(make_mp4(9)).decode()
            ),
            lambda: client.image.sample(prompt=" ", model="m"),
        ):
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        client.close()


@pytest.mark.integration
def test_edit_bills_its_input_images_and_refuses_a_fourth_reference(backend, fake_xai, tmp_path):
    refs = [write_jpeg(tmp_path / f"ref{i}.jpg", seed=i) for i in range(4)]
    result = backend.edit_image(image_req(tmp_path, refs[:3]))
    assert result.cost_usd == pytest.approx(0.026)  # $0.02 + 3 inputs at $0.002
    with pytest.raises(BackendError, match="at most 3"):
        backend.edit_image(image_req(tmp_path, refs))
    assert fake_xai.count("GenerateImage") == 1


@pytest.mark.integration
def test_cost_comes_from_the_response_usage_when_reported(backend, fake_xai, tmp_path):
    result = backend.generate_image(image_req(tmp_path))
    assert result.meta["cost_source"] == "usage" and result.cost_usd == pytest.approx(0.02)
    fake_xai.report_cost = False
    result = backend.generate_image(image_req(tmp_path, name="b.jpg"))
    assert result.meta["cost_source"] == "price_table" and result.cost_usd == pytest.approx(0.02)


@pytest.mark.unit
def test_large_inputs_are_downscaled_under_the_budget(tmp_path):
    noise = Image.frombytes("RGB", (1200, 800), random.Random(4).randbytes(1200 * 800 * 3))
    big = tmp_path / "big.png"
    noise.save(big)
    assert big.stat().st_size > 200_000
    uri = inline_image(big, max_bytes=200_000)
    assert uri.startswith("data:image/jpeg;base64,")
    data = base64.b64decode(uri.split(",", 1)[1])
    assert len(data) <= 200_000
    assert Image.open(io.BytesIO(data)).size[0] <= 1200
    small = write_jpeg(tmp_path / "small.jpg", seed=1)
    assert decode_data_uri(inline_image(small)) == small.read_bytes()  # small files go as they are


@pytest.mark.integration
def test_image_to_video_journals_the_id_before_polling(backend, fake_xai, tmp_path):
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    journal = RecordingJournal(fake_xai)
    result = backend.image_to_video(video_req(tmp_path, image=start, seconds=3), job_key="video:1", journal=journal)

    assert duration_of(result.path) == pytest.approx(3.0, abs=0.15)
    assert (fake_xai.count("GenerateVideo"), fake_xai.count("GetDeferredVideo")) == (1, 3)  # 2 PENDING, then DONE
    [start_call] = fake_xai.requests("GenerateVideo")
    assert decode_data_uri(start_call.request.image.image_url) == start.read_bytes()
    assert start_call.request.duration == 3
    (intent, ev1, ev2) = journal.events
    assert intent[:2] == ("started", "video:1") and intent[2].startswith("starting:")  # before the paid start
    assert ev1[:3] == ("started", "video:1", next(iter(fake_xai.jobs))) and ev1[3] == 0  # the id, before the first poll
    assert ev2 == ("finished", "video:1")
    assert journal.jobs == {}
    assert result.calls == 1 and result.cost_usd == pytest.approx(0.15)  # 3 s at 480p


@pytest.mark.integration
def test_edit_video_sends_the_clip_and_keeps_its_duration(backend, fake_xai, tmp_path):
    clip = write_clip(tmp_path / "in.mp4", 4)
    result = backend.edit_video(video_req(tmp_path, video=clip, seconds=4), job_key="video:1:c1")
    [call] = fake_xai.requests("GenerateVideo")
    assert decode_data_uri(call.request.video.url) == clip.read_bytes()
    assert not call.request.HasField("image") and call.request.duration == 0
    assert duration_of(result.path) == pytest.approx(4.0, abs=0.15)


@pytest.mark.integration
def test_edit_video_refuses_inputs_over_8_7_seconds(backend, fake_xai, tmp_path):
    clip = write_clip(tmp_path / "long.mp4", 9)
    with pytest.raises(BackendError, match=r"at most 8\.7 s"):
        backend.edit_video(video_req(tmp_path, video=clip, seconds=9), job_key="video:1:c1")
    assert fake_xai.count("GenerateVideo") == 0


@pytest.mark.integration
def test_judge_sends_the_image_under_test_first_then_references(backend, fake_xai, tmp_path):
    frame = write_jpeg(tmp_path / "frame.jpg", seed=7)
    sheets = [write_jpeg(tmp_path / f"sheet{i}.jpg", seed=10 + i, ratio="1:1") for i in range(2)]
    fake_xai.scores.append(0.55)
    score, result = backend.judge(
        JudgeRequest(
            kind="keyframe",
            prompt="Image 1 is a scene.",
            model="grok-4-1-fast-reasoning",
            image=frame,
            references=tuple(sheets),
            names=("Ember", "Sage"),
        )
    )
    assert isinstance(score, ConsistencyScore) and score.overall_score == 0.55 and score.fix_prompt
    [call] = fake_xai.requests("GetCompletion")
    assert [decode_data_uri(u) for u in call.image_urls()] == [p.read_bytes() for p in [frame, *sheets]]
    assert call.texts() == ["Image 1 is a scene."]
    assert '"ConsistencyScore"' in call.request.response_format.schema
    assert result.kind == "vision" and 0 < result.cost_usd < 0.01


@pytest.mark.integration
def test_plan_sends_system_and_user_prompts(backend, fake_xai):
    plan, result = backend.plan("You are a director.", "Plan 2 characters and 4 scenes: a fox", "grok-4-1-fast")
    assert isinstance(plan, StoryPlan) and len(plan.scenes) == 4 and len(plan.characters) == 2
    [call] = fake_xai.requests("GetCompletion")
    assert [m.content[0].text for m in call.request.messages] == [
        "You are a director.",
        "Plan 2 characters and 4 scenes: a fox",
    ]
    assert call.request.model == "grok-4-1-fast"
    assert result.kind == "chat" and result.cost_usd > 0


# ─── faults ──────────────────────────────────────────────────────────────────


@pytest.mark.integration
def test_rate_limit_is_retried_with_backoff(backend, fake_xai, tmp_path):
    fake_xai.inject("GenerateImage", "resource_exhausted", times=2)
    result = backend.generate_image(image_req(tmp_path))
    assert result.retries == 2 and result.calls == 1
    assert fake_xai.count("GenerateImage") == 3


@pytest.mark.integration
def test_rate_limit_retries_are_bounded(backend, fake_xai, tmp_path):
    fake_xai.inject("GenerateImage", "resource_exhausted", times=MAX_RETRIES + 1)
    with pytest.raises(XaiApiError) as info:
        backend.generate_image(image_req(tmp_path))
    assert info.value.code == "RESOURCE_EXHAUSTED" and isinstance(info.value, RateLimited)
    assert not info.value.retryable  # final: the build must not retry the bounded retries again
    assert "keyframe:3" in str(info.value)
    assert fake_xai.count("GenerateImage") == MAX_RETRIES + 1


@pytest.mark.integration
def test_the_sdk_channel_does_not_hide_retries_of_paid_calls(backend, fake_xai, tmp_path):
    """The SDK's channel retries UNAVAILABLE 5 times by itself; for paid methods that is
    off, so every attempt that reached the service is storyc's own, bounded and counted."""
    fake_xai.inject("GenerateImage", "unavailable", times=2)
    result = backend.generate_image(image_req(tmp_path))
    assert (result.retries, result.calls) == (2, 1) and fake_xai.count("GenerateImage") == 3
    fake_xai.reset()
    fake_xai.inject("GenerateImage", "unavailable", times=100)
    with pytest.raises(XaiApiError) as info:
        backend.generate_image(image_req(tmp_path))
    assert isinstance(info.value, TransientError) and not info.value.retryable
    assert fake_xai.count("GenerateImage") == MAX_RETRIES + 1  # not (MAX_RETRIES + 1) * 5
    assert (info.value.spent_calls, info.value.spent_retries) == (0, MAX_RETRIES)
    # polls are free and idempotent: the channel may retry them (the SDK's own policy)
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    fake_xai.reset()
    fake_xai.inject("GetDeferredVideo", "unavailable", times=2)
    result = backend.image_to_video(video_req(tmp_path, image=start), job_key="video:1")
    assert result.retries == 0 and result.calls == 1


@pytest.mark.integration
@pytest.mark.parametrize("method", ["GenerateImage", "GenerateVideo", "ExtendVideo", "GetCompletion"])
def test_deadline_exceeded_on_a_paid_call_is_possibly_billed_and_never_repeated(backend, fake_xai, tmp_path, method):
    """The service did the work (and billed it); the answer was lost. storyc counts the call
    as possibly billed, at the table's price, and does not send it again."""
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    clip = write_clip(tmp_path / "in.mp4", 4)
    calls = {
        "GenerateImage": lambda: backend.generate_image(image_req(tmp_path)),
        "GenerateVideo": lambda: backend.image_to_video(video_req(tmp_path, image=start), job_key="v", journal=journal),
        "ExtendVideo": lambda: backend.extend_video(video_req(tmp_path, video=clip), job_key="v", journal=journal),
        "GetCompletion": lambda: backend.plan("s", "u", "m"),
    }
    journal = RecordingJournal()
    fake_xai.inject(method, "deadline_exceeded")
    with pytest.raises(PossiblyBilled, match="possibly billed") as info:
        calls[method]()
    error = info.value
    assert fake_xai.count(method) == 1 and fake_xai.billed_count() == 1
    assert (error.spent_calls, error.possibly_billed) == (1, 1) and not error.retryable
    assert error.spent_usd == pytest.approx(fake_xai.billed_usd(), abs=0.003)  # chat: the estimate
    assert journal.jobs == {}  # nothing to re-attach to, and already reported


@pytest.mark.integration
def test_deadline_exceeded_on_a_poll_is_retried(backend, fake_xai, tmp_path):
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    fake_xai.inject("GetDeferredVideo", "deadline_exceeded", times=2)
    result = backend.image_to_video(video_req(tmp_path, image=start), job_key="video:1")
    assert result.path.exists() and result.retries == 2 and fake_xai.count("GenerateVideo") == 1


@pytest.mark.integration
def test_other_errors_are_not_retried(backend, fake_xai, tmp_path):
    fake_xai.inject("GenerateImage", "invalid_argument")
    with pytest.raises(XaiApiError) as info:
        backend.generate_image(image_req(tmp_path))
    assert not info.value.retryable and fake_xai.count("GenerateImage") == 1
    fake_xai.inject("GetCompletion", "bad_json")
    with pytest.raises(BackendError, match="not a valid StoryPlan") as info:
        backend.plan("s", "u", "m")
    assert fake_xai.count("GetCompletion") == 1 and not info.value.retryable


@pytest.mark.integration
def test_image_moderation_block_gets_one_reworded_attempt(fake_xai, tmp_path):
    backend = XaiBackend(fast_config(fake_xai), rate_limiter=RateLimiter({}), reword=lambda p: "Gently: " + p)
    fake_xai.inject("GenerateImage", "moderation", times=1)
    result = backend.generate_image(image_req(tmp_path))
    first, second = fake_xai.requests("GenerateImage")
    assert second.prompt == "Gently: " + first.prompt
    assert result.retries == 1 and result.calls == 2 and result.meta["reworded"]

    fake_xai.inject("GenerateImage", "moderation", times=2)
    with pytest.raises(ModerationBlocked, match="keyframe:3"):
        backend.generate_image(image_req(tmp_path, step="keyframe:3"))
    assert fake_xai.count("GenerateImage") == 4

    fake_xai.inject("GenerateImage", "moderation", times=2)
    sheet = ImageRequest(
        prompt="Watercolor style. Ember.",
        model="grok-imagine-image",
        aspect_ratio="1:1",
        resolution="720p",
        dest=tmp_path / "sheet.jpg",
        hints={"step_id": "character:Ember", "name": "Ember"},
    )
    with pytest.raises(ModerationBlocked, match=r"character Ember.*rewrite Ember's visual_description"):
        backend.generate_image(sheet)


@pytest.mark.integration
def test_video_moderation_block_rewords_once_then_names_the_step(backend, fake_xai, tmp_path):
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    fake_xai.inject("GenerateVideo", "moderation", times=1)
    journal = RecordingJournal()
    backend.image_to_video(video_req(tmp_path, image=start), job_key="video:1", journal=journal)
    prompts = [c.prompt for c in fake_xai.requests("GenerateVideo")]
    assert prompts[1] == f"{prompts[0]} {REWORD_NOTE}" and journal.jobs == {}
    assert prompts[1].startswith(prompts[0])  # the style lock stays first

    fake_xai.inject("GenerateVideo", "moderation", times=2)
    req = video_req(tmp_path, image=start, step="video:2")
    req = VideoRequest(**{**req.__dict__, "hints": {**req.hints, "scene_id": 2}})
    with pytest.raises(ModerationBlocked, match=r"video:2: .*scene 2.*rewrite scene 2's action"):
        backend.image_to_video(req, job_key="video:2", journal=journal)
    assert journal.jobs == {}


@pytest.mark.integration
def test_failed_video_reports_code_and_message_without_paying_again(backend, fake_xai, tmp_path):
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    fake_xai.inject("GenerateVideo", "failed")
    journal = RecordingJournal()
    with pytest.raises(
        VideoJobFailed, match=r"video:1: video generation failed \[internal_error\]: the fake renderer gave up"
    ):
        backend.image_to_video(video_req(tmp_path, image=start), job_key="video:1", journal=journal)
    assert fake_xai.count("GenerateVideo") == 1 and journal.jobs == {}


@pytest.mark.integration
def test_expired_video_is_restarted_once(backend, fake_xai, tmp_path):
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    fake_xai.inject("GenerateVideo", "expired", times=1)
    result = backend.image_to_video(video_req(tmp_path, image=start), job_key="video:1")
    assert result.path.exists() and result.retries == 1 and fake_xai.count("GenerateVideo") == 2

    fake_xai.reset()
    fake_xai.inject("GenerateVideo", "expired", times=5)
    with pytest.raises(BackendError, match="expired again") as info:
        backend.image_to_video(video_req(tmp_path, image=start), job_key="video:1")
    assert fake_xai.count("GenerateVideo") == 2  # bounded: one restart
    assert not info.value.retryable  # a step retry would start more jobs


@pytest.mark.integration
def test_expired_asset_url_is_a_clear_retryable_error(backend, fake_xai, tmp_path):
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    fake_xai.inject("GenerateVideo", "asset_404")
    journal = RecordingJournal()
    with pytest.raises(AssetExpired, match=r"video:1.*gone") as info:
        backend.image_to_video(video_req(tmp_path, image=start), job_key="video:1", journal=journal)
    assert info.value.retryable  # the URL is gone: only a new job can make the clip
    assert fake_xai.count("GenerateVideo") == 1 and journal.jobs == {}


@pytest.mark.integration
def test_a_failed_call_reports_what_it_already_spent(backend, fake_xai, tmp_path):
    """Paid work before the failure is on the error, for report.json and --max-cost."""
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    fake_xai.inject("GenerateVideo", "asset_404")  # the job was done (and billed); its URL is gone
    with pytest.raises(AssetExpired) as info:
        backend.image_to_video(video_req(tmp_path, image=start, seconds=3), job_key="video:1")
    assert (info.value.spent_calls, info.value.spent_usd) == (1, pytest.approx(0.15))  # 3 s at 480p
    fake_xai.inject("GenerateImage", "moderation", times=2)
    with pytest.raises(ModerationBlocked) as info:
        backend.generate_image(image_req(tmp_path))
    assert (info.value.spent_calls, info.value.spent_usd) == (2, pytest.approx(0.04))
    fake_xai.inject("GenerateImage", "invalid_argument")
    with pytest.raises(XaiApiError) as info:
        backend.generate_image(image_req(tmp_path))
    assert (info.value.spent_calls, info.value.spent_usd) == (0, 0)  # refused: nothing billed


@pytest.mark.integration
@pytest.mark.parametrize("fault", ["truncated_once", "http_500_once", "reset_once"])
def test_a_failed_video_download_is_fetched_again(backend, fake_xai, tmp_path, fault):
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    fake_xai.inject("GenerateVideo", fault)
    result = backend.image_to_video(video_req(tmp_path, image=start, seconds=3), job_key="video:1")
    assert result.retries == 1 and result.calls == 1 and duration_of(result.path) == pytest.approx(3.0, abs=0.15)
    assert fake_xai.count("GenerateVideo") == 1


@pytest.mark.integration
def test_a_download_that_keeps_failing_leaves_the_job_to_download_again_not_to_pay_again(fake_xai, tmp_path):
    """The step's retry (or the next build) re-attaches to the journaled job: the same
    video is downloaded again, no new job is paid for, and its cost is counted once."""
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    backend = XaiBackend(fast_config(fake_xai), rate_limiter=RateLimiter({}))
    journal = RecordingJournal()
    fake_xai.inject("GenerateVideo", "truncated")
    with pytest.raises(DownloadError, match="downloads it again, paying nothing") as info:
        backend.image_to_video(video_req(tmp_path, image=start, seconds=3), job_key="video:1", journal=journal)
    first = info.value
    assert first.retryable and "video:1" in journal.jobs and not (tmp_path / "clip.mp4").exists()
    assert (first.spent_calls, first.spent_usd) == (1, pytest.approx(0.15))
    request_id, marked = journal.jobs["video:1"].split("#")
    assert marked == "reported"  # its call and cost went out on the error: a re-attach counts nothing
    job = fake_xai.jobs[request_id]
    job.asset_mode, job.url = "ok", ""  # the host serves it whole this time
    again = backend.image_to_video(video_req(tmp_path, image=start, seconds=3), job_key="video:1", journal=journal)
    backend.close()
    assert (again.calls, again.cost_usd) == (0, 0.0)  # costed once, with the failed attempt
    assert fake_xai.count("GenerateVideo") == 1 and fake_xai.billed_count() == 1
    assert again.path.exists() and journal.jobs == {}


@pytest.mark.integration
def test_rate_limited_polling_keeps_the_job_and_the_next_build_reattaches(fake_xai, tmp_path):
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    journal = RecordingJournal()
    first = XaiBackend(fast_config(fake_xai), rate_limiter=RateLimiter({}))
    fake_xai.inject("GetDeferredVideo", "resource_exhausted", times=MAX_RETRIES + 1)
    with pytest.raises(XaiApiError) as info:
        first.image_to_video(video_req(tmp_path, image=start), job_key="video:1", journal=journal)
    assert info.value.code == "RESOURCE_EXHAUSTED"
    first.close()
    request_id = journal.jobs["video:1"].removesuffix("#reported")  # the error reported its call
    assert (info.value.spent_calls, info.value.spent_usd) == (1, pytest.approx(0.15))  # 3 s at 480p, the table price

    # "The next build": a new backend (new channel) with the persisted journal.
    second = XaiBackend(fast_config(fake_xai), rate_limiter=RateLimiter({}))
    result = second.image_to_video(video_req(tmp_path, image=start), job_key="video:1", journal=journal)
    second.close()
    assert result.meta["reattached"] == request_id and result.calls == 0
    assert fake_xai.count("GenerateVideo") == 1  # never paid twice
    assert result.path.exists() and journal.jobs == {}


@pytest.mark.integration
def test_crash_right_after_journaling_reattaches(fake_xai, tmp_path):
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)

    class CrashingJournal(RecordingJournal):
        def started(self, key, request_id):
            super().started(key, request_id)
            if not request_id.startswith("starting:"):
                raise KeyboardInterrupt  # Ctrl-C / kill between persisting the id and polling

    journal = CrashingJournal()
    backend = XaiBackend(fast_config(fake_xai), rate_limiter=RateLimiter({}))
    with pytest.raises(KeyboardInterrupt):
        backend.image_to_video(video_req(tmp_path, image=start), job_key="video:1", journal=journal)
    polls_before = fake_xai.count("GetDeferredVideo")
    survivor = RecordingJournal()
    survivor.jobs = dict(journal.jobs)
    backend.image_to_video(video_req(tmp_path, image=start), job_key="video:1", journal=survivor)
    assert fake_xai.count("GenerateVideo") == 1
    assert fake_xai.count("GetDeferredVideo") > polls_before
    backend.close()


@pytest.mark.integration
def test_a_journaled_job_the_service_forgot_is_started_again(backend, fake_xai, tmp_path):
    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    journal = RecordingJournal()
    journal.jobs["video:1"] = "vid-unknown"
    result = backend.image_to_video(video_req(tmp_path, image=start), job_key="video:1", journal=journal)
    assert result.path.exists() and fake_xai.count("GenerateVideo") == 1


# ─── the key stays secret ────────────────────────────────────────────────────


@pytest.mark.integration
def test_key_never_appears_in_error_text(backend, fake_xai, tmp_path):
    fake_xai.inject("GenerateImage", "echo_key")
    with pytest.raises(XaiApiError) as info:
        backend.generate_image(image_req(tmp_path))
    # the fake really echoed the header...
    assert TEST_KEY not in str(info.value) and "[REDACTED]" in str(info.value)
    text = "".join(traceback.format_exception(info.value)) + repr(info.value)
    assert TEST_KEY not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.unit
def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    with pytest.raises(BackendError, match="XAI_API_KEY"):
        XaiConfig.from_env()


@pytest.mark.unit
def test_plaintext_grpc_only_for_loopback_hosts():
    with pytest.raises(BackendError, match="loopback"):
        XaiBackend(XaiConfig(api_key=TEST_KEY, api_host="api.x.ai:443", insecure=True))


@pytest.mark.integration
def test_config_from_env(xai_env):
    cfg = XaiConfig.from_env()
    assert (cfg.api_host, cfg.insecure, cfg.api_key) == (xai_env.host, True, TEST_KEY)
    assert TEST_KEY not in repr(cfg)


@pytest.mark.unit
def test_backoff_is_exponential_jittered_and_capped():
    cfg = XaiConfig(api_key="k" * 8, retry_base_s=1.0, retry_max_delay_s=30.0)
    for attempt, nominal in [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (9, 30)]:
        delays = [cfg.backoff(attempt) for _ in range(50)]
        assert all(nominal * 0.5 <= d <= nominal for d in delays)
    assert sum(min(30, 2**n) for n in range(cfg.max_retries)) == 31  # worst-case sleep per RPC


@pytest.mark.integration
def test_big_reference_photos_fit_one_grpc_message(backend, fake_xai, tmp_path):
    """Three ~7 MB photos would overflow the 20 MiB gRPC cap as base64; they go downscaled."""
    rng = random.Random(9)
    refs = []
    for i in range(3):
        path = tmp_path / f"photo{i}.png"
        Image.frombytes("RGB", (1600, 1500), rng.randbytes(1600 * 1500 * 3)).save(path, compress_level=1)
        refs.append(path)
    assert sum(p.stat().st_size for p in refs) * 4 / 3 > 20 * (1 << 20)
    backend.edit_image(image_req(tmp_path, refs))
    [call] = fake_xai.requests("GenerateImage")
    assert call.request.ByteSize() < 16 * (1 << 20)
    sent = [Image.open(io.BytesIO(decode_data_uri(u))) for u in call.image_urls()]
    assert [im.format for im in sent] == ["JPEG"] * 3 and all(max(im.size) <= 1600 for im in sent)


@pytest.mark.integration
def test_a_large_clip_to_edit_is_reencoded_smaller(tmp_path):
    import subprocess

    from fake_xai.media import ffmpeg_exe
    from storyc.backends.xai.backend import inline_video

    clip = tmp_path / "big.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=640x360:r=24:d=2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-pix_fmt",
            "yuv420p",
            str(clip),
        ],
        check=True,
    )
    size = clip.stat().st_size
    data = decode_data_uri(inline_video(clip, max_bytes=size // 4))
    assert data[4:8] == b"ftyp" and len(data) <= size // 4
    with pytest.raises(BackendError, match="too large"):
        inline_video(clip, max_bytes=100)


@pytest.mark.integration
def test_close_stops_a_poll_in_progress_and_keeps_the_job(fake_xai, tmp_path):
    """After Ctrl-C the build closes the backend: a worker thread still polling must stop
    promptly (not keep the process alive for the polling limit) and leave the job journaled."""
    import threading
    import time

    start = write_jpeg(tmp_path / "kf.jpg", seed=3)
    fake_xai.pending_polls = 10**6
    # polls 10 minutes apart: only a close() that ends the wait at once lets the worker go
    config = fast_config(fake_xai, poll_interval_s=600.0, video_timeout_s=3600.0)
    backend = XaiBackend(config, rate_limiter=RateLimiter({}))
    journal = RecordingJournal()
    errors = []

    def work():
        try:
            backend.image_to_video(video_req(tmp_path, image=start), job_key="video:1", journal=journal)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 10
    while fake_xai.count("GetDeferredVideo") < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    backend.close()
    worker.join(timeout=60)
    assert not worker.is_alive()
    [error] = errors
    assert isinstance(error, BackendError) and "stopped" in str(error)
    assert "video:1" in journal.jobs


@pytest.mark.unit
def test_redact_scrubs_registered_secrets_bearer_tokens_and_key_shapes(monkeypatch):
    from storyc.redact import redact, register_secret

    monkeypatch.setenv("XAI_API_KEY", "env-secret-value-123")
    register_secret("registered-secret-456")
    text = redact(
        "a env-secret-value-123 b registered-secret-456 c authorization: Bearer tok.en-789 "
        "d xai-AbCdEf0123456789AbCdEf0123 e xai-sdk-version: python/1.21"
    )
    for secret in ("env-secret-value-123", "registered-secret-456", "tok.en-789", "xai-AbCdEf0123456789AbCdEf0123"):
        assert secret not in text
    assert "xai-sdk-version: python/1.21" in text  # ordinary text survives


@pytest.mark.integration
def test_bad_rate_spec_is_a_backend_error(fake_xai):
    with pytest.raises(BackendError, match="STORYC_RATE_LIMITS"):
        XaiBackend(fast_config(fake_xai, rate_spec="video=fast"))


# ─── best-of-N, reference images, seamless end frames, extensions (issue 11) ──


@pytest.mark.integration
def test_best_of_n_is_one_sample_batch_request_billed_once(backend, fake_xai, tmp_path):
    refs = [write_jpeg(tmp_path / f"ref{k}.jpg", seed=k) for k in range(2)]
    dests = tuple(tmp_path / f"cand_{k}.jpg" for k in range(1, 4))
    req = ImageRequest(
        prompt="Watercolor style. A fox.",
        model="grok-imagine-image",
        aspect_ratio="16:9",
        resolution="720p",
        dest=dests[0],
        references=tuple(refs),
        hints={"step_id": "keyframe:1"},
        candidates=dests,
    )
    result = backend.edit_image(req)
    [call] = fake_xai.requests("GenerateImage")
    assert call.request.n == 3 and call.request.format == image_pb2.IMG_FORMAT_BASE64  # no URL to lose
    assert [p.exists() for p in dests] == [True, True, True]
    assert len({p.read_bytes() for p in dests}) == 3  # three different takes
    assert result.meta["candidates"] == 3 and result.calls == 1
    assert result.cost_usd == pytest.approx(3 * 0.02 + 2 * 0.002) == fake_xai.billed_usd()


@pytest.mark.integration
def test_a_withheld_batch_gets_one_reworded_request(backend, fake_xai, tmp_path):
    fake_xai.inject("GenerateImage", "moderation")
    dests = tuple(tmp_path / f"cand_{k}.jpg" for k in range(1, 3))
    req = ImageRequest("Watercolor. A fox.", "grok-imagine-image", "16:9", "720p", dests[0], candidates=dests)
    result = backend.generate_image(req)
    assert fake_xai.count("GenerateImage") == 2 and result.meta["reworded"] is True
    assert result.calls == 2 and result.cost_usd == pytest.approx(4 * 0.02)  # both requests billed for 2 images


@pytest.mark.integration
def test_a_clip_can_end_on_a_frame_and_carry_reference_images(backend, fake_xai, tmp_path):
    first, last = write_jpeg(tmp_path / "kf1.jpg", seed=1), write_jpeg(tmp_path / "kf2.jpg", seed=2)
    sheets = [write_jpeg(tmp_path / f"sheet{k}.jpg", seed=10 + k) for k in range(2)]
    req = VideoRequest(
        prompt="Keep Ember as in <IMAGE_1>, Sage as in <IMAGE_2>.",
        model="grok-imagine-video-1.5",
        dest=tmp_path / "clip.mp4",
        image=first,
        references=tuple(sheets),
        last_frame=last,
        duration_s=4,
        resolution="1080p",
        hints={"step_id": "video:1"},
    )
    backend.image_to_video(req, job_key="video:1")
    [call] = fake_xai.requests("GenerateVideo")
    assert decode_data_uri(call.request.image.image_url) == first.read_bytes()
    assert decode_data_uri(call.request.last_frame.image_url) == last.read_bytes()
    assert [decode_data_uri(r.image_url) for r in call.request.reference_images] == [p.read_bytes() for p in sheets]
    assert call.request.resolution == video_pb2.VIDEO_RESOLUTION_1080P


@pytest.mark.integration
def test_reference_to_video_sends_no_first_frame(backend, fake_xai, tmp_path):
    refs = [write_jpeg(tmp_path / f"ref{k}.jpg", seed=k) for k in range(3)]
    req = VideoRequest(
        prompt="Ember as in <IMAGE_1>.",
        model="grok-imagine-video",
        dest=tmp_path / "clip.mp4",
        references=tuple(refs),
        duration_s=5,
        hints={"step_id": "video:3"},
    )
    result = backend.image_to_video(req, job_key="video:3")
    [call] = fake_xai.requests("GenerateVideo")
    assert not call.request.HasField("image") and len(call.request.reference_images) == 3
    assert duration_of(result.path) == pytest.approx(5.0, abs=0.15)
    with pytest.raises(BackendError, match="at most 7 reference images"):
        backend.image_to_video(
            VideoRequest("p", "grok-imagine-video", tmp_path / "x.mp4", references=tuple(refs) * 3, duration_s=5),
            job_key="video:4",
        )


@pytest.mark.integration
def test_extension_is_a_journaled_job_whose_output_holds_the_input(backend, fake_xai, tmp_path):
    clip = write_clip(tmp_path / "in.mp4", 5)
    journal = RecordingJournal(fake_xai)
    req = VideoRequest(
        prompt="Continue the shot.",
        model="grok-imagine-video",
        dest=tmp_path / "extended.mp4",
        video=clip,
        duration_s=4,
        resolution="720p",
        hints={"step_id": "video:4"},
    )
    result = backend.extend_video(req, job_key="video:4:s1e1", journal=journal)
    [call] = fake_xai.requests("ExtendVideo")
    assert decode_data_uri(call.request.video.url) == clip.read_bytes() and call.request.duration == 4
    assert duration_of(result.path) == pytest.approx(9.0, abs=0.15)
    assert [e[0] for e in journal.events] == ["started", "started", "finished"]  # intent, id, done
    assert result.calls == 1 and result.cost_usd == pytest.approx(fake_xai.billed_usd())


@pytest.mark.integration
def test_an_extension_input_over_15_seconds_is_refused_before_it_is_sent(backend, fake_xai, tmp_path):
    clip = write_clip(tmp_path / "long.mp4", 16)
    req = VideoRequest("p", "grok-imagine-video", tmp_path / "x.mp4", video=clip, duration_s=4)
    with pytest.raises(BackendError, match="2-15 s"):
        backend.extend_video(req, job_key="video:9")
    assert fake_xai.count("ExtendVideo") == 0
