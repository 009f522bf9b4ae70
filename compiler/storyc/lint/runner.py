"""Runs the registered rules over loaded stories and turns every failure into a diagnostic."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from storyc.diagnostics import Diagnostic, Severity, StorycError
from storyc.lint.base import LintContext, Rule
from storyc.lint.registry import INTERNAL_ERROR, SEMANTIC_RULES
from storyc.load.codes import E_DOCUMENT, E_FILE
from storyc.load.loader import LoadedStory, load_story


def internal_error(path: str, where: str, exc: BaseException) -> Diagnostic:
    # One line, no traceback: the type and the first line of the message are enough to report it.
    first_line = (str(exc).splitlines() or [""])[0][:200]
    return Diagnostic(
        path, 1, 1, INTERNAL_ERROR, Severity.ERROR, f"internal error in {where}: {type(exc).__name__}: {first_line}"
    )


def lint_story(loaded: LoadedStory, rules: Iterable[type[Rule]] = SEMANTIC_RULES) -> list[Diagnostic]:
    """All diagnostics of the semantic rules for one loaded story, sorted by position."""
    ctx = LintContext(loaded)
    found: list[Diagnostic] = []
    for rule in rules:
        try:
            found.extend(rule().check(ctx))
        except Exception as exc:  # a bug in one rule must not hide the others' findings
            found.append(internal_error(loaded.display_path, rule.code, exc))
    return sorted(found)


def lint_for_build(loaded: LoadedStory, *, prompts_dir: str | Path | None = None) -> list[Diagnostic]:
    """lint_story for the commands that render prompts (build, prune, `storyc prompts`)."""
    diagnostics = lint_story(loaded)
    if prompts_dir is not None:
        # Lint's E501 renders the templates beside the story; with --prompts some of those
        # are replaced. The graph has already rendered the templates really in use (a
        # broken one raised E501 there), so lint's view of the story folder is moot.
        diagnostics = [d for d in diagnostics if d.code != "E501"]
    return diagnostics


def lint_path(path: str | Path, rules: Iterable[type[Rule]] = SEMANTIC_RULES) -> list[Diagnostic]:
    """Load and lint one file; loader errors come back as diagnostics, never as exceptions."""
    shown = str(path)
    try:
        loaded = load_story(path)
    except StorycError as exc:
        return sorted(exc.diagnostics)
    except FileNotFoundError:
        return [Diagnostic(shown, 1, 1, E_FILE, Severity.ERROR, "no such file")]
    except OSError as exc:
        return [
            Diagnostic(shown, 1, 1, E_FILE, Severity.ERROR, f"cannot read file: {exc.strerror or type(exc).__name__}")
        ]
    except RecursionError:
        return [Diagnostic(shown, 1, 1, E_DOCUMENT, Severity.ERROR, "document nests too deeply")]
    except Exception as exc:
        return [internal_error(shown, "the loader", exc)]
    return lint_story(loaded, rules)


def lint_paths(paths: Iterable[str | Path], rules: Iterable[type[Rule]] = SEMANTIC_RULES) -> list[Diagnostic]:
    """Diagnostics of every path, in the order the paths were given, each file's sorted by position."""
    rules = tuple(rules)
    found: list[Diagnostic] = []
    for path in paths:
        found.extend(lint_path(path, rules))
    return found
