"""In a build's fork of the engine: become the client's `storyc build`.

The fork drops everything of the engine's (its socket, lock and other builds), takes the
client's stdin/stdout/stderr, environment (plus the engine's Prefect server as
PREFECT_API_URL), working folder, umask, niceness, argv and sys.path, and runs the
client's own program (`python -m storyc`, the `storyc` script, or a wrapper around
storyc's main()) as `__main__`. So the build is the same code path as in the client: its
own process, signals, build lock, children and exit code; only the start-up is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING

from storyc.run.engine.home import CLIENT_PID_ENV
from storyc.run.engine.wire import Channel
from storyc.run.prefect_settings import PREFECT_QUIET_ENV

if TYPE_CHECKING:
    from storyc.run.engine.daemon import Engine

_PR_SET_PDEATHSIG = 1


class BecomeBuild(BaseException):
    """Raised in a fresh fork to leave the engine's loop and run the build at the top of
    the stack (so the interpreter exits as it would after any program)."""

    def __init__(self, request: dict, fds: list[int], channel: Channel):
        super().__init__()
        self.request = request
        self.fds = fds
        self.channel = channel


def die_with_parent() -> None:
    """In a child, before exec or right after fork: SIGTERM when the engine dies."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _std_streams(env: dict) -> None:
    """New sys.stdin/stdout/stderr on the client's descriptors, buffered as Python buffers
    them (stdout by line on a terminal, stderr always by line)."""
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))

    def writer(fd: int, errors: str, line: bool):
        return open(fd, "w", encoding="utf-8", errors=errors, buffering=1 if line or unbuffered else -1, closefd=False)

    # sys.__std*__ too: what the interpreter and faulthandler fall back to is the client's
    # (typeshed marks them final: they are, in a process that never becomes another one)
    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", closefd=False)  # type: ignore[misc]  # noqa: SIM115 (the process's own)
    sys.stdout = sys.__stdout__ = writer(1, "strict", os.isatty(1))  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = writer(2, "backslashreplace", True)  # type: ignore[misc]


def run_build_in_fork(engine: Engine, become: BecomeBuild) -> None:
    """Become the client's `storyc build`: its descriptors, environment, folder, argv and
    sys.path, then its own program. SystemExit ends this process with its code."""
    import atexit
    import runpy

    request = become.request
    engine.close_in_fork()
    become.channel.close()  # the engine keeps the connection: the client sees it close when the engine does
    os.setsid()  # not in the engine's process group
    die_with_parent()  # the engine died: stop as on SIGTERM (state saved)
    os.umask(int(request.get("umask", 0o022)))  # the files it writes get the client's modes
    with contextlib.suppress(OSError):  # `nice storyc build`: as nice (lowering needs privileges)
        os.setpriority(os.PRIO_PROCESS, 0, int(request.get("nice", 0)))
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(become.fds):
        os.dup2(fd, target)
        if fd > 2:
            os.close(fd)
    env = dict(request["env"])
    env.update(
        {
            "PREFECT_API_URL": engine.api_url,
            "PREFECT_HOME": str(engine.home.prefect_home),
            CLIENT_PID_ENV: str(request["client_pid"]),
            "DO_NOT_TRACK": env.get("DO_NOT_TRACK") or "1",
        }
    )
    for name, value in PREFECT_QUIET_ENV.items():
        env.setdefault(name, value)
    os.environ.clear()
    os.environ.update(env)
    _std_streams(env)
    try:
        os.chdir(request["cwd"])
    except OSError as exc:
        sys.stderr.write(f"storyc: the build engine cannot enter {request['cwd']}: {exc.strerror}\n")
        sys.exit(1)
    sys.argv = list(request["argv"])
    sys.path[:] = list(request["path"])
    # The process ends right after the atexit handlers (registered first, this runs last):
    # tearing down the interpreter's modules (Prefect, pydantic...) would take another
    # second, and a build leaves nothing to it (its files are closed, its logs flushed).
    exit_code = [0]

    def exit_now() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(exit_code[0])

    atexit.register(exit_now)
    main = request["main"]
    try:
        if main.get("module"):
            runpy.run_module(main["module"], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(main["path"], run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        exit_code[0] = 0 if code is None else code if isinstance(code, int) else 1
        raise
    except KeyboardInterrupt:
        exit_code[0] = 128 + signal.SIGINT
        raise
    except BaseException:
        exit_code[0] = 1
        raise
