"""Every paid xai call counted once, with what the service billed: moderation in each of
its shapes, a build stopped mid-start, requests and answers over the message cap, polls
sharing the rate limit, progress, and the vision schema the structured outputs can fill.

The real xai-sdk client against the strict fake service; `fake.bills` is the service's
own ledger, compared with what the backend reported."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fake_xai.fixtures import TEST_KEY, _fake_xai_server, fake_xai  # noqa: F401 (fixtures)
from fake_xai.media import make_jpeg, make_mp4
from storyc.backends.base import BackendError, ImageRequest, JudgeRequest, ModerationBlocked, VideoRequest
from storyc.backends.ratelimit import RateLimiter
from storyc.backends.xai.backend import PossiblyBilled, RequestTooLarge, XaiApiError, XaiBackend, XaiConfig
from storyc.backends.xai.config import PAID_METHODS, service_config
from storyc.model.vision import ConsistencyScore

MODEL_VIDEO = "grok-imagine-video"


def config(fake, **overrides) -> XaiConfig:
    values = {
        "api_key": TEST_KEY,
        "api_host": fake.host,
        "insecure": True,
        "timeout_s": 20.0,
        "poll_interval_s": 0.02,
        "video_timeout_s": 20.0,
        "retry_base_s": 0.005,
        "retry_max_delay_s": 0.05,
        "max_retries": 3,
    }
    values.update(overrides)
    return XaiConfig(**values)


@pytest.fixture
def backend(fake_xai):
    b = XaiBackend(config(fake_xai), rate_limiter=RateLimiter({}), reword=lambda p: p + " Gently.")
    yield b
    b.close()


class Journal:
    def __init__(self):
        self.jobs: dict[str, str] = {}

    def pending(self, key):
        return self.jobs.get(key)

    def started(self, key, request_id):
        self.jobs[key] = request_id

    def finished(self, key):
        self.jobs.pop(key, None)


def jpeg(path: Path, seed: int, ratio: str = "16:9") -> Path:
    path.write_bytes(make_jpeg(ratio, seed=seed))
    return path


def image_req(tmp_path, refs=(), name="out.jpg", hints=None) -> ImageRequest:
    return ImageRequest(
        prompt="Watercolor style. A fox in a forest.",
        model="grok-imagine-image",
        aspect_ratio="16:9",
        resolution="720p",
        dest=tmp_path / name,
        references=tuple(refs),
        hints=hints or {"step_id": "keyframe:3", "step": "keyframe", "scene_id": 3},
    )


def video_req(tmp_path, start: Path, seconds=2, **extra) -> VideoRequest:
    return VideoRequest(
        prompt="Watercolor style. Slow dolly forward.",
        model=MODEL_VIDEO,
        dest=tmp_path / "clip.mp4",
        image=start,
        duration_s=seconds,
        aspect_ratio="16:9",
        resolution="480p",
        hints={"step_id": "video:2", "step": "video", "scene_id": 2},
        **extra,
    )


def judge_req(tmp_path) -> JudgeRequest:
    return JudgeRequest(
        kind="keyframe",
        prompt="Image 1 is the keyframe of scene 1.\nThe other images are character reference sheets:\n"
        "image 2 is Ember; image 3 is Sage.\nScore them.",
        model="grok-4-1-fast-reasoning",
        image=jpeg(tmp_path / "frame.jpg", 1),
        references=(jpeg(tmp_path / "e.jpg", 2, "1:1"), jpeg(tmp_path / "s.jpg", 3, "1:1")),
        names=("Ember", "Sage"),
        hints={"step_id": "keyframe:1", "step": "check_keyframe", "scene_id": 1},
    )


def spent(error: BaseException) -> tuple[int, float]:
    return error.spent_calls, error.spent_usd


# ─── moderation: every shape gets one reworded attempt ──────────────────────

IMAGE_SHAPES = {"moderation": "result blocked", "moderation_rpc": "refused at submission", "empty_images": "no image"}
VIDEO_SHAPES = {
    "moderation": "result blocked",
    "moderation_rpc": "refused at submission",
    "failed_moderation": "job failed",
}


@pytest.mark.integration
@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_each_image_moderation_shape_is_reworded_once_and_its_cost_recorded(backend, fake_xai, tmp_path, shape):
    ref = jpeg(tmp_path / "ref.jpg", 5)
    fake_xai.inject("GenerateImage", shape)
    result = backend.edit_image(image_req(tmp_path, [ref]))
    first, second = fake_xai.requests("GenerateImage")
    assert second.prompt == first.prompt + " Gently." and result.meta["reworded"]
    assert result.path.exists() and result.retries == 1
    assert (result.calls, result.cost_usd) == (fake_xai.billed_count(), pytest.approx(fake_xai.billed_usd()))

    fake_xai.reset()
    fake_xai.inject("GenerateImage", shape, times=2)
    with pytest.raises(ModerationBlocked) as info:
        backend.edit_image(image_req(tmp_path, [ref], name="again.jpg"))
    line = str(info.value)
    assert "\n" not in line and line.startswith("keyframe:3: ")
    assert "'compose'" not in line and "the compose prompt of scene 3" in line and IMAGE_SHAPES[shape] in line
    assert spent(info.value) == (fake_xai.billed_count(), pytest.approx(fake_xai.billed_usd()))
    assert fake_xai.count("GenerateImage") == 2


@pytest.mark.integration
@pytest.mark.parametrize("shape", VIDEO_SHAPES)
def test_each_video_moderation_shape_is_reworded_once_and_its_cost_recorded(backend, fake_xai, tmp_path, shape):
    start = jpeg(tmp_path / "kf.jpg", 3)
    journal = Journal()
    fake_xai.inject("GenerateVideo", shape)
    result = backend.image_to_video(video_req(tmp_path, start), job_key="v", journal=journal)
    first, second = fake_xai.requests("GenerateVideo")
    assert second.prompt == first.prompt + " Gently." and second.prompt.startswith("Watercolor style.")
    assert result.path.exists() and journal.jobs == {}
    assert (result.calls, result.cost_usd) == (fake_xai.billed_count(), pytest.approx(fake_xai.billed_usd()))

    fake_xai.reset()
    fake_xai.inject("GenerateVideo", shape, times=2)
    with pytest.raises(ModerationBlocked, match=r"^video:2: .*the video prompt of scene 2") as info:
        backend.image_to_video(video_req(tmp_path, start), job_key="v", journal=journal)
    assert VIDEO_SHAPES[shape] in str(info.value) and journal.jobs == {}
    assert spent(info.value) == (fake_xai.billed_count(), pytest.approx(fake_xai.billed_usd()))


@pytest.mark.integration
def test_a_vision_check_refused_at_submission_is_reworded_once(backend, fake_xai, tmp_path):
    fake_xai.inject("GetCompletion", "moderation_rpc")
    score, result = backend.judge(judge_req(tmp_path))
    assert score.overall_score == fake_xai.default_score and result.retries == 1
    assert fake_xai.requests("GetCompletion")[1].texts()[0].endswith(" Gently.")
    fake_xai.inject("GetCompletion", "moderation_rpc", times=2)
    with pytest.raises(ModerationBlocked, match=r"keyframe:1: .*the check prompt of scene 1"):
        backend.judge(judge_req(tmp_path))


@pytest.mark.integration
def test_a_planning_prompt_refused_is_not_reworded(backend, fake_xai):
    fake_xai.inject("GetCompletion", "moderation_rpc")
    with pytest.raises(ModerationBlocked, match=r"^plan: .*the concept") as info:
        backend.plan("system", "a concept", "grok-4-1-fast")
    assert fake_xai.count("GetCompletion") == 1 and spent(info.value) == (0, 0)


# ─── unknown outcomes and the message cap ───────────────────────────────────


@pytest.mark.integration
def test_a_build_stopped_while_starting_a_video_reports_that_start_as_possibly_billed(fake_xai, tmp_path):
    """The journal holds an intent marker while the start is in flight: a build killed
    before the id arrived leaves it, and the next build says the start may have been
    billed instead of paying again with nothing said."""
    start = jpeg(tmp_path / "kf.jpg", 3)

    class KilledBeforeTheId(Journal):
        def started(self, key, request_id):
            if not request_id.startswith("starting:"):
                raise KeyboardInterrupt  # the answer (the id) arrived, the process did not survive
            super().started(key, request_id)

    killed = KilledBeforeTheId()
    first = XaiBackend(config(fake_xai), rate_limiter=RateLimiter({}))
    with pytest.raises(KeyboardInterrupt):
        first.image_to_video(video_req(tmp_path, start), job_key="v", journal=killed)
    first.close()
    assert next(iter(killed.jobs.values())).startswith("starting:") and fake_xai.billed_count() == 1

    survivor = Journal()
    survivor.jobs = dict(killed.jobs)
    second = XaiBackend(config(fake_xai), rate_limiter=RateLimiter({}))
    result = second.image_to_video(video_req(tmp_path, start), job_key="v", journal=survivor)
    second.close()
    assert result.meta["possibly_billed"] == 1 and result.meta["orphaned_start"]
    assert result.calls == fake_xai.billed_count() == 2  # the orphan (reported) + the new job
    assert survivor.jobs == {}


@pytest.mark.integration
def test_a_job_left_by_a_killed_build_is_counted_once_by_the_build_that_re_attaches(fake_xai, tmp_path):
    """A killed build wrote no report.json: its journaled job is counted (call and cost)
    by the next build, which re-attaches to it; a job whose failed call already reported
    it is marked so, and re-attaching counts nothing."""
    start = jpeg(tmp_path / "kf.jpg", 3)

    class KilledWhilePolling(Journal):
        def started(self, key, request_id):
            super().started(key, request_id)
            if not request_id.startswith("starting:"):
                raise KeyboardInterrupt

    killed = KilledWhilePolling()
    first = XaiBackend(config(fake_xai), rate_limiter=RateLimiter({}))
    with pytest.raises(KeyboardInterrupt):
        first.image_to_video(video_req(tmp_path, start), job_key="v", journal=killed)
    first.close()
    survivor = Journal()
    survivor.jobs = dict(killed.jobs)
    second = XaiBackend(config(fake_xai), rate_limiter=RateLimiter({}))
    result = second.image_to_video(video_req(tmp_path, start), job_key="v", journal=survivor)
    second.close()
    assert result.meta["reattached"] and "possibly_billed" not in result.meta
    assert (result.calls, result.cost_usd) == (fake_xai.billed_count(), pytest.approx(fake_xai.billed_usd()))
    assert fake_xai.count("GenerateVideo") == 1


@pytest.mark.integration
def test_a_request_over_the_message_cap_is_not_sent_nor_retried(fake_xai, tmp_path):
    """Client side RESOURCE_EXHAUSTED ("Sent message larger than max") is not a rate limit."""
    backend = XaiBackend(config(fake_xai, max_message_bytes=4096), rate_limiter=RateLimiter({}))
    refs = [jpeg(tmp_path / f"r{i}.jpg", i) for i in range(3)]
    with pytest.raises(RequestTooLarge, match=r"^keyframe:3: .* message cap") as info:
        backend.edit_image(image_req(tmp_path, refs))
    backend.close()
    assert not info.value.retryable and info.value.code == "RESOURCE_EXHAUSTED"
    assert "not sent (nothing billed)" in str(info.value)
    assert fake_xai.count("GenerateImage") == 0 and spent(info.value) == (0, 0)
    assert info.value.spent_retries == 0


@pytest.mark.integration
@pytest.mark.parametrize("method", ["GenerateImage", "GetCompletion"])
def test_an_answer_over_the_message_cap_is_possibly_billed(backend, fake_xai, tmp_path, method):
    fake_xai.inject(method, "oversized_answer")
    with pytest.raises(PossiblyBilled, match="possibly billed") as info:
        if method == "GenerateImage":
            backend.generate_image(image_req(tmp_path))
        else:
            backend.judge(judge_req(tmp_path))
    assert fake_xai.count(method) == 1 and info.value.spent_calls == fake_xai.billed_count() == 1
    assert info.value.possibly_billed == 1


@pytest.mark.integration
def test_a_poll_answer_over_the_cap_is_final_and_the_job_stays_journaled(backend, fake_xai, tmp_path):
    start = jpeg(tmp_path / "kf.jpg", 3)
    journal = Journal()
    fake_xai.inject("GetDeferredVideo", "oversized_answer", match=lambda r: fake_xai.jobs[r.request_id].polls_left == 0)
    with pytest.raises(XaiApiError, match="RESOURCE_EXHAUSTED") as info:
        backend.image_to_video(video_req(tmp_path, start), job_key="v", journal=journal)
    assert not isinstance(info.value, PossiblyBilled) and "v" in journal.jobs
    assert spent(info.value)[0] == fake_xai.billed_count() == 1


# ─── polling: shared rate limit, progress ───────────────────────────────────


def run_jobs(backend, tmp_path, n: int) -> list:
    start = jpeg(tmp_path / "kf.jpg", 3)
    results, errors = [], []

    def one(i: int) -> None:
        req = video_req(tmp_path, start)
        req = VideoRequest(**{**req.__dict__, "dest": tmp_path / f"clip{i}.mp4"})
        try:
            results.append(backend.image_to_video(req, job_key=f"v{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.integration
def test_polls_of_concurrent_jobs_share_the_video_rate_limit(fake_xai, tmp_path):
    """4 jobs polled every 20 ms would send ~200 requests a second; the backend's shared
    "video" bucket holds starts and polls of all jobs under the service's per-model limit,
    which never refuses one. Both scaled by 20 from the docs' ~70 a minute against
    storyc's default 1 a second (60 a minute)."""
    fake_xai.pending_polls = 8
    fake_xai.rate_limits = {MODEL_VIDEO: 70 / 60 * 20}
    backend = XaiBackend(config(fake_xai), rate_limiter=RateLimiter({"video": 1 * 20}))
    results = run_jobs(backend, tmp_path, 4)
    backend.close()
    assert len(results) == 4 and fake_xai.rate_refusals == 0
    assert sum(r.retries for r in results) == 0
    times = sorted(c.at for c in fake_xai.requests() if c.method in ("GenerateVideo", "GetDeferredVideo"))
    assert len(times) == 4 * (1 + 9)


@pytest.mark.integration
def test_without_the_shared_bucket_the_same_polls_would_trip_the_limit(fake_xai, tmp_path):
    """The control for the test above: unthrottled polls meet RESOURCE_EXHAUSTED (each one
    retried and counted, none billed)."""
    fake_xai.pending_polls = 8
    fake_xai.rate_limits = {MODEL_VIDEO: 70 / 60 * 20}
    backend = XaiBackend(config(fake_xai, max_retries=50), rate_limiter=RateLimiter({}))
    results = run_jobs(backend, tmp_path, 4)
    backend.close()
    assert fake_xai.rate_refusals > 0 and sum(r.retries for r in results) >= fake_xai.rate_refusals
    assert fake_xai.billed_count() == 4


@pytest.mark.integration
def test_progress_reaches_the_requests_hook(backend, fake_xai, tmp_path):
    fake_xai.pending_polls = 4
    seen: list[int] = []
    start = jpeg(tmp_path / "kf.jpg", 3)
    backend.image_to_video(video_req(tmp_path, start, progress=seen.append), job_key="v")
    assert seen and seen == sorted(seen) and len(set(seen)) == len(seen) and seen[0] >= 0 and seen[-1] < 100


@pytest.mark.integration
def test_a_failing_progress_hook_never_breaks_a_paid_job(backend, fake_xai, tmp_path):
    def broken(_percent):
        raise RuntimeError("display gone")

    start = jpeg(tmp_path / "kf.jpg", 3)
    assert backend.image_to_video(video_req(tmp_path, start, progress=broken), job_key="v").path.exists()


# ─── the vision schema, and the cost the service reports ─────────────────────


@pytest.mark.integration
def test_the_vision_schema_sent_can_carry_per_character_scores(backend, fake_xai, tmp_path):
    """xAI's structured outputs treat a map's additionalProperties as false: the seed's
    dict[str, float] comes back {} (the strict fake does the same), a list of {name,
    score} items comes back filled, and storyc keeps the seed's map shape."""
    import json

    import xai_sdk
    from xai_sdk.chat import user

    score, _ = backend.judge(judge_req(tmp_path))
    assert score.per_character == {"Ember": fake_xai.default_score, "Sage": fake_xai.default_score}
    sent = json.loads(fake_xai.requests("GetCompletion")[0].request.response_format.schema)
    assert sent["properties"]["per_character"]["type"] == "array" and sent["additionalProperties"] is False

    client = xai_sdk.Client(api_key=TEST_KEY, api_host=fake_xai.host, use_insecure_channel=True, timeout=10)
    try:
        chat = client.chat.create(model="grok-4-1-fast-reasoning")
        chat.append(user(judge_req(tmp_path).prompt))
        _, seed_shape = chat.parse(ConsistencyScore)
    finally:
        client.close()
    assert seed_shape.per_character == {}  # what the map schema gets: nothing to fix against


@pytest.mark.integration
def test_the_cost_the_service_reports_wins_over_the_table(backend, fake_xai, tmp_path):
    fake_xai.price_factor = 0.5  # a promotion: the service bills half the table
    image = backend.generate_image(image_req(tmp_path))
    start = jpeg(tmp_path / "kf.jpg", 3)
    clip = backend.image_to_video(video_req(tmp_path, start), job_key="v")
    assert image.cost_usd == pytest.approx(0.01) and image.meta["cost_source"] == "usage"
    assert clip.cost_usd == pytest.approx(0.05) and clip.meta["cost_source"] == "usage"  # 2 s at 480p, half price
    assert image.cost_usd + clip.cost_usd == pytest.approx(fake_xai.billed_usd())


@pytest.mark.integration
def test_a_video_edit_bills_its_input_seconds(backend, fake_xai, tmp_path):
    fake_xai.report_cost = False  # the table alone must agree with the service
    clip = tmp_path / "in.mp4"
    clip.write_bytes(make_mp4(3))
    req = VideoRequest(**{**video_req(tmp_path, clip).__dict__, "image": None, "video": clip})
    result = backend.edit_video(req, job_key="c1")
    assert result.meta["cost_source"] == "price_table"
    assert result.cost_usd == pytest.approx(fake_xai.billed_usd(), abs=0.002)  # 3 s out + 3 s in
    assert result.cost_usd == pytest.approx(3 * 0.05 + 3 * 0.01, abs=0.002)  # 480p


@pytest.mark.unit
def test_paid_methods_have_no_channel_retry_policy():
    import json

    config_ = json.loads(service_config())
    default, paid = config_["methodConfig"]
    assert default["name"] == [{}] and default["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert "retryPolicy" not in paid
    assert {(n["service"], n["method"]) for n in paid["name"]} == set(PAID_METHODS)
    assert ("xai_api.Video", "GetDeferredVideo") not in PAID_METHODS


@pytest.mark.integration
def test_a_closed_backend_refuses_new_calls(backend, fake_xai, tmp_path):
    backend.close()
    with pytest.raises(BackendError, match="stopped"):
        backend.generate_image(image_req(tmp_path))
    assert fake_xai.count("GenerateImage") == 0
