"""`storyc graph`: the build graph with each step's cache key."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from storyc.build.prepare import prepare
from storyc.cli.errors import input_errors_exit, require_file, require_prompts_folder, story_or_default
from storyc.cli.help import examples
from storyc.cli.options import BackendOpt, CacheDirOpt, GraphFormat, PromptsDirOpt, StoryArg
from storyc.cli.output import out
from storyc.graph.formats import graph_dot, graph_json, graph_mermaid
from storyc.graph.resolve import resolve

EXAMPLES = examples(
    "storyc graph stories/fox_and_owl.yaml                  # mermaid, paste into a markdown file",
    "storyc graph stories/fox_and_owl.yaml --format dot | dot -Tsvg > graph.svg",
    "storyc graph story.yaml --format json --backend xai    # the keys an xai build would use",
)


def graph_command(
    story: StoryArg = None,
    format: Annotated[GraphFormat, typer.Option("--format")] = GraphFormat.mermaid,
    backend: BackendOpt = None,
    cache: CacheDirOpt = None,
    prompts: PromptsDirOpt = None,
) -> None:
    """Print the build graph with each step's cache key ('pending' until its inputs are known) and whether it is cached.

    The backend is part of every key.
    """
    story = story_or_default("storyc graph", story)
    require_file("storyc graph", story)
    require_prompts_folder("storyc graph", prompts)
    with input_errors_exit("storyc graph"):
        # Lint errors (unknown character, bad chain_from...) would make the graph lie.
        prep = prepare(
            story, backend=backend.value if backend else None, cache_dir=cache, prompts_dir=prompts, lint=True
        )
        res = resolve(prep.graph, prep.cache)
    if format == GraphFormat.json:
        out(json.dumps(graph_json(prep.graph, res), indent=2))
    elif format == GraphFormat.dot:
        out(graph_dot(prep.graph, res))
    else:
        out(graph_mermaid(prep.graph, res))
