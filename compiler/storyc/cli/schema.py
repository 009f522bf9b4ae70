"""`storyc schema`: the JSON Schema of the story format."""

from __future__ import annotations

from storyc.cli.help import examples
from storyc.cli.output import out
from storyc.model.schema_export import story_json_schema_text

EXAMPLES = examples("storyc schema > schemas/story.schema.json")


def schema_command() -> None:
    """Print the JSON Schema of the story format (the committed copy is schemas/story.schema.json)."""
    out(story_json_schema_text(), nl=False)
