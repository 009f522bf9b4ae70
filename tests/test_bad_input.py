"""Every malformed story in tests/fixtures/bad/ (plus a few generated ones): exit 1 through the CLI,
a positioned diagnostic with the expected code and line, no traceback, and nothing written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from storyc.cli.app import app
from storyc.load.loader import MAX_FILE_BYTES

BAD = Path(__file__).resolve().parent / "fixtures" / "bad"
EXPECTED: dict[str, dict] = YAML(typ="safe", pure=True).load((BAD / "expected.yaml").read_text(encoding="utf-8"))
DIAGNOSTIC = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): (?P<severity>error|warning) (?P<code>[EW]\d{3}) (?P<message>.+)$"
)


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


@pytest.mark.unit
def test_index_lists_every_fixture_and_there_are_at_least_30() -> None:
    files = {p.name for p in BAD.iterdir() if p.name != "expected.yaml"}
    assert files == set(EXPECTED)
    assert len(files) >= 30


def run_lint(args: list[str], cwd: Path, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(app, ["lint", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"lint raised {result.exception!r}")
    return result.exit_code, result.stdout, result.stderr


def assert_clean_failure(code: int, out: str, err: str, path: str, want_code: str, want_line: int) -> None:
    assert code == 1, (code, out, err)
    assert "Traceback" not in out + err
    found = [DIAGNOSTIC.match(line) for line in out.splitlines()]
    assert found and all(found), f"every stdout line is a diagnostic:\n{out}"
    hits = [m for m in found if m["path"] == path and m["code"] == want_code]
    assert hits, f"no {want_code} for {path}:\n{out}"
    assert int(hits[0]["line"]) == want_line, out
    assert int(hits[0]["column"]) >= 1


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_fixture(name: str, tmp_path: Path, monkeypatch) -> None:
    before_fixtures = snapshot(BAD)
    path = str(BAD / name)
    code, out, err = run_lint([path], tmp_path, monkeypatch)
    assert_clean_failure(code, out, err, path, EXPECTED[name]["code"], EXPECTED[name]["line"])
    assert snapshot(tmp_path) == {}, "lint wrote files into the working folder"
    assert snapshot(BAD) == before_fixtures, "lint wrote beside the story"


@pytest.mark.unit
@pytest.mark.parametrize("fmt", ["json", "github"])
def test_bad_fixtures_in_machine_formats(fmt: str, tmp_path: Path, monkeypatch) -> None:
    import json

    paths = [str(BAD / name) for name in sorted(EXPECTED)]
    code, out, err = run_lint(["--format", fmt, *paths], tmp_path, monkeypatch)
    assert code == 1 and "Traceback" not in out + err
    if fmt == "json":
        items = json.loads(out)
        assert {item["path"] for item in items if item["severity"] == "error"} == set(paths)
    else:
        assert all(line.startswith(("::error ", "::warning ")) for line in out.splitlines())
        assert len({line.split(",line=")[0] for line in out.splitlines() if line.startswith("::error")}) == len(paths)


# ─── generated: too big to commit, or cheaper to make than to store ─────────


@pytest.mark.unit
def test_huge_file(tmp_path: Path, monkeypatch) -> None:
    story = tmp_path / "in" / "huge.yaml"
    story.parent.mkdir()
    with story.open("w") as handle:
        handle.write("title: T\n")
        line = "# " + "x" * 1000 + "\n"
        for _ in range(MAX_FILE_BYTES // len(line) + 10):
            handle.write(line)
    work = tmp_path / "cwd"
    work.mkdir()
    code, out, err = run_lint([str(story)], work, monkeypatch)
    assert_clean_failure(code, out, err, str(story), "E105", 1)
    assert "bytes" in out and snapshot(work) == {}


@pytest.mark.unit
@pytest.mark.parametrize(
    "text",
    [
        "title: " + "[" * 200_000 + "]" * 200_000 + "\n",  # crashed the C composer before the depth pre-check
        "scenes: " + "- " * 100_000 + "x\n",
        "title: " + "{a: " * 50_000 + "\n",
    ],
    ids=["flow-brackets", "compact-sequences", "unclosed-flow-maps"],
)
def test_pathologically_deep_nesting(text: str, tmp_path: Path, monkeypatch) -> None:
    story = tmp_path / "deep.yaml"
    story.write_text(text)
    work = tmp_path / "cwd"
    work.mkdir()
    code, out, err = run_lint([str(story)], work, monkeypatch)
    assert code == 1 and "Traceback" not in out + err
    assert re.search(r":1:\d+: error E10[16] ", out), out
    assert snapshot(work) == {}


@pytest.mark.unit
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_endless_device_is_refused_not_read_forever(device: str, tmp_path: Path, monkeypatch) -> None:
    if not Path(device).exists():
        pytest.skip(f"{device} missing")
    code, out, err = run_lint([device], tmp_path, monkeypatch)
    assert_clean_failure(code, out, err, device, "E105", 1)


@pytest.mark.unit
def test_a_directory_is_a_diagnostic(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "stories.yaml"
    folder.mkdir()
    code, out, err = run_lint([str(folder)], tmp_path, monkeypatch)
    assert_clean_failure(code, out, err, str(folder), "E105", 1)


@pytest.mark.unit
def test_unreadable_file_is_a_diagnostic(tmp_path: Path, monkeypatch) -> None:
    story = tmp_path / "locked.yaml"
    story.write_text("title: T\n")
    story.chmod(0)
    if os.geteuid() == 0:  # root reads any file: the OS refuses this one as it would refuse a user
        real_open = Path.open

        def refusing_open(path: Path, *args, **kwargs):
            if path == story:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refusing_open)
    code, out, err = run_lint([str(story)], tmp_path, monkeypatch)
    assert_clean_failure(code, out, err, str(story), "E105", 1)


@pytest.mark.integration
def test_all_fixtures_through_the_installed_entry_point(tmp_path: Path) -> None:
    """One real process: every file reported, exit 1, no traceback, nothing written."""
    storyc = shutil.which("storyc", path=str(Path(sys.executable).parent)) or shutil.which("storyc")
    assert storyc, "storyc entry point not installed"
    paths = [str(BAD / name) for name in sorted(EXPECTED)]
    proc = subprocess.run([storyc, "lint", *paths], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    reported = {DIAGNOSTIC.match(line)["path"] for line in proc.stdout.splitlines()}
    assert reported == set(paths)
    for name in EXPECTED:
        want = f"{BAD / name}:{EXPECTED[name]['line']}:"
        assert any(
            line.startswith(want) and f" {EXPECTED[name]['code']} " in line for line in proc.stdout.splitlines()
        ), name
    assert proc.stderr.strip().startswith("storyc lint:") and "errors" in proc.stderr
    assert snapshot(tmp_path) == {}
