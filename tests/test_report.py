"""script.md, storyboard.html, state.json and report.json from a hand-built BuildState."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from _html import parse_page
from storyc.load.loader import load_story
from storyc.model.state import BuildState, StepRecord
from storyc.model.story import Story
from storyc.model.story_plan import story_to_plan
from storyc.report.documents import write_report, write_script_md, write_storyboard_html
from storyc.report.templating import environment
from storyc.store.state import write_state

ROOT = Path(__file__).resolve().parent.parent
FOX = ROOT / "stories" / "fox_and_owl.yaml"


def fox_story(title: str | None = None) -> Story:
    story = load_story(FOX).story
    if title is not None:
        story = story.model_copy(update={"title": title})
    return story


def built_state(story: Story) -> BuildState:
    """What a finished build of the fox story records, with one retried sheet, one
    keyframe fix and one video correction."""
    steps = {
        "character:Ember": StepRecord(
            id="character:Ember",
            kind="character",
            key="a" * 64,
            status="done",
            api_calls=4,
            attempts=2,
            score=0.86,
            cost_usd=0.04,
            wall_s=1.5,
            outputs={"sheet": "character_sheets/Ember_v2.jpg"},
            attempt_scores={"character_sheets/Ember_v1.jpg": 0.62, "character_sheets/Ember_v2.jpg": 0.86},
            prompts={"sheet": "STYLE. Full body portrait of Ember.", "check": "Score how well <this> matches."},
        ),
        "character:Sage": StepRecord(
            id="character:Sage",
            kind="character",
            key="b" * 64,
            status="done",
            cached=True,
            attempts=1,
            score=0.91,
            outputs={"sheet": "character_sheets/Sage_v1.jpg"},
            prompts={"sheet": "STYLE. Sage sheet prompt."},
        ),
    }
    for sid in (1, 2, 3):
        steps[f"keyframe:{sid}"] = StepRecord(
            id=f"keyframe:{sid}",
            kind="keyframe",
            key="c" * 64,
            status="done",
            attempts=2 if sid == 2 else 1,
            edit_passes=1 if sid == 2 else 0,
            score=0.8 + sid / 100,
            api_calls=2,
            outputs={"keyframe": f"keyframes/scene_{sid}_v{2 if sid == 2 else 1}.jpg"},
            prompts={
                "compose": f"KEYFRAME PROMPT {sid} with ```backticks```",
                **({"fix_2": "Change ONLY the scarf: emerald green."} if sid == 2 else {}),
            },
        )
        steps[f"video:{sid}"] = StepRecord(
            id=f"video:{sid}",
            kind="video",
            key="d" * 64,
            status="done",
            attempts=1 + (sid == 3),
            edit_passes=1 if sid == 3 else 0,
            score=0.7 if sid == 3 else 0.9,
            api_calls=2,
            cost_usd=0.56,
            outputs={
                "video": f"videos/scene_{sid}{'_c1' if sid == 3 else ''}.mp4",
                "first_frame": f"frames/scene_{sid}_first.jpg",
                "last_frame": f"frames/scene_{sid}_last.jpg",
            },
            attempt_scores={"videos/scene_3.mp4": 0.5, "videos/scene_3_c1.mp4": 0.7} if sid == 3 else {},
            prompts={
                "video": f"VIDEO PROMPT {sid}",
                "check": "drift check",
                **({"fix_1": "Fix ONLY drift."} if sid == 3 else {}),
            },
        )
    steps["assemble"] = StepRecord(
        id="assemble", kind="assemble", key="e" * 64, status="done", outputs={"final_video": "final_video.mp4"}
    )
    return BuildState(
        plan=story_to_plan(story),
        backend="offline",
        story_path="stories/fox_and_owl.yaml",
        storyc_version="0.1.0",
        steps=steps,
    )


@pytest.mark.unit
def test_script_md_content(tmp_path):
    story = fox_story()
    path = write_script_md(tmp_path, story, built_state(story))
    assert path == tmp_path / "script.md"
    md = path.read_text()
    assert md.startswith("# Ember and the Glowing Crystal\n")
    assert "**Style:** Studio Ghibli-inspired watercolor animation" in md
    assert "**Color palette:** deep forest greens, burnt orange, amber, moonlight silver" in md
    # characters: sheet image, score, attempts, the other attempt, verbatim description
    assert "![Ember](<character_sheets/Ember_v2.jpg>)" in md
    assert "**Score:** 0.86 | **Attempts:** 2" in md
    assert "[take 1](<character_sheets/Ember_v1.jpg>)" in md
    assert "> " + " ".join(story.characters[0].visual_description.split()) in md
    # per-scene table
    assert "### Scene 2: Meeting the Old Owl" in md
    for row in (
        "| Setting | enchanted autumn forest under the old oak at dusk, glowing roots |",
        "| Duration | 8 s |",
        "| Transition | crossfade |",
        "| Chain source | scene 1 last frame |",
        "| Chain source | none (starts a branch) |",
        "| Edits | 1 |",
        "| Corrections | 1 |",
        "| Consistency | keyframe 0.82, last frame 0.90 |",
        "| References | 1: Ember sheet, 2: Sage sheet, 3: scene 1 last frame |",
    ):
        assert row in md, row
    # images and links
    assert "![Scene 2 keyframe](<keyframes/scene_2_v2.jpg>)" in md
    assert "![Scene 1 first frame](<frames/scene_1_first.jpg>)" in md and "(<frames/scene_1_last.jpg>)" in md
    assert "**Video:** [videos/scene_3_c1.mp4](<videos/scene_3_c1.mp4>)" in md
    assert "Corrections: [c1](<videos/scene_3_c1.mp4>)" in md
    # the exact prompts, fenced so backticks inside survive
    assert "````text\nKEYFRAME PROMPT 1 with ```backticks```\n````" in md
    assert "**Prompt (keyframe · fix_2):**" in md and "Change ONLY the scarf: emerald green." in md
    assert "```text\nScore how well <this> matches.\n```" in md, "prompts are verbatim, not escaped"
    # final video and stats
    assert "Final video: [final_video.mp4](<final_video.mp4>)" in md
    assert "| Backend | offline |" in md and "| API calls | 16 |" in md and "| Cost | $1.72 |" in md
    assert "1 from cache" in md


@pytest.mark.unit
def test_html_is_self_contained_and_escaped(tmp_path):
    story = fox_story(title='<script>alert("x")</script> & co')
    state = built_state(story)
    state.steps["character:Ember"].error = "<img src=x onerror=alert(1)>"
    path = write_storyboard_html(tmp_path, story, state)
    assert path == tmp_path / "storyboard.html"
    page = path.read_text()
    assert "<script>" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in page
    parser = parse_page(page)
    assert f"{story.title} · storyboard" in "".join(parser.text), "the title, escaped, reads as text"
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and tags.count("style") == 1 and "link" not in tags, "inline CSS, no external assets"
    srcs = [a["src"] for t, a in parser.tags if t in ("img", "video")]
    assert "character_sheets/Ember_v2.jpg" in srcs and "keyframes/scene_2_v2.jpg" in srcs
    assert "videos/scene_3_c1.mp4" in srcs and "final_video.mp4" in srcs
    assert all(not s.startswith(("/", "http")) for s in srcs), "relative media only"
    text = "".join(parser.text)
    assert "KEYFRAME PROMPT 2" in text and "Score how well <this> matches." in text
    assert "scene 1 last frame" in text


@pytest.mark.unit
def test_markdown_escapes_raw_html_in_story_text(tmp_path):
    story = fox_story(title="<script>x</script> | pipe")
    md = write_script_md(tmp_path, story, built_state(story)).read_text()
    assert "<script>" not in md and md.startswith("# &lt;script&gt;x&lt;/script&gt; | pipe")


@pytest.mark.unit
def test_partial_build_and_names_with_spaces(tmp_path):
    loaded = load_story(FOX)
    data = loaded.story.model_dump()
    data["characters"][0]["name"] = "Old Tom"
    data["scenes"][0]["characters_present"] = ["Old Tom"]
    data["scenes"][1]["characters_present"] = ["Old Tom", "Sage"]
    data["scenes"][2]["characters_present"] = ["Old Tom", "Sage"]
    story = Story.model_validate(data)
    # only Old Tom's sheet is done, after two attempts
    (tmp_path / "character_sheets").mkdir()
    for n in (1, 2):
        (tmp_path / "character_sheets" / f"Old Tom_v{n}.jpg").write_bytes(b"jpg")
    state = BuildState(
        plan=story_to_plan(story),
        steps={
            "character:Old Tom": StepRecord(
                id="character:Old Tom",
                kind="character",
                key="t" * 64,
                status="done",
                attempts=2,
                score=0.5,
                outputs={"sheet": "character_sheets/Old Tom_v2.jpg"},
                attempt_scores={"character_sheets/Old Tom_v1.jpg": 0.4, "character_sheets/Old Tom_v2.jpg": 0.5},
            ),
            "keyframe:1": StepRecord(
                id="keyframe:1", kind="keyframe", key="k", status="failed", error="moderation blocked the prompt"
            ),
        },
    )
    md = write_script_md(tmp_path, story, state).read_text()
    assert "![Old Tom](<character_sheets/Old Tom_v2.jpg>)" in md
    assert "[take 1](<character_sheets/Old Tom_v1.jpg>)" in md, "every judged attempt is listed"
    assert "**Failed:** keyframe:1: failed (moderation blocked the prompt)" in md
    assert "Final video" not in md
    page = write_storyboard_html(tmp_path, story, state).read_text()
    assert 'src="character_sheets/Old%20Tom_v2.jpg"' in page
    assert "not rendered yet" in page and "moderation blocked the prompt" in page


@pytest.mark.unit
def test_state_and_report_json(tmp_path):
    story = fox_story()
    state = built_state(story)
    state_path = write_state(tmp_path, state)
    assert state_path == tmp_path / "state.json"
    assert BuildState.model_validate_json(state_path.read_text()) == state
    report = {
        "backend": "offline",
        "api_calls": {"image": 3},
        "api_calls_total": 3,
        "cache_hits": 1,
        "cost_usd": 0.06,
        "wall_s": 1.2,
        "steps": [{"id": "keyframe:3", "cached": False}],
    }
    report_path = write_report(tmp_path, report)
    assert json.loads(report_path.read_text()) == report
    assert list(json.loads(report_path.read_text())) == list(report), "the build's key order, not sorted"
    # overwrite in place, nothing left behind
    write_report(tmp_path, {"x": 1})
    assert json.loads(report_path.read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "state.json"]


@pytest.mark.unit
def test_report_json_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = write_report(tmp_path, {"old": True})

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("storyc.store.fsutil.os.replace", failing_replace)
    with pytest.raises(OSError):
        write_report(tmp_path, {"new": True})
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"], "temp file cleaned up"


@pytest.mark.integration
def test_report_module_stays_light():
    # The report is called from the build but must not pull in Prefect or media libraries (it
    # renders with Jinja), nor import a later stage or a backend, even while writing a page.
    import subprocess
    import sys

    code = (
        "import sys, tempfile; sys.path.insert(0, 'tests'); import test_report as t; s = t.fox_story(); "
        "d = tempfile.mkdtemp(); t.write_storyboard_html(d, s, t.built_state(s)); t.write_script_md(d, s, t.built_state(s)); "
        "print(','.join(m for m in sys.modules if m.split('.')[0] in ('prefect','av','PIL','xai_sdk','imageio_ffmpeg') "
        "or m.startswith(('storyc.backends', 'storyc.run', 'storyc.build', 'storyc.cli'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ}, cwd=ROOT
    )
    assert out.stdout.strip() == ""


@pytest.mark.unit
def test_storyboard_shows_each_attempt_with_its_score_and_marks_low_scores(tmp_path):
    story = fox_story()
    state = built_state(story)
    steps = state.steps
    steps["character:Ember"].attempt_scores = {
        "character_sheets/Ember_v1.jpg": 0.61,
        "character_sheets/Ember_v2.jpg": 0.86,
    }
    steps["keyframe:2"].attempt_scores = {"keyframes/scene_2_v1.jpg": 0.7, "keyframes/scene_2_v2.jpg": 0.82}
    steps["video:3"].attempt_scores = {"videos/scene_3.mp4": 0.6, "videos/scene_3_c1.mp4": 0.7}
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "scene_3_c1_last.jpg").write_bytes(b"jpg")  # a clip is shown by its last frame
    page = write_storyboard_html(tmp_path, story, state).read_text()
    parser = parse_page(page)
    text = "".join(parser.text)
    figures = [a for t, a in parser.tags if t == "figure" and "attempt" in a.get("class", "")]
    # recorded attempts: Ember 2, keyframe 2 2, video 3 2; the other steps record none here
    assert len(figures) == 6
    imgs = [a["src"] for t, a in parser.tags if t == "img"]
    assert "character_sheets/Ember_v1.jpg" in imgs and "keyframes/scene_2_v1.jpg" in imgs
    assert "frames/scene_3_c1_last.jpg" in imgs
    # each attempt: label, kind, score; low scores marked by class, colour and text
    # labels number the takes as `storyc approve --take N` does
    assert "take 1 · generate · 0.61 ▼ below 0.80" in text and "take 2 · generate · 0.86 ✓ · kept" in text
    assert "take 2 · fix edit · 0.82 ✓ · kept" in text and "take 1 · compose · 0.70 ▼ below 0.80" in text
    assert "take 2 · video-edit correction c1 · 0.70 ▼ below 0.80 · kept" in text
    assert 'class="attempt below"' in page and 'class="attempt kept"' in page
    assert '<span class="score below" title="below the consistency threshold 0.80">0.70 ▼ below 0.80</span>' in page
    assert ".score.below { color: var(--bad)" in page
    # palette as text and swatches, totals, every clip in a player, no network
    assert "deep forest greens, burnt orange, amber, moonlight silver" in text
    assert 'style="background:#cc5500"' in page  # burnt orange, by the offline renderer's colour words
    assert "API calls: 16" in text and "Cost: $1.72" in text
    assert [a["src"] for t, a in parser.tags if t == "video"] == [
        "final_video.mp4",
        "videos/scene_1.mp4",
        "videos/scene_2.mp4",
        "videos/scene_3_c1.mp4",
    ]
    csp = next(a["content"] for t, a in parser.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert csp.startswith("default-src 'none'") and "script-src" not in csp
    md = write_script_md(tmp_path, story, state).read_text()
    assert "Other takes: [take 1](<character_sheets/Ember_v1.jpg>) (generate, 0.61)" in md
    assert "Other keyframe takes: [take 1](<keyframes/scene_2_v1.jpg>) (compose, 0.70)" in md


@pytest.mark.unit
def test_palette_swatches():
    from storyc.report.html import palette_swatches

    assert palette_swatches("teal, pale pink and #AbC, #123456") == [
        ("#AbC", "#abc"),
        ("#123456", "#123456"),
        ("teal", "#008080"),
        ("pale pink", "#f8d0dd"),
    ]
    assert palette_swatches("moonlight and mist") == []


def _score_html(score: float | None, threshold: float) -> str:
    """The storyboard's score marker (a macro of its template)."""
    return str(environment().get_template("storyboard_macros.html.j2").module.score(score, threshold))


@pytest.mark.unit
def test_score_marker_never_rounds_across_the_threshold():
    assert _score_html(0.9453, 0.95) == (
        '<span class="score below" title="below the consistency threshold 0.95">0.945 ▼ below 0.95</span>'
    )
    assert _score_html(0.9499, 0.95).startswith('<span class="score below"') and ">0.9499 ▼" in _score_html(
        0.9499, 0.95
    )
    assert (
        _score_html(0.95, 0.95) == '<span class="score ok" title="meets the consistency threshold 0.95">0.95 ✓</span>'
    )
    assert _score_html(None, 0.8) == '<span class="score">–</span>'


@pytest.mark.unit
def test_storyboard_review_shows_approvals_notes_and_approve_commands(tmp_path):
    from storyc.report.review import PinView, Review

    story = fox_story()
    state = built_state(story)
    state.steps["keyframe:2"].attempt_scores = {"keyframes/scene_2_v1.jpg": 0.7, "keyframes/scene_2_v2.jpg": 0.82}
    review = Review(
        story="stories/fox and owl.yaml",
        out="build/draft",
        pins={
            "character:Ember": PinView("approved/sheet_Ember.jpg", 2, "current"),
            "scene:1": PinView(
                "approved/keyframe_scene_1.jpg",
                1,
                "stale",
                ["scene 1's keyframe was approved with Ember's previous sheet"],
            ),
        },
        notes={"scene:2": "the crystal <glows> green"},
    )
    page = write_storyboard_html(tmp_path, story, state, review=review).read_text()
    text = "".join(parse_page(page).text)
    assert "✓ Approved: take 2 → approved/sheet_Ember.jpg (current)" in text
    assert (
        "⚠ Approved: take 1 → approved/keyframe_scene_1.jpg is stale: scene 1's keyframe was approved with Ember's previous sheet"
        in text
    )
    assert "To generate it again: storyc unapprove 'stories/fox and owl.yaml' scene:1" in text
    # the exact command for every take, quoted for a shell; the note, escaped
    assert "take 1: storyc approve 'stories/fox and owl.yaml' scene:2 --take 1 --out build/draft" in text
    assert "take 2: storyc approve 'stories/fox and owl.yaml' scene:2 --take 2 --out build/draft" in text
    assert "Redo note (appended to its prompt): the crystal <glows> green" in text and "<glows>" not in page
    md = write_script_md(tmp_path, story, state, review=review).read_text()
    assert "**Approved**: take 2 → `approved/sheet_Ember.jpg` (current)" in md
    assert "- take 2: `storyc approve 'stories/fox and owl.yaml' scene:2 --take 2 --out build/draft`" in md
    assert "*Redo note (appended to its prompt):* the crystal &lt;glows&gt; green" in md
