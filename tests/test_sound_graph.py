"""Sound in the step graph: a speech step per scene that says something, what each backend
voices, which keys an edit of a line, a voice or an audio setting changes, selection, the
TTS estimate of a dry run, and the video prompt that binds each line to its speaker."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from storyc.graph.builder import build_graph
from storyc.graph.estimate import planned_calls
from storyc.load.loader import load_story
from storyc.model import prices
from storyc.model.speech import voiced_script
from storyc.prompts.promptset import PromptSet
from storyc.run.local import is_local

pytestmark = pytest.mark.unit

STORY = """\
title: The Glow
style: soft watercolour illustration with ink outlines, warm light and paper texture
color_palette: amber, moss green, cream
models: {video: grok-imagine-video-1.5}
characters:
  - {name: Ember, role: protagonist, visual_description: a small red fox with a white-tipped tail, personality_cues: [curious], voice: ara}
  - {name: Sage, role: mentor, visual_description: an old grey owl with round spectacles, personality_cues: [calm], voice: leo}
  - {name: Moss, role: supporting, visual_description: a green frog with a straw hat, personality_cues: [shy]}
scenes:
  - scene_id: 1
    title: The oak
    description: d
    characters_present: [Ember]
    setting: autumn forest
    camera: wide shot
    mood: warm
    action: Ember walks between the roots
    duration_seconds: 6
    narration: "Deep in the forest, the old oak kept a secret."
  - scene_id: 2
    title: The question
    description: d
    characters_present: [Ember, Sage, Moss]
    setting: autumn forest
    camera: medium shot
    mood: warm
    action: Ember looks up at Sage
    duration_seconds: 8
    dialogue:
      - {speaker: Ember, line: "Sage, what is that glow?"}
      - {speaker: Moss, line: "I saw it too."}
      - {speaker: Sage, line: "Something old."}
  - scene_id: 3
    title: Quiet
    description: d
    characters_present: [Ember]
    setting: autumn forest
    camera: close up
    mood: dusk
    action: Ember sleeps
    duration_seconds: 4
audio:
  music: theme.wav
  subtitles: soft
"""


def _write(folder: Path, data=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "theme.wav").write_bytes(b"RIFF fake music")
    path = folder / "story.yaml"
    if data is None:
        path.write_text(STORY)
    else:
        YAML().dump(data, path.open("w"))
    return path


def _graph(path: Path, backend: str = "offline"):
    loaded = load_story(path)
    return build_graph(loaded, PromptSet(loaded.story, story_path=loaded.path), backend=backend)


@pytest.fixture
def story_path(tmp_path) -> Path:
    return _write(tmp_path / "s")


def test_a_scene_that_says_something_has_a_speech_step_that_the_assembly_needs(story_path):
    graph = _graph(story_path)
    assert [sid for sid in graph.steps if sid.startswith("speech:")] == ["speech:1", "speech:2"]  # scene 3 is silent
    assert graph.steps["speech:2"].deps == ()
    assert set(graph.steps["assemble"].deps) == {"video:1", "video:2", "video:3", "speech:1", "speech:2"}
    assert {"speech:1", "speech:2"} <= set(graph.steps["script"].deps)
    # offline, every line is spoken locally: no call, the step runs without a backend
    lines = graph.steps["speech:2"].static["lines"]
    assert [(line["speaker"], line["source"]) for line in lines] == [
        ("Ember", "local"),
        ("Moss", "local"),
        ("Sage", "local"),
    ]
    assert lines[0]["local_voice"].startswith("en-us+f1")  # ara's local voice
    assert graph.steps["speech:2"].static["engines"]["local"]["engine"].startswith("espeakng-loader ")
    assert is_local(graph.steps["speech:2"]) and not graph.steps["speech:2"].calls_max


def test_who_voices_each_line_on_each_backend(story_path):
    story = load_story(story_path).story
    assert {v.source for v in voiced_script(story, 1, "offline")} == {"local"}
    on_xai = voiced_script(story, 1, "xai")  # the clip speaks the dialogue (audio.native)
    assert [(v.line.speaker, v.voice, v.source) for v in on_xai] == [
        ("Ember", "ara", "clip"),
        ("Moss", None, "clip"),
        ("Sage", "leo", "clip"),
    ]
    assert [(v.line.kind, v.voice, v.source) for v in voiced_script(story, 0, "xai")] == [("narration", "eve", "tts")]
    silent = story.model_copy(update={"audio": story.audio.model_copy(update={"native": False})})
    spoken = voiced_script(silent, 1, "xai")  # silent clips: text to speech voices the dialogue too
    assert [v.source for v in spoken] == ["tts"] * 3 and spoken[1].voice in ("eve", "ara", "leo", "rex", "sal")


def test_xai_speech_is_a_paid_step_priced_per_character(story_path):
    graph = _graph(story_path, "xai")
    narration = graph.steps["speech:1"]
    assert narration.calls_min == narration.calls_max == {"tts": 1}
    assert narration.cost_min == pytest.approx(prices.tts_cost("Deep in the forest, the old oak kept a secret."))
    assert not is_local(narration)
    dialogue = graph.steps["speech:2"]  # the clip speaks these: estimated, free, local
    assert dialogue.calls_max == {} and is_local(dialogue)
    assert dialogue.static["engines"] == {
        "clip": {"words_per_second": 2.5, "min_line_s": 0.5},
    }
    estimate = planned_calls(graph, graph.order)
    assert estimate["calls_min"]["tts"] == estimate["calls_max"]["tts"] == 1


def _fingerprints(folder: Path, data, backend: str = "offline") -> dict[str, str]:
    return {sid: s.fingerprint for sid, s in _graph(_write(folder, data), backend).steps.items()}


def _line(text):
    def edit(d):
        d["scenes"][1]["dialogue"][1]["line"] = text

    return edit


def _set(*path_and_value):
    *path, value = path_and_value

    def edit(d):
        target = d
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return edit


# edit → the steps whose fingerprint changes, offline and on xai (script always changes). The
# assembly's key follows a speech step's new outputs (its lines' audio and timing) through its deps.
SOUND_KEY_CASES = [
    ("a dialogue line", _line("I saw it first."), {"speech:2"}, {"speech:2", "video:2"}),
    (
        "the narration",
        _set("scenes", 0, "narration", "Long ago, the oak kept a secret."),
        {"speech:1"},
        {"speech:1"},  # narration is never in the video prompt
    ),
    ("a speaker's voice", _set("characters", 0, "voice", "eve"), {"speech:2"}, {"speech:2", "video:2"}),
    ("the narration voice", _set("audio", "narration_voice", "sal"), {"speech:1"}, {"speech:1"}),
    ("the music level", _set("audio", "music_volume_db", -24), {"assemble"}, {"assemble"}),
    ("the subtitle mode", _set("audio", "subtitles", "burned"), {"assemble"}, {"assemble"}),
    ("the loudness", _set("audio", "loudness_lufs", -23), {"assemble"}, {"assemble"}),
    (
        "native sound off",
        _set("audio", "native", False),
        {"video:1", "video:2", "video:3", "assemble"},  # silent clips
        # silent clips, and text to speech now voices the dialogue (no longer in the prompt)
        {"video:1", "video:2", "video:3", "speech:2", "assemble"},
    ),
    (
        "a scene's duration",
        _set("scenes", 1, "duration_seconds", 9),
        {"video:2", "speech:2", "assemble"},  # the lines are placed again
        {"video:2", "speech:2", "assemble"},
    ),
]


@pytest.mark.parametrize("backend", ["offline", "xai"])
@pytest.mark.parametrize("name,edit,offline,xai", SOUND_KEY_CASES, ids=[c[0] for c in SOUND_KEY_CASES])
def test_an_edit_of_the_sound_changes_exactly_the_keys_it_should(tmp_path, name, edit, offline, xai, backend):
    base = YAML(typ="safe").load(STORY)
    before = _fingerprints(tmp_path / "a", base, backend)
    data = copy.deepcopy(base)
    edit(data)
    after = _fingerprints(tmp_path / "b", data, backend)
    changed = {sid for sid in before if before[sid] != after.get(sid)}
    assert changed == (offline if backend == "offline" else xai) | {"script"}


def test_the_music_file_content_is_part_of_the_assembly_key(story_path):
    before = _graph(story_path).steps
    (story_path.parent / "theme.wav").write_bytes(b"RIFF another tune")
    after = _graph(story_path).steps
    assert {sid for sid in before if before[sid].fingerprint != after[sid].fingerprint} == {"assemble"}


def test_a_silent_story_has_no_speech_steps_and_keeps_its_assembly_and_video_keys(tmp_path):
    data = YAML(typ="safe").load(STORY)
    for scene in data["scenes"]:
        scene.pop("narration", None)
        scene.pop("dialogue", None)
    for character in data["characters"]:
        character.pop("voice", None)
    data.pop("audio")
    graph = _graph(_write(tmp_path / "silent", data))
    assert not any(s.kind == "speech" for s in graph.steps.values())
    assert "sound" not in graph.steps["assemble"].static
    assert "audio" not in graph.steps["video:2"].static


def test_select_a_scene_takes_its_speech_and_speech_selects_alone(story_path):
    graph = _graph(story_path)
    assert graph.select("scene:2") == {"keyframe:2", "video:2", "speech:2"}
    assert graph.select("scene:3") == {"keyframe:3", "video:3"}  # a silent scene has none
    assert graph.select("speech:2+") == {"speech:2", "assemble", "script"}


def test_the_xai_video_prompt_binds_each_line_to_its_speaker_and_voice(story_path):
    graph = _graph(story_path, "xai")
    video = graph.steps["video:2"]
    prompt = video.static["prompts"]["video"]
    assert 'Ember says, in the voice of <AUDIO_1>: "Sage, what is that glow?"' in prompt
    assert 'Moss says: "I saw it too."' in prompt  # no voice of its own: the model picks one
    assert 'Sage says, in the voice of <AUDIO_2>: "Something old."' in prompt
    assert prompt.index("Ember says") < prompt.index("Moss says") < prompt.index("Sage says")
    assert video.static["audio"] == {
        "voices": [{"speaker": "Ember", "voice": "ara", "number": 1}, {"speaker": "Sage", "voice": "leo", "number": 2}],
    }  # generate_audio is the default (audio.native)
    assert "Deep in the forest" not in graph.steps["video:1"].static["prompts"]["video"]  # narration is TTS
    # offline the clip does not speak: the words stay out of its prompt (an edit re-renders no clip)
    offline = _graph(story_path).steps["video:2"]
    assert "says" not in offline.static["prompts"]["video"] and "audio" not in offline.static


def test_voices_are_given_only_to_a_model_that_has_them(tmp_path):
    data = YAML(typ="safe").load(STORY)
    data["models"] = {"video": "grok-imagine-video"}
    for character in data["characters"]:
        character.pop("voice", None)  # E309 otherwise
    graph = _graph(_write(tmp_path / "plain", data), "xai")
    video = graph.steps["video:2"]
    assert "audio" not in video.static  # no voices to give, the clip's own sound as by default
    assert "<AUDIO_" not in video.static["prompts"]["video"]
    assert 'Ember says: "Sage, what is that glow?"' in video.static["prompts"]["video"]


def test_storyc_graph_shows_the_speech_steps(story_path):
    import json

    from typer.testing import CliRunner

    from storyc.cli.app import app

    result = CliRunner().invoke(app, ["graph", str(story_path), "--format", "json", "--backend", "offline"])
    assert result.exit_code == 0, result.output
    steps = {s["id"]: s for s in json.loads(result.output)["steps"]}
    assert steps["speech:2"]["kind"] == "speech" and steps["speech:2"]["key"] != "pending"  # nothing upstream
    assert {"speech:1", "speech:2"} <= set(steps["assemble"]["deps"])
    mermaid = CliRunner().invoke(app, ["graph", str(story_path), "--backend", "offline"]).output
    assert "n_speech_2 --> n_assemble" in mermaid


def test_until_videos_takes_the_speech_with_the_clips(tmp_path):
    data = YAML(typ="safe").load(STORY)
    data["audio"]["subtitles"] = "none"  # offline, the clips then show the timed lines
    graph = _graph(_write(tmp_path / "none", data))
    assert "speech:2" in graph.steps["video:2"].deps
    assert {"speech:1", "speech:2", "video:1", "video:2", "video:3"} <= graph.up_to("videos")
    assert not any(sid.startswith("speech:") for sid in graph.up_to("keyframes"))
