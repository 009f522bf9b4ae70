"""The fake xAI service is strict: it refuses what the real one refuses (so a wrong call
fails in the tests as it would in production), keeps its own bill, expires result URLs
and limits requests per model. Driven with the bare xai-sdk client, not storyc."""

from __future__ import annotations

import base64
import urllib.request

import grpc
import pytest
import xai_sdk
from xai_sdk.proto import deferred_pb2

from fake_xai.fixtures import TEST_KEY, _fake_xai_server, fake_xai  # noqa: F401 (fixtures)
from fake_xai.media import make_jpeg, make_mp4

pytestmark = pytest.mark.integration

JPEG = "data:image/jpeg;base64," + base64.b64encode(make_jpeg(seed=1)).decode()
PNG_LABELLED_JPEG = "data:image/png;base64," + base64.b64encode(make_jpeg(seed=1)).decode()
CLIP_4S = "data:video/mp4;base64," + base64.b64encode(make_mp4(4)).decode()
CLIP_9S = "data:video/mp4;base64," + base64.b64encode(make_mp4(9)).decode()
CLIP_1S = "data:video/mp4;base64," + base64.b64encode(make_mp4(1)).decode()
CLIP_16S = "data:video/mp4;base64," + base64.b64encode(make_mp4(16)).decode()
BIG_JPEG = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xff" + bytes(11 << 20)).decode()


@pytest.fixture
def client(fake_xai):
    c = xai_sdk.Client(api_key=TEST_KEY, api_host=fake_xai.host, use_insecure_channel=True, timeout=20)
    yield c
    c.close()


REFUSED = {
    "4 edit inputs": lambda c: c.image.sample("p", "m", image_urls=[JPEG] * 4),
    "a file URL": lambda c: c.image.sample("p", "m", image_url="file:///etc/passwd"),
    "a MIME type its bytes contradict": lambda c: c.image.sample("p", "m", image_url=PNG_LABELLED_JPEG),
    "an input over 10 MiB": lambda c: c.image.sample("p", "m", image_url=BIG_JPEG),
    "a blank prompt": lambda c: c.image.sample(" ", "m"),
    "a prompt over 4096 characters": lambda c: c.image.sample("x" * 4097, "m"),
    "n over 10": lambda c: c.image.sample_batch("p", "m", n=11),
    "a 16 s clip": lambda c: c.video.start("p", "m", image_url=JPEG, duration=16),
    "a 0 s clip": lambda c: c.video.start("p", "m", image_url=JPEG, duration=0),
    "an edit input over 8.7 s": lambda c: c.video.start("p", "m", video_url=CLIP_9S),
    "an edit with a duration": lambda c: c.video.start("p", "m", video_url=CLIP_4S, duration=4),
    "an edit with a ratio": lambda c: c.video.start("p", "m", video_url=CLIP_4S, aspect_ratio="16:9"),
    "an edit with a resolution": lambda c: c.video.start("p", "m", video_url=CLIP_4S, resolution="480p"),
    "a video labelled as an image": lambda c: c.video.start(
        "p", "m", video_url=JPEG.replace("image/jpeg", "video/mp4")
    ),
    "1080p on grok-imagine-video": lambda c: c.video.start(
        "p", "grok-imagine-video", image_url=JPEG, resolution="1080p"
    ),
    "1080p reference-to-video": lambda c: c.video.start(
        "p", "grok-imagine-video-1.5", reference_image_urls=[JPEG], resolution="1080p"
    ),
    "a reference video over 10 s": lambda c: c.video.start("p", "m", reference_image_urls=[JPEG], duration=12),
    "8 reference images": lambda c: c.video.start("p", "m", reference_image_urls=[JPEG] * 8, duration=5),
    "image and reference images together": lambda c: c.video.start(
        "p", "m", image_url=JPEG, reference_image_urls=[JPEG], duration=5
    ),
    # 1.5-only features on another model
    "last_frame on grok-imagine-video": lambda c: c.video.start(
        "p", "grok-imagine-video", image_url=JPEG, last_frame_url=JPEG, duration=5
    ),
    "a first frame beside references on grok-imagine-video": lambda c: c.video.start(
        "p", "grok-imagine-video", image_url=JPEG, reference_image_urls=[JPEG], duration=5
    ),
    "keyframes on grok-imagine-video": lambda c: c.video.start(
        "p", "grok-imagine-video", image_url=JPEG, keyframes=[{"image_url": JPEG, "timestamp": 2.0}], duration=5
    ),
    "voices on grok-imagine-video": lambda c: c.video.start(
        "p", "grok-imagine-video", image_url=JPEG, reference_audios=[{"voice_id": "ara"}], duration=5
    ),
    "8 reference images beside a first frame on 1.5": lambda c: c.video.start(
        "p", "grok-imagine-video-1.5", image_url=JPEG, reference_image_urls=[JPEG] * 8, duration=5
    ),
    "a last frame on a video edit": lambda c: c.video.start(
        "p", "grok-imagine-video-1.5", video_url=CLIP_4S, last_frame_url=JPEG
    ),
    # extensions: 2-10 new seconds onto a clip of 2-15 s (docs)
    "an 11 s extension": lambda c: c.video.extend_start("p", "grok-imagine-video", video_url=CLIP_4S, duration=11),
    "a 1 s extension": lambda c: c.video.extend_start("p", "grok-imagine-video", video_url=CLIP_4S, duration=1),
    "an extension of a 1 s clip": lambda c: c.video.extend_start("p", "grok-imagine-video", video_url=CLIP_1S),
    "an extension of a 16 s clip": lambda c: c.video.extend_start("p", "grok-imagine-video", video_url=CLIP_16S),
    "an extension of an image": lambda c: c.video.extend_start(
        "p", "grok-imagine-video", video_url=JPEG.replace("image/jpeg", "video/mp4")
    ),
}


@pytest.mark.parametrize("what", REFUSED)
def test_the_fake_refuses_what_the_real_service_refuses(client, fake_xai, what):
    with pytest.raises(grpc.RpcError) as info:
        REFUSED[what](client)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert fake_xai.billed_count() == 0  # a refused request is not billed


def test_what_it_accepts(client, fake_xai):
    client.image.sample("p", "m", image_urls=[JPEG] * 3, aspect_ratio="20:9", resolution="2k")
    client.image.sample_batch("p", "m", n=10)
    client.video.start("p", "grok-imagine-video-1.5", image_url=JPEG, duration=15, resolution="1080p")
    client.video.start("p", "grok-imagine-video", video_url=CLIP_4S)
    client.video.start("p", "grok-imagine-video-1.5", reference_image_urls=[JPEG] * 7, duration=10)
    client.video.start(
        "p",
        "grok-imagine-video-1.5",
        image_url=JPEG,
        last_frame_url=JPEG,
        reference_image_urls=[JPEG] * 7,
        duration=15,
        resolution="1080p",
    )
    client.video.start("p", "grok-imagine-video-1.5-preview", image_url=JPEG, last_frame_url=JPEG, duration=4)
    client.video.extend_start("p", "grok-imagine-video", video_url=CLIP_4S, duration=10)
    assert fake_xai.billed_count() == 8


def test_an_extension_holds_its_input_and_bills_the_new_seconds_at_720p_at_most(client, fake_xai):
    started = client.video.start("p", "grok-imagine-video-1.5", image_url=JPEG, duration=4, resolution="1080p")
    first = client.video.get(started.request_id)
    while first.status == deferred_pb2.PENDING:
        first = client.video.get(started.request_id)
    with urllib.request.urlopen(first.response.video.url) as response:
        made = response.read()
    extended = client.video.extend(
        "p", "grok-imagine-video-1.5", video_url="data:video/mp4;base64," + base64.b64encode(made).decode(), duration=6
    )
    assert extended.duration == 10  # the 4 s input and 6 new seconds
    [extension] = [b for b in fake_xai.bills if b.method == "ExtendVideo"]
    assert extension.usd == pytest.approx(6 * 0.14)  # 1.5 at 720p: the 1080p input does not raise it


def test_a_message_over_20_mib_is_refused_by_the_client_before_it_is_sent(client, fake_xai):
    huge = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xff" + bytes(8 << 20)).decode()
    with pytest.raises(grpc.RpcError) as info:
        client.image.sample("p", "m", image_urls=[huge] * 3)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in info.value.details() and fake_xai.count("GenerateImage") == 0


def test_the_bill_counts_billable_requests_with_their_price(client, fake_xai):
    client.image.sample("p", "grok-imagine-image", image_urls=[JPEG] * 2)  # $0.02 + 2 x $0.002
    fake_xai.inject("GenerateImage", "resource_exhausted")
    with pytest.raises(grpc.RpcError):
        client.image.sample("p", "grok-imagine-image")  # refused: not billed
    fake_xai.inject("GenerateImage", "deadline_exceeded")
    with pytest.raises(grpc.RpcError) as info:
        client.image.sample("p", "grok-imagine-image")  # done and billed, the answer lost
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    started = client.video.start("p", "grok-imagine-video", image_url=JPEG, duration=4, resolution="480p")
    assert [b.method for b in fake_xai.bills] == ["GenerateImage", "GenerateImage", "GenerateVideo"]
    assert fake_xai.billed_usd() == pytest.approx(0.024 + 0.02 + 4 * 0.05)
    polls = 0
    while client.video.get(started.request_id).status != deferred_pb2.DONE:
        polls += 1
    assert polls == fake_xai.pending_polls and fake_xai.billed_count() == 3  # polls are free


def test_responses_report_their_cost_by_default(client, fake_xai):
    response = client.image.sample("p", "grok-imagine-image", image_format="base64")
    assert response.cost_usd == pytest.approx(0.02)
    fake_xai.report_cost = False
    assert client.image.sample("p", "grok-imagine-image").cost_usd is None


def test_result_urls_expire_with_time(client, fake_xai):
    import urllib.error
    import urllib.request

    now = [1000.0]
    fake_xai.assets.clock = lambda: now[0]
    fake_xai.url_ttl_s = 0.3
    url = client.image.sample("p", "m").url
    assert urllib.request.urlopen(url, timeout=5).status == 200
    now[0] += 0.4
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=5)
    assert info.value.code == 404


def test_failed_jobs_carry_string_codes_like_the_real_service(client, fake_xai):
    fake_xai.pending_polls = 0
    fake_xai.inject("GenerateVideo", "failed")
    fake_xai.inject("GenerateVideo", "failed_moderation")
    codes = []
    for _ in range(2):
        started = client.video.start("p", "m", image_url=JPEG, duration=2)
        codes.append(client.video.get(started.request_id).response.error.code)
    assert codes == ["internal_error", "content_moderation"]


def test_rate_limits_per_model(client, fake_xai):
    fake_xai.rate_limits = {"grok-imagine-image": 0.01}  # one more every 100 s
    fake_xai.rate_burst = 2
    client.image.sample("p", "grok-imagine-image")
    client.image.sample("p", "grok-imagine-image")
    with pytest.raises(grpc.RpcError) as info:
        client.image.sample("p", "grok-imagine-image")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "grok-imagine-image" in info.value.details()
    client.image.sample("p", "another-image-model")  # its own limit
    assert fake_xai.rate_refusals == 1 and fake_xai.billed_count() == 3


def test_the_same_request_gives_the_same_image(client, fake_xai):
    first = client.image.sample("p", "m", image_format="base64").base64
    second = client.image.sample("p", "m", image_format="base64").base64
    other = client.image.sample("q", "m", image_format="base64").base64
    assert first == second != other


def test_faults_can_target_one_kind_of_request(client, fake_xai):
    fake_xai.inject("GenerateImage", "invalid_argument", match=lambda r: len(r.images) > 0)
    client.image.sample("p", "m")  # a generation: not matched
    with pytest.raises(grpc.RpcError):
        client.image.sample("p", "m", image_urls=[JPEG] * 2)
    assert fake_xai.pending_faults() == {}
