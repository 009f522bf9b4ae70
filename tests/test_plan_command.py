"""`storyc plan`: concept → one structured-output call → commented YAML → lint."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from typer.testing import CliRunner

from fake_xai.fixtures import TEST_KEY, _fake_xai_server, fake_xai, xai_env  # noqa: F401 (fixtures)
from storyc.author.planner import render_story_yaml, schema_reference
from storyc.cli.app import app
from storyc.lint import lint_story
from storyc.load.loader import load_story
from storyc.prompts.promptset import render_plan_prompts
from storyc.resources import schema_path

CONCEPT = "A curious fox named Ember meets a wise old owl named Sage in an autumn forest"
runner = CliRunner()


def plan(*args: str):
    return runner.invoke(app, ["plan", *args])


@pytest.mark.integration
def test_plan_with_xai_writes_a_story_that_lints_clean(xai_env, tmp_path):
    out = tmp_path / "stories" / "fox.yaml"
    result = plan(CONCEPT, "-o", str(out), "--characters", "2", "--scenes", "4", "--backend", "xai")
    assert result.exit_code == 0, result.output
    assert "lints clean" in result.output

    loaded = load_story(out)
    assert lint_story(loaded) == []
    story = loaded.story
    assert [c.name for c in story.characters] == ["Ember", "Sage"] and len(story.scenes) == 4

    # one structured-output call with the planning templates, carrying the key
    [call] = xai_env.requests("GetCompletion")
    system_prompt, user_prompt = render_plan_prompts(CONCEPT, characters=2, scenes=4)
    assert call.texts() == [system_prompt, user_prompt]
    assert '"StoryPlan"' in call.request.response_format.schema
    assert call.metadata["authorization"] == f"Bearer {TEST_KEY}"
    assert call.request.model == "grok-4-1-fast-non-reasoning"  # the planning default

    text = out.read_text()
    lines = text.splitlines()
    assert lines[0] == f"# yaml-language-server: $schema={schema_reference(out)}"
    assert (out.parent / schema_reference(out)).resolve().is_file()
    assert lines[1].startswith("# Planned by `storyc plan` with the xai backend")
    assert "visual_description: >-" in text  # long prose folded
    assert TEST_KEY not in text and TEST_KEY not in result.output


@pytest.mark.integration
def test_the_answer_is_kept_verbatim(xai_env, tmp_path):
    out = tmp_path / "s.yaml"
    assert plan(CONCEPT, "-o", str(out), "--backend", "xai").exit_code == 0
    from fake_xai.answers import story_plan

    expected = story_plan(render_plan_prompts(CONCEPT)[1])
    story = load_story(out).story
    assert [c.visual_description for c in story.characters] == [c["visual_description"] for c in expected["characters"]]
    assert story.style == expected["style"]


@pytest.mark.unit
def test_schema_modeline_matches_the_examples_inside_the_repository():
    from storyc.resources import schema_path

    story = schema_path().parent.parent / "stories" / "new.yaml"
    assert schema_reference(story) == "../schemas/story.schema.json"


@pytest.mark.integration
def test_default_backend_is_xai_when_the_key_is_set(xai_env, tmp_path):
    result = plan(CONCEPT, "-o", str(tmp_path / "s.yaml"))
    assert result.exit_code == 0 and "backend xai (default: XAI_API_KEY is set)" in result.output
    assert xai_env.count("GetCompletion") == 1


@pytest.mark.integration
def test_model_option_reaches_the_service(xai_env, tmp_path):
    assert plan(CONCEPT, "-o", str(tmp_path / "s.yaml"), "--backend", "xai", "--model", "grok-custom").exit_code == 0
    [call] = xai_env.requests("GetCompletion")
    assert call.request.model == "grok-custom"


@pytest.mark.unit
def test_offline_backend_writes_a_marked_skeleton(monkeypatch, tmp_path):
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    out = tmp_path / "s.yaml"
    result = plan(CONCEPT, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "backend offline" in result.output and "wrote skeleton" in result.output
    # nothing was called or paid for, and the result line says so
    assert "no model was called" in result.stdout and "call(s)" not in result.output and "$" not in result.stdout
    text = out.read_text()
    assert "# OFFLINE SKELETON: no model was called" in text and "TODO" in text
    loaded = load_story(out)  # a valid story the author fills in
    codes = [d.code for d in lint_story(loaded)]
    assert set(codes) <= {"E316", "W403", "W404"}  # what is left to write
    # every TODO fails lint until it is written (E316), but the skeleton itself is plan's success
    todos = codes.count("E316")
    fields = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert todos == sum(line.count("TODO") for line in fields) and f"fill in its {todos} TODO(s)" in result.stdout
    assert "E316" not in result.output  # counted, not listed: storyc lint lists them
    linted = CliRunner().invoke(app, ["lint", str(out)])
    assert linted.exit_code == 1 and linted.stdout.count(" error E316 ") == todos


@pytest.mark.unit
@pytest.mark.parametrize(
    ("concept", "names", "title"),
    [
        # the words of `--characters 2` ("Use exactly 2 characters") are not a name
        (
            "A shy lighthouse robot befriends a seagull",
            ["Character1", "Character2"],
            "A Shy Lighthouse Robot Befriends a Seagull",
        ),
        (
            "Two kids, Ana and Ben, build a raft and sail down the river to find their lost dog",
            ["Ana", "Ben"],
            "Two Kids, Ana and Ben",
        ),
        (
            "A curious fox named Ember meets a wise old owl called Sage",
            ["Ember", "Sage"],
            "A Curious Fox Named Ember Meets a Wise Old Owl Called Sage",
        ),
        (
            "The last dragon of the north teaches a village girl to fly over the frozen sea at dawn",
            ["Character1", "Character2"],
            "The Last Dragon of the North Teaches a Village Girl to Fly",
        ),
    ],
)
def test_the_skeleton_takes_names_and_a_whole_phrase_title_from_the_concept(
    monkeypatch, tmp_path, concept, names, title
):
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    out = tmp_path / "s.yaml"
    assert plan(concept, "-o", str(out), "--characters", "2").exit_code == 0
    story = load_story(out).story
    assert [c.name for c in story.characters] == names
    assert story.title == f"{title} (offline skeleton)"


@pytest.mark.unit
def test_the_modeline_points_at_the_schema_beside_the_story(monkeypatch, tmp_path):
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    (tmp_path / "story.schema.json").write_bytes(schema_path().read_bytes())  # as storyc init writes it
    out = tmp_path / "story.yaml"
    assert plan(CONCEPT, "-o", str(out)).exit_code == 0
    assert out.read_text().splitlines()[0] == "# yaml-language-server: $schema=story.schema.json"
    elsewhere = tmp_path / "other" / "story.yaml"
    elsewhere.parent.mkdir()
    assert plan(CONCEPT, "-o", str(elsewhere)).exit_code == 0
    assert "story.schema.json" in elsewhere.read_text().splitlines()[0]
    assert (
        elsewhere.parent / elsewhere.read_text().splitlines()[0].split("=", 1)[1]
    ).resolve() == schema_path().resolve()


@pytest.mark.unit
def test_offline_skeleton_honours_the_requested_counts(monkeypatch, tmp_path):
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    out = tmp_path / "s.yaml"
    assert plan(CONCEPT, "-o", str(out), "--characters", "3", "--scenes", "5").exit_code == 0
    story = load_story(out).story
    assert len(story.characters) == 3 and len(story.scenes) == 5
    assert [c.name for c in story.characters][:2] == ["Ember", "Sage"]  # from the concept's words
    assert all(len(s.characters_present) <= 2 for s in story.scenes)
    assert "Use exactly" not in out.read_text()  # the prompt's instructions are not the concept
    assert "W406" not in {d.code for d in lint_story(load_story(out))}  # every character appears


@pytest.mark.integration
def test_a_count_the_model_ignored_is_noted(xai_env, tmp_path):
    def fewer_scenes(p):
        p["scenes"] = p["scenes"][:2]
        return p

    xai_env.plan_patch = fewer_scenes
    result = plan(CONCEPT, "-o", str(tmp_path / "s.yaml"), "--scenes", "3", "--backend", "xai")
    assert result.exit_code == 0 and "note: asked for 3 scenes, the model planned 2" in result.output


@pytest.mark.integration
def test_a_plan_failing_lint_is_still_written_and_exits_1(xai_env, tmp_path):
    def unknown_character(p):
        p["scenes"][1]["characters_present"] = ["Ember", "Nobody"]
        return p

    xai_env.plan_patch = unknown_character
    out = tmp_path / "s.yaml"
    result = plan(CONCEPT, "-o", str(out), "--backend", "xai")
    assert result.exit_code == 1
    assert out.exists() and "Nobody" in out.read_text()
    [diag_line] = [line for line in result.output.splitlines() if line.startswith(str(out))]
    assert " error " in diag_line and "Nobody" in diag_line
    path_line = diag_line.split(": ")[0]
    line_no = int(path_line.split(":")[1])
    assert "Nobody" in out.read_text().splitlines()[line_no - 1]  # positioned at the culprit
    assert "fails lint" in result.output


@pytest.mark.integration
def test_a_plan_outside_the_story_format_is_still_written(xai_env, tmp_path):
    def bad_transition(p):
        p["scenes"][0]["transition"] = "dissolve"
        return p

    xai_env.plan_patch = bad_transition
    out = tmp_path / "s.yaml"
    result = plan(CONCEPT, "-o", str(out), "--backend", "xai")
    assert result.exit_code == 1 and "dissolve" in out.read_text()
    assert f"{out}:" in result.output and "error" in result.output


@pytest.mark.integration
def test_an_answer_failing_storyplan_validation_is_still_written(xai_env, tmp_path):
    """A paid answer with a 90 s scene (StoryPlan allows 3-15, a story 3-60) is written for the author to fix."""

    def too_long(p):
        p["scenes"][1]["duration_seconds"] = 90
        return p

    xai_env.plan_patch = too_long
    out = tmp_path / "s.yaml"
    result = plan(CONCEPT, "-o", str(out), "--backend", "xai")
    assert result.exit_code == 1 and "fails lint" in result.output
    assert "not a valid StoryPlan (scenes.1.duration_seconds" in result.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# yaml-language-server: $schema=")
    assert "did not validate" in lines[2]  # after "Planned by ..."
    [diag] = [line for line in result.output.splitlines() if line.startswith(f"{out}:")]
    assert " error " in diag
    assert "duration_seconds: 90" in lines[int(diag.split(":")[1]) - 1]  # positioned at the culprit
    assert xai_env.count("GetCompletion") == 1  # not asked again


@pytest.mark.integration
def test_an_answer_that_is_not_json_is_a_clear_error_and_no_file(xai_env, tmp_path):
    xai_env.inject("GetCompletion", "bad_json")
    out = tmp_path / "s.yaml"
    result = plan(CONCEPT, "-o", str(out), "--backend", "xai")
    assert result.exit_code == 1 and "not a valid StoryPlan" in result.output
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.integration
def test_refuses_to_overwrite_without_force(xai_env, tmp_path):
    out = tmp_path / "s.yaml"
    out.write_text("mine\n")
    result = plan(CONCEPT, "-o", str(out), "--backend", "xai")
    assert result.exit_code == 2 and out.read_text() == "mine\n"
    assert xai_env.count("GetCompletion") == 0
    assert plan(CONCEPT, "-o", str(out), "--backend", "xai", "--force").exit_code == 0
    assert out.read_text().startswith("# yaml-language-server")


@pytest.mark.integration
def test_backend_errors_are_clear_and_leave_no_file(xai_env, tmp_path):
    xai_env.inject("GetCompletion", "echo_key")
    out = tmp_path / "s.yaml"
    result = plan(CONCEPT, "-o", str(out), "--backend", "xai")
    assert result.exit_code == 1 and "PERMISSION_DENIED" in result.output
    assert TEST_KEY not in result.output and not out.exists()


@pytest.mark.unit
def test_missing_key_for_xai_is_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    result = plan(CONCEPT, "-o", str(tmp_path / "s.yaml"), "--backend", "xai")
    assert result.exit_code == 1 and "XAI_API_KEY" in result.output


@pytest.mark.unit
@pytest.mark.parametrize("args", [["--backend", "gpt"], ["--scenes", "0"], ["--characters", "11"]])
def test_usage_errors(args, tmp_path):
    assert plan(CONCEPT, "-o", str(tmp_path / "s.yaml"), *args).exit_code == 2


TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=200)
WORD = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=12)
PROSE = st.lists(WORD, min_size=8, max_size=40).map(" ".join)  # long one-line text: the folded path


@pytest.mark.unit
@settings(max_examples=60, deadline=None)
@given(title=TEXT, style=PROSE, description=st.one_of(TEXT, PROSE), cues=st.lists(TEXT, min_size=1, max_size=4))
def test_written_yaml_round_trips_any_text(title, style, description, cues):
    data = {
        "version": 1,
        "title": title,
        "style": style,
        "aspect_ratio": "16:9",
        "characters": [{"name": "Ember", "visual_description": description, "personality_cues": cues}],
    }
    text = render_story_yaml(data, header=["h"], schema_ref="x.json")
    assert YAML(typ="safe").load(text) == data
