"""`--prompts DIR` replaces a broken template beside the story for build and graph too."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storyc.cli.app import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _story_with_broken_video_template(tmp_path: Path) -> tuple[Path, Path]:
    story = tmp_path / "story" / "fox.yaml"
    story.parent.mkdir()
    shutil.copy(ROOT / "stories" / "fox_and_owl.yaml", story)
    (story.parent / "prompts").mkdir()
    (story.parent / "prompts" / "video.j2").write_text("{{ scene.camera }. broken\n")
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    (fixed / "video.j2").write_text("{{ style }}. {{ scene.camera }}. {{ scene.action }}.\n")
    return story, fixed


def test_broken_story_template_fails_build_without_override(tmp_path):
    story, _ = _story_with_broken_video_template(tmp_path)
    result = CliRunner().invoke(app, ["build", str(story), "--dry-run", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "E501" in result.output and "video.j2" in result.output


def test_prompts_override_replaces_the_broken_template(tmp_path):
    story, fixed = _story_with_broken_video_template(tmp_path)
    for args in (["build", str(story), "--dry-run", "--out", str(tmp_path / "out")], ["graph", str(story)]):
        result = CliRunner().invoke(app, [*args, "--prompts", str(fixed)])
        assert result.exit_code == 0, result.output
        assert "E501" not in result.output
