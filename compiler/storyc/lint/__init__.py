"""storyc lint: sqlfluff-style rules over a loaded story.

`lint_story(loaded)` runs the semantic rules on a LoadedStory (`lint_for_build` as the commands
that render prompts see it); `lint_paths(paths)` loads
each file and also returns the loader's errors (E1xx, E2xx) as diagnostics. Rules live
in one module per family and are registered in storyc.lint.registry.
Imports nothing heavy: pydantic, ruamel.yaml and the standard library only.
"""

from storyc.lint.registry import ALL_RULES, RULES_BY_CODE, SEMANTIC_RULES
from storyc.lint.runner import lint_for_build, lint_path, lint_paths, lint_story

__all__ = ["ALL_RULES", "RULES_BY_CODE", "SEMANTIC_RULES", "lint_for_build", "lint_path", "lint_paths", "lint_story"]
