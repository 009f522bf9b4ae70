"""`storyc build --backend xai` end to end: the real executor, the real xai-sdk client, the
fake xAI gRPC service; assertions on the output folder and on what reached the service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import av
import pytest
from typer.testing import CliRunner

from fake_xai import decode_data_uri
from fake_xai.answers import story_plan
from fake_xai.fixtures import TEST_KEY, _fake_xai_server  # noqa: F401 (fixture)
from storyc.author.planner import plan_to_story_data, render_story_yaml
from storyc.cli.app import app
from storyc.load.loader import load_story
from storyc.model.story_plan import StoryPlan
from storyc.prompts.slots import allocate_slots, judge_characters

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

SCENE_SECONDS = 3
FAST_ENV = {
    "STORYC_RENDER_SCALE": "0.1",
    "STORYC_XAI_POLL_INTERVAL": "0.05",
    "STORYC_XAI_RETRY_BASE": "0.01",
    "STORYC_RATE_LIMITS": "image=50,video=20",  # rate limiting has its own tests; keep these fast
}
runner = CliRunner()


MODELS = {"image": "img-model-x", "video": "vid-model-y", "chat": "chat-model-z", "vision": "vis-model-w"}


def write_story(folder: Path, models: dict | None = None) -> Path:
    """3 scenes: [Ember, Sage] fresh (2 refs), [Sage, Ember] chained (3 refs), [Ember] with
    chain_from: none (1 ref: the single-image edit)."""
    plan = story_plan(
        "Create a visual story plan for: a fox and an owl\nUse exactly 2 characters. Use exactly 3 scenes."
    )
    data = plan_to_story_data(StoryPlan.model_validate(plan))
    if models:
        data["models"] = models
    for scene in data["scenes"]:
        scene["duration_seconds"] = SCENE_SECONDS
    data["scenes"][1]["characters_present"] = ["Sage", "Ember"]
    data["scenes"][2]["characters_present"] = ["Ember"]
    data["scenes"][2]["chain_from"] = "none"
    path = folder / "story.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(render_story_yaml(data, header=["e2e"], schema_ref="x.json"))
    return path


def env_for(fake) -> dict[str, str]:
    return {**fake.env(TEST_KEY), **FAST_ENV}


def run_build(story: Path, out: Path, fake, *extra: str):
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env_for(fake).items():
            mp.setenv(k, v)
        return runner.invoke(
            app,
            ["build", str(story), "--backend", "xai", "--out", str(out), "--cache", str(out.parent / "cache"), *extra],
        )


def first_time(marker: str):
    """A score_fn: 0.5 the first time a check prompt contains `marker`, else the default."""
    seen: set[str] = set()

    def score(text: str):
        if marker in text and marker not in seen:
            seen.add(marker)
            return 0.5
        return None

    return score


@pytest.fixture(scope="module")
def built(_fake_xai_server, tmp_path_factory):
    fake = _fake_xai_server
    fake.reset()
    fake.pending_polls = 2
    low_keyframe = first_time("keyframe of scene 1,")
    low_last_frame = first_time("last frame of the video clip of scene 1,")
    fake.score_fn = lambda text: low_keyframe(text) or low_last_frame(text)
    folder = tmp_path_factory.mktemp("e2e")
    story = write_story(folder, models=MODELS)
    out = folder / "out"
    result = run_build(story, out, fake)
    calls = fake.requests()
    fake.reset()
    assert result.exit_code == 0, result.output
    return SimpleNamespace(
        result=result,
        out=out,
        story=load_story(story).story,
        calls=calls,
        state=json.loads((out / "state.json").read_text()),
        report=json.loads((out / "report.json").read_text()),
    )


def calls_of(built, method):
    return [c for c in built.calls if c.method == method]


def file_bytes(built, rel: str) -> bytes:
    return (built.out / rel).read_bytes()


def test_build_writes_the_full_output_folder_and_a_valid_video(built):
    out = built.out
    for rel in ["script.md", "state.json", "report.json", "final_video.mp4", "storyboard.html"]:
        assert (out / rel).is_file(), rel
    assert sorted(p.name for p in (out / "character_sheets").iterdir()) == ["Ember_v1.jpg", "Sage_v1.jpg"]
    assert {"scene_1_v1.jpg", "scene_1_v2.jpg", "scene_2_v1.jpg", "scene_3_v1.jpg"} <= {
        p.name for p in (out / "keyframes").iterdir()
    }
    assert {"scene_1.mp4", "scene_1_c1.mp4", "scene_2.mp4", "scene_3.mp4"} <= {
        p.name for p in (out / "videos").iterdir()
    }
    with av.open(str(out / "final_video.mp4")) as container:
        assert container.streams.video and container.streams.audio
        crossfades = 0.5 * sum(1 for s in built.story.scenes[1:] if s.transition == "crossfade")
        assert container.duration / 1e6 == pytest.approx(3 * SCENE_SECONDS - crossfades, abs=0.3)
        frame = next(container.decode(video=0))
        assert frame.width > frame.height  # 16:9
    assert built.report["backend"] == "xai"


def test_the_story_models_reach_the_service(built):
    for method, model in (("GenerateImage", "image"), ("GenerateVideo", "video"), ("GetCompletion", "vision")):
        assert {c.request.model for c in calls_of(built, method)} == {MODELS[model]}, method


def test_every_image_and_video_prompt_starts_with_the_style_lock(built):
    media = calls_of(built, "GenerateImage") + calls_of(built, "GenerateVideo")
    assert len(media) >= 10
    style = built.story.style
    assert all(c.prompt.startswith(style) for c in media), [c.prompt[:60] for c in media]


def test_character_sheet_prompts_hold_the_description_verbatim(built):
    for character in built.story.characters:
        sent = built.state["steps"][f"character:{character.name}"]["prompts"]["sheet"]
        assert character.visual_description in sent
        assert sent in [c.prompt for c in calls_of(built, "GenerateImage")]


def test_keyframe_edits_carry_at_most_3_references_in_slot_order(built):
    story = built.story
    by_prompt = {c.prompt: c for c in calls_of(built, "GenerateImage")}
    for index, scene in enumerate(story.scenes):
        step = built.state["steps"][f"keyframe:{scene.scene_id}"]
        call = by_prompt[step["prompts"]["compose"]]
        expected = []
        for slot in allocate_slots(story, index).slots:
            if slot.kind == "character":
                expected.append(file_bytes(built, built.state["steps"][f"character:{slot.name}"]["outputs"]["sheet"]))
            else:
                # the chain frame: the last frame of the clip the previous video step kept
                expected.append(
                    file_bytes(built, built.state["steps"][f"video:{slot.scene_id}"]["outputs"]["last_frame"])
                )
        sent = [decode_data_uri(u) for u in call.image_urls()]
        assert 1 <= len(sent) <= 3 and sent == expected, scene.scene_id
        # one reference → `image_url`; two or three → `image_urls`
        assert call.request.HasField("image") == (len(expected) == 1)
    assert [len(allocate_slots(story, i).slots) for i in range(3)] == [2, 3, 1]


def test_a_low_keyframe_score_sends_a_fix_anchored_on_the_worst_characters_sheet(built):
    """The vision answer names its characters (the list-of-{name, score} schema), so the fix
    knows whose sheet to send as <IMAGE_2> (with a map, the answer came back {} and the fix
    went out from memory, as a single-image edit)."""
    fixes = [c for c in calls_of(built, "GenerateImage") if "Change ONLY" in c.prompt]
    assert len(fixes) == 1
    [fix] = fixes
    step = built.state["steps"]["keyframe:1"]
    assert step["prompts"]["fix_2"] == fix.prompt
    worst = next(n for n in ("Ember", "Sage") if f"{n} must look exactly as in <IMAGE_2>" in fix.prompt)
    sheet = built.state["steps"][f"character:{worst}"]["outputs"]["sheet"]
    assert [decode_data_uri(u) for u in fix.image_urls()] == [
        file_bytes(built, "keyframes/scene_1_v1.jpg"),
        file_bytes(built, sheet),
    ]
    assert "in <IMAGE_1>:" in fix.prompt


def test_video_prompts_hold_no_visual_description(built):
    videos = calls_of(built, "GenerateVideo")
    assert len(videos) == 4  # 3 clips + 1 drift correction
    for call in videos:
        for character in built.story.characters:
            words = character.visual_description.split()
            # not even 6 consecutive words of any description
            for i in range(len(words) - 5):
                assert " ".join(words[i : i + 6]) not in call.prompt
    starts = [c for c in videos if c.request.HasField("image")]
    edits = [c for c in videos if c.request.HasField("video")]
    assert len(starts) == 3 and len(edits) == 1
    assert decode_data_uri(edits[0].request.video.url) == file_bytes(built, "videos/scene_1.mp4")
    assert all(c.request.duration == SCENE_SECONDS for c in starts)


def test_vision_checks_get_the_right_images(built):
    story = built.story
    checks = {c.texts()[0]: c for c in calls_of(built, "GetCompletion")}
    for character in story.characters:
        step = built.state["steps"][f"character:{character.name}"]
        call = checks[step["prompts"]["check"]]
        assert [decode_data_uri(u) for u in call.image_urls()] == [file_bytes(built, step["outputs"]["sheet"])]
    for index, scene in enumerate(story.scenes):
        step = built.state["steps"][f"keyframe:{scene.scene_id}"]
        call = checks[step["prompts"]["check"]]
        sheets = [
            file_bytes(built, built.state["steps"][f"character:{n}"]["outputs"]["sheet"])
            for n in judge_characters(story, index)
        ]
        sent = [decode_data_uri(u) for u in call.image_urls()]
        assert sent[1:] == sheets
        assert sent[0] == file_bytes(built, step["outputs"]["keyframe"])  # the image under test first
        video_step = built.state["steps"][f"video:{scene.scene_id}"]
        last = [decode_data_uri(u) for u in checks[video_step["prompts"]["check"]].image_urls()]
        assert last[0] == file_bytes(built, video_step["outputs"]["last_frame"]) and last[1:] == sheets


def test_the_key_is_sent_and_never_written(built):
    assert {c.metadata.get("authorization") for c in built.calls} == {f"Bearer {TEST_KEY}"}
    assert TEST_KEY not in built.result.output
    root = built.out.parent
    for path in root.rglob("*"):
        if path.is_file():
            assert TEST_KEY.encode() not in path.read_bytes(), path


def test_report_counts_calls_and_cost(built):
    report = built.report
    assert report["api_calls"]["image"] == len(calls_of(built, "GenerateImage"))
    assert report["api_calls"]["video"] == len(calls_of(built, "GenerateVideo"))
    assert report["api_calls"]["vision"] == len(calls_of(built, "GetCompletion"))
    # price table: 7 images ($0.02 each + inputs), 4 clips of 3 s at 720p ($0.07/s), small vision
    media_floor = 7 * 0.02 + 4 * SCENE_SECONDS * 0.07
    assert media_floor < report["cost_usd"] < media_floor + 0.25


def test_rebuild_is_up_to_date_without_calls(built, _fake_xai_server):
    fake = _fake_xai_server
    fake.reset()
    result = run_build(Path(built.state["story_path"]), built.out, fake)
    assert result.exit_code == 0 and "up to date" in result.output
    assert fake.requests() == []


# ─── faults ──────────────────────────────────────────────────────────────────


@pytest.fixture
def fake(_fake_xai_server):
    _fake_xai_server.reset()
    _fake_xai_server.pending_polls = 1
    yield _fake_xai_server
    _fake_xai_server.reset()


def test_transient_faults_end_in_a_finished_build_without_paying_twice(fake, tmp_path):
    story = write_story(tmp_path)
    fake.inject("GenerateImage", "resource_exhausted", times=2)
    fake.inject("GenerateImage", "moderation", times=1)
    fake.inject("GenerateImage", "truncated_once", times=1)
    fake.inject("GenerateVideo", "resource_exhausted", times=2)
    fake.inject("GetDeferredVideo", "unavailable", times=6)
    fake.inject("GetDeferredVideo", "resource_exhausted", times=2)
    fake.inject("GetDeferredVideo", "deadline_exceeded", times=1)  # a poll is free: retried
    fake.inject("GetCompletion", "unavailable", times=1)
    result = run_build(story, tmp_path / "out", fake)
    assert result.exit_code == 0, result.output
    assert fake.pending_faults() == {}  # every fault was met
    assert len(fake.jobs) == 3  # one paid job per clip; the 2 rate-limited starts were refused, not billed
    assert (tmp_path / "out" / "final_video.mp4").is_file()
    assert json.loads((tmp_path / "out" / "state.json").read_text())["jobs"] == {}
    style = load_story(story).story.style
    media = fake.requests("GenerateImage") + fake.requests("GenerateVideo")
    assert all(c.prompt.startswith(style) for c in media)  # reworded prompts too


def test_expired_job_and_expired_url_are_regenerated(fake, tmp_path):
    story = write_story(tmp_path)
    fake.inject("GenerateVideo", "expired", times=1)
    fake.inject("GenerateImage", "asset_404", times=1)
    result = run_build(story, tmp_path / "out", fake)
    assert result.exit_code == 0, result.output
    assert len(fake.jobs) == 4  # 3 clips + the restart of the expired job (never delivered)


def test_a_video_url_gone_before_download_is_regenerated_once(fake, tmp_path):
    """The job was delivered but its URL 404s: the clip must be made again (a new job), the
    journal must not re-attach to the dead URL, and only that clip is paid again."""
    story = write_story(tmp_path)
    fake.inject("GenerateVideo", "asset_404", times=1)
    result = run_build(story, tmp_path / "out", fake)
    assert result.exit_code == 0, result.output
    assert len(fake.jobs) == 4  # 3 clips + the one regenerated
    assert json.loads((tmp_path / "out" / "state.json").read_text())["jobs"] == {}


def test_a_failed_video_is_a_clear_error(fake, tmp_path):
    story = write_story(tmp_path)
    fake.inject("GenerateVideo", "failed", times=1)
    result = run_build(story, tmp_path / "out", fake)
    assert result.exit_code == 1
    assert "video generation failed [internal_error]: the fake renderer gave up" in result.output
    assert "Traceback" not in result.output
    assert len(fake.jobs) <= 3  # no clip started twice: a FAILED job is reported, not retried


def test_moderation_block_twice_names_the_scene(fake, tmp_path):
    story = write_story(tmp_path)
    fake.inject("GenerateVideo", "moderation", times=10)
    result = run_build(story, tmp_path / "out", fake)
    assert result.exit_code == 1 and "moderation" in result.output
    assert "video:" in result.output and "Traceback" not in result.output
    assert "rewrite scene 1's action, description or mood" in result.output  # names the scene


@pytest.mark.parametrize(
    "method, fault, attempts",
    [
        ("GetCompletion", "deadline_exceeded", 1),  # possibly billed: never repeated
        ("GenerateImage", "resource_exhausted", 6),  # 5 backoff retries (STORYC_XAI_MAX_RETRIES default)
        ("GenerateImage", "invalid_argument", 1),  # nothing else is retried
        ("GenerateVideo", "expired", 2),  # one restart, then a clear error: no more jobs
    ],
)
def test_a_persistent_fault_is_tried_exactly_as_specified_in_a_build(fake, tmp_path, method, fault, attempts):
    """The build's step retries must not multiply the backend's bounds."""
    story = write_story(tmp_path)
    fake.inject(method, fault, times=1000)
    result = run_build(story, tmp_path / "out", fake)
    assert result.exit_code == 1 and "Traceback" not in result.output
    # steps run in parallel: count the attempts of each distinct request
    per_request = Counter((*c.texts(), *c.image_urls()) for c in fake.requests(method))
    assert per_request and set(per_request.values()) == {attempts}, (per_request, result.output)


def test_a_build_killed_while_polling_reattaches(fake, tmp_path):
    from prefect.settings import PREFECT_API_URL

    story = write_story(tmp_path)
    out = tmp_path / "out"
    fake.pending_polls = 10**6  # the clips never finish while the first build runs
    env = {**os.environ, **env_for(fake), "PREFECT_API_URL": PREFECT_API_URL.value() or ""}
    cmd = [
        sys.executable,
        "-m",
        "storyc",
        "build",
        str(story),
        "--backend",
        "xai",
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    journaled: dict = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                journaled = json.loads((out / "state.json").read_text()).get("jobs", {})
            except (OSError, ValueError):
                journaled = {}
            polled = {c.request.request_id for c in fake.requests("GetDeferredVideo")}
            if len(journaled) >= 2 and set(journaled.values()) <= polled:  # ids, not start markers
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # no cleanup: like a crash or kill -9
        proc.wait(timeout=30)
    assert len(journaled) == 2, "the two independent clips (scenes 1 and 3) were journaled"
    started_before = fake.count("GenerateVideo")
    assert started_before == 2

    # The provider finishes the jobs meanwhile; the next build must re-attach, not pay again.
    for job in fake.jobs.values():
        job.polls_left = 0
    fake.pending_polls = 1
    polled_before = {c.request.request_id for c in fake.requests("GetDeferredVideo")}
    result = run_build(story, out, fake)
    assert result.exit_code == 0, result.output
    assert fake.count("GenerateVideo") == started_before + 1  # only scene 2's clip is new
    after = [c.request.request_id for c in fake.requests("GetDeferredVideo")]
    assert set(journaled.values()) <= set(after) and set(journaled.values()) <= polled_before
    assert json.loads((out / "state.json").read_text())["jobs"] == {}
    assert (out / "final_video.mp4").is_file()
