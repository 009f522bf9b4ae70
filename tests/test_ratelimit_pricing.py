"""storyc.backends.ratelimit (token buckets per call kind) and storyc.model.prices (the price table)."""

from __future__ import annotations

import threading

import pytest

from fake_xai.answers import story_plan
from storyc.author.planner import plan_to_story_data, render_story_yaml
from storyc.backends.ratelimit import DEFAULT_RATES, RateLimiter, TokenBucket, parse_rates
from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.model import prices as pricing
from storyc.model.story_plan import StoryPlan

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_bucket_spaces_requests_at_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[0] == 0 and all(w == pytest.approx(0.2) for w in waits[1:])
    assert clock.now == pytest.approx(1.0)  # 6 requests at 5/s: the 6th at t = 1 s


def test_bucket_refills_while_idle_up_to_its_burst():
    clock = FakeClock()
    bucket = TokenBucket(1, burst=2, clock=clock, sleep=clock.sleep)
    clock.now = 100.0
    assert [bucket.acquire() for _ in range(3)] == [0, 0, pytest.approx(1.0)]


def test_limiter_defaults_and_unlimited_kinds():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    assert limiter.rates == DEFAULT_RATES == {"image": 5.0, "video": 1.0}
    for _ in range(3):
        limiter.acquire("video")
        limiter.acquire("chat")  # not limited
    assert clock.now == pytest.approx(2.0)


def test_limiter_is_thread_safe():
    """11 threads released at once take 11 distinct places in the queue: with the clock
    stopped, their waits are exactly 0, 20 ms, ..., 200 ms (a lost update would repeat one)."""
    clock = FakeClock()
    limiter = RateLimiter({"image": 50}, clock=clock, sleep=lambda seconds: None)
    start, waits = threading.Barrier(11), []

    def take():
        start.wait(timeout=30)
        waits.append(limiter.acquire("image"))

    threads = [threading.Thread(target=take) for _ in range(11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(waits) == [pytest.approx(n / 50) for n in range(11)]


def test_parse_rates_and_spec():
    assert parse_rates("image=2, video=0.5") == {"image": 2.0, "video": 0.5}
    assert RateLimiter.from_spec("video=0.5").rates == {"image": 5.0, "video": 0.5}
    assert RateLimiter.from_spec("image=0").rates == {"video": 1.0}  # 0 = unlimited
    for bad in ("image", "image=fast", "=3", "video=-1"):
        with pytest.raises(ValueError):
            parse_rates(bad)


def test_one_env_spec_parser_for_every_name_number_setting():
    from storyc.backends.envspec import parse_numbers

    assert parse_numbers(" Image=2, ,video=0.5,image=3 ", "X") == {"image": 3.0, "video": 0.5}
    assert parse_numbers(None, "X") == parse_numbers("", "X") == {}
    for bad, why in (
        ("image", "expected name=value"),
        ("=3", "expected name=value"),
        ("video=", "expected name=value"),
        ("image=fast", "is not a number"),
        ("video=-1", "zero or more"),
        ("video=nan", "zero or more"),
    ):
        with pytest.raises(ValueError, match=f"^STORYC_RATE_LIMITS: .*{why}"):
            parse_numbers(bad, "STORYC_RATE_LIMITS")


def test_media_prices():
    assert pricing.image_cost() == 0.02
    assert pricing.image_cost(n_inputs=3) == pytest.approx(0.026)  # an edit's inputs: ~$0.002 each
    assert pricing.image_cost(n=4) == pytest.approx(0.08)
    assert pricing.video_cost(8, "720p") == pytest.approx(0.56)
    assert pricing.video_cost(8, "480p") == pytest.approx(0.40)
    assert pricing.video_cost(8, "480p", input_s=8) == pytest.approx(0.48)  # a video edit bills its input too


def test_one_row_per_model_and_resolution():
    assert pricing.video_cost(10, "1080p", model="grok-imagine-video-1.5") == pytest.approx(2.50)
    assert pricing.video_cost(10, "720p", model="grok-imagine-video-1.5-preview") == pytest.approx(1.40)  # alias
    assert pricing.video_cost(10, "480p", model="grok-imagine-video-1.5") == pytest.approx(0.80)
    # unknown: the kind's default model, and a resolution a row lacks at its dearest tier (errs high)
    assert pricing.video_cost(8, "720p", model="some-new-video-model") == pytest.approx(0.56)
    assert pricing.video_cost(8, "1080p", model="grok-imagine-video") == pytest.approx(0.56)
    assert pricing.price_of("grok-imagine-video", "image") == pricing.price_of(None, "image")
    assert {row.kind for row in pricing.MODELS.values()} == {"image", "video", "chat", "tts"}


def test_text_to_speech_is_priced_per_character_from_the_table():
    line = "Deep in the forest, the old oak kept a secret."
    assert pricing.tts_cost(line) == pytest.approx(15e-6 * len(line))
    assert pricing.tts_cost(line, model="some-new-tts") == pricing.tts_cost(line)  # the kind's default row
    assert not pricing.price_of(None, "tts").verified  # a third-party figure, marked so
    assert pricing.tts_cost("") == 0


def test_the_reported_cost_wins_over_the_table():
    from xai_sdk.proto import usage_pb2

    assert pricing.reported_or(usage_pb2.SamplingUsage(cost_in_usd_ticks=123 * 10**8), 0.56) == (1.23, "usage")
    assert pricing.reported_or(usage_pb2.SamplingUsage(), 0.56) == (0.56, "price_table")
    assert pricing.reported_or(None, 0.02) == (0.02, "price_table")


def test_chat_cost_prefers_reported_cost_then_tokens_then_estimate():
    assert pricing.chat_cost({"cost_in_usd_ticks": 12_345_000}) == pytest.approx(0.0012345)
    assert pricing.chat_cost({"prompt_tokens": 1_000_000, "completion_tokens": 0}) == pytest.approx(0.20)
    assert pricing.chat_cost({"prompt_tokens": 0, "completion_tokens": 1_000_000}) == pytest.approx(0.50)
    estimate = pricing.chat_cost()
    assert 0 < estimate < 0.002 < pricing.chat_cost(n_images=3) + 0.002
    assert pricing.chat_cost(n_images=3) > estimate


def test_chat_cost_reads_sdk_usage_protos():
    from xai_sdk.proto import usage_pb2

    assert pricing.chat_cost(usage_pb2.SamplingUsage(prompt_tokens=1000, completion_tokens=1000)) == pytest.approx(
        0.0007
    )
    assert pricing.chat_cost(usage_pb2.SamplingUsage(cost_in_usd_ticks=10**8)) == pytest.approx(0.01)


def _dry_run(tmp_path, models=None) -> dict:
    data = plan_to_story_data(
        StoryPlan.model_validate(story_plan("plan for: a fox\nUse exactly 1 character. Use exactly 1 scene."))
    )
    data["scenes"][0]["duration_seconds"] = 4
    if models:
        data["models"] = models
    tmp_path.mkdir(parents=True, exist_ok=True)
    story = tmp_path / "story.yaml"
    story.write_text(render_story_yaml(data, header=["dry run"], schema_ref="x.json"))
    result = run_build(BuildOptions(story=story, backend="xai", dry_run=True, cache_dir=tmp_path / "cache"))
    assert result.status == "dry_run"
    return result.dry_run


def test_dry_run_estimates_with_the_price_table_per_model(tmp_path):
    """`storyc build --dry-run --backend xai`: every check passing first time costs a sheet
    ($0.02), a keyframe edit of one sheet ($0.02 + $0.002), a 4 s clip at 720p and three
    vision checks; the maximum adds video edits that bill their input seconds too."""
    est = _dry_run(tmp_path)
    checks = pricing.chat_cost(n_images=1) + 2 * pricing.chat_cost(n_images=2)
    assert est["cost_min_usd"] == pytest.approx(0.02 + 0.022 + 4 * 0.07 + checks, abs=1e-4)
    edit = 4 * 0.07 + 4 * 0.01 + pricing.chat_cost(n_images=2)
    assert est["cost_max_usd"] >= est["cost_min_usd"] + 2 * edit - 1e-4  # two corrections
    newer = _dry_run(tmp_path / "v15", {"video": "grok-imagine-video-1.5"})
    assert newer["cost_min_usd"] - est["cost_min_usd"] == pytest.approx(4 * (0.14 - 0.07), abs=1e-4)
