"""Table-driven lint rule tests: one case file per rule code in tests/lint_cases/ (sqlfluff style)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from storyc.diagnostics import Severity
from storyc.lint import ALL_RULES, RULES_BY_CODE, lint_path, lint_paths, lint_story
from storyc.lint.base import Rule
from storyc.load.loader import load_story
from test_loader import assert_inside, dump, mutated_story, story_dicts  # the loader tests' generators

pytestmark = pytest.mark.unit

CASES_DIR = Path(__file__).parent / "lint_cases"


def _case_files() -> list[Path]:
    return sorted(CASES_DIR.glob("*.yaml"))


def _load_cases() -> list[tuple[str, dict]]:
    yaml = YAML(typ="safe", pure=True)
    out = []
    for path in _case_files():
        doc = yaml.load(path.read_text(encoding="utf-8"))
        assert doc["rule"] == path.stem, f"{path.name} declares rule {doc['rule']}"
        for case in doc["cases"]:
            out.append((doc["rule"], case))
    return out


CASES = _load_cases()


def _write_case(tmp_path: Path, case: dict) -> Path:
    folder = tmp_path / "story"
    folder.mkdir()
    files = case.get("files", [])
    for name in files:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(files, dict):  # name: text (e.g. a prompts/ override)
            target.write_text(files[name], encoding="utf-8")
        else:
            target.write_bytes(b"\x89PNG\r\n\x1a\n")
    story = folder / "story.yaml"
    if "story_bytes_hex" in case:
        story.write_bytes(bytes.fromhex(case["story_bytes_hex"]))
    else:
        story.write_bytes(case["story"].encode("utf-8"))
    return story


@pytest.mark.parametrize(("code", "case"), CASES, ids=[f"{code}-{case['name']}" for code, case in CASES])
def test_rule_case(tmp_path: Path, code: str, case: dict) -> None:
    story = _write_case(tmp_path, case)
    found = [d for d in lint_path(story) if d.code == code]
    expected = case["expect"]
    assert len(found) == len(expected), "\n".join(d.format() for d in found) or "no diagnostic"
    for diag, want in zip(found, expected, strict=True):
        assert diag.severity is RULES_BY_CODE[code].severity
        if "line_between" in want:
            low, high = want["line_between"]
            assert low <= diag.line <= high, diag.format()
        else:
            assert (diag.line, diag.column) == (want["line"], want["column"]), diag.format()
        if "message" in want:
            assert want["message"] in diag.message, diag.format()


def test_every_rule_has_a_case_file_with_pass_and_fail_cases() -> None:
    by_code: dict[str, list[dict]] = {}
    for code, case in CASES:
        by_code.setdefault(code, []).append(case)
    for rule in ALL_RULES:
        assert rule.code in by_code, f"no tests/lint_cases/{rule.code}.yaml"
        assert any(not c["expect"] for c in by_code[rule.code]), f"{rule.code} has no passing case"
        if rule.code != "E900":  # an internal error cannot be written as a story: see the test below
            assert any(c["expect"] for c in by_code[rule.code]), f"{rule.code} has no failing case"
    assert {p.stem for p in _case_files()} <= set(RULES_BY_CODE), "a case file names no registered rule"


@pytest.mark.parametrize("rule", ALL_RULES, ids=[r.code for r in ALL_RULES])
def test_rule_is_documented(rule: type[Rule]) -> None:
    doc = rule.description()
    assert rule.summary and "\n" not in rule.summary
    assert "Bad::" in doc and "Good::" in doc, f"{rule.code}'s docstring must show the bad and the good form"
    assert rule.code[0] == ("E" if rule.severity is Severity.ERROR else "W")
    assert rule.name().startswith(rule.code)


def test_a_crashing_rule_becomes_one_positioned_e900(tmp_path: Path) -> None:
    class Broken(Rule):
        """Bad:: Good::"""

        code = "W999"
        summary = "always crashes"
        severity = Severity.WARNING

        def check(self, ctx):
            raise ZeroDivisionError("boom")

    story = tmp_path / "s.yaml"
    story.write_text("title: T\nstyle: s\ncolor_palette: c\ncharacters: []\nscenes: []\n")
    found = lint_story(load_story(story), rules=(Broken, *[r for r in ALL_RULES if not r.checked_by_loader]))
    internal = [d for d in found if d.code == "E900"]
    assert len(internal) == 1 and internal[0].is_error
    assert "W999" in internal[0].message and "ZeroDivisionError: boom" in internal[0].message
    assert (internal[0].line, internal[0].column) == (1, 1)


def test_example_stories_are_clean() -> None:
    stories = sorted((Path(__file__).parent.parent / "stories").glob("*.yaml"))
    assert stories
    for story in stories:
        errors = [d for d in lint_path(story) if d.is_error]
        assert errors == [], "\n".join(d.format() for d in errors)


# ─── fuzzing: only storyc's own diagnostics, never an internal error ───────────

SETTINGS = settings(max_examples=100, deadline=None)


def _lint_text(text: str, tmp_dir: Path) -> list:
    story = tmp_dir / "fuzz.yaml"
    story.write_text(text, encoding="utf-8", newline="")
    return lint_paths([story])


@SETTINGS
@given(text=mutated_story())
def test_lint_of_mutated_stories_gives_only_positioned_diagnostics(tmp_path_factory, text: str) -> None:
    found = _lint_text(text, tmp_path_factory.mktemp("fuzz"))
    assert all(d.code != "E900" for d in found), [d.format() for d in found]
    for diag in found:
        assert diag.code in RULES_BY_CODE
        assert_inside(diag, text)


VOICES = ("eve", "ara", "leo", "rex", "sal")
WORDS = st.text(alphabet=st.sampled_from("ab c\u00e9.,!?'-\u4e2d "), max_size=400)
NASTY = st.sampled_from(["../x", "a/b", "", " ", "Ember", "EMBER", "ember", "x" * 80, "é", "-", "\\", "C:\\x", "~"])


@st.composite
def semantically_broken(draw) -> dict:
    data = draw(story_dicts())
    names = [c["name"] for c in data["characters"]]
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(
            st.sampled_from(
                [
                    *("name", "present", "chain", "dup_scene", "dup_char", "image", "keyframe", "duration", "empty"),
                    *("dialogue", "voice", "narration", "audio"),
                ]
            )
        )
        scene = draw(st.sampled_from(data["scenes"]))
        if kind in ("name", "dup_char", "image") and not data["characters"]:
            continue
        if kind == "name":
            draw(st.sampled_from(data["characters"]))["name"] = draw(NASTY)
        elif kind == "present":
            scene["characters_present"] = draw(st.lists(st.one_of(NASTY, st.sampled_from(names)), max_size=5))
        elif kind == "chain":
            scene["chain_from"] = draw(st.one_of(st.integers(-3, 12), st.just("none")))
        elif kind == "dup_scene":
            scene["scene_id"] = draw(st.sampled_from(data["scenes"]))["scene_id"]
        elif kind == "dup_char":
            data["characters"].append(dict(draw(st.sampled_from(data["characters"]))))
        elif kind == "image":
            draw(st.sampled_from(data["characters"]))["reference_image"] = draw(
                st.sampled_from(["", "/", "..", "/etc/hostname", "a\\b.png", "x" * 300 + ".png", "~/x.gif", "."])
            )
        elif kind == "keyframe":
            scene["keyframe_image"] = draw(st.sampled_from(["", "k.png", "../../k.jpg", "."]))
        elif kind == "duration":
            scene["duration_seconds"] = draw(st.integers(3, 15))
        elif kind == "empty":
            data["characters"] = []
        elif kind == "dialogue":
            scene["dialogue"] = [
                {"speaker": draw(st.one_of(NASTY, st.sampled_from(names or ["Ember"]))), "line": draw(WORDS)}
                for _ in range(draw(st.integers(0, 6)))
            ]
        elif kind == "voice" and data["characters"]:
            draw(st.sampled_from(data["characters"]))["voice"] = draw(st.one_of(NASTY, st.sampled_from(VOICES)))
        elif kind == "narration":
            scene["narration"] = draw(WORDS)
        elif kind == "audio":
            data["audio"] = {
                "music": draw(st.sampled_from(["", ".", "m.mp3", "../x.wav", "a\\b.ogg"])),
                "narration_voice": draw(st.one_of(NASTY, st.sampled_from(VOICES))),
                "subtitles": draw(st.sampled_from(["soft", "burned", "none"])),
            }
    return data


@pytest.mark.slow
@SETTINGS
@given(data=semantically_broken())
def test_lint_of_semantically_broken_stories_never_crashes(tmp_path_factory, data: dict) -> None:
    text = dump(data)
    found = _lint_text(text, tmp_path_factory.mktemp("fuzz"))
    assert all(d.code != "E900" for d in found), [d.format() for d in found]
    for diag in found:
        assert_inside(diag, text)


def test_rules_scale_linearly() -> None:
    """No rule may scan the story once per scene: 4x the scenes must cost well under 16x."""
    import time

    from storyc.load.loader import LoadedStory
    from storyc.load.positions import SourceMap
    from storyc.model.story import Story

    def story(n: int) -> LoadedStory:
        names = [f"C{i}" for i in range(8)]
        data = {
            "title": "T",
            "style": "s",
            "color_palette": "c",
            "characters": [
                {"name": n_, "role": "r", "visual_description": "d", "personality_cues": []} for n_ in names
            ],
            "scenes": [
                {
                    "scene_id": i + 1,
                    "title": "t",
                    "description": "d",
                    "setting": f"forest {i % 7} far away",
                    "characters_present": [
                        names[i % 8],
                        names[(i + 1) % 8],
                        names[(i + 3) % 8],
                        "Nobody",
                        names[i % 8],
                    ],
                    "camera": "c",
                    "mood": "m",
                    "action": "a",
                    "duration_seconds": 12,
                    "chain_from": max(1, i),
                }
                for i in range(n)
            ],
        }
        return LoadedStory(
            story=Story.model_validate(data), path=Path("big.yaml"), source=SourceMap(values={(): (1, 1)}), data=data
        )

    def best_of_three(loaded: LoadedStory) -> float:
        times = []
        for _ in range(3):
            started = time.process_time()  # CPU time: other processes on a loaded machine do not count
            lint_story(loaded)
            times.append(time.process_time() - started)
        return min(times)

    small, large = story(500), story(2000)
    best_of_three(small)  # warm-up: lazy imports, regex compilation
    ratio = best_of_three(large) / best_of_three(small)
    assert ratio < 9, f"4x scenes took {ratio:.1f}x the time: a rule is not O(n)"
