"""CLI conventions: --version, -h/--help with examples on every command, shell completion,
NO_COLOR, --quiet/--verbose, errors on stderr and results on stdout, stable exit codes,
and a start-up that imports nothing heavy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _fake_backend import FakeBackend
from storyc import __version__
from storyc.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("prefect", "xai_sdk", "av", "PIL", "imageio_ffmpeg", "grpc")
STORYC = Path(sys.executable).parent / "storyc"  # the installed entry point (its name drives completion)
ANSI = re.compile(r"\x1b\[")

# W403/W404 warnings on purpose: quiet must hide them
STORY = """\
title: Tiny
style: flat vector illustration
color_palette: teal, cream
characters:
  - {name: Ava, role: protagonist, visual_description: a tall woman in a yellow raincoat, personality_cues: [bold]}
scenes:
  - {scene_id: 1, title: Ava waits, description: Ava waits on the pier., characters_present: [Ava],
     setting: wooden pier at dawn, camera: "wide shot, slow pan", mood: calm, action: Ava looks at the sea, duration_seconds: 3}
"""
BAD = STORY.replace("duration_seconds: 3", "duration_seconds: 30")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [str(STORYC)] if STORYC.exists() else [sys.executable, "-m", "storyc"]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, **(env or {})}
    )


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _command_paths() -> list[list[str]]:
    """Every command and subcommand, as argv prefixes (the root is [])."""

    def walk(cmd, prefix):
        yield prefix
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, [*prefix, name])

    return list(walk(typer.main.get_command(app), []))


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"storyc {__version__}"


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "storyc")
def test_every_command_has_help_with_examples_and_a_short_alias(path):
    long, short = invoke(*path, "--help"), invoke(*path, "-h")
    assert long.exit_code == 0 == short.exit_code, long.stderr
    assert long.stdout == short.stdout
    assert "Usage: storyc" in long.stdout
    if path != ["cache"]:  # a group: its commands carry the examples
        assert re.search(r"Examples?:", long.stdout), f"no examples in storyc {' '.join(path)} --help"
        assert "storyc " in long.stdout.split("Example", 1)[1]


def test_the_new_commands_are_listed_and_say_what_they_leave_alone():
    top = invoke("--help").stdout
    assert all(name in top for name in ("clean", "cache", "completion"))
    assert "cache is not touched" in invoke("clean", "--help").stdout.replace("\n", " ")


@pytest.mark.parametrize(
    "shell, marker",
    [
        ("bash", "complete -o default -F _storyc_completion storyc"),
        ("zsh", "compdef _storyc_completion storyc"),
        ("fish", "complete --command storyc"),
    ],
)
def test_completion_prints_a_script_for_each_shell(shell, marker):
    result = invoke("completion", shell)
    assert result.exit_code == 0 and marker in result.stdout and "_STORYC_COMPLETE" in result.stdout


def test_completion_rejects_an_unknown_shell():
    result = invoke("completion", "tcsh")
    assert result.exit_code == 2 and result.stdout == ""
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())


@pytest.mark.skipif(not STORYC.exists(), reason="needs the installed storyc entry point")
def test_the_bash_script_completes_commands_and_options():
    words = {"storyc cl": "clean", "storyc cache pr": "prune", "storyc build --dr": "--dry-run"}
    for line, expected in words.items():
        proc = run(
            env={"_STORYC_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(line.split()) - 1)}
        )
        assert proc.returncode == 0 and expected in proc.stdout.split(), (line, proc.stdout, proc.stderr)


def test_no_color_wins_over_force_color():
    both = {"NO_COLOR": "1", "FORCE_COLOR": "1"}
    for args in (["--help"], ["lint", "--help"], ["build", "--no-such-option"], ["cache", "prune", "-h"]):
        proc = run(*args, env=both)
        assert not ANSI.search(proc.stdout + proc.stderr), f"escape sequences in storyc {' '.join(args)}"
    # the check can see escape sequences: without NO_COLOR, FORCE_COLOR colours the help
    assert ANSI.search(run("--help", env={"FORCE_COLOR": "1", "NO_COLOR": ""}).stdout)


# ─── --quiet / --verbose on a real build ─────────────────────────────────────


@pytest.fixture
def fake_builds(prefect_harness, monkeypatch, tmp_path):
    monkeypatch.setenv("STORYC_RENDER_SCALE", "0.1")
    monkeypatch.setenv("STORYC_RATE_LIMITS", "image=0,video=0")
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    monkeypatch.setattr("storyc.build.pipeline.make_backend", lambda name, prompts=None: FakeBackend())
    story = tmp_path / "story.yaml"
    story.write_text(STORY)
    return story


def _build(story: Path, out: str, *flags: str, before: tuple[str, ...] = ()):
    folder = story.parent
    return invoke(*before, "build", story, "--out", folder / out, "--cache", folder / f"cache_{out}", *flags)


def test_build_default_quiet_and_verbose_output(fake_builds):
    story = fake_builds
    normal = _build(story, "normal")
    assert normal.exit_code == 0, normal.stderr
    lines = normal.stdout.splitlines()
    assert lines[0] == "storyc build: backend offline (default: no XAI_API_KEY)"
    assert any(line.startswith("done    character:Ava") for line in lines)
    assert not any(line.startswith("  call ") for line in lines)
    assert lines[-1].startswith("built ") and "W403" in normal.stderr  # warnings on stderr

    # quiet: only the final result line (warnings hidden), per command or global
    for flags, before in (((), ("-q",)), (("--quiet",), ())):
        quiet = _build(story, "normal", *flags, before=before)  # a no-op rebuild
        assert quiet.exit_code == 0 and quiet.stderr == ""
        assert quiet.stdout.splitlines() == [quiet.stdout.strip()] and quiet.stdout.startswith("up to date: ")
    fresh = _build(story, "quiet", "-q")
    assert fresh.exit_code == 0 and fresh.stderr == ""
    assert len(fresh.stdout.splitlines()) == 1 and fresh.stdout.startswith("built ")

    # verbose: the plan and a line per call, as well as the steps
    verbose = _build(story, "verbose", before=("--verbose",))
    assert verbose.exit_code == 0, verbose.stderr
    out = verbose.stdout.splitlines()
    assert "plan: 5 step(s), 5 to run" in out
    calls = [line for line in out if line.startswith("  call ")]
    assert (
        "  call    character:Ava  image: sheet v1" in calls and len(calls) == 6
    )  # sheet+check, keyframe+check, clip+check
    assert any(line.startswith("done    video:1") for line in out)


def test_quiet_and_verbose_exclude_each_other():
    for args in (
        ["-q", "-v", "lint", "x.yaml"],
        ["build", "x.yaml", "-q", "-v"],
        ["-q", "build", "x.yaml", "--verbose"],
        ["clean", "x.yaml", "-q", "-v"],
    ):
        result = invoke(*args)
        assert result.exit_code == 2 and "exclude each other" in result.stderr and result.stdout == ""


# ─── stderr, stdout, exit codes ──────────────────────────────────────────────


def test_errors_go_to_stderr_and_results_to_stdout(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    good = tmp_path / "good.yaml"
    good.write_text(STORY)
    positioned = re.compile(rf"^{re.escape(str(bad))}:\d+:\d+: error E204 ", re.M)

    # lint: its diagnostics are its result (stdout, so --format json pipes); the summary and usage errors are stderr
    linted = invoke("lint", bad)
    assert linted.exit_code == 1 and positioned.search(linted.stdout) and "1 error" in linted.stderr
    missing = invoke("lint", tmp_path / "nope.yaml")
    assert missing.exit_code == 2 and missing.stdout == "" and "no such file" in missing.stderr
    # build, graph, prompts: a bad story is positioned diagnostics on stderr, nothing of it on stdout
    for command in (["build", bad, "--out", tmp_path / "out"], ["graph", bad], ["prompts", bad]):
        result = invoke(*command)
        assert result.exit_code == 1 and positioned.search(result.stderr), command
        assert "E204" not in result.stdout, command
    assert not (tmp_path / "out").exists()
    # plan: refusing to overwrite is a usage error on stderr
    planned = invoke("plan", "a fox", "-o", good, "--backend", "offline")
    assert planned.exit_code == 2 and planned.stdout == "" and "exists" in planned.stderr
    # clean and cache prune: a result on stdout, a refusal on stderr
    cleaned = invoke("clean", good, "--out", tmp_path / "nothing_here")
    assert cleaned.exit_code == 0 and cleaned.stderr == "" and cleaned.stdout.endswith("nothing to clean\n")
    (tmp_path / "not_ours").mkdir()
    refused = invoke("clean", good, "--out", tmp_path / "not_ours")
    assert refused.exit_code == 1 and refused.stdout == "" and "not look like storyc build output" in refused.stderr


@pytest.mark.parametrize("path", [p for p in _command_paths() if p and p != ["cache"]], ids=" ".join)
def test_an_unknown_option_is_exit_code_2_on_stderr(path):
    result = invoke(*path, "--no-such-option")
    assert result.exit_code == 2 and "No such option" in result.stderr and result.stdout == ""


def test_the_readme_documents_the_exit_codes_and_the_new_commands():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| code | meaning |", 1)[1].split("\n\n", 1)[0]
    assert [int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M)] == [0, 1, 2, 130]
    for text in ("storyc clean STORY", "storyc cache prune STORY", "NO_COLOR", "storyc completion", "--quiet"):
        assert text in readme, text


def test_help_and_clean_import_nothing_heavy(tmp_path):
    story = tmp_path / "story.yaml"
    story.write_text(STORY)
    for args in (
        ["--help"],
        ["clean", str(story), "--out", str(tmp_path / "none")],
        ["cache", "prune", str(story), "--dry-run"],
    ):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "storyc", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
        assert "storyc.cli.app" in imported
        heavy = sorted(name for name in imported if name.split(".")[0] in HEAVY)
        assert heavy == [], f"storyc {' '.join(args)} imported {heavy}"
