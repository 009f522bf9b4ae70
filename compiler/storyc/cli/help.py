"""How commands read in --help: examples, and values shown as what a user types.

typer (0.2x) prints a type column from the Python annotations: `<bool>` on every flag
(users then type `--strict true`), `<list[Path]>` on lists. storyc's commands and groups
show a flag as a plain flag, a value as its metavar (DIR, STEPS...) or its choices
(`<offline|xai>`), and an argument by its name alone. Help cut by a closed pipe
(`storyc build -h | head`) is not an error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
import typer.core

from storyc.cli.output import reader_may_leave


def examples(*lines: str) -> str:
    """A command's help epilog: one example per paragraph (rich help joins single newlines)."""
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)


def _value_shown(param: Any, typer_shown: Callable[[Any], str | None], ctx: Any) -> str | None:
    if getattr(getattr(param, "type_descriptor", None), "is_choice", False):
        return typer_shown(ctx)
    if isinstance(param, typer.core.TyperOption) and not param.is_flag:
        return param.metavar
    return None  # a flag; an argument (its metavar is already its name)


def _show_values_plainly(param: Any) -> Any:
    shown = getattr(param, "display_type_rich", None)
    if shown is not None and getattr(shown, "func", None) is not _value_shown:  # once (the help option is kept)
        param.display_type_rich = functools.partial(_value_shown, param, shown)
    return param


# The mixin's super() is TyperCommand or TyperGroup; type checkers see one of them.
if TYPE_CHECKING:
    _HelpBase = typer.core.TyperCommand
else:
    _HelpBase = object


class _StorycHelp(_HelpBase):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _show_values_plainly(param)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.callback = _print_help
        return _show_values_plainly(option)


def _print_help(ctx: Any, param: Any, value: bool) -> None:
    """-h/--help, as click's own but for `storyc -h | head`, which typer would turn into exit 1."""
    if not value or ctx.resilient_parsing:
        return
    try:
        with reader_may_leave():
            typer.echo(ctx.get_help(), color=ctx.color)
    except SystemExit:  # rich's console, on a broken pipe: stdout is already /dev/null, exit 1
        pass
    ctx.exit()


class Command(_StorycHelp, typer.core.TyperCommand):
    """A storyc command (`app.command(cls=Command)`)."""


class Group(_StorycHelp, typer.core.TyperGroup):
    """The storyc root and its groups (`typer.Typer(cls=Group)`)."""
