"""Results on stdout (through here), messages on stderr (typer.echo(..., err=True)).

A reader that stops early (`storyc build --dry-run | head -1`) closes the pipe: the rest of
the output is dropped and the command finishes as it would have, never a traceback or an
error exit because nobody reads.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import typer


def out(text: str = "", *, nl: bool = True) -> None:
    """One result line on stdout."""
    with reader_may_leave():
        typer.echo(text, nl=nl)


def write(text: str) -> None:
    """Text as is (sys.stdout's own encoding and error handler), flushed."""
    with reader_may_leave():
        sys.stdout.write(text)
        sys.stdout.flush()


def discard_stdout() -> None:
    """The reader is gone: what is still buffered and everything printed after goes to
    /dev/null (so the interpreter's last flush does not fail either)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def reader_may_leave() -> Iterator[None]:
    """Printing inside: a closed stdout drops the rest of the output instead of raising."""
    try:
        yield
    except BrokenPipeError:
        discard_stdout()


def human_size(size: int) -> str:
    """Bytes for people: 512 B, 3.4 kB, 12.1 MB (powers of 1000, as du --si)."""
    if size < 1000:
        return f"{size} B"
    n = size / 1000
    for unit in ("kB", "MB"):
        if n < 1000:
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
