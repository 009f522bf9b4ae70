"""storyc.backends.ratelimit (token buckets per call kind) and storyc.model.prices (the price table)."""

from __future__ import annotations

import threading

import pytest

from storyc.backends.ratelimit import DEFAULT_RATES, RateLimiter, TokenBucket, parse_rates
from storyc.model import prices as pricing

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
    assert pricing.image_cost(n_inputs=3) == pytest.approx(0.08)
    assert pricing.video_cost(8, "720p") == pytest.approx(0.56)
    assert pricing.video_cost(8, "480p") == pytest.approx(0.40)


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
