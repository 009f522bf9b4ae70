"""The JSON Schema of the story format, generated from the pydantic models.

`storyc schema` prints it; schemas/story.schema.json is the committed copy that
editors pick up through the stories' `# yaml-language-server: $schema=...` modeline.
"""

from __future__ import annotations

import json
from typing import Any

from storyc.model.story import Story

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:storyc:schema:story:1"
SCHEMA_TITLE = "storyc story"


def story_json_schema() -> dict[str, Any]:
    schema = Story.model_json_schema(mode="validation")
    schema = {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, **schema}
    schema["title"] = SCHEMA_TITLE
    schema.setdefault(
        "description",
        "A storyc storyboard: the seed's StoryPlan plus storyc's optional extensions.",
    )
    return schema


def story_json_schema_text() -> str:
    """Exactly what `storyc schema` prints and schemas/story.schema.json holds."""
    return json.dumps(story_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
