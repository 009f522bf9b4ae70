"""Exit codes, usage checks, and the one place where exceptions become exit codes.

0 ok, 1 bad input or a failed build, 2 a usage error, 130 interrupted. Bad input is one
clear line (or positioned diagnostics) on stderr, never a traceback; secrets are scrubbed.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import typer

from storyc.backends.base import BackendError
from storyc.diagnostics import StorycError
from storyc.redact import redact

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEFAULT_STORY = Path("story.yaml")  # what `storyc init` writes: the story of the current folder


def usage_error(command: str, message: str) -> NoReturn:
    typer.echo(f"{command}: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def fail(command: str, message: str) -> NoReturn:
    typer.echo(f"{command}: {message}", err=True)
    raise typer.Exit(EXIT_ERROR)


def print_diagnostics(exc: StorycError) -> None:
    for diag in exc.diagnostics:
        typer.echo(diag.format(), err=True)


def story_or_default(command: str, story: Path | None) -> Path:
    """The STORY argument, or ./story.yaml when it was left out."""
    if story is not None:
        return story
    if DEFAULT_STORY.is_file():
        return DEFAULT_STORY
    usage_error(command, f"give a story file (there is no {DEFAULT_STORY} in this folder)")


def require_file(command: str, path: Path) -> None:
    if not path.is_file():
        usage_error(command, f"{path}: no such file")


def require_prompts_folder(command: str, prompts: Path | None) -> None:
    if prompts is not None and not prompts.is_dir():
        usage_error(command, f"--prompts {prompts}: no such folder")


def require_folder_or_nothing(command: str, flag: str, path: Path | None) -> None:
    """--out and --cache name a folder, created when missing: a file at that path (or on
    the way to it) is named as such (exit 1, as the folder it blocks), not an OSError's
    "File exists" or "Not a directory"."""
    blocker = file_in_the_way(path) if path is not None else None
    if blocker is not None and blocker == path:
        fail(command, f"{flag} {path} is a file; it must name a folder (created if missing)")
    if blocker is not None:
        fail(command, f"{flag} {path}: {blocker} is a file, so no folder can be made inside it")


def file_in_the_way(folder: Path) -> Path | None:
    """The file at `folder` or at the nearest existing parent, if that is not a folder."""
    for where in (folder, *folder.parents):
        if where.exists():
            return None if where.is_dir() else where
    return None


@contextlib.contextmanager
def input_errors_exit(
    command: str,
    *,
    usage: tuple[type[Exception], ...] = (),
    refused: tuple[type[Exception], ...] = (),
) -> Iterator[None]:
    """Bad input, a backend that cannot run, or an unwritable folder: one clear line (or
    positioned diagnostics) and exit 1. The command's own exceptions: `usage` ones (a bad
    --select) exit 2, `refused` ones (a folder another build holds) exit 1."""
    try:
        yield
    except StorycError as exc:
        print_diagnostics(exc)
        raise typer.Exit(EXIT_ERROR) from None
    except usage as exc:
        usage_error(command, str(exc))
    except refused as exc:
        fail(command, str(exc))
    except BackendError as exc:  # no XAI_API_KEY, a bad fault spec, a failed planning call...
        fail(command, redact(exc))
    except OSError as exc:  # read-only or full output folder, unreadable cache...
        fail(command, describe_os_error(exc))


def describe_os_error(exc: OSError) -> str:
    blocker = None
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) and isinstance(exc.filename, str):
        blocker = file_in_the_way(Path(exc.filename))
    if blocker is not None:  # mkdir's "File exists" / "Not a directory"
        return f"cannot make the folder {exc.filename}: {blocker} is a file"
    where = exc.filename
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) and exc.filename2:
        where = exc.filename2  # a copy (shutil) names its source first; the full disk is the destination's
    return f"{exc.strerror or exc}: {where or ''}".rstrip(": ")
