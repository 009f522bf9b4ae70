"""`storyc completion SHELL`, and the values completion offers for --select.

A shell runs storyc once per TAB press, so completion stays light: the story is read with
ruamel's safe loader for its character names and scene ids (never validated, no pydantic),
and anything unreadable just means fewer suggestions. Choices (--backend, --format) are
Enums, which typer completes by itself.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NamedTuple

import typer
from typer._completion_classes import completion_init
from typer._completion_shared import get_completion_script

from storyc.cli.errors import DEFAULT_STORY
from storyc.cli.help import examples
from storyc.cli.output import out

COMPLETE_VAR = "_STORYC_COMPLETE"

# The selector kinds of storyc.graph.select (a test checks that each suggestion parses).
SELECTOR_KINDS = ("scene:", "character:", "location:", "keyframe:", "video:", "speech:", "assemble", "script")
# The review targets of storyc.model.targets (--redo; a test checks them against its TARGET_KINDS).
REDO_TARGET_KINDS = ("character:", "location:", "scene:", "clip:")

# typer's script for bash passes bash's words, which bash splits at ':' (COMP_WORDBREAKS):
# `--select scene:3` would arrive as three words. This one passes the line as typed and,
# as bash-completion's __ltrim_colon_completions does, drops from each suggestion the part
# of the current word before its last ':', which bash keeps on the line. (Its variable is COMPLETE_VAR.)
BASH_SCRIPT = r"""
_storyc_completion() {
    local IFS=$'\n'
    local line=${COMP_LINE:0:COMP_POINT}
    [[ $line =~ [[:space:]]$ ]] && line+="''"
    COMPREPLY=( $( env COMP_WORDS="$line" COMP_CWORD=-1 _STORYC_COMPLETE=complete_bash "$1" ) )
    local cur=${line##*[[:space:]]}
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local typed=${cur%"${cur##*:}"}
        COMPREPLY=( "${COMPREPLY[@]#"$typed"}" )
    fi
    return 0
}

complete -o default -F _storyc_completion storyc
"""


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion_command(
    shell: Annotated[Shell, typer.Argument(metavar="SHELL", help="The shell to complete in.")],
) -> None:
    """Print the shell completion script (commands, options, their values, file names)."""
    if shell == Shell.bash:
        out(BASH_SCRIPT)
        return
    # typer's own script, so that it matches the handler every storyc start runs when
    # _STORYC_COMPLETE is set (typer >= 0.12 keeps it in _completion_shared).
    out(get_completion_script(prog_name="storyc", complete_var=COMPLETE_VAR, shell=shell.value))


EXAMPLES = examples(
    'eval "$(storyc completion bash)"       # this shell only',
    "storyc completion bash > ~/.local/share/bash-completion/completions/storyc",
    "storyc completion zsh > ~/.zfunc/_storyc    # fpath+=~/.zfunc before compinit",
    "storyc completion fish > ~/.config/fish/completions/storyc.fish",
)


def enable_completion() -> None:
    """A shell asking for completions (the completion script sets _STORYC_COMPLETE):
    register typer's completion classes, which add_completion=False leaves out. Ordinary
    starts skip this."""
    if os.environ.get(COMPLETE_VAR):
        completion_init()


def complete_select(ctx: typer.Context, incomplete: str) -> list[str]:
    """--select's values: the story's step ids (the STORY on the line, else ./story.yaml),
    or the selector kinds when there is no story to read. In a list (`scene:1,vi`), the
    last selector is completed."""
    story = _story_on_the_line(ctx) or (DEFAULT_STORY if DEFAULT_STORY.is_file() else None)
    done, comma, last = incomplete.rpartition(",")
    prefix = done + comma
    if last.startswith("+"):  # `+video:2`: with everything upstream
        prefix, last = prefix + "+", last[1:]
    return [prefix + c for c in selector_candidates(story) if c.startswith(last)]


def complete_target(ctx: typer.Context, incomplete: str) -> list[str]:
    """--redo's values: the review targets of the story on the line (else ./story.yaml),
    character:NAME, location:NAME, scene:ID and clip:ID (storyc.model.targets)."""
    story = _story_on_the_line(ctx) or (DEFAULT_STORY if DEFAULT_STORY.is_file() else None)
    found = _story_names(story) if story is not None else None
    if found is None:
        return [kind for kind in REDO_TARGET_KINDS if kind.startswith(incomplete)]
    candidates = [
        *(f"character:{n}" for n in found.characters),
        *(f"location:{n}" for n in found.places),
        *(f"scene:{s}" for s in found.scene_ids),
        *(f"clip:{s}" for s in found.scene_ids),
    ]
    return [c for c in candidates if c.startswith(incomplete)]


def _story_on_the_line(ctx: typer.Context) -> Path | None:
    if ctx.params.get("story"):
        return Path(ctx.params["story"])
    # `storyc build story.yaml --select <TAB>`: the option still lacks its value, so the
    # parser gave up and left the words unparsed: the first one no option takes is STORY.
    takes_value = {
        name
        for p in ctx.command.params
        if p.param_type_name == "option" and not getattr(p, "is_flag", False)
        for name in p.opts
    }
    words = iter(ctx.args)
    for word in words:
        if word in takes_value:
            next(words, None)
        elif not word.startswith("-"):
            return Path(word)
    return None


def selector_candidates(story: Path | None) -> list[str]:
    """Every step id of `story` as a selector, with the `+` (and downstream) forms of
    scenes and characters; the bare kinds when the story cannot be read."""
    found = _story_names(story) if story is not None else None
    if found is None:
        return list(SELECTOR_KINDS)
    return [
        *(f"scene:{s}{plus}" for s in found.scene_ids for plus in ("", "+")),
        *(f"character:{n}{plus}" for n in found.characters for plus in ("", "+")),
        *(f"location:{n}{plus}" for n in found.places for plus in ("", "+")),
        *(f"keyframe:{s}" for s in found.scene_ids),
        *(f"video:{s}" for s in found.scene_ids),
        *(f"speech:{s}" for s in found.speaking),
        "assemble",
        "script",
    ]


class _StoryNames(NamedTuple):
    characters: list[str]
    scene_ids: list[str]
    places: list[str]  # the locations a scene is set in (they have a plate step)
    speaking: list[str]  # the scenes that speak (narration or dialogue: they have a speech step)


def _story_names(story: Path) -> _StoryNames | None:
    """What the story's selectors and review targets name, read leniently (no validation)."""
    from ruamel.yaml import YAML  # only when completing (as the loader, which parses positioned)

    try:
        data = YAML(typ="safe").load(story.read_bytes())
    except Exception:  # a story half-written in the editor: no suggestions from it
        return None
    if not isinstance(data, dict):
        return None

    def entries(key: str, field: str) -> list[str]:
        items = data.get(key)
        values = [item.get(field) for item in items if isinstance(item, dict)] if isinstance(items, list) else []
        # selectors are separated by commas and spaces: a name with one cannot be selected
        return [str(v) for v in values if isinstance(v, str | int) and not re.search(r"[\s,]", str(v))]

    scene_ids = entries("scenes", "scene_id")
    items = data.get("scenes")
    scenes = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    speaking = {str(item.get("scene_id")) for item in scenes if item.get("dialogue") or item.get("narration")}
    # a location has a step (so a selector) only when a scene is set there
    used = set(entries("scenes", "location"))
    places = [name for name in entries("locations", "name") if name in used]
    return _StoryNames(entries("characters", "name"), scene_ids, places, [s for s in scene_ids if s in speaking])
