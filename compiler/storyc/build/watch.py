"""What `storyc build --watch` watches, and its saves, debounced.

The sources of a build a person edits: the story file and the templates in use (the
`prompts/` folder beside the story and a `--prompts` folder). Folders are watched, not
files: editors save by writing a new file and renaming it over the old one. Everything
else in those folders (the cache, outputs, an editor's swap files) is ignored, so a build
never wakes the watch up itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# watchfiles groups the events of one save: it yields once no new event came for
# STEP_MS, and at the latest after DEBOUNCE_MS of steady events.
DEBOUNCE_MS = 1600
STEP_MS = 300
IDLE_MS = 500  # how often saves() yields an empty batch while nothing changes
TEMPLATE_SUFFIX = ".j2"


@dataclass(frozen=True)
class Sources:
    story: Path  # absolute
    template_dirs: tuple[Path, ...]  # absolute; may not exist yet

    def folders(self) -> list[Path]:
        """The folders to watch (those that exist)."""
        found = dict.fromkeys([self.story.parent, *(d for d in self.template_dirs if d.is_dir())])
        return list(found)

    def matches(self, path: str | Path) -> bool:
        """Whether a changed path is one of the build's sources."""
        path = Path(path).absolute()
        if path == self.story:
            return True
        return path.suffix == TEMPLATE_SUFFIX and path.parent in self.template_dirs

    def shown(self, path: str | Path) -> str:
        """A changed source as a person knows it: relative to the story's folder when inside it."""
        path = Path(path).absolute()
        try:
            return str(path.relative_to(self.story.parent))
        except ValueError:
            return str(path)


def sources_of(story: Path, prompts_dir: Path | None = None) -> Sources:
    story = Path(story).absolute()
    dirs = [story.parent / "prompts"]
    if prompts_dir is not None:
        dirs.append(Path(prompts_dir).absolute())
    return Sources(story, tuple(dict.fromkeys(dirs)))


def saves(sources: Sources, *, stop: threading.Event | None = None) -> Iterator[list[str]]:
    """The sources changed by each save (shown names, sorted), one list per debounced batch,
    until `stop` is set; an empty list every IDLE_MS while nothing changes (the first one
    says the watch is set up: a save from then on is seen, also while the caller builds).
    Ctrl-C raises KeyboardInterrupt out of the wait."""
    import watchfiles  # lazy: only watch mode needs it

    def relevant(change: watchfiles.Change, path: str) -> bool:
        return sources.matches(path)

    for changes in watchfiles.watch(
        *sources.folders(),
        watch_filter=relevant,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        stop_event=stop,
        recursive=False,
        rust_timeout=IDLE_MS,
        yield_on_timeout=True,
    ):
        yield sorted({sources.shown(path) for _, path in changes})
