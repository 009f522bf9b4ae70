"""Sound on `storyc build --backend xai`: the real executor, the real xai-sdk client against
the fake gRPC service, the real httpx client against the fake text-to-speech endpoint.

What reaches the services: each clip's dialogue bound to its speakers in the prompt, the
speakers' voices as reference_audios on grok-imagine-video-1.5, generate_audio following
audio.native, one TTS request per narrated (or, with silent clips, spoken) line in its
voice; what the build makes of it (timed subtitles, report.json's TTS figures); which
edits re-render what; and a build killed in the middle of a scene's speech and resumed
pays for every request exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pysubs2
import pytest
from typer.testing import CliRunner

from fake_xai.fixtures import TEST_KEY, _fake_xai_server  # noqa: F401 (fixture)
from fake_xai.tts import FakeTts
from storyc.backends.xai.video import STARTING
from storyc.cli.app import app
from storyc.model.prices import tts_cost

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

FAST_ENV = {
    "STORYC_RENDER_SCALE": "0.1",
    "STORYC_XAI_POLL_INTERVAL": "0.05",
    "STORYC_XAI_RETRY_BASE": "0.01",
    "STORYC_RATE_LIMITS": "image=50,video=20",
}
NARRATION = "The old oak kept a secret."
EMBER = "Sage, what is that glow?"
SAGE = "Something old and kind."
runner = CliRunner()


def write_story(folder: Path, *, native: bool = True, narrate_scene_1: bool = True) -> Path:
    """Scene 1: Ember alone (narrated, or silent); scene 2, a branch of its own (its clip starts
    without waiting for scene 1's): Ember and Sage speak (narrated too when scene 1 is not)."""
    narration_1 = f'\n    narration: "{NARRATION}"' if narrate_scene_1 else ""
    narration_2 = "" if narrate_scene_1 else f'\n    narration: "{NARRATION}"'
    story = f"""\
title: The glow
style: soft watercolour illustration with ink outlines, warm light and visible paper texture
color_palette: amber, moss green, cream
models: {{video: grok-imagine-video-1.5}}
characters:
  - {{name: Ember, role: protagonist, visual_description: a small red fox with a white-tipped tail,
     personality_cues: [curious], voice: ara}}
  - {{name: Sage, role: mentor, visual_description: an old grey owl with round brass spectacles,
     personality_cues: [calm], voice: leo}}
scenes:
  - scene_id: 1
    title: The oak
    description: Ember walks to the oak.
    characters_present: [Ember]
    setting: autumn forest
    camera: wide shot
    mood: warm
    action: Ember walks between the roots
    duration_seconds: 4{narration_1}
  - scene_id: 2
    title: The question
    description: Ember asks Sage.
    characters_present: [Ember, Sage]
    setting: autumn forest
    camera: medium shot
    mood: warm
    action: Ember looks up at Sage
    duration_seconds: 8
    chain_from: none{narration_2}
    dialogue:
      - {{speaker: Ember, line: "{EMBER}"}}
      - {{speaker: Sage, line: "{SAGE}"}}
audio:
  native: {"true" if native else "false"}
  subtitles: soft
"""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "story.yaml"
    path.write_text(story)
    return path


@pytest.fixture(scope="module")
def tts_server():
    fake = FakeTts(TEST_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture
def services(_fake_xai_server, tts_server):
    fake, tts = _fake_xai_server, tts_server
    fake.reset()
    fake.pending_polls = 1
    tts.reset()
    yield fake, tts
    fake.reset()
    tts.reset()


def env_for(fake, tts) -> dict[str, str]:
    return {**fake.env(TEST_KEY), **tts.env(), **FAST_ENV}


def build(story: Path, out: Path, fake, tts):
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env_for(fake, tts).items():
            mp.setenv(name, value)
        result = runner.invoke(
            app, ["build", str(story), "--backend", "xai", "--out", str(out), "--cache", str(out.parent / "cache")]
        )
    assert result.exit_code == 0, result.output
    return json.loads((out / "report.json").read_text())


def clips(fake) -> dict[int, object]:
    """The image→video requests by scene (scene 2's prompt has the dialogue)."""
    requests = [r.request for r in fake.requests("GenerateVideo") if r.request.HasField("image")]
    return {2 if "Ember looks up" in r.prompt else 1: r for r in requests}


def ran(report: dict) -> set[str]:
    return {s["id"] for s in report["steps"] if s["status"] == "done" and not s["cached"]}


def test_voices_generate_audio_and_narration_reach_the_services(services, tmp_path):
    fake, tts = services
    out = tmp_path / "out"
    report = build(write_story(tmp_path), out, fake, tts)

    by_scene = clips(fake)
    scene_2 = by_scene[2]
    assert scene_2.HasField("generate_audio") and scene_2.generate_audio is True
    assert [a.voice_id for a in scene_2.reference_audios] == ["ara", "leo"]
    assert f'Ember says, in the voice of <AUDIO_1>: "{EMBER}"' in scene_2.prompt
    assert f'Sage says, in the voice of <AUDIO_2>: "{SAGE}"' in scene_2.prompt
    scene_1 = by_scene[1]
    assert scene_1.generate_audio is True and list(scene_1.reference_audios) == []
    assert NARRATION not in scene_1.prompt and "says" not in scene_1.prompt  # narration is spoken by TTS

    [spoken] = tts.answered()  # one line for the text-to-speech service: the narration
    assert spoken.body["text"] == NARRATION and spoken.body["voice_id"] == "eve" and spoken.body["language"] == "en"
    assert spoken.authorization == f"Bearer {TEST_KEY}"

    assert report["api_calls"]["tts"] == 1
    assert report["speech"]["tts_calls"] == 1 and report["speech"]["by_source"] == {"local": 0, "tts": 1, "clip": 2}
    assert report["speech"]["tts_seconds"] == pytest.approx(len(NARRATION.split()) / 2.5, abs=0.01)
    speech_1 = next(s for s in report["steps"] if s["id"] == "speech:1")
    assert speech_1["cost_usd"] == pytest.approx(tts_cost(NARRATION)) and speech_1["calls"] == {"tts": 1}
    # the clip speaks the dialogue: its cues are timed at the stated 2.5 words per second
    cues = [(e.start / 1000, e.end / 1000, e.plaintext) for e in pysubs2.load(str(out / "final_video.srt"))]
    assert [c[2] for c in cues] == [NARRATION, f"Ember: {EMBER}", f"Sage: {SAGE}"]
    assert cues[1][1] - cues[1][0] == pytest.approx(len(EMBER.split()) / 2.5, abs=0.002)
    state = json.loads((out / "state.json").read_text())
    lines = state["steps"]["speech:2"]["lines"]
    assert [(line["source"], line["estimated"], line["voice"]) for line in lines] == [
        ("clip", True, "ara"),
        ("clip", True, "leo"),
    ]
    # the key went in the Authorization header only
    for folder in (out, tmp_path / "cache"):
        for path in folder.rglob("*"):
            if path.is_file():
                assert TEST_KEY.encode() not in path.read_bytes(), path


def test_an_edit_rerenders_the_clip_only_when_its_prompt_holds_the_line(services, tmp_path):
    fake, tts = services
    story, out = write_story(tmp_path), tmp_path / "out"
    build(story, out, fake, tts)
    videos, spoken = fake.count("GenerateVideo"), len(tts.answered())

    story.write_text(story.read_text().replace(SAGE, "Something very old."))
    report = build(story, out, fake, tts)
    assert ran(report) == {"speech:2", "video:2", "assemble", "script"}  # the line is in scene 2's prompt
    assert fake.count("GenerateVideo") == videos + 1 and len(tts.answered()) == spoken

    story.write_text(story.read_text().replace(NARRATION, "Long ago, the oak kept a secret."))
    report = build(story, out, fake, tts)
    assert ran(report) == {"speech:1", "assemble", "script"}  # narration is never in a prompt
    assert fake.count("GenerateVideo") == videos + 1 and len(tts.answered()) == spoken + 1
    assert tts.answered()[-1].body["text"] == "Long ago, the oak kept a secret."


def test_silent_clips_and_every_line_spoken_by_text_to_speech(services, tmp_path):
    fake, tts = services
    out = tmp_path / "out"
    report = build(write_story(tmp_path, native=False), out, fake, tts)
    for request in fake.requests("GenerateVideo"):
        assert request.request.HasField("generate_audio") and request.request.generate_audio is False
        assert list(request.request.reference_audios) == [] and "says" not in request.request.prompt
    assert sorted((r.body["voice_id"], r.body["text"]) for r in tts.answered()) == [
        ("ara", EMBER),
        ("eve", NARRATION),
        ("leo", SAGE),
    ]
    assert report["api_calls"]["tts"] == 3 and report["speech"]["by_source"] == {"local": 0, "tts": 3, "clip": 0}


def test_a_build_killed_in_the_middle_of_a_scenes_speech_pays_for_every_request_once(services, tmp_path):
    from prefect.settings import PREFECT_API_URL

    fake, tts = services
    story = write_story(tmp_path, native=False, narrate_scene_1=False)  # scene 2: narration + 2 lines
    out = tmp_path / "out"
    fake.pending_polls = 10**6  # the clips do not finish while the first build runs
    tts.inject("hang", after=1)  # the scene's first line is answered, the second held
    env = {**os.environ, **env_for(fake, tts), "PREFECT_API_URL": PREFECT_API_URL.value() or ""}
    cmd = [sys.executable, "-m", "storyc", "build", str(story), "--backend", "xai"]
    cmd += ["--out", str(out), "--cache", str(tmp_path / "cache")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    journaled: dict = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                journaled = json.loads((out / "state.json").read_text()).get("jobs", {})
            except (OSError, ValueError):
                journaled = {}
            # both jobs accepted, their ids journaled (an intent marker alone is a start in
            # flight, which the next build would rightly report as possibly billed)
            accepted = [v for v in journaled.values() if not str(v).startswith(STARTING)]
            if len(accepted) == 2 and tts.arrived == 2 and len(tts.answered()) == 1:
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # no cleanup: like a crash or kill -9
        proc.wait(timeout=30)
        tts.release()  # the held request ends unanswered (503): never billed
    assert len(journaled) == 2 and not any(str(v).startswith(STARTING) for v in journaled.values())
    assert tts.arrived == 2, (journaled, tts.arrived, proc.stderr.read()[-2000:])
    assert len(tts.answered()) == 1

    for job in fake.jobs.values():  # the provider finishes the clips meanwhile
        job.polls_left = 0
    fake.pending_polls = 1
    report = build(story, out, fake, tts)

    # every paid request, across both builds, was made exactly once
    spoken = Counter((r.body["voice_id"], r.body["text"]) for r in tts.answered())
    assert spoken == Counter({("eve", NARRATION): 1, ("ara", EMBER): 1, ("leo", SAGE): 1})
    for method in ("GenerateImage", "GenerateVideo", "GetCompletion"):
        sent = Counter((*r.texts(), *r.image_urls()) for r in fake.requests(method))
        assert sent and set(sent.values()) == {1}, method
    assert fake.count("GenerateVideo") == 2  # both journaled jobs were re-attached, not started again
    assert report["calls_replayed"] == 1  # the narration, from the killed build's memo
    # the two lines paid in this build; the two clips the killed build could not report are
    # counted by the build that re-attached to them
    assert report["api_calls"]["tts"] == 2 and report["api_calls"]["video"] == 2
    assert (out / "final_video.mp4").is_file() and (out / "final_video.srt").is_file()
