"""The JSON Schema: generated from the models, committed copy up to date, examples valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML
from typer.testing import CliRunner

from storyc.cli.app import app
from storyc.model.schema_export import SCHEMA_DIALECT, story_json_schema, story_json_schema_text
from storyc.model.story import Story
from storyc.resources import schema_path

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "schemas" / "story.schema.json"
STORIES = sorted((ROOT / "stories").glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=../schemas/story.schema.json"

try:
    import jsonschema
except ImportError:  # validate with pydantic alone
    jsonschema = None


def load_yaml(path: Path):
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def test_committed_schema_is_up_to_date():
    assert COMMITTED.read_text(encoding="utf-8") == story_json_schema_text(), (
        "schemas/story.schema.json is stale: run `storyc schema > schemas/story.schema.json`"
    )


def test_packaged_schema_is_the_committed_one():
    assert schema_path().read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")


def test_schema_header_and_fields():
    schema = story_json_schema()
    assert schema["$schema"] == SCHEMA_DIALECT and schema["$id"] and schema["title"] == "storyc story"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"title", "style", "color_palette", "characters", "scenes"}
    scene = schema["$defs"]["Scene"]["properties"]
    assert scene["duration_seconds"]["minimum"] == 3 and scene["duration_seconds"]["maximum"] == 60
    assert set(scene["transition"]["enum"]) == {"cut", "crossfade", "match-cut"}


def test_cli_schema_prints_exactly_the_committed_file():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.output == COMMITTED.read_text(encoding="utf-8")
    assert result.output.endswith("}\n") and json.loads(result.output) == story_json_schema()


@pytest.mark.parametrize("path", STORIES, ids=lambda p: p.stem)
def test_example_story_has_modeline_and_validates(path):
    assert path.read_text(encoding="utf-8").splitlines()[0] == MODELINE
    data = load_yaml(path)
    Story.model_validate(data)
    if jsonschema is not None:
        jsonschema.Draft202012Validator(json.loads(COMMITTED.read_text())).validate(data)


@pytest.mark.skipif(jsonschema is None, reason="jsonschema not installed")
@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(colour_palette="red"),  # unknown key
        lambda d: d["scenes"][0].update(duration_seconds=61),
        lambda d: d["scenes"][0].update(transition="wipe"),
        lambda d: d.update(aspect_ratio="21:9"),
        lambda d: d["scenes"][0].update(chain_from="previous"),
        lambda d: d["characters"][0].pop("visual_description"),
    ],
)
def test_schema_rejects_what_the_model_rejects(change):
    data = load_yaml(STORIES[0])
    change(data)
    validator = jsonschema.Draft202012Validator(json.loads(COMMITTED.read_text()))
    assert list(validator.iter_errors(data)), "the schema accepted an invalid story"
    with pytest.raises(ValidationError):
        Story.model_validate(data)
