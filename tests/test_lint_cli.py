"""`storyc lint` through typer's runner (one test per option), one real process of the installed
entry point, and the import-time check that lint never loads the build's heavy modules."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storyc.cli.app import app
from storyc.lint import ALL_RULES
from storyc.lint import format as lint_format

ROOT = Path(__file__).resolve().parent.parent
FOX = ROOT / "stories" / "fox_and_owl.yaml"
HEAVY = ("prefect", "xai_sdk", "av", "PIL", "imageio_ffmpeg", "grpc")

WARNED = """title: T
style: animated
color_palette: c
characters:
  - {name: Ember, role: r, visual_description: A red fox., personality_cues: []}
scenes:
  - {scene_id: 1, title: t, description: d, characters_present: [Ember], setting: s, camera: c, mood: m, action: a, duration_seconds: 8}
"""
BROKEN = WARNED.replace("[Ember]", "[Ember, Owl]")


@pytest.fixture
def stories(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "warned.yaml").write_text(WARNED)
    (tmp_path / "broken.yaml").write_text(BROKEN)
    return {"clean": FOX, "warned": tmp_path / "warned.yaml", "broken": tmp_path / "broken.yaml"}


def lint(*args: str):
    return CliRunner().invoke(app, ["lint", *map(str, args)])


@pytest.mark.unit
def test_clean_story_exits_0_with_a_summary_on_stderr(stories) -> None:
    result = lint(stories["clean"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr.strip() == "storyc lint: no problems in 1 file"


@pytest.mark.unit
def test_text_format_and_exit_1_on_error(stories) -> None:
    result = lint(stories["broken"])
    assert result.exit_code == 1
    assert f"{stories['broken']}:7:73: error E303 scene 1: unknown character 'Owl'" in result.stdout
    assert re.search(r"1 error, \d+ warnings in 1 file", result.stderr)


@pytest.mark.unit
def test_warnings_alone_exit_0(stories) -> None:
    result = lint(stories["warned"])
    assert result.exit_code == 0
    codes = re.findall(r": warning (W\d{3}) ", result.stdout)
    assert set(codes) == {"W403", "W404"}


@pytest.mark.unit
def test_strict_turns_warnings_into_failure(stories) -> None:
    assert lint("--strict", stories["warned"]).exit_code == 1
    assert lint("--strict", stories["clean"]).exit_code == 0


@pytest.mark.unit
def test_json_format(stories) -> None:
    result = lint("--format", "json", stories["broken"], stories["clean"])
    assert result.exit_code == 1
    items = json.loads(result.stdout)
    assert items and all(set(item) == {"path", "line", "column", "code", "severity", "message"} for item in items)
    e303 = next(item for item in items if item["code"] == "E303")
    assert (e303["path"], e303["line"], e303["column"], e303["severity"]) == (str(stories["broken"]), 7, 73, "error")
    assert result.stderr == ""  # machine formats keep stderr quiet


@pytest.mark.unit
def test_json_format_of_a_clean_story_is_an_empty_array(stories) -> None:
    result = lint("--format", "json", stories["clean"])
    assert result.exit_code == 0 and json.loads(result.stdout) == [] and result.stdout.endswith("]\n")


@pytest.mark.unit
def test_github_format(stories) -> None:
    result = lint("--format", "github", stories["broken"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert (
        f"::error file={stories['broken']},line=7,col=73,title=E303::scene 1: unknown character 'Owl'; defined characters: Ember"
        in lines
    )
    assert any(line.startswith("::warning file=") and "title=W404::" in line for line in lines)


@pytest.mark.unit
def test_github_format_escapes_properties_and_newlines() -> None:
    from storyc.diagnostics import Diagnostic, Severity
    from storyc.lint.format import format_github

    text = format_github([Diagnostic("a,b:c.yaml", 1, 2, "E101", Severity.ERROR, "50% broken\nsecond line")])
    assert text == "::error file=a%2Cb%3Ac.yaml,line=1,col=2,title=E101::50%25 broken%0Asecond line\n"


@pytest.mark.unit
def test_ignore_skips_rules(stories) -> None:
    result = lint("--ignore", "W403,w404", "--strict", stories["warned"])
    assert result.exit_code == 0, result.stdout
    assert result.stdout == ""


@pytest.mark.unit
@pytest.mark.parametrize(("codes", "why"), [("W999", "unknown rule code W999"), ("E101", "cannot be ignored")])
def test_ignore_rejects_unknown_and_loader_codes(stories, codes: str, why: str) -> None:
    result = lint("--ignore", codes, stories["clean"])
    assert result.exit_code == 2 and why in result.stderr


@pytest.mark.unit
def test_multiple_paths_report_each_file(stories) -> None:
    result = lint(stories["broken"], stories["warned"], stories["clean"])
    assert result.exit_code == 1
    paths = {line.split(":")[0] for line in result.stdout.splitlines()}
    assert paths == {str(stories["broken"]), str(stories["warned"])}
    assert "in 3 files" in result.stderr


@pytest.mark.unit
def test_list_rules_lists_every_registered_code() -> None:
    result = lint("--list-rules")
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert listed == [rule.code for rule in ALL_RULES]


@pytest.mark.unit
def test_list_rules_json_carries_the_documentation() -> None:
    rules = json.loads(lint("--list-rules", "--format", "json").stdout)
    assert [r["code"] for r in rules] == [rule.code for rule in ALL_RULES]
    assert all("Bad::" in r["description"] and r["checked_by"] in ("loader", "lint") for r in rules)


@pytest.mark.unit
def test_generated_rule_table_is_current() -> None:
    result = lint("--list-rules", "--format", "markdown")
    assert result.exit_code == 0
    page = (ROOT / "docs" / "lint-rules.md").read_text(encoding="utf-8")
    assert lint_format.generated_part(page) == result.stdout, (
        "docs/lint-rules.md is stale: regenerate it with .venv/bin/python -m storyc.lint.format docs/lint-rules.md"
    )


@pytest.mark.unit
def test_rule_documentation_is_generated_for_every_rule() -> None:
    generated = lint_format.rules_markdown(ALL_RULES)
    for rule in ALL_RULES:
        assert f"| [{rule.code}](#{rule.code.lower()}) |" in generated
        section = generated.split(f"\n### {rule.code}\n", 1)[1].split("\n### ", 1)[0]
        # the docstring's reST became Markdown: a fenced bad and good form, no `::` and no ``literals``
        assert "Bad:\n\n```\n" in section and "Good:\n\n```\n" in section, rule.code
        assert "::" not in section.replace("::error", "") and "``" not in section.replace("```", ""), rule.code


@pytest.mark.integration
def test_the_generator_rewrites_only_the_generated_part(tmp_path: Path) -> None:
    page = tmp_path / "lint-rules.md"
    page.write_text("# by hand\n\n<!-- lint-rules:start -->\nold table\n<!-- lint-rules:end -->\n\nafter\n")
    subprocess.run([sys.executable, "-m", "storyc.lint.format", str(page)], check=True)
    text = page.read_text()
    assert text.startswith("# by hand\n\n<!-- lint-rules:start -->\n<!-- generated by")
    assert text.endswith("<!-- lint-rules:end -->\n\nafter\n") and "old table" not in text
    assert lint_format.generated_part(text) == lint_format.rules_markdown(ALL_RULES)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give at least one story file"),
        (("--format", "xml", "X"), "'xml' is not one of 'text', 'json', 'github', 'markdown'"),
        (("--format", "markdown", "X"), "--format must be text, json or github"),
        (("--list-rules", "--format", "github"), "--list-rules --format must be"),
        (("no/such/story.yaml",), "no/such/story.yaml: no such file"),
        (("--bogus",), "No such option"),
    ],
)
def test_usage_errors_exit_2(stories, args: tuple[str, ...], message: str) -> None:
    args = tuple(str(stories["clean"]) if a == "X" else a for a in args)
    result = lint(*args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # typer's error panel wraps


def _installed_storyc() -> str:
    found = shutil.which("storyc", path=str(Path(sys.executable).parent)) or shutil.which("storyc")
    assert found, "the storyc entry point is not installed"
    return found


@pytest.mark.integration
def test_installed_entry_point_end_to_end(stories, tmp_path: Path) -> None:
    proc = subprocess.run(
        [_installed_storyc(), "lint", str(stories["broken"]), str(stories["clean"])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert f"{stories['broken']}:7:73: error E303 " in proc.stdout
    assert proc.stderr.startswith("storyc lint: 1 error")
    assert "Traceback" not in proc.stderr


@pytest.mark.integration
def test_lint_imports_none_of_the_heavy_modules(stories, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "storyc", "lint", str(stories["broken"]), str(FOX)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "storyc.lint.runner" in imported  # the check saw lint's own imports
    heavy = sorted(name for name in imported if name.split(".")[0] in HEAVY)
    assert heavy == [], f"storyc lint imported {heavy}"


@pytest.mark.unit
@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_a_key_pasted_into_a_story_never_reaches_the_output(tmp_path: Path, monkeypatch, fmt: str) -> None:
    secret = "xai-Sentinel0123456789abcdefSECRET"
    monkeypatch.setenv("XAI_API_KEY", secret)
    story = tmp_path / "leaky.yaml"
    story.write_text(WARNED.replace("color_palette: c", f'color_palette: c\naspect_ratio: "{secret}"'))
    result = lint("--format", fmt, story)
    assert result.exit_code == 1
    assert "aspect_ratio" in result.stdout and "[REDACTED]" in result.stdout
    assert secret not in result.stdout + result.stderr


@pytest.mark.integration
def test_non_ascii_messages_on_an_ascii_only_stdout(tmp_path: Path) -> None:
    story = tmp_path / "café.yaml"
    story.write_text(WARNED.replace("color_palette: c", 'color_palette: c\naspect_ratio: "café"'), encoding="utf-8")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    proc = subprocess.run(
        [_installed_storyc(), "lint", "--format", "json", str(story)],
        cwd=tmp_path,
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr
    items = json.loads(proc.stdout.decode("ascii"))
    assert any(item["code"] == "E201" and "café" in item["message"] for item in items)
    text = subprocess.run(
        [_installed_storyc(), "lint", str(story)], cwd=tmp_path, capture_output=True, env=env, timeout=60
    )
    assert text.returncode == 1 and b"Traceback" not in text.stderr and b"caf\\xe9" in text.stdout
