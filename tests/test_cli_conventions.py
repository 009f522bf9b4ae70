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
BAD = STORY.replace("duration_seconds: 3", "duration_seconds: 90")


def _storyc_command() -> list[str]:
    return [str(STORYC)] if STORYC.exists() else [sys.executable, "-m", "storyc"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_storyc_command(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
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


@pytest.mark.unit
def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"storyc {__version__}"


@pytest.mark.unit
@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "storyc")
def test_every_command_has_help_with_examples_and_a_short_alias(path):
    long, short = invoke(*path, "--help"), invoke(*path, "-h")
    assert long.exit_code == 0 == short.exit_code, long.stderr
    assert long.stdout == short.stdout
    assert "Usage: storyc" in long.stdout
    if path != ["cache"]:  # a group: its commands carry the examples
        assert re.search(r"Examples?:", long.stdout), f"no examples in storyc {' '.join(path)} --help"
        assert "storyc " in long.stdout.split("Example", 1)[1]


@pytest.mark.unit
def test_the_new_commands_are_listed_and_say_what_they_leave_alone():
    top = invoke("--help").stdout
    assert all(name in top for name in ("clean", "cache", "completion"))
    assert "cache is not touched" in invoke("clean", "--help").stdout.replace("\n", " ")


@pytest.mark.unit
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


@pytest.mark.unit
def test_completion_rejects_an_unknown_shell():
    result = invoke("completion", "tcsh")
    assert result.exit_code == 2 and result.stdout == ""
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())


@pytest.mark.integration
@pytest.mark.skipif(not STORYC.exists(), reason="needs the installed storyc entry point")
def test_the_bash_script_completes_commands_and_options():
    words = {"storyc cl": "clean", "storyc cache pr": "prune", "storyc build --dr": "--dry-run"}
    for line, expected in words.items():
        proc = run(
            env={"_STORYC_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(line.split()) - 1)}
        )
        assert proc.returncode == 0 and expected in proc.stdout.split(), (line, proc.stdout, proc.stderr)


@pytest.mark.integration
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


@pytest.mark.integration
@pytest.mark.slow
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


@pytest.mark.unit
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


@pytest.mark.unit
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


@pytest.mark.unit
@pytest.mark.parametrize("path", [p for p in _command_paths() if p and p != ["cache"]], ids=" ".join)
def test_an_unknown_option_is_exit_code_2_on_stderr(path):
    result = invoke(*path, "--no-such-option")
    assert result.exit_code == 2 and "No such option" in result.stderr and result.stdout == ""


@pytest.mark.unit
def test_the_readme_documents_the_exit_codes_and_the_new_commands():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| code | meaning |", 1)[1].split("\n\n", 1)[0]
    assert [int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M)] == [0, 1, 2, 130]
    for text in ("storyc clean STORY", "storyc cache prune STORY", "NO_COLOR", "storyc completion", "--quiet"):
        assert text in readme, text


@pytest.mark.integration
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


# ─── help shows what a user types ────────────────────────────────────────────

PYTHON_TYPES = re.compile(r"<(bool|str|int|float|path|Path|list\[[^>]*\]|tuple[^>]*|datetime)>|list\[")


def _help(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.unit
@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "storyc")
def test_help_shows_flags_as_flags_and_no_python_types(path):
    text = _help(*path)
    assert not PYTHON_TYPES.search(text), PYTHON_TYPES.search(text).group()
    for line in text.splitlines():
        if re.search(r"│\s+--(help|version|strict|dry-run|force|quiet|list-rules|run|create-pool)\b", line):
            # a flag's row: its names, then straight to its description
            assert re.search(r"--[a-z-]+(\s+-[a-z])?\s{2,}[A-Z]", line), line


@pytest.mark.unit
def test_every_value_option_shows_a_metavar_or_its_choices():
    """What keeps new options from showing `<str>`: a metavar (DIR, STEPS...) or an Enum."""

    def walk(cmd, prefix):
        for param in cmd.params:
            if param.param_type_name == "option" and not param.is_flag:
                choices = param.type_descriptor.is_choice
                yield " ".join(prefix), param.opts[0], bool(param.metavar) or choices
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*prefix, name])

    missing = [(cmd, opt) for cmd, opt, ok in walk(typer.main.get_command(app), ["storyc"]) if not ok]
    assert missing == []
    build = _help("build")
    assert re.search(r"--backend\s+<offline\|xai>", build) and re.search(r"--out\s+DIR", build)
    assert re.search(r"--format\s+<text\|json\|github\|markdown>", _help("lint"))
    assert re.search(r"--format\s+<mermaid\|dot\|json>", _help("graph"))


# ─── completion: commands, options and their values ──────────────────────────


def _complete(line: str, cwd: Path = ROOT) -> list[str]:
    """What storyc suggests for the last word of `line` (bash's protocol, as the installed script uses it)."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    proc = subprocess.run(
        _storyc_command(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "_STORYC_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)},
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout.split()


@pytest.mark.integration
def test_completion_offers_the_choices_of_backend_and_format():
    assert _complete("storyc build --backend ") == ["offline", "xai"]
    assert _complete("storyc deploy --backend x") == ["xai"]
    assert _complete("storyc lint --format ") == ["text", "json", "github", "markdown"]
    assert _complete("storyc graph --format ") == ["mermaid", "dot", "json"]
    assert _complete("storyc prompts --format j") == ["json"]
    assert _complete("storyc completion ") == ["bash", "zsh", "fish"]
    assert _complete("storyc build --until ") == ["sheets", "keyframes", "videos"]
    assert _complete("storyc deploy --approve ") == ["keyframes"]


@pytest.mark.unit
def test_the_review_choices_match_what_the_build_and_deploy_accept():
    from storyc.cli.completion import REDO_TARGET_KINDS
    from storyc.cli.options import ReviewedStage, Stage
    from storyc.deploy import APPROVAL_STAGES
    from storyc.graph.steps import STAGES
    from storyc.model.targets import TARGET_KINDS

    assert [stage.value for stage in Stage] == list(STAGES)
    assert [stage.value for stage in ReviewedStage] == list(APPROVAL_STAGES)
    assert [kind.rstrip(":") for kind in REDO_TARGET_KINDS] == list(TARGET_KINDS)


@pytest.mark.unit
def test_completion_offers_the_storys_targets_for_redo(tmp_path):
    assert _complete(f"storyc build {FOX} --redo sc") == ["scene:1", "scene:2", "scene:3"]
    assert _complete(f"storyc build {FOX} --redo ")[:2] == ["character:Ember", "character:Sage"]
    assert _complete(f"storyc build {FOX} --redo cl") == ["clip:1", "clip:2", "clip:3"]
    assert _complete("storyc build --redo ", cwd=tmp_path) == ["character:", "location:", "scene:", "clip:"]


FOX = ROOT / "stories" / "fox_and_owl.yaml"


@pytest.mark.unit
def test_completion_offers_the_storys_step_ids_for_select(tmp_path):
    every = _complete(f"storyc build {FOX} --select ")
    assert {"scene:1", "scene:3+", "character:Ember", "character:Sage+", "keyframe:2", "video:3"} <= set(every)
    assert every[-2:] == ["assemble", "script"]
    assert _complete(f"storyc build {FOX} --select ch") == [
        "character:Ember",
        "character:Ember+",
        "character:Sage",
        "character:Sage+",
    ]
    assert _complete(f"storyc deploy {FOX} --select scene:1,vi") == [
        "scene:1,video:1",
        "scene:1,video:2",
        "scene:1,video:3",
    ]
    assert _complete(f"storyc build {FOX} --select +key") == ["+keyframe:1", "+keyframe:2", "+keyframe:3"]
    # no STORY on the line: ./story.yaml, as the command itself would read
    (tmp_path / "story.yaml").write_text(STORY)
    assert _complete("storyc build --select ", cwd=tmp_path)[:2] == ["scene:1", "scene:1+"]
    assert "character:Ava" in _complete("storyc build --select ", cwd=tmp_path)
    # no story to read (or one that does not parse yet): the selector kinds
    (tmp_path / "story.yaml").write_text("title: [unclosed\n")
    kinds = ["scene:", "character:", "location:", "keyframe:", "video:", "speech:", "assemble", "script"]
    assert _complete("storyc build --select ", cwd=tmp_path) == kinds
    assert _complete("storyc build --select ", cwd=tmp_path.parent) == kinds


@pytest.mark.unit
def test_every_suggested_selector_selects_steps():
    from typing import get_args

    from storyc.build.prepare import prepare
    from storyc.cli.completion import SELECTOR_KINDS, selector_candidates
    from storyc.model.state import StepKind

    KINDS = get_args(StepKind)

    assert {kind.rstrip(":") for kind in SELECTOR_KINDS} == {"scene", *KINDS}
    graph = prepare(FOX, backend="offline").graph
    candidates = selector_candidates(FOX)
    assert len(candidates) == 2 * 3 + 2 * 2 + 3 + 3 + 2
    for selector in candidates:
        assert graph.select(selector), selector
    covered = set().union(*(graph.select(s) for s in candidates if not s.endswith("+")))
    assert covered == set(graph.steps)
    # a story with sound: a speech step for each scene that speaks
    sound = FOX.with_name("fox_and_owl_sound.yaml")
    graph = prepare(sound, backend="offline").graph
    candidates = selector_candidates(sound)
    assert [c for c in candidates if c.startswith("speech:")] == ["speech:1", "speech:2", "speech:3"]
    covered = set().union(*(graph.select(s) for s in candidates if not s.endswith("+")))
    assert covered == set(graph.steps)


@pytest.mark.integration
@pytest.mark.skipif(not STORYC.exists(), reason="needs the installed storyc entry point")
def test_the_bash_script_completes_selectors_across_bashs_colon_split(tmp_path):
    """bash splits `scene:3` at ':' (COMP_WORDBREAKS): the script reads the line as typed and
    returns what follows the ':' bash keeps on the line."""
    (tmp_path / "story.yaml").write_text(FOX.read_text())
    script = invoke("completion", "bash").stdout
    probe = (
        f"{script}\n"
        'complete_line() { COMP_LINE=$1; COMP_POINT=${#COMP_LINE}; _storyc_completion storyc; echo "${COMPREPLY[*]}"; }\n'
        "IFS=' '\n"
        "complete_line 'storyc build --select scene:'\n"
        "complete_line 'storyc build story.yaml --select scene:1,video:'\n"
        "complete_line 'storyc build --select sc'\n"
        "complete_line 'storyc build --backend '\n"
        "complete_line 'storyc cache pr'\n"
    )
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{STORYC.parent}{os.pathsep}{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "1 1+ 2 2+ 3 3+",
        "1 2 3",
        "scene:1 scene:1+ scene:2 scene:2+ scene:3 scene:3+ script",
        "offline xai",
        "prune",
    ]


@pytest.mark.integration
def test_completion_imports_nothing_heavy(tmp_path):
    (tmp_path / "story.yaml").write_text(STORY)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "storyc"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={
            **os.environ,
            "_STORYC_COMPLETE": "complete_bash",
            "COMP_WORDS": "storyc build --select ",
            "COMP_CWORD": "3",
        },
    )
    assert proc.returncode == 0 and "character:Ava" in proc.stdout.split()
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "storyc.cli.completion" in imported
    assert sorted(name for name in imported if name.split(".")[0] in HEAVY) == []


# ─── ./story.yaml when STORY is left out ─────────────────────────────────────


@pytest.mark.unit
def test_commands_read_story_yaml_when_the_story_is_left_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    for command in (
        ["build"],
        ["graph"],
        ["prompts"],
        ["clean"],
        ["deploy", "--pool", "p"],
        ["approve", "--list"],
        ["unapprove", "scene:1"],
        ["lint"],
        ["cache", "prune"],
    ):
        result = invoke(*command)
        assert result.exit_code == 2 and result.stdout == "", command
        assert "story.yaml" in result.stderr, command

    Path("story.yaml").write_text(STORY)
    dry = invoke("build", "--dry-run")
    assert dry.exit_code == 0 and "dry run: 5 step(s) to run" in dry.stdout, dry.stderr
    graph = invoke("graph", "--format", "json")
    assert graph.exit_code == 0 and "character:Ava" in graph.stdout
    prompts = invoke("prompts", "--scene", "1")
    assert prompts.exit_code == 0 and "Ava" in prompts.stdout
    linted = invoke("lint")
    assert linted.exit_code == 0 and "W403" in linted.stdout and "in 1 file" in linted.stderr
    assert invoke("clean").stdout == f"{Path('build') / 'story'}: nothing to clean\n"
    assert invoke("approve", "--list").stdout == "story.yaml: no pins\n"
    unpinned = invoke("unapprove", "scene:1")
    assert unpinned.exit_code == 1 and "scene:1 is not pinned in story.yaml" in unpinned.stderr
    assert _help("build").count("Default: ./story.yaml") == 1


# ─── output cut by a closed pipe ─────────────────────────────────────────────


@pytest.mark.parametrize(
    "args, code",
    [
        (["build", "--dry-run", "story.yaml"], 0),
        (["--help"], 0),
        (["build", "-h"], 0),
        (["schema"], 0),
        (["lint", "--list-rules", "--format", "json"], 0),
        (["graph", "story.yaml", "--backend", "offline"], 0),
        (["lint", "bad.yaml"], 1),  # the output is dropped, the verdict is not
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else f"exit {value}",
)
@pytest.mark.integration
def test_a_reader_that_stops_early_is_not_an_error(tmp_path, args, code):
    """`storyc build --dry-run | head -1`: here the reader has gone before storyc writes at all."""
    (tmp_path / "story.yaml").write_text(STORY)
    (tmp_path / "bad.yaml").write_text(BAD)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [*_storyc_command(), *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if k != "XAI_API_KEY"},
        )
    finally:
        os.close(write_end)
    assert proc.returncode == code, proc.stderr
    assert (
        "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr and "Exception ignored" not in proc.stderr
    )


# ─── a file where a folder must go ───────────────────────────────────────────


@pytest.mark.unit
def test_a_file_given_as_the_output_or_cache_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    Path("story.yaml").write_text(STORY)
    for flag in ("--out", "--cache"):
        result = invoke("build", "story.yaml", flag, "story.yaml")
        assert result.exit_code == 1 and result.stdout == ""
        assert (
            result.stderr == f"storyc build: {flag} story.yaml is a file; it must name a folder (created if missing)\n"
        )
    inside = invoke("build", "story.yaml", "--out", Path("story.yaml") / "out")
    assert inside.exit_code == 1 and "story.yaml is a file, so no folder can be made inside it" in inside.stderr
    prune = invoke("cache", "prune", "story.yaml", "--cache", "story.yaml")
    assert prune.exit_code == 1 and "--cache story.yaml is a file" in prune.stderr
    # the default output folder blocked by a file: the build stops before anything runs
    Path("build").write_text("not a folder")
    blocked = invoke("-q", "build", "story.yaml")
    assert blocked.exit_code == 1 and "File exists" not in blocked.stderr
    assert blocked.stderr.strip() == f"storyc build: cannot make the folder {Path('build') / 'story'}: build is a file"
