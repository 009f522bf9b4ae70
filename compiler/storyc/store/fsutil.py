"""File-system primitives every stage shares: atomic writes, flock'd lock files and the
sweeping of temp files a killed process left.

Atomic writes: the bytes go to a temp file beside the destination (same file system, so
the rename is atomic), which is then renamed over it. A killed process leaves either the
old file or the new one, never a partial one, plus at worst a temp file. Every temp file
is named `.<dest name>.<pid>.<random>.tmp<dest suffix>`: hidden, with the writer's pid
(so a later process removes only temps of dead writers) and the destination's suffix (so
ffmpeg and Pillow, which write into it, still tell the format).

`durable=True` also fsyncs the file and its folder, for files that cannot be verified
later (state.json, report.json); the cache verifies every blob it returns, so it skips
the fsyncs (see store/cache.py).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_MARK = ".tmp"
# `.<dest name>.<pid>.<8 random chars>.tmp[<suffix>]`: mkstemp's random part is [a-z0-9_]
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp(?:\.[^.]+)?$")

# ─── new files' mode ─────────────────────────────────────────────────────────

_NEW_FILE_MODE: int | None = None


def new_file_mode() -> int:
    """The mode open() gives a new file (0o666 less the umask). Temp files from mkstemp are
    0600; outputs renamed from them get this instead, so a shared output folder or cache
    stays readable by the team, as any file the user writes would be."""
    global _NEW_FILE_MODE
    if _NEW_FILE_MODE is None:
        umask = None
        try:  # Linux: read it without changing it (os.umask would race with threads)
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
        except (OSError, ValueError):
            pass
        if umask is None:
            umask = os.umask(0o022)
            os.umask(umask)
        _NEW_FILE_MODE = 0o666 & ~umask
    return _NEW_FILE_MODE


# ─── atomic writes ───────────────────────────────────────────────────────────


def temp_path_for(dest: Path | str) -> Path:
    """A fresh, empty temp file beside `dest` (its folder is created), with the mode a new
    file gets. The name keeps dest's suffix, so ffmpeg can still tell the format."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{dest.name}.{os.getpid()}.", suffix=f"{TEMP_MARK}{dest.suffix}", dir=dest.parent
    )
    try:
        os.fchmod(fd, new_file_mode())  # ffmpeg, Pillow or a download write into it: it becomes the output
    finally:
        os.close(fd)
    return Path(name)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def atomic_output(dest: Path | str, *, durable: bool = False) -> Iterator[Path]:
    """`with atomic_output(dest) as tmp:` write `tmp` (by any means: Pillow, ffmpeg, a
    download). On success it replaces `dest`; on any error it is removed, so `dest` is
    either absent/old or complete."""
    dest = Path(dest)
    tmp = temp_path_for(dest)
    try:
        yield tmp
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            # name the file that did not fit: a write says no name at all, and a copy names
            # its source first (shutil), which for a restored output is the cache's blob
            exc.filename, exc.filename2 = str(dest), None
        raise
    if durable:
        fsync_dir(dest.parent)


def atomic_write_bytes(dest: Path | str, data: bytes, *, durable: bool = True) -> None:
    with atomic_output(dest, durable=durable) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dest: Path | str, text: str, *, durable: bool = True) -> None:
    atomic_write_bytes(dest, text.encode("utf-8"), durable=durable)


def atomic_write_json(dest: Path | str, data: Any, *, durable: bool = True) -> None:
    """Sorted keys, two-space indent, UTF-8, a final newline."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    atomic_write_bytes(dest, text.encode() + b"\n", durable=durable)


def atomic_copy(src: Path | str, dest: Path | str, *, durable: bool = True) -> None:
    with atomic_output(dest, durable=durable) as tmp:
        shutil.copyfile(src, tmp)


# ─── temp files left by killed processes ─────────────────────────────────────


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temps(folder: Path | str, *, any_writer: bool = False) -> list[Path]:
    """The temp files of atomic writes under `folder` whose writer process is gone (a killed
    build's). `any_writer`: every temp file, whoever wrote it; only for a caller that holds
    the folder's lock, so no writer can be at work there (a pid may be reused, and an
    earlier build in this very process may have been interrupted)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = []
    for path in folder.rglob(f".*{TEMP_MARK}*"):
        match = _TEMP_NAME.match(path.name)
        if match is None or not path.is_file():
            continue
        if any_writer or not _pid_alive(int(match["pid"])):
            stale.append(path)
    return stale


def remove_stale_temps(folder: Path | str, *, any_writer: bool = False) -> int:
    """Delete the temp files `stale_temps` finds. Returns how many."""
    stale = stale_temps(folder, any_writer=any_writer)
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


# ─── lock files (flock) ──────────────────────────────────────────────────────
# fcntl is POSIX only; it is imported where a lock is taken, so that the rest of this
# module (atomic writes, used by every stage) also loads where it is missing.

_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


def open_lock_file(path: Path, *, create: bool = True) -> int:
    """A descriptor on the lock file `path`, never through a symbolic link: a planted link
    would have us lock (and a writer truncate) its target. Raises OSError (ELOOP for a link;
    ENOENT when absent and `create` is False)."""
    if create:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)


def flock(fd: int, *, exclusive: bool, wait: bool) -> bool:
    """Take the flock on `fd` (shared or exclusive). Without `wait`, returns False at once
    when another holder is in the way. The kernel drops the lock when the descriptor is
    closed or the process dies."""
    import fcntl

    operation = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, operation)
    except OSError as exc:
        if not wait and exc.errno in _BUSY:
            return False
        raise
    return True


def unlock(fd: int) -> None:
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


# A build the warm engine runs (storyc.run.engine) is a fork of the engine working for the
# `storyc build` the user started: its lock files name that command's pid, which is the
# one the user knows, and whose death (SIGKILL, a lost terminal) kills the fork.
BUILD_CLIENT_PID_ENV = "STORYC_ENGINE_CLIENT_PID"


def holder_pid() -> int:
    """The pid this process writes into the lock files it takes."""
    raw = os.environ.get(BUILD_CLIENT_PID_ENV, "")
    return int(raw) if raw.isdigit() else os.getpid()


def wait_for_dead_holder(fd: int, path: Path, timeout_s: float = 10.0) -> bool:
    """Take the exclusive lock on `fd` when the pid written in `path` is dead but its lock
    is still held: an engine's build whose client was just killed, which the engine is
    killing at that very moment. False when the holder is alive (or the wait times out)."""
    import time

    raw = read_holder(path)
    if not raw.isdigit() or _pid_alive(int(raw)):
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if flock(fd, exclusive=True, wait=False):
            return True
        time.sleep(0.05)
    return False


def read_holder(path: Path) -> str:
    """The pid a lock holder wrote into its lock file, as text ('?' when unknown)."""
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


def lock_holder(path: Path) -> str | None:
    """The pid (as text, '?' when unknown) of the process holding an exclusive lock on the
    lock file `path`, or None when nobody does. Creates nothing: a missing (or linked) lock
    file is not held."""
    try:
        fd = open_lock_file(path, create=False)
    except OSError:
        return None
    try:
        if flock(fd, exclusive=True, wait=False):
            return None
        return read_holder(path)
    finally:
        os.close(fd)  # closing releases our probe lock
